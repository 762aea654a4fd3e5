/**
 * The PostgreSQL store: one row per key, one statement per operation, the database's clock for
 * leases and retention, and `complete` that can run inside the caller's own transaction.
 *
 * Session-free by design, so it works behind PgBouncer in transaction mode: every operation is
 * a single autocommit statement (unnamed unless `preparedStatements` is on), and nothing uses
 * session state or session-level advisory locks.
 */

import { createHash, randomUUID } from "node:crypto";
import {
  assertClaim,
  assertComplete,
  assertKey,
  assertOptionNames,
  type ClaimOptions,
  type ClaimResult,
  type CompleteOptions,
  driverErrorSummary,
  executePostgres,
  InterlockConfigError,
  type InterlockStore,
  optionNames,
  type PostgresCancel,
  PostgresDeadline,
  type PostgresStatementSetup,
  postgresSerializationFailure,
  postgresSqlState,
  type StoredResponse,
  StoreUnavailableError,
  timeoutOption,
  unstorable,
} from "@interlock/core";
import { cancelStatement } from "./cancel.js";
import { type PgQueryable, type PgResult, storeError } from "./query.js";
import {
  resolveTable,
  type Statement,
  type Statements,
  statements,
  TABLE_OPTION_NAMES,
  type TableOptions,
} from "./sql.js";

/** The PostgreSQL store's table, bounds and statements. */
export interface PostgresStoreOptions extends TableOptions {
  /**
   * Bound on every operation in ms, waiting for a pool connection included. Past it the
   * operation fails with `StoreUnavailableError`. Default 2,000; at most 2^31 - 1 (a timer's
   * range).
   */
  operationTimeoutMs?: number;
  /** Largest record (body plus header text) in bytes. Default 1 MiB. */
  maxRecordBytes?: number;
  /**
   * Named prepared statements: parsed and planned once per connection rather than on every
   * call, about half the server time per operation. Off by default: PgBouncer in transaction
   * mode supports them only from 1.21, with `max_prepared_statements` set. Behind one that does
   * not keep them, operations fail with `InterlockConfigError` saying to turn this off.
   */
  preparedStatements?: boolean;
}

export interface PostgresCompleteOptions extends CompleteOptions {
  /**
   * Your transaction's client (a `PoolClient` after `BEGIN`): the record commits with your own
   * writes, and a rollback leaves the lock in place for you to release.
   */
  transaction?: PgQueryable;
}

/** How `purgeExpired` deletes. */
export interface PurgeOptions {
  /** Rows deleted per statement. Default 1,000. */
  batchSize?: number;
}

const STORE_OWN_OPTION_NAMES = optionNames<Omit<PostgresStoreOptions, keyof TableOptions>>({
  operationTimeoutMs: true,
  maxRecordBytes: true,
  preparedStatements: true,
});
/** Checked on every call: a misspelt `transaction` would commit the record outside the caller's transaction. */
const COMPLETE_OPTION_NAMES = optionNames<PostgresCompleteOptions>({ ttlMs: true, transaction: true });
const PURGE_OPTION_NAMES = optionNames<PurgeOptions>({ batchSize: true });

/** A claim's result row: every column as PostgreSQL's text. */
interface ClaimRow {
  state: "claimed" | "locked" | "completed";
  fingerprint: string;
  expires_ms: string;
  created_ms: string;
  completed_ms: string;
  status: string;
  headers: string;
  body: string;
}

// A statement reruns only when it lost to a change of its key's row committed after its snapshot
// (see `claim` and `#run`): each rerun needs yet another commit on the same key in that window,
// so a few runs are plenty.
const MAX_RUNS = 10;
const MAX_RECORD_LIMIT = 256 * 1024 * 1024;

function positiveInteger(name: string, value: number | undefined, fallback: number, max = Number.MAX_SAFE_INTEGER) {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0 || value > max) {
    throw new InterlockConfigError(`${name} must be a whole number from 1 to ${max}`);
  }
  return value;
}

/** The primary key: fixed-size, so any key up to the contract's maximum fits a btree entry. */
const keyHash = (key: string) => createHash("sha256").update(key, "utf8").digest();

