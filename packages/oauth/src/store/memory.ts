/**
 * The memory token store: one process only (tests, a single instance, the in-process default
 * cache). Expiry is checked when a key is read, without a timer per key; the number of entries is
 * bounded, the least recently written going first (expired entries are among the oldest).
 *
 * An entry's lifetime is a duration, timed by default on monotonic time: `Date.now()` steps when
 * the system clock is set (NTP, a VM resumed from a snapshot), and a step forward past a refresh
 * lock's lease would end the lock while its request is still at the token endpoint, letting a
 * second caller send the same refresh token (a rotating server then ends the grant). The times
 * inside the records (a token's `expiresAt`) are the system clock's all the same: the store
 * never reads them.
 */

import { assertOptionNames, checkedClock, monotonicClock, optionNames, positiveIntegerOption } from "@interlock/core";
import {
  assertEntryKey,
  assertSet,
  newVersion,
  type TokenStore,
  type TokenStoreEntry,
  type TokenStoreSetOptions,
} from "./contract.js";

/** The memory token store's bound and time source. */
export interface MemoryTokenStoreOptions {
  /** Most entries kept. Default 100,000. */
  maxEntries?: number;
  /**
   * The clock entries' lifetimes are timed on, in milliseconds; for tests that move time.
   * Default monotonic time (`performance.now()`), which a system clock set forward or back does
   * not move, read from the `performance` in place when the store is made (a store made before a
   * test fakes timers keeps the real clock). Not a function: `InterlockConfigError`; a reading
   * that is not a finite number fails the call with one, rather than letting every entry (a
   * refresh lock among them) pass for live or for expired.
   */
  now?: () => number;
}

const MEMORY_TOKEN_STORE_OPTION_NAMES = optionNames<MemoryTokenStoreOptions>({ maxEntries: true, now: true });

interface Slot extends TokenStoreEntry {
  expiresAt: number;
}

/** The in-process token store: one process only, bounded, the least recently written entries dropped first. */
export class MemoryTokenStore implements TokenStore {
  readonly name = "memory";
  /** Its calls are answered in this process, at once: a refresh lock's lease needs no room for them. */
  readonly operationTimeoutMs = 0;
  /** Most entries kept. */
  readonly maxEntries: number;
  readonly #now: () => number;
  // Map order is write order: a write deletes and re-inserts, so the first entry is the oldest.
  readonly #slots = new Map<string, Slot>();

  constructor(options: MemoryTokenStoreOptions = {}) {
    assertOptionNames("memoryTokenStore()", options, MEMORY_TOKEN_STORE_OPTION_NAMES);
    this.maxEntries = positiveIntegerOption("maxEntries", options.maxEntries, 100_000);
    this.#now = checkedClock("now", options.now) ?? monotonicClock();
  }

  /** Live entries right now (expired ones not counted). */
  get size(): number {
    const now = this.#now();
    let count = 0;
    for (const slot of this.#slots.values()) if (slot.expiresAt > now) count++;
    return count;
  }

  async get(key: string): Promise<TokenStoreEntry | undefined> {
    assertEntryKey(key);
    const slot = this.#live(key);
    return slot === undefined ? undefined : { value: slot.value, version: slot.version };
  }

  async set(key: string, value: string, options: TokenStoreSetOptions): Promise<string | undefined> {
    assertSet(key, value, options);
    const current = this.#live(key);
    if (options.expect === null && current !== undefined) return undefined;
    if (typeof options.expect === "string" && current?.version !== options.expect) return undefined;
    const version = newVersion();
    this.#slots.delete(key);
    this.#slots.set(key, { value, version, expiresAt: this.#now() + options.ttlMs });
    this.#bound();
    return version;
  }

  async delete(key: string, expect?: string): Promise<boolean> {
    assertEntryKey(key);
    const current = this.#live(key);
    if (current === undefined || (expect !== undefined && current.version !== expect)) return false;
    return this.#slots.delete(key);
  }

  #live(key: string): Slot | undefined {
    const slot = this.#slots.get(key);
    if (slot === undefined) return undefined;
    if (slot.expiresAt > this.#now()) return slot;
    this.#slots.delete(key);
    return undefined;
  }

  /** Drops the least recently written entries past `maxEntries`: O(1) per write. */
  #bound(): void {
    for (const key of this.#slots.keys()) {
      if (this.#slots.size <= this.maxEntries) break;
      this.#slots.delete(key);
    }
  }
}

/**
 * The store a flow keeps its records in when the app gave none: timed on the client's `now` when
 * the app gave one (its tests move it for every time this package keeps), on monotonic time
 * otherwise.
 */
export function defaultTokenStore(clock: { now: () => number; nowGiven: boolean }): MemoryTokenStore {
  return new MemoryTokenStore(clock.nowGiven ? { now: clock.now } : {});
}

/** A token store in this process's memory. */
export function memoryTokenStore(options?: MemoryTokenStoreOptions): MemoryTokenStore {
  return new MemoryTokenStore(options);
}
