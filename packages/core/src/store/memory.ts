/**
 * The embedded store: one process, no dependencies. Bounded by entries and bytes, expiry
 * without a timer per key (expired entries are dropped when touched, and a few of the oldest
 * are checked on every write), O(1) operations, and a live lock is never evicted: when every
 * slot holds one, a new claim is refused as unavailable rather than breaking a lock.
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
import { assertClaim, assertComplete, assertKey, refuseTransaction, responseSize } from "./validate.js";

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

interface Lock {
  token: string;
  fingerprint: string;
  createdAt: number;
  expiresAt: number;
}

/** A record as kept: flat, one object per key (fewer objects to allocate and to collect). */
interface Entry extends StoredRecord {
  expiresAt: number;
  bytes: number;
}

/** Expired entries examined per write, from the oldest: keeps memory tidy at O(1) cost. */
const SWEEP_PER_WRITE = 2;

let instances = 0;

/**
 * The oldest entry of a Map, in O(1) amortised. Iterating a Map from its start after deleting
 * its first entries walks every deleted slot again (V8 keeps them until it rehashes), which
 * turns "evict the oldest" into O(n); one long-lived iterator walks each slot once.
 */
class OldestFirst<K, V> {
  readonly #map: Map<K, V>;
  #iterator: IterableIterator<[K, V]> | undefined;
  #head: [K, V] | undefined;

  constructor(map: Map<K, V>) {
    this.#map = map;
  }

  peek(): [K, V] | undefined {
    if (this.#map.size === 0) return undefined;
    let restarted = false;
    for (;;) {
      // The head is still valid if its key still maps to the very same value object.
      if (this.#head !== undefined && this.#map.get(this.#head[0]) === this.#head[1]) return this.#head;
      this.#iterator ??= this.#map.entries();
      const next = this.#iterator.next();
      if (next.done) {
        // A finished iterator never sees later insertions: start over from the oldest, once.
        this.#iterator = undefined;
        this.#head = undefined;
        if (restarted) return undefined;
        restarted = true;
        continue;
      }
      this.#head = next.value;
    }
  }
}

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) throw new InterlockConfigError(`${name} must be a positive integer`);
  return value;
}

const copyHeaders = (headers: StoredResponse["headers"]) => headers.map(([n, v]) => [n, v] as const);

export class MemoryStore implements InterlockStore {
  readonly name = "memory";
  readonly maxRecordBytes: number;
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  readonly #now: () => number;
  // Map iteration order is insertion order: the first entries are the oldest.
  readonly #locks = new Map<string, Lock>();
  readonly #records = new Map<string, Entry>();
  readonly #oldestLock = new OldestFirst(this.#locks);
  readonly #oldestRecord = new OldestFirst(this.#records);
  #bytes = 0;
  // Tokens only need to be unique within this process; a counter is cheaper than randomness.
  readonly #tokenPrefix = `m${++instances}.`;
  #tokens = 0;

  constructor(options: MemoryStoreOptions = {}) {
    this.#maxEntries = positiveInteger("maxEntries", options.maxEntries, 100_000);
    this.#maxBytes = positiveInteger("maxBytes", options.maxBytes, 64 * 1024 * 1024);
    this.maxRecordBytes = positiveInteger("maxRecordBytes", options.maxRecordBytes, 1024 * 1024);
    if (this.maxRecordBytes > this.#maxBytes) throw new InterlockConfigError("maxRecordBytes cannot exceed maxBytes");
    this.#now = options.now ?? Date.now;
  }

  /** Keys held now (locks and records), for tests and metrics. */
  get size(): number {
    return this.#locks.size + this.#records.size;
  }

  async claim(key: string, options: ClaimOptions): Promise<ClaimResult> {
    assertClaim(key, options);
    const now = this.#now();
    const entry = this.#records.get(key);
    if (entry !== undefined) {
      if (entry.expiresAt > now) return { state: "completed", record: this.#copy(entry) };
      this.#dropRecord(key, entry);
    }
    const lock = this.#locks.get(key);
    if (lock !== undefined) {
      if (lock.expiresAt > now)
        return { state: "in_flight", fingerprint: lock.fingerprint, lockExpiresAt: lock.expiresAt };
      this.#locks.delete(key);
    }
    this.#sweep(now);
    this.#makeRoom(1);
    const token = this.#tokenPrefix + ++this.#tokens;
    this.#locks.set(key, {
      token,
      fingerprint: options.fingerprint,
      createdAt: now,
      expiresAt: now + options.lockTtlMs,
    });
    return { state: "claimed", token };
  }

