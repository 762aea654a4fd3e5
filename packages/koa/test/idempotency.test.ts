/** idempotency(): response capture and replay, streams, failures, scoping and the raw body. */
import { request as httpRequest, ServerResponse } from "node:http";
import { PassThrough, Readable } from "node:stream";
import { brotliCompressSync, deflateSync, gzipSync } from "node:zlib";
import { type InterlockEvent, MemoryStore, standardWebhooks } from "@interlock/core";
import { leaveMidBody } from "@interlock/test-harness/web-requests";
import Koa, { type DefaultState, type Middleware, type ParameterizedContext } from "koa";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  type IdempotencyMiddlewareOptions,
  idempotency,
  type RawBodyContext,
  type WebhookState,
  webhook,
} from "../src/index.js";
import { sendsWebBodies } from "./framework.js";
import { type Served, serve } from "./serve.js";
import { bodyParser, delivery, newId, readAll, route, SECRET, sleep } from "./support.js";

let served: Served | undefined;
afterEach(async () => {
  await served?.close();
  served = undefined;
});

interface World {
  events: InterlockEvent[];
  calls: number;
}

/** A handler's context: `rawBody` is Interlock's bytes, a parser's text, or absent. */
type Context = ParameterizedContext<
  DefaultState,
  { request: Koa.Request & { rawBody?: Buffer | string; body?: unknown } }
>;
type Handler = (ctx: Context, world: World) => void | Promise<void>;

/** An app: `before` middleware, then routes [method, pattern, handler] behind one idempotency() and `after`. */
async function start(
  routes: Array<[string, string, Handler]>,
  options: Partial<IdempotencyMiddlewareOptions> = {},
  before: Middleware[] = [],
  after: Middleware[] = [],
) {
  const world: World = { events: [], calls: 0 };
  const app = new Koa();
  app.silent = true;
  for (const middleware of before) app.use(middleware);
  const idempotent = idempotency({
    store: new MemoryStore(),
    principal: (request) => request.context.get("x-api-key") || undefined,
    onEvent: (event) => world.events.push(event),
    ...options,
  });
  for (const [method, pattern, handler] of routes) {
    app.use(
      route(method, pattern, idempotent, ...after, async (ctx: Context) => {
        world.calls++;
        await handler(ctx, world);
      }),
    );
  }
  served = await serve(app);
  return world;
}

/** A store whose writes take a while (`delayMs`), as a remote one's do. */
class SlowStore extends MemoryStore {
  constructor(readonly delayMs = 50) {
    super();
  }
  override async complete(...args: Parameters<MemoryStore["complete"]>) {
    await sleep(this.delayMs);
    return super.complete(...args);
  }
  override async release(...args: Parameters<MemoryStore["release"]>) {
    await sleep(this.delayMs);
    return super.release(...args);
  }
}

/** POST /export answering a text stream: the first call writes it with `first`, later ones end it with `later`. */
function exportRoute(first: (body: PassThrough) => void, later: string): [string, string, Handler] {
  return [
    "POST",
    "/export",
    (ctx, world) => {
      const body = new PassThrough();
      ctx.type = "text/plain";
      ctx.body = body;
      if (world.calls === 1) first(body);
      else body.end(later);
    },
  ];
}

describe("HEAD, when methods covers it", () => {
  it("the replay gives the first answer's Content-Type and Content-Length, or none: no body, a bypass, a length set, a JSON body", async () => {
    const world = await start(
      [
        [
          "HEAD",
          "/status",
          (ctx) => {
            ctx.status = 201;
          },
        ],
        [
          "HEAD",
          "/bypass",
          (ctx) => {
            ctx.respond = false;
            ctx.res.writeHead(200);
            ctx.res.end("hello");
          },
        ],
        [
          "HEAD",
          "/length",
          (ctx) => {
            ctx.status = 200;
            ctx.set("Content-Length", "9");
          },
        ],
        [
          "HEAD",
          "/json",
          (ctx) => {
            ctx.body = { id: "pay_1" };
          },
        ],
      ],
      { methods: ["POST", "HEAD"] },
    );
    for (const path of ["/status", "/bypass", "/length", "/json"]) {
      const key = newId("head");
      const head = () =>
        fetch(`${served?.url}${path}`, { method: "HEAD", headers: { "x-api-key": "a", "idempotency-key": key } });
      const first = await head();
      const replay = await head();
      expect(replay.headers.get("idempotent-replayed"), path).toBe("true");
      const framing = (response: Response) => [
        response.headers.get("content-type"),
        response.headers.get("content-length"),
      ];
      expect(framing(replay), path).toEqual(framing(first));
    }
    expect(world.calls).toBe(4);
  });
});

/** Sends a keyed request, reads the first chunk of the answer, then closes the connection: its status. */
function sendAndLeave(path: string, key: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const headers = { "content-type": "application/json", "x-api-key": "client-a", "idempotency-key": key };
    const request = httpRequest(`${served?.url}${path}`, { method: "POST", headers, agent: false }, (response) => {
      response.once("data", () => {
        request.destroy();
        resolve(response.statusCode ?? 0);
      });
    });
    request.on("error", reject);
    request.end("{}");
  });
}

