/** The per-origin circuit breaker against real scripted servers, on a virtual clock. */
import { InterlockConfigError } from "@interlock/core";
import { describe, expect, it } from "vitest";
import { OriginBreaker } from "../src/breaker.js";
import * as packageExports from "../src/index.js";
import {
  type BreakersSnapshot,
  CircuitOpenError,
  createClient,
  type FetchFunction,
  RetryLimitError,
} from "../src/index.js";
import { TestClock, tick } from "./helpers/clock.js";
import { clientOn, serve, settled } from "./helpers/setup.js";

/** A fetch that counts its calls: the proof that a refused call made no network call. */
function counting(clock: TestClock) {
  const counter = { calls: 0 };
  const fetchFn: FetchFunction = clock.track((input, init) => {
    counter.calls++;
    return fetch(input, init);
  });
  return { counter, fetchFn };
}

/**
 * A circuit one failure opened, its half-open wait over: the next call is the probe. The server
 * answered the failure and hangs every request after it until the test releases one.
 */
async function probeDue() {
  const server = await serve((i) => (i < 1 ? { status: 500 } : { hang: true }));
  const clock = new TestClock();
  const { counter, fetchFn } = counting(clock);
  const { client } = clientOn(
    { maxAttempts: 1, fetch: fetchFn, breaker: { failures: 1, halfOpenAfterMs: 1000 } },
    clock,
  );
  await settled(client(server.url));
  await clock.advance(1000);
  return { server, counter, client };
}

