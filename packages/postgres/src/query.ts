/**
 * Running one statement with a deadline, and telling "the database is unavailable" apart from
 * other errors. Structural types instead of `pg`'s own: a `Pool`, a `Client`, a `PoolClient`
 * (and pg-compatible drivers) all fit, and users need no `@types/pg` for ours.
 */

import {
  driverErrorSummary,
  InterlockConfigError,
  inTurn,
  type PostgresStatementSetup,
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

/** A checked-out pool connection. */
interface PgPoolClient extends PgQueryable {
  release(destroy?: unknown): void;
  on(event: "error", listener: (error: Error) => void): unknown;
  removeListener(event: "error", listener: (error: Error) => void): unknown;
}

interface PgPool extends PgQueryable {
  connect(callback: (error: Error | undefined, client: PgPoolClient | undefined) => void): void;
  readonly waitingCount: number;
}

// `pg.Client` has `connect()` too (it opens the connection), so a pool is told apart by the
// counters only pg-pool has.
const isPool = (db: PgQueryable): db is PgPool =>
  typeof (db as Partial<PgPool>).connect === "function" && typeof (db as Partial<PgPool>).waitingCount === "number";

/** Every column arrives as PostgreSQL's text (or null): the store parses what it selected. */
const RAW_TEXT = { getTypeParser: () => (value: string) => value };

/**
 * The end of an operation's time budget, shared by every step (and every rerun) of it. On the
 * monotonic clock: a system clock set back mid-operation must not lengthen the budget.
 */
export class Deadline {
  readonly #end: number;
  constructor(ms: number) {
    this.#end = performance.now() + ms;
  }
  get remaining(): number {
    return Math.max(1, this.#end - performance.now());
  }
  get expired(): boolean {
    return performance.now() >= this.#end;
  }
}

class TimedOut extends Error {
  override readonly name = "TimedOut";
}

/** Settles like `promise`, or rejects with `TimedOut` after `ms`. */
function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimedOut(`no answer within ${Math.round(ms)} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Per pool, the waits for a connection that operations gave up on (past their deadline) and
 * pg-pool still holds: it cannot take a wait back, and serves it (the store hands the connection
 * back unused) only once a connection frees. They are served first when one does, one after the
 * other at once, so while any is queued none has freed since the oldest was given up on. Past
 * `ABANDONED_WAITS_LIMIT` of them, an operation is refused at once instead of queueing one more:
 * an app holding every connection for long, without `connectionTimeoutMillis` on its pool, would
 * otherwise grow the queue by one (about 2.4 KB) for every operation refused meanwhile.
 */
const abandonedWaits = new WeakMap<PgPool, number>();
const ABANDONED_WAITS_LIMIT = 1_000;

/**
 * Runs one statement, bounded by `deadline` from the moment it is asked for: waiting for a pool
 * connection counts too. A pool connection that arrives after the deadline is handed back
 * unused, so a statement we already reported as failed never runs late. A statement that was
 * sent and timed out may still run on the server; its connection is discarded.
 */
export async function execute(
  db: PgQueryable,
  statement: { text: string; name?: string },
  values: unknown[] | undefined,
  deadline: Deadline,
): Promise<PgResult> {
  const query = (): PgQuery => ({
    ...statement,
    ...(values === undefined ? {} : { values }),
    types: RAW_TEXT,
    query_timeout: deadline.remaining,
  });
  if (!isPool(db)) {
    // A Client or the caller's transaction client: never ours to release or discard. It runs one
    // statement at a time, so ours take turns on it; waiting counts against the deadline, and a
    // statement whose deadline passed meanwhile is never sent.
    const running = inTurn(db, async () => {
      if (deadline.expired) throw new TimedOut("the deadline passed while an earlier statement held the connection");
      return db.query(query());
    });
    return within(running, deadline.remaining);
  }

  // A checked-out pg client has no 'error' listener of its own: without ours, a connection lost
  // mid-query would be an unhandled 'error' event. The query rejects with it anyway.
  let broken: Error | undefined;
  const onError = (error: Error) => {
    broken = error;
  };
  const abandoned = abandonedWaits.get(db) ?? 0;
  if (abandoned >= ABANDONED_WAITS_LIMIT)
    throw new TimedOut(
      `no pool connection has freed while ${abandoned} earlier operations waited for one past their deadline`,
    );
  const acquiring = connectListening(db, onError);
  let client: PgPoolClient;
  try {
    client = await within(acquiring, deadline.remaining);
  } catch (error) {
    abandonedWaits.set(db, (abandonedWaits.get(db) ?? 0) + 1);
    const served = () => abandonedWaits.set(db, (abandonedWaits.get(db) ?? 1) - 1);
    acquiring.then((late) => {
      served();
      late.removeListener("error", onError);
      late.release(broken);
    }, served);
    throw error;
  }
  try {
    const result = await within(client.query(query()), deadline.remaining);
    client.removeListener("error", onError);
    client.release(broken);
    return result;
  } catch (error) {
    client.removeListener("error", onError);
    // The server answered with an error: the connection is fine. Lost or timed out: it is in
    // doubt (maybe still running our statement), so pg-pool discards it.
    const inDoubt = broken !== undefined || sqlState(error) === undefined;
    client.release(inDoubt ? (broken ?? error ?? true) : undefined);
    throw error;
  }
}

/**
 * A pool connection with `onError` on it from the moment pg-pool hands it over. The callback
 * form, not the promise: pg-pool hands over a new connection from inside its socket's data
 * handler, taking its own idle listener off there, and an error message later in the same read
 * (the server shutting down, `pg_terminate_backend`) is emitted at once, before a promise's
 * continuation could listen: an unhandled 'error' event, which ends the process.
 */
function connectListening(pool: PgPool, onError: (error: Error) => void): Promise<PgPoolClient> {
  return new Promise((resolve, reject) => {
    pool.connect((error, client) => {
      if (client === undefined || (error !== undefined && error !== null)) return reject(error);
      client.on("error", onError);
      resolve(client);
    });
  });
}

/** A PostgreSQL error's SQLSTATE, as opposed to a network or driver error (core's, shared with the OAuth token store). */
export const sqlState = postgresSqlState;

// Errors that mean "not done, try again later": connection exceptions (08), insufficient
// resources such as too many connections (53), shutdown or cancel including statement_timeout
// (57), system errors (58), a lock_timeout (55P03), a read-only server after failover (25006),
// serialization failure and deadlock (40001, 40P01).
const UNAVAILABLE = /^(08|53|57|58)|^(55P03|25006|40001|40P01)$/;

/** SQLSTATEs after which a statement on its own may simply run again: it wrote nothing. */
export const isSerializationFailure = (error: unknown) => /^(40001|40P01)$/.test(sqlState(error) ?? "");

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
  if (state !== undefined && !UNAVAILABLE.test(state)) return error;
  return new StoreUnavailableError("postgres", `${operation} failed: ${reason}`, { cause: error });
}
