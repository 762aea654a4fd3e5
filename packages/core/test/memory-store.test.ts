import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  InterlockConfigError,
  MAX_KEY_LENGTH,
  MemoryStore,
  type MemoryStoreOptions,
  StoreUnavailableError,
} from "../src/index.js";
import { hashKey, KeyIndex } from "../src/store/key-index.js";
import { Slots } from "../src/store/slots.js";
import { describeStoreConformance } from "../src/testing/index.js";

describeStoreConformance("memory", {
  create: () => new MemoryStore({ maxRecordBytes: 64 * 1024 }),
  createOnClock: (now) => new MemoryStore({ maxRecordBytes: 64 * 1024, now }),
  // Not the store itself as its own sibling: the cross-instance tests would then repeat the
  // one-instance ones and read as a cross-process guarantee the memory store does not make.
  sibling: {
    singleProcess: "a MemoryStore's keys live in its own process's memory: a second instance, or process, shares none",
  },
});

describeStoreConformance('memory, whenFull: "refuse"', {
  create: () => new MemoryStore({ maxRecordBytes: 64 * 1024, whenFull: "refuse" }),
  createOnClock: (now) => new MemoryStore({ maxRecordBytes: 64 * 1024, whenFull: "refuse", now }),
  sibling: {
    singleProcess: "a MemoryStore's keys live in its own process's memory: a second instance, or process, shares none",
  },
});

const response = (size = 10) => ({ status: 200, headers: [] as Array<[string, string]>, body: new Uint8Array(size) });

describe("memory store bounds", () => {
  it("evicts the oldest records past maxEntries, never a live lock", async () => {
    const store = new MemoryStore({ evictAfterMs: 0, maxEntries: 3 });
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
    const store = new MemoryStore({ evictAfterMs: 0, maxEntries: 2 });
    await store.claim("a", { fingerprint: "f", lockTtlMs: 60_000 });
    await store.claim("b", { fingerprint: "f", lockTtlMs: 60_000 });
    await expect(store.claim("c", { fingerprint: "f", lockTtlMs: 60_000 })).rejects.toThrow(StoreUnavailableError);
  });

  it("expired locks free their slots without timers", async () => {
    let now = 1_000;
    const store = new MemoryStore({ evictAfterMs: 0, maxEntries: 2, now: () => now });
    await store.claim("a", { fingerprint: "f", lockTtlMs: 100 });
    await store.claim("b", { fingerprint: "f", lockTtlMs: 100 });
    now += 101;
    expect((await store.claim("c", { fingerprint: "f", lockTtlMs: 100 })).state).toBe("claimed");
    expect(store.size).toBeLessThanOrEqual(2);
  });

  it("evicts the oldest records past maxBytes", async () => {
    const store = new MemoryStore({ evictAfterMs: 0, maxBytes: 250, maxRecordBytes: 100 });
    for (const key of ["a", "b", "c"]) {
      const claimed = await store.claim(key, { fingerprint: "f", lockTtlMs: 60_000 });
      if (claimed.state !== "claimed") throw new Error("expected a win");
      await store.complete(key, claimed.token, response(100), { ttlMs: 60_000 });
    }
    expect(store.size).toBe(2);
    expect((await store.claim("a", { fingerprint: "f", lockTtlMs: 1 })).state).toBe("claimed");
    expect((await store.claim("c", { fingerprint: "f", lockTtlMs: 1 })).state).toBe("completed");
  });

  it("a record's own complete never evicts it: a slow request completed last is kept, the older record goes", async () => {
    const store = new MemoryStore({ evictAfterMs: 0, maxBytes: 1_000, maxRecordBytes: 600 });
    const claim = async (key: string) => {
      const claimed = await store.claim(key, { fingerprint: "f", lockTtlMs: 60_000 });
      if (claimed.state !== "claimed") throw new Error("expected a win");
      return claimed.token;
    };
    const slow = await claim("slow"); // claimed first, so the oldest lock
    const fast = await claim("fast");
    expect(await store.complete("fast", fast, response(500), { ttlMs: 60_000 })).toBe(true);
    expect(await store.complete("slow", slow, response(600), { ttlMs: 60_000 })).toBe(true);
    expect(store.size).toBe(1);
    // The newest of its lane once completed, "slow" is now evicted in the order of its completion.
    const later = await claim("later");
    expect(await store.complete("later", later, response(300), { ttlMs: 60_000 })).toBe(true);
    expect(store.size).toBe(2); // 900 bytes
    const again = await claim("again");
    expect(await store.complete("again", again, response(200), { ttlMs: 60_000 })).toBe(true);
    const stateOf = async (key: string) => (await store.claim(key, { fingerprint: "f", lockTtlMs: 1 })).state;
    expect([await stateOf("later"), await stateOf("again")]).toEqual(["completed", "completed"]);
    expect([await stateOf("fast"), await stateOf("slow")]).toEqual(["claimed", "claimed"]); // both evicted
  });

  it("keeps records that fill maxBytes exactly; one byte more evicts the oldest", async () => {
    const store = new MemoryStore({ evictAfterMs: 0, maxBytes: 300, maxRecordBytes: 100 });
    const put = async (key: string, size: number) => {
      const claimed = await store.claim(key, { fingerprint: "f", lockTtlMs: 60_000 });
      if (claimed.state !== "claimed") throw new Error(`expected to win ${key}`);
      expect(await store.complete(key, claimed.token, response(size), { ttlMs: 60_000 })).toBe(true);
    };
    // Claims of completed keys change nothing; a claim of an evicted key adds a lock (so last).
    const state = async (key: string) => (await store.claim(key, { fingerprint: "f", lockTtlMs: 60_000 })).state;
    for (const key of ["a", "b", "c"]) await put(key, 100);
    expect(store.size).toBe(3); // 300 bytes: exactly maxBytes, all kept
    expect(await state("a")).toBe("completed");
    await put("d", 1);
    for (const key of ["b", "c", "d"]) expect(await state(key), key).toBe("completed");
    expect(await state("a")).toBe("claimed");
  });

  it("frees an expired lock's slot before evicting a record, though the sweep did not reach it", async () => {
    let now = 0;
    const store = new MemoryStore({ evictAfterMs: 0, maxEntries: 6, now: () => now });
    const claim = (key: string, lockTtlMs = 60_000) => store.claim(key, { fingerprint: "f", lockTtlMs });
    // Each winning claim's sweep moves the two oldest live locks to the end of theirs, so these
    // claims leave the locks, oldest first: p, x, lapsing, y, q. The next claim's sweep spends
    // its budget moving p and x; the lapsed lock, then the oldest, goes before any record.
    for (const key of ["x", "y", "p", "q"]) await claim(key);
    await claim("lapsing", 100);
    const record = await claim("record");
    if (record.state !== "claimed") throw new Error("expected a win");
    await store.complete("record", record.token, response(), { ttlMs: 60_000 });
    now = 100; // the lapsing lock's lease has ended: its slot may go, the record may not
    expect((await claim("new")).state).toBe("claimed");
    expect((await claim("record")).state).toBe("completed");
    for (const key of ["x", "y", "p", "q"]) expect((await claim(key)).state, key).toBe("in_flight");
    expect(store.size).toBe(6);
  });

  it("frees a lapsed lock behind live ones before evicting a record, though neither the sweep nor eviction meets it", async () => {
    let now = 0;
    const store = new MemoryStore({ evictAfterMs: 0, maxEntries: 7, now: () => now });
    const claim = (key: string, lockTtlMs = 60_000) => store.claim(key, { fingerprint: "f", lockTtlMs });
    // Each winning claim's sweep moves the two oldest live locks to the end of theirs, so these
    // claims leave the locks in the order x4, x1, x3, lapsing, x2, x0. The next claim's sweep
    // moves x4 and x1: x3, live, is then the oldest lock, the lapsed one behind it.
    for (const key of ["x0", "x1", "x2", "x3", "x4"]) await claim(key);
    await claim("lapsing", 100);
    const record = await claim("record");
    if (record.state !== "claimed") throw new Error("expected a win");
    await store.complete("record", record.token, response(), { ttlMs: 60_000 });
    now = 100; // the lapsing lock's lease has ended: its slot may go, the record may not
    expect((await claim("new")).state).toBe("claimed");
    expect((await claim("record")).state).toBe("completed");
    for (const key of ["x0", "x1", "x2", "x3", "x4"]) expect((await claim(key)).state, key).toBe("in_flight");
    expect(store.size).toBe(7);
  });

  it("refuses to complete inside a transaction it cannot join, and the lock stays with its owner", async () => {
    const store = new MemoryStore();
    const claimed = await store.claim("k", { fingerprint: "f", lockTtlMs: 60_000 });
    if (claimed.state !== "claimed") throw new Error("expected a win");
    await expect(store.complete("k", claimed.token, response(), { ttlMs: 60_000, transaction: {} })).rejects.toThrow(
      InterlockConfigError,
    );
    expect((await store.claim("k", { fingerprint: "f", lockTtlMs: 60_000 })).state).toBe("in_flight");
    expect(await store.complete("k", claimed.token, response(), { ttlMs: 60_000 })).toBe(true);
  });

  it("a refused header pair leaves the byte bound in force", async () => {
    const store = new MemoryStore({ evictAfterMs: 0, maxBytes: 1_000, maxRecordBytes: 500 });
    const bad = await store.claim("bad", { fingerprint: "f", lockTtlMs: 60_000 });
    if (bad.state !== "claimed") throw new Error("expected a win");
    const headers = [["content-length", 400]] as unknown as Array<[string, string]>;
    await expect(
      store.complete("bad", bad.token, { status: 200, headers, body: new Uint8Array(400) }, { ttlMs: 60_000 }),
    ).rejects.toThrow(InterlockConfigError);
    for (let i = 0; i < 10; i++) {
      const claimed = await store.claim(`k${i}`, { fingerprint: "f", lockTtlMs: 60_000 });
      if (claimed.state !== "claimed") throw new Error("expected a win");
      await store.complete(`k${i}`, claimed.token, response(400), { ttlMs: 60_000 });
    }
    let kept = 0;
    for (let i = 0; i < 10; i++) {
      if ((await store.claim(`k${i}`, { fingerprint: "f", lockTtlMs: 1 })).state === "completed") kept++;
    }
    expect(kept).toBe(2); // 2 × 400 bytes fit in 1,000
  });

  /** Writes 1,000 records that expire after 10 ms, one per ms (`tick` moves the store's clock on). */
  const writeShortLivedRecords = async (store: MemoryStore, tick: () => void) => {
    for (let i = 0; i < 1_000; i++) {
      const claimed = await store.claim(`k${i}`, { fingerprint: "f", lockTtlMs: 1_000 });
      if (claimed.state !== "claimed") throw new Error("expected a win");
      await store.complete(`k${i}`, claimed.token, response(), { ttlMs: 10 });
      tick();
    }
  };

  it("sweeps expired records as it writes, keeping memory flat", async () => {
    let now = 0;
    const store = new MemoryStore({ now: () => now });
    await writeShortLivedRecords(store, () => now++);
    expect(store.size).toBeLessThan(20);
  });

  it("sweeps expired records past a lock held at the oldest end", async () => {
    let now = 0;
    const store = new MemoryStore({ now: () => now });
    await store.claim("slow", { fingerprint: "f", lockTtlMs: 600_000 });
    await writeShortLivedRecords(store, () => now++);
    expect(store.size).toBeLessThan(20);
    expect((await store.claim("slow", { fingerprint: "f", lockTtlMs: 1 })).state).toBe("in_flight");
  });

  it("refuses nonsense options", () => {
    expect(() => new MemoryStore({ maxEntries: 0 })).toThrow();
    expect(() => new MemoryStore({ maxBytes: 10, maxRecordBytes: 20 })).toThrow();
    // A record's size is kept in 32 bits.
    expect(() => new MemoryStore({ maxBytes: 2 ** 33, maxRecordBytes: 2 ** 32 })).toThrow(InterlockConfigError);
    expect(new MemoryStore({ maxBytes: 2 ** 33, maxRecordBytes: 2 ** 32 - 1 }).maxRecordBytes).toBe(2 ** 32 - 1);
  });

  it("keeps sizes past 16 bits and every three-digit status exactly, and counts them against maxBytes", async () => {
    const store = new MemoryStore({ evictAfterMs: 0, maxBytes: 300_000, maxRecordBytes: 200_000 });
    const large = (fill: number) => ({
      status: 999,
      headers: [] as Array<[string, string]>,
      body: new Uint8Array(120_000).fill(fill),
    });
    for (const [key, fill] of [
      ["first", 1],
      ["second", 2],
    ] as const) {
      const claim = await store.claim(key, { fingerprint: "f", lockTtlMs: 60_000 });
      if (claim.state !== "claimed") throw new Error("expected a win");
      expect(await store.complete(key, claim.token, large(fill), { ttlMs: 60_000 })).toBe(true);
    }
    const second = await store.claim("second", { fingerprint: "f", lockTtlMs: 60_000 });
    if (second.state !== "completed") throw new Error("expected the record");
    const { record } = second;
    expect([record.status, record.body.length, record.body[119_999]]).toEqual([999, 120_000, 2]);
    // A third record of 120,000 bytes passes 300,000: the oldest goes, and only it.
    const third = await store.claim("third", { fingerprint: "f", lockTtlMs: 60_000 });
    if (third.state !== "claimed") throw new Error("expected a win");
    await store.complete("third", third.token, large(3), { ttlMs: 60_000 });
    expect((await store.claim("first", { fingerprint: "f", lockTtlMs: 60_000 })).state).toBe("claimed");
    expect((await store.claim("second", { fingerprint: "f", lockTtlMs: 60_000 })).state).toBe("completed");
  });
});

