/** complete() inside the caller's own transaction: the business write and the record commit together. */

import { type ClaimResult, runIdempotent, type StoredResponse } from "@interlock/core";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { type PostgresStore, postgresStore } from "../src/index.js";
import { endPool, freshStore, freshTable, newPool, response, sleep, uniqueTable } from "./helpers.js";

const pool = newPool();
const payments = uniqueTable("payments");
let store: PostgresStore;

beforeAll(async () => {
  store = await freshStore(pool, "tx");
  await pool.query(`CREATE TABLE "${payments}" (id text PRIMARY KEY, amount int NOT NULL)`);
});
afterAll(() => endPool(pool));

async function claim(key: string, fingerprint = "fp") {
  const result = await store.claim(key, { fingerprint, lockTtlMs: 60_000 });
  expect(result.state).toBe("claimed");
  return (result as Extract<ClaimResult, { state: "claimed" }>).token;
}

const paymentExists = async (id: string) =>
  (await pool.query(`SELECT 1 FROM "${payments}" WHERE id = $1`, [id])).rowCount === 1;

/** BEGIN, a business write, complete() on the same client; then `end` (COMMIT or ROLLBACK). */
async function inTransaction(key: string, token: string, end: "COMMIT" | "ROLLBACK", whileOpen?: () => Promise<void>) {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    await client.query(`INSERT INTO "${payments}" (id, amount) VALUES ($1, 100)`, [key]);
    const stored = await store.complete(key, token, response(`paid ${key}`), { ttlMs: 60_000, transaction: client });
    await whileOpen?.();
    await client.query(end);
    return stored;
  } finally {
    client.release();
  }
}

