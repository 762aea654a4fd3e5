/**
 * The table and every statement the store runs, as text. Kept apart from the store so the
 * migration a user prints is, character for character, the one `migrate` runs.
 *
 * Time is the database's: `statement_timestamp()` everywhere. It is fixed for the whole
 * statement, so the lease check in a claim and the fallback read of the same claim compare
 * against the same instant (`clock_timestamp()` moves while the statement runs). Unlike
 * `now()` it is not frozen at BEGIN: a `complete` inside the caller's long transaction gets the
 * time it actually ran, so retention is not cut short and `completedAt` never precedes the
 * claim. A lease counts from the start of the claim statement, i.e. after the caller sent it:
 * the caller can never believe it holds a lock the database already considers expired.
 */

import { createHash } from "node:crypto";
import { assertOptionNames, InterlockConfigError, optionNames } from "@interlock/core";

/** The table name used when none is given. */
export const DEFAULT_TABLE = "interlock_records";

/** Which table holds the store's rows. */
export interface TableOptions {
  /** Table name. Default `interlock_records`. Letters, digits and `_`; quoted, so case is kept. */
  table?: string;
  /** Schema holding the table; it must exist. Default: the connection's `search_path`. */
  schema?: string;
}

/** The table options, which the store's and `migrate`'s options include. */
export const TABLE_OPTION_NAMES = optionNames<TableOptions>({ table: true, schema: true });

// Unquoted-style names only: nothing to escape, and the index name derived from the table
// (`<table>_expires_at_idx`) stays within PostgreSQL's 63-byte identifier limit.
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const INDEX_SUFFIX = "_expires_at_idx";
const MAX_IDENTIFIER = 63;

function identifier(kind: string, name: string, maxLength: number): string {
  if (typeof name !== "string" || !IDENTIFIER.test(name) || name.length > maxLength) {
    throw new InterlockConfigError(
      `${kind} must be 1..${maxLength} letters, digits or underscores, not starting with a digit`,
    );
  }
  return `"${name}"`;
}

export interface Table {
  /** The table as statements name it: `"schema"."table"` or `"table"`. */
  qualified: string;
  /** The index on expiry (an index lives in its table's schema, so the name is unqualified). */
  index: string;
  /** The index's name as the catalog holds it, unquoted. */
  indexName: string;
}

export function resolveTable(options: TableOptions = {}): Table {
  const name = options.table ?? DEFAULT_TABLE;
  const table = identifier("table", name, MAX_IDENTIFIER - INDEX_SUFFIX.length);
  const schema = options.schema === undefined ? undefined : identifier("schema", options.schema, MAX_IDENTIFIER);
  return {
    qualified: schema === undefined ? table : `${schema}.${table}`,
    index: `"${name}${INDEX_SUFFIX}"`,
    indexName: `${name}${INDEX_SUFFIX}`,
  };
}

/**
 * The schema, idempotent. Run as one simple query it is one implicit transaction, and the
 * transaction-scoped advisory lock (released at commit, so it is safe behind PgBouncer) keeps
 * application instances migrating at the same start-up from racing `CREATE TABLE IF NOT EXISTS`
 * into a duplicate-key error on the catalog.
 */
export function migrationSql(options: TableOptions = {}): string {
  assertOptionNames("migrationSql()", options, TABLE_OPTION_NAMES);
  const { qualified, index } = resolveTable(options);
  return `-- @interlock/postgres schema v1: one row per key, either a live lock or a completed record.
SELECT pg_advisory_xact_lock(1229734731, 1); -- "ILCK", 1: serialises concurrent migrations
CREATE TABLE IF NOT EXISTS ${qualified} (
  key_hash     bytea PRIMARY KEY,      -- sha256 of the key's UTF-8: a fixed-size index entry for any key
  key          text NOT NULL,          -- the key itself, for people reading the table
  state        text NOT NULL CHECK (state IN ('locked', 'completed')),
  token        text NOT NULL,          -- fencing token of the claim that owns the row
  fingerprint  text NOT NULL,          -- of the request that won the claim
  created_at   timestamptz NOT NULL,   -- when the winning claim was made
  expires_at   timestamptz NOT NULL,   -- end of the lease (locked) or of the retention (completed)
  completed_at timestamptz,
  status       integer,
  headers      jsonb,                  -- [[name, value], ...] in order; a name may repeat
  body         bytea,
  CHECK (state = 'locked' OR (completed_at IS NOT NULL AND status IS NOT NULL AND headers IS NOT NULL AND body IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS ${index} ON ${qualified} (expires_at);
`;
}

/** Milliseconds since the epoch, as the contract reports time; as text, like every column a claim reads. */
const ms = (column: string) => `floor(extract(epoch FROM ${column}) * 1000)::int8::text`;
const after = (param: string) => `statement_timestamp() + ${param}::float8 * interval '1 millisecond'`;

/** A statement as `pg` runs it; a `name` makes it a prepared statement, per connection. */
export interface Statement {
  text: string;
  name?: string;
}

export type Statements = Record<"claim" | "complete" | "release" | "extend" | "purge", Statement>;

/**
 * The store's statements on `table`. With `prepared`, each gets a name derived from its text
 * (two stores on different tables never share one), so `pg` parses and plans it once per
 * connection instead of on every call.
 */