describe("consecutive failures", () => {
  it("opens after 3 failures in a row, fails fast, half-opens to one probe while the others wait, then closes", async () => {
    const server = await serve((i) => (i < 3 ? { status: 500 } : { hang: true }));
    const clock = new TestClock();
    const { counter, fetchFn } = counting(clock);
    const { client, ofType } = clientOn(
      { maxAttempts: 1, fetch: fetchFn, breaker: { failures: 3, halfOpenAfterMs: 10_000 } },
      clock,
    );
    for (let i = 0; i < 3; i++) expect((await settled(client(server.url))).error).toBeInstanceOf(RetryLimitError);
    const breaker = client.breakers.get(server.url);
    expect(breaker?.state).toBe("open");
    expect(breaker?.halfOpenAt).toBe(clock.now() + 10_000);

    // Open: refused without a network call, told when a probe will be allowed.
    const refused = await settled(client(server.url));
    expect(refused.error).toBeInstanceOf(CircuitOpenError);
    expect(refused.error).toMatchObject({ code: "circuit_open", status: 503, retryAfterMs: 10_000, attempts: 0 });
    await clock.advance(4000);
    expect((await settled(client(server.url))).error).toMatchObject({ retryAfterMs: 6000 });
    expect(counter.calls).toBe(3);

    // Half-open: the first call probes; the others wait for its outcome without going out.
    await clock.advance(6000);
    const probe = client(server.url);
    await server.receivedCount(4);
    expect(breaker?.state).toBe("half_open");
    const waiting = [client(server.url), client(server.url)];
    await tick();
    expect(counter.calls).toBe(4);

    server.release({ status: 200, body: "probe ok" });
    expect(await (await probe).text()).toBe("probe ok");
    expect(breaker?.state).toBe("closed");
    await server.receivedCount(6);
    server.release({ status: 200 });
    server.release({ status: 200 });
    expect((await Promise.all(waiting)).map((r) => r.status)).toEqual([200, 200]);
    expect(counter.calls).toBe(6);

    expect(ofType("client.breaker").map((e) => [e.from, e.to])).toEqual([
      ["closed", "open"],
      ["open", "half_open"],
      ["half_open", "closed"],
    ]);
    expect(ofType("client.attempt").filter((e) => e.probe)).toHaveLength(1);
    expect(ofType("client.give_up").filter((e) => e.reason === "circuit_open")).toHaveLength(2);
  });

  it("a failed probe opens the circuit again, and the calls waiting on it fail fast", async () => {
    const server = await serve((i) => (i < 2 ? { status: 503 } : { hang: true }));
    const clock = new TestClock();
    const { counter, fetchFn } = counting(clock);
    const { client, ofType } = clientOn(
      { maxAttempts: 1, fetch: fetchFn, breaker: { failures: 2, halfOpenAfterMs: 1000 } },
      clock,
    );
    for (let i = 0; i < 2; i++) await settled(client(server.url));
    await clock.advance(1000);
    const probe = settled(client(server.url));
    await server.receivedCount(3);
    const waiting = [settled(client(server.url)), settled(client(server.url))];
    server.release({ status: 502 });
    expect((await probe).error).toBeInstanceOf(RetryLimitError);
    for (const { error } of await Promise.all(waiting)) {
      expect(error).toBeInstanceOf(CircuitOpenError);
      expect(error).toMatchObject({ retryAfterMs: 1000 }); // opened afresh by the probe
    }
    expect(counter.calls).toBe(3);
    expect(ofType("client.breaker").map((e) => e.to)).toEqual(["open", "half_open", "open"]);
  });

  it("a probe its caller aborts decides nothing: the next waiting call becomes the probe", async () => {
    const { server, counter, client } = await probeDue();
    const controller = new AbortController();
    const probe = settled(client(server.url, { signal: controller.signal }));
    await server.receivedCount(2);
    const next = client(server.url);
    await tick();
    expect(counter.calls).toBe(2);
    controller.abort();
    expect(((await probe).error as Error).name).toBe("AbortError");
    await server.receivedCount(3); // the waiting call went out as the new probe
    expect(client.breakers.get(server.origin)?.state).toBe("half_open");
    server.release({ status: 204 }, 2);
    expect((await next).status).toBe(204);
    expect(client.breakers.get(server.origin)?.state).toBe("closed");
  });

  it("a call waiting for the probe can be aborted by its own signal; the probe goes on", async () => {
    const { server, counter, client } = await probeDue();
    const probe = client(server.url);
    await server.receivedCount(2);
    const controller = new AbortController();
    const waiting = settled(client(server.url, { signal: controller.signal }));
    await tick();
    controller.abort("not waiting any more");
    expect((await waiting).error).toBe("not waiting any more");
    expect(counter.calls).toBe(2);
    server.release({ status: 200 });
    expect((await probe).status).toBe(200);
    expect(client.breakers.get(server.origin)?.state).toBe("closed");
  });

  it("a call its caller aborts just as the probe's outcome lets it go ends with the abort, and goes out no later", async () => {
    // The abort lands a few microtasks after the probe closed the circuit: at each step of the
    // waiting call's way from its wait to its attempt in turn.
    for (let ticks = 0; ticks <= 12; ticks++) {
      const server = await serve((i) => (i < 1 ? { status: 500 } : { hang: true }));
      const clock = new TestClock();
      const { counter, fetchFn } = counting(clock);
      const controller = new AbortController();
      let callsAtAbort: number | undefined;
      const { client } = clientOn(
        {
          maxAttempts: 1,
          fetch: fetchFn,
          breaker: { failures: 1, halfOpenAfterMs: 1000 },
          onEvent: (event) => {
            if (event.type !== "client.breaker" || event.to !== "closed") return;
            let chain = Promise.resolve();
            for (let i = 0; i < ticks; i++) chain = chain.then(() => {});
            void chain.then(() => {
              callsAtAbort = counter.calls;
              controller.abort("gone");
            });
          },
        },
        clock,
      );
      await settled(client(server.url));
      await clock.advance(1000);
      const probe = client(server.url);
      await server.receivedCount(2);
      const waiting = settled(client(server.url, { signal: controller.signal }));
      await tick();
      server.release({ status: 200 });
      await (await probe).body?.cancel();
      await new Promise((resolve) => setTimeout(resolve, 50));
      const sent = counter.calls;
      // A call that went out after the abort would hang with the server: let it end.
      if (sent !== callsAtAbort && server.received.length > 2) server.release({ status: 200 }, 2);
      expect([sent, (await waiting).error], `aborted ${ticks} microtasks after the circuit closed`).toEqual([
        callsAtAbort,
        "gone",
      ]);
      expect(client.breakers.get(server.origin)?.state).toBe("closed");
    }
  });

  it("restoring a closed snapshot while a probe is out lets the calls waiting on it go at once", async () => {
    const { server, counter, client } = await probeDue();
    const probe = client(server.url);
    await server.receivedCount(2);
    const waiting = client(server.url);
    await tick();
    expect(counter.calls).toBe(2); // waiting on the probe
    client.breakers.restore({
      version: 1,
      breakers: { [server.origin]: { state: "closed", consecutiveFailures: 0, openedAt: null } },
    });
    await server.receivedCount(3); // sent without waiting for the probe, which still hangs
    expect(counter.calls).toBe(3);
    server.release({ status: 200 }, 2);
    expect((await waiting).status).toBe(200);
    server.release({ status: 200 }, 1);
    expect((await probe).status).toBe(200);
  });

  it("restoring a snapshot while a probe is out never lets two probes run at once: the probe out decides", async () => {
    const server = await serve(() => ({ hang: true }));
    const clock = new TestClock();
    const { client } = clientOn({ maxAttempts: 1, breaker: { failures: 5, halfOpenAfterMs: 1000 } }, clock);
    const openDue: BreakersSnapshot = {
      version: 1,
      breakers: {
        [server.origin]: { state: "open", consecutiveFailures: 5, openedAt: clock.now() - 1000, halfOpenInMs: 0 },
      },
    };
    client.breakers.restore(openDue);
    const probe = settled(client(server.url));
    await server.receivedCount(1);
    const waiting = settled(client(server.url));
    await tick();
    client.breakers.restore(openDue);
    await tick();
    await tick();
    expect(server.received).toHaveLength(1);
    expect(client.breakers.get(server.url)?.state).toBe("half_open"); // with its probe out
    server.release({ status: 200 }, 0);
    await probe;
    expect(client.breakers.get(server.url)?.state).toBe("closed");
    await server.receivedCount(2); // the waiting call, once the probe closed the circuit
    server.release({ status: 500 }, 1);
    await waiting;
    expect(client.breakers.get(server.url)?.state).toBe("closed"); // one failure of five
  });

  it("a probe a closed snapshot replaced counts as any attempt when it lands: one failure does not open the circuit", async () => {
    const server = await serve((i) => (i < 2 ? { status: 500 } : { hang: true }));
    const clock = new TestClock();
    const { client } = clientOn({ maxAttempts: 1, breaker: { failures: 2, halfOpenAfterMs: 1000 } }, clock);
    for (let i = 0; i < 2; i++) await settled(client(server.url));
    await clock.advance(1000);
    const probe = settled(client(server.url));
    await server.receivedCount(3);
    client.breakers.restore({
      version: 1,
      breakers: { [server.origin]: { state: "closed", consecutiveFailures: 0, openedAt: null } },
    });
    server.release({ status: 500 }, 2);
    await probe;
    expect(client.breakers.get(server.url)).toMatchObject({ state: "closed", consecutiveFailures: 1 });
  });

  it("stops retrying when the circuit opens mid-request: CircuitOpenError with the last response", async () => {
    const server = await serve(() => ({ status: 500, body: "down" }));
    const { client, clock } = clientOn({ maxAttempts: 5, breaker: { failures: 2 } });
    const { error } = await settled(client(server.url));
    expect(error).toBeInstanceOf(CircuitOpenError);
    expect(error).toMatchObject({ attempts: 2, retryAfterMs: 10_000 });
    expect(await (error as CircuitOpenError).response?.text()).toBe("down");
    expect(server.received).toHaveLength(2);
    expect(clock.slept).toEqual([50]); // no wait for a retry the open circuit would refuse
  });

  it("a circuit other calls open while this call waits to retry: CircuitOpenError without the response it cancelled", async () => {
    const server = await serve(() => ({ status: 503, body: "down" }));
    const clock = new TestClock({ auto: false });
    const { client, ofType } = clientOn({ idempotencyKey: false, breaker: { failures: 3 } }, clock);
    const waiting = settled(client(server.url));
    await clock.sleepRequested(50); // its first attempt got a 503; its retry waits 50 ms
    // Two POSTs (not retried: no key) fail meanwhile: three failures in a row open the circuit.
    for (let i = 0; i < 2; i++) await (await client(server.url, { method: "POST" })).body?.cancel();
    expect(client.breakers.get(server.url)?.state).toBe("open");
    await clock.advance(50);
    const { error } = await waiting;
    expect(error).toBeInstanceOf(CircuitOpenError);
    expect(error).toMatchObject({ attempts: 1 });
    // The 503's body was cancelled before the wait: the error does not hand out a body that cannot be read.
    expect((error as CircuitOpenError).response).toBeUndefined();
    // The event still tells what that last attempt got.
    expect(ofType("client.give_up").filter((e) => e.method === "GET")).toEqual([
      expect.objectContaining({ reason: "circuit_open", attempts: 1, status: 503 }),
    ]);
    expect(server.received).toHaveLength(3);
  });

  it("429s and 4xx do not count as failures; a success resets the count", async () => {
    const server = await serve([
      { status: 500 },
      { status: 429 },
      { status: 404 },
      { status: 500 },
      { status: 200 },
      { status: 500 },
    ]);
    const { client } = clientOn({ maxAttempts: 1, breaker: { failures: 2 } });
    for (let i = 0; i < 6; i++) await settled(client(server.url));
    const breaker = client.breakers.get(server.origin);
    expect(breaker?.state).toBe("closed");
    expect(breaker?.consecutiveFailures).toBe(1);
  });

  it("a probe that succeeds closes the circuit with the count at 0: one more failure does not open it again", async () => {
    const server = await serve([{ status: 500 }, { status: 500 }, { status: 200 }, { status: 500 }]);
    const { client, clock } = clientOn({ maxAttempts: 1, breaker: { failures: 2, halfOpenAfterMs: 1000 } });
    for (let i = 0; i < 2; i++) await settled(client(server.url));
    const breaker = client.breakers.get(server.origin);
    expect(breaker?.state).toBe("open");
    await clock.advance(1000);
    expect((await client(server.url)).status).toBe(200); // the probe
    expect(breaker?.state).toBe("closed");
    expect(breaker?.consecutiveFailures).toBe(0);
    await settled(client(server.url));
    expect(breaker?.state).toBe("closed");
    expect(breaker?.consecutiveFailures).toBe(1);
  });

  it("an attempt admitted before the circuit opened and failing late changes nothing: the circuit is not opened afresh", async () => {
    const server = await serve((i) => (i === 0 ? { hang: true } : { status: 500 }));
    const { client, clock } = clientOn({ maxAttempts: 1, breaker: { failures: 1, halfOpenAfterMs: 1000 } });
    const late = settled(client(server.url));
    await server.receivedCount(1);
    await settled(client(server.url)); // a 500: opens the circuit
    const breaker = client.breakers.get(server.origin);
    expect(breaker?.halfOpenAt).toBe(clock.now() + 1000);
    const probeAt = clock.now() + 1000;
    await clock.advance(400);
    server.release({ status: 500 }, 0);
    expect((await late).error).toBeInstanceOf(RetryLimitError);
    expect(breaker?.state).toBe("open");
    expect(breaker?.halfOpenAt).toBe(probeAt); // not 400 ms later
    expect(breaker?.consecutiveFailures).toBe(1);
  });

  it("a timeout counts as a failure whatever isFailure says (only what an attempt got is its to judge)", async () => {
    const server = await serve([{ hang: true }]);
    const { client, clock } = clientOn({
      maxAttempts: 1,
      timeoutMs: 1000,
      breaker: { failures: 1, isFailure: () => false },
    });
    const pending = settled(client(server.url));
    await server.receivedCount(1);
    await clock.advance(1000);
    expect((await pending).error).toBeInstanceOf(RetryLimitError);
    expect(client.breakers.get(server.origin)?.state).toBe("open");
  });

  it("calls fetch refuses outright (their own bad arguments) are not failures of the origin: the circuit stays closed", async () => {
    const server = await serve([]);
    const { client } = clientOn({ breaker: { failures: 2 } });
    for (let i = 0; i < 3; i++) {
      // A header value fetch cannot send (not a ByteString).
      expect((await settled(client(server.url, { headers: { "x-name": "Zoë ☃" } }))).error).toBeInstanceOf(TypeError);
    }
    const breaker = client.breakers.get(server.origin);
    expect(breaker?.state).toBe("closed");
    expect(breaker?.consecutiveFailures).toBe(0);
    expect((await client(server.url)).status).toBe(200);
  });

  it("a probe fetch refuses outright decides nothing: the next call probes", async () => {
    const { server, counter, client } = await probeDue();
    expect((await settled(client(server.url, { headers: { "x-name": "Zoë ☃" } }))).error).toBeInstanceOf(TypeError);
    const breaker = client.breakers.get(server.origin);
    expect(breaker?.state).toBe("half_open");
    const probe = client(server.url);
    await server.receivedCount(2);
    server.release({ status: 200 });
    expect((await probe).status).toBe(200);
    expect(breaker?.state).toBe("closed");
    expect(counter.calls).toBe(3); // the refused call reached fetch, never the server
  });

  it("a probe answered through a redirect to another origin closes the circuit: the first origin answered, with the redirect", async () => {
    const other = await serve(() => ({ status: 200, body: "moved here" }));
    const server = await serve((index) =>
      index === 0 ? { status: 500 } : { status: 301, headers: { location: `${other.origin}/new` } },
    );
    const clock = new TestClock();
    const { client, ofType } = clientOn({ maxAttempts: 1, breaker: { failures: 1, halfOpenAfterMs: 1000 } }, clock);
    await settled(client(server.url));
    await clock.advance(1000);
    const probe = await client(server.url);
    expect(probe.status).toBe(200);
    expect(await probe.text()).toBe("moved here");
    expect(ofType("client.attempt").map((e) => [e.probe, e.status])).toEqual([
      [false, 500],
      [true, 200],
    ]);
    expect(client.breakers.get(server.url)?.state).toBe("closed");
    expect(ofType("client.breaker").map((e) => `${e.from} -> ${e.to}`)).toEqual([
      "closed -> open",
      "open -> half_open",
      "half_open -> closed",
    ]);
  });

  it("each origin has its own breaker", async () => {
    const failing = await serve(() => ({ status: 500 }));
    const healthy = await serve([]);
    const { client } = clientOn({ maxAttempts: 1, breaker: { failures: 1 } });
    await settled(client(failing.url));
    expect((await settled(client(failing.url))).error).toBeInstanceOf(CircuitOpenError);
    expect((await client(healthy.url)).status).toBe(200);
    expect(client.breakers.get(healthy.origin)?.state).toBe("closed");
  });

  it("breaker: false never fails fast", async () => {
    const server = await serve(() => ({ status: 500 }));
    const { client } = clientOn({ maxAttempts: 1, breaker: false });
    for (let i = 0; i < 10; i++) expect((await settled(client(server.url))).error).toBeInstanceOf(RetryLimitError);
    expect(server.received).toHaveLength(10);
    expect(client.breakers.get(server.origin)).toBeUndefined();
  });
});

