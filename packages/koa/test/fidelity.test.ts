/**
 * Replay fidelity: a retry gets what the first client got (status, body bytes on the wire, the
 * replayable header lines), for handlers and middleware real Koa apps have.
 */
import { MemoryStore } from "@interlock/core";
import { expectFaithfulReplay, type WireAnswer, wireRequest } from "@interlock/test-harness/wire";
import Koa, { type Middleware } from "koa";
import json from "koa-json";
import { afterEach, describe, expect, it } from "vitest";
import { idempotency } from "../src/index.js";
import { type Served, serve } from "./serve.js";
import { newId } from "./support.js";

let served: Served | undefined;
afterEach(async () => {
  await served?.close();
  served = undefined;
});

/** An app: `outer` middleware, idempotency(), `inner` middleware, then `handler`; `calls` counts its runs. */
async function start(handler: Middleware, outer: Middleware[] = [], inner: Middleware[] = []) {
  const app = new Koa();
  app.silent = true;
  for (const middleware of outer) app.use(middleware);
  app.use(idempotency({ store: new MemoryStore(), principal: false }));
  for (const middleware of inner) app.use(middleware);
  const calls = { count: 0 };
  app.use((ctx, next) => {
    calls.count++;
    return handler(ctx, next);
  });
  served = await serve(app);
  return calls;
}

/** Sends the same keyed POST twice: the first answer and its replay, as they came over the wire. */
async function firstAndReplay(): Promise<[WireAnswer, WireAnswer]> {
  const headers = { "content-type": "application/json", "idempotency-key": newId("key") };
  const first = await wireRequest(`${served?.url}/things`, headers, "{}");
  const replay = await wireRequest(`${served?.url}/things`, headers, "{}");
  return [first, replay];
}

/** A value whose JSON changes each time it is serialised, as a `toJSON` reading a clock or a counter does. */
class Ticking {
  #calls = 0;
  toJSON() {
    this.#calls++;
    return `serialised ${this.#calls} time(s)`;
  }
}

describe("an object body is serialised once: the bytes sent are the bytes stored", () => {
  it("a toJSON that is not pure (a counter, a clock) is replayed as the first client got it", async () => {
    await start((ctx) => {
      ctx.status = 201;
      ctx.body = { id: "thing_1", at: new Ticking() };
    });
    const [first, replay] = await firstAndReplay();
    expect(first.raw.toString()).toBe('{"id":"thing_1","at":"serialised 1 time(s)"}');
    expectFaithfulReplay(first, replay);
  });

  it("an object body whose Content-Type the handler removed goes out, and is replayed, without one", async () => {
    await start((ctx) => {
      ctx.body = { id: "thing_1" };
      ctx.remove("Content-Type");
    });
    const [first, replay] = await firstAndReplay();
    expect([first.headers["content-type"], first.raw.toString()]).toEqual([undefined, '{"id":"thing_1"}']);
    expectFaithfulReplay(first, replay);
  });

  it("a body JSON cannot serialise (a function) is Koa's 500, not stored: the retry runs again", async () => {
    const calls = await start((ctx) => {
      ctx.body = () => "not JSON";
    });
    const [first, retry] = await firstAndReplay();
    expect([first.status, retry.status, retry.headers["idempotent-replayed"], calls.count]).toEqual([
      500,
      500,
      undefined,
      2,
    ]);
  });
});

/** Wraps the body as `{ data: body }` after the handler, recording the type of body it was given. */
function wrapInData(seen: string[]): Middleware {
  return async (ctx, next) => {
    await next();
    seen.push(Buffer.isBuffer(ctx.body) ? "Buffer" : typeof ctx.body);
    ctx.body = { data: ctx.body };
  };
}

