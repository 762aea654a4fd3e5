import { setTimeout as sleep } from "node:timers/promises";
import { DEADLINE_MARGIN_MS, InterlockConfigError, StoreUnavailableError } from "@interlock/core";
import { type RedisProxy, refusedPort, startRedisProxy } from "@interlock/test-harness";
import { Redis } from "ioredis";
import { afterAll, describe, expect, inject, it, onTestFinished } from "vitest";
import { RedisTokenStore } from "../src/redis.js";
import { itChecksRedisStore } from "./redis-checks.js";
import { describeTokenStore } from "./token-store-suite.js";

const clients: Redis[] = [];
afterAll(() => {
  for (const client of clients) client.disconnect();
});
const client = (url = inject("redisUrl"), options = {}) => {
  const made = new Redis(url, options);
  clients.push(made);
  return made;
};
const prefix = `test:oauth:${process.pid}:${Date.now().toString(36)}:`;

describeTokenStore("redis", {
  store: () => new RedisTokenStore(client(), { prefix }),
  elapse: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
});

// ioredis' stringNumbers option answers integers as strings.
describeTokenStore("redis, a client with stringNumbers", {
  store: () => new RedisTokenStore(client(undefined, { stringNumbers: true }), { prefix: `${prefix}sn:` }),
  elapse: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
});

describe("redis token store", () => {
  itChecksRedisStore("Redis", {
    client: () => client(),
    unreachable: async () =>
      client(`redis://127.0.0.1:${await refusedPort()}`, { maxRetriesPerRequest: null, lazyConnect: false }),
    prefix,
  });

  it("refuses what is not an ioredis client", () => {
    expect(() => new RedisTokenStore({} as never)).toThrow(InterlockConfigError);
    expect(() => new RedisTokenStore(client(), { operationTimeoutMs: 2 ** 31 })).toThrow(InterlockConfigError);
    expect(() => new RedisTokenStore(client(), { operationTimeoutMs: 0 })).toThrow(InterlockConfigError);
  });
});

/**
 * A connection lost after Redis ran a write but before its reply arrived: ioredis sends the write
 * again on its next connection (autoResendUnfulfilledCommands), and the copy must answer what the
 * first run did. The proxy drops the connection instead of passing that one reply on.
 */
