/**
 * Replay de-duplication around webhook handlers, on a real PostgreSQL: several receivers, each
 * on its own pool, share one table as the instances of an app would.
 */

import { describeWebhookReplayBehaviour } from "@interlock/core/testing";
import type pg from "pg";
import { afterAll } from "vitest";
import { postgresStore } from "../src/index.js";
import { endPool, freshTable, newPool } from "./helpers.js";

const pool = newPool();
const instancePools: pg.Pool[] = [];

afterAll(async () => {
  await Promise.all(instancePools.splice(0).map((p) => p.end()));
  await endPool(pool);
});

describeWebhookReplayBehaviour("postgres", {
  // Stores on one fresh table, each on a pool of its own (one per app instance).
  instances: async (count) => {
    const table = await freshTable(pool, "wh");
    const stores = Array.from({ length: count }, () => {
      const own = newPool({ max: 5 });
      instancePools.push(own);
      return { own, store: postgresStore(own, { table }) };
    });
    // Connections open before the test, so concurrent deliveries really are concurrent.
    await Promise.all(stores.flatMap(({ own }) => Array.from({ length: 5 }, () => own.query("SELECT 1"))));
    return stores.map(({ store }) => store);
  },
});