  async complete(key: string, token: string, response: StoredResponse, options: CompleteOptions): Promise<boolean> {
    assertComplete(this, key, response, options);
    refuseTransaction(this.name, options);
    const now = this.#now();
    const lock = this.#liveLock(key, token, now);
    if (lock === undefined) return false;
    this.#locks.delete(key);
    const bytes = responseSize(response);
    this.#records.set(key, {
      status: response.status,
      headers: copyHeaders(response.headers),
      body: response.body.slice(),
      fingerprint: lock.fingerprint,
      createdAt: lock.createdAt,
      completedAt: now,
      expiresAt: now + options.ttlMs,
      bytes,
    });
    this.#bytes += bytes;
    this.#evictRecordsOver(this.#maxBytes, this.#maxEntries);
    return true;
  }

  async release(key: string, token: string): Promise<boolean> {
    assertKey(key);
    if (this.#liveLock(key, token, this.#now()) === undefined) return false;
    this.#locks.delete(key);
    return true;
  }

  async extend(key: string, token: string, lockTtlMs: number): Promise<boolean> {
    assertClaim(key, { fingerprint: "", lockTtlMs });
    const now = this.#now();
    const lock = this.#liveLock(key, token, now);
    if (lock === undefined) return false;
    lock.expiresAt = now + lockTtlMs;
    return true;
  }

  /** The lock on `key` if `token` holds it and its lease has not ended. */
  #liveLock(key: string, token: string, now: number): Lock | undefined {
    const lock = this.#locks.get(key);
    return lock !== undefined && lock.token === token && lock.expiresAt > now ? lock : undefined;
  }

  async close(): Promise<void> {
    this.#locks.clear();
    this.#records.clear();
    this.#bytes = 0;
  }

  #copy(entry: Entry): StoredRecord {
    return {
      status: entry.status,
      headers: copyHeaders(entry.headers),
      body: entry.body.slice(),
      fingerprint: entry.fingerprint,
      createdAt: entry.createdAt,
      completedAt: entry.completedAt,
    };
  }

  #dropRecord(key: string, entry: Entry): void {
    this.#records.delete(key);
    this.#bytes -= entry.bytes;
  }

  #sweep(now: number): void {
    for (let budget = SWEEP_PER_WRITE; budget > 0; budget--) {
      const oldest = this.#oldestRecord.peek();
      if (oldest === undefined || oldest[1].expiresAt > now) break;
      this.#dropRecord(oldest[0], oldest[1]);
    }
    for (let budget = SWEEP_PER_WRITE; budget > 0; budget--) {
      const oldest = this.#oldestLock.peek();
      if (oldest === undefined || oldest[1].expiresAt > now) break;
      this.#locks.delete(oldest[0]);
    }
  }

  /** Frees `slots` entries by evicting the oldest records; live locks are never evicted. */
  #makeRoom(slots: number): void {
    this.#evictRecordsOver(this.#maxBytes, this.#maxEntries - slots);
    if (this.size + slots > this.#maxEntries) {
      // Only locks are left. Drop the expired ones still held (a rare, full pass); if all are live, refuse.
      const now = this.#now();
      for (const [key, lock] of this.#locks) if (lock.expiresAt <= now) this.#locks.delete(key);
      if (this.size + slots > this.#maxEntries) {
        throw new StoreUnavailableError(this.name, `full: ${this.#locks.size} operations in flight (maxEntries)`);
      }
    }
  }

  #evictRecordsOver(maxBytes: number, maxEntries: number): void {
    while (this.#bytes > maxBytes || this.size > maxEntries) {
      const oldest = this.#oldestRecord.peek();
      if (oldest === undefined) return;
      this.#dropRecord(oldest[0], oldest[1]);
    }
  }
}

export function memoryStore(options?: MemoryStoreOptions): MemoryStore {
  return new MemoryStore(options);
}
