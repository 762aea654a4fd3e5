/** Every bad option is reported when the client is made, as an InterlockConfigError naming it. */
import { InterlockConfigError } from "@interlock/core";
import { describe, expect, it } from "vitest";
import { type ClientOptions, createClient, type FetchInput, MAX_DELAY_MS } from "../src/index.js";

const bad: Array<[string, unknown]> = [
  ["maxAttempts", { maxAttempts: 0 }],
  ["maxAttempts", { maxAttempts: 1.5 }],
  ["timeoutMs", { timeoutMs: 0 }],
  ["timeoutMs", { timeoutMs: -1 }],
  ["timeoutMs", { timeoutMs: MAX_DELAY_MS + 1 }],
  ["deadlineMs", { deadlineMs: Number.NaN }],
  ["deadlineMs", { deadlineMs: "30s" }],
  ["retryMethods", { retryMethods: ["GET", "NOT A METHOD"] }],
  ["retryMethods", { retryMethods: "GET" }],
  ["retryOn", { retryOn: true }],
  ["backoff.strategy", { backoff: { strategy: "linear" } }],
  ["backoff.baseMs", { backoff: { baseMs: -5 } }],
  ["backoff.capMs", { backoff: { baseMs: 500, capMs: 100 } }],
  ["maxRetryAfterMs", { maxRetryAfterMs: Number.POSITIVE_INFINITY }],
  ["idempotencyKey.headerName", { idempotencyKey: { headerName: "Idempotency Key" } }],
  ["idempotencyKey.methods", { idempotencyKey: { methods: [42] } }],
  ["idempotencyKey.generate", { idempotencyKey: { generate: "uuid" } }],
  ["budget.capacity", { budget: { capacity: 0 } }],
  ["budget.successRefund", { budget: { successRefund: 0.0001 } }],
  ["budget.retryCost", { budget: { capacity: 1, retryCost: 2 } }],
  ["breaker.mode", { breaker: { mode: "sometimes" } }],
  ["breaker.failures", { breaker: { failures: 0 } }],
  ["breaker.threshold", { breaker: { mode: "ratio", threshold: 1.5 } }],
  ["breaker.windowMs", { breaker: { mode: "ratio", windowMs: 5 } }],
  ["breaker.minimumCalls", { breaker: { mode: "ratio", minimumCalls: 0 } }],
  ["breaker.halfOpenAfterMs", { breaker: { halfOpenAfterMs: -1 } }],
  ["breaker.isFailure", { breaker: { isFailure: 500 } }],
  // A group of options is an object of them: a JavaScript caller's 5 or true is not read as {}.
  ["backoff", { backoff: 5 }],
  ["backoff", { backoff: "x" }],
  ["backoff", { backoff: false }],
  ["budget", { budget: true }],
  ["budget", { budget: 5 }],
  ["budget", { budget: null }],
  ["breaker", { breaker: "x" }],
  ["breaker", { breaker: true }],
  ["breaker", { breaker: [] }],
  ["idempotencyKey", { idempotencyKey: true }],
  ["idempotencyKey", { idempotencyKey: 5 }],
  // The other mode's fields would be ignored, the breaker built otherwise than asked.
  ["breaker.threshold", { breaker: { threshold: 0.3, windowMs: 30_000 } }],
  ["breaker.windowMs", { breaker: { threshold: 0.3, windowMs: 30_000 } }],
  ["breaker.minimumCalls", { breaker: { mode: "consecutive", minimumCalls: 20 } }],
  ["breaker.failures", { breaker: { mode: "ratio", failures: 3 } }],
  ["maxOrigins", { maxOrigins: 0 }],
  ["fetch", { fetch: "https://example.com" }],
  ["onEvent", { onEvent: {} }],
  ["random", { random: 0.5 }],
  ["now", { now: Date.now() }],
  ["sleep", { sleep: 10 }],
  ["options", null],
];

