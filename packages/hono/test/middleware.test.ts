/**
 * `idempotency()` and `webhook()` among Hono's own middleware (compress, etag, cors,
 * secure-headers), mounted before and after Interlock, over real HTTP. Answers are read as raw
 * bytes and decoded as their own `Content-Encoding` says, so a header that lies about the body fails.
 */
import { MemoryStore, standardWebhooks } from "@interlock/core";
import { expectSaneHeaders, wireRequest } from "@interlock/test-harness/wire";
import { type Context, Hono, type MiddlewareHandler } from "hono";
import { compress } from "hono/compress";
import { cors } from "hono/cors";
import { etag } from "hono/etag";
import { secureHeaders } from "hono/secure-headers";
import { describe, expect, it } from "vitest";
import { idempotency, type WebhookVariables, webhook } from "../src/index.js";
import { delivery, SECRET, start, uniqueId } from "./helpers.js";

/** A keyed JSON POST from a browser origin that accepts gzip. */
const keyed = (key: string, extra: Record<string, string> = {}) => ({
  "content-type": "application/json",
  "accept-encoding": "gzip",
  origin: "https://shop.example",
  "idempotency-key": key,
  ...extra,
});

/** The list headers compress, etag, cors and secure-headers write: none may be sent twice or repeat an item. */
const LISTS = ["vary", "content-encoding", "access-control-allow-origin", "x-content-type-options"];

const LARGE = JSON.stringify({ items: Array.from({ length: 200 }, (_, i) => ({ id: i, name: `item ${i}` })) });

/** Every way a route answers, and what a client must decode from it. */
const routes: Array<[string, (c: Context) => Response | Promise<Response>, { status: number; body: string }]> = [
  ["c.json", (c) => c.json(JSON.parse(LARGE), 201), { status: 201, body: LARGE }],
  ["c.text", (c) => c.text(LARGE), { status: 200, body: LARGE }],
  ["a small c.json", (c) => c.json({ id: 1 }, 201), { status: 201, body: '{"id":1}' }],
  ["c.body(null, 204)", (c) => c.body(null, 204), { status: 204, body: "" }],
  [
    "a Response built by hand",
    () => new Response(LARGE, { status: 202, headers: { "content-type": "application/json" } }),
    { status: 202, body: LARGE },
  ],
];

const web: Record<string, () => MiddlewareHandler> = {
  compress: () => compress(),
  etag: () => etag(),
  cors: () => cors({ origin: "https://shop.example" }),
  secureHeaders: () => secureHeaders(),
};

/** An app: `before`, then idempotency(), then `after`, then the route; counts its runs. */
async function serveWith(before: string[], after: string[], route: (c: Context) => Response | Promise<Response>) {
  const world = { calls: 0 };
  const app = new Hono();
  for (const name of before) app.use(web[name]?.() as MiddlewareHandler);
  app.use(idempotency({ store: new MemoryStore(), principal: false, methods: ["POST", "GET"] }));
  for (const name of after) app.use(web[name]?.() as MiddlewareHandler);
  app.on(["POST", "GET"], "/", (c) => {
    world.calls++;
    return route(c);
  });
  return { world, url: await start(app) };
}

const ALL = Object.keys(web);

/** A header each of these middlewares sets, that a replay does not keep (core's replayHeaders). */
const OWN_HEADERS: Array<[string, string]> = [
  ["cors", "access-control-allow-origin"],
  ["secureHeaders", "x-content-type-options"],
];

/** Mount orders: each middleware alone on either side, and all four on either side. */
const orders: Array<[string[], string[]]> = [
  ...ALL.flatMap(
    (name): Array<[string[], string[]]> => [
      [[name], []],
      [[], [name]],
    ],
  ),
  [ALL, []],
  [[], ALL],
  [
    ["compress", "cors"],
    ["etag", "secureHeaders"],
  ],
  [
    ["etag", "secureHeaders"],
    ["compress", "cors"],
  ],
];

describe("idempotency() among Hono's middleware", () => {
  for (const [before, after] of orders) {
    const label = `${before.join("+") || "nothing"} | idempotency() | ${after.join("+") || "nothing"}`;
    for (const [name, route, expected] of routes) {
      it(`${label}: ${name} and its replay decode to the same bytes, with sane headers`, async () => {
        const { world, url } = await serveWith(before, after, route);
        const key = uniqueId("key");
        const first = await wireRequest(url, keyed(key), "{}");
        const replay = await wireRequest(url, keyed(key), "{}");
        expect(world.calls).toBe(1);
        expect(replay.headers["idempotent-replayed"]).toBe("true");
        for (const answer of [first, replay]) {
          expect(answer.status).toBe(expected.status);
          expect(answer.decoded.toString()).toBe(expected.body);
          expectSaneHeaders(answer, LISTS);
        }
        expect(replay.headers["content-type"]).toBe(first.headers["content-type"]);
        // A header of a middleware before idempotency() is set on the replay as on the first
        // answer; one of a middleware after it (not a header replays keep) only on the first.
        for (const [name, header] of OWN_HEADERS) {
          if (![...before, ...after].includes(name)) continue;
          expect(first.headers[header], header).toBeDefined();
          expect(replay.headers[header], header).toBe(after.includes(name) ? undefined : first.headers[header]);
        }
      });
    }
  }
});

