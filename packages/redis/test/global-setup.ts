/**
 * Starts the project's servers once per run: a standalone Redis (or `REDIS_URL`) and a local
 * 3-master Redis Cluster, both at the same time. Tests that stop, freeze or measure a server
 * start their own with `startRedis({ local: true })`.
 */

import { type RedisNode, startRedis, startRedisCluster } from "@interlock/test-harness";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    /** The shared standalone server. */
    redisUrl: string;
    /** The masters of the shared local Redis Cluster. */
    redisClusterNodes: RedisNode[];
  }
}

export default async function setup({ provide }: TestProject) {
  const started = await Promise.allSettled([startRedis(), startRedisCluster()]);
  const [server, cluster] = started;
  if (server.status === "rejected" || cluster.status === "rejected") {
    await Promise.all(started.map((s) => (s.status === "fulfilled" ? s.value.stop() : undefined)));
    throw server.status === "rejected" ? server.reason : (cluster as PromiseRejectedResult).reason;
  }
  provide("redisUrl", server.value.url);
  provide("redisClusterNodes", cluster.value.nodes);
  return async () => {
    await Promise.all([server.value.stop(), cluster.value.stop()]);
  };
}
