/**
 * `@interlock/oauth/postgres`: the token store on PostgreSQL (`pg`'s `Pool`, or anything with its
 * `query`). One row per key, one autocommit statement per operation, the database's clock for
 * expiry; the compare-and-set is a conditional `UPDATE`, or `INSERT … ON CONFLICT … WHERE` when
 * no live value may exist. Nothing uses session state, so it works behind PgBouncer.
 */

import { createHash } from "node:crypto";
import {
  assertOptionNames,
  boundedStoreCall,
  driverErrorSummary,
  executePostgres,
  InterlockConfigError,
  migratePostgres,
  optionNames,
  PostgresDeadline,
  postgresSerializationFailure,
  postgresSetupMistake,
  timeoutOption,
} from "@interlock/core";
import {
  assertEntryKey,
  assertSet,
  newVersion,
  type TokenStore,
  type TokenStoreEntry,
  type TokenStoreSetOptions,
} from "./store/contract.js";

/** Anything that runs a query as `pg` does: `Pool`, `Client`, `PoolClient`. */
export interface PgQueryable {
  /** Runs one query. */
  query(query: { text: string; values?: unknown[] }): Promise<{
    /** The rows returned. */
    rows: unknown[];
    /** Rows affected (or returned); null when the command reports none. */
    rowCount: number | null;
  }>;
}

/** The PostgreSQL token store's table and timeout. */
export interface PostgresTokenStoreOptions {
  /** Table name. Default `"interlock_oauth_tokens"`. */
  table?: string;
  /** Schema of the table. Default: the connection's search path. */
  schema?: string;
  /** Longest wait for one operation (a pool connection included), in ms. Default 2,000; at most 2^31 - 1. */
  operationTimeoutMs?: number;
}

const STORE_OPTION_NAMES = optionNames<PostgresTokenStoreOptions>({
  table: true,
  schema: true,
  operationTimeoutMs: true,
});

/** The table name used when none is given. */
export const DEFAULT_TOKEN_TABLE = "interlock_oauth_tokens";

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

function identifier(name: string, what: string): string {
  if (typeof name !== "string" || !IDENTIFIER.test(name)) {
    throw new InterlockConfigError(`${what} must be a plain SQL identifier (letters, digits, _; at most 63)`);
  }
  return `"${name}"`;
}

const INDEX_SUFFIX = "_expires_idx";
const MAX_IDENTIFIER = 63;

/**
 * The expiry index's name: `<table>_expires_idx`. A table name too long for that keeps its first
 * characters and a hash of the whole name, so two long names that begin alike still get an index
 * each (an index name is unique in its schema: `IF NOT EXISTS` would skip the second).
 */
function indexName(table: string): string {
  if (table.length + INDEX_SUFFIX.length <= MAX_IDENTIFIER) return `${table}${INDEX_SUFFIX}`;
  const hash = createHash("sha256").update(table).digest("hex").slice(0, 8);
  return `${table.slice(0, MAX_IDENTIFIER - INDEX_SUFFIX.length - hash.length - 1)}_${hash}${INDEX_SUFFIX}`;
}

/** The table as statements name it, its index as `CREATE INDEX` names it, and that index's name in the catalog. */
function qualifiedTable(options: PostgresTokenStoreOptions): { table: string; index: string; indexName: string } {
  const name = options.table ?? DEFAULT_TOKEN_TABLE;
  const table = identifier(name, "table");
  const schema = options.schema === undefined ? "" : `${identifier(options.schema, "schema")}.`;
  return { table: `${schema}${table}`, index: identifier(indexName(name), "index"), indexName: indexName(name) };
}

/**
 * The SQL that creates the store's table; run it yourself, or let `migrate` run it. Idempotent.
 * Sent as one simple query it is one implicit transaction, and the transaction-scoped advisory
 * lock keeps instances migrating at the same start-up from racing `CREATE TABLE IF NOT EXISTS`
 * into a duplicate-key error on the catalog.
 */
export function migrationSql(options: PostgresTokenStoreOptions = {}): string {
  assertOptionNames("migrationSql()", options, STORE_OPTION_NAMES);
  const { table, index } = qualifiedTable(options);
  return [
    `SELECT pg_advisory_xact_lock(1229734731, 2); -- "ILCK", 2: serialises concurrent migrations`,
    `CREATE TABLE IF NOT EXISTS ${table} (`,
    "  key text PRIMARY KEY,",
    "  value text NOT NULL,",
    "  version text NOT NULL,",
    "  expires_at timestamptz NOT NULL",
    ");",
    `CREATE INDEX IF NOT EXISTS ${index} ON ${table} (expires_at);`,
  ].join("\n");
}

