/**
 * The conformance suite again, on connections whose default isolation is SERIALIZABLE: a claim
 * losing to a row committed after its snapshot is then a serialization failure, which the store
 * reruns, instead of READ COMMITTED's empty read (see PostgresStore.claim).
 */

import { describeStoreConformance } from "@interlock/core/testing";
import { afterAll, describe, expect, it } from "vitest";
import { migrate, type PostgresStore, postgresStore } from "../src/index.js";
import { endPool, freshTable, newPool, response, sleep, uniqueTable } from "./helpers.js";

const serializable = { max: 20, options: "-c default_transaction_isolation=serializable" };
const pool = newPool(serializable);
/** A second app process's pool, SERIALIZABLE too: the stores' siblings run on it. */
const other = newPool(serializable);
afterAll(() => Promise.all([endPool(pool), other.end()]));

/** The table each store made here is on, for its sibling. */
const tables = new WeakMap<PostgresStore, string>();

describeStoreConformance("postgres, SERIALIZABLE by default", {
  create: async () => {
    const table = await freshTable(pool, "serializable");
    const store = postgresStore(pool, { table });
    tables.set(store, table);
    return store;
  },
  // Claims from two pools on one table: each loses to rows the other committed after its snapshot.
  sibling: (store) => postgresStore(other, { table: tables.get(store)! }),
});

/**
 * complete, release and extend each write the key's row. Under SERIALIZABLE (or REPEATABLE
 * READ), a row changed by a transaction that commits while the statement waits for its lock is
 * a serialization failure, though nothing was written: the store runs the statement again with
 * a fresh snapshot rather than report the store unavailable (for complete, that would leave a
 * handler's done work unrecorded, and a retry would run it again).
 */
describe("postgres, SERIALIZABLE by default: a write that waited on a concurrent commit", () => {
  /** Holds the key's row lock in another transaction, runs `operation`, then commits that transaction. */
  async function behindConcurrentCommit<T>(table: string, key: string, operation: () => Promise<T>): Promise<T> {
    const other = await pool.connect();
    try {
      await other.query("BEGIN");
      // A change that leaves the row as it was, but commits a new version of it.
      const touched = await other.query(
        `UPDATE "${table}" SET expires_at = expires_at WHERE key_hash = sha256(convert_to($1, 'UTF8'))`,
        [key],
      );
      expect(touched.rowCount).toBe(1);
      const running = operation();
      await waitUntilBlocked();
      await other.query("COMMIT");
      return await running;
    } finally {
      other.release();
    }
  }

  /** Waits until some statement of this database waits for a lock. */
  async function waitUntilBlocked(): Promise<void> {
    for (let i = 0; i < 200; i++) {
      const { rows } = await pool.query(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
      );
      if (rows[0].n > 0) return;
      await sleep(10);
    }
    throw new Error("the store's statement never waited for the row lock");
  }

  async function claimed(label: string) {
    const table = uniqueTable(label);
    await migrate(pool, { table });
    const store = postgresStore(pool, { table });
    const claim = await store.claim("k", { fingerprint: "f", lockTtlMs: 30_000 });
    if (claim.state !== "claimed") throw new Error("not claimed");
    return { store, table, token: claim.token };
  }

  it("complete records the response", async () => {
    const { store, table, token } = await claimed("ser_complete");
    const done = await behindConcurrentCommit(table, "k", () =>
      store.complete("k", token, response("paid"), { ttlMs: 60_000 }),
    );
    expect(done).toBe(true);
    const again = await store.claim("k", { fingerprint: "f", lockTtlMs: 30_000 });
    expect(again.state).toBe("completed");
  });

  it("release frees the key", async () => {
    const { store, table, token } = await claimed("ser_release");
    expect(await behindConcurrentCommit(table, "k", () => store.release("k", token))).toBe(true);
    expect((await store.claim("k", { fingerprint: "f", lockTtlMs: 30_000 })).state).toBe("claimed");
  });

  it("complete inside the caller's transaction is not rerun: it fails as unavailable, for the caller to rerun", async () => {
    const { store, table, token } = await claimed("ser_in_tx");
    const transaction = await pool.connect();
    try {
      await transaction.query("BEGIN");
      const outcome = await behindConcurrentCommit(table, "k", () =>
        store.complete("k", token, response("paid"), { ttlMs: 60_000, transaction }).then(
          (value) => ({ value }),
          (error: unknown) => ({ error }),
        ),
      );
      // The serialization failure itself, not what a second run in the aborted transaction gets (25P02).
      expect(outcome).toMatchObject({ error: { name: "StoreUnavailableError", cause: { code: "40001" } } });
    } finally {
      await transaction.query("ROLLBACK");
      transaction.release();
    }
    // The lock stays with its owner, who completes on a fresh transaction.
    expect(await store.complete("k", token, response("paid"), { ttlMs: 60_000 })).toBe(true);
  });

  it("extend renews the lease", async () => {
    const { store, table, token } = await claimed("ser_extend");
    expect(await behindConcurrentCommit(table, "k", () => store.extend("k", token, 60_000))).toBe(true);
  });
});
