/**
 * Replay fidelity: a retry gets what the first client got (status, body bytes on the wire, the
 * replayable header lines), for the ways real Hono routes answer.
 */
import { MemoryStore } from "@interlock/core";
import { reusingStream } from "@interlock/test-harness/web-requests";
import { expectFaithfulReplay, type WireAnswer, wireRequest } from "@interlock/test-harness/wire";
import { type Context, Hono } from "hono";
import { describe, expect, it } from "vitest";
import { idempotency } from "../src/index.js";
import { start, uniqueId } from "./helpers.js";

/** Serves `route` on POST /things behind idempotency(); sends the same keyed POST twice: first answer and replay. */
async function firstAndReplay(
  route: (c: Context) => Response | Promise<Response>,
  app = new Hono(),
): Promise<[WireAnswer, WireAnswer]> {
  app.post("/things", idempotency({ store: new MemoryStore(), principal: false }), route);
  const url = await start(app);
  const headers = { "content-type": "application/json", "idempotency-key": uniqueId("key") };
  const first = await wireRequest(`${url}/things`, headers, "{}");
  const replay = await wireRequest(`${url}/things`, headers, "{}");
  return [first, replay];
}

const encoder = new TextEncoder();

describe("the bytes a route hands over", () => {
  it("c.body(buffer), then the route clears its buffer: the first client gets what is stored", async () => {
    const [first, replay] = await firstAndReplay((c) => {
      const bytes = encoder.encode("first bytes");
      const response = c.body(bytes, 201, { "content-type": "text/plain" });
      bytes.fill(0x78);
      return response;
    });
    expect(first.raw.toString()).toBe("first bytes");
    expectFaithfulReplay(first, replay);
  });

  it("c.body(buffer) with two Set-Cookie lines, then the route clears its buffer: the first client gets what is stored", async () => {
    const [first, replay] = await firstAndReplay((c) => {
      c.header("set-cookie", "a=1", { append: true });
      c.header("set-cookie", "b=2", { append: true });
      const bytes = encoder.encode("first bytes");
      const response = c.body(bytes, 201, { "content-type": "text/plain" });
      bytes.fill(0x78);
      return response;
    });
    expect(first.raw.toString()).toBe("first bytes");
    expect(first.headers["set-cookie"]).toEqual(["a=1", "b=2"]); // each its own line
    expectFaithfulReplay(first, replay);
  });

  it("a Response whose stream enqueues one Uint8Array again after changing it, under an error mapper that replaces c.res", async () => {
    const app = new Hono();
    // A middleware before idempotency() that sets c.res (here to itself): the recording reads ahead.
    app.use(async (c, next) => {
      await next();
      c.res = new Response(c.res.body, c.res);
    });
    const [first, replay] = await firstAndReplay(
      () => new Response(reusingStream(), { headers: { "content-type": "text/plain" } }),
      app,
    );
    expect(first.raw.toString()).toBe("first;again;");
    expectFaithfulReplay(first, replay);
  });

  it("repeated headers and a Content-Encoding of the route's own; both Set-Cookie lines reach the first client, none is replayed", async () => {
    const { gzipSync } = await import("node:zlib");
    const [first, replay] = await firstAndReplay((c) => {
      c.header("link", "</a>; rel=next", { append: true });
      c.header("link", "</b>; rel=prev", { append: true });
      c.header("vary", "Accept-Encoding");
      c.header("set-cookie", "session=first-request-only", { append: true });
      c.header("set-cookie", "theme=dark", { append: true });
      c.header("content-encoding", "gzip");
      return c.body(gzipSync('{"ok":true}'), 201, { "content-type": "application/json" });
    });
    expectFaithfulReplay(first, replay);
    expect(first.decoded.toString()).toBe('{"ok":true}');
    // Both cookies reach the first client: a header record would keep only the last one.
    expect(first.headers["set-cookie"]).toEqual(["session=first-request-only", "theme=dark"]);
    expect(replay.headers["set-cookie"]).toBeUndefined();
  });
});
