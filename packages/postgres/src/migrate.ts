/** Creating the table: run it from your start-up code, or print the SQL for your own migrations. */

import { timeoutOption } from "@interlock/core";
import { Deadline, execute, type PgQueryable, storeError } from "./query.js";
import { migrationSql, resolveTable, type TableOptions } from "./sql.js";

/** Where `migrate` creates the table, and how long it may take. */
export interface MigrateOptions extends TableOptions {
  /** Bound on the migration in ms (it may wait for another instance's). Default 30,000; at most 2^31 - 1. */
  timeoutMs?: number;
}

/**
 * Creates the store's table and index if they do not exist: safe to run on every start, from
 * every instance at once. Runs exactly `migrationSql(options)`, as one implicit transaction.
 */
export async function migrate(db: PgQueryable, options: MigrateOptions = {}): Promise<void> {
  const { timeoutMs: given, ...table } = options;
  const timeoutMs = timeoutOption("timeoutMs", given, 30_000);
  const sql = migrationSql(table);
  try {
    // No parameters: sent as one simple query, so its statements run as one transaction.
    await execute(db, { text: sql }, undefined, new Deadline(timeoutMs));
  } catch (error) {
    throw storeError("migrate", error, resolveTable(table).qualified);
  }
}

export { migrationSql };