/** Where `migrate` creates the table, and how long it may take. */
export interface MigrateTokenTableOptions extends Omit<PostgresTokenStoreOptions, "operationTimeoutMs"> {
  /** Bound on the migration in ms (it may wait for another instance's). Default 30,000; at most 2^31 - 1. */
  timeoutMs?: number;
}

const MIGRATE_OPTION_NAMES = optionNames<MigrateTokenTableOptions>({ table: true, schema: true, timeoutMs: true });

const PURGE_OPTION_NAMES = optionNames<Parameters<PostgresTokenStore["purgeExpired"]>[0]>({ batchSize: true });

/**
 * Creates the table (and its expiry index) if it does not exist: safe from every instance at
 * once, and by an app role that may only read and write the table (it first checks, reading
 * only, whether both are there: `CREATE … IF NOT EXISTS` needs CREATE on the schema even when
 * they are). A role that may not create a missing table is an `InterlockConfigError` naming the
 * fix. A server that cannot be reached, or does not answer within `timeoutMs`, is a
 * `StoreUnavailableError` (pg itself waits for a silent server without end).
 */
export async function migrate(db: PgQueryable, options: MigrateTokenTableOptions = {}): Promise<void> {
  assertOptionNames("migrate()", options, MIGRATE_OPTION_NAMES);
  const { timeoutMs: given, ...tableOptions } = options;
  const timeoutMs = timeoutOption("timeoutMs", given, 30_000);
  const { table, indexName } = qualifiedTable(tableOptions);
  const sql = migrationSql(tableOptions);
  const deadline = new PostgresDeadline(timeoutMs);
  await boundedStoreCall("postgres", "migrate", timeoutMs, async () => {
    try {
      await migratePostgres(db, { table, indexName, sql }, deadline);
    } catch (error) {
      throw setupError(error, table, true);
    }
  });
}

const expiry = "now() + ($4::bigint * interval '1 millisecond')";

function statements(table: string) {
  const upsert = `INSERT INTO ${table} AS t (key, value, version, expires_at) VALUES ($1, $2, $3, ${expiry})
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, version = EXCLUDED.version, expires_at = EXCLUDED.expires_at`;
  return {
    get: `SELECT value, version FROM ${table} WHERE key = $1 AND expires_at > now()`,
    setAny: `${upsert} RETURNING t.version`,
    // Only a missing or expired row is replaced: the live one, if any, wins.
    setAbsent: `${upsert} WHERE t.expires_at <= now() RETURNING t.version`,
    setVersion: `UPDATE ${table} SET value = $2, version = $3, expires_at = ${expiry}
      WHERE key = $1 AND version = $5 AND expires_at > now() RETURNING version`,
    delete: `DELETE FROM ${table} WHERE key = $1 AND ($2::text IS NULL OR version = $2)
      RETURNING (expires_at > now())::text AS live`,
    // SKIP LOCKED leaves a row a write is taking over right now to that write, and the outer
    // condition is re-checked on the row version the DELETE sees: never a live value.
    purge: `DELETE FROM ${table} WHERE key IN (
      SELECT key FROM ${table} WHERE expires_at <= now() LIMIT $1 FOR UPDATE SKIP LOCKED
    ) AND expires_at <= now()`,
  };
}

type Statement = keyof ReturnType<typeof statements>;

// Under a default isolation above READ COMMITTED, a write that loses to a row committed after
// its snapshot fails with a serialization failure (or, rarely, a deadlock) and changes nothing:
// run it again with a fresh snapshot, which sees the winner. Each rerun needs yet another commit
// on the same key in that window, so a few attempts are plenty.
const MAX_ATTEMPTS = 10;

/** A setup mistake as an `InterlockConfigError` naming the fix, the original as its cause; anything else as it is. */
function setupError(error: unknown, table: string, migrating = false): unknown {
  // The same mistakes, and fixes, as @interlock/postgres's store (core keeps them for both).
  const fix = postgresSetupMistake(error, { table, migrating });
  if (fix === undefined) return error;
  const reason = error instanceof Error ? error.message : String(error);
  return new InterlockConfigError(`the postgres token store: ${fix} (${reason})`, { cause: driverErrorSummary(error) });
}

