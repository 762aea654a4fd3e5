/** Checks every store shares, so each store enforces the same contract in the same words. */

import { timerDelay } from "../clock.js";
import { utf8 } from "../encoding.js";
import { InterlockConfigError, RecordTooLargeError, StoreUnavailableError } from "../errors.js";
import type { ClaimOptions, CompleteOptions, InterlockStore, StoredResponse } from "./contract.js";

/** Longest key a store must accept, in UTF-16 code units. Longer scopes should be hashed. */
export const MAX_KEY_LENGTH = 1024;

// A lone surrogate has no UTF-8 encoding and NUL does not fit a PostgreSQL text column:
// refused by every store alike, so a key that works on one store works on all.
// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is exactly what is refused here.
const UNSTORABLE = /[\p{Cs}\u0000]/u;
// Any surrogate or NUL at all: a plain scan, several times cheaper than the Unicode one, and
// false for almost every key; only then does the exact test above run.
// biome-ignore lint/suspicious/noControlCharactersInRegex: as above.
const SUSPECT = /[\u0000\uD800-\uDFFF]/;

/**
 * Whether `text` holds NUL or a lone surrogate, which no store keeps: every store refuses such text.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function unstorable(text: string): boolean {
  return SUSPECT.test(text) && UNSTORABLE.test(text);
}

/**
 * A store option that must be a positive integer (a bound, a timeout): `fallback` when not given.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function positiveIntegerOption(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) throw new InterlockConfigError(`${name} must be a positive integer`);
  return value;
}

/** A duration option: a positive whole number of ms (what every store keeps), or `fallback` when not given. */
export function positiveMs(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0)
    throw new InterlockConfigError(`${name} must be a positive number of ms`);
  return value;
}

/** A duration option that may be 0 (a whole number of ms), or `fallback` when not given. */
export function nonNegativeMs(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 0)
    throw new InterlockConfigError(`${name} must be a whole number of ms, 0 or more`);
  return value;
}

/**
 * An option naming one of a few values: `fallback` when not given; anything else (`"base-64"`,
 * `"lru"`) is refused, never taken for another value.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function choiceOption<T extends string>(
  name: string,
  value: T | undefined,
  allowed: readonly T[],
  fallback: T,
): T {
  if (value === undefined) return fallback;
  if (!allowed.includes(value)) {
    const choices = allowed.map((a) => `"${a}"`);
    throw new InterlockConfigError(
      `${name} must be ${choices.slice(0, -1).join(", ")} or ${choices.at(-1)}, not ${givenChoice(value, allowed)}`,
    );
  }
  return value;
}

/**
 * What was given for a choice, for its error: itself when it is a misspelling of one of the
 * choices (`"Seconds"`, `"sha-256"`, `"base-64"`: at most two edits from one, case aside),
 * anything else by its type and length only (`a string of 38 characters`). A string there may be
 * a secret passed in the wrong place (`encoding: process.env.WEBHOOK_SECRET`), a short one too,
 * and errors end up in logs.
 */
function givenChoice(value: unknown, allowed: readonly string[]): string {
  if (typeof value !== "string") return typeName(value);
  const given = value.toLowerCase();
  const misspelt = allowed.some((choice) => withinTwoEdits(given, choice.toLowerCase()));
  return misspelt ? JSON.stringify(value) : unquoted(value);
}

/** Whether `a` becomes `b` in at most two insertions, deletions or substitutions (Levenshtein). */
function withinTwoEdits(a: string, b: string): boolean {
  if (Math.abs(a.length - b.length) > 2) return false;
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current[j] = Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, substitution);
    }
    previous = current;
  }
  return (previous[b.length] as number) <= 2;
}

/**
 * What was given, without its text: `a string of 38 characters`, `a number`, `undefined`. For
 * errors about a value that may be a secret put in the wrong place: errors end up in logs.
 */
export function unquoted(value: unknown): string {
  return typeof value === "string" ? `a string of ${value.length} characters` : typeName(value);
}

/** `a string`, `an object`, `undefined`, `null`: what was given, without its value. */
export function typeName(value: unknown): string {
  if (value === undefined || value === null) return String(value);
  const type = typeof value;
  return `${/^[aeiou]/.test(type) ? "an" : "a"} ${type}`;
}

/**
 * RFC 9110 §5.6.2: a token, which every header name and method is.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export const HTTP_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

const STORE_METHODS = ["claim", "complete", "release", "extend"] as const;

/**
 * The `store` option, checked once at set-up. A store missing a method (a typo in a custom
 * store, the `memoryStore` factory passed uncalled) would otherwise fail at its first use, as
 * an outage (503 forever) or worse: a delivery whose `complete` is missing is processed,
 * never recorded, and processed again on its redelivery.
 */
