/**
 * Replay fidelity: a retry gets what the first client got (status, body bytes on the wire, the
 * replayable header lines), for Responses real handlers return.
 */
import { MemoryStore } from "@interlock/core";
import { reusingStream } from "@interlock/test-harness/web-requests";
import { expectFaithfulReplay, type WireAnswer, wireRequest } from "@interlock/test-harness/wire";
import { describe, expect, it } from "vitest";
import { withIdempotency } from "../src/index.js";
import { start, uniqueId } from "./helpers.js";

/** Serves `handler` behind withIdempotency(); sends the same keyed POST twice: first answer and replay. */
async function firstAndReplay(handler: () => Response | Promise<Response>): Promise<[WireAnswer, WireAnswer]> {
  const url = await start(withIdempotency({ store: new MemoryStore(), principal: false }, handler));
  const headers = { "content-type": "application/json", "idempotency-key": uniqueId("key") };
  const first = await wireRequest(`${url}/things`, headers, "{}");
  const replay = await wireRequest(`${url}/things`, headers, "{}");
  return [first, replay];
}

describe("the bytes a handler hands over", () => {
  it("a stream that enqueues one Uint8Array again after changing it: stored as each chunk was sent", async () => {
    const [first, replay] = await firstAndReplay(
      () => new Response(reusingStream(), { headers: { "content-type": "text/plain" } }),
    );
    expect(first.raw.toString()).toBe("first;again;");
    expectFaithfulReplay(first, replay);
  });

  it("repeated headers, a Content-Encoding of the handler's own; Set-Cookie is not replayed", async () => {
    const { gzipSync } = await import("node:zlib");
    const [first, replay] = await firstAndReplay(() => {
      const headers = new Headers({ "content-type": "application/json", "content-encoding": "gzip" });
      headers.append("link", "</a>; rel=next");
      headers.append("link", "</b>; rel=prev");
      headers.append("vary", "Accept-Encoding");
      headers.append("set-cookie", "session=first-request-only");
      headers.append("set-cookie", "theme=dark");
      return new Response(gzipSync('{"ok":true}'), { status: 201, headers });
    });
    expectFaithfulReplay(first, replay);
    expect(first.decoded.toString()).toBe('{"ok":true}');
    expect(replay.headers["set-cookie"]).toBeUndefined();
  });
});
