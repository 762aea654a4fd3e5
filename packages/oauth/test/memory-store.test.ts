import { InterlockConfigError } from "@interlock/core";
import { describe, expect, it } from "vitest";
import { MemoryTokenStore } from "../src/index.js";
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

  it("refuses a bad maxEntries", () => {
    for (const maxEntries of [0, -1, 1.5]) {
      expect(() => new MemoryTokenStore({ maxEntries })).toThrow(InterlockConfigError);
    }
  });
});
