/**
 * `idempotency()` and `webhook()` among the middleware Koa apps really mount: koa-compress and
 * the three body parsers, in every order, over real HTTP. Answers are read as raw bytes and
 * decoded as their own `Content-Encoding` says, so a header that lies about the body fails.
 */
import { Readable } from "node:stream";
import { MemoryStore, standardWebhooks } from "@interlock/core";
import { expectSaneHeaders, wireRequest } from "@interlock/test-harness/wire";
import Koa, { type Middleware } from "koa";
import compress from "koa-compress";
import { afterEach, describe, expect, it } from "vitest";
import { idempotency, webhook } from "../src/index.js";
import { koaBody, koaBodyParser, legacyBodyParser } from "./parsers.js";
import { type Served, serve } from "./serve.js";
import { delivery, newId, SECRET } from "./support.js";

let served: Served | undefined;
afterEach(async () => {
  await served?.close();
  served = undefined;
});

/** One request to the served app, read off the wire. */
const call = (path: string, headers: Record<string, string>, body?: string | Buffer, method = "POST") =>
  wireRequest(`${served?.url}${path}`, headers, body, method);

/** A keyed JSON POST that accepts gzip, as a browser or an SDK sends it. */
const keyed = (key: string, extra: Record<string, string> = {}) => ({
  "content-type": "application/json",
  "accept-encoding": "gzip",
  "idempotency-key": key,
  ...extra,
});

const BINARY = "application/octet-stream";

const LARGE = JSON.stringify({ items: Array.from({ length: 200 }, (_, i) => ({ id: i, name: `item ${i}` })) });

type Handler = Middleware;

/** The body kinds a Koa handler sets, each with what a client must decode from it. */
const bodies: Array<[string, Handler, { status: number; body: string }]> = [
  [
    "a large string",
    (ctx) => {
      ctx.type = "application/json";
      ctx.body = LARGE;
    },
    { status: 200, body: LARGE },
  ],
  [
    "a large Buffer",
    (ctx) => {
      ctx.type = "text/plain";
      ctx.body = Buffer.from(LARGE);
    },
    { status: 200, body: LARGE },
  ],
  [
    "a large object",
    (ctx) => {
      ctx.status = 201;
      ctx.body = JSON.parse(LARGE);
    },
    { status: 201, body: LARGE },
  ],
  [
    "a small object",
    (ctx) => {
      ctx.status = 201;
      ctx.body = { id: 1 };
    },
    { status: 201, body: '{"id":1}' },
  ],
  [
    "null (Koa answers 204)",
    (ctx) => {
      ctx.body = null;
    },
    { status: 204, body: "" },
  ],
  [
    "204",
    (ctx) => {
      ctx.status = 204;
    },
    { status: 204, body: "" },
  ],
];

/** An app of `chain`, then a handler that counts its runs. */
// biome-ignore lint/suspicious/noExplicitAny: the chain mixes middleware of any state and context, as an app's does.
async function start(chain: Middleware<any, any>[], handler: Handler) {
  const world = { calls: 0 };
  const app = new Koa();
  app.silent = true;
  for (const middleware of chain) app.use(middleware);
  app.use(async (ctx, next) => {
    world.calls++;
    await handler(ctx, next);
  });
  served = await serve(app);
  return world;
}

const interlock = () => idempotency({ store: new MemoryStore(), principal: false });