/** Decodes `encode(body, 'base64')` (line breaks included) into a fresh, unshared array. */
function base64Bytes(text: string): Uint8Array {
  const decoded = Buffer.from(text, "base64");
  const { buffer, byteOffset, length } = decoded;
  // Small buffers are views into Node's shared pool: copy those out, keep the rest as they are.
  if (byteOffset === 0 && buffer.byteLength === length) return new Uint8Array(buffer);
  return new Uint8Array(buffer.slice(byteOffset, byteOffset + length));
}

/**
 * A claim's row with every column as a string. Each is text, whose binary form is its UTF-8: a
 * pool with pg's `binary` option (no statement can turn it off) hands each over as bytes.
 */
function textRow(row: Record<string, unknown> | undefined): ClaimRow | undefined {
  if (row === undefined || typeof row.state === "string") return row as ClaimRow | undefined;
  const text: Record<string, unknown> = {};
  for (const [column, value] of Object.entries(row)) {
    text[column] = value instanceof Uint8Array ? Buffer.from(value).toString("utf8") : value;
  }
  return text as unknown as ClaimRow;
}

function lostTo(row: ClaimRow): ClaimResult {
  if (row.state === "locked") {
    return { state: "in_flight", fingerprint: row.fingerprint, lockExpiresAt: Number(row.expires_ms) };
  }
  return {
    state: "completed",
    record: {
      status: Number(row.status),
      headers: JSON.parse(row.headers) as Array<[string, string]>,
      body: base64Bytes(row.body),
      fingerprint: row.fingerprint,
      createdAt: Number(row.created_ms),
      completedAt: Number(row.completed_ms),
    },
  };
}

/**
 * The header pairs as JSON; `assertComplete` has checked they are pairs of strings a store can
 * hold (PostgreSQL text and jsonb cannot hold U+0000, and a lone surrogate has no UTF-8 form).
 */
function headersJson(headers: StoredResponse["headers"]): string {
  return JSON.stringify(headers);
}

/** Whether `db` is a pg `Pool`: told apart from a `Client` by the counters only pg-pool has. */
const isPool = (db: unknown) => typeof (db as { waitingCount?: unknown } | null)?.waitingCount === "number";

/**
 * The caller's transaction client, checked: a pool would commit the record at once, outside the
 * caller's transaction, and an object without `query` (another library's transaction) would fail
 * every call as an outage, a 503 to retry forever, where it is a mistake to fix.
 */
function transactionClient(transaction: unknown): PgQueryable | undefined {
  if (transaction === undefined) return undefined;
  const candidate = transaction as Partial<PgQueryable> | null;
  if (typeof candidate?.query === "function" && !isPool(candidate)) return candidate as PgQueryable;
  throw new InterlockConfigError(
    "complete()'s transaction must be the pg client your transaction runs on (a PoolClient after BEGIN), not a pool or another library's transaction",
  );
}

/**
 * Where a statement runs (default the store's pool), by when (default the operation's own
 * deadline), whether it is cancelled at the server once its time there is up, and a failure the
 * operation reports as a mistake of its own (undefined: the usual mapping, `storeError`).
 */
interface RunOptions {
  client?: PgQueryable | undefined;
  deadline?: PostgresDeadline;
  cancel?: PostgresCancel | undefined;
  mistake?: ((error: unknown) => Error | undefined) | undefined;
}

// Below this many renewals noted, none is forgotten (see `#noteRenewal`).
const RENEWALS_KEPT = 64;

/**
 * An `InterlockStore` on your `pg` `Pool` (or `Client`). The store never ends the pool. Create
 * the table first with `migrate(pool)` or the SQL from `migrationSql()`.
 */
export class PostgresStore implements InterlockStore {
  readonly name = "postgres";
  readonly maxRecordBytes: number;
  /** The bound on every operation, in ms. */
  readonly operationTimeoutMs: number;
  readonly #db: PgQueryable;
  readonly #sql: Statements;
  /** The table and how statements run, for the fix a setup mistake names. */
  readonly #setup: PostgresStatementSetup;
  /**
   * How a claim still running at its deadline is cancelled: on a pool, at the server (its
   * connection is then thrown away). Not on a single `Client`, which the app's own statements
   * share: a cancel that arrived as the claim finished could stop one of them.
   */
  readonly #claimCancel: PostgresCancel | undefined;
  /**
   * The tokens whose lease this store was asked to renew (`extend`, which `extendLease` calls),
   * each until the end of the lease its latest renewal asked for (monotonic ms): see
   * `#renewalConflict`.
   */
  readonly #renewed = new Map<string, number>();
  /** The count of noted renewals at which the ended ones are next forgotten. */
  #sweepAt = RENEWALS_KEPT;

