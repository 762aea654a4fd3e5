/**
 * A Redis that goes away mid-run, and one that stops answering. Every operation either
 * succeeds or fails with StoreUnavailableError within the timeout: never a false win, never a
 * hang. When the server is back, operations succeed again. Each test runs its own server.
 */

import type { ClaimResult, InterlockStore } from "@interlock/core";
import { type RedisServer, startRedis } from "@interlock/test-harness";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { RedisStore } from "../src/index.js";
import { redisClient, storeOn } from "./helpers.js";

const TIMEOUT = 500;
/** Allowance for timers and a loaded machine on top of the store's timeout. */
const SLACK = 750;
const LONG = 60_000;
const response = { status: 200, headers: [], body: new Uint8Array([1]) };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let server: RedisServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

async function localStore(): Promise<InterlockStore> {
  server = await startRedis({ local: true });
  // Reconnect quickly so the test sees recovery soon after the server is back.
  const client = redisClient(server.url, { retryStrategy: () => 50 });
  client.on("error", () => {});
  return storeOn(client, { operationTimeoutMs: TIMEOUT });
}

/** A second client of the test's server, quiet when the server stops after the test. */
function adminClient() {
  const client = redisClient(server!.url);
  client.on("error", () => {});
  return client;
}

/** Runs an operation, timing it; its outcome is a value or the error it failed with. */
async function timed(operation: () => Promise<unknown>) {
  const started = Date.now();
  const outcome = await operation().then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  return { ...outcome, started, ms: Date.now() - started };
}

/** Every operation of the contract must fail as unavailable, each within the bound. */
async function expectAllUnavailable(store: InterlockStore, key: string) {
  const operations: Array<[string, () => Promise<unknown>]> = [
    ["claim", () => store.claim(key, { fingerprint: "fp", lockTtlMs: 1_000 })],
    ["complete", () => store.complete(key, "t", response, { ttlMs: LONG })],
    ["release", () => store.release(key, "t")],
    ["extend", () => store.extend(key, "t", LONG)],
  ];
  for (const [label, operation] of operations) {
    const result = await timed(operation);
    expect(result, label).toMatchObject({ error: { name: "StoreUnavailableError", code: "store_unavailable" } });
    expect(result.ms, label).toBeLessThan(TIMEOUT + SLACK);
  }
}

/** Claims until the server answers again; returns the first result. */
async function whenBack(store: InterlockStore, key: string): Promise<ClaimResult> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const result = await timed(() => store.claim(key, { fingerprint: "fp", lockTtlMs: LONG }));
    if ("value" in result) return result.value as ClaimResult;
    if (Date.now() > deadline) throw new Error("the store did not recover");
    await sleep(50);
  }
}

