/**
 * The Responses the wrapper makes, built by the runtime's own `Response`: this file serves
 * nothing over HTTP, so it never loads @hono/node-server, whose lighter global `Response` (the
 * one the other files get) checks less: it takes a body for a 204, as Bun, Deno, Workers and
 * Node's own `Response` do not.
 */
import { MemoryStore } from "@interlock/core";
import { describe, expect, it } from "vitest";
import { toResponse, withIdempotency } from "../src/index.js";

const keyed = (key: string) =>
  new Request("http://127.0.0.1/payments", { method: "POST", headers: { "idempotency-key": key }, body: "{}" });

describe("on the runtime's own Response", () => {
  it("a replayed 204 goes out with no body, as does any empty answer: the runtime refuses even an empty one", async () => {
    const handle = withIdempotency(
      { store: new MemoryStore(), principal: false },
      async () => new Response(null, { status: 204 }),
    );
    await handle(keyed("no-content"));
    const replay = await handle(keyed("no-content"));
    expect([replay.status, replay.headers.get("idempotent-replayed"), replay.body]).toEqual([204, "true", null]);
    expect(toResponse({ status: 304, headers: [], body: new Uint8Array(0) }).body).toBeNull();
  });

  it("the answer rebuilt around its recording keeps its status text and every header line, each Set-Cookie", async () => {
    const handle = withIdempotency({ store: new MemoryStore(), principal: false }, async () => {
      const headers = new Headers({ "content-type": "text/plain" });
      headers.append("set-cookie", "session=abc");
      headers.append("set-cookie", "theme=dark");
      return new Response("made", { status: 201, statusText: "Made It", headers });
    });
    const first = await handle(keyed("cookies"));
    expect([first.status, first.statusText, first.headers.getSetCookie(), await first.text()]).toEqual([
      201,
      "Made It",
      ["session=abc", "theme=dark"],
      "made",
    ]);
  });
});
