/**
 * The token store contract: text values under keys, each write carrying a new version, and one
 * atomic compare-and-set. Everything the package keeps goes through it (pending logins, session
 * token sets, client-credentials tokens) and so does every lock (a lock is an entry written only if
 * none exists, see ./lock.ts): a store is three methods.
 *
 * - `get` returns the live value and its version, or undefined (never written, deleted, expired).
 * - `set` with `expect` writes only if the key's live version is still `expect` (`null`: only if
 *   there is no live value). Among any number of concurrent writers with the same expectation, in
 *   any number of processes, exactly one succeeds. Without `expect` it writes unconditionally.
 * - Every successful write returns a new version, never reused for the key, and every value
 *   expires after its `ttlMs`.
 * - A store that cannot answer rejects with core's `StoreUnavailableError`.
 *
 * Values are opaque text (sealed with AES-256-GCM where they hold secrets): a store never parses them.
 */

import { InterlockConfigError, unstorable } from "@interlock/core";

/** A live value and its version. */
export interface TokenStoreEntry {
  /** The value, as written (opaque text). */
  value: string;
  /** The version of this write, for `expect`. */
  version: string;
}

/** How a value is written. */
export interface TokenStoreSetOptions {
  /** How long the value lives, in ms. */
  ttlMs: number;
  /**
   * Write only if the live version is this one; `null`: only if there is no live value. Omitted:
   * write whatever is there.
   */
  expect?: string | null;
}

/**
 * The token store contract: three methods, with one atomic compare-and-set (see the module
 * comment above for the guarantees).
 */
export interface TokenStore {
  /** A short name for errors ("memory", "redis", "postgres", …). */
  readonly name: string;
  /**
   * The longest one call lasts, in ms, before it rejects (`StoreUnavailableError`). A session's
   * refresh makes store calls under its lock, whose lease (`lockTtlMs`) leaves them that long
   * each. Undefined: 2,000 ms is assumed, the Redis and PostgreSQL stores' default.
   */
  readonly operationTimeoutMs?: number | undefined;
  /** The live value and its version; undefined when never written, deleted or expired. */
  get(key: string): Promise<TokenStoreEntry | undefined>;
  /** The new version, or undefined when `expect` did not hold (nothing was written). */
  set(key: string, value: string, options: TokenStoreSetOptions): Promise<string | undefined>;
  /** Deletes the live value (only if its version is `expect`, when given); true when one was deleted. */
  delete(key: string, expect?: string): Promise<boolean>;
  /** Releases what the store owns (timers, connections it opened); never the client the user passed in. */
  close?(): Promise<void>;
}

/** Longest key a store must accept, in UTF-16 code units. */
export const MAX_TOKEN_KEY_LENGTH = 512;

/** The checks every store makes on its arguments, in the same words. */
export function assertEntryKey(key: string): void {
  if (typeof key !== "string" || key.length === 0 || key.length > MAX_TOKEN_KEY_LENGTH) {
    throw new InterlockConfigError(`token store keys must be 1..${MAX_TOKEN_KEY_LENGTH} characters`);
  }
  if (unstorable(key)) throw new InterlockConfigError("token store keys must not hold NUL or lone surrogates");
}

/** Whether a store can hold `key`: for keys made of outside input, where a bad one is no entry, not a bug. */
export function isEntryKey(key: string): boolean {
  try {
    assertEntryKey(key);
    return true;
  } catch {
    return false;
  }
}

export function assertSet(key: string, value: string, options: TokenStoreSetOptions): void {
  assertEntryKey(key);
  if (typeof value !== "string" || unstorable(value)) {
    throw new InterlockConfigError("token store values must be strings without NUL or lone surrogates");
  }
  if (!Number.isSafeInteger(options?.ttlMs) || options.ttlMs <= 0) {
    throw new InterlockConfigError("ttlMs must be a positive whole number of ms");
  }
  const { expect } = options;
  if (expect !== undefined && expect !== null && typeof expect !== "string") {
    throw new InterlockConfigError("expect must be a version string, null or omitted");
  }
}

/** A fresh version: random, so a version is never reused for a key, even across processes. */
export const newVersion = (): string => crypto.randomUUID();