/** A `TokenStore` on your `pg` pool: one statement per operation, the database's clock; create the table with `migrate`. */
export class PostgresTokenStore implements TokenStore {
  readonly name = "postgres";
  /** The table, schema-qualified and quoted as the statements use it. */
  readonly table: string;
  /** The bound on every operation, in ms. */
  readonly operationTimeoutMs: number;
  readonly #db: PgQueryable;
  readonly #sql: ReturnType<typeof statements>;

  constructor(db: PgQueryable, options: PostgresTokenStoreOptions = {}) {
    assertOptionNames("postgresTokenStore()", options, STORE_OPTION_NAMES);
    if (typeof db?.query !== "function") throw new InterlockConfigError("the postgres token store needs a pg Pool");
    this.table = qualifiedTable(options).table;
    this.operationTimeoutMs = timeoutOption("operationTimeoutMs", options.operationTimeoutMs, 2_000);
    this.#db = db;
    this.#sql = statements(this.table);
  }

  async get(key: string): Promise<TokenStoreEntry | undefined> {
    assertEntryKey(key);
    const [row] = (await this.#query("get", [key])) as Array<{ value: string; version: string }>;
    return row === undefined ? undefined : { value: row.value, version: row.version };
  }

  async set(key: string, value: string, options: TokenStoreSetOptions): Promise<string | undefined> {
    assertSet(key, value, options);
    const { expect, ttlMs } = options;
    const values: unknown[] = [key, value, newVersion(), ttlMs];
    const statement: Statement = expect === undefined ? "setAny" : expect === null ? "setAbsent" : "setVersion";
    if (typeof expect === "string") values.push(expect);
    const [row] = (await this.#query(statement, values)) as Array<{ version: string }>;
    return row?.version;
  }

  async delete(key: string, expect?: string): Promise<boolean> {
    assertEntryKey(key);
    const rows = (await this.#query("delete", [key, expect ?? null])) as Array<{ live: string }>;
    return rows[0]?.live === "true";
  }

  /**
   * Deletes expired rows, `batchSize` per statement (default 1,000), and returns how many. Reads
   * never return an expired row; this only reclaims the space. Run it now and then (a cron job).
   */
  async purgeExpired(options: { batchSize?: number } = {}): Promise<number> {
    assertOptionNames("purgeExpired()", options, PURGE_OPTION_NAMES);
    const batchSize = options.batchSize ?? 1_000;
    if (!Number.isSafeInteger(batchSize) || batchSize <= 0)
      throw new InterlockConfigError("batchSize must be positive");
    let total = 0;
    for (;;) {
      const deleted = await this.#count("purge", [batchSize]);
      total += deleted;
      if (deleted < batchSize) return total;
    }
  }

  async #count(statement: Statement, values: unknown[]): Promise<number> {
    return (await this.#execute(statement, values)).rowCount ?? 0;
  }

  async #query(statement: Statement, values: unknown[]): Promise<unknown[]> {
    return (await this.#execute(statement, values)).rows;
  }

  /**
   * One statement, bounded by `operationTimeoutMs` (waiting for a pool connection included: one
   * that arrives later is handed back unused, so a statement reported as failed never runs
   * late); a store set up wrong (a missing table, a role without grants, a wrong password, …) is
   * an `InterlockConfigError` naming the fix, any other failure a `StoreUnavailableError`.
   */
  async #execute(statement: Statement, values: unknown[]) {
    // One deadline for the reruns too: none once the caller was told it failed.
    const deadline = new PostgresDeadline(this.operationTimeoutMs);
    return boundedStoreCall(this.name, operationOf(statement), this.operationTimeoutMs, async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await executePostgres(this.#db, { text: this.#sql[statement] }, values, deadline);
        } catch (error) {
          const mistake = setupError(error, this.table);
          if (mistake instanceof InterlockConfigError) throw mistake;
          if (!postgresSerializationFailure(error) || attempt >= MAX_ATTEMPTS || deadline.expired) throw error;
        }
      }
    });
  }
}

/** The store's method a statement runs for, as its errors name it: `set` for each of its three statements, `purgeExpired` for `purge`. */
const operationOf = (statement: Statement): string =>
  statement.startsWith("set") ? "set" : statement === "purge" ? "purgeExpired" : statement;

/** A token store on the caller's `pg` pool. Create its table first with `migrate(pool)`. */
export function postgresTokenStore(db: PgQueryable, options?: PostgresTokenStoreOptions): PostgresTokenStore {
  return new PostgresTokenStore(db, options);
}
