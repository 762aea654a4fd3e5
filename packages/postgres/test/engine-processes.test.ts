/**
 * The idempotency engine and `runIdempotent` in several processes on one PostgreSQL (the
 * shared suite in @interlock/test-harness): each worker process has its own pool, store and
 * engine. The handler's side effect is a row every process sees, so "ran once" is counted in
 * the database.
 */

import {
  describeIdempotencyAcrossProcesses,
  type EngineReply,
  type HangReply,
  type IdempotencyWorker,
  type RunOutcome,
} from "@interlock/test-harness";
import { inject } from "vitest";
import { postgresStore } from "../src/index.js";
import { endPool, freshTable, newPool, uniqueTable } from "./helpers.js";
import { Worker } from "./workers.js";

const pool = newPool();
const effectsTable = uniqueTable("effects");
const started: Worker[] = [];
let table: string;

/** A started worker as the suite drives it: every command names the effects table and the worker. */
function driven(worker: Worker, name: string): IdempotencyWorker {
  const ask = <T>(command: string, args: object) =>
    worker.request<T>(command, { ...args, effects: effectsTable, worker: name });
  return {
    engine: async (args) => {
      const { outcomes, events } = await ask<EngineReply>("engine", args);
      return { outcomes, events };
    },
    hang: async (args) => {
      const { action } = await ask<HangReply>("hang", args);
      return { action };
    },
    run: async (args) => (await ask<{ outcomes: RunOutcome[] }>("run", args)).outcomes,
    kill: () => worker.kill(),
  };
}

describeIdempotencyAcrossProcesses("postgres", {
  setup: async () => {
    const [, records] = await Promise.all([
      pool.query(
        `CREATE TABLE "${effectsTable}" (key text NOT NULL, worker text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())`,
      ),
      freshTable(pool, "engine"),
    ]);
    table = records;
  },
  // Every worker on the records table, with warm connections.
  start: async (count, label) => {
    const workers = await Promise.all(Array.from({ length: count }, () => Worker.start()));
    started.push(...workers);
    await Promise.all(workers.map((w) => w.request("prepare", { url: inject("databaseUrl"), table, poolSize: 8 })));
    return workers.map((worker, i) => driven(worker, `${label}${i}`));
  },
  stop: async () => {
    await Promise.all(started.splice(0).map((worker) => worker.stop()));
    await endPool(pool);
  },
  effects: async (key) =>
    (await pool.query(`SELECT count(*)::int AS n FROM "${effectsTable}" WHERE key = $1`, [key])).rows[0].n as number,
  store: () => postgresStore(pool, { table }),
});