describe("failure ratio in a window", () => {
  it.each([
    [0.28, 25, 7], // 0.28 × 25 is 7.000000000000001 in floating point
    [0.07, 100, 7],
    [0.14, 50, 7],
    [0.56, 25, 14],
  ])("opens at exactly a %s share of failures (%s attempts, %s failed)", async (threshold, calls, failures) => {
    let sent = 0;
    const client = createClient({
      fetch: async () => new Response(null, { status: sent++ < calls - failures ? 200 : 500 }),
      maxAttempts: 1,
      timeoutMs: false,
      deadlineMs: false,
      breaker: { mode: "ratio", threshold, minimumCalls: calls, windowMs: 3_600_000 },
    });
    for (let i = 0; i < calls; i++) await settled(client("https://api.example.com/"));
    const breaker = client.breakers.get("https://api.example.com");
    expect(breaker?.window).toEqual({ calls, failures });
    expect(breaker?.state).toBe("open");
  });

  it("opens when half of at least 4 attempts in the last 10 s failed; older outcomes age out", async () => {
    const statuses = [500, 500, 200, /* 10 s later */ 500, 200, 200, 500];
    const server = await serve((i) => ({ status: statuses[i] ?? 200 }));
    const { client, clock } = clientOn({
      maxAttempts: 1,
      breaker: { mode: "ratio", threshold: 0.5, windowMs: 10_000, minimumCalls: 4 },
    });
    const breaker = () => client.breakers.get(server.origin);
    for (let i = 0; i < 3; i++) await settled(client(server.url));
    expect(breaker()?.window).toEqual({ calls: 3, failures: 2 });
    expect(breaker()?.state).toBe("closed"); // fewer than minimumCalls
    await clock.advance(10_000);
    expect(breaker()?.window).toEqual({ calls: 0, failures: 0 }); // all 10 s old: out of the window
    await settled(client(server.url));
    expect(breaker()?.window).toEqual({ calls: 1, failures: 1 }); // counted with the old ones it would be 3 of 4
    expect(breaker()?.state).toBe("closed");
    await settled(client(server.url));
    await settled(client(server.url));
    expect(breaker()?.state).toBe("closed"); // 1 of 3
    await settled(client(server.url));
    expect(breaker()?.state).toBe("open"); // 2 of 4
    expect((await settled(client(server.url))).error).toBeInstanceOf(CircuitOpenError);
    expect(server.received).toHaveLength(7);
  });

  it("on the real monotonic clock, early in the process: a circuit that closed counts none of the failures that opened it", async () => {
    // performance.now() starts near 0 with the process: the window must tell its cleared slots
    // from the first buckets of that clock (an hour-long window keeps this test inside them).
    const statuses = [500, 500, 200, 500];
    const server = await serve((i) => ({ status: statuses[i] ?? 200 }));
    const client = createClient({
      maxAttempts: 1,
      breaker: { mode: "ratio", threshold: 0.5, windowMs: 3_600_000, minimumCalls: 2, halfOpenAfterMs: 20 },
    });
    const breaker = () => client.breakers.get(server.origin);
    for (let i = 0; i < 2; i++) await settled(client(server.url));
    expect(breaker()?.state).toBe("open");
    await new Promise((resolve) => setTimeout(resolve, 40));
    expect((await client(server.url)).status).toBe(200); // the probe
    expect(breaker()?.state).toBe("closed");
    expect(breaker()?.window).toEqual({ calls: 0, failures: 0 });
    await settled(client(server.url));
    expect(breaker()?.window).toEqual({ calls: 1, failures: 1 });
    expect(breaker()?.state).toBe("closed"); // 1 attempt, fewer than minimumCalls
  });
});

