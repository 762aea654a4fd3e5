/**
 * The embedded store: one process, no dependencies. Bounded by entries and bytes, expiry
 * without a timer per key (expired entries are dropped when touched, and a few of the oldest
 * are checked on every write), O(1) operations, and a live lock is never evicted: when every
 * slot holds one, a new claim is refused as unavailable rather than breaking a lock.
 *
 * Built for throughput (bench/stores-memory.mjs measures claim+complete pairs a second):
 * one entry object per key that goes from lock to record in place, a two-generation index
 * that evicts without deleting from a large Map (generations.ts), and header pairs kept flat.
 * Each body is its own copy: bodies packed into shared chunks would be faster, but a chunk
 * lives as long as its longest-lived record, so records of mixed retention could hold many
 * times `maxBytes`; the bound comes first.
 */

import { InterlockConfigError, StoreUnavailableError } from "../errors.js";
import type {
  ClaimOptions,
  ClaimResult,
  CompleteOptions,
  InterlockStore,
  StoredRecord,
  StoredResponse,
} from "./contract.js";
import { Generations } from "./generations.js";
import { assertClaim, assertComplete, assertKey, positiveIntegerOption, refuseTransaction } from "./validate.js";

/** The memory store's bounds and clock. */
export interface MemoryStoreOptions {
  /** Most keys held (locks and records). Default 100,000. */
  maxEntries?: number;
  /** Most bytes of records held. Default 64 MiB. */
  maxBytes?: number;
  /** Largest single record. Default 1 MiB. */
  maxRecordBytes?: number;
  /** Clock in ms since the epoch. Default `Date.now`. */
  now?: () => number;
}

const LOCKED = 0;
const COMPLETED = 1;
const GONE = 2;

/**
 * One key's state, a lock that becomes a record in place: one object per key, with every
 * field set from the start so all entries share one shape.
 */
interface Entry {
  state: typeof LOCKED | typeof COMPLETED | typeof GONE;
  /** The fencing token while locked; "" once completed. */
  token: string;
  fingerprint: string;
  createdAt: number;
  completedAt: number;
  /** Lease end while locked, retention end once completed. */
  expiresAt: number;
  status: number;
  /** Header names and values, flat: [name, value, name, value, …]. */
  headers: string[];
  /** The store's own copy of the body. */
  body: Uint8Array;
  bytes: number;
}

/** Expired entries examined per write, from the oldest: keeps memory tidy at O(1) cost. */
const SWEEP_PER_WRITE = 2;

let instances = 0;

function flatHeaders(headers: StoredResponse["headers"]): string[] {
  const flat = new Array<string>(headers.length * 2);
  for (let i = 0; i < headers.length; i++) {
    const pair = headers[i] as readonly [string, string];
    flat[2 * i] = pair[0];
    flat[2 * i + 1] = pair[1];
  }
  return flat;
}

function headerPairs(flat: string[]): Array<[string, string]> {
  const pairs = new Array<[string, string]>(flat.length / 2);
  for (let i = 0; i < pairs.length; i++) pairs[i] = [flat[2 * i] as string, flat[2 * i + 1] as string];
  return pairs;
}

const EMPTY = new Uint8Array(0);
const NO_HEADERS: string[] = [];

/**
 * The in-process store: bounded by entries and bytes, never evicting a live lock, with expiry
 * and no timer per key. One process only: for several, use the Redis or PostgreSQL store.
 */
export class MemoryStore implements InterlockStore {
  readonly name = "memory";
  readonly maxRecordBytes: number;
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  readonly #now: () => number;
  readonly #entries = new Generations<Entry>();
  /** Live entries (locks and records). */
  #size = 0;
  #bytes = 0;
  // Tokens only need to be unique within this process; a counter is cheaper than randomness.
  readonly #tokenPrefix = `m${++instances}.`;
  #tokens = 0;

  constructor(options: MemoryStoreOptions = {}) {
    this.#maxEntries = positiveIntegerOption("maxEntries", options.maxEntries, 100_000);
    this.#maxBytes = positiveIntegerOption("maxBytes", options.maxBytes, 64 * 1024 * 1024);
    this.maxRecordBytes = positiveIntegerOption("maxRecordBytes", options.maxRecordBytes, 1024 * 1024);
    if (this.maxRecordBytes > this.#maxBytes) throw new InterlockConfigError("maxRecordBytes cannot exceed maxBytes");
    this.#now = options.now ?? Date.now;
  }

  /** Keys held now (locks and records), for tests and metrics. */
  get size(): number {
    return this.#size;
  }

  async claim(key: string, options: ClaimOptions): Promise<ClaimResult> {
    assertClaim(key, options);
    const now = this.#now();
    const found = this.#live(key);
    if (found !== undefined) {
      if (found.expiresAt > now) {
        return found.state === COMPLETED
          ? { state: "completed", record: this.#record(found) }
          : { state: "in_flight", fingerprint: found.fingerprint, lockExpiresAt: found.expiresAt };
      }
      this.#remove(key, found);
    }
    this.#sweep(now);
    this.#makeRoom(now);
    const token = this.#tokenPrefix + ++this.#tokens;
    this.#entries.add(key, {
      state: LOCKED,
      token,
      fingerprint: options.fingerprint,
      createdAt: now,
      completedAt: 0,
      expiresAt: now + options.lockTtlMs,
      status: 0,
      headers: NO_HEADERS,
      bytes: 0,
      body: EMPTY,
    });
    this.#size++;
    return { state: "claimed", token };
  }

