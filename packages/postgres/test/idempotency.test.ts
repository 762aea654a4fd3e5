/** The idempotency engine's whole behaviour table, on a real PostgreSQL. */

import { describeIdempotencyBehaviour } from "@interlock/core/testing";
import { freePort } from "@interlock/test-harness";
import { afterAll } from "vitest";
import { postgresStore } from "../src/index.js";
import { endPool, freshStore, newPool } from "./helpers.js";

const pool = newPool({ max: 20 });
const unreachable: Array<{ end(): Promise<void> }> = [];

afterAll(async () => {
  await Promise.all([endPool(pool), ...unreachable.map((p) => p.end())]);
});

describeIdempotencyBehaviour("postgres", {
  // Each store on its own freshly migrated table: no test sees another's keys.
  create: () => freshStore(pool, "idem"),
  // Nothing listens on a port freePort just handed out: connections are refused.
  createUnavailable: async () => {
    const down = newPool({ connectionString: `postgres://postgres@127.0.0.1:${await freePort()}/none` });
    unreachable.push(down);
    return postgresStore(down, { operationTimeoutMs: 1_000 });
  },
});
