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

describe("memory store internals under load", () => {
  const claimComplete = async (store: MemoryStore, key: string, body: Uint8Array, ttlMs = 60_000) => {
    const claimed = await store.claim(key, { fingerprint: `fp-${key}`, lockTtlMs: 60_000 });
    if (claimed.state !== "claimed") throw new Error(`expected to win ${key}`);
    expect(await store.complete(key, claimed.token, { status: 201, headers: [["x-key", key]], body }, { ttlMs })).toBe(
      true,
    );
  };
  const bodyFor = (i: number, size: number) => Uint8Array.from({ length: size }, (_, j) => (i * 31 + j) & 0xff);

  it("keeps exactly the newest maxEntries records across many generations, oldest evicted first", async () => {
    const store = new MemoryStore({ maxEntries: 100 });
    for (let i = 0; i < 1_050; i++) await claimComplete(store, `k${i}`, bodyFor(i, 10));
    expect(store.size).toBe(100);
    // Claims of completed keys change nothing; a claim of an evicted key would add a lock.
    for (let i = 950; i < 1_050; i++) {
      const result = await store.claim(`k${i}`, { fingerprint: "other", lockTtlMs: 60_000 });
      if (result.state !== "completed") throw new Error(`k${i} should be kept, got ${result.state}`);
      expect(result.record.body).toEqual(bodyFor(i, 10));
      expect(result.record.headers).toEqual([["x-key", `k${i}`]]);
      expect(result.record.fingerprint).toBe(`fp-k${i}`);
    }
    expect((await store.claim("k949", { fingerprint: "f", lockTtlMs: 60_000 })).state).toBe("claimed");
  });

  it("carries a live lock through every generation: it is never evicted and can still complete", async () => {
    const store = new MemoryStore({ maxEntries: 10 });
    const lock = await store.claim("slow", { fingerprint: "f", lockTtlMs: 600_000 });
    if (lock.state !== "claimed") throw new Error("expected a win");
    for (let i = 0; i < 200; i++) await claimComplete(store, `k${i}`, bodyFor(i, 5));
    expect((await store.claim("slow", { fingerprint: "f", lockTtlMs: 1 })).state).toBe("in_flight");
    expect(await store.complete("slow", lock.token, response(3), { ttlMs: 60_000 })).toBe(true);
    expect((await store.claim("slow", { fingerprint: "f", lockTtlMs: 1 })).state).toBe("completed");
    expect(store.size).toBeLessThanOrEqual(10);
  });

  it("a released key re-claimed later is the newest, not evicted in its old place", async () => {
    const store = new MemoryStore({ maxEntries: 3 });
    const first = await store.claim("a", { fingerprint: "f", lockTtlMs: 60_000 });
    if (first.state !== "claimed") throw new Error("expected a win");
    await claimComplete(store, "b", bodyFor(1, 1));
    expect(await store.release("a", first.token)).toBe(true);
    await claimComplete(store, "c", bodyFor(2, 1));
    await claimComplete(store, "a", bodyFor(3, 1));
    await claimComplete(store, "d", bodyFor(4, 1)); // full: evicts "b", the oldest record
    expect((await store.claim("a", { fingerprint: "f", lockTtlMs: 1 })).state).toBe("completed");
    expect((await store.claim("b", { fingerprint: "f", lockTtlMs: 1 })).state).toBe("claimed");
  });

  it("stores bodies of every size byte-exact, isolated from the caller's buffer", async () => {
    const store = new MemoryStore({ maxRecordBytes: 64 * 1024 });
    const sizes = [0, 1, 7, 8, 9, 4095, 4096, 4097, 40_000, 100, 3_000, 3_000, 3_000];
    const bodies = sizes.map((size, i) => bodyFor(i, size));
    for (const [i, body] of bodies.entries()) {
      await claimComplete(store, `b${i}`, body);
      body.fill(0xee); // the caller reuses its buffer: the stored copy must not change
    }
    for (const [i, size] of sizes.entries()) {
      const result = await store.claim(`b${i}`, { fingerprint: "f", lockTtlMs: 1 });
      if (result.state !== "completed") throw new Error(`expected b${i} completed`);
      expect(result.record.body).toEqual(bodyFor(i, size));
      result.record.body.fill(0x11); // and a reader's copy is its own
    }
    const again = await store.claim("b5", { fingerprint: "f", lockTtlMs: 1 });
    expect(again.state === "completed" && again.record.body).toEqual(bodyFor(5, 4095));
  });

  it("accounts bytes exactly as records come and go", async () => {
    const store = new MemoryStore({ maxEntries: 1_000, maxBytes: 10_000, maxRecordBytes: 1_000 });
    for (let i = 0; i < 100; i++) await claimComplete(store, `k${i}`, bodyFor(i, 990)); // 990 + "x-key" + key
    // Each record is ~1,000 bytes: at most 10 fit; the newest 9 or 10 remain.
    expect(store.size).toBeGreaterThanOrEqual(9);
    expect(store.size).toBeLessThanOrEqual(10);
    expect((await store.claim("k99", { fingerprint: "f", lockTtlMs: 1 })).state).toBe("completed");
    expect((await store.claim("k89", { fingerprint: "f", lockTtlMs: 1 })).state).toBe("claimed");
  });
});
