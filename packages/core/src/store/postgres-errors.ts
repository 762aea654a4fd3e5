/**
 * Telling a PostgreSQL store set up wrong from the server being down, for the stores of
 * @interlock/postgres and @interlock/oauth (which does not depend on it). A setup mistake (no
 * table, no grants, a wrong password, no database, a foreign table, an untrusted certificate)
 * fails the same way on every retry: it must reach the app's error handling with its fix rather
 * than be answered as an outage (a 503 to retry forever, or a pass under `failOpen`). No driver
 * is imported: only its errors' SQLSTATE, code and words are read.
 */

import { untrustedCertificate } from "../errors.js";

/**
 * A PostgreSQL error's SQLSTATE (it has a severity too), as opposed to a network or driver error.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function postgresSqlState(error: unknown): string | undefined {
  const e = error as { code?: unknown; severity?: unknown } | null;
  return typeof e?.code === "string" && typeof e.severity === "string" ? e.code : undefined;
}

/**
 * Whether a server error ended the session: severity FATAL or PANIC (a shutdown or
 * `pg_terminate_backend`, 57P01; an idle-in-transaction or transaction timeout, 25P03, 25P04).
 * The server closes the connection right after it, so nothing was done, and the connection,
 * which pg has not yet seen close, must not go back to a pool.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function postgresSessionEnded(error: unknown): boolean {
  if (postgresSqlState(error) === undefined) return false;
  const { severity } = error as { severity: string };
  return severity === "FATAL" || severity === "PANIC";
}

/**
 * A serialization failure or a deadlock (40001, 40P01): the statement wrote nothing, and may
 * simply run again with a fresh snapshot.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function postgresSerializationFailure(error: unknown): boolean {
  const state = postgresSqlState(error);
  return state === "40001" || state === "40P01";
}

// Errors from a table that has the store's name but not its shape (made by something other than
// migrate()): a missing column (42703), a column of another type (42804, 42846, 42883: no
// operator or function for it), no unique key for ON CONFLICT (42P10), an extra NOT NULL column
// (23502). The store's statements are fixed text, so none of these can come from a request.
const WRONG_SHAPE = /^(42703|42804|42846|42883|42P10|23502)$/;

// pg's own words when the server answers an SSL request with "no": the pool asks for SSL
// (`ssl`, `sslmode`) from a server that has it off. No code to match, and it never means an outage.
const NO_SERVER_SSL = "The server does not support SSL connections";

// pg's own words when the server asks for a password and the pool has none, or not a string (an
// unset environment variable): for SCRAM, then for a cleartext or MD5 request. No code either.
const NO_PASSWORD =
  /^SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a (non-empty )?string$|^Password must be a string$/;

// A named prepared statement the server says exists already (42P05) or does not exist (26000),
// when pg knows otherwise: a pooler in transaction mode (PgBouncer before 1.21, or without
// max_prepared_statements) handed pg's statements to another server connection than prepared them.
const PREPARED_ELSEWHERE = /^(42P05|26000)$/;

// PgBouncer answers its own refusals with SQLSTATE 08P01 (protocol_violation), a connection
// exception: mostly outages to ride out (query_wait_timeout, max_client_conn, "server conn
// crashed?", a server login failure it keeps refusing with for server_login_retry; the server's
// own refusal it passes on with its own SQLSTATE). These, told apart by PgBouncer's words alone
// (its source's texts, across versions), fail the same way on every retry: the fix is in the
// pool's settings or PgBouncer's.
const PGBOUNCER_MISTAKES: ReadonlyArray<readonly [RegExp, string]> = [
  [
    // pg sends its statement_timeout, lock_timeout, idle_in_transaction_session_timeout and
    // options settings as startup parameters, which PgBouncer refuses (or, told to ignore
    // them, drops: the role's settings are the ones that reach the server through it).
    /^unsupported (startup parameter|startup parameter in options|options startup parameter)\b/,
    "PgBouncer refuses a setting the pool sends when it connects (pg's statement_timeout, lock_timeout, idle_in_transaction_session_timeout or options); set it on the role instead (ALTER ROLE … SET)",
  ],
  [
    /^no such database\b/i,
    "PgBouncer has no database of the name the connection settings give; add it to PgBouncer's [databases], or fix the name in the connection settings",
  ],
  [
    /^(no such user|password authentication failed|SASL authentication failed|"trust" authentication failed|certificate authentication failed|unix socket login rejected|login rejected|empty password returned by client|no username supplied|username too long|password too long)$/,
    "PgBouncer refused the connection's user or password; check the connection settings, and PgBouncer's auth_file, auth_query or auth_hba_file",
  ],
  [/^SSL required$/, "PgBouncer requires SSL (client_tls_sslmode); turn SSL on in the pool's settings"],
  [
    // pg sends a statement without parameters, as migrate()'s SQL is, as a simple query.
    /^PQexec disallowed$/,
    "PgBouncer refuses simple queries (disable_pqexec), and migrate() runs its SQL as one; run migrate() on a direct connection, or apply migrationSql() in your own migrations",
  ],
  [
    // Its refusal of server logins for server_login_retry after one failed, quoting the
    // server's words: an outage (connect failed, too many clients) unless the server refused
    // the login itself, which it does again once the wait is over (then with its own SQLSTATE).
    /^server login has been failing, cached error: (password authentication failed|role ".*" does not exist|database ".*" does not exist|no pg_hba\.conf entry)/,
    "the server refuses PgBouncer's login for this database and user (a wrong password, an unknown role or database, no pg_hba.conf entry); check the connection settings, and PgBouncer's [databases] and auth_file",
  ],
  [
    /^(bouncer config error|server login failed: wrong password type)$/,
    "PgBouncer's own configuration is wrong for this database or user (its log says how); fix it there",
  ],
];

/**
 * How the store runs its statements, as far as telling its setup mistakes needs.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export interface PostgresStatementSetup {
  /** The table, as statements name it. */
  table: string;
  /** Whether statements are named prepared statements (the `preparedStatements` option). */
  prepared?: boolean;
  /** Whether the statement is `migrate()`'s `CREATE`, which needs more than the app's grants. */
  migrating?: boolean;
}

