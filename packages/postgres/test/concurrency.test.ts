/**
 * Reliability across processes: worker processes, each with its own pool, race for the same
 * keys; a worker killed (SIGKILL) while holding locks is taken over after the lease.
 */

import type { ClaimResult } from "@interlock/core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { postgresStore } from "../src/index.js";
import { endPool, freshTable, newPool } from "./helpers.js";
import { Worker } from "./workers.js";

const WORKERS = 4;
const KEYS = 1_000;

const pool = newPool();
let workers: Worker[] = [];

beforeAll(async () => {
  workers = await Promise.all(Array.from({ length: WORKERS }, () => Worker.start()));
});

afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop()));
  await endPool(pool);
});

const bodyOf = (result: ClaimResult) =>
  result.state === "completed" ? new TextDecoder().decode(result.record.body) : `(${result.state})`;

/** Every worker on the same table, with warm connections. */
async function prepare(table: string, group = workers) {
  await Promise.all(group.map((w) => w.request("prepare", { url: inject("databaseUrl"), table, poolSize: 8 })));
}

describe("worker processes", () => {
  it(`${WORKERS} workers × ${KEYS} keys, each key claimed by all of them at once: exactly one winner per key, every round`, async () => {
    const table = await freshTable(pool, "race");
    await prepare(table);
    const check = postgresStore(pool, { table, operationTimeoutMs: 30_000 });
    // Round 1: every worker walks the keys in the same order, so each key is contended by all
    // four at once. Round 2: half walk backwards, so the contention moves through the run.
    for (const [round, reversed] of [
      [1, [false, false, false, false]],
      [2, [false, true, false, true]],
    ] as const) {
      const prefix = `race:${round}`;
      const results = await Promise.all(
        workers.map((w, n) =>
          w.request<{ won: number[]; in_flight: number; completed: number }>("race", {
            prefix,
            count: KEYS,
            concurrency: 16,
            reverse: reversed[n],
            id: `worker-${n}`,
          }),
        ),
      );
      const winners = new Map<number, number[]>();
      results.forEach(({ won }, n) => {
        for (const key of won) winners.set(key, [...(winners.get(key) ?? []), n]);
      });
      expect(winners.size, `round ${round}: keys won`).toBe(KEYS);
      const contested = [...winners].filter(([, who]) => who.length !== 1);
      expect(contested, `round ${round}: keys with more than one winner`).toEqual([]);
      const losses = results.reduce((sum, r) => sum + r.in_flight + r.completed, 0);
      expect(losses).toBe(KEYS * (WORKERS - 1));
      // The stored record is the winner's, for every key.
      for (let from = 0; from < KEYS; from += 50) {
        const keys = Array.from({ length: 50 }, (_, i) => from + i);
        const seen = await Promise.all(
          keys.map((key) => check.claim(`${prefix}:${key}`, { fingerprint: "check", lockTtlMs: 1_000 })),
        );
        expect(seen.map(bodyOf)).toEqual(keys.map((key) => `worker-${winners.get(key)?.[0]}`));
      }
    }
  });

  it("a worker killed while holding locks: after the lease another worker claims and completes them", async () => {
    const table = await freshTable(pool, "kill");
    const [holder, taker] = await Promise.all([Worker.start(), Worker.start()]);
    try {
      await prepare(table, [holder!, taker!]);
      // Long enough that the taker's first try comes before it ends, on a loaded machine too: the
      // hold, the kill and the taker's request took over 1.5 s in one CI run.
      const lease = 4_000;
      // Before the request: every lease starts after this, however long the answer then takes to
      // come back (on a loaded machine, hundreds of ms), so none can end before `sentAt + lease`.
      const sentAt = Date.now();
      const held = await holder!.request<{ won: number[] }>("hold", { prefix: "held", count: 50, lockTtlMs: lease });
      expect(held.won).toHaveLength(50);
      await holder!.kill();

      const taken = await taker!.request<{ firstSeen: Record<string, number>; firstWonAt: number }>("takeOver", {
        prefix: "held",
        count: 50,
        id: "taker",
      });
      // Nothing was taken before the lease ran out, and everything was taken after it.
      expect(taken.firstSeen).toEqual({ claimed: 0, in_flight: 50, completed: 0 });
      // (The server's clock and this one are the machine's: a few ms for timer granularity.)
      expect(taken.firstWonAt - sentAt).toBeGreaterThanOrEqual(lease - 20);
      const check = postgresStore(pool, { table });
      for (let i = 0; i < 50; i++) {
        expect(bodyOf(await check.claim(`held:${i}`, { fingerprint: "check", lockTtlMs: 1_000 }))).toBe("taker");
      }
    } finally {
      await Promise.all([holder!.stop(), taker!.stop()]);
    }
  });
});