describe('memory store whenFull: "refuse" (records kept for their whole retention)', () => {
  const claimComplete = async (store: MemoryStore, key: string, ttlMs: number, size = 10) => {
    const claimed = await store.claim(key, { fingerprint: "f", lockTtlMs: 60_000 });
    if (claimed.state !== "claimed") throw new Error(`expected a win for ${key}`);
    await store.complete(key, claimed.token, response(size), { ttlMs });
  };
  const stateOf = async (store: MemoryStore, key: string) =>
    (await store.claim(key, { fingerprint: "f", lockTtlMs: 60_000 })).state;

  it("past maxEntries refuses a new key as unavailable, and every record stays till its retention ends", async () => {
    let now = 1_000;
    const store = new MemoryStore({ maxEntries: 3, whenFull: "refuse", now: () => now });
    for (const key of ["r1", "r2", "r3"]) await claimComplete(store, key, 60_000);
    await expect(store.claim("flood", { fingerprint: "f", lockTtlMs: 60_000 })).rejects.toThrow(
      /full: 3 live keys \(maxEntries 3\)/,
    );
    // Its 503 says to come back when the first record ends, not in the 2 s of a store down.
    now += 15_000;
    await expect(store.claim("flood", { fingerprint: "f", lockTtlMs: 60_000 })).rejects.toMatchObject({
      retryAfterSeconds: 45,
    });
    expect([await stateOf(store, "r1"), await stateOf(store, "r2"), await stateOf(store, "r3")]).toEqual([
      "completed",
      "completed",
      "completed",
    ]);
    now += 60_001;
    expect(await stateOf(store, "flood")).toBe("claimed");
  });

  it("past maxBytes (no room for one more record) refuses a new key; the records stay", async () => {
    const store = new MemoryStore({ maxBytes: 250, maxRecordBytes: 100, whenFull: "refuse" });
    await claimComplete(store, "a", 60_000, 100);
    await claimComplete(store, "b", 60_000, 100);
    await expect(store.claim("c", { fingerprint: "f", lockTtlMs: 60_000 })).rejects.toThrow(/maxBytes/);
    expect([await stateOf(store, "a"), await stateOf(store, "b")]).toEqual(["completed", "completed"]);
  });

  it("drops expired entries completed after a longer-kept record: each retention has a lane of its own", async () => {
    let now = 1_000;
    const store = new MemoryStore({ maxEntries: 3, whenFull: "refuse", now: () => now });
    await claimComplete(store, "long", 3_600_000);
    await claimComplete(store, "short1", 100);
    await claimComplete(store, "short2", 100);
    now += 101;
    expect(await stateOf(store, "new")).toBe("claimed");
    expect(await stateOf(store, "long")).toBe("completed");
  });

  it("once refused, claims again as soon as the first live entry ends, not later", async () => {
    let now = 1_000;
    const store = new MemoryStore({ maxEntries: 2, whenFull: "refuse", now: () => now });
    await store.claim("a", { fingerprint: "f", lockTtlMs: 100 });
    await store.claim("b", { fingerprint: "f", lockTtlMs: 200 });
    await expect(store.claim("c", { fingerprint: "f", lockTtlMs: 100 })).rejects.toThrow(StoreUnavailableError);
    // 100 ms to the first lease's end: Retry-After counts whole seconds, at least 1.
    await expect(store.claim("c", { fingerprint: "f", lockTtlMs: 100 })).rejects.toMatchObject({
      retryAfterSeconds: 1,
    });
    now += 50;
    await expect(store.claim("c", { fingerprint: "f", lockTtlMs: 100 })).rejects.toThrow(StoreUnavailableError);
    now += 51; // "a" has ended
    expect(await stateOf(store, "c")).toBe("claimed");
  });

  it("a released key frees its room at once", async () => {
    const store = new MemoryStore({ maxEntries: 1, whenFull: "refuse" });
    const a = await store.claim("a", { fingerprint: "f", lockTtlMs: 60_000 });
    await expect(store.claim("b", { fingerprint: "f", lockTtlMs: 60_000 })).rejects.toThrow(StoreUnavailableError);
    if (a.state !== "claimed") throw new Error("expected a win");
    await store.release("a", a.token);
    expect(await stateOf(store, "b")).toBe("claimed");
  });

  it("an unknown whenFull is refused when the store is made", () => {
    expect(() => new MemoryStore({ whenFull: "lru" as never })).toThrow(InterlockConfigError);
  });
});