export function statements(table: Table, prepared: boolean): Statements {
  const texts = statementTexts(table);
  const named = (kind: keyof Statements): Statement => {
    const text = texts[kind];
    if (!prepared) return { text };
    return { text, name: `interlock_${kind}_${createHash("sha256").update(text).digest("hex").slice(0, 16)}` };
  };
  return {
    claim: named("claim"),
    complete: named("complete"),
    release: named("release"),
    extend: named("extend"),
    purge: named("purge"),
  };
}

function statementTexts(table: Table): Record<keyof Statements, string> {
  const t = table.qualified;
  return {
    /**
     * $1 key_hash, $2 key, $3 token, $4 fingerprint, $5 lease ms, $6 lock wait ms. `live` reads
     * the key's row if its lease or retention is still running: then the caller lost, and learns
     * "in flight" or "completed" from that row, with no write at all (no row lock, no transaction
     * id), which keeps replays and duplicates cheap and never waits behind a transaction holding
     * the row. Otherwise the INSERT wins a new key, or takes over the expired row. Never both.
     *
     * Taking over an expired row waits for its lock when another transaction holds it (a purge,
     * a `complete` in a transaction still open). The caller stops waiting at its deadline, but a
     * statement keeps running at the server after its client gave up: once the lock went, the
     * claim would land and hold the key for a whole lease, with nobody working on it. So the
     * statement bounds its own lock waits (`bounded`: `lock_timeout` for this statement's
     * transaction only, set before the INSERT reads its row), and the server gives up first.
     * Row locks only: the table's own lock is taken as the statement is parsed, before it can
     * set anything, so a claim waiting for a lock on the whole table (VACUUM FULL, ALTER TABLE)
     * is cancelled by the store instead, at the same point (see `cancelStatement`).
     * Every column it returns is text: text's binary form is its UTF-8, so a pool with pg's
     * `binary` option (which no statement can turn off) hands over the same text, as bytes.
     */
    claim: `WITH bounded AS (
  SELECT set_config('lock_timeout', $6::text, true)
), live AS (
  SELECT r.state, r.fingerprint, ${ms("r.expires_at")} AS expires_ms, ${ms("r.created_at")} AS created_ms,
         ${ms("r.completed_at")} AS completed_ms, r.status::text AS status, r.headers::text AS headers,
         encode(r.body, 'base64') AS body
  FROM ${t} AS r
  WHERE r.key_hash = $1::bytea AND r.expires_at > statement_timestamp()
), claimed AS (
  INSERT INTO ${t} AS r (key_hash, key, state, token, fingerprint, created_at, expires_at)
  SELECT $1::bytea, $2::text, 'locked', $3::text, $4::text, statement_timestamp(), ${after("$5")}
  FROM bounded
  WHERE NOT EXISTS (SELECT FROM live)
  ON CONFLICT (key_hash) DO UPDATE
    SET key = EXCLUDED.key, state = 'locked', token = EXCLUDED.token, fingerprint = EXCLUDED.fingerprint,
        created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at,
        completed_at = NULL, status = NULL, headers = NULL, body = NULL
    WHERE r.expires_at <= statement_timestamp()
  RETURNING 1
)
SELECT 'claimed' AS state, NULL::text AS fingerprint, NULL::text AS expires_ms, NULL::text AS created_ms,
       NULL::text AS completed_ms, NULL::text AS status, NULL::text AS headers, NULL::text AS body
FROM claimed
UNION ALL
SELECT * FROM live`,

    /**
     * $1 key_hash, $2 token, $3 status, $4 headers json, $5 body, $6 retention ms. Like release
     * and extend: only the token's own lock, and only while its lease runs. Inside the caller's
     * transaction the lease is checked when this runs; the row stays locked until COMMIT.
     *
     * Unlike a claim, these three bound no lock wait of their own. One that waits past its
     * caller and lands later does what was asked when it was sent (the lease is checked against
     * `statement_timestamp()`, and a row taken over has another token), which a timed-out
     * statement may always do. The transaction that holds a live lock's row for long is the
     * caller's own, after a `complete` in it: a `release` sent before its ROLLBACK should land
     * after it rather than give up and leave the key locked for the lease; and a `lock_timeout`
     * set by a `complete` in that transaction would stay set for the rest of it. (A `complete` in
     * the caller's transaction still running at its deadline is cancelled instead: it runs on
     * the caller's connection, whose ROLLBACK would wait behind it. See `PostgresStore.complete`.)
     */
    complete: `UPDATE ${t}
SET state = 'completed', status = $3, headers = $4::jsonb, body = $5,
    completed_at = statement_timestamp(), expires_at = ${after("$6")}
WHERE key_hash = $1 AND token = $2 AND state = 'locked' AND expires_at > statement_timestamp()`,

    /** $1 key_hash, $2 token. */
    release: `DELETE FROM ${t}
WHERE key_hash = $1 AND token = $2 AND state = 'locked' AND expires_at > statement_timestamp()`,

    /** $1 key_hash, $2 token, $3 lease ms. */
    extend: `UPDATE ${t} SET expires_at = ${after("$3")}
WHERE key_hash = $1 AND token = $2 AND state = 'locked' AND expires_at > statement_timestamp()`,

    /**
     * $1 batch size. Oldest first through the expiry index; SKIP LOCKED leaves rows a claim is
     * taking over right now to that claim, and the outer condition is re-checked on the row
     * version the DELETE sees.
     */
    purge: `DELETE FROM ${t} WHERE key_hash IN (
  SELECT key_hash FROM ${t} WHERE expires_at <= statement_timestamp()
  ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED
) AND expires_at <= statement_timestamp()`,
  };
}