export function storeOption(store: unknown): InterlockStore {
  const missing = (what: string) =>
    new InterlockConfigError(
      `store ${what}: a store is an object with claim, complete, release and extend methods, a name and ` +
        'a positive maxRecordBytes, such as memoryStore() (docs/stores.md, "The contract")',
    );
  if (typeof store !== "object" || store === null)
    throw missing(
      store === undefined
        ? "is missing"
        : `is ${typeof store === "function" ? "a function (call it?)" : String(store)}`,
    );
  const candidate = store as Record<string, unknown>;
  for (const method of STORE_METHODS)
    if (typeof candidate[method] !== "function") throw missing(`has no ${method}() method`);
  if (typeof candidate.name !== "string") throw missing("has no name");
  const limit = candidate.maxRecordBytes;
  if (typeof limit !== "number" || !(limit > 0)) throw missing("has no positive maxRecordBytes");
  return store as InterlockStore;
}

/**
 * The longest delay a timer takes (2^31 - 1 ms, about 24.8 days): past it, Node fires it after 1 ms.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export const MAX_TIMEOUT_MS = 2_147_483_647;

/**
 * A timeout option in ms, 1 to `MAX_TIMEOUT_MS`: `fallback` when not given. A longer one would
 * time every operation out at once.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function timeoutOption(name: string, value: number | undefined, fallback: number): number {
  const ms = positiveIntegerOption(name, value, fallback);
  if (ms > MAX_TIMEOUT_MS) throw new InterlockConfigError(`${name} must be at most ${MAX_TIMEOUT_MS} ms`);
  return ms;
}

// The key last found valid: a claim's key comes back to complete or release it, and an equal
// string is valid without another scan.
let lastValidKey = "-";

/** Throws `InterlockConfigError` for a key no store accepts: empty, too long, or holding NUL or a lone surrogate. */
export function assertKey(key: string): void {
  if (key === lastValidKey) return;
  if (typeof key !== "string" || key.length === 0 || key.length > MAX_KEY_LENGTH) {
    throw new InterlockConfigError(`store keys must be 1..${MAX_KEY_LENGTH} characters`);
  }
  if (unstorable(key)) throw new InterlockConfigError("store keys must not hold NUL or lone surrogates");
  lastValidKey = key;
}

/** For stores that cannot write inside the caller's transaction. */
export function refuseTransaction(store: string, options: CompleteOptions): void {
  if (options.transaction !== undefined) {
    throw new InterlockConfigError(`the ${store} store cannot complete inside a transaction`);
  }
}

function assertTtl(name: string, ms: number): void {
  if (!Number.isSafeInteger(ms) || ms <= 0)
    throw new InterlockConfigError(`${name} must be a positive whole number of ms`);
}

/** `assertKey`, plus a storable fingerprint and a positive whole `lockTtlMs`. */
export function assertClaim(key: string, options: ClaimOptions): void {
  assertKey(key);
  if (typeof options?.fingerprint !== "string" || unstorable(options.fingerprint)) {
    throw new InterlockConfigError("fingerprint must be a string without NUL or lone surrogates");
  }
  assertTtl("lockTtlMs", options.lockTtlMs);
}

/**
 * Bytes a response takes in a store: body plus the header text's UTF-8 bytes (what every store
 * writes; a count of UTF-16 code units would take `é` as one byte and `🔑` as two).
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function responseSize(response: StoredResponse): number {
  let size = response.body.length;
  for (const [name, value] of response.headers) size += utf8.byteLength(name) + utf8.byteLength(value);
  return size;
}

/**
 * Whether a response takes at most `limit` bytes in a store (`responseSize`), counted exactly only
 * when the bound of 3 bytes per UTF-16 unit does not settle it: a response far under the limit,
 * almost every one, is judged without a pass over its header text.
 */
export function fitsRecord(response: StoredResponse, limit: number): boolean {
  let bound = response.body.length;
  for (const [name, value] of response.headers) bound += 3 * (name.length + value.length);
  return bound <= limit || responseSize(response) <= limit;
}

/**
 * `text`'s UTF-8 bytes as a store writes them, or -1 when no store can (`unstorable`: NUL or a
 * lone surrogate). One pass over the text, where a header's check and its size were a regular
 * expression and a loop each. `utf8.byteLength`'s loop but for a lone surrogate, which that
 * counts as the 3 bytes of U+FFFD an encoder writes in its place.
 */
export function storedByteLength(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) {
      if (unit === 0) return -1;
    } else if (unit < 0x800) bytes += 1;
    else if (unit < 0xd800 || unit > 0xdfff) bytes += 2;
    else {
      // A high surrogate then a low one: four bytes for the two units. A lone half has no UTF-8.
      const next = text.charCodeAt(i + 1);
      if (unit > 0xdbff || !(next >= 0xdc00 && next <= 0xdfff)) return -1;
      bytes += 2;
      i++;
    }
  }
  return bytes;
}

/**
 * The header text's bytes in a store (see `responseSize`), or -1 unless every header is a
 * [name, value] pair of strings (anything else would size as NaN) that every store can hold: no
 * NUL, no lone surrogate. One store refusing what the others keep would make a response
 * replayable on some stores and not others.
 */
