/** complete() inside the caller's own transaction: the business write and the record commit together. */

import { type ClaimResult, runIdempotent } from "@interlock/core";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
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
