/**
 * A kept-alive connection the server closes as the client reuses it (its idle timeout, a
 * restart): against a real scripted server on 127.0.0.1 that closes a connection when its
 * second request arrives, which is the race as the client meets it. The request is resent at
 * once, the breaker is not told, the budget not charged; one such failure per call. A test
 * waits a turn of the event loop (`tick`) before reusing a connection: undici frees one for the
 * next request only after the response's end is processed, so a call made right after another
 * goes out on a new connection.
 */
import { describe, expect, it } from "vitest";
import { CircuitOpenError, type ClientOptions, createClient } from "../src/index.js";
import { TestClock, tick } from "./helpers/clock.js";
import type { Step } from "./helpers/scripted-server.js";
import { clientOn, serve, settled } from "./helpers/setup.js";

const OK: Step = { status: 200, body: "ok" };
/** Waits that would show: full jitter at random 0.99 of a 1 s base. */
const slowBackoff: ClientOptions = { random: () => 0.99, backoff: { baseMs: 1000, capMs: 10_000 } };
const anyStale = (staleStep: Step) => (_index: number, request: { onConnection: number }) =>
  request.onConnection === 2 ? staleStep : OK;
/** What Node's fetch rejects with for a reset connection. */
const reset = () => new TypeError("fetch failed", { cause: { code: "ECONNRESET" } });
/** A client on a virtual clock whose fetch is `send` (a real server cannot reset every connection on cue). */
const clientOver = (send: () => Promise<Response>, options: ClientOptions = {}, clock = new TestClock()) =>
  clientOn({ ...options, fetch: clock.track(send) }, clock);

describe.each([
  ["closed (FIN: undici's 'other side closed')", { drop: true } as Step],
  ["reset (RST: ECONNRESET)", { reset: true } as Step],
])("a pooled connection the server %s as the request goes out", (_name, staleStep) => {
  it("is resent at once, unseen by a breaker that opens at one failure, unpaid by the budget", async () => {
    const server = await serve(anyStale(staleStep));
    const { client, clock, ofType } = clientOn({ ...slowBackoff, breaker: { failures: 1 } });
    expect(await (await client(server.url)).text()).toBe("ok");
    const tokens = client.budgets.get(server.url)?.tokens;
    await tick();

    const response = await client(server.url);
    expect(await response.text()).toBe("ok");
    expect(server.received.map((r) => r.onConnection)).toEqual([1, 2, 1]);
    expect(ofType("client.attempt").map((e) => [e.attempt, e.outcome])).toEqual([
      [1, "response"],
      [1, "network_error"],
      [2, "response"],
    ]);
    expect(ofType("client.retry")).toMatchObject([{ attempt: 1, delayMs: 0, backoffMs: 0, staleConnection: true }]);
    expect(clock.slept).toEqual([0]);
    expect(client.breakers.get(server.url)).toMatchObject({ state: "closed", consecutiveFailures: 0 });
    expect(client.budgets.get(server.url)?.tokens).toBe(tokens);
  });

  it("a POST keeps its one Idempotency-Key on the resend; without a key it is not resent", async () => {
    const server = await serve(anyStale(staleStep));
    const { client, ofType } = clientOn(slowBackoff);
    await (await client(server.url)).text();
    await tick();
    expect((await client(server.url, { method: "POST", body: "pay" })).status).toBe(200);
    const [, stale, resent] = server.received;
    expect(stale?.headers["idempotency-key"]).toMatch(/^[0-9a-f-]{36}$/);
    expect(resent?.headers["idempotency-key"]).toBe(stale?.headers["idempotency-key"]);
    expect(resent?.body).toBe("pay");

    const unkeyed = createClient({ idempotencyKey: false, breaker: false });
    await (await unkeyed(server.url)).text();
    await tick();
    const { error } = await settled(unkeyed(server.url, { method: "POST", body: "pay" }));
    expect(error).toBeInstanceOf(TypeError); // fetch's own network error, as fetch gives it
    expect(server.received.filter((r) => r.method === "POST")).toHaveLength(3);
    expect(ofType("client.give_up")).toEqual([]);
  });
});