describe("the wait for a probe, on a clock with fractions of a millisecond", () => {
  it("is rounded up: 0.3 ms left still refuses (1 ms), and no probe goes out early", () => {
    let t = 0.5;
    const clock = () => t;
    const breaker = new OriginBreaker(
      "http://127.0.0.1",
      { mode: "consecutive", failures: 1, halfOpenAfterMs: 1000 },
      { now: clock, elapsed: clock },
      () => {},
    );
    breaker.record(true, undefined);
    t = 1000.2;
    expect(breaker.admit()).toEqual({ kind: "reject", retryAfterMs: 1 });
    expect(breaker.halfOpenAt).toBe(1001.2);
    t = 1000.5;
    expect(breaker.admit()).toMatchObject({ kind: "probe" });
  });
});

describe("observing, saving and restoring", () => {
  it("a snapshot is JSON; another client restored from it fails fast without calling, then probes on time", async () => {
    const server = await serve((i) => ({ status: i < 2 ? 500 : 200 }));
    const clock = new TestClock();
    const first = clientOn({ maxAttempts: 1, breaker: { failures: 2, halfOpenAfterMs: 5000 } }, clock);
    for (let i = 0; i < 2; i++) await settled(first.client(server.url));
    const saved = JSON.parse(JSON.stringify(first.client.breakers.snapshot())) as BreakersSnapshot;
    expect(saved).toEqual({
      version: 1,
      breakers: {
        [server.origin]: { state: "open", consecutiveFailures: 2, openedAt: clock.now(), halfOpenInMs: 5000 },
      },
    });

    const second = clientOn({ maxAttempts: 1, breaker: { failures: 2, halfOpenAfterMs: 5000 } }, clock);
    second.client.breakers.restore(saved);
    expect(second.client.breakers.get(server.origin)?.state).toBe("open");
    expect((await settled(second.client(server.url))).error).toMatchObject({
      code: "circuit_open",
      retryAfterMs: 5000,
    });
    expect(server.received).toHaveLength(2);
    await clock.advance(5000);
    expect((await second.client(server.url)).status).toBe(200);
    expect(second.client.breakers.get(server.origin)?.state).toBe("closed");
    expect(second.ofType("client.breaker").map((e) => e.to)).toEqual(["open", "half_open", "closed"]);
  });

  it("a half-open snapshot comes back open: its probe belonged to the other process", async () => {
    const { client, clock } = clientOn({ breaker: { halfOpenAfterMs: 1000 } });
    client.breakers.restore({
      version: 1,
      breakers: { "https://api.example.com": { state: "half_open", consecutiveFailures: 5, openedAt: clock.now() } },
    });
    expect(client.breakers.get("https://api.example.com/v1/charges?x=1")?.snapshot()).toEqual({
      state: "open",
      consecutiveFailures: 5,
      openedAt: clock.now(),
      halfOpenInMs: 1000, // a snapshot without halfOpenInMs (an older version's) is timed from openedAt
    });
    expect([...client.breakers].map((b) => b.origin)).toEqual(["https://api.example.com"]);
  });

  it("restored by a process whose clock runs 10 minutes ahead, an open circuit still waits what was left: no probe at once", async () => {
    const server = await serve((i) => ({ status: i < 2 ? 500 : 200 }));
    const options = { maxAttempts: 1, breaker: { failures: 2, halfOpenAfterMs: 60_000 } };
    const first = clientOn(options);
    for (let i = 0; i < 2; i++) await settled(first.client(server.url));
    await first.clock.advance(15_000);
    const saved = JSON.parse(JSON.stringify(first.client.breakers.snapshot())) as BreakersSnapshot;
    expect(saved.breakers[server.origin]?.halfOpenInMs).toBe(45_000);

    const ahead = clientOn(options, new TestClock({ start: first.clock.now() + 10 * 60_000 }));
    ahead.client.breakers.restore(saved);
    expect((await settled(ahead.client(server.url))).error).toMatchObject({
      code: "circuit_open",
      retryAfterMs: 45_000,
    });
    expect(server.received).toHaveLength(2);
    await ahead.clock.advance(45_000);
    expect((await ahead.client(server.url)).status).toBe(200); // the probe, on time
  });

  it("a snapshot's halfOpenInMs past this client's halfOpenAfterMs (a longer setting elsewhere, a bad value) waits halfOpenAfterMs", async () => {
    const { client, clock } = clientOn({ breaker: { halfOpenAfterMs: 1000 } });
    const origin = "https://api.example.com";
    client.breakers.restore({
      version: 1,
      breakers: { [origin]: { state: "open", consecutiveFailures: 5, openedAt: clock.now(), halfOpenInMs: 1e12 } },
    });
    expect(client.breakers.get(origin)?.halfOpenAt).toBe(clock.now() + 1000);
  });

  it("an openedAt ahead of this clock (another process's clock, a bad value) is taken as now: open for halfOpenAfterMs at most", async () => {
    const server = await serve(() => ({ status: 200 }));
    const { client, clock } = clientOn({ breaker: { halfOpenAfterMs: 1000 } });
    client.breakers.restore({
      version: 1,
      breakers: { [server.origin]: { state: "open", consecutiveFailures: 5, openedAt: 1e300 } },
    });
    expect(client.breakers.get(server.origin)?.snapshot().openedAt).toBe(clock.now());
    expect((await settled(client(server.url))).error).toMatchObject({ code: "circuit_open", retryAfterMs: 1000 });
    await clock.advance(1000);
    expect((await client(server.url)).status).toBe(200);
    expect(client.breakers.get(server.origin)?.state).toBe("closed");
  });

  it("a snapshot of a client that fetched a data: URL restores", async () => {
    const client = createClient();
    await (await client("data:,hello")).text();
    const saved = JSON.parse(JSON.stringify(client.breakers.snapshot())) as BreakersSnapshot;
    expect(() => createClient().breakers.restore(saved)).not.toThrow();
  });

  it('an opaque origin (data:, a custom scheme: all of them "null") has no breaker or budget: one such URL never fails another fast', async () => {
    const fetchFn: FetchFunction = async (input) =>
      String(input).startsWith("app:") ? new Response(null, { status: 503 }) : fetch(input);
    const { client } = clientOn({ fetch: fetchFn, retryOn: () => false, breaker: { failures: 1 } });
    expect((await client("app://settings/")).status).toBe(503);
    expect(await (await client("data:,hello")).text()).toBe("hello");
    expect([...client.breakers]).toEqual([]);
    expect(client.breakers.get("data:,hello")).toBeUndefined();
    expect(client.budgets.get("data:,hello")).toBeUndefined();
    expect(client.breakers.snapshot()).toEqual({ version: 1, breakers: {} });
  });

  it('a snapshot holding the opaque origin "null" (saved by an earlier version) restores every other origin', () => {
    const { client, clock } = clientOn();
    const open = { state: "open" as const, consecutiveFailures: 5, openedAt: clock.now(), halfOpenInMs: 1000 };
    client.breakers.restore({ version: 1, breakers: { null: open, "https://api.example.com": open } });
    expect([...client.breakers].map((breaker) => [breaker.origin, breaker.state])).toEqual([
      ["https://api.example.com", "open"],
    ]);
  });

  const invalid: Array<[string, unknown, RegExp]> = [
    ["not an object", null, /not an object/],
    ["an unknown version", { version: 2, breakers: {} }, /version 2/],
    ["no breakers", { version: 1 }, /`breakers`/],
    ["a key that is not a URL", { version: 1, breakers: { "api.example.com": {} } }, /not an absolute URL/],
    ["a key with a path", { version: 1, breakers: { "https://a.example/x": {} } }, /not an origin/],
    [
      "an unknown state",
      { version: 1, breakers: { "https://a.example": { state: "ajar", consecutiveFailures: 0, openedAt: null } } },
      /state must be/,
    ],
    [
      "an open breaker without openedAt",
      { version: 1, breakers: { "https://a.example": { state: "open", consecutiveFailures: 3, openedAt: null } } },
      /needs openedAt/,
    ],
    [
      "a negative halfOpenInMs",
      {
        version: 1,
        breakers: { "https://a.example": { state: "open", consecutiveFailures: 3, openedAt: 0, halfOpenInMs: -1 } },
      },
      /halfOpenInMs must be/,
    ],
    [
      "an open breaker whose halfOpenInMs is null",
      {
        version: 1,
        breakers: { "https://a.example": { state: "open", consecutiveFailures: 3, openedAt: 0, halfOpenInMs: null } },
      },
      /needs halfOpenInMs/,
    ],
    [
      "a negative failure count",
      { version: 1, breakers: { "https://a.example": { state: "closed", consecutiveFailures: -1, openedAt: null } } },
      /consecutiveFailures/,
    ],
  ];
  it.each(invalid)("restore refuses %s with InterlockConfigError, changing nothing", (_, snapshot, message) => {
    const { client } = clientOn();
    const good = { state: "open", consecutiveFailures: 1, openedAt: 0 };
    const withGood =
      typeof snapshot === "object" && snapshot !== null && "breakers" in snapshot
        ? { ...snapshot, breakers: { "https://good.example": good, ...(snapshot.breakers as object) } }
        : snapshot;
    expect(() => client.breakers.restore(withGood as BreakersSnapshot)).toThrow(InterlockConfigError);
    expect(() => client.breakers.restore(withGood as BreakersSnapshot)).toThrow(message);
    expect(client.breakers.get("https://good.example")).toBeUndefined();
  });

  it("breakers.get refuses what is not a URL", () => {
    const { client } = clientOn();
    expect(() => client.breakers.get("api.example.com")).toThrow(InterlockConfigError);
  });

  it("one breaker per origin, however the URL spells it", async () => {
    const { client } = clientOn({ fetch: async () => new Response("ok") });
    const spellings = [
      "https://API.example.com/a",
      "https://api.example.com:443/b?x=1",
      "https://api.example.com?q=1",
      "https://api.example.com#top",
      "https://api.example.com\\c",
      "https://user:secret@api.example.com/d",
      "HTTPS://api.example.com/e",
      new URL("https://api.example.com/f"),
      new Request("https://api.example.com/g"),
    ];
    for (const url of spellings) await client(url);
    expect([...client.breakers].map((b) => b.origin)).toEqual(["https://api.example.com"]);
    await client("http://api.example.com/");
    await client("https://api.example.com:8443/");
    expect([...client.breakers].map((b) => b.origin)).toEqual([
      "https://api.example.com",
      "http://api.example.com",
      "https://api.example.com:8443",
    ]);
  });

  it("keeps the maxOrigins most recently used origins", async () => {
    const servers = [await serve([]), await serve([]), await serve([])];
    const { client } = clientOn({ maxOrigins: 2 });
    await client(servers[0]!.url);
    await client(servers[1]!.url);
    await client(servers[0]!.url); // most recent again
    await client(servers[2]!.url); // evicts servers[1]
    expect(client.breakers.get(servers[0]!.origin)).toBeDefined();
    expect(client.breakers.get(servers[1]!.origin)).toBeUndefined();
    expect(client.budgets.get(servers[2]!.origin)).toBeDefined();
  });
});