describe("options", () => {
  it.each(bad)("a bad %s is refused at start-up", (name, options) => {
    expect(() => createClient(options as ClientOptions)).toThrow(InterlockConfigError);
    expect(() => createClient(options as ClientOptions)).toThrow(name);
  });

  it("the defaults, and every feature switched off, are accepted", () => {
    expect(() => createClient()).not.toThrow();
    expect(() =>
      createClient({ timeoutMs: false, deadlineMs: false, idempotencyKey: false, budget: false, breaker: false }),
    ).not.toThrow();
    expect(() => createClient({ breaker: { mode: "ratio" }, backoff: { strategy: "decorrelated" } })).not.toThrow();
    expect(() =>
      createClient({ breaker: { mode: "ratio", threshold: 0.3, failures: undefined } } as ClientOptions),
    ).not.toThrow();
    expect(() =>
      createClient({ breaker: { failures: 3, halfOpenAfterMs: 1000 }, budget: { capacity: 5 } }),
    ).not.toThrow();
  });

  it("says which mode reads the fields it refuses", () => {
    expect(() => createClient({ breaker: { threshold: 0.3, windowMs: 30_000 } } as ClientOptions)).toThrow(
      'createClient: breaker.threshold, breaker.windowMs: only breaker.mode "ratio" reads them, and breaker.mode is "consecutive" (the default)',
    );
    expect(() => createClient({ breaker: { mode: "ratio", failures: 3 } } as ClientOptions)).toThrow(
      'createClient: breaker.failures: only breaker.mode "consecutive" reads it, and breaker.mode is "ratio"',
    );
    expect(() => createClient({ budget: true } as unknown as ClientOptions)).toThrow(
      "createClient: budget must be an object of options or false, got true",
    );
  });

  it("a client is a function with its registries", () => {
    const client = createClient();
    expect(typeof client).toBe("function");
    expect(client.breakers.snapshot()).toEqual({ version: 1, breakers: {} });
    expect(client.budgets.get("https://api.example.com")).toBeUndefined();
  });

  it("an invalid URL is fetch's own TypeError, as a rejected promise", async () => {
    const client = createClient({ fetch: () => Promise.reject(new Error("never called")) });
    await expect(client("not a url")).rejects.toBeInstanceOf(TypeError);
  });

  it("init null is no init, as fetch takes it", async () => {
    const client = createClient({ fetch: async () => new Response("ok") });
    expect(await (await client("https://a.example/", null as unknown as RequestInit)).text()).toBe("ok");
  });

  it.each([
    ["headers null", { headers: null }],
    ["headers that are not an object", { headers: "x-a: 1" }],
    ["a signal that is not an AbortSignal", { signal: {} }],
    ["an init that is not an object", 5],
  ])("%s: fetch's own TypeError, as a rejected promise, before any attempt", async (_, init) => {
    let calls = 0;
    const client = createClient({
      fetch: async () => {
        calls++;
        return new Response("ok");
      },
    });
    const thrown = await client("https://a.example/", init as RequestInit).catch((error: unknown) => error);
    const fetchs = await fetch("https://a.example/", init as RequestInit).catch((error: unknown) => error);
    expect(thrown).toBeInstanceOf(TypeError);
    expect(thrown).toEqual(fetchs);
    expect(calls).toBe(0);
  });

  it("fetch gets a signal only when something could abort the attempt; otherwise your init as it is", async () => {
    const seen: Array<RequestInit | undefined> = [];
    const fetchFn = async (_: FetchInput, init?: RequestInit) => {
      seen.push(init);
      return new Response("ok");
    };
    const init = { headers: { accept: "text/plain" } };
    const caller = new AbortController().signal;
    await createClient({ fetch: fetchFn, timeoutMs: false, deadlineMs: false })("https://a.example/", init);
    await createClient({ fetch: fetchFn })("https://a.example/", init);
    await createClient({ fetch: fetchFn, timeoutMs: false, deadlineMs: false })("https://a.example/", {
      ...init,
      signal: caller,
    });
    expect(seen[0]).toBe(init);
    expect(seen[1]?.signal).toBeInstanceOf(AbortSignal);
    expect(seen[1]?.headers).toBe(init.headers);
    expect(seen[2]?.signal).toBeInstanceOf(AbortSignal);
    expect(seen[2]?.signal).not.toBe(caller); // the attempt's own, which the caller's aborts
  });
});