describe("complete inside the caller's transaction", () => {
  it("commit: the business write and a replayable record, together", async () => {
    const token = await claim("pay-1", "fp-pay-1");
    const stored = await inTransaction("pay-1", token, "COMMIT", async () => {
      // Before COMMIT another caller sees the key in flight, at once (it reads the committed row
      // without waiting for the transaction's row lock): never a win, never a half-written record.
      expect(await store.claim("pay-1", { fingerprint: "fp-pay-1", lockTtlMs: 60_000 })).toMatchObject({
        state: "in_flight",
        fingerprint: "fp-pay-1",
      });
      expect(await paymentExists("pay-1")).toBe(false);
    });
    expect(stored).toBe(true);
    expect(await paymentExists("pay-1")).toBe(true);
    const replay = await store.claim("pay-1", { fingerprint: "fp-pay-1", lockTtlMs: 60_000 });
    expect(replay).toMatchObject({ state: "completed", record: { status: 200, fingerprint: "fp-pay-1" } });
    const { record } = replay as Extract<ClaimResult, { state: "completed" }>;
    expect(new TextDecoder().decode(record.body)).toBe("paid pay-1");
  });

  it("rollback: no business write, no record, the lock still held; the owner can release it", async () => {
    const token = await claim("pay-2", "fp-pay-2");
    expect(await inTransaction("pay-2", token, "ROLLBACK")).toBe(true);
    expect(await paymentExists("pay-2")).toBe(false);
    expect(await store.claim("pay-2", { fingerprint: "other", lockTtlMs: 60_000 })).toMatchObject({
      state: "in_flight",
      fingerprint: "fp-pay-2",
    });
    expect(await store.release("pay-2", token)).toBe(true);
    const retry = await claim("pay-2", "fp-pay-2");
    expect(await inTransaction("pay-2", retry, "COMMIT")).toBe(true);
    expect(await paymentExists("pay-2")).toBe(true);
  });

  it("a stale token inside the transaction returns false and leaves the transaction usable", async () => {
    const token = await claim("pay-3");
    const client = await pool.connect();
    try {
      await client.query("BEGIN");
      expect(
        await store.complete("pay-3", `${token}-stale`, response("x"), { ttlMs: 60_000, transaction: client }),
      ).toBe(false);
      await client.query(`INSERT INTO "${payments}" (id, amount) VALUES ('pay-3', 1)`);
      await client.query("COMMIT");
    } finally {
      client.release();
    }
    expect(await paymentExists("pay-3")).toBe(true);
    expect(await store.release("pay-3", token)).toBe(true);
  });

  it("refuses a transaction that is not a pg client in a transaction (the pool, another library's) before writing anything", async () => {
    const token = await claim("pay-wrong-tx", "fp");
    // The pool itself would commit the record at once, outside the caller's transaction; an
    // ORM's transaction object (no query()) is a setup mistake, not an outage to retry.
    for (const transaction of [pool, {}, { query: "not a function" }]) {
      await expect(
        store.complete("pay-wrong-tx", token, response("x"), { ttlMs: 60_000, transaction: transaction as never }),
      ).rejects.toMatchObject({ name: "InterlockConfigError", message: expect.stringContaining("transaction") });
    }
    expect(await store.claim("pay-wrong-tx", { fingerprint: "fp", lockTtlMs: 60_000 })).toMatchObject({
      state: "in_flight",
    });
    expect(await store.release("pay-wrong-tx", token)).toBe(true);
  });

  it("a lease that ran out while the transaction was open: a claimer waits for it, then sees its outcome", async () => {
    for (const end of ["COMMIT", "ROLLBACK"] as const) {
      const key = `late-${end}`;
      // A lease long enough for the transaction to complete within it on a loaded machine (seven
      // test projects at once once took a 200 ms one past its end first), then waited out.
      const first = await store.claim(key, { fingerprint: "fp", lockTtlMs: 1_000 });
      const token = (first as Extract<ClaimResult, { state: "claimed" }>).token;
      let other: ClaimResult | undefined;
      const stored = await inTransaction(key, token, end, async () => {
        await sleep(1_100); // the lease is over, but this transaction holds the row
        void store.claim(key, { fingerprint: "other", lockTtlMs: 60_000 }).then((result) => {
          other = result;
        });
        await sleep(200);
        expect(other, "the claimer waits for the transaction").toBeUndefined();
      });
      expect(stored, "completed within its lease").toBe(true);
      await vi.waitFor(() => expect(other).toBeDefined());
      // COMMIT: the record stands. ROLLBACK: the expired lock is taken over, the old token is stale.
      if (end === "COMMIT") expect(other).toMatchObject({ state: "completed", record: { fingerprint: "fp" } });
      else {
        expect(other?.state).toBe("claimed");
        expect(await store.release(key, token)).toBe(false);
      }
    }
  });
});

