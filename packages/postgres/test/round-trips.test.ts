/**
 * One statement per operation, counted by the server (pg_stat_statements) and by the client
 * (every query the store sends through its pool).
 */

import type { ClaimResult } from "@interlock/core";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type PgQuery, type PgQueryable, postgresStore } from "../src/index.js";
import { endPool, freshTable, newPool, response } from "./helpers.js";

const pool = newPool();
let table: string;

beforeEach(async () => {
  table = await freshTable(pool, "roundtrips");
});

beforeAll(async () => {
  try {
    await pool.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
    await pool.query("SELECT count(*) FROM pg_stat_statements");
  } catch (error) {
    throw new Error(
      `pg_stat_statements is needed to count statements: start the server with shared_preload_libraries=pg_stat_statements (${error})`,
    );
  }
});
afterAll(() => endPool(pool));

/** Calls per statement on our table since the last reset, by what the statement does. */
async function serverCounts(): Promise<Record<string, number>> {
  const { rows } = await pool.query<{ query: string; calls: string }>(
    "SELECT query, calls FROM pg_stat_statements WHERE query LIKE $1",
    [`%"${table}"%`],
  );
  const counts: Record<string, number> = {};
  for (const { query, calls } of rows) {
    const kind = query.startsWith("WITH bounded")
      ? "claim"
      : query.startsWith("UPDATE") && query.includes("SET state")
        ? "complete"
        : query.startsWith("DELETE") && !query.includes("SKIP LOCKED")
          ? "release"
          : query.includes("SET expires_at")
            ? "extend"
            : `other: ${query.slice(0, 60)}`;
    counts[kind] = (counts[kind] ?? 0) + Number(calls);
  }
  return counts;
}

describe("round trips", () => {
  it.each([{ preparedStatements: false }, { preparedStatements: true }])(
    "exactly one statement per claim, complete, release and extend, in steady state (%o)",
    async (options) => {
      let sent = 0;
      const counting: PgQueryable = {
        query: (query: PgQuery) => {
          sent++;
          return pool.query(query as never);
        },
      };
      const store = postgresStore(counting, { table, ...options });
      const N = 50;
      const claimed = async (key: string) =>
        ((await store.claim(key, { fingerprint: "fp", lockTtlMs: 60_000 })) as Extract<ClaimResult, { token: string }>)
          .token;
      // Warm up: connections open, plans and catalog caches ready.
      await store.release("warm", await claimed("warm"));
      await pool.query("SELECT pg_stat_statements_reset()");
      sent = 0;

      for (let i = 0; i < N; i++) {
        const token = await claimed(`done-${i}`); // 1 claim that wins
        expect(await store.extend(`done-${i}`, token, 60_000)).toBe(true); // 1 extend
        expect(await store.complete(`done-${i}`, token, response("ok"), { ttlMs: 60_000 })).toBe(true); // 1 complete
        expect((await store.claim(`done-${i}`, { fingerprint: "fp", lockTtlMs: 1 })).state).toBe("completed"); // 1 claim that replays
        const other = await claimed(`released-${i}`); // 1 claim
        expect((await store.claim(`released-${i}`, { fingerprint: "fp", lockTtlMs: 1 })).state).toBe("in_flight"); // 1 claim that loses
        expect(await store.release(`released-${i}`, other)).toBe(true); // 1 release
      }
      const expected = { claim: 4 * N, extend: N, complete: N, release: N };
      expect(await serverCounts()).toEqual(expected);
      expect(sent).toBe(7 * N);
    },
  );
});
