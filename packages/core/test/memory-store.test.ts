import { describe, expect, it } from "vitest";
import { MemoryStore, StoreUnavailableError } from "../src/index.js";
import { describeStoreConformance } from "../src/testing/index.js";

describeStoreConformance("memory", { create: () => new MemoryStore({ maxRecordBytes: 64 * 1024 }) });

const response = (size = 10) => ({ status: 200, headers: [] as Array<[string, string]>, body: new Uint8Array(size) });

describe("memory store bounds", () => {
  it("evicts the oldest records past maxEntries, never a live lock", async () => {
    const store = new MemoryStore({ maxEntries: 3 });
    const lock = await store.claim("locked", { fingerprint: "f", lockTtlMs: 60_000 });
    for (const key of ["r1", "r2", "r3"]) {
      const claimed = await store.claim(key, { fingerprint: "f", lockTtlMs: 60_000 });
      if (claimed.state !== "claimed") throw new Error("expected a win");
      await store.complete(key, claimed.token, response(), { ttlMs: 60_000 });
    }
    expect(store.size).toBe(3);
    expect((await store.claim("locked", { fingerprint: "f", lockTtlMs: 60_000 })).state).toBe("in_flight");
    expect((await store.claim("r1", { fingerprint: "f", lockTtlMs: 60_000 })).state).toBe("claimed"); // r1 was evicted
    expect(lock.state).toBe("claimed");
  });

  it("refuses a claim as unavailable when every slot is a live lock", async () => {
    const store = new MemoryStore({ maxEntries: 2 });
    await store.claim("a", { fingerprint: "f", lockTtlMs: 60_000 });
    await store.claim("b", { fingerprint: "f", lockTtlMs: 60_000 });
    await expect(store.claim("c", { fingerprint: "f", lockTtlMs: 60_000 })).rejects.toThrow(StoreUnavailableError);
  });

  it("expired locks free their slots without timers", async () => {
    let now = 1_000;
    const store = new MemoryStore({ maxEntries: 2, now: () => now });
    await store.claim("a", { fingerprint: "f", lockTtlMs: 100 });
    await store.claim("b", { fingerprint: "f", lockTtlMs: 100 });
    now += 101;
    expect((await store.claim("c", { fingerprint: "f", lockTtlMs: 100 })).state).toBe("claimed");
    expect(store.size).toBeLessThanOrEqual(2);
  });

  it("evicts the oldest records past maxBytes", async () => {
    const store = new MemoryStore({ maxBytes: 250, maxRecordBytes: 100 });
    for (const key of ["a", "b", "c"]) {
      const claimed = await store.claim(key, { fingerprint: "f", lockTtlMs: 60_000 });
      if (claimed.state !== "claimed") throw new Error("expected a win");
      await store.complete(key, claimed.token, response(100), { ttlMs: 60_000 });
    }
    expect(store.size).toBe(2);
    expect((await store.claim("a", { fingerprint: "f", lockTtlMs: 1 })).state).toBe("claimed");
    expect((await store.claim("c", { fingerprint: "f", lockTtlMs: 1 })).state).toBe("completed");
  });

  it("sweeps expired records as it writes, keeping memory flat", async () => {
    let now = 0;
    const store = new MemoryStore({ now: () => now });
    for (let i = 0; i < 1_000; i++) {
      const claimed = await store.claim(`k${i}`, { fingerprint: "f", lockTtlMs: 1_000 });
      if (claimed.state !== "claimed") throw new Error("expected a win");
      await store.complete(`k${i}`, claimed.token, response(), { ttlMs: 10 });
      now += 1;
    }
    expect(store.size).toBeLessThan(20);
  });

  it("refuses nonsense options", () => {
    expect(() => new MemoryStore({ maxEntries: 0 })).toThrow();
    expect(() => new MemoryStore({ maxBytes: 10, maxRecordBytes: 20 })).toThrow();
  });
});

describe("memory store eviction order under churn", () => {
  // Eviction walks the records oldest-first with one long-lived Map iterator (O(1) per
  // eviction; bench/idempotency.mjs measures it). These check that the walk stays correct:
  // re-completed keys count as new, and records added after the walk ran out are still found.
  it("evicts the oldest record, counting a re-completed key as new", async () => {
    let now = 0;
    const store = new MemoryStore({ maxEntries: 3, now: () => now });
    const put = async (key: string, ttlMs = 60_000) => {
      const claimed = await store.claim(key, { fingerprint: "f", lockTtlMs: 1_000 });
      if (claimed.state !== "claimed") throw new Error(`expected to win ${key}`);
      await store.complete(key, claimed.token, response(), { ttlMs });
    };
    const state = async (key: string) => {
      const result = await store.claim(key, { fingerprint: "f", lockTtlMs: 1 });
      if (result.state === "claimed") await store.release(key, result.token);
      return result.state;
    };
    await put("a", 10);
    await put("b");
    await put("c");
    now = 20; // "a" expired: re-completing it makes it the newest
    await put("a");
    await put("d"); // full: evicts the oldest live record, "b"
    expect(await state("b")).toBe("claimed");
    for (let i = 0; i < 50; i++) await put(`x${i}`); // the walk runs out and restarts many times
    expect(await state("x49")).toBe("completed");
    expect(await state("x48")).toBe("completed");
    expect(await state("c")).toBe("claimed");
    expect(store.size).toBeLessThanOrEqual(3);
  });
});
