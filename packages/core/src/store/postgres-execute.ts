/**
 * Running one statement on a `pg` pool or client with a deadline, for the PostgreSQL stores of
 * @interlock/postgres and @interlock/oauth (which does not depend on it): waiting for a pool
 * connection counts against the deadline, a connection that arrives after it is handed back
 * unused (a statement its caller was told failed never runs late), and one whose statement timed
 * out is discarded. Structural types only: no driver is imported.
 */

import { timerDelay } from "../clock.js";
import { inTurn } from "./in-turn.js";
import { POSTGRES_READY_SQL, postgresReady, postgresSessionEnded, postgresSqlState } from "./postgres-errors.js";

/**
 * One query as `pg` takes it.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export interface PostgresQuery {
  text: string;
  /** Prepares the statement under this name on each connection. */
  name?: string;
  values?: unknown[];
  /** Per-query result parsers, so a user's global `pg.types` settings cannot change the rows. */
  types?: { getTypeParser: (...args: never[]) => unknown };
  /** `pg`'s client-side limit on waiting for the answer. */
  query_timeout?: number;
}

/**
 * A `pg` `Pool`, `Client` or `PoolClient`, as far as a statement needs it.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export interface PostgresQueryable {
  query(query: PostgresQuery): Promise<PostgresResult>;
}

/**
 * What a query resolves to, as `pg` gives it.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export interface PostgresResult {
  rows: unknown[];
  rowCount: number | null;
}

/** A checked-out pool connection. */
interface PgPoolClient extends PostgresQueryable {
  release(destroy?: unknown): void;
  on(event: "error", listener: (error: Error) => void): unknown;
  removeListener(event: "error", listener: (error: Error) => void): unknown;
}

interface PgPool extends PostgresQueryable {
  connect(callback: (error: Error | undefined, client: PgPoolClient | undefined) => void): void;
  readonly waitingCount: number;
}

// `pg.Client` has `connect()` too (it opens the connection), so a pool is told apart by the
// counters only pg-pool has.
const isPool = (db: PostgresQueryable): db is PgPool =>
  typeof (db as Partial<PgPool>).connect === "function" && typeof (db as Partial<PgPool>).waitingCount === "number";

/** Every column arrives as PostgreSQL's text (or null): the store parses what it selected. */
const RAW_TEXT = { getTypeParser: () => (value: string) => value };

/**
 * The end of an operation's time budget, shared by every step (and every rerun) of it. On the
 * monotonic clock: a system clock set back mid-operation must not lengthen the budget.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export class PostgresDeadline {
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
  /**
   * How long a statement sent now may wait at the server: the time left less what its trip
   * there and its answer's trip back take (a quarter of it, at most 1 s: a loaded machine has
   * been seen to take more than 250 ms). A statement stopped then (its own `lock_timeout`, or a
   * cancel request) is answered before the caller gives up on it.
   */
  get serverWaitMs(): number {
    const left = this.remaining;
    return Math.max(1, Math.floor(left - Math.min(1_000, left / 4)));
  }
}

/**
 * Asks the server to cancel whatever the connection's backend is running (the protocol's
 * CancelRequest, over a connection of its own), giving up at the deadline. The driver's
 * package's code: it needs a socket, which core does not open.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export type PostgresCancel = (connection: unknown, deadline: PostgresDeadline) => Promise<void>;

class TimedOut extends Error {
  override readonly name = "TimedOut";
}

/** Settles like `promise`, or rejects with `TimedOut` after `ms`. */
function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimedOut(`no answer within ${Math.round(ms)} ms`)), timerDelay(ms));
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
 * sent and timed out may still run on the server; its connection is discarded. `values` may be a
 * function, called as the statement is sent: for a value that depends on the time left then
 * (a `lock_timeout`), which waiting for the connection may have used up. With `cancel`, a statement
 * still running when its time at the server is up is cancelled there (see `cancelledWhenLate`):
 * on a pool connection, which is then thrown away, or on a client that stays in use after it
 * (see `cancelledInPlace`): pass one for the caller's transaction, whose statements wait for ours,
 * not for a `Client` the app's own statements share meanwhile.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export async function executePostgres(
  db: PostgresQueryable,
  statement: { text: string; name?: string },
  values: unknown[] | (() => unknown[]) | undefined,
  deadline: PostgresDeadline,
  cancel?: PostgresCancel,
): Promise<PostgresResult> {
  const query = (): PostgresQuery => ({
    ...statement,
    ...(values === undefined ? {} : { values: typeof values === "function" ? values() : values }),
    types: RAW_TEXT,
    // Cancelled, the statement's own answer says whether it ran: pg's timeout would drop it.
    ...(cancel === undefined ? { query_timeout: deadline.remaining } : {}),
  });
  if (!isPool(db)) {
    // A Client or the caller's transaction client: never ours to release or discard. It runs one
    // statement at a time, so ours take turns on it; waiting counts against the deadline, and a
    // statement whose deadline passed meanwhile is never sent.
    const running = inTurn(db, async () => {
      if (deadline.expired) throw new TimedOut("the deadline passed while an earlier statement held the connection");
      return cancel === undefined ? db.query(query()) : cancelledInPlace(db, query(), deadline, cancel);
    });
    return within(running, deadline.remaining);
  }

  const abandoned = abandonedWaits.get(db) ?? 0;
  if (abandoned >= ABANDONED_WAITS_LIMIT)
    throw new TimedOut(
      `no pool connection has freed while ${abandoned} earlier operations waited for one past their deadline`,
    );
  // A checked-out pg client has no 'error' listener of its own: without ours, a connection lost
  // mid-query would be an unhandled 'error' event. The query rejects with it anyway.
  let broken: Error | undefined;
  const onError = (error: Error) => {
    broken = error;
  };
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
  // Handed over as the deadline passed, before this wait's own timer fired: the caller's bound
  // on the same deadline (a timer of its own) may have told it the operation failed already, and
  // a statement sent now would land after that. Handed back unused.
  if (deadline.expired) {
    client.removeListener("error", onError);
    client.release(broken);
    throw new TimedOut("a pool connection freed only as the deadline passed");
  }
  const late: Late = {};
  try {
    const result =
      cancel === undefined
        ? await within(client.query(query()), deadline.remaining)
        : await cancelledWhenLate(client, query(), deadline, cancel, late);
    client.removeListener("error", onError);
    // A cancel that reached the server after the statement finished would stop the
    // connection's next statement: one we cancelled is thrown away, whatever it answered.
    client.release(broken ?? (late.cancel !== undefined || undefined));
    return result;
  } catch (error) {
    client.removeListener("error", onError);
    // The server answered with an error: the connection is fine, unless the error ended the
    // session (the server closes it next; pg-pool would hand it to the next waiter, and report
    // it lost once idle), or we sent a cancel (see above). Lost or timed out: it is in doubt
    // (maybe still running our statement). Either way pg-pool discards it.
    const unusable =
      broken !== undefined ||
      late.cancel !== undefined ||
      postgresSqlState(error) === undefined ||
      postgresSessionEnded(error);
    client.release(unusable ? (broken ?? error ?? true) : undefined);
    throw error;
  }
}