describe("stale connections", () => {
  it("eight pooled connections closed at once (a server restart): eight calls all answered, the breaker still closed", async () => {
    // The first eight requests open eight connections; the second request on each is dropped.
    const server = await serve((index, request) =>
      index < 8 ? { hang: true } : request.connection <= 8 && request.onConnection === 2 ? { drop: true } : OK,
    );
    const { client, ofType } = clientOn({ ...slowBackoff, breaker: { failures: 5 } });
    const opening = Array.from({ length: 8 }, () => client(server.url).then((r) => r.text()));
    await server.receivedCount(8);
    for (let i = 0; i < 8; i++) server.release(OK);
    await Promise.all(opening);
    await tick();

    const answers = await Promise.all(Array.from({ length: 8 }, () => client(server.url).then((r) => r.text())));
    expect(answers).toEqual(Array(8).fill("ok"));
    expect(client.breakers.get(server.url)?.state).toBe("closed");
    const retries = ofType("client.retry");
    expect(retries).toHaveLength(8);
    expect(retries.every((event) => event.staleConnection && event.delayMs === 0)).toBe(true);
  });

  it("one per call: a second close in the same call counts, waits its backoff (counted from the real failures) and pays", async () => {
    // The call's first attempt meets the stale connection; its resend, on a new connection, a reset.
    let answered = 0;
    const server = await serve((_index, request) => {
      if (request.onConnection === 2) return { drop: true };
      return answered++ === 1 ? { reset: true } : OK;
    });
    const { client, clock, ofType } = clientOn({ ...slowBackoff, breaker: { failures: 2 } });
    await (await client(server.url)).text();
    const tokens = client.budgets.get(server.url)?.tokens as number;
    await tick();

    expect(await (await client(server.url)).text()).toBe("ok");
    expect(ofType("client.retry").map((e) => [e.attempt, e.staleConnection, e.delayMs])).toEqual([
      [1, true, 0],
      [2, false, 990], // 0.99 · 1000: the first failure's backoff, not the second's
    ]);
    expect(clock.slept).toEqual([0, 990]);
    expect(client.budgets.get(server.url)?.tokens).toBeCloseTo(tokens - 1 + 0.1, 6); // one retry paid, the success refunded
    // The reset was counted, then the success reset the count.
    expect(client.breakers.get(server.url)?.consecutiveFailures).toBe(0);
  });

  it("a fresh connection closed before any answer is the server failing: counted, and the breaker opens", async () => {
    const server = await serve([{ drop: true }]);
    const { client, clock } = clientOn({ ...slowBackoff, breaker: { failures: 1 } });
    const { error } = await settled(client(server.url));
    expect(error).toBeInstanceOf(CircuitOpenError);
    expect(server.received).toHaveLength(1);
    expect(clock.slept).toEqual([]);
  });

  it("counts as an attempt: with maxAttempts 1 fetch's error is handed back", async () => {
    const server = await serve(anyStale({ drop: true }));
    const { client } = clientOn({ maxAttempts: 1 });
    await (await client(server.url)).text();
    await tick();
    const { error } = await settled(client(server.url));
    expect(error).toMatchObject({ name: "RetryLimitError", attempts: 1 });
    expect(server.received).toHaveLength(2);
  });

  it.each([
    ["maxAttempts 1", { maxAttempts: 1 }, "GET"],
    ["a POST without a key", { idempotencyKey: false as const }, "POST"],
  ])(
    "a reset that is not resent (%s) counts: an origin resetting every connection still opens the circuit",
    async (_name, options, method) => {
      let calls = 0;
      const send = async (): Promise<Response> => {
        calls++;
        throw reset();
      };
      const { client } = clientOver(send, { ...options, breaker: { failures: 2 } });
      const url = "http://127.0.0.1:9/pay";
      for (let i = 0; i < 2; i++) await settled(client(url, { method, body: method === "GET" ? null : "x" }));
      expect(client.breakers.get(url)?.state).toBe("open");
      const { error } = await settled(client(url, { method, body: method === "GET" ? null : "x" }));
      expect(error).toBeInstanceOf(CircuitOpenError);
      expect(calls).toBe(2);
    },
  );

  it("a half-open probe that meets a stale connection and is resent stays the probe until it settles", async () => {
    const answers: Array<() => Response> = [
      () => {
        throw reset();
      },
      () => new Response("ok"),
    ];
    const send = async () => (answers.shift() ?? (() => new Response("ok")))();
    const { client, clock } = clientOver(send, { breaker: { failures: 1, halfOpenAfterMs: 1000 } });
    const url = "http://127.0.0.1:9/";
    client.breakers.restore({
      version: 1,
      breakers: {
        "http://127.0.0.1:9": { state: "open", consecutiveFailures: 1, openedAt: clock.now(), halfOpenInMs: 0 },
      },
    });
    expect(await (await client(url)).text()).toBe("ok");
    expect(client.breakers.get(url)?.state).toBe("closed");
  });

  it("the shapes taken for a stale connection, as each runtime's fetch rejects", async () => {
    const socketError = (bytesRead: number | undefined) =>
      new TypeError("fetch failed", {
        cause: Object.assign(new Error("other side closed"), {
          code: "UND_ERR_SOCKET",
          socket: bytesRead === undefined ? undefined : { bytesRead, bytesWritten: 170 },
        }),
      });
    const cases: Array<[string, unknown, boolean]> = [
      ["undici, a connection that had read answers", socketError(64), true],
      ["undici, a fresh connection", socketError(0), false],
      ["undici, no socket told", socketError(undefined), true],
      ["Node, a reset", reset(), true],
      ["Node, a write to a closed connection", new TypeError("fetch failed", { cause: { code: "EPIPE" } }), true],
      [
        "Bun, a reset",
        Object.assign(new Error("The socket connection was closed unexpectedly"), { code: "ECONNRESET" }),
        true,
      ],
      ["refused", new TypeError("fetch failed", { cause: { code: "ECONNREFUSED" } }), false],
      ["a plain TypeError", new TypeError("fetch failed"), false],
    ];
    for (const [name, failure, stale] of cases) {
      let calls = 0;
      const send = async () => {
        if (calls++ === 0) throw failure;
        return new Response("ok");
      };
      const { client, ofType } = clientOver(send, slowBackoff);
      expect(await (await client("http://127.0.0.1:9/")).text(), name).toBe("ok");
      expect([name, ofType("client.retry")[0]?.staleConnection]).toEqual([name, stale]);
    }
  });
});