describe("compress() around idempotency(): the order decides what is stored", () => {
  const json = (c: Context) => c.json(JSON.parse(LARGE), 201);

  it("mounted before: the route's own bytes are stored, and each answer is compressed for the client that asks", async () => {
    const { world, url } = await serveWith(["compress"], [], json);
    const key = uniqueId("key");
    const first = await wireRequest(url, keyed(key), "{}");
    const plain = await wireRequest(url, keyed(key, { "accept-encoding": "identity" }), "{}");
    const gzip = await wireRequest(url, keyed(key), "{}");
    expect(world.calls).toBe(1);
    expect(first.headers["content-encoding"]).toBe("gzip");
    expect(plain.headers["content-encoding"]).toBeUndefined();
    expect(plain.raw.toString()).toBe(LARGE);
    expect(gzip.headers["content-encoding"]).toBe("gzip");
    expect(gzip.decoded.toString()).toBe(LARGE);
  });

  it("mounted after: the compressed bytes are stored with their Content-Encoding, so every replay is gzip", async () => {
    const { world, url } = await serveWith([], ["compress"], json);
    const key = uniqueId("key");
    const first = await wireRequest(url, keyed(key), "{}");
    const plain = await wireRequest(url, keyed(key, { "accept-encoding": "identity" }), "{}");
    expect(world.calls).toBe(1);
    expect(first.headers["content-encoding"]).toBe("gzip");
    expect(plain.headers["content-encoding"]).toBe("gzip");
    expect(plain.decoded.toString()).toBe(LARGE);
  });

  for (const [before, after] of [
    [["compress"], []],
    [[], ["compress"]],
  ] as Array<[string[], string[]]>) {
    it(`a c.body(ReadableStream) with compress() ${before.length ? "before" : "after"}: sent decodable, not stored, the retry runs again`, async () => {
      const { world, url } = await serveWith(before, after, (c) => {
        c.header("content-type", "application/json");
        return c.body(
          new ReadableStream({
            start(controller) {
              const bytes = new TextEncoder().encode(LARGE);
              controller.enqueue(bytes.subarray(0, 1000));
              controller.enqueue(bytes.subarray(1000));
              controller.close();
            },
          }),
        );
      });
      const key = uniqueId("key");
      const first = await wireRequest(url, keyed(key), "{}");
      const again = await wireRequest(url, keyed(key), "{}");
      for (const answer of [first, again]) {
        expect(answer.headers["content-encoding"]).toBe("gzip");
        expect(answer.decoded.toString()).toBe(LARGE);
        expectSaneHeaders(answer, LISTS);
      }
      expect(again.headers["idempotent-replayed"]).toBeUndefined();
      expect(world.calls).toBe(2);
    });
  }
});