describe("middleware that rewrites the body after `await next()`", () => {
  it("koa-json before idempotency(): it sees the stored bytes, first and replay alike (no pretty print)", async () => {
    await start(
      (ctx) => {
        ctx.body = { id: "thing_1" };
      },
      [json()],
    );
    const [first, replay] = await firstAndReplay();
    expect(first.raw.toString()).toBe('{"id":"thing_1"}');
    expectFaithfulReplay(first, replay);
  });

  it("koa-json after idempotency(): its pretty print is what is stored and replayed", async () => {
    await start(
      (ctx) => {
        ctx.body = { id: "thing_1" };
      },
      [],
      [json()],
    );
    const [first, replay] = await firstAndReplay();
    expect(first.raw.toString()).toBe('{\n  "id": "thing_1"\n}');
    expectFaithfulReplay(first, replay);
  });

  it("a wrapper after idempotency() is stored and replayed as it wrapped", async () => {
    const seen: string[] = [];
    const calls = await start(
      (ctx) => {
        ctx.body = "plain text";
      },
      [],
      [wrapInData(seen)],
    );
    const [first, replay] = await firstAndReplay();
    expect([first.raw.toString(), seen, calls.count]).toEqual(['{"data":"plain text"}', ["string"], 1]);
    expectFaithfulReplay(first, replay);
  });

  it("a wrapper before idempotency() is given the stored bytes as a Buffer: on every replay, and on a first answer that was an object", async () => {
    const seen: string[] = [];
    let body: unknown = { id: "thing_1" };
    await start(
      (ctx) => {
        ctx.body = body;
      },
      [wrapInData(seen)],
    );
    await firstAndReplay();
    body = "plain text";
    await firstAndReplay();
    expect(seen).toEqual(["Buffer", "Buffer", "string", "Buffer"]);
  });
});

describe("bodies and headers as Koa infers or is told them", () => {
  it("a string that looks like HTML, its type set after the body, a Length set by hand", async () => {
    await start((ctx) => {
      ctx.body = "  <p>caf\u00e9</p>";
      ctx.type = "text/x-fragment";
      ctx.length = Buffer.byteLength(ctx.body);
    });
    const [first, replay] = await firstAndReplay();
    expect(first.headers["content-type"]).toBe("text/x-fragment; charset=utf-8");
    expectFaithfulReplay(first, replay);
  });

  it("ctx.respond = false: a buffer written to ctx.res, then reused once it went out, is stored as it was sent", async () => {
    await start(async (ctx) => {
      ctx.respond = false;
      ctx.res.writeHead(201, { "content-type": "text/plain" });
      const buffer = Buffer.from("first bytes");
      ctx.res.write(buffer);
      await new Promise((resolve) => setImmediate(resolve)); // the write has reached the socket
      buffer.fill("x");
      ctx.res.end();
    });
    const [first, replay] = await firstAndReplay();
    expect(first.raw.toString()).toBe("first bytes");
    expectFaithfulReplay(first, replay);
  });

  it("ctx.respond = false: the end's buffer, reused once end() returned (the end held for the store), goes out and is stored as ended", async () => {
    await start(async (ctx) => {
      ctx.respond = false;
      ctx.res.statusCode = 201;
      ctx.res.setHeader("content-type", "text/plain");
      const buffer = Buffer.from("ended bytes");
      ctx.res.end(buffer);
      buffer.fill("x");
    });
    const [first, replay] = await firstAndReplay();
    expect([first.raw.toString(), first.headers["content-length"]]).toEqual(["ended bytes", "11"]);
    expectFaithfulReplay(first, replay);
  });

  it("an answer written to ctx.res without ctx.respond = false is stored as sent, not as Koa's untouched 404", async () => {
    await start(async (ctx) => {
      ctx.res.writeHead(201, { "content-type": "text/plain" });
      ctx.res.end("raw answer");
    });
    const [first, replay] = await firstAndReplay();
    expect([first.status, first.raw.toString()]).toEqual([201, "raw answer"]);
    expectFaithfulReplay(first, replay);
  });

  it("ctx.body = null, then an explicit 200: an empty answer without a Content-Type, replayed as such", async () => {
    await start(async (ctx) => {
      ctx.body = null;
      ctx.status = 200;
    });
    const [first, replay] = await firstAndReplay();
    expect([first.status, first.headers["content-type"], first.raw.length]).toEqual([200, undefined, 0]);
    expectFaithfulReplay(first, replay);
  });

  it("repeated headers keep their lines and order; Set-Cookie and Date are not replayed", async () => {
    await start((ctx) => {
      ctx.set("Link", ["</a>; rel=next", "</b>; rel=prev"]);
      ctx.set("Vary", "Accept");
      ctx.append("Vary", "Accept-Language");
      ctx.cookies.set("session", "first-request-only");
      ctx.body = { ok: true };
    });
    const [first, replay] = await firstAndReplay();
    expectFaithfulReplay(first, replay);
    expect(first.headers["set-cookie"]).toBeDefined();
    expect(replay.headers["set-cookie"]).toBeUndefined();
  });
});