  async complete(key: string, token: string, response: StoredResponse, options: CompleteOptions): Promise<boolean> {
    const bytes = assertComplete(this, key, response, options);
    refuseTransaction(this.name, options);
    const now = this.#now();
    const entry = this.#liveLock(key, token, now);
    if (entry === undefined) return false;
    entry.state = COMPLETED;
    entry.token = "";
    entry.status = response.status;
    entry.headers = flatHeaders(response.headers);
    // A copy: the caller may reuse its buffer once this returns.
    entry.body = response.body.slice();
    entry.completedAt = now;
    entry.expiresAt = now + options.ttlMs;
    entry.bytes = bytes;
    this.#bytes += bytes;
    while (this.#bytes > this.#maxBytes && this.#evictOldest(now)) {}
    return true;
  }

  async release(key: string, token: string): Promise<boolean> {
    assertKey(key);
    const entry = this.#liveLock(key, token, this.#now());
    if (entry === undefined) return false;
    this.#remove(key, entry);
    return true;
  }

  async extend(key: string, token: string, lockTtlMs: number): Promise<boolean> {
    assertClaim(key, { fingerprint: "", lockTtlMs });
    const now = this.#now();
    const entry = this.#liveLock(key, token, now);
    if (entry === undefined) return false;
    entry.expiresAt = now + lockTtlMs;
    return true;
  }

  async close(): Promise<void> {
    this.#entries.clear();
    this.#size = 0;
    this.#bytes = 0;
  }

  /** The entry for `key` unless it is gone (expired entries are returned: the caller decides). */
  #live(key: string): Entry | undefined {
    const entry = this.#entries.get(key);
    return entry !== undefined && entry.state !== GONE ? entry : undefined;
  }

  /** The lock on `key` if `token` holds it and its lease has not ended. */
  #liveLock(key: string, token: string, now: number): Entry | undefined {
    const entry = this.#entries.get(key);
    return entry !== undefined && entry.state === LOCKED && entry.token === token && entry.expiresAt > now
      ? entry
      : undefined;
  }

  #record(entry: Entry): StoredRecord {
    return {
      status: entry.status,
      headers: headerPairs(entry.headers),
      body: entry.body.slice(),
      fingerprint: entry.fingerprint,
      createdAt: entry.createdAt,
      completedAt: entry.completedAt,
    };
  }

  /** Marks an entry gone and lets go of its body; the index entry is left for the walk. */
  #drop(entry: Entry): void {
    if (entry.state === COMPLETED) this.#bytes -= entry.bytes;
    entry.state = GONE;
    entry.headers = NO_HEADERS;
    entry.body = EMPTY;
    this.#size--;
  }

  /** Drops an entry and takes it out of the index at once (off the hot path). */
  #remove(key: string, entry: Entry): void {
    this.#drop(entry);
    this.#entries.delete(key, entry);
  }

  /** Drops up to a few expired entries from the oldest end; stops at the first live record. */
  #sweep(now: number): void {
    for (let budget = SWEEP_PER_WRITE; budget > 0; budget--) {
      const oldest = this.#entries.oldest();
      if (oldest === undefined) return;
      const entry = oldest[1];
      if (entry.state === GONE) this.#entries.pass();
      else if (entry.expiresAt <= now) {
        this.#drop(entry);
        this.#entries.pass();
      } else if (entry.state === LOCKED) this.#entries.carry();
      else return;
    }
  }

  /** Frees a slot for one more key by evicting the oldest records; live locks are never evicted. */
  #makeRoom(now: number): void {
    while (this.#size >= this.#maxEntries) {
      if (!this.#evictOldest(now)) {
        throw new StoreUnavailableError(this.name, `full: ${this.#size} operations in flight (maxEntries)`);
      }
    }
  }

  /**
   * Frees the oldest entry that may go (a record, or an expired lock), carrying live locks
   * forward. False when nothing can go: every entry is a live lock.
   */
  #evictOldest(now: number): boolean {
    // Each physical entry is visited at most twice (once before and once after being carried).
    for (let visits = 2 * this.#entries.held + 2; visits > 0; visits--) {
      const oldest = this.#entries.oldest();
      if (oldest === undefined) return false;
      const entry = oldest[1];
      if (entry.state === GONE) {
        this.#entries.pass();
      } else if (entry.state === LOCKED && entry.expiresAt > now) {
        this.#entries.carry();
      } else {
        this.#drop(entry);
        this.#entries.pass();
        return true;
      }
    }
    return false;
  }
}

/** `new MemoryStore(options)`. */
export function memoryStore(options?: MemoryStoreOptions): MemoryStore {
  return new MemoryStore(options);
}