describe("runIdempotent inside the caller's transaction, when complete times out there", () => {
  /**
   * A store whose `complete` takes its row, then stalls past `operationTimeoutMs` in the
   * transaction that asks for it (an AFTER UPDATE trigger sleeps when the transaction says so):
   * the caller's transaction holds the key's row while the store has given up on the statement.
   * The timeout leaves the claim before it time to spare on a loaded machine (200 ms once timed
   * it out too, with seven test projects at once), and the stall outlasts it well.
   */
  async function stallingStore() {
    const table = await freshTable(pool, "stall");
    const fn = `${table}_stall`;
    await pool.query(`CREATE FUNCTION "${fn}"() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
      IF current_setting('interlock_test.stall', true) = 'on' THEN PERFORM pg_sleep(2.5); END IF;
      RETURN NEW; END $$`);
    await pool.query(`CREATE TRIGGER "${fn}" AFTER UPDATE ON "${table}" FOR EACH ROW EXECUTE FUNCTION "${fn}"()`);
    return { store: postgresStore(pool, { table, operationTimeoutMs: 1_000 }), check: postgresStore(pool, { table }) };
  }

  it("not recorded: nothing released behind the caller's back; release() after the ROLLBACK frees the key at once", async () => {
    const { store: stalling, check } = await stallingStore();
    const releases = vi.spyOn(stalling, "release");
    const client = await pool.connect();
    let run: Awaited<ReturnType<typeof runIdempotent<string>>>;
    try {
      await client.query("BEGIN");
      await client.query("SELECT set_config('interlock_test.stall', 'on', true)");
      run = await runIdempotent({ store: stalling, key: "stalled", transaction: client }, async () => "done");
      // No release queued behind the caller's own lock on the row (it would wait out its timeout).
      expect(releases).not.toHaveBeenCalled();
      await client.query("ROLLBACK");
    } finally {
      client.release();
    }
    expect(run.recorded).toBe(false);
    expect(await check.claim("run:stalled", { fingerprint: "", lockTtlMs: 60_000 })).toMatchObject({
      state: "in_flight",
    });
    await run.release?.();
    expect(await check.claim("run:stalled", { fingerprint: "", lockTtlMs: 60_000 })).toMatchObject({
      state: "claimed",
    });
  });

  it("recorded and committed: release() does nothing, the result is replayed", async () => {
    const client = await pool.connect();
    let run: Awaited<ReturnType<typeof runIdempotent<string>>>;
    try {
      await client.query("BEGIN");
      run = await runIdempotent({ store, key: "committed", transaction: client }, async () => "paid");
      await client.query("COMMIT");
    } finally {
      client.release();
    }
    expect(run.recorded).toBe(true);
    await run.release?.();
    expect(await runIdempotent({ store, key: "committed" }, async () => "again")).toMatchObject({
      value: "paid",
      replayed: true,
    });
    // Without a transaction, no release is handed out: the run settles its key itself.
    expect((await runIdempotent({ store, key: "no-transaction" }, async () => 1)).release).toBeUndefined();
  });
});

/**
 * The patterns the README and docs/stores.md show, run by as many requests (or jobs) at once as
 * the pool has connections: each holds one for its transaction while the store needs one too.
 */
