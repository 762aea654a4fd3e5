/** The Redis store's own behaviour beyond the shared contract: keys, options, clock, failures. */

import { setTimeout as sleep } from "node:timers/promises";
import { DEADLINE_MARGIN_MS, InterlockConfigError, StoreUnavailableError } from "@interlock/core";
import { refusedPort, startRedisProxy } from "@interlock/test-harness";
import { Redis } from "ioredis";
import { describe, expect, inject, it, onTestFinished, vi } from "vitest";
import { RedisStore, redisStore } from "../src/index.js";
import { redisClient, storeOn, track, uniquePrefix } from "./helpers.js";

const LONG = 60_000;
const response = { status: 202, headers: [] as Array<[string, string]>, body: new Uint8Array([1, 2]) };

/** The server's clock in ms. */
async function serverNow(client: Redis): Promise<number> {
  const [seconds, micros] = await client.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

describe("redis store: keys", () => {
  const store = new RedisStore(track(new Redis({ lazyConnect: true })));

  it("puts each logical key in one Redis key under the prefix, hash-tagged by the whole key", () => {
    expect(store.keyFor("wh:stripe:evt_1")).toBe("interlock:{wh:stripe:evt_1}");
    expect(new RedisStore(track(new Redis({ lazyConnect: true })), { prefix: "app:" }).keyFor("k")).toBe("app:{k}");
  });

  it("escapes braces and the escape character so keys never collide", () => {
    expect(store.keyFor("a}b{c")).toBe("interlock:{a%7Db%7Bc}");
    expect(store.keyFor("100%")).toBe("interlock:{100%25}");
    expect(store.keyFor("🔑")).toBe("interlock:{🔑}");
    const lookalikes = ["a{b", "a%7Bb", "a%257Bb", "%uD800", "\uFFFD", "}", "%7D"];
    expect(new Set(lookalikes.map((key) => store.keyFor(key))).size).toBe(lookalikes.length);
  });

  it("keeps lookalike keys apart on the server", async () => {
    const real = storeOn(redisClient());
    const keys = ["a{b", "a%7Bb", "a%257Bb", "\uFFFD", "}", "%7D"];
    for (const key of keys)
      expect((await real.claim(key, { fingerprint: key, lockTtlMs: LONG })).state).toBe("claimed");
    // Lone surrogates have no UTF-8 form (they would all become U+FFFD): refused, not merged.
    for (const key of ["\uD800", "\uDC00"]) {
      await expect(real.claim(key, { fingerprint: "f", lockTtlMs: LONG })).rejects.toThrow(InterlockConfigError);
    }
  });

  it("names the key as redis-cli sees it, with the client's own keyPrefix first", async () => {
    const keyPrefix = uniquePrefix("client");
    const prefixed = redisClient(inject("redisUrl"), { keyPrefix });
    const store = storeOn(prefixed);
    expect(store.keyFor("k")).toBe(`${keyPrefix}${store.prefix}{k}`);
    await store.claim("k", { fingerprint: "fp", lockTtlMs: LONG });
    // A plain client, as redis-cli is: the key keyFor names is the one the claim wrote.
    expect(await redisClient().hget(store.keyFor("k"), "state")).toBe("lock");
  });

  it("refuses a prefix with a brace, which would break the hash tag", () => {
    const client = track(new Redis({ lazyConnect: true }));
    expect(() => new RedisStore(client, { prefix: "app{1}:" })).toThrow(InterlockConfigError);
  });
});

describe("redis store: options", () => {
  it("has defaults, and refuses bad options and non-clients", () => {
    const client = track(new Redis({ lazyConnect: true }));
    const store = redisStore(client);
    expect(store).toMatchObject({ name: "redis", prefix: "interlock:", operationTimeoutMs: 2000 });
    expect(store.maxRecordBytes).toBe(1024 * 1024);
    expect(() => redisStore(client, { operationTimeoutMs: 0 })).toThrow(InterlockConfigError);
    // Past a timer's range (2^31 - 1 ms), every operation would time out after 1 ms.
    expect(() => redisStore(client, { operationTimeoutMs: 2 ** 31 })).toThrow(InterlockConfigError);
    expect(redisStore(client, { operationTimeoutMs: 2 ** 31 - 1 }).operationTimeoutMs).toBe(2 ** 31 - 1);
    expect(() => redisStore(client, { maxRecordBytes: 1.5 })).toThrow(InterlockConfigError);
    // Redis refuses a bulk string over proto-max-bulk-len (512 MB by default), and only once
    // the handler has run: bounded below it, like the postgres store.
    expect(redisStore(client, { maxRecordBytes: 256 * 1024 * 1024 }).maxRecordBytes).toBe(256 * 1024 * 1024);
    expect(() => redisStore(client, { maxRecordBytes: 256 * 1024 * 1024 + 1 })).toThrow(/at most 268435456/);
    expect(() => redisStore(client, { maxRecordBytes: 1024 * 1024 * 1024 })).toThrow(InterlockConfigError);
    expect(() => redisStore({} as Redis)).toThrow(InterlockConfigError);
  });

  it("validates arguments before sending anything", async () => {
    const store = storeOn(redisClient());
    await expect(store.claim("", { fingerprint: "fp", lockTtlMs: LONG })).rejects.toThrow(InterlockConfigError);
    await expect(store.claim("k", { fingerprint: "fp", lockTtlMs: 1.5 })).rejects.toThrow(InterlockConfigError);
    await expect(store.extend("k", "t", 0)).rejects.toThrow(InterlockConfigError);
  });

  it("works on a client that returns integers as strings (ioredis' stringNumbers), on RESP3 and RESP2", async () => {
    for (const protocol of [3, 2] as const) {
      const store = storeOn(track(new Redis(inject("redisUrl"), { stringNumbers: true, protocol })));
      const claim = await store.claim("k", { fingerprint: "fp", lockTtlMs: LONG });
      expect(claim.state).toBe("claimed");
      const token = (claim as { token: string }).token;
      expect(await store.claim("k", { fingerprint: "fp", lockTtlMs: LONG })).toMatchObject({ state: "in_flight" });
      expect(await store.extend("k", token, LONG)).toBe(true);
      expect(await store.complete("k", token, response, { ttlMs: LONG })).toBe(true);
      expect(await store.claim("k", { fingerprint: "other", lockTtlMs: LONG })).toMatchObject({
        state: "completed",
        record: { status: 202, body: new Uint8Array([1, 2]), fingerprint: "fp" },
      });
      const other = (await store.claim("k2", { fingerprint: "fp", lockTtlMs: LONG })) as { token: string };
      expect(await store.release("k2", other.token)).toBe(true);
      expect(await store.release("k2", other.token)).toBe(false);
    }
  });

  it("keeps stores with different prefixes on one client apart, and leaves the client open", async () => {
    const client = redisClient();
    const a = storeOn(client);
    const b = storeOn(client);
    expect((await a.claim("shared", { fingerprint: "a", lockTtlMs: LONG })).state).toBe("claimed");
    expect((await b.claim("shared", { fingerprint: "b", lockTtlMs: LONG })).state).toBe("claimed");
    expect("close" in a).toBe(false);
    expect(client.status).toBe("ready");
  });
});

describe("redis store: leases and timestamps", () => {
  it("uses millisecond TTLs for the lease and the retention", async () => {
    const client = redisClient();
    const store = storeOn(client);
    const claim = await store.claim("ttl", { fingerprint: "fp", lockTtlMs: 1_234 });
    const lease = await client.pttl(store.keyFor("ttl"));
    expect(lease).toBeGreaterThan(1_000);
    expect(lease).toBeLessThanOrEqual(1_234);
    const { token } = claim as { token: string };
    expect(await store.extend("ttl", token, 2_345)).toBe(true);
    expect(await client.pttl(store.keyFor("ttl"))).toBeGreaterThan(2_000);
    expect(await store.complete("ttl", token, response, { ttlMs: 4_321 })).toBe(true);
    const retention = await client.pttl(store.keyFor("ttl"));
    expect(retention).toBeGreaterThan(4_000);
    expect(retention).toBeLessThanOrEqual(4_321);
  });

  it("stamps times and lease ends with the server's clock", async () => {
    const client = redisClient();
    const store = storeOn(client);
    const before = await serverNow(client);
    const claim = await store.claim("clock", { fingerprint: "fp", lockTtlMs: 10_000 });
    const inFlight = await store.claim("clock", { fingerprint: "other", lockTtlMs: LONG });
    expect(inFlight.state).toBe("in_flight");
    const lockExpiresAt = (inFlight as { lockExpiresAt: number }).lockExpiresAt;
    expect(lockExpiresAt).toBeGreaterThanOrEqual(before + 9_000);
    expect(lockExpiresAt).toBeLessThanOrEqual((await serverNow(client)) + 10_000);
    await store.complete("clock", (claim as { token: string }).token, response, { ttlMs: LONG });
    const after = await serverNow(client);
    const done = await store.claim("clock", { fingerprint: "fp", lockTtlMs: LONG });
    const record = (done as Extract<typeof done, { state: "completed" }>).record;
    expect(record.createdAt).toBeGreaterThanOrEqual(before);
    expect(record.completedAt).toBeGreaterThanOrEqual(record.createdAt);
    expect(record.completedAt).toBeLessThanOrEqual(after);
  });

  it("round-trips header text JSON cannot mangle: unicode, quotes, empty values", async () => {
    // (A lone surrogate is refused by every store: the conformance suite checks it.)
    const store = storeOn(redisClient());
    const headers: Array<[string, string]> = [
      ["x-a", "ünïcødé 🔑"],
      ["x-b", '"quoted"\\'],
      ["x-d", ""],
      ["x-a", "again"],
    ];
    const claim = await store.claim("headers", { fingerprint: "fp", lockTtlMs: LONG });
    await store.complete("headers", (claim as { token: string }).token, { ...response, headers }, { ttlMs: LONG });
    const done = await store.claim("headers", { fingerprint: "fp", lockTtlMs: LONG });
    expect(done).toMatchObject({ state: "completed", record: { headers } });
  });
});

describe("redis store: completing", () => {
  it("refuses to complete inside a transaction it cannot join, and the lock stays with its owner", async () => {
    const store = storeOn(redisClient());
    const { token } = (await store.claim("in-tx", { fingerprint: "fp", lockTtlMs: LONG })) as { token: string };
    await expect(store.complete("in-tx", token, response, { ttlMs: LONG, transaction: {} })).rejects.toBeInstanceOf(
      InterlockConfigError,
    );
    expect(await store.claim("in-tx", { fingerprint: "other", lockTtlMs: LONG })).toMatchObject({ state: "in_flight" });
    expect(await store.complete("in-tx", token, response, { ttlMs: LONG })).toBe(true);
  });

  it("stores the body as it was when complete was called, though the command waits for the connection", async () => {
    const prefix = uniquePrefix();
    const store = storeOn(redisClient(), { prefix });
    const { token } = (await store.claim("queued", { fingerprint: "fp", lockTtlMs: LONG })) as { token: string };
    // A new client is still connecting: ioredis holds the command in its offline queue.
    const connecting = storeOn(track(new Redis(inject("redisUrl"))), { prefix });
    const body = Uint8Array.from([1, 2, 3, 4]);
    const completing = connecting.complete("queued", token, { ...response, body }, { ttlMs: LONG });
    body.fill(9); // the caller reuses its buffer at once
    expect(await completing).toBe(true);
    const done = await store.claim("queued", { fingerprint: "fp", lockTtlMs: LONG });
    expect(Array.from((done as Extract<typeof done, { state: "completed" }>).record.body)).toEqual([1, 2, 3, 4]);
  });
});

/**
 * A client whose server refuses the scripts' Redis 7 flag line, as Redis 6.2 does: the flagged
 * scripts reach this Redis with a line before the `#!`, where Lua 5.1 refuses it just as 6.2's does
 * ("Error compiling script … unexpected symbol near '#'").
 */
class RedisBefore7 extends Redis {
  override defineCommand(name: string, definition: { lua: string; numberOfKeys?: number }): void {
    const lua = definition.lua.startsWith("#!") ? `\n${definition.lua}` : definition.lua;
    super.defineCommand(name, { ...definition, lua });
  }
}

describe("redis store: a server before Redis 7", () => {
  it("runs the scripts without their flag line once the server refused it", async () => {
    const store = storeOn(track(new RedisBefore7(inject("redisUrl"))));
    const claim = (key: string) => store.claim(key, { fingerprint: "fp", lockTtlMs: LONG });
    const [done, dropped] = (await Promise.all([claim("done"), claim("dropped")])) as Array<{ token: string }>;
    expect(await store.extend("done", done!.token, LONG)).toBe(true);
    expect(await store.complete("done", done!.token, response, { ttlMs: LONG })).toBe(true);
    expect(await store.release("dropped", dropped!.token)).toBe(true);
    expect(await claim("done")).toMatchObject({ state: "completed", record: { status: 202 } });
    expect((await claim("dropped")).state).toBe("claimed");
  });
});

describe("redis store: failures", () => {
  it("a client that refuses to queue fails at once, with the client's error as the cause", async () => {
    const client = track(new Redis(await refusedPort(), "127.0.0.1", { enableOfflineQueue: false, lazyConnect: true }));
    client.on("error", () => {});
    const store = storeOn(client, { operationTimeoutMs: 5_000 });
    const started = Date.now();
    const error = await store.claim("k", { fingerprint: "fp", lockTtlMs: LONG }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect((error as Error).cause).toBeInstanceOf(Error);
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  /**
   * A store whose client goes through a proxy that can drop a connection instead of passing on
   * one reply: the server ran the command, the client never heard, and ioredis sends it again on
   * a new connection (autoResendUnfulfilledCommands). The copy must report what the first did.
   */
  async function lossyStore({
    reconnectMs = 20,
    operationTimeoutMs,
  }: {
    reconnectMs?: number;
    operationTimeoutMs?: number;
  } = {}) {
    const proxy = await startRedisProxy(Number(new URL(inject("redisUrl")).port));
    onTestFinished(() => proxy.close());
    const client = track(new Redis(proxy.port, "127.0.0.1", { retryStrategy: () => reconnectMs }));
    client.on("error", () => {});
    const store = storeOn(client, operationTimeoutMs === undefined ? {} : { operationTimeoutMs });
    // The scripts are then cached on the server: the armed command runs at its first EVALSHA.
    const warm = await store.claim("warm-up", { fingerprint: "fp", lockTtlMs: LONG });
    await store.complete("warm-up", (warm as { token: string }).token, response, { ttlMs: LONG });
    await store.release("warm-up", "nobody");
    const admin = redisClient();
    return { proxy, store, admin, check: storeOn(admin, { prefix: store.prefix }) };
  }

  it("a claim whose reply a dropped connection lost, resent by ioredis, answers claimed: its own lock", async () => {
    const { proxy, store } = await lossyStore();
    proxy.dropReplyTo("lost-reply");
    const claim = await store.claim("lost-reply", { fingerprint: "fp", lockTtlMs: LONG });
    expect(proxy.dropped).toBe(1);
    expect(claim.state).toBe("claimed");
    const token = (claim as { token: string }).token;
    expect(await store.complete("lost-reply", token, response, { ttlMs: LONG })).toBe(true);
  });

  it("a claim whose reply was lost and whose copy ioredis resends only after the caller's timeout takes nothing: its first run's lock goes too", async () => {
    // ioredis reconnects after 800 ms; the caller is told "unavailable" at 300 ms. The first run
    // took the lock; no release can follow it while the client reconnects (store.ts).
    const { proxy, store, admin, check } = await lossyStore({ reconnectMs: 800, operationTimeoutMs: 300 });
    proxy.dropReplyTo("resent-late");
    await expect(store.claim("resent-late", { fingerprint: "fp", lockTtlMs: LONG })).rejects.toMatchObject({
      code: "store_unavailable",
    });
    expect(await admin.hget(store.keyFor("resent-late"), "state")).toBe("lock"); // the first run's
    await vi.waitFor(async () => expect(await admin.exists(store.keyFor("resent-late"))).toBe(0), {
      timeout: 3_000,
      interval: 50,
    });
    expect(proxy.dropped).toBe(1);
    expect((await check.claim("resent-late", { fingerprint: "fp", lockTtlMs: LONG })).state).toBe("claimed");
  });

  it("a complete whose reply a dropped connection lost, resent by ioredis, answers true: its own record", async () => {
    const { proxy, store, check } = await lossyStore();
    const { token } = (await store.claim("lost-complete", { fingerprint: "fp", lockTtlMs: LONG })) as { token: string };
    proxy.dropReplyTo("lost-complete");
    expect(await store.complete("lost-complete", token, response, { ttlMs: LONG })).toBe(true);
    expect(proxy.dropped).toBe(1);
    expect(await check.claim("lost-complete", { fingerprint: "other", lockTtlMs: LONG })).toMatchObject({
      state: "completed",
      record: { status: 202, fingerprint: "fp" },
    });
    // Still fenced: a second complete with the same token is refused, as before the resend.
    expect(await store.complete("lost-complete", token, response, { ttlMs: LONG })).toBe(false);
  });

  it("a release whose reply a dropped connection lost, resent by ioredis, answers true and frees the key", async () => {
    const { proxy, store, admin, check } = await lossyStore();
    const { token } = (await store.claim("lost-release", { fingerprint: "fp", lockTtlMs: LONG })) as { token: string };
    proxy.dropReplyTo("lost-release");
    expect(await store.release("lost-release", token)).toBe(true);
    expect(proxy.dropped).toBe(1);
    expect(await store.release("lost-release", token)).toBe(false);
    // What the release leaves for its copy holds no lock and goes after the operation timeout.
    const traceTtl = await admin.pttl(store.keyFor("lost-release"));
    expect(traceTtl, "the trace expires (PTTL -1 would keep it forever)").toBeGreaterThan(0);
    expect(traceTtl).toBeLessThanOrEqual(store.operationTimeoutMs);
    expect((await check.claim("lost-release", { fingerprint: "fp", lockTtlMs: LONG })).state).toBe("claimed");
    expect(await admin.hget(store.keyFor("lost-release"), "call")).toBeNull();
  });

  it("an extend whose reply a dropped connection lost, resent by ioredis, answers true", async () => {
    const { proxy, store, check } = await lossyStore();
    const { token } = (await store.claim("lost-extend", { fingerprint: "fp", lockTtlMs: 5_000 })) as { token: string };
    proxy.dropReplyTo("lost-extend");
    expect(await store.extend("lost-extend", token, LONG)).toBe(true);
    expect(proxy.dropped).toBe(1);
    expect(await check.claim("lost-extend", { fingerprint: "other", lockTtlMs: LONG })).toMatchObject({
      state: "in_flight",
    });
  });

  it("something else at the key fails closed as unavailable, never as a win", async () => {
    const client = redisClient();
    const store = new RedisStore(client, { prefix: uniquePrefix() });
    await client.set(store.keyFor("foreign"), "not a hash", "PX", LONG);
    await expect(store.claim("foreign", { fingerprint: "fp", lockTtlMs: LONG })).rejects.toMatchObject({
      name: "StoreUnavailableError",
      cause: { message: expect.stringContaining("WRONGTYPE") },
    });
  });
});

/**
 * A claim that first runs on Redis after its caller was told "unavailable" (503): queued while
 * ioredis reconnected, resent on a new connection, or just slow to get there. The proxy holds it
 * back past the store's timeout and delivers it afterwards. Taking the lock then would make the
 * key answer "in flight" for the whole lease while nobody holds it.
 */
/** The client as the store sees it: claim replies tell the server's time moved by `skewMs()`. */
function claimClock(client: Redis, skewMs: () => number): Redis {
  return new Proxy(client, {
    get(target, property) {
      const value = Reflect.get(target, property, target);
      if (typeof value !== "function") return value;
      if (typeof property !== "string" || !property.startsWith("interlockClaim")) return value.bind(target);
      return async (...args: unknown[]) => {
        const reply = (await value.apply(target, args)) as unknown[];
        return [reply[0], Number(reply[1]) + skewMs(), ...reply.slice(2)];
      };
    },
  });
}

describe("redis store: a claim that reaches Redis after its caller gave up", () => {
  const operationTimeoutMs = 300;

  async function slowStore() {
    const proxy = await startRedisProxy(Number(new URL(inject("redisUrl")).port));
    onTestFinished(() => proxy.close());
    const client = track(new Redis(proxy.port, "127.0.0.1"));
    client.on("error", () => {});
    const store = storeOn(client, { operationTimeoutMs });
    // Scripts cached on the server, and a reply that tells the store the server's time.
    await store.claim("warm-up", { fingerprint: "fp", lockTtlMs: LONG });
    return { proxy, store, check: storeOn(redisClient(), { prefix: store.prefix }) };
  }

  it("takes no lock: the key stays free for the caller's retry", async () => {
    const { proxy, store, check } = await slowStore();
    const held = proxy.hold("late-claim");
    const failed = store.claim("late-claim", { fingerprint: "fp", lockTtlMs: LONG });
    await held.held;
    await expect(failed).rejects.toBeInstanceOf(StoreUnavailableError);
    // Surely past its deadline: the replies the store learnt the server's clock from came within
    // the timeout, so the deadline is at most two timeouts (plus a margin) after sending, and
    // the caller's failure came one timeout after sending.
    await sleep(operationTimeoutMs + DEADLINE_MARGIN_MS + 10);
    await held.deliver();
    expect((await check.claim("late-claim", { fingerprint: "fp", lockTtlMs: LONG })).state).toBe("claimed");
  });

  it("a refusal that reaches the caller in time (a clock ahead of the store's bound) is unavailable, takes no lock, and corrects the bound", async () => {
    const client = redisClient();
    // The client as the store sees it: claim replies tell a server time `behindMs` earlier than
    // Redis' own, as a server whose clock is behind would (before a failover to one ahead).
    let behindMs = 60_000;
    const skewed = claimClock(client, () => -behindMs);
    const store = storeOn(skewed);
    const check = storeOn(redisClient(), { prefix: store.prefix });
    // The bound: a minute too small. From a key held by another store, so the store's first
    // claim is only its probe (a read), answered "in flight", and no claim the skew refuses.
    await check.claim("warm-up", { fingerprint: "fp", lockTtlMs: LONG });
    expect((await store.claim("warm-up", { fingerprint: "fp", lockTtlMs: LONG })).state).toBe("in_flight");
    behindMs = 0;
    // Its deadline, on that bound, passed a minute ago on Redis: refused as late, in time.
    await expect(store.claim("ahead", { fingerprint: "fp", lockTtlMs: LONG })).rejects.toMatchObject({
      name: "StoreUnavailableError",
      message: expect.stringContaining("deadline"),
    });
    // The refusal took no lock, and it raised the bound: the retry wins.
    expect((await store.claim("ahead", { fingerprint: "fp", lockTtlMs: LONG })).state).toBe("claimed");
    expect(await check.claim("ahead", { fingerprint: "other", lockTtlMs: LONG })).toMatchObject({ state: "in_flight" });
  });

  it("one that runs past its caller's timeout but before its deadline is released: no lock held by nobody", async () => {
    const proxy = await startRedisProxy(Number(new URL(inject("redisUrl")).port));
    onTestFinished(() => proxy.close());
    const client = track(new Redis(proxy.port, "127.0.0.1"));
    client.on("error", () => {});
    // Claim replies tell a server time 5 s ahead of Redis' own: the store's bound, and so every
    // deadline, errs 5 s late, as it errs by the one-way latency on a real network.
    const ahead = claimClock(client, () => 5_000);
    const store = storeOn(ahead, { operationTimeoutMs });
    const check = storeOn(redisClient(), { prefix: store.prefix });
    await store.claim("warm-up", { fingerprint: "fp", lockTtlMs: LONG });
    const held = proxy.hold("orphan-claim");
    const failed = store.claim("orphan-claim", { fingerprint: "fp", lockTtlMs: LONG });
    await held.held;
    await expect(failed).rejects.toBeInstanceOf(StoreUnavailableError);
    await held.deliver(); // runs within its deadline: it takes the lock, then its release frees it
    let state = "";
    for (let tries = 0; tries < 50 && state !== "claimed"; tries++) {
      state = (await check.claim("orphan-claim", { fingerprint: "fp", lockTtlMs: LONG })).state;
      if (state !== "claimed") await sleep(20);
    }
    expect(state).toBe("claimed");
  });

  it("a claim in time still takes the lock, through the same proxy", async () => {
    const { store, check } = await slowStore();
    const claim = await store.claim("on-time", { fingerprint: "fp", lockTtlMs: LONG });
    expect(claim.state).toBe("claimed");
    expect(await check.claim("on-time", { fingerprint: "fp", lockTtlMs: LONG })).toMatchObject({ state: "in_flight" });
    expect(await store.complete("on-time", (claim as { token: string }).token, response, { ttlMs: LONG })).toBe(true);
  });
});