  constructor(db: PgQueryable, options: PostgresStoreOptions = {}) {
    assertOptionNames("postgresStore()", options, TABLE_OPTION_NAMES, STORE_OWN_OPTION_NAMES);
    if (typeof db?.query !== "function") throw new InterlockConfigError("postgres store needs a pg Pool or Client");
    this.#db = db;
    this.#claimCancel = isPool(db) ? cancelStatement : undefined;
    const table = resolveTable(options);
    const prepared = options.preparedStatements === true;
    this.#setup = { table: table.qualified, prepared };
    this.#sql = statements(table, prepared);
    this.operationTimeoutMs = timeoutOption("operationTimeoutMs", options.operationTimeoutMs, 2_000);
    this.maxRecordBytes = positiveInteger("maxRecordBytes", options.maxRecordBytes, 1024 * 1024, MAX_RECORD_LIMIT);
  }

  async claim(key: string, options: ClaimOptions): Promise<ClaimResult> {
    assertClaim(key, options); // refuses NUL and lone surrogates in the key and fingerprint too
    const token = randomUUID();
    const keyed = [keyHash(key), key, token, options.fingerprint, options.lockTtlMs];
    // One deadline for the whole claim, reruns included.
    const deadline = new PostgresDeadline(this.operationTimeoutMs);
    // The lock wait from the time left as the statement is sent, not now: waiting for a pool
    // connection may have used most of the budget.
    // Its row lock bounded at the server (`lock_timeout`), any other wait (its table's lock,
    // taken before the statement can set one) by a cancel when that time is up: a claim its
    // caller was told failed never lands later, holding the key for a lease.
    const values = () => [...keyed, String(deadline.serverWaitMs)];
    for (let run = 1; run <= MAX_RUNS; run++) {
      const { rows } = await this.#run("claim", this.#sql.claim, values, { deadline, cancel: this.#claimCancel });
      const row = textRow(rows[0] as Record<string, unknown> | undefined);
      if (row?.state === "claimed") return { state: "claimed", token };
      if (row !== undefined) return lostTo(row);
      // No live row in the statement's snapshot, yet the INSERT lost: under READ COMMITTED, ON
      // CONFLICT checks and locks the newest version of the row, while the read of the same
      // statement sees its snapshot. So the row that won was committed after the snapshot was
      // taken, and there is nothing to report. The statement changed nothing: run it again with
      // a fresh snapshot. It takes a commit on the same key in that window, so it is rare
      // outside races for a new key, and each rerun needs yet another such commit.
    }
    throw new StoreUnavailableError("postgres", "claim kept losing to concurrent changes of its key");
  }