describe("idempotency() with koa-compress mounted before it (the order to use)", () => {
  for (const [name, handler, expected] of bodies) {
    it(`${name}: the first answer and its replay decode to the same bytes`, async () => {
      const world = await start([compress(), interlock()], handler);
      const key = newId("key");
      const first = await call("/", keyed(key), "{}");
      const replay = await call("/", keyed(key), "{}");
      expect(world.calls).toBe(1);
      expect(replay.headers["idempotent-replayed"]).toBe("true");
      for (const answer of [first, replay]) {
        expect(answer.status).toBe(expected.status);
        expect(answer.decoded.toString()).toBe(expected.body);
        expectSaneHeaders(answer);
      }
      expect(replay.headers["content-encoding"]).toBe(first.headers["content-encoding"]);
      expect(replay.headers["content-type"]).toBe(first.headers["content-type"]);
      // A client that does not take gzip is answered plain, the replay too.
      const plain = await call("/", { ...keyed(key), "accept-encoding": "identity" }, "{}");
      expect(plain.headers["content-encoding"]).toBeUndefined();
      expect(plain.decoded.toString()).toBe(expected.body);
    });
  }

  it("a large answer is compressed, and so is its replay", async () => {
    await start([compress(), interlock()], bodies[0]?.[1] as Handler);
    const key = newId("key");
    const first = await call("/", keyed(key), "{}");
    const replay = await call("/", keyed(key), "{}");
    expect(first.headers["content-encoding"]).toBe("gzip");
    expect(replay.headers["content-encoding"]).toBe("gzip");
    expect(replay.decoded.equals(first.decoded)).toBe(true);
  });

  it("a streamed body is compressed and not stored: the retry runs again", async () => {
    const world = await start([compress(), interlock()], (ctx) => {
      ctx.type = "text/plain";
      ctx.body = Readable.from([Buffer.from(LARGE.slice(0, 1000)), Buffer.from(LARGE.slice(1000))]);
    });
    const key = newId("key");
    const first = await call("/", keyed(key), "{}");
    const again = await call("/", keyed(key), "{}");
    expect(first.headers["content-encoding"]).toBe("gzip");
    expect(first.decoded.toString()).toBe(LARGE);
    expect(again.decoded.toString()).toBe(LARGE);
    expect(again.headers["idempotent-replayed"]).toBeUndefined();
    expect(world.calls).toBe(2);
  });
});

describe("idempotency() with koa-compress mounted after it", () => {
  it("a small answer, sent plain, is stored and replayed", async () => {
    const world = await start([interlock(), compress()], bodies[3]?.[1] as Handler);
    const key = newId("key");
    const first = await call("/", keyed(key), "{}");
    const replay = await call("/", keyed(key), "{}");
    expect(world.calls).toBe(1);
    expect(replay.headers["idempotent-replayed"]).toBe("true");
    expect(replay.decoded.toString()).toBe(first.decoded.toString());
    expectSaneHeaders(replay);
  });

  it("a large answer reaches Interlock as a gzip stream: sent decodable, not stored, the retry runs again", async () => {
    const world = await start([interlock(), compress()], bodies[0]?.[1] as Handler);
    const key = newId("key");
    const first = await call("/", keyed(key), "{}");
    const again = await call("/", keyed(key), "{}");
    for (const answer of [first, again]) {
      expect(answer.headers["content-encoding"]).toBe("gzip");
      expect(answer.decoded.toString()).toBe(LARGE);
      expectSaneHeaders(answer);
    }
    expect(again.headers["idempotent-replayed"]).toBeUndefined();
    expect(world.calls).toBe(2);
  });
});

/** The three body parsers Koa apps use, as each is mounted. */
const parsers: Array<[string, () => Middleware]> = [
  ["@koa/bodyparser", () => koaBodyParser()],
  ["koa-bodyparser", () => legacyBodyParser()],
  ["koa-body", () => koaBody()],
];

/** The parsers that skip a request Interlock read (`ctx.disableBodyParser`, or a body already set). */
const skippingParsers = parsers.slice(0, 2);

