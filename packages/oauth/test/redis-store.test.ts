import { InterlockConfigError } from "@interlock/core";
import { freePort } from "@interlock/test-harness";
import { Redis } from "ioredis";
import { afterAll, describe, expect, inject, it } from "vitest";
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
      client(`redis://127.0.0.1:${await freePort()}`, { maxRetriesPerRequest: null, lazyConnect: false }),
    prefix,
  });

  it("refuses what is not an ioredis client", () => {
    expect(() => new RedisTokenStore({} as never)).toThrow(InterlockConfigError);
    expect(() => new RedisTokenStore(client(), { operationTimeoutMs: 2 ** 31 })).toThrow(InterlockConfigError);
    expect(() => new RedisTokenStore(client(), { operationTimeoutMs: 0 })).toThrow(InterlockConfigError);
  });
});
