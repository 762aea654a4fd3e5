import type { ClaimResult } from "@interlock/core";
import { afterAll, describe, expect, it } from "vitest";
import { postgresStore } from "../src/index.js";
import { endPool, freshTable, newPool, response, sleep } from "./helpers.js";

const pool = newPool();
afterAll(() => endPool(pool));

const SHORT = 100;
const LONG = 60_000;

/** A fresh table holding `count` locks on keys k1…k`count` whose leases ran out a second ago, written directly. */
async function tableWithExpiredLocks(label: string, count: number): Promise<string> {
  const table = await freshTable(pool, label);
  await pool.query(
    `INSERT INTO "${table}" (key_hash, key, state, token, fingerprint, created_at, expires_at)
     SELECT sha256(convert_to('k' || i, 'UTF8')), 'k' || i, 'locked', 't', 'fp', now(), now() - interval '1 second'
     FROM generate_series(1, $1::int) AS i`,
    [count],
  );
  return table;
}

describe("purgeExpired", () => {
  it("deletes expired locks and records in batches, returns the count, and keeps live ones", async () => {
    const table = await freshTable(pool, "purge");
    const store = postgresStore(pool, { table });
    const tokens = new Map<string, string>();
    const claim = async (key: string, lockTtlMs: number) => {
      const result = (await store.claim(key, { fingerprint: "fp", lockTtlMs })) as Extract<
        ClaimResult,
        { token: string }
      >;
      tokens.set(key, result.token);
      return result.token;
    };
    for (let i = 0; i < 5; i++) {
      await claim(`expired-lock-${i}`, SHORT);
      await store.complete(`expired-record-${i}`, await claim(`expired-record-${i}`, LONG), response("x"), {
        ttlMs: SHORT,
      });
      await claim(`live-lock-${i}`, LONG);
      await store.complete(`live-record-${i}`, await claim(`live-record-${i}`, LONG), response("y"), { ttlMs: LONG });
    }
    await sleep(SHORT + 100);
    expect(await store.purgeExpired({ batchSize: 3 })).toBe(10);
    expect(await store.purgeExpired()).toBe(0);
    const { rows } = await pool.query(`SELECT key FROM "${table}" ORDER BY key`);
    expect(rows.map((r) => r.key)).toEqual([
      ...Array.from({ length: 5 }, (_, i) => `live-lock-${i}`),
      ...Array.from({ length: 5 }, (_, i) => `live-record-${i}`),
    ]);
    // The live ones are untouched: their owners complete, their records replay.
    expect(await store.complete("live-lock-0", tokens.get("live-lock-0")!, response("z"), { ttlMs: LONG })).toBe(true);
    expect((await store.claim("live-record-0", { fingerprint: "fp", lockTtlMs: LONG })).state).toBe("completed");
  });

  it("purges more rows than one batch holds", async () => {
    // 2,500 expired rows written directly, so the test does not wait for 2,500 claims.
    const table = await tableWithExpiredLocks("purgemany", 2_500);
    const store = postgresStore(pool, { table });
    expect(await store.purgeExpired({ batchSize: 1_000 })).toBe(2_500);
    expect((await pool.query(`SELECT count(*)::int AS n FROM "${table}"`)).rows[0].n).toBe(0);
  });

  it("racing claims that take over the same expired rows: every claim wins its key, nothing fails", async () => {
    const table = await tableWithExpiredLocks("purgerace", 300);
    const store = postgresStore(pool, { table, operationTimeoutMs: 10_000 });
    const claims = Array.from({ length: 300 }, (_, i) =>
      store.claim(`k${i + 1}`, { fingerprint: "new", lockTtlMs: LONG }),
    );
    const [purged, ...results] = await Promise.all([store.purgeExpired({ batchSize: 7 }), ...claims]);
    expect(results.every((r) => r.state === "claimed")).toBe(true);
    expect(purged).toBeLessThanOrEqual(300);
    // Whatever the purge took, the new locks stand.
    const { rows } = await pool.query(`SELECT count(*)::int AS n FROM "${table}" WHERE fingerprint = 'new'`);
    expect(rows[0].n).toBe(300);
  });
});