  async complete(
    key: string,
    token: string,
    response: StoredResponse,
    options: PostgresCompleteOptions,
  ): Promise<boolean> {
    assertOptionNames("complete()", options, COMPLETE_OPTION_NAMES);
    assertComplete(this, key, response, options);
    const headers = headersJson(response.headers);
    if (typeof token !== "string" || unstorable(token)) return false; // no such token can exist
    const values = [keyHash(key), token, response.status, headers, response.body, options.ttlMs];
    const client = transactionClient(options.transaction);
    // In the caller's transaction, a statement still running at its deadline (waiting for its
    // table's lock, say) is cancelled: it runs on the caller's connection, and the caller's
    // ROLLBACK would wait behind it. On the store's own connections it may land late: it does
    // what was asked when it was sent (see the statement).
    const inTransaction =
      client === undefined
        ? {}
        : { client, cancel: cancelStatement, mistake: (error: unknown) => this.#renewalConflict(error, token) };
    return (await this.#run("complete", this.#sql.complete, values, inTransaction)).rowCount === 1;
  }

  async release(key: string, token: string): Promise<boolean> {
    assertKey(key);
    if (typeof token !== "string" || unstorable(token)) return false;
    return (await this.#run("release", this.#sql.release, [keyHash(key), token])).rowCount === 1;
  }

  async extend(key: string, token: string, lockTtlMs: number): Promise<boolean> {
    assertClaim(key, { fingerprint: "", lockTtlMs });
    if (typeof token !== "string" || unstorable(token)) return false;
    this.#noteRenewal(token, lockTtlMs); // as it is sent: it may commit before its answer is back
    return (await this.#run("extend", this.#sql.extend, [keyHash(key), token, lockTtlMs])).rowCount === 1;
  }

  /**
   * Notes a renewal of `token`'s lease, sent now, until the end of the lease it asks for. Ended
   * ones are forgotten whenever the count doubles since the last time (and reaches
   * `RENEWALS_KEPT`): the map holds about the leases renewed within a lease, whether or not
   * their keys were ever settled.
   */
  #noteRenewal(token: string, lockTtlMs: number): void {
    const now = performance.now();
    this.#renewed.set(token, now + lockTtlMs);
    if (this.#renewed.size < this.#sweepAt) return;
    for (const [renewed, until] of this.#renewed) if (until <= now) this.#renewed.delete(renewed);
    this.#sweepAt = Math.max(RENEWALS_KEPT, 2 * this.#renewed.size);
  }

  /**
   * A `complete` in the caller's transaction that lost to its own lease's renewal, as the
   * mistake it is; undefined for any other failure. Under REPEATABLE READ or SERIALIZABLE the
   * UPDATE sees the lock's row as the transaction's snapshot has it, and a renewal (a new version
   * of that row, committed since) makes it a serialization failure (40001). Rerunning the
   * transaction does not help: the work renews its lease again whenever it outlasts a third of
   * it (`extendLease`, on by default). The fix is the caller's, so it must not read as an outage
   * (a 503 to retry, or a result silently left unrecorded). Under SERIALIZABLE a 40001 may have
   * another cause too (read/write dependencies between transactions); with the lease renewed,
   * it is reported the same way: at those levels, the renewal is the mistake.
   */
  #renewalConflict(error: unknown, token: string): Error | undefined {
    if (postgresSqlState(error) !== "40001" || !this.#renewed.has(token)) return undefined;
    const reason = error instanceof Error ? error.message : String(error);
    return new InterlockConfigError(
      `postgres store: complete() in your transaction lost to a renewal of its own lease (extendLease, or your extend()) committed after the transaction's snapshot, as it will under REPEATABLE READ or SERIALIZABLE whenever the work outlasts a third of lockTtlMs; run this transaction at READ COMMITTED, or set extendLease: false with a lockTtlMs longer than the work (${reason})`,
      { cause: driverErrorSummary(error) },
    );
  }

  /**
   * Deletes expired locks and records, `batchSize` rows per statement (short row locks, no
   * long transaction), until none are left. Returns how many rows it deleted. Run it on a
   * schedule: expired rows are never returned, but they take space until purged.
   */
  async purgeExpired(options: PurgeOptions = {}): Promise<number> {
    assertOptionNames("purgeExpired()", options, PURGE_OPTION_NAMES);
    const batchSize = positiveInteger("batchSize", options.batchSize, 1_000);
    let deleted = 0;
    for (;;) {
      const batch = (await this.#run("purge", this.#sql.purge, [batchSize])).rowCount ?? 0;
      deleted += batch;
      if (batch < batchSize) return deleted;
    }
  }

  /**
   * Runs one statement within the operation's deadline. On its own (not in the caller's
   * transaction), a statement that lost to a concurrent change of its row under REPEATABLE READ
   * or SERIALIZABLE (a `default_transaction_isolation`) wrote nothing: it runs again on a fresh
   * snapshot, rather than report the store unavailable and leave, say, a handler's finished work
   * unrecorded. In the caller's transaction, that transaction is aborted: the caller reruns it.
   */
  async #run(
    operation: string,
    statement: Statement,
    values: unknown[] | (() => unknown[]),
    { client, deadline = new PostgresDeadline(this.operationTimeoutMs), cancel, mistake }: RunOptions = {},
  ): Promise<PgResult> {
    for (let run = 1; ; run++) {
      try {
        return await executePostgres(client ?? this.#db, statement, values, deadline, cancel);
      } catch (error) {
        if (client === undefined && postgresSerializationFailure(error) && run < MAX_RUNS) continue;
        throw mistake?.(error) ?? storeError(operation, error, this.#setup);
      }
    }
  }
}

/** A store on your `pg` `Pool` (or `Client`); see `PostgresStore`. */
export function postgresStore(db: PgQueryable, options?: PostgresStoreOptions): PostgresStore {
  return new PostgresStore(db, options);
}