describe("redis token store: a write whose reply was lost", () => {
  async function lossyStore() {
    const proxy = await startRedisProxy(Number(new URL(inject("redisUrl")).port));
    onTestFinished(() => proxy.close());
    const lossy = client(`redis://127.0.0.1:${proxy.port}`, { retryStrategy: () => 20 });
    lossy.on("error", () => {});
    const store = new RedisTokenStore(lossy, { prefix: `${prefix}lost:` });
    // The scripts are then cached on the server: the armed write runs at its first EVALSHA.
    await store.get("warm-up");
    await store.set("warm-up", "v", { ttlMs: 60_000, expect: null });
    await store.delete("warm-up", "none");
    return { proxy, store, check: new RedisTokenStore(client(), { prefix: `${prefix}lost:` }) };
  }

  it("a set only if absent answers its version, not undefined as if another writer won", async () => {
    const { proxy, store, check } = await lossyStore();
    proxy.dropReplyTo("lost-set");
    const version = await store.set("lost-set", "mine", { ttlMs: 60_000, expect: null });
    expect(proxy.dropped).toBe(1);
    expect(version).toBeDefined();
    expect(await check.get("lost-set")).toEqual({ value: "mine", version });
  });

  it("a set of an expected version answers its version", async () => {
    const { proxy, store, check } = await lossyStore();
    const first = await store.set("lost-cas", "first", { ttlMs: 60_000 });
    proxy.dropReplyTo("lost-cas");
    const version = await store.set("lost-cas", "second", { ttlMs: 60_000, expect: first! });
    expect(proxy.dropped).toBe(1);
    expect(version).toBeDefined();
    expect(await check.get("lost-cas")).toEqual({ value: "second", version });
  });

  /**
   * The copy ioredis resends can arrive after another writer's newer write: the proxy holds it
   * back until that write is done. The copy must see that its own write ran, and leave the newer
   * value alone.
   */
  it("a set without expect, resent after another writer's newer set, leaves the newer value", async () => {
    const { proxy, store, check } = await lossyStore();
    let newer: string | undefined;
    proxy.dropReplyTo("lost-any", async () => {
      newer = await check.set("lost-any", "newer", { ttlMs: 60_000 });
    });
    const version = await store.set("lost-any", "older", { ttlMs: 60_000 });
    expect(proxy.dropped).toBe(1);
    expect(newer).toBeDefined();
    expect(version).toBeDefined();
    expect(version).not.toBe(newer);
    expect(await check.get("lost-any")).toEqual({ value: "newer", version: newer });
  });

  it("a set of an expected version, resent after another writer's newer set, answers its version", async () => {
    const { proxy, store, check } = await lossyStore();
    const first = await store.set("lost-cas-newer", "first", { ttlMs: 60_000 });
    let newer: string | undefined;
    proxy.dropReplyTo("lost-cas-newer", async () => {
      const mine = await check.get("lost-cas-newer");
      newer = await check.set("lost-cas-newer", "third", { ttlMs: 60_000, expect: mine!.version });
    });
    const version = await store.set("lost-cas-newer", "second", { ttlMs: 60_000, expect: first! });
    expect(proxy.dropped).toBe(1);
    expect(newer).toBeDefined();
    // Its write ran (the newer one was made on top of it): not undefined, as if another writer won.
    expect(version).toBeDefined();
    expect(await check.get("lost-cas-newer")).toEqual({ value: "third", version: newer });
  });

  it("a delete, resent after another writer's set, leaves the new value", async () => {
    const { proxy, store, check } = await lossyStore();
    await store.set("lost-delete-newer", "old", { ttlMs: 60_000 });
    let newer: string | undefined;
    proxy.dropReplyTo("lost-delete-newer", async () => {
      newer = await check.set("lost-delete-newer", "new", { ttlMs: 60_000, expect: null });
    });
    expect(await store.delete("lost-delete-newer")).toBe(true);
    expect(proxy.dropped).toBe(1);
    expect(newer).toBeDefined();
    expect(await check.get("lost-delete-newer")).toEqual({ value: "new", version: newer });
  });

  it("a delete answers true, and a second delete false", async () => {
    const { proxy, store, check } = await lossyStore();
    const version = await store.set("lost-delete", "pending login", { ttlMs: 60_000, expect: null });
    proxy.dropReplyTo("lost-delete");
    expect(await store.delete("lost-delete", version)).toBe(true);
    expect(proxy.dropped).toBe(1);
    expect(await check.get("lost-delete")).toBeUndefined();
    expect(await store.delete("lost-delete", version)).toBe(false);
    expect(await store.delete("lost-delete")).toBe(false);
    // What the delete left for its copy is no value: an absent-only set writes at once.
    expect(await check.set("lost-delete", "next", { ttlMs: 60_000, expect: null })).toBeDefined();
  });
});

/**
 * A write that first runs on Redis after its caller was told it failed: queued while ioredis
 * reconnected, resent on a new connection, or just slow to get there. The proxy holds it back
 * past the store's timeout and delivers it afterwards. It must change nothing: the caller has
 * moved on (and maybe retried), and another writer may have written since.
 */
