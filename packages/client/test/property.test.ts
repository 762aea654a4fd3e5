/**
 * Properties: for any sequence of scripted failures and any limits, the client never makes more
 * attempts than `maxAttempts`, never retries past its budget, never runs past its deadline,
 * never calls an origin whose circuit is open, never retries a POST without a key, and sends
 * one key on every attempt of a request. Once with an in-memory fetch on a virtual timeline
 * (latency, timeouts and the deadline racing exactly), once against the real scripted server.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ClientError,
  type ClientEvent,
  type ClientOptions,
  createClient,
  type FetchFunction,
  RETRYABLE_STATUSES,
} from "../src/index.js";
import { TestClock } from "./helpers/clock.js";
import type { Step } from "./helpers/scripted-server.js";
import { serve } from "./helpers/setup.js";

const STATUSES = [200, 201, 404, 408, 409, 425, 429, 500, 502, 503, 504];

type FakeStep =
  | { kind: "status"; status: number; retryAfterS: number | undefined; latencyMs: number }
  | { kind: "network_error"; latencyMs: number };

const fakeStep: fc.Arbitrary<FakeStep> = fc.oneof(
  fc.record({
    kind: fc.constant("status" as const),
    status: fc.constantFrom(...STATUSES),
    retryAfterS: fc.option(fc.integer({ min: 0, max: 20 }), { nil: undefined }),
    latencyMs: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 20_000 })),
  }),
  fc.record({ kind: fc.constant("network_error" as const), latencyMs: fc.integer({ min: 0, max: 2000 }) }),
);

const limits = fc.record({
  maxAttempts: fc.integer({ min: 1, max: 6 }),
  timeoutMs: fc.oneof(fc.constant(false as const), fc.integer({ min: 50, max: 8000 })),
  deadlineMs: fc.oneof(fc.constant(false as const), fc.integer({ min: 100, max: 30_000 })),
  maxRetryAfterMs: fc.integer({ min: 0, max: 15_000 }),
  backoff: fc.record({
    strategy: fc.constantFrom("full" as const, "equal" as const, "decorrelated" as const),
    baseMs: fc.integer({ min: 0, max: 500 }),
    capMs: fc.integer({ min: 500, max: 5000 }),
  }),
  budget: fc.oneof(
    fc.constant(false as const),
    fc.record({
      capacity: fc.integer({ min: 1, max: 6 }),
      retryCost: fc.constantFrom(0.5, 1),
      successRefund: fc.constantFrom(0.1, 0.25, 1),
    }),
  ),
  breaker: fc.oneof(
    fc.constant(false as const),
    fc.record({ failures: fc.integer({ min: 1, max: 5 }), halfOpenAfterMs: fc.integer({ min: 100, max: 10_000 }) }),
    fc.record({
      mode: fc.constant("ratio" as const),
      threshold: fc.constantFrom(0.25, 0.5, 1),
      windowMs: fc.integer({ min: 1000, max: 20_000 }),
      minimumCalls: fc.integer({ min: 1, max: 6 }),
      halfOpenAfterMs: fc.integer({ min: 100, max: 10_000 }),
    }),
  ),
  withKey: fc.boolean(),
});

type Limits = typeof limits extends fc.Arbitrary<infer T> ? T : never;

const requestArb = fc.record({
  method: fc.constantFrom("GET", "POST", "PUT"),
  /** Virtual ms between the previous request and this one. */
  pauseMs: fc.integer({ min: 0, max: 15_000 }),
});

interface Sent {
  request: number;
  key: string | null;
  /** The origin's circuit when the call went out. */
  breakerState: string | undefined;
}

/** The fetch under test, given `note(init)` to call as each attempt goes out. */
type MakeFetch = (clock: TestClock, note: (init: RequestInit | undefined) => void) => FetchFunction;