function storedHeaderBytes(headers: StoredResponse["headers"]): number {
  let size = 0;
  for (const pair of headers) {
    if (!Array.isArray(pair) || pair.length !== 2) return -1;
    const name: unknown = pair[0];
    const value: unknown = pair[1];
    if (typeof name !== "string" || typeof value !== "string") return -1;
    const nameBytes = storedByteLength(name);
    const valueBytes = storedByteLength(value);
    if (nameBytes < 0 || valueBytes < 0) return -1;
    size += nameBytes + valueBytes;
  }
  return size;
}

/** Checks a completion and returns the record's size (see `responseSize`). */
export function assertComplete(
  store: { name: string; maxRecordBytes: number },
  key: string,
  response: StoredResponse,
  options: CompleteOptions,
): number {
  assertKey(key);
  return completionSize(store, response, options);
}

/** `assertComplete` but for the key: for a store that checks it only when no lock of its own vouches for it. */
export function completionSize(
  store: { name: string; maxRecordBytes: number },
  response: StoredResponse,
  options: CompleteOptions,
): number {
  assertTtl("ttlMs", options?.ttlMs);
  const headerBytes = Array.isArray(response?.headers) ? storedHeaderBytes(response.headers) : -1;
  if (!isHttpStatus(response?.status) || !(response.body instanceof Uint8Array) || headerBytes < 0) {
    throw new InterlockConfigError(
      "a stored response needs a three-digit status, [name, value] header pairs of strings (without U+0000 or unpaired surrogates) and a Uint8Array body",
    );
  }
  const size = response.body.length + headerBytes;
  if (size > store.maxRecordBytes) {
    throw new RecordTooLargeError(`record of ${size} bytes exceeds the ${store.name} store's ${store.maxRecordBytes}`);
  }
  return size;
}

/**
 * A status code as HTTP has them, three digits (RFC 9110 §15): what every store can keep, where
 * a column of 32-bit integers (PostgreSQL's) would refuse a larger number with a database error.
 */
function isHttpStatus(status: unknown): boolean {
  return Number.isInteger(status) && (status as number) >= 100 && (status as number) <= 999;
}

/**
 * A claim's failure, typed: a store that throws something else is still unavailable. A store
 * set up wrong (`InterlockConfigError`: a table never created) is no outage: its error is thrown
 * as it is, to the app's error handling, naming the fix, never answered 503 nor let through
 * under `failOpen`.
 */
export function asUnavailable(store: InterlockStore, error: unknown): StoreUnavailableError {
  if (error instanceof StoreUnavailableError) return error;
  if (error instanceof InterlockConfigError) throw error;
  return new StoreUnavailableError(store.name, failureMessage(error), { cause: error });
}

/**
 * Calls one store operation, turning a synchronous throw into a rejection: a store's method
 * may throw before it returns its promise, and a caller that only handles the rejection would
 * let the throw escape (from a timer, as an uncaught exception).
 */
export function storeCall<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return operation();
  } catch (error) {
    return Promise.reject(error);
  }
}

/** How a release went: `released` unless the store call failed, and then why. */
export type ReleaseOutcome = { released: true } | { released: false; error: unknown };

const RELEASED: ReleaseOutcome = Object.freeze({ released: true });

/**
 * Releases a claim: `released` unless the store call failed. A lease already lost makes the
 * store answer false, but the store worked and the key is free for the retry, so events that
 * say `released` mean "the store call did not fail", for the idempotency engine and webhooks alike.
 */
export function releaseClaim(store: InterlockStore, key: string, token: string): Promise<ReleaseOutcome> {
  return storeCall(() => store.release(key, token)).then(
    () => RELEASED,
    (error: unknown) => ({ released: false, error }),
  );
}

/** The message of a store failure, for an event. */
export function failureMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Runs one store operation within `timeoutMs`. Anything but an answer in time (a driver
 * error, a synchronous throw, a command still queued while the client reconnects, a server
 * that stopped answering) becomes a `StoreUnavailableError` naming the operation: callers fail
 * closed, never with a false win and never hanging. An `InterlockConfigError` the call throws (a
 * table that was never created) goes through as it is: no outage, a fix to make. For store and
 * token-store implementations.
 */
export async function boundedStoreCall<T>(
  store: string,
  operation: string,
  timeoutMs: number,
  call: () => PromiseLike<T>,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new StoreUnavailableError(store, `${operation} got no answer in ${timeoutMs} ms`)),
      timerDelay(timeoutMs),
    );
  });
  try {
    return await Promise.race([call(), timeout]);
  } catch (error) {
    if (error instanceof StoreUnavailableError || error instanceof InterlockConfigError) throw error;
    throw new StoreUnavailableError(store, `${operation} failed: ${failureMessage(error)}`, { cause: error });
  } finally {
    clearTimeout(timer);
  }
}
