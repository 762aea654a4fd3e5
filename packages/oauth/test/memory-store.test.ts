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
    // The system clock is watched from before the store is made: a store keeps the clock it was made with.
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
    const monotonic = performance.now.bind(performance);
    const elapsed = vi.spyOn(performance, "now").mockImplementation(() => monotonic() + 30_001);
    onTestFinished(() => elapsed.mockRestore());
    expect(await store.get("lock")).toBeUndefined(); // its lease is over
    expect(await store.get("session")).toBeDefined();
    expect(store.size).toBe(1);
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