describe("redis token store: a write that reaches Redis after its caller gave up", () => {
  const operationTimeoutMs = 300;

  async function slowStore() {
    const proxy = await startRedisProxy(Number(new URL(inject("redisUrl")).port));
    onTestFinished(() => proxy.close());
    const slow = client(`redis://127.0.0.1:${proxy.port}`);
    slow.on("error", () => {});
    const store = new RedisTokenStore(slow, { prefix: `${prefix}late:`, operationTimeoutMs });
    // Scripts cached on the server, and replies that tell the store the server's time.
    await store.get("warm-up");
    await store.set("warm-up", "v", { ttlMs: 60_000, expect: null });
    await store.delete("warm-up", "none");
    return { proxy, store, check: new RedisTokenStore(client(), { prefix: `${prefix}late:` }) };
  }

  /**
   * Delivers `held` once its deadline is surely past. Every reply the store learnt the server's
   * clock from came within operationTimeoutMs, so the deadline is at most twice that (plus a
   * margin) after sending, and the caller's failure came one timeout after sending.
   */
  async function deliverLate(held: { deliver(): Promise<void> }) {
    await sleep(operationTimeoutMs + DEADLINE_MARGIN_MS + 10);
    await held.deliver();
  }

  /** Runs `write` with its command held back at the proxy, until its caller got StoreUnavailableError. */
  async function timedOut(proxy: RedisProxy, marker: string, write: () => Promise<unknown>) {
    const held = proxy.hold(marker);
    const failed = write();
    await held.held;
    await expect(failed).rejects.toBeInstanceOf(StoreUnavailableError);
    return held;
  }

  it("a set without expect leaves the newer value another writer wrote meanwhile", async () => {
    const { proxy, store, check } = await slowStore();
    const held = await timedOut(proxy, "late-set", () => store.set("late-set", "older", { ttlMs: 60_000 }));
    const newer = await check.set("late-set", "newer", { ttlMs: 60_000 });
    await deliverLate(held);
    expect(await check.get("late-set")).toEqual({ value: "newer", version: newer });
  });

  it("a delete without expect leaves the newer value another writer wrote meanwhile", async () => {
    const { proxy, store, check } = await slowStore();
    await check.set("late-delete", "old", { ttlMs: 60_000 });
    const held = await timedOut(proxy, "late-delete", () => store.delete("late-delete"));
    const newer = await check.set("late-delete", "new", { ttlMs: 60_000 });
    await deliverLate(held);
    expect(await check.get("late-delete")).toEqual({ value: "new", version: newer });
  });

  it("a set only if absent writes nothing once its caller gave up", async () => {
    const { proxy, store, check } = await slowStore();
    const write = () => store.set("late-absent", "mine", { ttlMs: 60_000, expect: null });
    const held = await timedOut(proxy, "late-absent", write);
    await deliverLate(held);
    expect(await check.get("late-absent")).toBeUndefined();
  });

  it("a store's first write, before any reply told it the server's time, writes nothing once its caller gave up", async () => {
    // As at start-up with Redis down: ioredis queues the write, and sends it when Redis is back.
    const proxy = await startRedisProxy(Number(new URL(inject("redisUrl")).port));
    onTestFinished(() => proxy.close());
    const fresh = client(`redis://127.0.0.1:${proxy.port}`);
    fresh.on("error", () => {});
    const store = new RedisTokenStore(fresh, { prefix: `${prefix}first:`, operationTimeoutMs });
    const check = new RedisTokenStore(client(), { prefix: `${prefix}first:` });
    const held = await timedOut(proxy, "first-write", () => store.set("first-write", "v", { ttlMs: 60_000 }));
    await deliverLate(held);
    await sleep(50); // what a late reply could still send meanwhile
    expect(await check.get("first-write")).toBeUndefined();
    // The store works on: its next write acts.
    expect(await store.set("first-write", "later", { ttlMs: 60_000 })).toEqual(expect.any(String));
    expect(await check.get("first-write")).toMatchObject({ value: "later" });
  });

  it("writes that arrive in time still act, through the same proxy", async () => {
    const { store, check } = await slowStore();
    const first = await store.set("on-time", "first", { ttlMs: 60_000 });
    expect(await check.get("on-time")).toEqual({ value: "first", version: first });
    const second = await store.set("on-time", "second", { ttlMs: 60_000, expect: first! });
    expect(await store.get("on-time")).toEqual({ value: "second", version: second });
    expect(await store.delete("on-time", second)).toBe(true);
    expect(await check.get("on-time")).toBeUndefined();
  });
});
