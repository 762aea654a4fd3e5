/** Creating the table: run it from your start-up code, or print the SQL for your own migrations. */

import { assertOptionNames, migratePostgres, optionNames, PostgresDeadline, timeoutOption } from "@interlock/core";
import { type PgQueryable, storeError } from "./query.js";
import { migrationSql, resolveTable, TABLE_OPTION_NAMES, type TableOptions } from "./sql.js";

/** Where `migrate` creates the table, and how long it may take. */
export interface MigrateOptions extends TableOptions {
  /** Bound on the migration in ms (it may wait for another instance's). Default 30,000; at most 2^31 - 1. */
  timeoutMs?: number;
}

const MIGRATE_OWN_OPTION_NAMES = optionNames<Omit<MigrateOptions, keyof TableOptions>>({ timeoutMs: true });

/**
 * Creates the store's table and index if they do not exist: safe to run on every start, from
 * every instance at once, and by an app role that may only read and write the table (the check
 * below needs no CREATE on the schema). What it creates, it creates with exactly
 * `migrationSql(options)`, as one implicit transaction.
 */
export async function migrate(db: PgQueryable, options: MigrateOptions = {}): Promise<void> {
  assertOptionNames("migrate()", options, TABLE_OPTION_NAMES, MIGRATE_OWN_OPTION_NAMES);
  const { timeoutMs: given, ...tableOptions } = options;
  const timeoutMs = timeoutOption("timeoutMs", given, 30_000);
  const table = resolveTable(tableOptions);
  const deadline = new PostgresDeadline(timeoutMs);
  try {
    const sql = migrationSql(tableOptions);
    await migratePostgres(db, { table: table.qualified, indexName: table.indexName, sql }, deadline);
  } catch (error) {
    throw storeError("migrate", error, { table: table.qualified, migrating: true });
  }
}

export { migrationSql };
