/**
 * The conformance suite again, on connections whose default isolation is SERIALIZABLE: a claim
 * losing to a row committed after its snapshot is then a serialization failure, which the store
 * reruns, instead of READ COMMITTED's empty read (see PostgresStore.claim).
 */

import { describeStoreConformance } from "@interlock/core/testing";
import { afterAll } from "vitest";
import { endPool, freshStore, newPool } from "./helpers.js";

const pool = newPool({ max: 20, options: "-c default_transaction_isolation=serializable" });
afterAll(() => endPool(pool));

describeStoreConformance("postgres, SERIALIZABLE by default", {
  create: () => freshStore(pool, "serializable"),
});
