/**
 * The store contract: one atomic "claim" that serves webhook de-duplication and idempotency.
 *
 * - `claim` is atomic: among any number of concurrent callers, in any number of processes,
 *   exactly one wins and receives a fencing token; the others learn "in flight" or
 *   "completed" (with the record).
 * - `complete` and `release` succeed only for the current token, so a worker whose lease
 *   expired cannot overwrite the worker that took over.
 * - A token holds its lock until the lease (`lockTtlMs`) ends, and not after: a lock never
 *   completed expires then, so a crashed worker blocks its key for one lease, not for the
 *   record's retention, and a late `complete` from that worker returns false.
 * - A completed record expires after its retention (`ttlMs`).
 *
 * - A store that cannot answer rejects with `StoreUnavailableError`. Its outcome is unknown
 *   (a claim may have reached the server before the connection failed): callers treat it as
 *   "not done", and an orphaned lock simply expires with its lease.
 *
 * Keys and fingerprints are well-formed strings (no lone surrogates); keys are at most
 * `MAX_KEY_LENGTH` characters. Small on purpose: a store is four methods. Prove yours with
 * `@interlock/core/testing`.
 */

/** What a completed operation left behind: the response to replay, or the webhook outcome. */
export interface StoredResponse {
  /** The status code. */
  status: number;
  /** Header name/value pairs, in order; a name may repeat. */
  headers: ReadonlyArray<readonly [string, string]>;
  /** The body's bytes. */
  body: Uint8Array;
}

export interface StoredRecord extends StoredResponse {
  /** Fingerprint of the request that produced the record. */
  fingerprint: string;
  /** When the winning claim was made, in ms since the epoch (store clock). */
  createdAt: number;
  /** When the record was completed, in ms since the epoch (store clock). */
  completedAt: number;
}

/** What a claim asks for. */
export interface ClaimOptions {
  /** Identifies the request's content, so a different request under the same key is detected. */
  fingerprint: string;
  /** Lease on the lock in milliseconds: after it, another caller may claim the key. */
  lockTtlMs: number;
}

/** A claim's answer: this caller won, another holds the key, or the work is already done. */
export type ClaimResult =
  | {
      /** This caller won: run the operation, then `complete` or `release` with the token. */
      state: "claimed";
      /** The fencing token: only it can complete, release or extend this lock. */
      token: string;
    }
  | {
      /** Another caller holds a live lock on the key. */
      state: "in_flight";
      /** The holder's fingerprint, to tell a concurrent copy from a different request. */
      fingerprint: string;
      /** When the holder's lease ends (ms since the epoch, store clock), if the store knows. */
      lockExpiresAt: number | undefined;
    }
  | {
      /** The operation already completed: here is what it left. */
      state: "completed";
      /** The stored record. */
      record: StoredRecord;
    };

/** How a completed record is kept. */
export interface CompleteOptions {
  /** Retention of the completed record in milliseconds. */
  ttlMs: number;
  /**
   * The caller's open transaction, for stores that can write the record inside it (the
   * PostgreSQL store takes a `PoolClient` after `BEGIN`): the business write and the stored
   * response then commit or roll back together. Stores that cannot join a transaction
   * refuse one with `InterlockConfigError` rather than pretend.
   */
  transaction?: unknown;
}

/**
 * The store contract: four methods serving webhook de-duplication and idempotency alike. See
 * the module comment above for the guarantees each must keep, and prove a store with
 * `describeStoreConformance` from `@interlock/core/testing`.
 */
export interface InterlockStore {
  /** A short name for errors and events ("memory", "redis", "postgres", …). */
  readonly name: string;
  /** Largest body (bytes) this store keeps in one record; larger ones are refused. */
  readonly maxRecordBytes: number;
  /** Atomically takes the key, or reports who holds it or what it completed with. */
  claim(key: string, options: ClaimOptions): Promise<ClaimResult>;
  /** Stores the record if `token` still holds the lock; false when it no longer does. */
  complete(key: string, token: string, response: StoredResponse, options: CompleteOptions): Promise<boolean>;
  /** Drops the lock so the key can be claimed again; false when `token` no longer holds it. */
  release(key: string, token: string): Promise<boolean>;
  /** Extends a live lock's lease; false when `token` no longer holds it. */
  extend(key: string, token: string, lockTtlMs: number): Promise<boolean>;
  /** Releases connections or timers the store owns (never the client the user passed in). */
  close?(): Promise<void>;
}