describe("the documented transaction patterns, as many at once as the pool has connections", () => {
  const size = 4;

  it("docs/stores.md's recordPayment: the store on a pool of its own, every job recorded", async () => {
    const app = newPool({ max: size });
    const storePool = newPool({ max: 2, connectionTimeoutMillis: 1_000 });
    const table = await freshTable(storePool, "two_pools");
    try {
      // As docs/stores.md has it (its table and this file's payments table aside).
      const store = postgresStore(storePool, { table, operationTimeoutMs: 1_000 });
      async function recordPayment(messageId: string, amount: number) {
        const client = await app.connect();
        let run: Awaited<ReturnType<typeof runIdempotent<string>>> | undefined;
        try {
          await client.query("BEGIN");
          run = await runIdempotent({ store, key: `payment:${messageId}`, transaction: client }, async () => {
            await client.query(`INSERT INTO "${payments}" (id, amount) VALUES ($1, $2)`, [messageId, amount]);
            return messageId;
          });
          if (!run.recorded) throw new Error("payment not recorded");
          await client.query("COMMIT");
          client.release();
          return run.value;
        } catch (error) {
          await client.query("ROLLBACK").catch(() => {});
          client.release(error as Error);
          await run?.release?.();
          throw error;
        }
      }

      const ids = Array.from({ length: size }, (_, i) => `two-pools-${i}`);
      for (const round of ["first", "again"]) {
        const results = await Promise.allSettled(ids.map((id) => recordPayment(id, 100)));
        expect({ round, results }).toEqual({ round, results: ids.map((id) => ({ status: "fulfilled", value: id })) });
      }
      for (const id of ids) expect(await paymentExists(id)).toBe(true);
      const replays = await Promise.all(ids.map((id) => runIdempotent({ store, key: `payment:${id}` }, () => "again")));
      expect(replays.map(({ value, replayed }) => ({ value, replayed }))).toEqual(
        ids.map((id) => ({ value: id, replayed: true })),
      );
    } finally {
      await app.end();
      await storePool.end();
    }
  });

  it("the README's createPayment: the connection back before the release, so every key is free for its retry", async () => {
    const pool = newPool({ max: size, connectionTimeoutMillis: 1_000 });
    const store = await freshStore(pool, "one_pool", { operationTimeoutMs: 1_000 });
    const checked = uniqueTable("checked_payments");
    await pool.query(`CREATE TABLE "${checked}" (id serial PRIMARY KEY, amount int NOT NULL CHECK (amount > 0))`);
    // Every request holds its connection when its payment fails (a barrier, not in the README).
    let holding = 0;
    let allHolding: () => void = () => {};
    const everyRequestHolds = new Promise<void>((resolve) => {
      allHolding = resolve;
    });
    const released: boolean[] = [];
    try {
      // As the README has it, but for the table, the barrier and the release's result kept.
      async function createPayment(key: string, fingerprint: string, amount: number): Promise<StoredResponse> {
        const claim = await store.claim(`pay:${key}`, { fingerprint, lockTtlMs: 30_000 });
        if (claim.state === "completed") return claim.record;
        if (claim.state === "in_flight") throw new Error("a request with this key is in progress");

        const client = await pool.connect();
        try {
          await client.query("BEGIN");
          if (++holding === size) allHolding();
          await everyRequestHolds;
          const { rows } = await client.query(`INSERT INTO "${checked}" (amount) VALUES ($1) RETURNING id`, [amount]);
          const response: StoredResponse = {
            status: 201,
            headers: [["content-type", "application/json"]],
            body: new TextEncoder().encode(JSON.stringify({ id: rows[0].id, amount })),
          };
          if (
            !(await store.complete(`pay:${key}`, claim.token, response, { ttlMs: 86_400_000, transaction: client }))
          ) {
            throw new Error("lease lost: another request took this key over");
          }
          await client.query("COMMIT");
          client.release();
          return response;
        } catch (error) {
          await client.query("ROLLBACK").catch(() => {});
          client.release(error as Error);
          released.push(await store.release(`pay:${key}`, claim.token).catch(() => false));
          throw error;
        }
      }

      const keys = Array.from({ length: size }, (_, i) => `one-pool-${i}`);
      const refused = await Promise.allSettled(keys.map((key) => createPayment(key, "fp", -5))); // the CHECK refuses it
      expect(refused.map((result) => result.status)).toEqual(keys.map(() => "rejected"));
      expect(released).toEqual(keys.map(() => true));
      // Free at once, not locked for the lease: each retry runs, and is recorded.
      const retries = await Promise.all(keys.map((key) => createPayment(key, "fp", 10)));
      expect(retries.map((response) => response.status)).toEqual(keys.map(() => 201));
    } finally {
      await pool.end();
    }
  });
});