/** The cancel request `cancelledWhenLate` sent, if it sent one: settles once the server took it (or at the deadline). */
interface Late {
  cancel?: Promise<void>;
}

/**
 * Runs `query` on `client`; if it has no answer once its time at the server is up
 * (`serverWaitMs`), cancels it there, whatever it waits for (a lock on its table, taken before
 * the statement can bound its own waits), and waits for its answer until the deadline. The
 * answer is the outcome: cancelled, an error (57014); done before the cancel reached it, its
 * result, so a claim that landed is reported as landed, never "unavailable" with its key held.
 * No answer by the deadline: `TimedOut`, as without a cancel. The cancel sent is left in `late`.
 */
async function cancelledWhenLate(
  client: PostgresQueryable,
  query: PostgresQuery,
  deadline: PostgresDeadline,
  cancel: PostgresCancel,
  late: Late,
): Promise<PostgresResult> {
  const sent = client.query(query);
  try {
    return await within(sent, deadline.serverWaitMs);
  } catch (error) {
    if (!(error instanceof TimedOut)) throw error;
  }
  // Not awaited here: the answer, or the deadline, is what the caller waits for.
  late.cancel = cancel(client, deadline).catch(() => {});
  return within(sent, deadline.remaining);
}

/**
 * `cancelledWhenLate` on a client that stays in use after the statement, the caller's
 * transaction's: without the cancel, a statement that outlived its deadline (waiting for its
 * table's lock, say) would keep the connection busy, and the caller's ROLLBACK, queued behind it,
 * would wait as long. The outcome is settled only once the server has taken the cancel request
 * (or at the deadline), so the cancel reaches the statement, or the backend idle since (which
 * ignores it), not the statement the caller sends next.
 */
async function cancelledInPlace(
  client: PostgresQueryable,
  query: PostgresQuery,
  deadline: PostgresDeadline,
  cancel: PostgresCancel,
): Promise<PostgresResult> {
  const late: Late = {};
  try {
    return await cancelledWhenLate(client, query, deadline, cancel, late);
  } finally {
    await late.cancel;
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

/**
 * A store's `migrate()`: runs `sql` (one simple query: the advisory lock that serialises
 * migrations, then `CREATE … IF NOT EXISTS`) unless `table` and its index are there already, so
 * an app role that may only use the table passes on every start. A role without CREATE is
 * refused before IF NOT EXISTS looks, even once the owner's migration it waited for (the
 * advisory lock) has made the table: on that refusal it checks again.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export async function migratePostgres(
  db: PostgresQueryable,
  { table, indexName, sql }: { table: string; indexName: string; sql: string },
  deadline: PostgresDeadline,
): Promise<void> {
  const ready = async () =>
    postgresReady((await executePostgres(db, { text: POSTGRES_READY_SQL }, [table, indexName], deadline)).rows);
  if (await ready()) return;
  try {
    await executePostgres(db, { text: sql }, undefined, deadline);
  } catch (error) {
    if (postgresSqlState(error) !== "42501" || !(await ready())) throw error;
  }
}
