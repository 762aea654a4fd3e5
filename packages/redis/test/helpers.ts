/**
 * Clients, stores and prefixes for the tests. Clients made here are closed after the first file
 * of a worker that loads this module (the project shares modules between files): a file that
 * stops its own servers closes its own clients first (see resharding.test.ts).
 */

import { randomBytes } from "node:crypto";
import { Cluster, Redis } from "ioredis";
import { afterAll, inject } from "vitest";
import { RedisStore, type RedisStoreOptions } from "../src/index.js";

const clients: Array<Redis | Cluster> = [];

afterAll(() => {
  for (const client of clients.splice(0)) client.disconnect();
});

/** A prefix no other test uses, so tests share servers without seeing each other's keys. */
export const uniquePrefix = (label = "t") => `test:${label}:${randomBytes(6).toString("hex")}:`;

export function track<C extends Redis | Cluster>(client: C): C {
  clients.push(client);
  return client;
}

/** Options the tests set; the store itself works with whatever the user chose. */
type TestClientOptions = { retryStrategy?: () => number; maxRetriesPerRequest?: number | null; keyPrefix?: string };

export const redisClient = (url = inject("redisUrl"), options: TestClientOptions = {}) =>
  track(new Redis(url, options));

export const clusterClient = () => track(new Cluster(inject("redisClusterNodes")));

export const storeOn = (client: Redis | Cluster, options: RedisStoreOptions = {}) =>
  new RedisStore(client, { prefix: uniquePrefix(), ...options });
