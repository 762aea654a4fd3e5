import { describeStoreConformance } from "@interlock/core/testing";
import { afterAll } from "vitest";
import { endPool, freshStore, newPool, unreachableStore } from "./helpers.js";

const pool = newPool({ max: 20 });

afterAll(() => endPool(pool));

describeStoreConformance("postgres", {
  // Each store on its own table: no test sees another's keys.
  create: () => freshStore(pool, "conformance"),
  createUnavailable: () => unreachableStore(1_000),
  unavailableWithinMs: 1_000,
});

// The same contract with named prepared statements (each store its own table, so its own names).
describeStoreConformance("postgres, prepared statements", {
  create: () => freshStore(pool, "prepared", { preparedStatements: true }),
});