describe('memory store whenFull: "evict-oldest" (the default), full of live locks', () => {
  it("refuses while every entry is a live lock, and evicts a record as soon as one completes", async () => {
    const store = new MemoryStore({ evictAfterMs: 0, maxEntries: 2 });
    const a = await store.claim("a", { fingerprint: "f", lockTtlMs: 60_000 });
    await store.claim("b", { fingerprint: "f", lockTtlMs: 60_000 });
    await expect(store.claim("c", { fingerprint: "f", lockTtlMs: 60_000 })).rejects.toThrow(StoreUnavailableError);
    if (a.state !== "claimed") throw new Error("expected a win");
    await store.complete("a", a.token, response(), { ttlMs: 60_000 });
    expect((await store.claim("c", { fingerprint: "f", lockTtlMs: 60_000 })).state).toBe("claimed"); // "a" evicted
  });
});

describe('memory store whenFull: "evict-oldest": records younger than evictAfterMs are never evicted', () => {
  const claim = (store: MemoryStore, key: string) => store.claim(key, { fingerprint: "f", lockTtlMs: 60_000 });
  async function completed(store: MemoryStore, key: string, size = 10): Promise<void> {
    const won = await claim(store, key);
    if (won.state !== "claimed") throw new Error(`expected to claim ${key}`);
    await store.complete(key, won.token, response(size), { ttlMs: 24 * 60 * 60 * 1000 });
  }

  it("a flood of new keys is refused (503) rather than evict a record completed minutes ago", async () => {
    let now = 1_000_000;
    const store = new MemoryStore({ maxEntries: 3, now: () => now });
    await completed(store, "victim");
    await completed(store, "flood-1");
    await completed(store, "flood-2");
    now += 10 * 60 * 1000;
    const refused = claim(store, "flood-3");
    await expect(refused).rejects.toThrow(StoreUnavailableError);
    await expect(refused).rejects.toThrow(/evictAfterMs \(3600000 ms\)/);
    // Come back when "victim" is an hour old and may go: 50 minutes from now.
    await expect(refused).rejects.toMatchObject({ retryAfterSeconds: 50 * 60 });
    now += 20 * 60 * 1000;
    await expect(claim(store, "flood-4")).rejects.toMatchObject({ retryAfterSeconds: 30 * 60 });
    expect((await claim(store, "victim")).state).toBe("completed"); // still replayed
  });

  it("evicts the least recently completed record once it is evictAfterMs old", async () => {
    let now = 1_000_000;
    const store = new MemoryStore({ maxEntries: 2, evictAfterMs: 5_000, now: () => now });
    await completed(store, "old");
    now += 1_000;
    await completed(store, "newer");
    now += 4_000; // "old" is 5 s old, "newer" 4 s
    expect((await claim(store, "next")).state).toBe("claimed");
    expect((await claim(store, "newer")).state).toBe("completed");
    expect(store.size).toBe(2); // "old" went
  });

  it("a slow request's record, claimed first but completed last, is not the one evicted", async () => {
    let now = 1_000_000;
    const store = new MemoryStore({ maxEntries: 2, evictAfterMs: 5_000, now: () => now });
    const slow = await claim(store, "slow");
    await completed(store, "fast");
    now += 6_000;
    if (slow.state !== "claimed") throw new Error("expected a win");
    await store.complete("slow", slow.token, response(), { ttlMs: 60_000 });
    expect((await claim(store, "next")).state).toBe("claimed"); // "fast", completed 6 s ago, went
    expect((await claim(store, "slow")).state).toBe("completed");
  });

  it("records completed while none may go can pass maxBytes; new claims are then refused until they may", async () => {
    let now = 1_000_000;
    const store = new MemoryStore({ maxBytes: 300, maxRecordBytes: 200, evictAfterMs: 5_000, now: () => now });
    const first = await claim(store, "a");
    const second = await claim(store, "b");
    if (first.state !== "claimed" || second.state !== "claimed") throw new Error("expected wins");
    await store.complete("a", first.token, response(200), { ttlMs: 60_000 });
    await store.complete("b", second.token, response(200), { ttlMs: 60_000 }); // 400 of 300 bytes: "a" is too young to go
    await expect(claim(store, "c")).rejects.toThrow(/bytes of records \(maxBytes\)/);
    now += 5_000;
    expect((await claim(store, "c")).state).toBe("claimed"); // "a" went
    expect((await claim(store, "b")).state).toBe("completed");
  });

  it("a store refusing claims while full of young records takes them again once one of them expires", async () => {
    let now = 1_000_000;
    const store = new MemoryStore({ maxEntries: 3, now: () => now });
    const record = async (key: string, ttlMs: number) => {
      const won = await claim(store, key);
      if (won.state !== "claimed") throw new Error(`expected to claim ${key}`);
      await store.complete(key, won.token, response(), { ttlMs });
    };
    await record("short-1", 10 * 60 * 1000);
    await record("short-2", 10 * 60 * 1000);
    await record("long", 24 * 60 * 60 * 1000);
    // Refused until the first short record ends, in 10 minutes: it may go then, young as it is.
    await expect(claim(store, "refused")).rejects.toMatchObject({ retryAfterSeconds: 10 * 60 });
    now += 12 * 60 * 1000; // the short records expired; none is an hour old
    expect((await claim(store, "next")).state).toBe("claimed");
    expect((await claim(store, "long")).state).toBe("completed");
  });

  it("while full of young records, a completion does not make the next refused claim walk the locks", async () => {
    let now = 1_000_000;
    const store = new MemoryStore({ maxEntries: 1_000, now: () => now });
    const inFlight: Array<{ key: string; token: string }> = [];
    for (let i = 0; i < 1_000; i++) {
      const won = await claim(store, `k${i}`);
      if (won.state !== "claimed") throw new Error("expected a win");
      if (i < 50) inFlight.push({ key: `k${i}`, token: won.token });
      else await store.complete(`k${i}`, won.token, response(), { ttlMs: 24 * 60 * 60 * 1000 });
    }
    await expect(claim(store, "refused")).rejects.toThrow(StoreUnavailableError); // one walk, then known
    // A walk over the locks (whose leases differ) steps from one to the next.
    const step = vi.spyOn(Slots.prototype, "next");
    try {
      for (const { key, token } of inFlight) {
        now += 1_000;
        await store.complete(key, token, response(), { ttlMs: 24 * 60 * 60 * 1000 });
        await expect(claim(store, `new-${key}`)).rejects.toThrow(StoreUnavailableError);
      }
      // A walk per refused claim would step over the locks left: about 1,250 steps in all.
      expect(step.mock.calls.length).toBeLessThan(200);
    } finally {
      step.mockRestore();
    }
  });

  it("while over maxBytes with only young records, a completion does not walk the locks", async () => {
    const now = 1_000_000;
    const store = new MemoryStore({ maxBytes: 100_000, maxRecordBytes: 1_000, now: () => now });
    const inFlight: Array<{ key: string; token: string }> = [];
    for (let i = 0; i < 150; i++) {
      const won = await claim(store, `k${i}`);
      if (won.state !== "claimed") throw new Error("expected a win");
      inFlight.push({ key: `k${i}`, token: won.token });
    }
    const step = vi.spyOn(Slots.prototype, "next");
    try {
      // 150 records of about 900 bytes: past maxBytes from the 111th on, none old enough to go.
      for (const { key, token } of inFlight) {
        await store.complete(key, token, response(900), { ttlMs: 24 * 60 * 60 * 1000 });
      }
      expect(step.mock.calls.length).toBeLessThan(200); // a walk per completion would step about 40 × 20 times
    } finally {
      step.mockRestore();
    }
    await expect(claim(store, "next")).rejects.toThrow(/maxBytes/);
  });

  it("evictAfterMs must be a whole number of ms, 0 or more", () => {
    expect(() => new MemoryStore({ evictAfterMs: -1 })).toThrow(InterlockConfigError);
    expect(() => new MemoryStore({ evictAfterMs: 1.5 })).toThrow(InterlockConfigError);
    expect(() => new MemoryStore({ evictAfterMs: 0 })).not.toThrow();
    // A store that refuses when full evicts nothing: the option would be silently ignored.
    expect(() => new MemoryStore({ whenFull: "refuse", evictAfterMs: 5 })).toThrow(/evictAfterMs applies to whenFull/);
  });
});

