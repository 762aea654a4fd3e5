/** Creating the table: run it from your start-up code, or print the SQL for your own migrations. */

import { InterlockConfigError, timeoutOption } from "@interlock/core";
import { Deadline, execute, type PgQueryable, sqlState, storeError } from "./query.js";
import { migrationSql, resolveTable, type Table, type TableOptions } from "./sql.js";

/** Where `migrate` creates the table, and how long it may take. */
export interface MigrateOptions extends TableOptions {
  /** Bound on the migration in ms (it may wait for another instance's). Default 30,000; at most 2^31 - 1. */
  timeoutMs?: number;
}

/**
 * Creates the store's table and index if they do not exist: safe to run on every start, from
 * every instance at once, and by an app role that may only read and write the table (the check
 * below needs no CREATE on the schema). What it creates, it creates with exactly
 * `migrationSql(options)`, as one implicit transaction.
 */
export async function migrate(db: PgQueryable, options: MigrateOptions = {}): Promise<void> {
  const { timeoutMs: given, ...tableOptions } = options;
  const timeoutMs = timeoutOption("timeoutMs", given, 30_000);
  const table = resolveTable(tableOptions);
  const deadline = new Deadline(timeoutMs);
  try {
    if (await migrated(db, table, deadline)) return;
    // No parameters: sent as one simple query, so its statements run as one transaction.
    await execute(db, { text: migrationSql(tableOptions) }, undefined, deadline);
  } catch (error) {
    // PostgreSQL checks CREATE on the schema before IF NOT EXISTS looks: a role without it
    // fails here even on a table made meanwhile. It is the owner's job, not an outage.
    if (sqlState(error) === "42501") {
      throw new InterlockConfigError(
        `postgres store: this role may not create ${table.qualified} (${(error as Error).message}); run migrate() as the schema owner, or apply migrationSql() in your own migrations`,
        { cause: error },
      );
    }
    throw storeError("migrate", error, { table: table.qualified });
  }
}

/**
 * Whether the table and its expiry index are both there, named as the statements name them
 * (the table through the search_path unless a schema is given, the index in the table's schema).
 */
async function migrated(db: PgQueryable, table: Table, deadline: Deadline): Promise<boolean> {
  const text = `SELECT EXISTS (
  SELECT FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
  WHERE i.indrelid = to_regclass($1::text) AND c.relname = $2::text
) AS ready`;
  const { rows } = await execute(db, { text }, [table.qualified, table.indexName], deadline);
  return (rows[0] as { ready: string } | undefined)?.ready === "t";
}

export { migrationSql };