describe("idempotency() and the body parsers", () => {
  for (const [name, parser] of skippingParsers) {
    it(`${name} after idempotency(): the handler gets the parsed body; a retry replays, another body is 422`, async () => {
      const world = await start([interlock(), parser()], (ctx) => {
        ctx.status = 201;
        ctx.body = { got: (ctx.request as { body?: unknown }).body };
      });
      const key = newId("key");
      const first = await call("/", keyed(key), '{"amount":5}');
      expect(first.status).toBe(201);
      expect(JSON.parse(first.decoded.toString())).toEqual({ got: { amount: 5 } });
      const replay = await call("/", keyed(key), '{"amount":5}');
      expect(replay.headers["idempotent-replayed"]).toBe("true");
      expect(replay.decoded.equals(first.decoded)).toBe(true);
      const other = await call("/", keyed(key), '{"amount":6}');
      expect(other.status).toBe(422);
      // Unkeyed, Interlock reads nothing and the parser reads the stream.
      const unkeyed = await call("/", { "content-type": "application/json" }, '{"amount":7}');
      expect(JSON.parse(unkeyed.decoded.toString())).toEqual({ got: { amount: 7 } });
      expect(world.calls).toBe(2);
    });
  }

  for (const [name, parser] of skippingParsers) {
    it(`${name} after idempotency(): an empty keyed body sent with a Content-Encoding is the empty body sent plain, never inflated by the parser`, async () => {
      const world = await start([interlock(), parser()], (ctx) => {
        ctx.status = 201;
        ctx.body = { got: (ctx.request as { body?: unknown }).body };
      });
      const key = newId("key");
      const coded = await call("/", keyed(key, { "content-encoding": "gzip" }), "");
      expect([coded.status, coded.decoded.toString()]).toEqual([201, JSON.stringify({ got: {} })]);
      const plain = await call("/", keyed(key), "");
      expect([plain.status, plain.headers["idempotent-replayed"]]).toEqual([201, "true"]);
      expect(world.calls).toBe(1);
    });
  }

  // koa-body keeps the text only when asked to (includeUnparsed).
  const keepingRawBody: Array<[string, () => Middleware]> = [
    ...skippingParsers,
    ["koa-body with includeUnparsed", () => koaBody({ includeUnparsed: true })],
  ];
  for (const [name, parser] of keepingRawBody) {
    it(`${name} before idempotency(): its rawBody text is fingerprinted`, async () => {
      const world = await start([parser(), interlock()], (ctx) => {
        ctx.status = 201;
        ctx.body = { got: (ctx.request as { body?: unknown }).body };
      });
      const key = newId("key");
      const first = await call("/", keyed(key), '{"amount":5}');
      expect(JSON.parse(first.decoded.toString())).toEqual({ got: { amount: 5 } });
      const replay = await call("/", keyed(key), '{"amount":5}');
      expect(replay.headers["idempotent-replayed"]).toBe("true");
      expect((await call("/", keyed(key), '{"amount":6}')).status).toBe(422);
      expect(world.calls).toBe(1);
    });
  }

  // The parsers set `ctx.request.body` (`{}`) for a type they do not parse, without reading it.
  for (const [name, parser] of parsers) {
    it(`${name} before idempotency(): a binary body it leaves unread is read, fingerprinted and replayed`, async () => {
      const world = await start([parser(), interlock()], (ctx) => {
        ctx.status = 201;
        ctx.body = { bytes: [...((ctx.request as { rawBody?: Buffer }).rawBody ?? [])] };
      });
      const key = newId("key");
      const binary = (bytes: number[]) => call("/", keyed(key, { "content-type": BINARY }), Buffer.from(bytes));
      const first = await binary([0xff, 0x00, 0xfe, 0x80]);
      expect([first.status, JSON.parse(first.decoded.toString())]).toEqual([201, { bytes: [0xff, 0x00, 0xfe, 0x80] }]);
      const replay = await binary([0xff, 0x00, 0xfe, 0x80]);
      expect(replay.headers["idempotent-replayed"]).toBe("true");
      expect((await binary([0xff, 0x00, 0xfe, 0x81])).status).toBe(422);
      expect(world.calls).toBe(1);
    });
  }

  it("koa-body after idempotency(): it reads the consumed stream again and fails a keyed request (500), which releases the key; an unkeyed one is parsed", async () => {
    const world = await start([interlock(), koaBody()], (ctx) => {
      ctx.body = { got: (ctx.request as { body?: unknown }).body };
    });
    const key = newId("key");
    expect((await call("/", keyed(key), '{"amount":5}')).status).toBe(500);
    // Released, not stuck in flight: the same key is run again (and fails again), never a 409.
    expect((await call("/", keyed(key), '{"amount":5}')).status).toBe(500);
    const unkeyed = await call("/", { "content-type": "application/json" }, '{"amount":7}');
    expect(JSON.parse(unkeyed.decoded.toString())).toEqual({ got: { amount: 7 } });
    // koa-body throws before the handler: only the unkeyed request reached it.
    expect(world.calls).toBe(1);
  });

  it("koa-body without includeUnparsed before idempotency(): keyed requests are refused 500 body_not_raw, advising includeUnparsed", async () => {
    const world = await start([koaBody(), interlock()], (ctx) => {
      ctx.body = "ran";
    });
    const refused = await call("/", keyed(newId("key")), '{"amount":5}');
    expect(refused.status).toBe(500);
    const problem = JSON.parse(refused.decoded.toString());
    expect(problem.code).toBe("body_not_raw");
    expect(problem.detail).toMatch(/koa-body with includeUnparsed: true/);
    expect(world.calls).toBe(0);
  });
});