describe("memory store with records of several retentions (webhooks and idempotency keys in one store)", () => {
  const MINUTE = 60_000;
  const DAY = 24 * 60 * MINUTE;
  const claim = (store: MemoryStore, key: string, lockTtlMs = 60_000) =>
    store.claim(key, { fingerprint: "f", lockTtlMs });
  const stateOf = async (store: MemoryStore, key: string) => (await claim(store, key)).state;
  async function record(store: MemoryStore, key: string, ttlMs: number, size = 10): Promise<void> {
    const won = await claim(store, key);
    if (won.state !== "claimed") throw new Error(`expected to claim ${key}, got ${won.state}`);
    expect(await store.complete(key, won.token, response(size), { ttlMs })).toBe(true);
  }

  /** A store on a simulated clock, and when each record written through `traffic` ends. */
  function storeOnClock(options: MemoryStoreOptions = {}) {
    const clock = { now: 1_000_000, ends: [] as number[], writes: 0 };
    return { clock, store: new MemoryStore({ ...options, now: () => clock.now }) };
  }

  /**
   * Writes `days` of records on the store's clock, one every 5 minutes, the i-th kept
   * `retentionAt(i)`. Answers the most entries the store held past its live records.
   */
  async function traffic(
    { clock, store }: ReturnType<typeof storeOnClock>,
    days: number,
    retentionAt: (i: number) => number,
  ): Promise<number> {
    let mostExpiredHeld = 0;
    for (let n = 0; n < (days * DAY) / (5 * MINUTE); n++) {
      clock.now += 5 * MINUTE;
      const i = clock.writes++;
      await record(store, `k${i}`, retentionAt(i));
      clock.ends.push(clock.now + retentionAt(i));
      const live = clock.ends.filter((end) => end > clock.now).length;
      mostExpiredHeld = Math.max(mostExpiredHeld, store.size - live);
    }
    return mostExpiredHeld;
  }

  it("frees the expired records behind a longer-kept one: a 7-day delivery among 24-hour keys", async () => {
    const running = storeOnClock();
    const { store } = running;
    await record(store, "wh:evt_1", 7 * DAY);
    // 288 keys a day, each kept 24 hours, up to the delivery's end and past it: the store holds
    // the live keys, the delivery while it is live, and at most the expired key or two that the
    // next write sweeps.
    expect(await traffic(running, 6.9, () => DAY)).toBeLessThanOrEqual(3);
    expect(store.size).toBeLessThanOrEqual(288 + 3);
    expect(await stateOf(store, "wh:evt_1")).toBe("completed"); // kept for its whole retention
    expect(await traffic(running, 3, () => DAY)).toBeLessThanOrEqual(2);
    expect(await stateOf(store, "wh:evt_1")).toBe("claimed"); // and no longer
  });

  it("holds its live records and barely more under mixed traffic: deliveries kept 7 days in runs, keys kept 24 hours", async () => {
    // Of every 12 writes (an hour), 3 in a row are deliveries, each ahead of 24-hour keys that end before it.
    expect(await traffic(storeOnClock(), 10, (i) => (i % 12 < 3 ? 7 * DAY : DAY))).toBeLessThanOrEqual(2);
  });

  it("a full store evicts the least recently completed record, whatever its retention", async () => {
    let now = 1_000_000;
    const store = new MemoryStore({ maxEntries: 4, evictAfterMs: 0, now: () => now });
    const order = [
      ["idem:1", DAY],
      ["wh:1", 7 * DAY],
      ["wh:2", 7 * DAY],
      ["idem:2", DAY],
    ] as const;
    for (const [key, ttlMs] of order) {
      await record(store, key, ttlMs);
      now += 1;
    }
    // Each new record (of a third retention) takes the place of the least recently completed:
    // with 4 held, the later ones all still answer (a claim of a completed key adds nothing).
    for (let i = 0; i < order.length; i++) {
      await record(store, `new:${i}`, 60 * MINUTE);
      now += 1;
      expect(store.size).toBe(4);
      for (const [key] of order.slice(i + 1))
        expect(await stateOf(store, key), `${key} after ${i + 1}`).toBe("completed");
    }
  });

  it("a full store drops expired entries anywhere before it evicts a live record: the 7-day record survives", async () => {
    let now = 1_000_000;
    const store = new MemoryStore({ maxEntries: 5, now: () => now });
    // In the ring in this order. The sweep stops at "wh:1": it ends before "wh:3", completed
    // last, and "wh:2" right behind it is live; the expired keys lie beyond its reach.
    for (const [key, ttlMs] of [
      ["wh:1", 7 * DAY],
      ["wh:2", 7 * DAY],
      ["idem:1", DAY],
      ["idem:2", DAY],
      ["wh:3", 7 * DAY],
    ] as const) {
      await record(store, key, ttlMs);
      now += 1;
    }
    now += DAY; // the keys expired; the deliveries, a day old, could be evicted
    expect(await stateOf(store, "new")).toBe("claimed");
    expect(store.size).toBe(4);
    for (const key of ["wh:1", "wh:2", "wh:3"]) expect(await stateOf(store, key), key).toBe("completed");
    expect(await stateOf(store, "idem:1")).toBe("claimed");
  });

  it("a completion past maxBytes drops expired records before it evicts a live one", async () => {
    let now = 1_000_000;
    const store = new MemoryStore({ maxBytes: 250, maxRecordBytes: 100, now: () => now });
    await record(store, "wh:1", 7 * DAY, 100); // the least recently completed
    await record(store, "idem:1", DAY, 100);
    const slow = await claim(store, "slow", 2 * DAY);
    if (slow.state !== "claimed") throw new Error("expected a win");
    now += DAY + 1;
    // 100 live bytes and 100 expired: 100 more pass maxBytes, and the expired record goes.
    expect(await store.complete("slow", slow.token, response(100), { ttlMs: DAY })).toBe(true);
    expect(store.size).toBe(2);
    expect(await stateOf(store, "wh:1")).toBe("completed");
    expect(await stateOf(store, "slow")).toBe("completed");
  });

  it("a full store evicting on every claim walks the locks for lapsed ones once, not on every claim", async () => {
    const now = 1_000_000;
    const store = new MemoryStore({ evictAfterMs: 0, maxEntries: 1_000, now: () => now });
    for (let i = 0; i < 500; i++) await claim(store, `lock${i}`);
    for (let i = 0; i < 500; i++) await record(store, `k${i}`, DAY);
    const step = vi.spyOn(Slots.prototype, "next");
    try {
      for (let i = 500; i < 1_000; i++) await record(store, `k${i}`, DAY);
      // One walk steps over the 500 locks: on every claim, 500 of them.
      expect(step.mock.calls.length).toBeLessThan(1_000);
    } finally {
      step.mockRestore();
    }
    expect(store.size).toBe(1_000);
    expect(await stateOf(store, "k499")).toBe("claimed");
    expect(await stateOf(store, "k999")).toBe("completed");
    expect(await stateOf(store, "lock0")).toBe("in_flight");
  });
});