describe("what client.breakers and client.budgets hand out", () => {
  it("reads a breaker and a budget, live, but cannot drive them: no record, admit, restore, trySpend or refund", async () => {
    const server = await serve(() => ({ status: 500 }));
    const { client: api } = clientOn({ maxAttempts: 1, breaker: { failures: 2 } });
    await settled(api(server.url));
    const breaker = api.breakers.get(server.url);
    const budget = api.budgets.get(server.url);
    expect(api.breakers.get(server.origin)).toBe(breaker); // the same object every time
    expect([...api.breakers]).toEqual([breaker]);
    for (const method of ["record", "release", "admit", "refusesAt", "restore"]) {
      expect((breaker as unknown as Record<string, unknown>)[method]).toBeUndefined();
    }
    for (const method of ["trySpend", "refund"]) {
      expect((budget as unknown as Record<string, unknown>)[method]).toBeUndefined();
    }
    expect(breaker).toMatchObject({ origin: server.origin, state: "closed", consecutiveFailures: 1 });
    expect(budget).toMatchObject({ capacity: 10, retryCost: 1, successRefund: 0.1, tokens: 10 });
    await settled(api(server.url));
    expect(breaker?.state).toBe("open"); // live: the client's own breaker, read through
    expect(breaker?.halfOpenAt).toBe((breaker?.openedAt as number) + 10_000);
    expect(breaker?.snapshot()).toMatchObject({ state: "open", consecutiveFailures: 2 });
  });

  it("the package exports no breaker or budget class to construct", () => {
    expect(Object.keys(packageExports)).not.toContain("CircuitBreaker");
    expect(Object.keys(packageExports)).not.toContain("RetryBudget");
  });
});

describe("origins", () => {
  it("a URL whose host follows extra slashes or tabs counts for its own origin, not for the first such URL's", async () => {
    // The parser skips the empty authority of `https:///host`: the text before the path names no host.
    const { client } = clientOn({ maxAttempts: 1, fetch: async () => new Response("ok") });
    for (const url of [
      "https:///a.example/x",
      "https:///b.example/y",
      "https://\t/c.example/",
      "https://\t/d.example/",
    ]) {
      await client(url);
    }
    const origins = [...client.breakers].map((breaker) => breaker.origin);
    expect(origins).toEqual(["https://a.example", "https://b.example", "https://c.example", "https://d.example"]);
  });
});