describe("webhook() and the body parsers and koa-compress", () => {
  const receiver = () => webhook({ scheme: standardWebhooks, secret: SECRET, store: new MemoryStore() });
  const handler: Handler = (ctx) => {
    const state = ctx.state as { webhook: { payload: unknown } };
    ctx.body = { payload: state.webhook.payload, parsed: (ctx.request as { body?: unknown }).body };
  };

  for (const [name, parser] of skippingParsers) {
    it(`${name} after webhook(): verified, the handler gets the parsed body, a duplicate is answered`, async () => {
      const world = await start([compress(), receiver(), parser()], handler);
      const sent = await delivery(JSON.stringify({ type: "paid", pad: "x".repeat(2000) }));
      const headers = { ...sent.headers, "accept-encoding": "gzip" };
      const first = await call("/", headers, Buffer.from(sent.body));
      expect(first.status).toBe(200);
      const answered = JSON.parse(first.decoded.toString());
      expect(answered.payload.type).toBe("paid");
      expect(answered.parsed.type).toBe("paid");
      const duplicate = await call("/", headers, Buffer.from(sent.body));
      expect(duplicate.status).toBe(200);
      expect(JSON.parse(duplicate.decoded.toString())).toMatchObject({ duplicate: true });
      expect(world.calls).toBe(1);
    });
  }

  for (const [name, parser] of parsers) {
    it(`${name} before webhook(): refused 500 body_not_raw, never a 401`, async () => {
      const world = await start([parser(), receiver()], handler);
      const sent = await delivery('{"type":"paid"}');
      const refused = await call("/", sent.headers, Buffer.from(sent.body));
      expect(refused.status).toBe(500);
      const problem = JSON.parse(refused.decoded.toString());
      expect(problem.code).toBe("body_not_raw");
      expect(problem.detail).toMatch(/keep koa-body off webhook routes/);
      expect(world.calls).toBe(0);
    });
  }

  for (const [name, parser] of parsers) {
    it(`${name} before webhook(): a binary delivery it leaves unread is verified on its bytes`, async () => {
      const world = await start([parser(), receiver()], (ctx) => {
        ctx.body = { bytes: [...(ctx.state as { webhook: { body: Uint8Array } }).webhook.body] };
      });
      const sent = await delivery(new Uint8Array([0xff, 0x00, 0xfe, 0x80]), BINARY);
      const first = await call("/", sent.headers, Buffer.from(sent.body));
      expect([first.status, JSON.parse(first.decoded.toString())]).toEqual([200, { bytes: [0xff, 0x00, 0xfe, 0x80] }]);
      const duplicate = await call("/", sent.headers, Buffer.from(sent.body));
      expect(JSON.parse(duplicate.decoded.toString())).toMatchObject({ duplicate: true });
      expect(world.calls).toBe(1);
    });
  }

  it("koa-body after webhook(): it reads the consumed stream again and fails (500); the delivery is released for the retry", async () => {
    const world = await start([receiver(), koaBody()], handler);
    const sent = await delivery('{"type":"paid"}');
    expect((await call("/", sent.headers, Buffer.from(sent.body))).status).toBe(500);
    // Released, not recorded: the provider's retry is processed again (and fails again), never a duplicate.
    expect((await call("/", sent.headers, Buffer.from(sent.body))).status).toBe(500);
    expect(world.calls).toBe(0);
  });

  it("koa-compress after webhook(): a large answer is sent compressed and the delivery recorded", async () => {
    const world = await start([receiver(), compress()], handler);
    const sent = await delivery(JSON.stringify({ type: "paid", pad: "x".repeat(2000) }));
    const headers = { ...sent.headers, "accept-encoding": "gzip" };
    const first = await call("/", headers, Buffer.from(sent.body));
    expect(first.headers["content-encoding"]).toBe("gzip");
    expect(JSON.parse(first.decoded.toString()).payload.type).toBe("paid");
    const duplicate = await call("/", headers, Buffer.from(sent.body));
    expect(JSON.parse(duplicate.decoded.toString())).toMatchObject({ duplicate: true });
    expect(world.calls).toBe(1);
  });
});