describe("redis outage", () => {
  it("server stopped mid-run: unavailable within the timeout, never a false win; works again after", async () => {
    const store = await localStore();
    let running = true;
    let n = 0;
    const log: Array<Awaited<ReturnType<typeof timed>> & { op: string }> = [];
    // Background traffic across the outage: claim then complete, on fresh keys.
    const loop = async () => {
      while (running) {
        const key = `load:${++n}`;
        const claim = await timed(() => store.claim(key, { fingerprint: "fp", lockTtlMs: LONG }));
        log.push({ op: "claim", ...claim });
        const value = (claim as { value?: ClaimResult }).value;
        if (value?.state !== "claimed") continue;
        log.push({
          op: "complete",
          ...(await timed(() => store.complete(key, value.token, response, { ttlMs: LONG }))),
        });
      }
    };
    const loops = Array.from({ length: 8 }, loop);
    await sleep(200);

    let down = { from: 0, to: 0 };
    await server!.restart(async () => {
      down = { from: Date.now(), to: 0 };
      await expectAllUnavailable(store, "during-outage");
      await sleep(300);
      down.to = Date.now();
    });
    const back = await whenBack(store, "after-outage");
    expect(back.state).toBe("claimed");
    await sleep(200);
    running = false;
    await Promise.all(loops);

    // Every background operation answered in time, as a result or as "unavailable".
    const failures = log.filter((entry) => "error" in entry);
    for (const entry of failures) {
      expect(entry.error, entry.op).toMatchObject({ name: "StoreUnavailableError" });
    }
    expect(log.filter((entry) => entry.ms >= TIMEOUT + SLACK)).toEqual([]);
    // Nothing that started after the server went down and ended before it was back succeeded.
    const impossible = log.filter((e) => "value" in e && e.started >= down.from && e.started + e.ms <= down.to);
    expect(impossible).toEqual([]);
    expect(failures.length).toBeGreaterThan(0);
    expect(log.filter((entry) => "value" in entry && entry.started > down.to).length).toBeGreaterThan(0);

    // And the store is fully usable again.
    const token = (back as { token: string }).token;
    expect(await store.complete("after-outage", token, response, { ttlMs: LONG })).toBe(true);
    expect((await store.claim("after-outage", { fingerprint: "fp", lockTtlMs: LONG })).state).toBe("completed");
  });

  it("claims refused while ioredis reconnects queue no release behind them: they take nothing once it is back", async () => {
    server = await startRedis({ local: true });
    // A client that keeps commands queued while the server is down, however long that lasts.
    const client = redisClient(server.url, { retryStrategy: () => 50, maxRetriesPerRequest: null });
    client.on("error", () => {});
    const store = storeOn(client, { operationTimeoutMs: 200 });
    expect((await store.claim("warm", { fingerprint: "fp", lockTtlMs: LONG })).state).toBe("claimed");
    const releases = vi.spyOn(store, "release");
    const keys = Array.from({ length: 20 }, (_, i) => `down:${i}`);
    await server.restart(async () => {
      await expect.poll(() => client.status, { timeout: 5_000 }).not.toBe("ready");
      const failed = await Promise.all(
        keys.map((key) => timed(() => store.claim(key, { fingerprint: "fp", lockTtlMs: LONG }))),
      );
      for (const result of failed) expect(result).toMatchObject({ error: { name: "StoreUnavailableError" } });
    });
    expect(releases).not.toHaveBeenCalled();
    await expect.poll(() => client.status, { timeout: 5_000 }).toBe("ready");
    expect(await client.ping()).toBe("PONG"); // the queued claims have run
    expect(await adminClient().exists(...keys.map((key) => store.keyFor(key)))).toBe(0);
  });

  describe("Redis down when the store starts (no reply from it yet, so no clock sample)", () => {
    /**
     * A store made while its server is down, on a client that keeps commands queued until it
     * is back (`maxRetriesPerRequest: null`: the commands are not dropped after a few retries),
     * as an app that starts before its Redis does.
     */
    function startingStore(operationTimeoutMs: number) {
      const client = redisClient(server!.url, { retryStrategy: () => 50, maxRetriesPerRequest: null });
      client.on("error", () => {});
      return { client, store: storeOn(client, { operationTimeoutMs }) };
    }
    const keys = ["a", "b", "c"];

    it("claims answered unavailable while it is down take nothing once it is back: the retries claim", async () => {
      server = await startRedis({ local: true });
      let started: ReturnType<typeof startingStore> | undefined;
      await server.restart(async () => {
        started = startingStore(TIMEOUT);
        const failed = await Promise.all(
          keys.map((key) => timed(() => started!.store.claim(key, { fingerprint: "fp", lockTtlMs: LONG }))),
        );
        for (const result of failed) {
          expect(result).toMatchObject({ error: { name: "StoreUnavailableError" } });
          expect(result.ms).toBeLessThan(TIMEOUT + SLACK);
        }
      });
      const { client, store } = started!;
      // What ioredis queued while the server was down runs first once it is back: after this
      // PING, on the same client, it has all run.
      await expect.poll(() => client.status, { timeout: 5_000 }).toBe("ready");
      expect(await client.ping()).toBe("PONG");
      const admin = adminClient();
      expect(await admin.exists(...keys.map((key) => store.keyFor(key)))).toBe(0);
      // The callers told "unavailable" retry: they win, not 409 "in flight" for a whole lease.
      const retries = await Promise.all(keys.map((key) => store.claim(key, { fingerprint: "fp", lockTtlMs: LONG })));
      expect(retries.map((result) => result.state)).toEqual(keys.map(() => "claimed"));
    });

    it("claims queued while it is down and answered in time once it is back still claim", async () => {
      server = await startRedis({ local: true });
      const timeoutMs = 5_000;
      let pending: Array<Promise<ClaimResult>> = [];
      let store: RedisStore | undefined;
      await server.restart(async () => {
        store = startingStore(timeoutMs).store;
        pending = keys.map((key) => store!.claim(key, { fingerprint: "fp", lockTtlMs: LONG }));
        await sleep(100); // queued, not answered
      });
      const results = await Promise.all(pending);
      expect(results.map((result) => result.state)).toEqual(keys.map(() => "claimed"));
      const check = storeOn(adminClient(), { prefix: store!.prefix });
      for (const key of keys) {
        expect((await check.claim(key, { fingerprint: "fp", lockTtlMs: LONG })).state).toBe("in_flight");
      }
    });
  });

  it("server frozen (connections open, no answers): unavailable within the timeout; nothing stuck after", async () => {
    const store = await localStore();
    const token = await store.claim("held", { fingerprint: "fp", lockTtlMs: LONG });
    expect(token.state).toBe("claimed");

    const releases = vi.spyOn(store, "release");
    server!.pause();
    try {
      await expectAllUnavailable(store, "frozen");
    } finally {
      server!.resume();
    }
    // On a connection still up, the claim that timed out is followed by its release (its own
    // token, not the "t" of expectAllUnavailable's own release call).
    expect(releases.mock.calls.filter(([, token]) => token !== "t")).toHaveLength(1);
    // The claim that timed out was already sent: the server runs it when it thaws, so the
    // key may be locked by nobody — but only for that claim's lease (1 s), never for good.
    const next = await whenBack(store, "after-freeze");
    expect(next.state).toBe("claimed");
    await sleep(1_100);
    expect((await store.claim("frozen", { fingerprint: "fp", lockTtlMs: LONG })).state).toBe("claimed");
    const held = token as Extract<ClaimResult, { state: "claimed" }>;
    expect(await store.complete("held", held.token, response, { ttlMs: LONG })).toBe(true);
  });

  it("a full Redis (maxmemory, noeviction): a claim admitted before completes and replays; new claims fail as unavailable", async () => {
    const store = await localStore();
    const admin = adminClient();
    const claim = (key: string) => store.claim(key, { fingerprint: "fp", lockTtlMs: LONG });
    const done = (await claim("done")) as { token: string };
    expect(await store.complete("done", done.token, response, { ttlMs: LONG })).toBe(true);
    const [held, dropped, kept] = (await Promise.all([claim("held"), claim("dropped"), claim("kept")])) as Array<{
      token: string;
    }>;

    await admin.config("SET", "maxmemory-policy", "noeviction");
    await admin.config("SET", "maxmemory", "1");
    const oom = { name: "StoreUnavailableError", cause: { message: expect.stringContaining("OOM") } };
    await expect(claim("new")).rejects.toMatchObject(oom);
    expect((await claim("done")).state).toBe("completed");
    expect((await claim("held")).state).toBe("in_flight");
    // The handlers behind these claims already ran: their outcome is kept, never lost to OOM.
    expect(await store.extend("kept", kept!.token, LONG)).toBe(true);
    expect(await store.complete("held", held!.token, response, { ttlMs: LONG })).toBe(true);
    expect(await store.release("dropped", dropped!.token)).toBe(true);
    expect(await claim("held")).toMatchObject({ state: "completed", record: { status: 200, body: response.body } });

    await admin.config("SET", "maxmemory", "0");
    expect((await claim("new")).state).toBe("claimed");
  });

  it("a replica (or a demoted master) answers READONLY: unavailable, never a win", async () => {
    const primary = await startRedis({ local: true });
    try {
      const store = await localStore();
      const admin = adminClient();
      await admin.replicaof(primary.host, primary.port);
      await expect(store.claim("k", { fingerprint: "fp", lockTtlMs: LONG })).rejects.toMatchObject({
        name: "StoreUnavailableError",
        cause: { message: expect.stringContaining("READONLY") },
      });
      await admin.replicaof("NO", "ONE");
      expect((await store.claim("k", { fingerprint: "fp", lockTtlMs: LONG })).state).toBe("claimed");
    } finally {
      await primary.stop();
    }
  });
});
