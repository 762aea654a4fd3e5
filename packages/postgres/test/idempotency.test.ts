/** The idempotency engine's whole behaviour table, on a real PostgreSQL. */

import { describeIdempotencyBehaviour } from "@interlock/core/testing";
import { afterAll } from "vitest";
import { endPool, freshStore, newPool, unreachableStore } from "./helpers.js";

const pool = newPool({ max: 20 });

afterAll(() => endPool(pool));

describeIdempotencyBehaviour("postgres", {
  // Each store on its own freshly migrated table: no test sees another's keys.
  create: () => freshStore(pool, "idem"),
  createUnavailable: () => unreachableStore(1_000),
});
