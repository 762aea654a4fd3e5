import { InterlockConfigError, StoreUnavailableError } from "@interlock/core";
import { freePort } from "@interlock/test-harness";
import { Redis } from "ioredis";
import { afterAll, describe, expect, inject, it } from "vitest";
import { RedisTokenStore } from "../src/redis.js";
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

describe("redis token store", () => {
  it("keeps each value in one prefixed hash that expires with it", async () => {
    const redis = client();
    const store = new RedisTokenStore(redis, { prefix });
    const version = await store.set("session:x", "sealed", { ttlMs: 60_000 });
    expect(await redis.hgetall(`${prefix}session:x`)).toEqual({ value: "sealed", version });
    const ttl = await redis.pttl(`${prefix}session:x`);
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });

  it("fails with StoreUnavailableError, in bounded time, when Redis cannot be reached", async () => {
    const down = client(`redis://127.0.0.1:${await freePort()}`, { maxRetriesPerRequest: null, lazyConnect: false });
    down.on("error", () => {});
    const store = new RedisTokenStore(down, { prefix, operationTimeoutMs: 300 });
    await expect(store.get("k")).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(store.set("k", "v", { ttlMs: 1000, expect: null })).rejects.toMatchObject({
      code: "store_unavailable",
    });
  });

  it("refuses what is not an ioredis client", () => {
    expect(() => new RedisTokenStore({} as never)).toThrow(InterlockConfigError);
    expect(() => new RedisTokenStore(client(), { operationTimeoutMs: 0 })).toThrow(InterlockConfigError);
  });
});