describe("complete in a REPEATABLE READ or SERIALIZABLE transaction, its lease renewed meanwhile", () => {
  // A renewal commits a newer version of the lock's row than the transaction's snapshot holds:
  // the complete fails (40001), and every rerun of the transaction whose work runs as long too.
  const fix = { name: "InterlockConfigError", message: expect.stringMatching(/READ COMMITTED.*extendLease: false/) };

  for (const level of ["REPEATABLE READ", "SERIALIZABLE"]) {
    it(`${level}, the store alone: complete throws InterlockConfigError naming the fix; the key is still the claim's`, async () => {
      const token = await claim(`renewed-${level}`);
      const client = await pool.connect();
      try {
        await client.query(`BEGIN ISOLATION LEVEL ${level}`);
        await client.query("SELECT 1"); // the snapshot, after the claim (as the README asks)
        expect(await store.extend(`renewed-${level}`, token, 60_000)).toBe(true);
        await expect(
          store.complete(`renewed-${level}`, token, response("x"), { ttlMs: 60_000, transaction: client }),
        ).rejects.toMatchObject({ ...fix, cause: { code: "40001" } });
      } finally {
        await client.query("ROLLBACK");
        client.release();
      }
      expect(await store.release(`renewed-${level}`, token)).toBe(true);
    });
  }

  /** runIdempotent in a transaction at `level`, its work (a payment) outlasting a third of the lease when `renewed`. */
  async function job(key: string, level: string, options: { extendLease?: boolean; lockTtlMs: number }) {
    const client = await pool.connect();
    try {
      await client.query(`BEGIN ISOLATION LEVEL ${level}`);
      const run = await runIdempotent({ store, key, transaction: client, ...options }, async () => {
        await client.query(`INSERT INTO "${payments}" (id, amount) VALUES ($1, 1)`, [key]);
        await sleep(800); // past a third of a 1.5 s lease: renewed once, well before the complete
        return key;
      });
      await client.query(run.recorded ? "COMMIT" : "ROLLBACK");
      return run;
    } catch (error) {
      await client.query("ROLLBACK");
      throw error;
    } finally {
      client.release();
    }
  }

  it("runIdempotent: throws that error instead of an unrecorded result on every retry, the key released", async () => {
    await expect(job("rr-renewed", "REPEATABLE READ", { lockTtlMs: 1_500 })).rejects.toMatchObject(fix);
    expect(await paymentExists("rr-renewed")).toBe(false);
    // Released: the next run claims it at once (no request_in_flight for the lease).
    expect(await store.claim("run:rr-renewed", { fingerprint: "", lockTtlMs: 60_000 })).toMatchObject({
      state: "claimed",
    });
  });

  it("runIdempotent: recorded at READ COMMITTED with the renewal, and at REPEATABLE READ without one", async () => {
    expect(await job("rc-renewed", "READ COMMITTED", { lockTtlMs: 1_500 })).toMatchObject({ recorded: true });
    expect(await job("rr-not-renewed", "REPEATABLE READ", { lockTtlMs: 60_000, extendLease: false })).toMatchObject({
      recorded: true,
    });
    expect(await paymentExists("rc-renewed")).toBe(true);
    expect(await paymentExists("rr-not-renewed")).toBe(true);
  });
});

describe("complete in the caller's transaction, waiting for its table's lock (VACUUM FULL, ALTER TABLE)", () => {
  it("is cancelled at the server at its deadline: the caller's ROLLBACK returns at once, not once the lock goes", async () => {
    const table = await freshTable(pool, "tx_table_locked");
    const timed = postgresStore(pool, { table, operationTimeoutMs: 1_000 });
    const claimed = await timed.claim("k", { fingerprint: "fp", lockTtlMs: 60_000 });
    const token = (claimed as Extract<ClaimResult, { state: "claimed" }>).token;
    const locker = new pg.Client({ connectionString: inject("databaseUrl") });
    await locker.connect();
    await locker.query("BEGIN");
    await locker.query(`LOCK TABLE "${table}" IN ACCESS EXCLUSIVE MODE`);
    const client = await pool.connect();
    let rollback: Promise<unknown> | undefined;
    try {
      await client.query("BEGIN");
      const started = performance.now();
      await expect(
        timed.complete("k", token, response("x"), { ttlMs: 60_000, transaction: client }),
      ).rejects.toMatchObject({ name: "StoreUnavailableError" });
      expect(performance.now() - started).toBeLessThan(1_000 + 500);
      rollback = client.query("ROLLBACK");
      const first = await Promise.race([rollback.then(() => "rolled back"), sleep(1_000).then(() => "still waiting")]);
      expect(first, "the ROLLBACK waits behind a statement still running").toBe("rolled back");
      // The connection is the caller's again, in no transaction, and no cancel is left for it.
      await sleep(100);
      expect((await client.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
    } finally {
      await locker.query("COMMIT");
      await locker.end();
      await rollback?.catch(() => {});
      client.release();
    }
    // The complete never landed: the key is still the claim's, to release.
    expect(await timed.release("k", token)).toBe(true);
  });
});
