import { describeStoreConformance } from "@interlock/core/testing";
import { afterAll } from "vitest";
import { type PostgresStore, type PostgresStoreOptions, postgresStore } from "../src/index.js";
import { endPool, freshTable, newPool, unreachableStore } from "./helpers.js";

const pool = newPool({ max: 20 });
/** A second app process's pool on the same database: the stores' siblings run on it. */
const other = newPool({ max: 20 });

afterAll(() => Promise.all([endPool(pool), other.end()]));

/** The table each store made here is on, for its sibling. */
const tables = new WeakMap<PostgresStore, string>();

/** A store on a freshly migrated table of its own: no test sees another's keys. */
async function onFreshTable(label: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
  const table = await freshTable(pool, label);
  const store = postgresStore(pool, { ...options, table });
  tables.set(store, table);
  return store;
}

/** Another store on `store`'s table, over the other pool: a second app process. */
const siblingOn =
  (options: PostgresStoreOptions = {}) =>
  (store: PostgresStore) =>
    postgresStore(other, { ...options, table: tables.get(store)! });

describeStoreConformance("postgres", {
  create: () => onFreshTable("conformance"),
  sibling: siblingOn(),
  createUnavailable: () => unreachableStore(1_000),
  unavailableWithinMs: 1_000,
});

// The same contract with named prepared statements (each store its own table, so its own names).
describeStoreConformance("postgres, prepared statements", {
  create: () => onFreshTable("prepared", { preparedStatements: true }),
  sibling: siblingOn({ preparedStatements: true }),
});