/**
 * Whether a table (`$1`, as statements name it: through the search_path unless a schema is
 * given) and its expiry index (`$2`, its name in the catalog) are both there, read without the
 * CREATE on the schema that `CREATE … IF NOT EXISTS` needs even when they are: one row, `ready`.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export const POSTGRES_READY_SQL = `SELECT EXISTS (
  SELECT FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
  WHERE i.indrelid = to_regclass($1::text) AND c.relname = $2::text
) AS ready`;

/**
 * What `POSTGRES_READY_SQL`'s rows say: `true`, `"t"` from a connection that leaves booleans as
 * text, or the byte 1 from one whose pg returns binary results (pg's `binary` option).
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function postgresReady(rows: readonly unknown[]): boolean {
  const ready = (rows[0] as { ready?: unknown } | undefined)?.ready;
  return ready === true || ready === "t" || (ready instanceof Uint8Array && ready.length === 1 && ready[0] === 1);
}

const grant = (table: string) => `GRANT SELECT, INSERT, UPDATE, DELETE ON ${table} (and USAGE on its schema) to it`;

/**
 * The fix for a store set up wrong, or undefined when `error` is not a setup mistake. Each one
 * fails the same way on every retry, so it must reach the app's error handling with its hint
 * rather than be answered as an outage (a 503 to retry forever, or a pass under failOpen).
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function postgresSetupMistake(error: unknown, setup: PostgresStatementSetup): string | undefined {
  const state = postgresSqlState(error);
  if (state === undefined) return connectionMistake(error);
  if (state === "08P01") return pgbouncerMistake((error as { message?: unknown }).message);
  return serverMistake(state, setup);
}

/** A setup mistake PgBouncer reports (08P01, its words), or undefined for its outages. */
function pgbouncerMistake(message: unknown): string | undefined {
  if (typeof message !== "string") return undefined;
  return PGBOUNCER_MISTAKES.find(([words]) => words.test(message))?.[1];
}

/** A setup mistake the server reports (a SQLSTATE). */
function serverMistake(
  state: string,
  { table, prepared = false, migrating = false }: PostgresStatementSetup,
): string | undefined {
  if (prepared && PREPARED_ELSEWHERE.test(state)) {
    return "preparedStatements needs a direct connection or PgBouncer 1.21+ with max_prepared_statements; turn it off";
  }
  if (state === "42P01") return `${table} does not exist; run migrate() or the SQL from migrationSql()`;
  // migrate() creates the table, not its schema: the schema is the app's, like its database.
  if (state === "3F000") return `the schema of ${table} does not exist; create it (CREATE SCHEMA), then run migrate()`;
  // PostgreSQL checks CREATE on the schema before IF NOT EXISTS looks: a role without it fails
  // migrate() even on a table made meanwhile. The schema owner's job, then the app role's grants.
  if (state === "42501" && migrating) {
    return `this role may not create ${table}; run migrate() as the schema owner, or apply migrationSql() in your own migrations, then ${grant(table)}`;
  }
  if (state === "42501") return `the app's role may not use ${table}; ${grant(table)}`;
  if (WRONG_SHAPE.test(state)) {
    return `${table} is not the table the store needs: the table was not made by migrate(); name another (the table option) and run migrate()`;
  }
  // Class 28, invalid authorization: a wrong password (28P01), an unknown role or no pg_hba.conf entry (28000).
  if (state.startsWith("28")) {
    return "the server refused the connection's user or password (or pg_hba.conf has no entry for it); check the connection settings";
  }
  if (state === "3D000") return "the database does not exist; create it, or fix its name in the connection settings";
  // pg sends UTF-8, which the server converts to the database's encoding: one other than UTF8
  // (SQL_ASCII keeps the bytes and never refuses) has no form for some characters of a key,
  // fingerprint or header value. The same text fails every time; the fix is the database's.
  if (state === "22P05") {
    return "the database's encoding has no form for a character of this text; keep the table in a database created with ENCODING 'UTF8'";
  }
  return undefined;
}

/** A setup mistake pg finds before the server has a say. */
function connectionMistake(error: unknown): string | undefined {
  const e = error as { code?: unknown; message?: unknown } | null;
  // From `new URL()` in pg: the message names no part of the string, so no password leaks.
  if (e?.code === "ERR_INVALID_URL") {
    return "the connection string is not a valid URL; check it (percent-encode characters such as @, / or # in the password)";
  }
  if (e?.message === NO_SERVER_SSL) {
    return "the server does not support SSL; turn SSL on at the server, or off in the pool's settings";
  }
  if (typeof e?.message === "string" && NO_PASSWORD.test(e.message)) {
    return "the server asks for a password and the connection settings give none; check the connection settings (user or password)";
  }
  if (untrustedCertificate(error)) {
    return "the server's TLS certificate is not trusted, or names another host; give the pool the CA that signed it (ssl: { ca }) and connect by a name the certificate holds";
  }
  return undefined;
}
