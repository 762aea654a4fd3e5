/** The Redis token store's own checks, shared by the single-server and the Cluster tests. */

import { StoreUnavailableError } from "@interlock/core";
import type { Cluster, Redis } from "ioredis";
import { expect, it } from "vitest";
import { RedisTokenStore } from "../src/redis.js";

export interface RedisChecks {
  /** A client of the server (or cluster) under test. */
  client: () => Redis | Cluster;
  /** A client of a server that cannot be reached. */
  unreachable: () => Promise<Redis | Cluster>;
  prefix: string;
}

/** Registers the checks: what a value looks like on the server, and failure when it is down. */
export function itChecksRedisStore(where: string, { client, unreachable, prefix }: RedisChecks): void {
  it("keeps each value in one prefixed hash that expires with it", async () => {
    const redis = client();
    const store = new RedisTokenStore(redis, { prefix });
    const version = await store.set("session:x", "sealed", { ttlMs: 60_000 });
    // `calls`: this write's id until the store's operation timeout, for a copy ioredis may resend.
    expect(await redis.hgetall(`${prefix}session:x`)).toEqual({
      value: "sealed",
      version,
      calls: expect.stringMatching(new RegExp(`^${version} \\d+$`)),
    });
    const ttl = await redis.pttl(`${prefix}session:x`);
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });

  it(`fails with StoreUnavailableError, in bounded time, when ${where} cannot be reached`, async () => {
    const down = await unreachable();
    down.on("error", () => {});
    const store = new RedisTokenStore(down, { prefix, operationTimeoutMs: 300 });
    await expect(store.get("k")).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(store.set("k", "v", { ttlMs: 1000, expect: null })).rejects.toMatchObject({
      code: "store_unavailable",
    });
  });
}