describe("etag() and HEAD around idempotency()", () => {
  const text = (c: Context) => c.text(LARGE);
  const get = (url: string, headers: Record<string, string>) => wireRequest(url, headers, undefined, "GET");

  it("etag() before: the replay of a GET gets the first answer's ETag, and a conditional replay 304", async () => {
    const { world, url } = await serveWith(["etag"], [], text);
    const key = uniqueId("key");
    const first = await get(url, keyed(key));
    const replay = await get(url, keyed(key));
    expect(world.calls).toBe(1);
    expect(first.headers.etag).toBeDefined();
    expect(replay.headers.etag).toBe(first.headers.etag);
    const conditional = await get(url, keyed(key, { "if-none-match": String(first.headers.etag) }));
    expect(conditional.status).toBe(304);
    expect(conditional.raw.byteLength).toBe(0);
  });

  it("etag() after: the ETag is stored with the answer and replayed, but a conditional replay is no 304", async () => {
    const { world, url } = await serveWith([], ["etag"], text);
    const key = uniqueId("key");
    const first = await get(url, keyed(key));
    const replay = await get(url, keyed(key));
    expect(world.calls).toBe(1);
    expect(replay.headers.etag).toBe(first.headers.etag);
    expect(replay.decoded.toString()).toBe(LARGE);
    const conditional = await get(url, keyed(key, { "if-none-match": String(first.headers.etag) }));
    expect(conditional.status).toBe(200);
    expect(conditional.decoded.toString()).toBe(LARGE);
  });

  it("etag() after, a first request that is conditional: its 304 is not stored, and the retry without the condition gets the whole answer", async () => {
    const { world, url } = await serveWith([], ["etag"], text);
    const etag = (await get(url, {})).headers.etag; // no key: not covered
    const key = uniqueId("key");
    const conditional = await get(url, keyed(key, { "if-none-match": String(etag) }));
    expect(conditional.status).toBe(304);
    const retry = await get(url, keyed(key));
    expect([retry.status, retry.headers["idempotent-replayed"]]).toEqual([200, undefined]);
    expect(retry.decoded.toString()).toBe(LARGE);
    expect(world.calls).toBe(3);
  });

  for (const [name, route] of [
    ["c.text", text],
    ["a Response built by hand", () => new Response(LARGE, { headers: { "content-type": "text/plain" } })],
  ] as Array<[string, (c: Context) => Response]>) {
    it(`a HEAD request (not a covered method) to a route answering ${name} passes through, headers only`, async () => {
      const { world, url } = await serveWith(["compress", "etag", "cors", "secureHeaders"], [], route);
      const key = uniqueId("key");
      const head = await wireRequest(url, keyed(key), undefined, "HEAD");
      const again = await wireRequest(url, keyed(key), undefined, "HEAD");
      for (const answer of [head, again]) {
        expect(answer.status).toBe(200);
        expect(answer.raw.byteLength).toBe(0);
        expect(answer.headers["idempotent-replayed"]).toBeUndefined();
      }
      expect(world.calls).toBe(2);
    });
  }
});

describe("HEAD as a covered method", () => {
  // Hono answers HEAD through the GET route and drops the body unread: a body Interlock would
  // record as it goes out must not hold the key in flight (every retry a 409 until the lock expires).
  for (const [name, route] of [
    ["c.text", (c: Context) => c.text(LARGE)],
    ["a Response built by hand", () => new Response(LARGE, { headers: { "content-type": "text/plain" } })],
    ["c.text under etag() and compress() after idempotency()", (c: Context) => c.text(LARGE)],
  ] as Array<[string, (c: Context) => Response]>) {
    it(`${name}: the answer, headers only, is stored and replayed`, async () => {
      let calls = 0;
      const app = new Hono();
      app.use(idempotency({ store: new MemoryStore(), principal: false, methods: ["POST", "HEAD"] }));
      if (name.includes("etag")) app.use(etag(), compress());
      app.get("/", (c) => {
        calls++;
        return route(c);
      });
      const url = await start(app);
      const key = uniqueId("key");
      const first = await wireRequest(url, keyed(key), undefined, "HEAD");
      const replay = await wireRequest(url, keyed(key), undefined, "HEAD");
      expect(calls).toBe(1);
      expect(first.status).toBe(200);
      expect(replay.status).toBe(200);
      expect(replay.headers["idempotent-replayed"]).toBe("true");
      expect(replay.headers["content-type"]).toBe(first.headers["content-type"]);
      expect(replay.raw.byteLength).toBe(0);
    });
  }
});

describe("webhook() among Hono's middleware", () => {
  for (const [before, after] of [
    [ALL, []],
    [[], ALL],
  ] as Array<[string[], string[]]>) {
    it(`${before.length ? "all before" : "all after"}: verified once, the duplicate answered and decodable`, async () => {
      let calls = 0;
      const app = new Hono<{ Variables: WebhookVariables }>();
      for (const name of before) app.use(web[name]?.() as MiddlewareHandler);
      app.use(webhook({ scheme: standardWebhooks, secret: SECRET, store: new MemoryStore() }));
      for (const name of after) app.use(web[name]?.() as MiddlewareHandler);
      app.post("/", (c) => {
        calls++;
        return c.json({ received: c.get("webhook").payload });
      });
      const url = await start(app);
      const sent = await delivery(JSON.stringify({ type: "paid", pad: "x".repeat(2000) }));
      const headers = { ...sent.headers, "content-type": "application/json", "accept-encoding": "gzip" };
      const first = await wireRequest(url, headers, sent.body);
      expect(first.status).toBe(200);
      expect(first.headers["content-encoding"]).toBe("gzip");
      expect(JSON.parse(first.decoded.toString()).received.type).toBe("paid");
      const duplicate = await wireRequest(url, headers, sent.body);
      expect(JSON.parse(duplicate.decoded.toString())).toMatchObject({ duplicate: true });
      expectSaneHeaders(duplicate);
      expect(calls).toBe(1);
    });
  }
});
