/**
 * A system clock set forward or back while the client works (NTP stepping a drift, a VM resumed
 * from a snapshot) moves no deadline and holds no circuit open. Only `Date` is faked, moving
 * with real time and stepped by the tests; the client is made after it, as one made at start-up
 * reads the system clock, and times run on real timers against a real server.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { CircuitOpenError, type ClientOptions, createClient, RetryLimitError, TimeoutError } from "../src/index.js";
import { serve, settled } from "./helpers/setup.js";

const HOUR = 3_600_000;

/** A client that retries every 10–20 ms for as long as it may, and steps the clock at its first retry. */
function steppingClient(stepMs: number, options: ClientOptions) {
  let stepped = false;
  return createClient({
    maxAttempts: 1000,
    backoff: { baseMs: 10, capMs: 20 },
    budget: false,
    breaker: false,
    ...options,
    onEvent: (event) => {
      if (event.type !== "client.retry" || stepped) return;
      stepped = true;
      vi.setSystemTime(Date.now() + stepMs);
    },
  });
}

/** True for the errors that say the deadline ended the call. */
const endedByDeadline = (error: unknown) =>
  (error instanceof TimeoutError && error.scope === "deadline") ||
  (error instanceof RetryLimitError && error.reason === "deadline");

describe("the client and a system clock that is set", () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now(), shouldAdvanceTime: true });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("a clock set back mid-call still ends the call at its deadline, not an hour later", async () => {
    const server = await serve(() => ({ status: 503 }));
    const client = steppingClient(-HOUR, { deadlineMs: 300 });
    const started = performance.now();
    const { error } = await settled(client(server.url));
    expect(endedByDeadline(error), String(error)).toBe(true);
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it("a clock set forward mid-call does not end the call before its deadline", async () => {
    const server = await serve(() => ({ status: 503 }));
    const client = steppingClient(HOUR, { deadlineMs: 300 });
    const started = performance.now();
    const { error } = await settled(client(server.url));
    expect(endedByDeadline(error), String(error)).toBe(true);
    expect(performance.now() - started).toBeGreaterThanOrEqual(250);
    expect(server.received.length).toBeGreaterThan(3);
  });

  it("an attempt's duration in its event is real time, not the step", async () => {
    const server = await serve([{ delayMs: 50, answer: { status: 200 } }]);
    const durations: number[] = [];
    const client = createClient({
      onEvent: (event) => {
        if (event.type === "client.attempt") durations.push(event.durationMs);
      },
    });
    const pending = client(server.url);
    await server.receivedCount(1);
    vi.setSystemTime(Date.now() + HOUR);
    expect((await pending).status).toBe(200);
    expect(durations).toHaveLength(1);
    expect(durations[0]).toBeGreaterThanOrEqual(40);
    expect(durations[0]).toBeLessThan(HOUR);
  });

  it("a ratio window counts the attempts of its last windowMs of real time across a step either way", async () => {
    const server = await serve(() => ({ status: 500 }));
    const client = createClient({
      maxAttempts: 1,
      breaker: { mode: "ratio", threshold: 0.5, windowMs: 10_000, minimumCalls: 4 },
    });
    const breaker = () => client.breakers.get(server.url);
    for (let i = 0; i < 2; i++) await settled(client(server.url));
    vi.setSystemTime(Date.now() + HOUR); // forward: the two failures did not age out
    await settled(client(server.url));
    vi.setSystemTime(Date.now() - 2 * HOUR); // back: they are not from the future either
    expect(breaker()?.window).toEqual({ calls: 3, failures: 3 });
    await settled(client(server.url));
    expect(breaker()?.state).toBe("open"); // 4 of 4
  });

  describe("an open circuit", () => {
    /** A client whose breaker opens on one failure and lets a probe through 100 ms later, opened now. */
    async function openCircuit() {
      const server = await serve((index) => (index === 0 ? { status: 500 } : { status: 200, body: "back" }));
      const client = createClient({ maxAttempts: 1, breaker: { failures: 1, halfOpenAfterMs: 100 } });
      // One attempt, a 500: the client gives up (attempts), and the breaker has opened.
      expect((await settled(client(server.url))).error).toBeInstanceOf(RetryLimitError);
      expect(client.breakers.get(server.url)?.state).toBe("open");
      return { server, client };
    }

    it("set back: still lets its probe through after halfOpenAfterMs", async () => {
      const { server, client } = await openCircuit();
      vi.setSystemTime(Date.now() - HOUR);
      const { error } = await settled(client(server.url));
      expect(error).toBeInstanceOf(CircuitOpenError);
      expect((error as CircuitOpenError).retryAfterMs).toBeLessThanOrEqual(100);
      await new Promise((resolve) => setTimeout(resolve, 150));
      const response = await client(server.url);
      expect(await response.text()).toBe("back");
      expect(client.breakers.get(server.url)?.state).toBe("closed");
    });

    it("set forward: lets no probe through before halfOpenAfterMs", async () => {
      const { server, client } = await openCircuit();
      vi.setSystemTime(Date.now() + HOUR);
      const { error } = await settled(client(server.url));
      expect(error).toBeInstanceOf(CircuitOpenError);
      expect(server.received).toHaveLength(1);
      const breaker = client.breakers.get(server.url);
      // The wall-clock times follow the clock as it now reads: the probe is due within 100 ms of now.
      expect((breaker?.halfOpenAt as number) - Date.now()).toBeLessThanOrEqual(100);
      expect((breaker?.halfOpenAt as number) - Date.now()).toBeGreaterThan(0);
    });

    it("a snapshot's openedAt is on the wall clock, as another process reads it", async () => {
      const { server, client } = await openCircuit();
      const openedAt = client.breakers.get(server.url)?.openedAt as number;
      expect(Math.abs(openedAt - Date.now())).toBeLessThan(1000);
      const other = createClient({ breaker: { failures: 1, halfOpenAfterMs: 100 } });
      other.breakers.restore(client.breakers.snapshot());
      const { error } = await settled(other(server.url));
      expect(error).toBeInstanceOf(CircuitOpenError);
      await new Promise((resolve) => setTimeout(resolve, 150));
      expect(await (await other(server.url)).text()).toBe("back");
    });

    it("set forward after it opened: a snapshot restored elsewhere still holds it open for halfOpenAfterMs", async () => {
      // The clock was an hour slow when the circuit opened, and NTP stepped it right since. A
      // process that restores the snapshot reads openedAt on its own (right) clock: it must get
      // the time the circuit opened as this clock reads now, not an hour earlier.
      const { server, client } = await openCircuit();
      vi.setSystemTime(Date.now() + HOUR);
      const saved = client.breakers.snapshot();
      expect(Math.abs((saved.breakers[server.origin]?.openedAt as number) - Date.now())).toBeLessThan(1000);
      const other = createClient({ maxAttempts: 1, breaker: { failures: 1, halfOpenAfterMs: 100 } });
      other.breakers.restore(saved);
      expect((await settled(other(server.url))).error).toBeInstanceOf(CircuitOpenError);
      expect(server.received).toHaveLength(1); // no probe an hour early
      const breaker = client.breakers.get(server.url);
      // halfOpenAfterMs apart, not an hour: each getter reads the wall and the monotonic clock one
      // after the other, and a loaded machine may run other work between the two reads.
      const apart = (breaker?.halfOpenAt as number) - (breaker?.openedAt as number);
      expect(Math.abs(apart - 100)).toBeLessThan(50);
    });
  });
});