describe("memory store eviction order under churn", () => {
  // Eviction takes the least recently completed record, the first of its lane (O(1) per
  // eviction; bench/stores-memory.mjs measures it). These check that the order stays correct:
  // re-completed keys count as new, and released keys claimed again are the newest.
  it("evicts the oldest record, counting a re-completed key as new", async () => {
    let now = 0;
    const store = new MemoryStore({ evictAfterMs: 0, maxEntries: 3, now: () => now });
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
    const store = new MemoryStore({ evictAfterMs: 0, maxEntries: 100 });
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
    const store = new MemoryStore({ evictAfterMs: 0, maxEntries: 10 });
    const lock = await store.claim("slow", { fingerprint: "f", lockTtlMs: 600_000 });
    if (lock.state !== "claimed") throw new Error("expected a win");
    for (let i = 0; i < 200; i++) await claimComplete(store, `k${i}`, bodyFor(i, 5));
    expect((await store.claim("slow", { fingerprint: "f", lockTtlMs: 1 })).state).toBe("in_flight");
    expect(await store.complete("slow", lock.token, response(3), { ttlMs: 60_000 })).toBe(true);
    expect((await store.claim("slow", { fingerprint: "f", lockTtlMs: 1 })).state).toBe("completed");
    expect(store.size).toBeLessThanOrEqual(10);
  });

  it("a released key re-claimed later is the newest, not evicted in its old place", async () => {
    const store = new MemoryStore({ evictAfterMs: 0, maxEntries: 3 });
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
    const store = new MemoryStore({ evictAfterMs: 0, maxEntries: 1_000, maxBytes: 10_000, maxRecordBytes: 1_000 });
    for (let i = 0; i < 100; i++) await claimComplete(store, `k${i}`, bodyFor(i, 990)); // 990 + "x-key" + key
    // Each record is ~1,000 bytes: at most 10 fit; the newest 9 or 10 remain.
    expect(store.size).toBeGreaterThanOrEqual(9);
    expect(store.size).toBeLessThanOrEqual(10);
    expect((await store.claim("k99", { fingerprint: "f", lockTtlMs: 1 })).state).toBe("completed");
    expect((await store.claim("k89", { fingerprint: "f", lockTtlMs: 1 })).state).toBe("claimed");
  });
});

describe("memory store keys", () => {
  it("refuses keys no store holds on every operation, also right after a valid key", async () => {
    const store = new MemoryStore();
    const valid = await store.claim("-", { fingerprint: "f", lockTtlMs: 60_000 });
    if (valid.state !== "claimed") throw new Error("expected a win");
    for (const bad of ["", "x".repeat(MAX_KEY_LENGTH + 1), "a\u0000b", "\uD800", "a\uDC00"]) {
      await expect(store.claim(bad, { fingerprint: "f", lockTtlMs: 1 })).rejects.toThrow(InterlockConfigError);
      await expect(store.complete(bad, valid.token, response(), { ttlMs: 1 })).rejects.toThrow(InterlockConfigError);
      await expect(store.release(bad, valid.token)).rejects.toThrow(InterlockConfigError);
    }
    // The same text as a key just checked, in another string, is as valid as it was.
    const longest = "y".repeat(MAX_KEY_LENGTH);
    // A lease long enough to still hold at the second claim, however slow the machine.
    expect((await store.claim(longest, { fingerprint: "f", lockTtlMs: 60_000 })).state).toBe("claimed");
    expect(
      (await store.claim(["y".repeat(MAX_KEY_LENGTH - 1), "y"].join(""), { fingerprint: "f", lockTtlMs: 60_000 }))
        .state,
    ).toBe("in_flight");
    expect(await store.release("-", valid.token)).toBe(true);
  });

  it("refuses the empty key and token once a claim's hint names a freed slot (a hint's slot is free, not a lock)", async () => {
    const store = new MemoryStore();
    // 4,096 claims, each released at once: the hint of the counter 0 (which "" parses to) names a free slot.
    for (let i = 1; i <= 4_096; i++) {
      const claim = await store.claim(`k${i}`, { fingerprint: "f", lockTtlMs: 60_000 });
      if (claim.state !== "claimed") throw new Error("expected a win");
      expect(await store.release(`k${i}`, claim.token)).toBe(true);
    }
    await expect(store.complete("", "", response(), { ttlMs: 60_000 })).rejects.toThrow(InterlockConfigError);
    await expect(store.release("", "")).rejects.toThrow(InterlockConfigError);
    // Nothing was taken for a lock: a new claim is the only entry, and holds its key.
    expect((await store.claim("payment", { fingerprint: "f", lockTtlMs: 60_000 })).state).toBe("claimed");
    expect(store.size).toBe(1);
  });

  it.each(["evict-oldest", "refuse"] as const)(
    "%s: a full store takes a claim once a lease made shorter by extend has lapsed",
    async (whenFull) => {
      let now = 0;
      const store = new MemoryStore({ maxEntries: 8, whenFull, now: () => now });
      const tokens: string[] = [];
      for (let i = 0; i < 8; i++) {
        const claim = await store.claim(`k${i}`, { fingerprint: "f", lockTtlMs: 60_000 });
        if (claim.state !== "claimed") throw new Error("expected a win");
        tokens.push(claim.token);
      }
      // Full of locks held 60 s: refused, and nothing may go before then.
      await expect(store.claim("x", { fingerprint: "f", lockTtlMs: 1_000 })).rejects.toThrow(StoreUnavailableError);
      expect(await store.extend("k7", tokens[7] as string, 1_000)).toBe(true);
      now = 5_000; // k7's lease ended 4 s ago
      expect((await store.claim("x", { fingerprint: "f", lockTtlMs: 1_000 })).state).toBe("claimed");
    },
  );
});

