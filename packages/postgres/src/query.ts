/**
 * The shapes of `pg` the store takes, and telling "the database is unavailable" apart from
 * other errors. Structural types instead of `pg`'s own: a `Pool`, a `Client`, a `PoolClient`
 * (and pg-compatible drivers) all fit, and users need no `@types/pg` for ours. A statement runs
 * through core's `executePostgres`, shared with the OAuth token store.
 */

import {
  driverErrorSummary,
  InterlockConfigError,
  type PostgresStatementSetup,
  postgresSessionEnded,
  postgresSetupMistake,
  postgresSqlState,
  StoreUnavailableError,
} from "@interlock/core";

/** One query as `pg` takes it. */
export interface PgQuery {
  /** The SQL. */
  text: string;
  /** Prepares the statement under this name on each connection (see `preparedStatements`). */
  name?: string;
  /** The statement's parameters, `$1`, `$2`, …. */
  values?: unknown[];
  /** Per-query result parsers, so a user's global `pg.types` settings cannot change our rows. */
  types?: {
    /** The parser for a column type. */
    getTypeParser: (...args: never[]) => unknown;
  };
  /** `pg`'s client-side limit on waiting for the answer. */
  query_timeout?: number;
}

/** What a query resolves to, as `pg` gives it. */
export interface PgResult {
  /** The rows returned. */
  rows: unknown[];
  /** Rows affected (or returned); null when the command reports none. */
  rowCount: number | null;
}

/** Anything that runs a query: `Pool`, `Client`, `PoolClient`. */
export interface PgQueryable {
  /** Runs one query. */
  query(query: PgQuery): Promise<PgResult>;
}

/** A PostgreSQL error's SQLSTATE, as opposed to a network or driver error (core's, shared with the OAuth token store). */
export const sqlState = postgresSqlState;

// Errors that mean "not done, try again later": connection exceptions (08), insufficient
// resources such as too many connections (53), shutdown or cancel including statement_timeout
// (57), system errors (58), a lock_timeout (55P03), a read-only server after failover (25006),
// serialization failure and deadlock (40001, 40P01). And whatever ends the session (severity
// FATAL or PANIC, setup mistakes aside): an idle-in-transaction or transaction timeout (25P03,
// 25P04), say; the connection is gone and nothing was done.
const UNAVAILABLE = /^(08|53|57|58)|^(55P03|25006|40001|40P01)$/;

/**
 * Maps a failure to what the caller must do. No SQLSTATE (refused, reset, timed out) or an
 * availability SQLSTATE: `StoreUnavailableError`, the operation did not happen (fail closed).
 * A setup mistake (no table, no grants, wrong password, no database, ...): a configuration error
 * naming the fix, the original as its cause. Anything else is a bug to see as is.
 */
export function storeError(operation: string, error: unknown, setup: PostgresStatementSetup): unknown {
  if (error instanceof StoreUnavailableError || error instanceof InterlockConfigError) return error;
  const reason = error instanceof Error ? error.message : String(error);
  const fix = postgresSetupMistake(error, setup);
  if (fix !== undefined)
    return new InterlockConfigError(`postgres store: ${fix} (${reason})`, { cause: driverErrorSummary(error) });
  const state = sqlState(error);
  if (state !== undefined && !UNAVAILABLE.test(state) && !postgresSessionEnded(error)) {
    return error;
  }
  return new StoreUnavailableError("postgres", `${operation} failed: ${reason}`, { cause: error });
}