function send(
  path: string,
  key: string | undefined,
  body: BodyInit | Uint8Array = "{}",
  headers: Record<string, string> = {},
  signal?: AbortSignal,
) {
  return fetch(`${served?.url}${path}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-api-key": "client-a",
      ...(key ? { "idempotency-key": key } : {}),
      ...headers,
    },
    body: body as BodyInit,
    ...(signal ? { signal } : {}),
  });
}

/** Status, every header a replay keeps, and the body's bytes. */
async function snapshot(response: Response) {
  return {
    status: response.status,
    type: response.headers.get("content-type"),
    location: response.headers.get("location"),
    body: Buffer.from(await response.arrayBuffer()),
  };
}

/** Sends the same request twice: the second must be a marked, byte-identical replay. */
async function expectReplayed(path: string, world: World, body: BodyInit = "{}") {
  const key = newId("key");
  const first = await send(path, key, body);
  const firstSnapshot = await snapshot(first);
  const calls = world.calls;
  const replay = await send(path, key, body);
  expect(replay.headers.get("idempotent-replayed")).toBe("true");
  const replaySnapshot = await snapshot(replay);
  expect(replaySnapshot).toEqual(firstSnapshot);
  expect(world.calls).toBe(calls);
  return firstSnapshot;
}

describe("response capture and replay", () => {
  it("the answer leaves only once the store has it: a retry sent the moment it arrives is replayed, even with a slow store", async () => {
    const world = await start(
      [
        [
          "POST",
          "/pay",
          (ctx) => {
            ctx.status = 201;
            ctx.body = { ok: true };
          },
        ],
      ],
      { store: new SlowStore() },
    );
    const key = newId("key");
    for (let i = 0; i < 3; i++) expect((await send("/pay", key)).status).toBe(201);
    expect(world.calls).toBe(1);
  });

  it("a Buffer body, binary and with its own type, is replayed byte for byte", async () => {
    const bytes = Buffer.from([0x00, 0xff, 0xfe, 0xc3, 0x28, 0x0a, 0x0d]);
    const world = await start([
      [
        "POST",
        "/files",
        (ctx) => {
          ctx.status = 201;
          ctx.type = "image/png";
          ctx.set("location", "/files/1");
          ctx.body = bytes;
        },
      ],
    ]);
    const first = await expectReplayed("/files", world);
    expect(first).toEqual({ status: 201, type: "image/png", location: "/files/1", body: bytes });
  });

  it("a string body keeps its exact text and Koa's content type", async () => {
    const world = await start([
      [
        "POST",
        "/page",
        (ctx) => {
          ctx.body = "<p>caf\u00e9 \u{1F600}</p>\n";
        },
      ],
    ]);
    const first = await expectReplayed("/page", world);
    expect([first.status, first.type, first.body.toString()]).toEqual([
      200,
      "text/html; charset=utf-8",
      "<p>caf\u00e9 \u{1F600}</p>\n",
    ]);
  });

  it("an object body is stored as the JSON Koa sends", async () => {
    const value = { id: "pay_1", amount: 1.5, nested: { list: [1, "two", null] }, text: "caf\u00e9" };
    const world = await start([
      [
        "POST",
        "/payments",
        (ctx) => {
          ctx.body = value;
        },
      ],
    ]);
    const first = await expectReplayed("/payments", world);
    expect([first.type, first.body.toString()]).toEqual(["application/json; charset=utf-8", JSON.stringify(value)]);
  });

  it("a status without a body is replayed as Koa answers it (status text; 204 empty)", async () => {
    const world = await start([
      [
        "POST",
        "/created",
        (ctx) => {
          ctx.status = 201;
        },
      ],
      [
        "POST",
        "/empty",
        (ctx) => {
          ctx.status = 204;
        },
      ],
    ]);
    const created = await expectReplayed("/created", world);
    expect([created.status, created.type, created.body.toString()]).toEqual([
      201,
      "text/plain; charset=utf-8",
      "Created",
    ]);
    const empty = await expectReplayed("/empty", world);
    expect([empty.status, empty.body.length]).toEqual([204, 0]);
  });

  it("a request with a key the handler answers 4xx is stored too (default cache policy)", async () => {
    const world = await start([
      [
        "POST",
        "/payments",
        (ctx) => {
          ctx.status = 402;
          ctx.body = { error: "card declined" };
        },
      ],
    ]);
    expect((await expectReplayed("/payments", world)).status).toBe(402);
  });
});

describe("streams and bypasses pass through uncached, the key released", () => {
  const released = (world: World) =>
    world.events.filter((e) => e.type === "idempotency.released").map((e) => ("reason" in e ? e.reason : ""));

  it("a Node stream body is sent whole, not stored; the retry runs the handler again", async () => {
    const world = await start([
      [
        "POST",
        "/export",
        (ctx) => {
          ctx.type = "text/csv";
          ctx.body = Readable.from(["a,b\n", "1,2\n", "3,4\n"]);
        },
      ],
    ]);
    const key = newId("key");
    for (const _ of [1, 2]) {
      const response = await send("/export", key);
      expect(response.status).toBe(200);
      expect(response.headers.get("idempotent-replayed")).toBeNull();
      expect(await response.text()).toBe("a,b\n1,2\n3,4\n");
    }
    expect(world.calls).toBe(2);
    expect(released(world)).toEqual(["streamed", "streamed"]);
  });

  it("a streamed body the app also ends itself: its end still waits for the store, so the retry runs again", async () => {
    const world = await start(
      [
        [
          "POST",
          "/export",
          (ctx) => {
            const body = Readable.from(["a,b\n", "1,2\n"]);
            // The app's own "make sure it is ended": it runs before the end of Koa's pipe.
            body.once("end", () => ctx.res.end());
            ctx.type = "text/csv";
            ctx.body = body;
          },
        ],
      ],
      { store: new SlowStore() },
    );
    const key = newId("key");
    for (const _ of [1, 2]) {
      const response = await send("/export", key);
      expect([response.status, await response.text()]).toEqual([200, "a,b\n1,2\n"]);
    }
    expect(world.calls).toBe(2);
    expect(released(world)).toEqual(["streamed", "streamed"]);
  });

  // Koa 2 has no web bodies (it would send this one as the JSON `{}`): run where Koa sends them.
  it.runIf(sendsWebBodies)("a web ReadableStream body likewise (Koa 3+: Koa 2 has no web stream bodies)", async () => {
    const world = await start([
      [
        "POST",
        "/export",
        (ctx) => {
          ctx.body = new Response("streamed").body;
        },
      ],
    ]);
    const key = newId("key");
    expect(await (await send("/export", key)).text()).toBe("streamed");
    expect(await (await send("/export", key)).text()).toBe("streamed");
    expect(released(world)).toEqual(["streamed", "streamed"]);
  });

  it("a stream body still being produced keeps the key claimed: a retry meanwhile is in flight, released once it has been sent", async () => {
    let finishFirst = () => {};
    // Koa pipes the body once every middleware has returned; the first one's work goes on.
    const world = await start([
      exportRoute((body) => {
        body.write("one,");
        finishFirst = () => body.end("two");
      }, "again"),
    ]);
    const key = newId("key");
    const first = await send("/export", key);
    expect(first.status).toBe(200);
    const meanwhile = await send("/export", key);
    expect(meanwhile.status).toBe(409);
    expect((await meanwhile.json()).code).toBe("request_in_flight");
    expect(world.calls).toBe(1);
    expect(released(world)).toEqual([]);
    finishFirst();
    expect(await first.text()).toBe("one,two");
    await vi.waitFor(() => expect(released(world)).toEqual(["streamed"]));
    const retry = await send("/export", key);
    expect([retry.status, await retry.text()]).toEqual([200, "again"]);
    expect(world.calls).toBe(2);
    expect(released(world)).toEqual(["streamed", "streamed"]);
  });

  it.each([
    ["the client leaves before its end", "leave"],
    ["the stream fails", "fail"],
  ])("a stream body that stops because %s: the key is released then, the retry runs", async (_name, how) => {
    const world = await start([
      exportRoute((body) => {
        body.write("one,");
        if (how === "fail") setTimeout(() => body.destroy(new Error("the export failed")), 20);
      }, "all"),
    ]);
    const key = newId("key");
    expect(await sendAndLeave("/export", key)).toBe(200);
    await vi.waitFor(() => expect(released(world)).toEqual(["streamed"]));
    const retry = await send("/export", key);
    expect([retry.status, await retry.text()]).toEqual([200, "all"]);
    expect(world.calls).toBe(2);
  });

  it("ctx.respond = false, then ctx.res.pipe-d a stream: passes through uncached", async () => {
    const world = await start([
      [
        "POST",
        "/piped",
        (ctx) => {
          ctx.respond = false;
          ctx.res.writeHead(200, { "content-type": "text/csv" });
          Readable.from(["a,b\n", "1,2\n"]).pipe(ctx.res);
        },
      ],
    ]);
    const key = newId("key");
    for (const _ of [1, 2]) expect(await (await send("/piped", key)).text()).toBe("a,b\n1,2\n");
    expect(world.calls).toBe(2);
    expect(released(world)).toEqual(["streamed", "streamed"]);
  });

  it.each([
    [
      "ctx.respond = false with res.write + res.end",
      (ctx: Context) => {
        ctx.respond = false;
        for (let i = 0; i < 4; i++) ctx.res.write("x".repeat(512));
        ctx.res.end();
      },
    ],
    [
      "ctx.body set whole",
      (ctx: Context) => {
        ctx.body = "x".repeat(2048);
      },
    ],
  ])("%s past the store's maxRecordBytes: passes through uncached, released as too_large", async (_name, answer) => {
    const world = await start([["POST", "/big", answer]], { store: new MemoryStore({ maxRecordBytes: 1024 }) });
    const key = newId("key");
    for (const _ of [1, 2]) expect((await (await send("/big", key)).text()).length).toBe(2048);
    expect(world.calls).toBe(2);
    expect(released(world)).toEqual(["too_large", "too_large"]);
  });

  it("ctx.respond = false, a stream piped into ctx.res, and the client leaves: the key is released, the retry runs", async () => {
    const world = await start([
      [
        "POST",
        "/piped",
        (ctx, w) => {
          ctx.respond = false;
          ctx.res.writeHead(200, { "content-type": "text/plain" });
          const source = new PassThrough();
          source.pipe(ctx.res);
          // The first answer never ends by itself: only the client leaving stops it.
          if (w.calls === 1) source.write("one,");
          else source.end("all");
        },
      ],
    ]);
    const key = newId("key");
    expect(await sendAndLeave("/piped", key)).toBe(200);
    await vi.waitFor(() => expect(released(world)).toEqual(["streamed"]));
    const retry = await send("/piped", key);
    expect([retry.status, await retry.text()]).toEqual([200, "all"]);
    expect(world.calls).toBe(2);
  });
});

describe("the app writing ctx.res itself", () => {
  const released = (world: World) =>
    world.events.filter((e) => e.type === "idempotency.released").map((e) => ("reason" in e ? e.reason : ""));

  it("ctx.respond = false: the end goes out only once the store has the record, so a retry sent the moment it arrives is replayed", async () => {
    const seen: Array<{ headersSent: boolean; setHeader: unknown }> = [];
    const world = await start(
      [
        [
          "POST",
          "/raw",
          (ctx) => {
            ctx.respond = false;
            ctx.res.statusCode = 201;
            ctx.res.setHeader("content-type", "text/plain");
            ctx.res.end("done");
            // The app sees its response ended, as without Interlock: headers fixed, a second end harmless.
            let setHeader: unknown;
            try {
              ctx.res.setHeader("x-late", "1");
            } catch (error) {
              setHeader = (error as NodeJS.ErrnoException).code;
            }
            seen.push({ headersSent: ctx.res.headersSent, setHeader });
            ctx.res.end();
          },
        ],
      ],
      { store: new SlowStore(150) },
    );
    const key = newId("key");
    const first = await send("/raw", key);
    expect([first.status, first.headers.get("content-length"), await first.text()]).toEqual([201, "4", "done"]);
    const retry = await send("/raw", key);
    expect([retry.status, retry.headers.get("idempotent-replayed"), await retry.text()]).toEqual([201, "true", "done"]);
    expect(world.calls).toBe(1);
    expect(seen).toEqual([{ headersSent: true, setHeader: "ERR_HTTP_HEADERS_SENT" }]);
  });

  it("ctx.respond = false, and the app throws after its end: the end goes out once the key is released, the retry runs", async () => {
    const world = await start(
      [
        [
          "POST",
          "/thrown",
          (ctx, w) => {
            ctx.respond = false;
            ctx.res.statusCode = 201;
            ctx.res.end(`call ${w.calls}`);
            if (w.calls === 1) throw new Error("failed after answering");
          },
        ],
      ],
      { store: new SlowStore(150) },
    );
    const key = newId("key");
    const first = await send("/thrown", key);
    expect([first.status, await first.text()]).toEqual([201, "call 1"]);
    const retry = await send("/thrown", key);
    expect([retry.status, retry.headers.get("idempotent-replayed"), await retry.text()]).toEqual([201, null, "call 2"]);
    expect(released(world)).toEqual(["error"]);
  });

  it("ctx.respond = false, and the app destroys the response mid-way: a failed handler, the key released at once, the retry runs", async () => {
    const world = await start(
      [
        [
          "POST",
          "/partial",
          (ctx, w) => {
            ctx.respond = false;
            ctx.res.statusCode = 200;
            if (w.calls > 1) {
              ctx.res.end("all");
              return;
            }
            ctx.res.write("partial");
            setTimeout(() => ctx.res.destroy(), 20);
          },
        ],
      ],
      // Renewed every 200 ms while the key is held: only a release lets the retry in.
      { store: new MemoryStore(), lockTtlMs: 600 },
    );
    const key = newId("key");
    await send("/partial", key)
      .then((response) => response.text())
      .catch(() => {}); // the connection is reset
    await vi.waitFor(() => expect(released(world)).toEqual(["error"]));
    const retry = await send("/partial", key);
    expect([retry.status, retry.headers.get("idempotent-replayed"), await retry.text()]).toEqual([200, null, "all"]);
    expect(world.calls).toBe(2);
  });

  it("ctx.respond = false, and the app destroys the response after its end: the end went out, recorded and replayed", async () => {
    const world = await start(
      [
        [
          "POST",
          "/ended",
          (ctx) => {
            ctx.respond = false;
            ctx.res.statusCode = 201;
            ctx.res.end("done");
            ctx.res.destroy();
          },
        ],
      ],
      { store: new SlowStore(150) },
    );
    const key = newId("key");
    await send("/ended", key)
      .then((response) => response.text())
      .catch(() => {});
    await vi.waitFor(() => expect(world.events.map((e) => e.type)).toContain("idempotency.completed"));
    const retry = await send("/ended", key);
    expect([retry.status, retry.headers.get("idempotent-replayed"), await retry.text()]).toEqual([201, "true", "done"]);
    expect(world.calls).toBe(1);
  });

  it("ctx.respond = false, and the client leaves mid-body while the route still writes: recorded once the route ends it, the retry replayed", async () => {
    const world = await start([
      [
        "POST",
        "/slow-body",
        (ctx) => {
          ctx.respond = false;
          ctx.res.writeHead(200, { "content-type": "text/plain" });
          ctx.res.write("one,");
          setTimeout(() => {
            ctx.res.write("two,");
            ctx.res.end("three");
          }, 100);
        },
      ],
    ]);
    const key = newId("key");
    expect(await sendAndLeave("/slow-body", key)).toBe(200);
    await vi.waitFor(() => expect(world.events.map((e) => e.type)).toContain("idempotency.completed"));
    const retry = await send("/slow-body", key);
    expect([retry.status, retry.headers.get("idempotent-replayed"), await retry.text()]).toEqual([
      200,
      "true",
      "one,two,three",
    ]);
    expect(world.calls).toBe(1);
    expect(released(world)).toEqual([]);
  });

  // The lease is renewed every third of lockTtlMs while the route runs; a client that leaves an
  // answer the route began stops that, settling nothing: the claim lapses from two thirds of lockTtlMs to
  // lockTtlMs after the close.
  const cutOffLease = { lockTtlMs: 1_000, extendLease: { maxMs: 60_000 } };

  it("ctx.respond = false, and the client leaves mid-body, the route ending it 100 ms later: that end is recorded, the retry replays it, the route ran once", async () => {
    const world = await start(
      [
        [
          "POST",
          "/pay",
          (ctx) => {
            ctx.respond = false;
            const res = ctx.res;
            res.writeHead(201, { "content-type": "text/plain" });
            res.write("charged,");
            // The payment is made: the route goes on after its client left, and ends its answer.
            res.once("close", () => setTimeout(() => res.end("receipt"), 100));
          },
        ],
      ],
      cutOffLease,
    );
    const key = newId("key");
    expect(await sendAndLeave("/pay", key)).toBe(201);
    await vi.waitFor(() => expect(world.events.map((e) => e.type)).toContain("idempotency.completed"));
    const retry = await send("/pay", key);
    expect([retry.status, retry.headers.get("idempotent-replayed"), await retry.text()]).toEqual([
      201,
      "true",
      "charged,receipt",
    ]);
    expect(world.calls).toBe(1);
    expect(released(world)).toEqual([]);
  });

  it("ctx.respond = false, and the client leaves mid-body, the route never ending it (server-sent events): a retry is in flight until the lease lapses (lockTtlMs, not extendLease's maxMs), then runs", async () => {
    const world = await start(
      [
        [
          "POST",
          "/events",
          (ctx, w) => {
            ctx.respond = false;
            const res = ctx.res;
            res.writeHead(200, { "content-type": "text/event-stream" });
            if (w.calls > 1) return void res.end("data: again\n\n");
            res.write("data: first\n\n");
            const timer = setInterval(() => res.write("data: tick\n\n"), 10);
            res.once("close", () => clearInterval(timer));
          },
        ],
      ],
      cutOffLease,
    );
    const key = newId("key");
    expect(await sendAndLeave("/events", key)).toBe(200);
    expect((await send("/events", key)).status).toBe(409);
    await sleep(1_500);
    const retry = await send("/events", key);
    expect([retry.status, retry.headers.get("idempotent-replayed"), await retry.text()]).toEqual([
      200,
      null,
      "data: again\n\n",
    ]);
    expect(world.calls).toBe(2);
    expect(released(world)).toEqual([]);
  });

  it("ctx.respond = false, its header block alone sent before the client left (server-sent events before their first event), never ended: the retry runs once the lease lapses", async () => {
    const world = await start(
      [
        [
          "POST",
          "/events",
          (ctx, w) => {
            ctx.respond = false;
            const res = ctx.res;
            res.writeHead(200, { "content-type": "text/event-stream" });
            if (w.calls > 1) return void res.end("data: again\n\n");
            res.flushHeaders(); // the first event never comes
          },
        ],
      ],
      cutOffLease,
    );
    const key = newId("key");
    const leaving = new AbortController();
    const first = await send("/events", key, "{}", {}, leaving.signal); // the header block arrived
    expect(first.status).toBe(200);
    leaving.abort();
    await sleep(50);
    expect((await send("/events", key)).status).toBe(409);
    await sleep(1_500);
    const retry = await send("/events", key);
    expect([retry.status, await retry.text()]).toEqual([200, "data: again\n\n"]);
    expect(world.calls).toBe(2);
  });

  it("ctx.respond = false, and the route begins writing only once its client left, never ending it: the lease is renewed no more, the retry runs once it lapses", async () => {
    let arrived = () => {};
    const ran = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    const world = await start(
      [
        [
          "POST",
          "/late",
          (ctx, w) => {
            ctx.respond = false;
            const res = ctx.res;
            if (w.calls > 1) return void res.writeHead(201).end("again");
            arrived();
            // Closed already when it writes: the response emits no more "close".
            res.once("close", () => setTimeout(() => res.writeHead(200).write("too late"), 10));
          },
        ],
      ],
      cutOffLease,
    );
    const key = newId("key");
    const headers = { "content-type": "application/json", "x-api-key": "client-a", "idempotency-key": key };
    const leaving = httpRequest(`${served?.url}/late`, { method: "POST", headers, agent: false });
    leaving.on("error", () => {});
    leaving.end("{}");
    await ran;
    leaving.destroy();
    await sleep(1_600);
    const retry = await send("/late", key);
    expect([retry.status, await retry.text()]).toEqual([201, "again"]);
    expect(world.calls).toBe(2);
  });

  it("ctx.respond = false with res.write + res.end: recorded and replayed exactly, as written", async () => {
    const world = await start([
      [
        "POST",
        "/raw",
        async (ctx) => {
          ctx.respond = false;
          ctx.res.writeHead(201, { "content-type": "text/plain", location: "/raw/1" });
          ctx.res.write("part one, ");
          await sleep(10); // the end may come after the handler returned
          setTimeout(() => ctx.res.end(Buffer.from("part two")), 10);
        },
      ],
    ]);
    const first = await expectReplayed("/raw", world);
    expect(first).toEqual({
      status: 201,
      type: "text/plain",
      location: "/raw/1",
      body: Buffer.from("part one, part two"),
    });
  });
});

describe("headers flushed early (ctx.flushHeaders(), the server-sent events pattern)", () => {
  /** POST /events: flushes its headers, then sets `body()` as ctx.body. */
  const flushedThen = (body: () => string | Readable): [string, string, Handler] => [
    "POST",
    "/events",
    (ctx) => {
      ctx.status = 200;
      ctx.type = "text/event-stream";
      ctx.flushHeaders();
      ctx.body = body();
    },
  ];

  it("then a string ctx.body: answered as without Interlock, stored and replayed", async () => {
    const world = await start([flushedThen(() => "data: done\n\n")]);
    const first = await expectReplayed("/events", world);
    expect([first.status, Buffer.from(first.body).toString()]).toEqual([200, "data: done\n\n"]);
    expect(world.calls).toBe(1);
  });

  it("then a stream ctx.body: answered as without Interlock, passed through uncached, the key released once sent", async () => {
    const world = await start([flushedThen(() => Readable.from(["data: one\n\n", "data: two\n\n"]))]);
    const key = newId("key");
    for (const run of [1, 2]) {
      const answered = await send("/events", key);
      expect([answered.status, await answered.text()]).toEqual([200, "data: one\n\ndata: two\n\n"]);
      expect(world.calls).toBe(run);
    }
  });
});

describe("an answer begun on ctx.res and left for Koa to end (ctx.respond left on)", () => {
  it("is stored as it went out once Koa has ended it, not waited for before Koa can", async () => {
    const world = await start([
      [
        "POST",
        "/begun",
        (ctx) => {
          ctx.res.writeHead(201, { "content-type": "text/plain" });
          ctx.res.write("begun on ctx.res, ");
          ctx.body = "ended by Koa";
        },
      ],
    ]);
    const key = newId("key");
    const first = await send("/begun", key);
    expect([first.status, await first.text()]).toEqual([201, "begun on ctx.res, ended by Koa"]);
    await vi.waitFor(() => expect(world.events.map((e) => e.type)).toContain("idempotency.completed"));
    const replay = await send("/begun", key);
    expect([replay.status, replay.headers.get("idempotent-replayed"), await replay.text()]).toEqual([
      201,
      "true",
      "begun on ctx.res, ended by Koa",
    ]);
    expect(world.calls).toBe(1);
  });
});

describe("the recording of ctx.res", () => {
  it("puts the same functions on every response, not a closure per response (V8 13+ charges ~12 µs a request for one)", async () => {
    const seen: Array<{ write: unknown; end: unknown }> = [];
    await start([
      [
        "POST",
        "/pay",
        async (ctx) => {
          seen.push({ write: ctx.res.write, end: ctx.res.end });
          ctx.status = 201;
          ctx.body = { ok: true };
        },
      ],
    ]);
    for (const key of ["k1", "k2"]) expect((await send("/pay", key)).status).toBe(201);
    const [first, second] = seen;
    expect(first?.end).not.toBe(ServerResponse.prototype.end); // recorded
    expect(second?.end).toBe(first?.end);
    expect(second?.write).toBe(first?.write);
  });
});

describe("failures", () => {
  it("a handler that throws releases the key: Koa answers 500 and the retry runs again", async () => {
    const world = await start([
      [
        "POST",
        "/payments",
        (ctx, w) => {
          if (w.calls === 1) throw new Error("database down");
          ctx.status = 201;
          ctx.body = { id: "pay_1" };
        },
      ],
    ]);
    const key = newId("key");
    const failed = await send("/payments", key);
    expect([failed.status, await failed.text()]).toEqual([500, "Internal Server Error"]);
    const retry = await send("/payments", key);
    expect([retry.status, retry.headers.get("idempotent-replayed")]).toEqual([201, null]);
    expect(world.calls).toBe(2);
    expect(world.events.some((e) => e.type === "idempotency.released" && e.reason === "error")).toBe(true);
  });

  it("a body cut off mid-way (the client went away) is 400 body_incomplete, reported; the key stays free", async () => {
    const world = await start([
      [
        "POST",
        "/payments",
        (ctx) => {
          ctx.status = 201;
          ctx.body = { ok: true };
        },
      ],
    ]);
    const key = newId("key");
    const headers = { "content-type": "application/json", "x-api-key": "client-a", "idempotency-key": key };
    await leaveMidBody(served!.url, "/payments", headers);
    await vi.waitFor(() => expect(world.events.map((e) => e.type)).toContain("idempotency.rejected"));
    expect(world.events).toEqual([expect.objectContaining({ type: "idempotency.rejected", code: "body_incomplete" })]);
    expect(world.calls).toBe(0);
    expect((await send("/payments", key)).status).toBe(201);
  });

  it("a dropped response is still recorded: the client's retry is a replay, not a second run", async () => {
    // The client drops its request once the route runs: a timer alone could fire, on a loaded
    // machine, before the request had reached the server at all.
    let entered = () => {};
    const inRoute = new Promise<void>((resolve) => {
      entered = resolve;
    });
    const world = await start([
      [
        "POST",
        "/slow",
        async (ctx, w) => {
          entered();
          await sleep(100);
          ctx.status = 201;
          ctx.body = { call: w.calls };
        },
      ],
    ]);
    const key = newId("key");
    const aborted = new AbortController();
    const dropped = fetch(`${served?.url}/slow`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": "client-a", "idempotency-key": key },
      body: "{}",
      signal: aborted.signal,
    });
    await inRoute;
    aborted.abort();
    await expect(dropped).rejects.toThrow();
    await vi.waitFor(() => expect(world.events.map((e) => e.type)).toContain("idempotency.completed"), 5_000);
    const retry = await send("/slow", key);
    expect([retry.status, await retry.json(), retry.headers.get("idempotent-replayed")]).toEqual([
      201,
      { call: 1 },
      "true",
    ]);
    expect(world.calls).toBe(1);
  });

  it("a body Koa cannot serialise (BigInt) releases the key instead of leaving it locked", async () => {
    const world = await start([
      [
        "POST",
        "/payments",
        (ctx, w) => {
          ctx.body = w.calls === 1 ? { amount: 1n } : { amount: 1 };
        },
      ],
    ]);
    const key = newId("key");
    expect((await send("/payments", key)).status).toBe(500);
    expect((await send("/payments", key)).status).toBe(200);
    expect(world.calls).toBe(2);
  });
});

describe("onError", () => {
  it("takes over refusals, not replays; leaving ctx alone lets Interlock's answer go out", async () => {
    const codes: string[] = [];
    await start(
      [
        [
          "POST",
          "/payments",
          (ctx) => {
            ctx.status = 201;
            ctx.body = { ok: true };
          },
        ],
      ],
      {
        onError: (decision, ctx) => {
          codes.push(decision.error.code);
          if (decision.error.code === "idempotency_key_invalid") return;
          ctx.status = decision.error.status;
          ctx.body = { failed: decision.error.code };
        },
      },
    );
    const key = newId("key");
    expect((await send("/payments", key, '{"a":1}')).status).toBe(201);
    expect((await send("/payments", key, '{"a":1}')).headers.get("idempotent-replayed")).toBe("true");
    const mismatch = await send("/payments", key, '{"a":2}');
    expect([mismatch.status, await mismatch.json()]).toEqual([422, { failed: "idempotency_key_mismatch" }]);
    const invalid = await send("/payments", '"a", "b"');
    expect(invalid.headers.get("content-type")).toBe("application/problem+json");
    expect([invalid.status, (await invalid.json()).code]).toEqual([400, "idempotency_key_invalid"]);
    expect(codes).toEqual(["idempotency_key_mismatch", "idempotency_key_invalid"]);
  });
});

describe("scoping", () => {
  it("the same idempotency() mounted app-wide and again on the route: one claim, the route's answer stored and replayed", async () => {
    const world: World = { events: [], calls: 0 };
    const app = new Koa();
    app.silent = true;
    const idempotent = idempotency({
      store: new MemoryStore(),
      principal: false,
      onEvent: (event) => world.events.push(event),
    });
    app.use(idempotent);
    app.use(
      route("POST", "/payments", idempotent, async (ctx: Context) => {
        world.calls++;
        ctx.status = 201;
        ctx.body = { paid: true };
      }),
    );
    served = await serve(app);
    const key = newId("key");
    const first = await send("/payments", key);
    expect([first.status, await first.json()]).toEqual([201, { paid: true }]);
    const retry = await send("/payments", key);
    expect([retry.status, retry.headers.get("idempotent-replayed"), await retry.json()]).toEqual([
      201,
      "true",
      { paid: true },
    ]);
    expect(world.calls).toBe(1);
    expect(world.events.map((e) => e.type)).toEqual([
      "idempotency.first",
      "idempotency.completed",
      "idempotency.replayed",
    ]);
  });

  it("by principal: the same key from another caller runs its own request", async () => {
    const setUser: Middleware = async (ctx, next) => {
      ctx.state.user = ctx.get("x-user");
      await next();
    };
    const world = await start(
      [
        [
          "POST",
          "/payments",
          (ctx, w) => {
            ctx.body = { n: w.calls };
          },
        ],
      ],
      { principal: (request) => request.context.state.user },
      [setUser],
    );
    const key = newId("key");
    const alice = await (await send("/payments", key, "{}", { "x-user": "alice" })).json();
    const bob = await (await send("/payments", key, "{}", { "x-user": "bob" })).json();
    const aliceAgain = await send("/payments", key, "{}", { "x-user": "alice" });
    expect([alice, bob]).toEqual([{ n: 1 }, { n: 2 }]);
    expect(aliceAgain.headers.get("idempotent-replayed")).toBe("true");
    expect(await aliceAgain.json()).toEqual({ n: 1 });
    expect(world.calls).toBe(2);
  });

  it("by route: the matched pattern (ctx._matchedRoute) when a router set it", async () => {
    const world = await start([
      [
        "POST",
        "/orders/:id",
        (ctx) => {
          ctx.body = { path: ctx.path };
        },
      ],
    ]);
    const key = newId("key");
    expect((await send("/orders/1", key)).status).toBe(200);
    // Same route, same key, another path: the fingerprint covers the path → 422.
    const other = await send("/orders/2", key);
    expect([other.status, (await other.json()).code]).toEqual([422, "idempotency_key_mismatch"]);
    expect(world.events.find((e) => e.type === "idempotency.first")).toMatchObject({ route: "/orders/:id" });
  });

  it("mounted before the router: by path; events name the pattern once the router matched it, never the path", async () => {
    const world: World = { events: [], calls: 0 };
    const app = new Koa();
    app.silent = true;
    app.use(idempotency({ store: new MemoryStore(), principal: false, onEvent: (event) => world.events.push(event) }));
    app.use(
      route("POST", "/orders/:id", async (ctx: Context) => {
        world.calls++;
        ctx.status = 201;
        ctx.body = { path: ctx.path };
      }),
    );
    served = await serve(app);
    const key = newId("key");
    // No pattern is known when the key is claimed: each path is its own scope.
    expect((await send("/orders/1", key)).status).toBe(201);
    expect((await send("/orders/2", key)).status).toBe(201);
    expect((await send("/orders/2", key)).headers.get("idempotent-replayed")).toBe("true");
    expect((await send("/orders/3", "a b")).status).toBe(400);
    expect(world.calls).toBe(2);
    // Until the route runs (and when it never does), events name no route: a path would be one metric series per URL.
    expect(world.events.map((e) => [e.type, "route" in e ? e.route : "none"])).toEqual([
      ["idempotency.first", "none"],
      ["idempotency.completed", "/orders/:id"],
      ["idempotency.first", "none"],
      ["idempotency.completed", "/orders/:id"],
      ["idempotency.replayed", "none"],
      ["idempotency.rejected", "none"],
    ]);
  });

  it("mounted before the router, a path in other case or with a trailing slash is the same scope: 422, not a second run", async () => {
    const world: World = { events: [], calls: 0 };
    const app = new Koa();
    app.silent = true;
    app.use(idempotency({ store: new MemoryStore(), principal: false }));
    app.use(async (ctx: Context) => {
      // As @koa/router routes by default: case-insensitive, a trailing slash optional.
      if (ctx.path.toLowerCase().replace(/\/$/, "") !== "/payments") return;
      world.calls++;
      ctx.status = 201;
      ctx.body = { paid: true };
    });
    served = await serve(app);
    const key = newId("key");
    expect((await send("/payments", key)).status).toBe(201);
    for (const variant of ["/Payments", "/payments/"]) expect((await send(variant, key)).status).toBe(422);
    expect(world.calls).toBe(1);
  });

  it("under a router.use() layer, whose matched route is its prefix's regular expression: by path, not one scope for all", async () => {
    const world: World = { events: [], calls: 0 };
    const app = new Koa();
    app.silent = true;
    app.use(async (ctx: Context, next) => {
      // What @koa/router sets for `router.use(middleware)` under prefix /v1.
      (ctx as Context & { _matchedRoute?: string })._matchedRoute = "/v1(?:\\/|$)";
      await next();
    });
    app.use(idempotency({ store: new MemoryStore(), principal: false, onEvent: (e) => world.events.push(e) }));
    app.use(async (ctx: Context) => {
      world.calls++;
      ctx.status = 201;
      ctx.body = { path: ctx.path };
    });
    served = await serve(app);
    const key = newId("key");
    expect((await send("/v1/payments", key)).status).toBe(201);
    expect((await send("/v1/refunds", key)).status).toBe(201);
    expect(world.calls).toBe(2);
    expect(world.events.filter((e) => e.type === "idempotency.first").map((e) => e.route)).toEqual([
      undefined,
      undefined,
    ]);
  });

  it("by path when no router matched; a custom route function overrides both", async () => {
    const twoRoutes: Array<[string, string, Handler]> = [
      [
        "POST",
        "/a",
        (ctx) => {
          ctx.body = "a";
        },
      ],
      [
        "POST",
        "/b",
        (ctx) => {
          ctx.body = "b";
        },
      ],
    ];
    await start(twoRoutes);
    const key = newId("key");
    expect([(await send("/a", key)).status, (await send("/b", key)).status]).toEqual([200, 200]);
    await served?.close();
    const shared = await start(twoRoutes, { route: () => "one-scope" });
    expect((await send("/a", key)).status).toBe(200);
    // One scope for both paths: the key is taken, and the path in the fingerprint differs.
    expect((await send("/b", key)).status).toBe(422);
    expect(shared.events.find((e) => e.type === "idempotency.first")).toMatchObject({ route: "one-scope" });
  });
});

describe("raw body", () => {
  it("the fingerprint is over the bytes: the same JSON re-spaced is another request (422)", async () => {
    const world = await start([
      [
        "POST",
        "/payments",
        (ctx) => {
          ctx.body = { got: ctx.request.body };
        },
      ],
    ]);
    const key = newId("key");
    const first = await send("/payments", key, '{"amount":5}');
    expect(await first.json()).toEqual({ got: { amount: 5 } });
    expect((await send("/payments", key, '{ "amount": 5 }')).status).toBe(422);
    expect(world.calls).toBe(1);
  });

  it("binary bodies are fingerprinted intact", async () => {
    const world = await start([
      [
        "POST",
        "/upload",
        (ctx) => {
          ctx.body = { size: ctx.request.rawBody?.length };
        },
      ],
    ]);
    const bytes = new Uint8Array([0xff, 0x00, 0xfe, 0x80]);
    const key = newId("key");
    const headers = { "content-type": "application/octet-stream" };
    expect((await send("/upload", key, bytes, headers)).status).toBe(200);
    const replay = await send("/upload", key, bytes, headers);
    expect([replay.headers.get("idempotent-replayed"), await replay.json()]).toEqual(["true", { size: 4 }]);
    expect((await send("/upload", key, new Uint8Array([0xff, 0x00, 0xfe, 0x81]), headers)).status).toBe(422);
    expect(world.calls).toBe(1);
  });

  it("a compressed body reaches ctx.request.body decoded (core's decodeContent), its charset decoded, as the body parsers do; one not decodable is refused before the handler", async () => {
    const world = await start(
      [
        [
          "POST",
          "/payments",
          (ctx) => {
            ctx.body = { got: ctx.request.body, raw: ctx.request.rawBody?.toString() };
          },
        ],
      ],
      { bodyLimit: 4096 },
    );
    const json = JSON.stringify({ amount: 5, note: "café" });
    const got = { got: { amount: 5, note: "café" }, raw: json };
    for (const [encoding, bytes] of [
      ["gzip", gzipSync(json)],
      ["deflate", deflateSync(json)],
    ] as const) {
      const answer = await send("/payments", newId("key"), bytes, { "content-encoding": encoding });
      expect([encoding, answer.status, await answer.json()]).toEqual([encoding, 200, got]);
    }
    // br where the runtime's DecompressionStream decodes brotli (not Node 20's): else 415, as on every adapter.
    const br = await send("/payments", newId("key"), brotliCompressSync(json), { "content-encoding": "br" });
    const brotli = br.status === 200;
    expect(brotli ? await br.json() : ((await br.json()) as { code: string }).code).toEqual(
      brotli ? got : "unsupported_content_encoding",
    );
    const latin1 = { "content-type": "application/json; charset=ISO-8859-1" };
    const decoded = await send("/payments", newId("key"), Buffer.from(json, "latin1"), latin1);
    expect(await decoded.json()).toMatchObject({ got: got.got });

    // 100 KB of spaces gzip to about 100 bytes: inflated, they pass the 4 KiB limit.
    const bomb = await send("/payments", newId("key"), gzipSync(Buffer.alloc(100_000, 0x20)), {
      "content-encoding": "gzip",
    });
    expect([bomb.status, ((await bomb.json()) as { code: string }).code]).toEqual([413, "body_too_large"]);
    const unknown = await send("/payments", newId("key"), json, { "content-encoding": "compress" });
    expect([unknown.status, ((await unknown.json()) as { code: string }).code]).toEqual([
      415,
      "unsupported_content_encoding",
    ]);
    const corrupt = await send("/payments", newId("key"), "not gzip at all", { "content-encoding": "gzip" });
    expect([corrupt.status, ((await corrupt.json()) as { code: string }).code]).toEqual([400, "body_not_decodable"]);
    expect(world.calls).toBe(brotli ? 4 : 3);
  });

  it("a body that inflates past bodyLimit: core's 413 body_too_large with its event, before a claim or the handler", async () => {
    const world = await start(
      [
        [
          "POST",
          "/payments",
          (ctx) => {
            ctx.status = 201;
            ctx.body = { got: ctx.request.body };
          },
        ],
      ],
      { bodyLimit: 4096 },
    );
    const key = newId("key");
    const bomb = gzipSync(JSON.stringify({ pad: "p".repeat(10_000) }));
    expect(bomb.length).toBeLessThan(4096);
    const gzip = { "content-encoding": "gzip", "x-request-id": "req-bomb" };
    for (const attempt of [1, 2]) {
      const refused = await send("/payments", key, bomb, gzip);
      expect([attempt, refused.status, refused.headers.get("content-type")]).toEqual([
        attempt,
        413,
        "application/problem+json",
      ]);
      expect(await refused.json()).toMatchObject({ code: "body_too_large", status: 413 });
    }
    expect(world.calls).toBe(0);
    const rejected = { type: "idempotency.rejected", method: "POST", route: "/payments", code: "body_too_large" };
    expect(world.events).toEqual([
      { ...rejected, correlationId: "req-bomb" },
      { ...rejected, correlationId: "req-bomb" },
    ]);
    // Nothing was claimed: the same key with a body within the limit runs.
    const small = await send("/payments", key, gzipSync('{"a":1}'), gzip);
    expect([small.status, await small.json()]).toEqual([201, { got: { a: 1 } }]);
    expect(world.calls).toBe(1);
  });

  it("requests the engine passes through are left unread, for the app's own body parser after it", async () => {
    const parser = { ran: 0 };
    const world = await start(
      [
        [
          "POST",
          "/payments",
          (ctx) => {
            ctx.body = { got: ctx.request.body, raw: ctx.request.rawBody?.toString() ?? null };
          },
        ],
      ],
      {},
      [],
      [bodyParser(parser)],
    );
    const unkeyed = await send("/payments", undefined, '{"amount":5}');
    expect(await unkeyed.json()).toEqual({ got: { amount: 5 }, raw: '{"amount":5}' }); // the parser's text
    expect(parser.ran).toBe(1);
    const keyed = await send("/payments", newId("key"), '{"amount":6}');
    expect(await keyed.json()).toEqual({ got: { amount: 6 }, raw: '{"amount":6}' }); // Interlock's bytes
    expect(parser.ran).toBe(1);
    expect(world.calls).toBe(2);
  });

  it("a body parser before idempotency() that keeps ctx.request.rawBody (@koa/bodyparser): its text is fingerprinted", async () => {
    const world = await start(
      [
        [
          "POST",
          "/payments",
          (ctx, w) => {
            ctx.status = 201;
            ctx.body = { n: w.calls, got: ctx.request.body };
          },
        ],
      ],
      {},
      [bodyParser()],
    );
    const key = newId("key");
    const first = await send("/payments", key, '{"amount":5}');
    expect([first.status, await first.json()]).toEqual([201, { n: 1, got: { amount: 5 } }]);
    const replay = await send("/payments", key, '{"amount":5}');
    expect([replay.headers.get("idempotent-replayed"), await replay.json()]).toEqual([
      "true",
      { n: 1, got: { amount: 5 } },
    ]);
    expect((await send("/payments", key, '{"amount":6}')).status).toBe(422);
    expect(world.calls).toBe(1);
  });

  it("a middleware that read the body and kept nothing: keyed requests → 500 body_not_raw; others pass", async () => {
    const drain: Middleware = async (ctx, next) => {
      (ctx.request as { body?: unknown }).body = JSON.parse((await readAll(ctx.req)).toString());
      await next();
    };
    await start(
      [
        [
          "POST",
          "/payments",
          (ctx) => {
            ctx.body = { got: ctx.request.body };
          },
        ],
      ],
      {},
      [drain],
    );
    const keyed = await send("/payments", newId("key"), '{"amount":5}');
    expect(keyed.status).toBe(500);
    expect(keyed.headers.get("content-type")).toBe("application/problem+json");
    const problem = await keyed.json();
    expect(problem).toMatchObject({ code: "body_not_raw", status: 500 });
    expect(problem.detail).toMatch(/mount idempotency\(\) before any body parser/);
    const unkeyed = await send("/payments", undefined, '{"amount":5}');
    expect(await unkeyed.json()).toEqual({ got: { amount: 5 } });
  });

  it("a body over bodyLimit → 413 body_too_large when it must be read; an unkeyed one is not read", async () => {
    const world = await start(
      [
        [
          "POST",
          "/payments",
          (ctx) => {
            ctx.body = {};
          },
        ],
      ],
      { bodyLimit: 64 },
    );
    const big = JSON.stringify({ pad: "x".repeat(100) });
    const response = await send("/payments", newId("key"), big);
    expect(response.status).toBe(413);
    expect(await response.json()).toMatchObject({ code: "body_too_large", status: 413 });
    expect(world.calls).toBe(0);
    expect((await send("/payments", undefined, big)).status).toBe(200);
  });

  it("text a body parser before idempotency() kept past bodyLimit → 413 body_too_large, the route not run", async () => {
    const world = await start(
      [
        [
          "POST",
          "/payments",
          (ctx) => {
            ctx.status = 201;
            ctx.body = {};
          },
        ],
      ],
      { bodyLimit: 64 },
      [bodyParser()],
    );
    const key = newId("key");
    const big = JSON.stringify({ pad: "x".repeat(100) });
    for (const _ of [1, 2]) {
      const response = await send("/payments", key, big);
      expect([response.status, await response.json()]).toEqual([
        413,
        expect.objectContaining({ code: "body_too_large" }),
      ]);
    }
    expect(world.calls).toBe(0);
    expect((await send("/payments", key, '{"amount":5}')).status).toBe(201); // nothing was claimed
  });

  it("bodyLimit defaults to 1 MiB (DEFAULT_REQUEST_BODY_LIMIT)", async () => {
    await start([
      [
        "POST",
        "/payments",
        (ctx) => {
          ctx.body = {};
        },
      ],
    ]);
    const pad = (size: number) => `{"p":"${"x".repeat(size - 8)}"}`;
    expect((await send("/payments", newId("key"), pad(1024 * 1024))).status).toBe(200);
    expect((await send("/payments", newId("key"), pad(1024 * 1024 + 1))).status).toBe(413);
  });

  it("a bad bodyLimit is refused when the middleware is made", () => {
    for (const bodyLimit of [0, -1, 1.5, Number.NaN]) {
      expect(() => idempotency({ store: new MemoryStore(), principal: false, bodyLimit })).toThrow(/bodyLimit/);
      expect(() =>
        webhook({ scheme: standardWebhooks, secret: SECRET, store: new MemoryStore(), maxBodyBytes: bodyLimit }),
      ).toThrow(/maxBodyBytes/);
    }
  });

  it("webhook() and idempotency() on one route share a single read", async () => {
    const app = new Koa();
    const store = new MemoryStore();
    let handled = 0;
    app.use(
      route(
        "POST",
        "/hooks",
        webhook({ scheme: standardWebhooks, secret: SECRET, store }),
        idempotency({ store, principal: false }),
        async (ctx: ParameterizedContext<WebhookState, RawBodyContext>) => {
          handled++;
          ctx.body = { id: ctx.state.webhook.id, type: (ctx.request.body as { type: string }).type };
        },
      ),
    );
    served = await serve(app);
    const d = await delivery('{"type":"invoice.paid"}');
    const key = newId("key");
    const first = await fetch(`${served.url}/hooks`, {
      method: "POST",
      headers: { ...d.headers, "idempotency-key": key },
      body: d.body as BodyInit,
    });
    expect([first.status, await first.json()]).toEqual([200, { id: d.id, type: "invoice.paid" }]);
    expect(handled).toBe(1);
  });
});