describe("memory store key index (open addressing)", () => {
  // The index reads keys from the slots' key field and keeps hashes in another: here plain
  // arrays stand in for them.
  const indexOf = (slots: number, room = slots) => {
    const keys = Array.from({ length: room }, () => "");
    const hashes = Array.from({ length: room }, () => 0);
    const hashColumn = {
      get: (slot: number) => hashes[slot] as number,
      set: (slot: number, hash: number) => {
        hashes[slot] = hash;
      },
    };
    return { keys, index: new KeyIndex({ get: (slot) => keys[slot] as string }, hashColumn, slots) };
  };

  it("finds every key after removals shift the cells that follow, whatever was removed", () => {
    // 64 slots in 128 cells, filled to the limit and emptied in a random order, twice over:
    // every removal shifts a run back, and a lookup of every key checks nothing went missing.
    let seed = 7;
    const random = (n: number) => {
      seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
      return (seed >>> 8) % n;
    };
    const { keys, index } = indexOf(64);
    const live = new Set<number>();
    for (let round = 0; round < 2_000; round++) {
      const slot = random(64);
      if (live.has(slot)) {
        index.remove(slot);
        keys[slot] = "";
        live.delete(slot);
      } else {
        keys[slot] = `key-${round}`;
        index.insert(keys[slot] as string, slot);
        live.add(slot);
      }
      for (let s = 0; s < 64; s++) {
        if (live.has(s)) expect(index.find(keys[s] as string)).toBe(s);
      }
      expect(index.find(`key-${round + 1}`)).toBe(-1);
    }
  });

  it("keeps every key indexed where it is when growing", () => {
    const { keys, index } = indexOf(8);
    keys[1] = "a";
    index.insert("a", 1);
    keys[2] = "b";
    index.insert("b", 2);
    index.remove(1);
    keys[1] = "";
    expect(index.find("a")).toBe(-1);
    keys.push(...Array.from({ length: 8 }, () => ""));
    index.grow(16);
    expect([index.find("b"), index.find("a")]).toEqual([2, -1]);
    keys[12] = "c";
    index.insert("c", 12);
    expect([index.find("b"), index.find("c"), index.find("a")]).toEqual([2, 12, -1]);
    index.remove(2);
    expect([index.find("b"), index.find("c")]).toEqual([-1, 12]);
  });

  it("finds every key while it grows a few cells at a time, through inserts, removals and growths mid-drain", () => {
    // The index starts at 8 slots and grows, at random moments too (a growth while the last one
    // still drains finishes it first); a Map is the model. Each insert drains a few old cells,
    // so lookups and removals meet keys in either table.
    let seed = 23;
    const random = (n: number) => {
      seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
      return (seed >>> 8) % n;
    };
    const room = 8_192;
    let capacity = 8;
    const { keys, index } = indexOf(capacity, room);
    const slotOf = new Map<string, number>();
    const free = Array.from({ length: capacity }, (_, slot) => slot);
    const takeFree = () => {
      const at = random(free.length);
      const slot = free[at] as number;
      free[at] = free[free.length - 1] as number;
      free.pop();
      return slot;
    };
    const anyKey = () => [...slotOf.keys()][random(slotOf.size)] as string;
    const grow = () => {
      for (let slot = capacity; slot < 2 * capacity; slot++) free.push(slot);
      capacity *= 2;
      index.grow(capacity);
    };
    for (let round = 0; round < 12_000; round++) {
      const op = random(20);
      if (op < 11 && free.length > 0) {
        const key = `key-${round}`;
        const slot = takeFree();
        keys[slot] = key;
        index.insert(key, slot);
        slotOf.set(key, slot);
      } else if (op < 16 && slotOf.size > 0) {
        const key = anyKey();
        const slot = slotOf.get(key) as number;
        index.remove(slot);
        keys[slot] = "";
        free.push(slot);
        slotOf.delete(key);
      }
      if ((free.length === 0 || op === 19) && 2 * capacity <= room) grow();
      expect(index.find(`key-${round + 1}`)).toBe(-1);
      // Every key, often: a key a drain step left unreachable is found again by the next step.
      if (round % 3 === 0) {
        const lost = [...slotOf].filter(([key, slot]) => index.find(key) !== slot);
        expect(lost).toEqual([]);
      }
    }
    expect(capacity).toBe(room); // it grew all the way
    for (const [key, slot] of slotOf) expect(index.find(key)).toBe(slot);
  });

  it("keeps long runs findable while they drain: removals in the old table shift, a wrapped run moves whole", () => {
    // The seed fixed, keys chosen for their home cells: 14 sharing cell 9 (one run of 14 cells)
    // and 8 sharing cell 60 (a run wrapping past the last cell to 0..3) in 64 cells. Random keys
    // at a load of one half make runs of a few cells, where a drain step rarely stops mid-run.
    const seed = 0x1234567;
    const draws = vi
      .spyOn(globalThis.crypto, "getRandomValues")
      .mockImplementation(<T extends ArrayBufferView | null>(array: T): T => {
        (array as unknown as Int32Array)[0] = seed;
        return array;
      });
    try {
      const { keys, index } = indexOf(32, 128);
      const homed = (home: number, count: number, tag: string) => {
        const found: string[] = [];
        for (let i = 0; found.length < count; i++)
          if ((hashKey(`${tag}${i}`, seed) & 63) === home) found.push(`${tag}${i}`);
        return found;
      };
      const slotOf = new Map<string, number>();
      let next = 0;
      const insert = (key: string) => {
        keys[next] = key;
        index.insert(key, next);
        slotOf.set(key, next++);
      };
      const remove = (key: string) => {
        const slot = slotOf.get(key) as number;
        index.remove(slot);
        keys[slot] = "";
        slotOf.delete(key);
      };
      const lost = () => [...slotOf].filter(([key, slot]) => index.find(key) !== slot);
      const run = homed(9, 14, "a");
      const wrapped = homed(60, 8, "w");
      for (const key of [...run, ...wrapped]) insert(key);
      expect(draws).toHaveBeenCalledTimes(1);
      expect(lost()).toEqual([]);

      index.grow(64); // 128 cells; the 64 old ones drain eight per insert
      // Out of the middle of each run, while still in the old table: the rest shift back.
      remove(run[5] as string);
      remove(wrapped[2] as string);
      expect(lost()).toEqual([]);
      for (let i = 0; i < 10; i++) {
        insert(`new${i}`);
        expect(lost()).toEqual([]);
        if (i === 0) remove(run[10] as string); // a run cut by the drain at cell 8, in the old table
        if (i === 1) remove(wrapped[6] as string);
        expect(lost()).toEqual([]);
      }
      for (const key of [...slotOf.keys()]) {
        remove(key);
        expect(lost()).toEqual([]);
      }
      for (const key of [...run, ...wrapped]) expect(index.find(key)).toBe(-1);
    } finally {
      draws.mockRestore();
    }
  });

  it("hashes with a seed: keys chosen to collide under one seed spread out under another", () => {
    // What a client who knew the hash could do: pick keys that share a home cell.
    const cells = 1024;
    const colliding: string[] = [];
    for (let i = 0; colliding.length < 40; i++)
      if ((hashKey(`key-${i}`, 1) & (cells - 1)) === 0) colliding.push(`key-${i}`);
    const homes = new Set(colliding.map((key) => hashKey(key, 2) & (cells - 1)));
    expect(homes.size).toBeGreaterThan(30);
  });
});

describe("memory store made in global scope", () => {
  // Cloudflare Workers throw on random values outside a request, and apps make their store at
  // module top level (a Worker cannot start then): the hash seed is drawn on first use.
  it("draws no random value when made, and its seed from Web Crypto once used", async () => {
    const refused = vi.spyOn(globalThis.crypto, "getRandomValues").mockImplementation(() => {
      throw new Error("Disallowed operation called within global scope: generating random values");
    });
    let store: MemoryStore;
    try {
      store = new MemoryStore();
    } finally {
      refused.mockRestore();
    }
    const draws = vi.spyOn(globalThis.crypto, "getRandomValues");
    try {
      expect((await store.claim("k", { fingerprint: "f", lockTtlMs: 60_000 })).state).toBe("claimed");
      expect((await store.claim("k", { fingerprint: "f", lockTtlMs: 60_000 })).state).toBe("in_flight");
      expect(draws).toHaveBeenCalledTimes(1);
    } finally {
      draws.mockRestore();
    }
  });
});

