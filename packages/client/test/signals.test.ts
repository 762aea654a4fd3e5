/**
 * The light attempt signal: what Node's fetch needs of an AbortSignal, that it is what the
 * client hands the platform's fetch on Node (and never a fetch of the caller's), and that it
 * cuts a real request off: a hung attempt, a caller aborting a body being read.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { createClient, RetryLimitError, TimeoutError } from "../src/index.js";
import { AttemptSignal, attemptAbort, platformSleep, TimeoutQueue } from "../src/signals.js";
import { REQUEST_TAKES_LIGHT_SIGNAL } from "./helpers/platform.js";
import { serve, settled } from "./helpers/setup.js";

describe("AttemptSignal", () => {
  it("calls each abort listener once, with itself as this, the reason set, and forgets them", () => {
    const signal = new AttemptSignal();
    const seen: unknown[] = [];
    function listener(this: unknown) {
      const target = this as AttemptSignal;
      seen.push(["function", target.reason, target.aborted]);
    }
    signal.addEventListener("abort", listener);
    signal.addEventListener("abort", listener); // the same listener twice: once, as EventTarget
    signal.addEventListener("abort", { handleEvent: (event) => seen.push(["object", event.type]) });
    signal.onabort = () => seen.push(["onabort"]);
    signal.abort("why");
    signal.abort("again");
    expect(seen).toEqual([["onabort"], ["function", "why", true], ["object", "abort"]]);
    expect(signal.listeners()).toEqual([]);
    expect(() => signal.throwIfAborted()).toThrow("why");
  });

  it("a removed listener is not called; an abort without a reason is an AbortError", () => {
    const signal = new AttemptSignal();
    const listener = vi.fn();
    signal.addEventListener("abort", listener);
    signal.removeEventListener("abort", listener);
    signal.abort();
    expect(listener).not.toHaveBeenCalled();
    expect(signal.reason).toBeInstanceOf(DOMException);
    expect((signal.reason as DOMException).name).toBe("AbortError");
  });

  it("a listener that throws does not stop the others; its error is reported, not swallowed", () => {
    const signal = new AttemptSignal();
    const reports: Array<() => void> = [];
    vi.stubGlobal("queueMicrotask", (report: () => void) => reports.push(report));
    const after = vi.fn();
    signal.addEventListener("abort", () => {
      throw new Error("listener failed");
    });
    signal.addEventListener("abort", after);
    signal.abort();
    vi.unstubAllGlobals();
    expect(after).toHaveBeenCalledOnce();
    expect(reports).toHaveLength(1);
    expect(() => reports[0]?.()).toThrow("listener failed");
  });

  it("Node's Request follows it: the request's own signal aborts with its reason (before Node 24)", () => {
    const signal = new AttemptSignal();
    if (!REQUEST_TAKES_LIGHT_SIGNAL) {
      expect(() => new Request("http://127.0.0.1/", { signal: signal.signal })).toThrow(TypeError);
      return;
    }
    const request = new Request("http://127.0.0.1/", { signal: signal.signal });
    expect(signal.listeners()).toHaveLength(1);
    signal.abort("cut");
    expect(request.signal.aborted).toBe(true);
    expect(request.signal.reason).toBe("cut");
  });
});

describe("TimeoutQueue: a client's attempt timeouts on one platform timer", () => {
  // With setTimeout alone faked, a clock that stands still: every platform timer fires on time.
  const frozen = () => 0;
  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllGlobals();
  });

  it("fires each timer its ms after its own stamp, in order, with only setTimeout faked", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const queue = new TimeoutQueue(100, frozen);
    const fired: string[] = [];
    queue.add(() => fired.push("a"), 1_000);
    queue.add(() => fired.push("b"), 1_030);
    queue.add(() => fired.push("c"), 1_030);
    queue.add(() => fired.push("d"), 1_070);
    vi.advanceTimersByTime(99);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual(["a"]);
    vi.advanceTimersByTime(29);
    expect(fired).toEqual(["a"]);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual(["a", "b", "c"]);
    vi.advanceTimersByTime(40);
    expect(fired).toEqual(["a", "b", "c", "d"]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("a cancelled timer never fires, the oldest included; the others still fire when due", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const queue = new TimeoutQueue(100, frozen);
    const fired: string[] = [];
    const cancelA = queue.add(() => fired.push("a"), 0);
    const cancelB = queue.add(() => fired.push("b"), 20);
    queue.add(() => fired.push("c"), 50);
    cancelA();
    cancelB();
    cancelB(); // twice: nothing more
    vi.advanceTimersByTime(149);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual(["c"]);
    // Empty, then a timer again: due its ms after its own stamp, not after the last platform timer.
    queue.add(() => fired.push("e"), 400);
    vi.advanceTimersByTime(99);
    expect(fired).toEqual(["c"]);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual(["c", "e"]);
  });

  it("arms the platform timer for whole milliseconds, never early, when stamps are fractional", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const setTimeout = vi.spyOn(globalThis, "setTimeout");
    const queue = new TimeoutQueue(100, frozen);
    const fired: string[] = [];
    queue.add(() => fired.push("a"), 1_000.4);
    queue.add(() => fired.push("b"), 1_030.25); // due 29.85 ms after a
    vi.advanceTimersByTime(100);
    expect(fired).toEqual(["a"]);
    vi.advanceTimersByTime(29);
    expect(fired).toEqual(["a"]);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual(["a", "b"]);
    expect(setTimeout.mock.calls.map(([, ms]) => ms)).toEqual([100, 30]);
    setTimeout.mockRestore();
  });

  it("a platform timer that fires late fires every timer due by then, and arms the next from the real time", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const setTimeout = vi.spyOn(globalThis, "setTimeout");
    let clock = 0;
    const queue = new TimeoutQueue(100, () => clock);
    const fired: Array<[string, number]> = [];
    const fire = (name: string) => () => fired.push([name, clock]);
    queue.add(fire("a"), 0); // due at 100
    queue.add(fire("b"), 250); // due at 350
    queue.add(fire("c"), 380); // due at 480
    // The event loop was held up until 400: the platform timer armed for 100 fires then.
    clock = 400;
    vi.advanceTimersByTime(100);
    expect(fired).toEqual([
      ["a", 400],
      ["b", 400],
    ]);
    // c is 80 ms away: the lateness is not carried over to it (nor to every timer after it).
    expect(setTimeout.mock.calls.map(([, ms]) => ms)).toEqual([100, 80]);
    clock = 480;
    vi.advanceTimersByTime(80);
    expect(fired.at(-1)).toEqual(["c", 480]);
    setTimeout.mockRestore();
  });

  it("holds the process open only while a timer is queued", () => {
    const queue = new TimeoutQueue(60_000);
    const timeouts = () => process.getActiveResourcesInfo().filter((name) => name === "Timeout").length;
    const before = timeouts();
    const cancelA = queue.add(() => {}, performance.now());
    const cancelB = queue.add(() => {}, performance.now());
    expect(timeouts()).toBe(before + 1); // one platform timer for both
    cancelA();
    expect(timeouts()).toBe(before + 1);
    cancelB();
    expect(timeouts()).toBe(before); // unref'd: an idle client lets the process exit
    const cancelC = queue.add(() => {}, performance.now());
    expect(timeouts()).toBe(before + 1);
    cancelC();
  });

  it("a timer that throws does not stop the others due; its error is reported, not swallowed", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const reports: Array<() => void> = [];
    vi.stubGlobal("queueMicrotask", (report: () => void) => reports.push(report));
    const queue = new TimeoutQueue(10, frozen);
    const after = vi.fn();
    queue.add(() => {
      throw new Error("fire failed");
    }, 0);
    queue.add(after, 0);
    queue.add(after, 5);
    vi.advanceTimersByTime(10);
    expect(after).toHaveBeenCalledOnce();
    vi.advanceTimersByTime(5);
    expect(after).toHaveBeenCalledTimes(2);
    expect(reports).toHaveLength(1);
    expect(() => reports[0]?.()).toThrow("fire failed");
  });

  it("a client's attempt timeouts fire through it, attempt after attempt, over real HTTP", async () => {
    const hung = await serve(() => ({ hang: true }));
    // Long enough for the second attempt's new connection to reach the server on a loaded machine.
    const client = createClient({ timeoutMs: 250, maxAttempts: 2, backoff: { baseMs: 1, capMs: 1 } });
    const started = performance.now();
    const { error } = await settled(client(hung.url));
    expect(error).toBeInstanceOf(RetryLimitError);
    expect(error).toMatchObject({ reason: "attempts", attempts: 2 });
    expect((error as RetryLimitError).cause).toMatchObject({ scope: "attempt", timeoutMs: 250 });
    expect(performance.now() - started).toBeGreaterThanOrEqual(499);
    expect(hung.received).toHaveLength(2);
  });
});

describe("the client's platform timers", () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("get whole milliseconds: an attempt cut short by the deadline, a backoff, the deadline's own timer", async () => {
    const server = await serve(() => ({ status: 503 }));
    const setTimeout = vi.spyOn(globalThis, "setTimeout");
    // A deadline shorter than the attempt timeout arms each attempt's timer for what is left of
    // it (fractional on the monotonic clock); a random source of thirds, fractional backoffs.
    const client = createClient({
      timeoutMs: 5_000,
      deadlineMs: 2_000,
      maxAttempts: 3,
      backoff: { baseMs: 10, capMs: 10 },
      random: () => 1 / 3,
    });
    const { error } = await settled(client(server.url));
    expect(error).toBeInstanceOf(RetryLimitError);
    expect(server.received).toHaveLength(3);
    const delays = setTimeout.mock.calls.map(([, ms]) => ms);
    expect(delays.length).toBeGreaterThanOrEqual(5); // three attempts, two backoffs (each with the deadline's timer)
    expect(delays.filter((ms) => !Number.isInteger(ms))).toEqual([]);
  });

  it("the default sleep rounds a fractional wait up (an injected clock's or a hook's delay)", async () => {
    const setTimeout = vi.spyOn(globalThis, "setTimeout");
    await platformSleep(1.5, new AbortController().signal);
    expect(setTimeout.mock.calls[0]?.[1]).toBe(2); // its own timer (the previous test's server may still be closing)
  });
});

describe("which signal an attempt gets", () => {
  const platform = globalThis.fetch;
  afterEach(() => {
    globalThis.fetch = platform;
  });

  it("on Node, the light one for the platform's fetch (a controller from Node 24); a real AbortSignal for the caller's own fetch", async () => {
    expect(attemptAbort(true, false)).toBeInstanceOf(REQUEST_TAKES_LIGHT_SIGNAL ? AttemptSignal : AbortController);
    expect(attemptAbort(false, true)).toBeInstanceOf(AbortController);

    const signals: unknown[] = [];
    const server = await serve(() => ({ status: 200 }));
    const own = createClient({
      fetch: (input, init) => {
        signals.push(init?.signal);
        return fetch(input, init);
      },
    });
    await (await own(server.url)).text();
    expect(signals[0]).toBeInstanceOf(AbortSignal);
  });

  it("a fetch put in place of the platform's (a test's mock) gets a real AbortSignal", async () => {
    const signals: unknown[] = [];
    const server = await serve(() => ({ status: 200 }));
    globalThis.fetch = (input, init) => {
      signals.push(init?.signal);
      return platform(input, init);
    };
    await (await createClient()(server.url)).text();
    expect(signals[0]).toBeInstanceOf(AbortSignal);
  });

  it("over real HTTP, the light signal cuts off a hung attempt", async () => {
    const hung = await serve(() => ({ hang: true }));
    const client = createClient({ timeoutMs: 50, maxAttempts: 1 });
    const started = Date.now();
    const { error } = await settled(client(hung.url));
    expect(error).toBeInstanceOf(RetryLimitError);
    expect((error as RetryLimitError).cause).toBeInstanceOf(TimeoutError);
    expect((error as RetryLimitError).cause).toMatchObject({ scope: "attempt", timeoutMs: 50 });
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
