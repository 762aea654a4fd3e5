/**
 * `runIdempotent`: the same exactly-once guarantee for work that is not an HTTP request
 * (queue consumers, cron jobs, sagas), on the same stores. The result is stored as JSON and
 * returned as-is to every later run with the same key.
 */

import { encodeUtf8Shared, utf8 } from "../encoding.js";
import { IdempotencyError, InterlockConfigError } from "../errors.js";
import { assertOptionNames, optionNames } from "../option-names.js";
import type { InterlockStore } from "../store/contract.js";
import { LeaseKeeper, type LeaseRenewal, renewalsOf } from "../store/lease.js";
import { assertClaim, asUnavailable, positiveMs, storeCall, storeOption } from "../store/validate.js";
import { checkWait, claimKey, type WaitOptions } from "./claim.js";
import {
  DEFAULT_IDEMPOTENCY_LOCK_TTL_MS,
  DEFAULT_IDEMPOTENCY_RETENTION_MS,
  IN_FLIGHT_RETRY_AFTER_SECONDS,
} from "./engine.js";

/** What `runIdempotent` runs under. */
export interface RunIdempotentOptions {
  /** Where the key is claimed and the result kept. */
  store: InterlockStore;
  /**
   * Identifies the unit of work, e.g. a message id. Scoped under `run:` in the store: at most 1020
   * characters, without NUL or lone surrogates (what every store holds).
   */
  key: string;
  /** Identifies the work's input; a different input under the same key is refused. No NUL or lone surrogates. Default "". */
  fingerprint?: string;
  /** Lease on the running work, in ms: after a crash, the key is free again this much later. Default 60 s. */
  lockTtlMs?: number;
  /**
   * Renew the lease while `fn` runs, every third of `lockTtlMs`, as the engine and the webhook
   * receiver do (default true): work slower than its lease would otherwise lose its key while it
   * runs, and a redelivered message would run it a second time beside the first. Renewal stops
   * once the key has been held for `maxMs` (with `true`, 10 minutes,
   * `DEFAULT_IDEMPOTENCY_RENEWAL_MAX_MS`), so work that never returns cannot hold its key for
   * good. `false` renews nothing: the claim lasts `lockTtlMs`.
   */
  extendLease?: boolean | LeaseRenewal;
  /** How long the result is kept and returned to later runs, in ms. Default 24 h. */
  retentionMs?: number;
  /** Wait for a run in progress elsewhere instead of failing with `request_in_flight`. */
  wait?: WaitOptions;
  /**
   * The caller's open transaction, passed to the store's `complete`: with the PostgreSQL store
   * the result is recorded in the same transaction as the work's own writes.
   */
  transaction?: unknown;
}

/** What `runIdempotent` resolves to. */
export interface IdempotentRun<T> {
  /** `fn`'s result: from this run, or from the earlier one (as stored, through JSON). */
  value: T;
  /** True when the value comes from an earlier run: `fn` did not run now. */
  replayed: boolean;
  /**
   * False when `fn` ran but its result could not be stored (store down, lease lost, value
   * not JSON-serialisable or too large): a later run with this key may run `fn` again. After a
   * store failure the key stays held until its lease runs out (a run meanwhile gets
   * `request_in_flight`); a value no store could keep lets it go at once.
   */
  recorded: boolean;
  /**
   * With a `transaction`, for a run that did not replay: frees the key once you have rolled the
   * transaction back (not recorded, or your own later failure), so a retry runs at once instead
   * of waiting out `lockTtlMs`. Call it after the `ROLLBACK`: before, it would wait on your
   * transaction's own lock on the key. After a `COMMIT` it does nothing (the key holds the
   * result). Never throws: an unreachable store leaves the key to its lease. Undefined without a
   * transaction.
   */
  release?: () => Promise<void>;
}

const RUN_OPTION_NAMES = optionNames<RunIdempotentOptions>({
  store: true,
  key: true,
  fingerprint: true,
  lockTtlMs: true,
  extendLease: true,
  retentionMs: true,
  wait: true,
  transaction: true,
});

/** `value` stored as {"v": value} (so undefined round-trips), or undefined when no store could keep it. */
function recordable(store: InterlockStore, value: unknown): Uint8Array | undefined {
  let json: string;
  try {
    json = JSON.stringify({ v: value });
  } catch {
    return undefined; // a BigInt, a cycle, a toJSON that throws
  }
  const body = encodeUtf8Shared(json);
  return body.length > store.maxRecordBytes ? undefined : body;
}

/**
 * Runs `fn` once per key. A completed key returns the stored value; a key running elsewhere
 * throws `IdempotencyError` (`request_in_flight`, unless `wait`); a different fingerprint
 * throws `idempotency_key_mismatch`; `fn` throwing releases the key and rethrows; an
 * unreachable store throws `StoreUnavailableError`, and a `lockTtlMs` or `retentionMs` that is
 * not a positive whole number of ms, or a key (over 1020 characters) or fingerprint no store
 * can hold (NUL, a lone surrogate), `InterlockConfigError`, before `fn` runs. With a
 * `transaction`, a store that cannot record the result in it as set up (the PostgreSQL store:
 * a `transaction` that is no pg client; REPEATABLE READ or SERIALIZABLE with the lease renewed)
 * throws its `InterlockConfigError` after `fn`, the key released: roll back.
 */
