/**
 * One round trip per operation, counted on the server: MONITOR shows every command the store's
 * connection sends (the scripts' own calls are reported as coming from "lua"), and INFO
 * commandstats agrees. A server of our own, so no other test's traffic is counted. And the
 * fallback when the server forgot the scripts (NOSCRIPT): still every operation answers.
 */

import type { ClaimResult } from "@interlock/core";
import { type RedisServer, startRedis } from "@interlock/test-harness";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { redisClient, storeOn, track } from "./helpers.js";

let server: RedisServer | undefined;
afterAll(async () => server?.stop());

const response = {
  status: 200,
  headers: [["content-type", "text/plain"]] as Array<[string, string]>,
  body: new Uint8Array(10),
};

/** Calls per command since the server started, from INFO commandstats. */
async function commandCalls(admin: Redis): Promise<Record<string, number>> {
  const info = await admin.info("commandstats");
  return Object.fromEntries([...info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)].map((m) => [m[1]!, Number(m[2])]));
}

describe("redis round trips", () => {
  it("every operation is exactly one EVALSHA in steady state", async () => {
    server = await startRedis({ local: true });
    const client = redisClient(server.url);
    const admin = redisClient(server.url);
    const store = storeOn(client);
    const claim = (key: string) => store.claim(key, { fingerprint: "fp", lockTtlMs: 60_000 });
    const token = (result: ClaimResult) => (result as Extract<ClaimResult, { state: "claimed" }>).token;

    // Warm-up: ioredis sends each script once as EVAL on a new connection, then EVALSHA.
    const warm = token(await claim("warm"));
    await store.extend("warm", warm, 60_000);
    await store.complete("warm", warm, response, { ttlMs: 60_000 });
    await store.release("warm", "nobody");

    const self = /addr=(\S+)/.exec(String(await client.client("INFO")))![1];
    const seen: string[][] = [];
    const monitor = track(await admin.monitor());
    monitor.on("monitor", (_time: string, args: string[], source: string) => {
      if (source === self || args[1] === "round-trips:done") seen.push(args);
    });
    const before = await commandCalls(admin);

    let operations = 0;
    const count = <T>(promise: Promise<T>) => {
      operations++;
      return promise;
    };
    for (let i = 0; i < 50; i++) {
      const key = `rt:${i}`;
      const won = token(await count(claim(key)));
      expect((await count(claim(key))).state).toBe("in_flight");
      expect(await count(store.extend(key, won, 60_000))).toBe(true);
      expect(await count(store.complete(key, won, response, { ttlMs: 60_000 }))).toBe(true);
      expect((await count(claim(key))).state).toBe("completed");
      const again = token(await count(claim(`${key}:released`)));
      expect(await count(store.release(`${key}:released`, again))).toBe(true);
    }

    // MONITOR delivers in order: once the marker arrives, every earlier command has too.
    await admin.echo("round-trips:done");
    await expect.poll(() => seen.at(-1)?.[1], { timeout: 5_000 }).toBe("round-trips:done");
    const after = await commandCalls(admin);

    const sent = seen.slice(0, -1).map((args) => args[0]);
    expect(sent).toHaveLength(operations);
    expect(new Set(sent)).toEqual(new Set(["evalsha"]));
    expect((after.evalsha ?? 0) - (before.evalsha ?? 0)).toBe(operations);
    expect((after.eval ?? 0) - (before.eval ?? 0)).toBe(0);
  });

  it("before a store's first reply a claim probes (a read, deadline 0), then claims with its deadline; then one round trip, never a claim without a deadline", async () => {
    server ??= await startRedis({ local: true });
    const admin = redisClient(server.url);
    // The scripts cached on the server, so no NOSCRIPT fallback doubles a command below.
    const warm = storeOn(redisClient(server.url));
    const held = (await warm.claim("held", { fingerprint: "fp", lockTtlMs: 60_000 })) as { token: string };
    await warm.complete("held", held.token, response, { ttlMs: 60_000 });
    await warm.claim("locked", { fingerprint: "fp", lockTtlMs: 60_000 });

    // Every claim script run on a key under `prefix`, as [key, deadline].
    const seen: string[][] = [];
    const monitor = track(await admin.monitor());
    monitor.on("monitor", (_time: string, args: string[]) => {
      if (args[0] === "echo" || (/^eval/i.test(args[0]!) && args[3]?.startsWith(warm.prefix)))
        seen.push(args[0] === "echo" ? ["echo"] : [args[3]!.slice(warm.prefix.length + 1, -1), args[7]!]);
    });
    const newStore = () => storeOn(redisClient(server!.url), { prefix: warm.prefix });
    const fresh = newStore();
    const start = Date.now();
    expect((await fresh.claim("first", { fingerprint: "fp", lockTtlMs: 60_000 })).state).toBe("claimed");
    expect((await fresh.claim("second", { fingerprint: "fp", lockTtlMs: 60_000 })).state).toBe("claimed");
    // A new store whose probe finds a record or a lock: that is its answer, one round trip.
    const other = newStore();
    expect((await other.claim("held", { fingerprint: "fp", lockTtlMs: 60_000 })).state).toBe("completed");
    const another = newStore();
    expect((await another.claim("locked", { fingerprint: "fp", lockTtlMs: 60_000 })).state).toBe("in_flight");
    const finished = Date.now();

    await admin.echo("round-trips:done");
    await expect.poll(() => seen.at(-1)?.[0], { timeout: 5_000 }).toBe("echo");
    const runs = seen.slice(0, -1);
    expect(
      runs.map(([key, deadline]) => [
        key,
        deadline === "0" ? "probe" : /^[1-9]\d*$/.test(deadline!) ? "deadline" : `none: ${deadline}`,
      ]),
    ).toEqual([
      ["first", "probe"],
      ["first", "deadline"],
      ["second", "deadline"],
      ["held", "probe"],
      ["locked", "probe"],
    ]);
    // The deadlines: on the server's clock (this machine's), a timeout after sending, about.
    for (const [, deadline] of runs.filter(([, deadline]) => deadline !== "0")) {
      expect(Number(deadline)).toBeGreaterThanOrEqual(start + fresh.operationTimeoutMs);
      expect(Number(deadline)).toBeLessThanOrEqual(finished + 2 * fresh.operationTimeoutMs);
    }
  });

  it("after SCRIPT FLUSH (NOSCRIPT), every operation still answers, plain and auto-pipelined: ioredis resends it as EVAL", async () => {
    server ??= await startRedis({ local: true });
    const admin = redisClient(server.url);
    const noscripts = async () =>
      Number(/^cmdstat_evalsha:.*failed_calls=(\d+)/m.exec(await admin.info("commandstats"))?.[1] ?? 0);
    for (const enableAutoPipelining of [false, true]) {
      const before = await noscripts();
      const store = storeOn(track(new Redis(server.url, { enableAutoPipelining })));
      const keys = Array.from({ length: 10 }, (_, i) => `flushed:${i}`);
      const claim = (key: string) => store.claim(key, { fingerprint: "fp", lockTtlMs: 60_000 });
      const tokens = (await Promise.all(keys.map(claim))).map((result) => (result as { token: string }).token);
      // Each operation meets a server that forgot every script (as after a failover behind a proxy).
      await admin.script("FLUSH");
      expect(await Promise.all(keys.map((key, i) => store.extend(key, tokens[i]!, 60_000)))).toEqual(
        keys.map(() => true),
      );
      await admin.script("FLUSH");
      const done = keys.map((key, i) => store.complete(key, tokens[i]!, response, { ttlMs: 60_000 }));
      expect(await Promise.all(done)).toEqual(keys.map(() => true));
      await admin.script("FLUSH");
      const replays = await Promise.all(keys.map(claim));
      expect(replays.map((result) => result.state)).toEqual(keys.map(() => "completed"));
      await admin.script("FLUSH");
      const fresh = (await claim(`${keys[0]}:fresh`)) as { token: string };
      await admin.script("FLUSH");
      expect(await store.release(`${keys[0]}:fresh`, fresh.token)).toBe(true);
      // The EVALSHAs that met the empty cache failed (NOSCRIPT) before their EVAL ran.
      expect(await noscripts()).toBeGreaterThanOrEqual(before + 5);
    }
  });
});