describe("memory store slots (columns, lanes, index)", () => {
  const claimed = async (store: MemoryStore, key: string, lockTtlMs = 60_000) => {
    const result = await store.claim(key, { fingerprint: `fp-${key}`, lockTtlMs });
    if (result.state !== "claimed") throw new Error(`expected to win ${key}, got ${result.state}`);
    return result.token;
  };
  const bodyOf = (i: number, size: number) => Uint8Array.from({ length: size }, (_, j) => (i * 7 + j * 13) & 0xff);

  it("a released lock's slot is free at once, taken by the next claim: no lock is evicted, the bound holds", async () => {
    // maxEntries 3 gives 3 slots: those of the released locks are taken again, one after another.
    const store = new MemoryStore({ evictAfterMs: 0, maxEntries: 3 });
    await store.complete("record", await claimed(store, "record"), response(4), { ttlMs: 60_000 });
    const lock = await claimed(store, "lock");
    for (const key of ["a", "b", "c", "d"]) expect(await store.release(key, await claimed(store, key))).toBe(true);
    expect(store.size).toBe(2);
    await claimed(store, "new"); // the third slot, taken for the sixth time
    expect(store.size).toBe(3);
    expect((await store.claim("record", { fingerprint: "x", lockTtlMs: 1 })).state).toBe("completed");
    expect((await store.claim("lock", { fingerprint: "x", lockTtlMs: 1 })).state).toBe("in_flight");
    expect((await store.claim("new", { fingerprint: "x", lockTtlMs: 1 })).state).toBe("in_flight");
    for (let i = 0; i < 30; i++) {
      const token = await claimed(store, `n${i}`);
      if (i % 3 < 2) expect(await store.release(`n${i}`, token)).toBe(true);
      else expect(await store.complete(`n${i}`, token, response(3), { ttlMs: 60_000 })).toBe(true);
      expect(store.size).toBeLessThanOrEqual(3);
      expect((await store.claim("lock", { fingerprint: "x", lockTtlMs: 1 })).state).toBe("in_flight");
    }
    expect((await store.claim("n29", { fingerprint: "x", lockTtlMs: 1 })).state).toBe("completed");
    expect(await store.complete("lock", lock, response(2), { ttlMs: 60_000 })).toBe(true);
  });

  it("finds a lock by its token's slot, or by its key once 4,096 claims came after it; never another key's lock", async () => {
    const store = new MemoryStore({ maxEntries: 10_000 });
    const done = { ttlMs: 60_000 };
    const [a, b] = [await claimed(store, "a"), await claimed(store, "b")];
    // Each token names its own lock's slot: with another key it names nothing that key holds.
    expect(await store.complete("b", a, response(1), done)).toBe(false);
    expect(await store.release("a", b)).toBe(false);
    expect(await store.extend("b", a, 1_000)).toBe(false);
    // a's prefix with a counter 4,096 on (the same hint), and texts that are no token.
    const prefix = a.slice(0, a.lastIndexOf(".") + 1);
    const counterOfA = Number(a.slice(prefix.length));
    const made = [`${prefix}${counterOfA + 4_096}`, `${prefix}${"9".repeat(20)}`, `${prefix}-1`, prefix, "", "0"];
    for (const token of made) {
      for (const key of ["a", "b"]) {
        expect(await store.complete(key, token, response(1), done), `${key} ${token}`).toBe(false);
        expect(await store.release(key, token), `${key} ${token}`).toBe(false);
      }
    }
    // 4,096 claims later a's hint is another lock's: a is found by its key.
    for (let i = 0; i < 4_096; i++) await store.release(`n${i}`, await claimed(store, `n${i}`));
    expect(await store.complete("a", a, response(1), done)).toBe(true);
    expect(await store.release("b", b)).toBe(true);
    expect((await store.claim("a", { fingerprint: "x", lockTtlMs: 1 })).state).toBe("completed");
    expect((await store.claim("b", { fingerprint: "x", lockTtlMs: 1 })).state).toBe("claimed");
  });

  it("keeps every record intact while the store grows, taking freed slots first", async () => {
    let now = 0;
    const store = new MemoryStore({ evictAfterMs: 0, maxEntries: 5_000, now: () => now });
    // Short-lived records the sweep drops, so their slots are free and taken again.
    for (let i = 0; i < 700; i++) {
      await store.complete(`old${i}`, await claimed(store, `old${i}`), response(1), { ttlMs: 10 });
    }
    now = 100;
    const sizes = [0, 1, 127, 128, 129, 300];
    for (let i = 0; i < 3_000; i++) {
      const key = `k${i}`;
      const body = bodyOf(i, sizes[i % sizes.length] as number);
      await store.complete(
        key,
        await claimed(store, key),
        { status: 200 + (i % 7), headers: [["x-i", `${i}`]], body },
        {
          ttlMs: 60_000,
        },
      );
      body.fill(0xee); // the caller reuses its buffer
    }
    for (let i = 0; i < 3_000; i++) {
      const result = await store.claim(`k${i}`, { fingerprint: "other", lockTtlMs: 1 });
      if (result.state !== "completed") throw new Error(`k${i} lost: ${result.state}`);
      expect(result.record.body).toEqual(bodyOf(i, sizes[i % sizes.length] as number));
      expect(result.record.status).toBe(200 + (i % 7));
      expect(result.record.headers).toEqual([["x-i", `${i}`]]);
      expect(result.record.fingerprint).toBe(`fp-k${i}`);
    }
    expect((await store.claim("old0", { fingerprint: "f", lockTtlMs: 1 })).state).toBe("claimed");
  });

  it("keeps no column for short bodies till one is stored: bodiless records (a webhook receiver's) cost none", () => {
    const slots = new Slots(8_192);
    const empty = new Uint8Array(0);
    for (let i = 0; i < 2_000; i++) slots.setBody(slots.add(`bodiless${i}`), empty);
    const inlineBytes = () => slots.inline.reduce((sum, block) => sum + block.length, 0);
    expect(slots.capacity).toBe(2_048); // grown twice, the column still unmade
    expect(inlineBytes()).toBe(0);
    expect(slots.bodyCopy(slots.find("bodiless7"))).toEqual(empty);

    const first = slots.add("short"); // slot 2,000: the second block of 1,024 slots
    slots.setBody(first, bodyOf(1, 100));
    expect(inlineBytes()).toBe(1_024 * 128); // the block of the first short body, no other
    for (let i = 0; i < 3_000; i++) slots.setBody(slots.add(`after${i}`), bodyOf(i, i % 129));
    expect(slots.capacity).toBe(8_192);
    // Blocks 1 to 4 (slots 1,024 to 5,119), made as short bodies reached them: the first still
    // unmade, and none past the newest slot made (5,000).
    expect(slots.inline.map((block) => block.length / 128)).toEqual([0, 1_024, 1_024, 1_024, 1_024]);
    expect(slots.bodyCopy(slots.find("short"))).toEqual(bodyOf(1, 100));
    for (let i = 0; i < 3_000; i++) expect(slots.bodyCopy(slots.find(`after${i}`))).toEqual(bodyOf(i, i % 129));
    expect(slots.bodyCopy(slots.find("bodiless1999"))).toEqual(empty);
  });

  it("keeps every entry when its bound is not a whole number of blocks, freed slots taken again", async () => {
    let now = 0;
    // maxEntries 750: 750 slots, fewer than a block of 1,024.
    const store = new MemoryStore({ evictAfterMs: 0, maxEntries: 750, now: () => now });
    // Short-lived records the sweep drops: every slot made, then free.
    for (let i = 0; i < 750; i++) {
      await store.complete(`old${i}`, await claimed(store, `old${i}`), response(1), { ttlMs: 10 });
    }
    now = 100;
    // Records, released locks and locks kept, each in a slot freed before: no more can be made.
    const records: string[] = [];
    const locks = new Map<string, string>();
    for (let i = 0; i < 1_100; i++) {
      const key = `k${i}`;
      const token = await claimed(store, key);
      if (i % 3 === 0) {
        await store.complete(
          key,
          token,
          { status: 201, headers: [["x-i", `${i}`]], body: bodyOf(i, 5) },
          { ttlMs: 60_000 },
        );
        records.push(key);
      } else if (i % 50 === 1) locks.set(key, token);
      else expect(await store.release(key, token)).toBe(true);
    }
    for (const key of records) {
      const result = await store.claim(key, { fingerprint: "other", lockTtlMs: 1 });
      if (result.state !== "completed") throw new Error(`${key} lost: ${result.state}`);
      const i = Number(key.slice(1));
      expect(result.record).toMatchObject({ status: 201, headers: [["x-i", `${i}`]], fingerprint: `fp-${key}` });
      expect(result.record.body).toEqual(bodyOf(i, 5));
    }
    for (const [key, token] of locks) {
      expect((await store.claim(key, { fingerprint: "other", lockTtlMs: 1 })).state).toBe("in_flight");
      expect(await store.complete(key, token, response(2), { ttlMs: 60_000 })).toBe(true);
    }
  });

  it("records with like-shaped header lists keep their own (lists are shared only when equal)", async () => {
    const store = new MemoryStore();
    // Same count and lengths, so the same place in the table of recent lists; the caller's
    // arrays are changed after each write, which a stored record must not see.
    const lists: Array<Array<[string, string]>> = [
      [["x-a", "1"]],
      [["x-b", "1"]],
      [["x-a", "2"]],
      [["x-a", "1"]],
      [
        ["x-a", "1"],
        ["x-b", "2"],
      ],
      [],
    ];
    for (let i = 0; i < 60; i++) {
      const headers = (lists[i % lists.length] as Array<[string, string]>).map(([n, v]) => [n, v] as [string, string]);
      await store.complete(
        `h${i}`,
        await claimed(store, `h${i}`),
        { status: 200, headers, body: bodyOf(i, 3) },
        {
          ttlMs: 60_000,
        },
      );
      headers.push(["x-later", "changed"]);
      if (headers[0]) headers[0][1] = "changed";
    }
    for (let i = 0; i < 60; i++) {
      const result = await store.claim(`h${i}`, { fingerprint: "x", lockTtlMs: 1 });
      expect(result).toMatchObject({ state: "completed", record: { headers: lists[i % lists.length] } });
    }
  });

  it("close frees every entry, then fails every operation closed: unavailable, never a fresh start", async () => {
    const store = new MemoryStore({ evictAfterMs: 0, maxEntries: 10 });
    await store.complete("a", await claimed(store, "a"), response(200), { ttlMs: 60_000 });
    const held = await claimed(store, "b");
    await store.close();
    await store.close(); // twice is fine
    expect(store.size).toBe(0);
    const closed = (operation: Promise<unknown>) =>
      expect(operation).rejects.toSatisfy(
        (error) => error instanceof StoreUnavailableError && /closed/.test((error as Error).message),
      );
    // A replay that would have been "completed", and a new key, are both refused (503), not run.
    await closed(store.claim("a", { fingerprint: "f", lockTtlMs: 1_000 }));
    await closed(store.claim("new", { fingerprint: "f", lockTtlMs: 1_000 }));
    await closed(store.complete("b", held, response(200), { ttlMs: 60_000 }));
    await closed(store.release("b", held));
    await closed(store.extend("b", held, 1_000));
  });

  // Random operations against a plain model of the contract, with enough room that nothing
  // is evicted for space: every answer must match the model exactly. Frequent releases and
  // expiry free slots that later claims take again; hundreds of retentions share the lanes;
  // short leases and clock steps exercise expiry.
  it("answers exactly like a model of the contract under random operations", async () => {
    interface Model {
      token: string;
      fingerprint: string;
      expiresAt: number;
      createdAt: number;
      done?: { status: number; body: Uint8Array; headers: Array<[string, string]>; completedAt: number };
    }
    for (const seed of [1, 2, 3]) {
      let state = seed;
      const random = (n: number) => {
        state = (Math.imul(state, 1_103_515_245) + 12_345) >>> 0;
        return (state >>> 8) % n;
      };
      let now = 1_000;
      const store = new MemoryStore({ evictAfterMs: 0, maxEntries: 1_000, now: () => now });
      const model = new Map<string, Model>();
      const tokens: string[] = [];
      const lastToken = new Map<string, string>();
      const live = (key: string) => {
        const entry = model.get(key);
        return entry !== undefined && entry.expiresAt > now ? entry : undefined;
      };
      const holds = (key: string, token: string) => {
        const entry = live(key);
        return entry !== undefined && entry.done === undefined && entry.token === token ? entry : undefined;
      };
      for (let op = 0; op < 15_000; op++) {
        const key = `key${random(900)}`;
        // Mostly the key's latest token (so operations succeed), sometimes any stale one.
        const token = random(4) > 0 ? (lastToken.get(key) ?? "none") : (tokens[random(tokens.length)] ?? "none");
        const action = random(10);
        if (action < 4) {
          const lockTtlMs = random(3) === 0 ? 5 : 100_000;
          const fingerprint = `fp${random(3)}`;
          const result = await store.claim(key, { fingerprint, lockTtlMs });
          const entry = live(key);
          if (entry === undefined) {
            if (result.state !== "claimed") throw new Error(`seed ${seed} op ${op}: ${key} should be free`);
            tokens.push(result.token);
            lastToken.set(key, result.token);
            model.set(key, { token: result.token, fingerprint, expiresAt: now + lockTtlMs, createdAt: now });
          } else if (entry.done === undefined) {
            expect(result).toEqual({
              state: "in_flight",
              fingerprint: entry.fingerprint,
              lockExpiresAt: entry.expiresAt,
            });
          } else {
            const { done } = entry;
            expect(result).toEqual({
              state: "completed",
              record: { ...done, fingerprint: entry.fingerprint, createdAt: entry.createdAt },
            });
          }
        } else if (action < 7) {
          const size = random(4) === 0 ? 129 + random(200) : random(129);
          const body = bodyOf(op, size);
          const headers: Array<[string, string]> =
            random(2) === 0
              ? []
              : [
                  ["x-op", `${op}`],
                  ["x-key", key],
                ];
          const ttlMs = random(5) === 0 ? 10_000_000 : 50 + random(500);
          const status = 200 + random(300);
          const ok = await store.complete(key, token, { status, headers, body }, { ttlMs });
          const entry = holds(key, token);
          expect(ok).toBe(entry !== undefined);
          if (entry !== undefined) {
            entry.done = { status, body: bodyOf(op, size), headers, completedAt: now };
            entry.expiresAt = now + ttlMs;
          }
          body.fill(0);
        } else if (action < 9) {
          const ok = await store.release(key, token);
          expect(ok).toBe(holds(key, token) !== undefined);
          if (ok) model.delete(key);
        } else if (random(2) === 0) {
          const ok = await store.extend(key, token, 100_000);
          const entry = holds(key, token);
          expect(ok).toBe(entry !== undefined);
          if (entry !== undefined) entry.expiresAt = now + 100_000;
        } else {
          now += random(40);
        }
      }
      let held = 0;
      for (const key of model.keys()) if (live(key) !== undefined) held++;
      expect(store.size).toBeGreaterThanOrEqual(held);
      expect(store.size).toBeLessThanOrEqual(model.size);
    }
  }, 30_000); // three seeds of random operations: seconds on a slow machine, more while others run
});