/** Runs the requests one after another and checks every invariant as it goes. */
async function check(
  options: Limits,
  requests: Array<{ method: string; pauseMs: number }>,
  randoms: number[],
  makeFetch: MakeFetch,
  url: string,
): Promise<void> {
  const clock = new TestClock();
  const sent: Sent[] = [];
  let current = -1;
  const events: ClientEvent[] = [];
  let draw = 0;
  const { withKey, ...clientOptions } = options;
  const note = (init: RequestInit | undefined) =>
    sent.push({
      request: current,
      key: new Headers(init?.headers).get("idempotency-key"),
      breakerState: client.breakers.get(url)?.state,
    });
  const client = createClient({
    ...(clientOptions as ClientOptions),
    idempotencyKey: withKey ? {} : false,
    random: () => randoms[draw++ % randoms.length] as number,
    now: clock.now,
    sleep: clock.sleep,
    onEvent: (event) => events.push(event),
    fetch: makeFetch(clock, note),
  });
  const budget = options.budget;
  let refunds = 0;
  let retries = 0;

  for (const [index, { method, pauseMs }] of requests.entries()) {
    await clock.advance(pauseMs);
    current = index;
    const started = clock.now();
    const eventsBefore = events.length;
    let outcome: unknown;
    try {
      const response = await client(url, { method, body: method === "GET" ? null : "x" });
      await response.arrayBuffer();
      outcome = response;
    } catch (error) {
      outcome = error;
    }
    const elapsed = clock.now() - started;
    const mine = sent.filter((s) => s.request === index);
    const own = events.slice(eventsBefore);

    // Settles as fetch would: a response, a typed client error, or the network's TypeError.
    expect(outcome instanceof Response || outcome instanceof ClientError || outcome instanceof TypeError).toBe(true);
    // Attempts.
    expect(mine.length).toBeLessThanOrEqual(options.maxAttempts);
    // The deadline, on the virtual clock: exact.
    if (options.deadlineMs !== false) expect(elapsed).toBeLessThanOrEqual(options.deadlineMs);
    // An unsafe method without a key goes out once.
    if (method === "POST" && !withKey) expect(mine.length).toBeLessThanOrEqual(1);
    // One key for every attempt of the request.
    expect(new Set(mine.map((s) => s.key)).size).toBeLessThanOrEqual(1);
    if (method === "POST" && withKey && mine.length > 0) expect(mine[0]?.key).toBeTruthy();
    // Never a network call while the circuit is open.
    for (const call of mine) expect(call.breakerState).not.toBe("open");
    // Every attempt after the first was a retry the client announced, paid for unless it resent
    // a stale connection's request: one such per call at most, at once.
    const ownRetries = own.filter((e) => e.type === "client.retry");
    expect(ownRetries.length).toBe(Math.max(0, mine.length - 1));
    const resends = ownRetries.filter((e) => e.staleConnection);
    expect(resends.length).toBeLessThanOrEqual(1);
    for (const resend of resends) expect(resend.delayMs).toBe(0);
    retries += ownRetries.length - resends.length;

    // The budget: what the bucket started with plus every refund, spent one retry cost at a time.
    for (const event of own) {
      if (event.type !== "client.attempt" || event.status === undefined) continue;
      const retryable = RETRYABLE_STATUSES.includes(event.status) || (event.status === 409 && event.key !== undefined);
      if (!retryable) refunds++;
    }
    if (budget !== false) {
      expect(retries * budget.retryCost).toBeLessThanOrEqual(budget.capacity + refunds * budget.successRefund + 1e-9);
      expect(client.budgets.get(url)?.tokens).toBeGreaterThanOrEqual(0);
    }
  }
  expect(clock.pending()).toEqual([]); // nothing left running
}

describe("properties", () => {
  it("in-memory fetch on a virtual timeline: limits, budget, deadline, breaker and keys always hold", async () => {
    await fc.assert(
      fc.asyncProperty(
        limits,
        fc.array(requestArb, { minLength: 1, maxLength: 6 }),
        fc.array(fakeStep, { maxLength: 30 }),
        fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), { minLength: 1, maxLength: 8 }),
        async (options, requests, steps, randoms) => {
          const queue = [...steps];
          const inMemory: MakeFetch = (clock, note) => async (_input, init) => {
            note(init);
            const step = queue.shift() ?? { kind: "status", status: 200, retryAfterS: undefined, latencyMs: 0 };
            // No signal when nothing could abort the attempt (no timeout, no deadline, no caller).
            const signal = init?.signal ?? new AbortController().signal;
            if (step.latencyMs > 0) await clock.sleep(step.latencyMs, signal);
            else if (signal.aborted) throw signal.reason;
            if (step.kind === "network_error") throw new TypeError("fetch failed");
            const headers: Record<string, string> =
              step.retryAfterS === undefined ? {} : { "retry-after": `${step.retryAfterS}` };
            return new Response("body", { status: step.status, headers });
          };
          await check(options, requests, randoms, inMemory, "https://api.example.com/v1/things");
        },
      ),
      { numRuns: 300 },
    );
  });

  it("against the real scripted server: attempts, keys and the budget hold for any sequence of failures", async () => {
    const serverStep: fc.Arbitrary<Step> = fc.oneof(
      fc.constantFrom(...STATUSES).map((status) => ({ status })),
      fc.integer({ min: 0, max: 3 }).map((s) => ({ status: 503, headers: { "retry-after": String(s) } })),
      fc.constant({ reset: true as const }),
      fc.constant({ drop: true as const }),
    );
    await fc.assert(
      fc.asyncProperty(
        limits,
        fc.array(requestArb, { minLength: 1, maxLength: 4 }),
        fc.array(serverStep, { maxLength: 12 }),
        async (options, requests, steps) => {
          const server = await serve(steps);
          try {
            const real: MakeFetch = (clock, note) =>
              clock.track((input, init) => {
                note(init);
                return fetch(input, init);
              });
            await check(options, requests, [0.5], real, server.url);
          } finally {
            await server.close();
          }
        },
      ),
      { numRuns: 25 },
    );
  });
});
