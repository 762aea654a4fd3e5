/**
 * Starts the servers the oauth tests share, once per run and all at the same time: a standalone
 * Redis (or `REDIS_URL`), a local 3-master Redis Cluster (the Redis token store on Cluster) and a
 * PostgreSQL (or `DATABASE_URL`). Each test file starts its own authorization server, so what it
 * counts at the server is its own.
 */

import { type RedisNode, startPostgres, startRedis, startRedisCluster } from "@interlock/test-harness";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    redisUrl: string;
    /** The masters of the shared local Redis Cluster. */
    redisClusterNodes: RedisNode[];
    databaseUrl: string;
  }
}

export default async function setup({ provide }: TestProject) {
  const started = await Promise.allSettled([startRedis(), startRedisCluster(), startPostgres()]);
  const [redis, cluster, postgres] = started;
  if (redis.status === "rejected" || cluster.status === "rejected" || postgres.status === "rejected") {
    await Promise.all(started.map((s) => (s.status === "fulfilled" ? s.value.stop() : undefined)));
    throw started.find((s): s is PromiseRejectedResult => s.status === "rejected")!.reason;
  }
  provide("redisUrl", redis.value.url);
  provide("redisClusterNodes", cluster.value.nodes);
  provide("databaseUrl", postgres.value.url);
  return async () => {
    await Promise.all([redis.value.stop(), cluster.value.stop(), postgres.value.stop()]);
  };
}