describe("memory store and a system clock that is set", () => {
  const HOUR = 3_600_000;
  const claim = (store: MemoryStore, key: string, lockTtlMs: number) =>
    store.claim(key, { fingerprint: "f", lockTtlMs });
  // Only Date is faked, and the store is made after it, as a store made at start-up would read
  // the system clock; timers stay real.
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("a clock set forward ends no lease: the second copy of the request waits (in_flight)", async () => {
    const store = new MemoryStore();
    expect((await claim(store, "k-forward", 60_000)).state).toBe("claimed");
    vi.setSystemTime(Date.now() + 2 * HOUR);
    expect((await claim(store, "k-forward", 60_000)).state).toBe("in_flight");
  });

  it("a clock set back holds no lease past its length", async () => {
    const store = new MemoryStore();
    expect((await claim(store, "k-back", 20)).state).toBe("claimed");
    vi.setSystemTime(Date.now() - HOUR);
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect((await claim(store, "k-back", 20)).state).toBe("claimed");
  });

  const completed = async (store: MemoryStore, key: string, ttlMs: number) => {
    const claimed = await claim(store, key, 60_000);
    if (claimed.state !== "claimed") throw new Error(`${key}: ${claimed.state}`);
    const response = { status: 200, headers: [], body: new Uint8Array() };
    expect(await store.complete(key, claimed.token, response, { ttlMs })).toBe(true);
  };

  it("a clock set forward ends no record early: it is kept for its retention in real time", async () => {
    const store = new MemoryStore();
    await completed(store, "r-forward", HOUR);
    vi.setSystemTime(Date.now() + 2 * HOUR);
    expect((await claim(store, "r-forward", 60_000)).state).toBe("completed");
  });

  it("a clock set back keeps a record until the clock has passed its end too, as a server's clock would", async () => {
    const store = new MemoryStore();
    await completed(store, "r-back", 20);
    vi.setSystemTime(Date.now() - HOUR);
    await new Promise((resolve) => setTimeout(resolve, 60)); // past its end in real time
    expect((await claim(store, "r-back", 60_000)).state).toBe("completed");
    vi.setSystemTime(Date.now() + 2 * HOUR); // the clock past its end as well
    expect((await claim(store, "r-back", 60_000)).state).toBe("claimed");
  });

  it("an expired record the clock still holds is not swept either; a lock's lease still ends on real time", async () => {
    const store = new MemoryStore();
    await completed(store, "r-held", 20);
    expect((await claim(store, "lock", 20)).state).toBe("claimed");
    vi.setSystemTime(Date.now() - HOUR);
    await new Promise((resolve) => setTimeout(resolve, 60));
    // A write sweeps the oldest expired entries, the record first: it stays; the ended lease is taken.
    expect((await claim(store, "lock", 20)).state).toBe("claimed");
    expect(store.size).toBe(2);
    expect((await claim(store, "r-held", 60_000)).state).toBe("completed");
  });
});