export async function runIdempotent<T>(
  options: RunIdempotentOptions,
  fn: () => T | Promise<T>,
): Promise<IdempotentRun<T>> {
  assertOptionNames("runIdempotent()", options, RUN_OPTION_NAMES);
  const store = storeOption(options.store);
  if (typeof options.key !== "string" || options.key.length === 0)
    throw new InterlockConfigError("key must be a non-empty string");
  const storeKey = `run:${options.key}`;
  const fingerprint = options.fingerprint ?? "";
  // Checked before the claim, as the engine does: a store refuses a bad lease as unavailable,
  // and a bad retention only once the work is done, so it would never be recorded.
  const lockTtlMs = positiveMs("lockTtlMs", options.lockTtlMs, DEFAULT_IDEMPOTENCY_LOCK_TTL_MS);
  const retentionMs = positiveMs("retentionMs", options.retentionMs, DEFAULT_IDEMPOTENCY_RETENTION_MS);
  const renewals = renewalsOf(options.extendLease, lockTtlMs);
  checkWait("wait", options.wait);
  // A key or fingerprint no store can hold (too long, NUL, a lone surrogate) is the caller's
  // mistake: refused here as such, not by the store as an outage the caller would retry forever.
  const claimOptions = { fingerprint, lockTtlMs };
  assertClaim(storeKey, claimOptions);
  // A store that failed is unavailable (a store set up wrong throws its own error, as it is).
  const claim = await claimKey(store, storeKey, claimOptions, options.wait).catch((error: unknown) => {
    throw asUnavailable(store, error);
  });
  if (claim.state !== "claimed") {
    const other = claim.state === "completed" ? claim.record.fingerprint : claim.fingerprint;
    if (other !== fingerprint)
      throw new IdempotencyError("idempotency_key_mismatch", `key ${options.key} was used for other input`);
    if (claim.state === "in_flight") {
      throw new IdempotencyError("request_in_flight", `key ${options.key} is running elsewhere`, {
        retryAfterSeconds: IN_FLIGHT_RETRY_AFTER_SECONDS,
      });
    }
    // Stored as {"v": value}, so an undefined result round-trips as undefined.
    const stored = JSON.parse(utf8.decode(claim.record.body)) as { v?: T };
    return { value: stored.v as T, replayed: true, recorded: true };
  }
  const release = async () => {
    await storeCall(() => store.release(storeKey, claim.token)).catch(() => {});
  };
  // A keeper per run, its timer stopped with the run: left to its next tick, every run's timer
  // outlived it by up to a third of the lease.
  const leases = new LeaseKeeper(store, lockTtlMs, renewals);
  const lease = leases.hold(storeKey, claim.token);
  const stopRenewing = () => {
    leases.release(lease);
    leases.stopIfIdle();
  };
  let value: T;
  try {
    value = await fn();
  } catch (error) {
    stopRenewing();
    await release(); // nothing written in the caller's transaction yet
    throw error;
  }
  stopRenewing();
  // The work is done whatever happens next: a failure to record it is reported, not thrown,
  // because a caller that saw an error would retry and run the work twice.
  const body = recordable(store, value);
  let recorded = false;
  if (body === undefined) {
    // No store could keep this value (not JSON, or past maxRecordBytes), so holding the key
    // would only delay the next run: let it go, as the engine does with a response too large.
    if (options.transaction === undefined) await release();
  } else {
    const completeOptions =
      options.transaction === undefined
        ? { ttlMs: retentionMs }
        : { ttlMs: retentionMs, transaction: options.transaction };
    try {
      recorded = await store.complete(storeKey, claim.token, { status: 200, headers: [], body }, completeOptions);
    } catch (error) {
      // The key stays held until its lease runs out, as the engine and the webhook receiver keep
      // theirs: the work's effects exist, so a redelivery arriving now must not run it again at
      // once (it gets request_in_flight); once the lease lapses a later run may. Inside the
      // caller's transaction the caller decides: it calls `release` after a rollback. Unless the
      // store refused the transaction as set up wrong (a transaction it cannot join, an
      // isolation level it cannot complete in): thrown, as the engine's `finish` throws it, or
      // every retry would end the same silent way. It answered before writing anything there,
      // so nothing of the caller's holds the key's row: released now, as when `fn` throws.
      if (options.transaction !== undefined && error instanceof InterlockConfigError) {
        await release();
        throw error;
      }
    }
  }
  if (options.transaction === undefined) return { value, replayed: false, recorded };
  return { value, replayed: false, recorded, release };
}
