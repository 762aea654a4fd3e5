import { InterlockConfigError } from "@interlock/core";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { MemoryTokenStore } from "../src/index.js";
import { defaultTokenStore } from "../src/store/memory.js";
import { describeTokenStore } from "./token-store-suite.js";

// One store (and one clock) for the whole suite: "connections" to memory are the same map.
let now = Date.parse("2026-01-01T00:00:00Z");
const shared = new MemoryTokenStore({ now: () => now });

describeTokenStore("memory", {
  store: () => shared,
  elapse: async (ms) => {
    now += ms;
  },
  exactClock: true,
});

describe("memory token store", () => {
  it("keeps at most maxEntries, dropping the least recently written", async () => {
    const store = new MemoryTokenStore({ maxEntries: 3 });
    for (const key of ["a", "b", "c"]) await store.set(key, key, { ttlMs: 60_000 });
    await store.set("a", "a2", { ttlMs: 60_000 }); // a is now the most recent
    await store.set("d", "d", { ttlMs: 60_000 });
    expect(store.size).toBe(3);
    expect(await store.get("b")).toBeUndefined();
    for (const key of ["a", "c", "d"]) expect(await store.get(key)).toBeDefined();
  });

  it("times entries on monotonic time by default: a system clock set forward ends none, one set back keeps none", async () => {
    // The system clock is watched from before the store is made: a store timed on it would keep the
    // `Date.now` in place when it was made, so a spy put on later could not show its steps.
    const wall = Date.now.bind(Date);
    const step = vi.spyOn(Date, "now");
    onTestFinished(() => step.mockRestore());
    const store = new MemoryTokenStore();
    await store.set("session", "tokens", { ttlMs: 60_000 });
    await store.set("lock", "locked", { ttlMs: 30_000, expect: null }); // a refresh's lock, its request under way
    step.mockImplementation(() => wall() + 60 * 60_000); // a VM resumed an hour later
    expect(await store.get("session")).toBeDefined();
    expect(await store.set("lock", "locked", { ttlMs: 30_000, expect: null })).toBeUndefined(); // still held

    step.mockImplementation(() => wall() - 60 * 60_000); // and an NTP step back
    // Spied on the `performance` the store bound when it was made: its monotonic time moves on.
    const monotonic = performance.now.bind(performance);
    const elapsed = vi.spyOn(performance, "now").mockImplementation(() => monotonic() + 30_001);
    onTestFinished(() => elapsed.mockRestore());
    expect(await store.get("lock")).toBeUndefined(); // its lease is over
    expect(await store.get("session")).toBeDefined();
    expect(store.size).toBe(1);
  });

  it("keeps the clock it was made with: one made before a test fakes timers stays on real time", async () => {
    const real = new MemoryTokenStore();
    await real.set("key", "value", { ttlMs: 60_000 });
    vi.useFakeTimers();
    onTestFinished(() => {
      vi.useRealTimers();
    });
    const faked = new MemoryTokenStore();
    await faked.set("key", "value", { ttlMs: 60_000 });
    vi.advanceTimersByTime(60 * 60_000); // an hour of fake time, a moment of real time
    expect(await real.get("key")).toBeDefined();
    expect(await faked.get("key")).toBeUndefined();
  });

  it("refuses a now that is not a function, and fails closed on a reading that is not a finite number", async () => {
    for (const now of ["Date.now", 1_700_000_000_000, null]) {
      expect(() => new MemoryTokenStore({ now: now as never })).toThrow(InterlockConfigError);
    }
    // An unbound method or an unset fake: every comparison with undefined or NaN is false, so an
    // entry would be live and absent at once, and each of two callers would take the same lock.
    for (const reading of [undefined, Number.NaN, Number.POSITIVE_INFINITY]) {
      const store = new MemoryTokenStore({ now: () => reading as never });
      const claims = [1, 2].map(() => store.set("lock", "held", { ttlMs: 30_000, expect: null }));
      for (const claim of await Promise.allSettled(claims)) {
        expect(claim).toMatchObject({ status: "rejected", reason: { name: "InterlockConfigError" } });
        expect(String((claim as PromiseRejectedResult).reason.message)).toMatch(/^now\(\) returned /);
      }
    }
  });

  it("times entries on an injected clock alone: the system clock's steps change nothing", async () => {
    let now = 0;
    const store = new MemoryTokenStore({ now: () => now });
    await store.set("key", "value", { ttlMs: 1_000 });
    const step = vi.spyOn(Date, "now").mockImplementation(() => Number.MAX_SAFE_INTEGER);
    onTestFinished(() => step.mockRestore());
    expect(await store.get("key")).toBeDefined();
    now += 1_000;
    expect(await store.get("key")).toBeUndefined();
  });

  it("a flow's default store follows the client's now when the app gave one, monotonic time otherwise", async () => {
    let now = Date.now();
    const given = defaultTokenStore({ now: () => now, nowGiven: true });
    const unset = defaultTokenStore({ now: () => now, nowGiven: false });
    for (const store of [given, unset]) await store.set("key", "value", { ttlMs: 1_000 });
    now += 1_000; // the client's clock (the system clock when the app gave none) moves on
    expect(await given.get("key")).toBeUndefined();
    expect(await unset.get("key")).toBeDefined();
  });

  it("refuses a bad maxEntries", () => {
    for (const maxEntries of [0, -1, 1.5]) {
      expect(() => new MemoryTokenStore({ maxEntries })).toThrow(InterlockConfigError);
    }
  });
});
