/**
 * Starts the servers the oauth tests share, once per run: a standalone Redis (or `REDIS_URL`) and
 * a PostgreSQL (or `DATABASE_URL`), at the same time. Each test file starts its own authorization
 * server, so what it counts at the server is its own.
 */

import { startPostgres, startRedis } from "@interlock/test-harness";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    redisUrl: string;
    databaseUrl: string;
  }
}

export default async function setup({ provide }: TestProject) {
  const started = await Promise.allSettled([startRedis(), startPostgres()]);
  const [redis, postgres] = started;
  if (redis.status === "rejected" || postgres.status === "rejected") {
    await Promise.all(started.map((s) => (s.status === "fulfilled" ? s.value.stop() : undefined)));
    throw redis.status === "rejected" ? redis.reason : (postgres as PromiseRejectedResult).reason;
  }
  provide("redisUrl", redis.value.url);
  provide("databaseUrl", postgres.value.url);
  return async () => {
    await Promise.all([redis.value.stop(), postgres.value.stop()]);
  };
}
