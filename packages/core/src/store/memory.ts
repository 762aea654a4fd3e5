/**
 * The embedded store: one process, no dependencies. Bounded by entries and bytes, expiry
 * without a timer per key (expired entries are dropped when touched, and a few of the oldest
 * are checked on every write), O(1) operations, and a live lock is never evicted: when every
 * slot holds one, a new claim is refused as unavailable rather than breaking a lock.
 *
 * Built for throughput (bench/stores-memory.mjs measures claim+complete pairs a second):
 * slots in blocks (slots.ts). An entry is a slot number into typed and plain arrays, not an
 * object, and the blocks of 1,024 slots are made as the ring reaches them, so the store grows
 * without copying (or stalling on) what it holds; a key index by open addressing in a typed
 * array (key-index.ts), not a `Map`; a ring of slots in insertion order for oldest-first
 * sweeping and eviction; header lists shared between records that carry the same ones; and
 * bodies up to 128 bytes copied into their slot's share of a block. A typed array per
 * body was the largest cost of a write, yet bodies packed into shared chunks would break the
 * bound: a chunk lives as long as its longest-lived record. A slot's share is reused with the slot, so records of any retention
 * hold at most `maxBytes` plus a fixed 128 bytes a slot. The ring
 * has room for twice `maxEntries`, so slots dropped out of order (released locks, expired
 * keys claimed again) rarely fill it; when they do, live entries at the head rotate to the
 * newest end in place until a dropped slot is reached.
 */

import { monotonicClock } from "../clock.js";
import { InterlockConfigError, StoreUnavailableError } from "../errors.js";
import { assertOptionNames, optionNames } from "../option-names.js";
import type {
  ClaimOptions,
  ClaimResult,
  CompleteOptions,
  InterlockStore,
  StoredRecord,
  StoredResponse,
} from "./contract.js";
import { Slots } from "./slots.js";
import {
  assertClaim,
  assertKey,
  choiceOption,
  completionSize,
  nonNegativeMs,
  positiveIntegerOption,
  refuseTransaction,
} from "./validate.js";

/** The largest `maxRecordBytes` a memory store takes: 2^32 − 1. */
const MAX_RECORD_BYTES = 2 ** 32 - 1;

/** The memory store's bounds and clock. */
export interface MemoryStoreOptions {
  /** Most keys held (locks and records). Default 100,000. */
  maxEntries?: number;
  /**
   * Most bytes of records held. Default 64 MiB. A claim admitted while there was room keeps its
   * record when it completes, so the records of claims admitted at once may pass it by one
   * record each (see `whenFull`); new claims are refused until they fit again.
   */
  maxBytes?: number;
  /** Largest single record. Default 1 MiB; at most 2^32 − 1 bytes. */
  maxRecordBytes?: number;
  /**
   * What a full store does (`maxEntries` keys, or too few of `maxBytes` left for one more record
   * once expired entries are dropped). `"evict-oldest"` (the default): the least recently
   * completed record goes, if it was completed at least `evictAfterMs` ago, so the store stays
   * available under steady use; a key or delivery whose record went early runs again if it
   * comes back before its retention ends. A store full of younger records and live locks (a
   * burst, or one client sending key after key) refuses new claims as unavailable (503) instead:
   * a flood never evicts the record of a request made minutes ago. `"refuse"`: a record is kept
   * for its whole retention, and a new claim is refused (503) until room frees up, as Redis does
   * with `noeviction`: fail closed, never a second run. Either way a live lock is never evicted.
   */
  whenFull?: "evict-oldest" | "refuse";
  /**
   * With `whenFull: "evict-oldest"`, how long after its completion a record is safe from
   * eviction, in ms. Default 1 hour (`DEFAULT_EVICT_AFTER_MS`): longer than any client's retry
   * schedule or a webhook's timestamp window. 0 lets a full store evict any record.
   */
  evictAfterMs?: number;
  /**
   * Clock in ms since the epoch. Default the process's start plus monotonic time since, so a
   * system clock that is set forward or back neither ends leases early nor holds them longer.
   * A completed record is then also kept until the system clock has passed its end (see
   * `MemoryStore`). A clock given here is the only one: leases and records both run on it.
   */
  now?: () => number;
}

/** How long a completed record is safe from eviction by default: 1 hour. */
export const DEFAULT_EVICT_AFTER_MS = 60 * 60 * 1000;

const LOCKED = 0;
const COMPLETED = 1;

/** Expired entries examined per write, from the oldest: keeps memory tidy at O(1) cost. */
const SWEEP_PER_WRITE = 2;

/** How soon a full store looks again at a record kept only until the system clock passes its end. */
const WALL_CLOCK_RECHECK_MS = 1_000;

let instances = 0;

/** Claims whose slot a store keeps by token (`#lockHints`): a power of two, more than ever run at once. */
const LOCK_HINTS = 4_096;

function sameHeaders(flat: readonly string[], headers: StoredResponse["headers"]): boolean {
  if (flat.length !== headers.length * 2) return false;
  for (let i = 0; i < headers.length; i++) {
    const pair = headers[i] as readonly [string, string];
    if (flat[2 * i] !== pair[0] || flat[2 * i + 1] !== pair[1]) return false;
  }
  return true;
}

function flatHeaders(headers: StoredResponse["headers"]): string[] {
  const flat = new Array<string>(headers.length * 2);
  for (let i = 0; i < headers.length; i++) {
    const pair = headers[i] as readonly [string, string];
    flat[2 * i] = pair[0];
    flat[2 * i + 1] = pair[1];
  }
  return flat;
}

/** Header lists remembered for sharing (a power of two). */
const SHARED_HEADER_LISTS = 16;

/**
 * Records' header lists, shared: an API's responses mostly carry the same few headers (the
 * engine stores only representation headers such as `content-type`), and an array per record
 * would be one more object for the collector to promote and sweep. A list is never changed
 * once stored, so records may share it. The recent lists sit in a small table by shape.
 */
class HeaderLists {
  readonly #recent: string[][] = Array.from({ length: SHARED_HEADER_LISTS }, () => []);

  flat(headers: StoredResponse["headers"]): string[] {
    const first = headers[0];
    const shape = first === undefined ? 0 : headers.length + first[0].length + 7 * first[1].length;
    const at = shape & (SHARED_HEADER_LISTS - 1);
    const recent = this.#recent[at] as string[];
    if (sameHeaders(recent, headers)) return recent;
    const flat = flatHeaders(headers);
    this.#recent[at] = flat;
    return flat;
  }
}

function headerPairs(flat: string[]): Array<[string, string]> {
  const pairs = new Array<[string, string]>(flat.length / 2);
  for (let i = 0; i < pairs.length; i++) pairs[i] = [flat[2 * i] as string, flat[2 * i + 1] as string];
  return pairs;
}

const MEMORY_STORE_OPTION_NAMES = optionNames<MemoryStoreOptions>({
  maxEntries: true,
  maxBytes: true,
  maxRecordBytes: true,
  whenFull: true,
  evictAfterMs: true,
  now: true,
});

/**
 * The in-process store: bounded by entries and bytes, never evicting a live lock, with expiry
 * and no timer per key. One process only: for several, use the Redis or PostgreSQL store.
 *
 * Leases run on monotonic time alone. A completed record is kept until its retention has
 * passed on monotonic time and on the system clock both. A webhook delivery's timestamp is
 * checked against the system clock: a record that expired on monotonic time alone would let a
 * replay through once the clock was set back by about the retention, its timestamp accepted
 * again. The Redis and PostgreSQL stores keep records on their server's clock, set back with
 * the others; here a clock set back holds records longer, and one set forward ends none early.
 */
export class MemoryStore implements InterlockStore {
  readonly name = "memory";
  readonly maxRecordBytes: number;
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  readonly #now: () => number;
  /** The system clock, which records are also kept on (the same as `#now` when one is given). */
  readonly #wallNow: () => number;
  #slots: Slots;
  /** Live entries (locks and records). */
  #size = 0;
  #bytes = 0;
  // Tokens only need to be unique within this process; a counter is cheaper than randomness.
  readonly #tokenPrefix = `m${++instances}.`;
  #tokens = 0;
  /**
   * The slots of the last claims, by their token's counter (modulo): `complete` and `release`
   * find their lock here, checked against its key and token, without the index hashing the key
   * in JavaScript again (about 2,000 instructions for a 50-character key, and a scan for NUL and
   * lone surrogates). A lock older than the last LOCK_HINTS claims, or moved since (the ring
   * rotating), is found by its key.
   */
  readonly #lockHints = new Int32Array(LOCK_HINTS).fill(-1);
  readonly #headerLists = new HeaderLists();
  readonly #refuseWhenFull: boolean;
  readonly #evictAfterMs: number;
  /**
   * While the store is full: no entry expires before this time (monotonic), so a claim until
   * then is refused at once instead of walking every entry again. Reset by every new entry.
   */
  #fullUntil = Number.NEGATIVE_INFINITY;
  /** Set by `close()`: every operation then fails as the store being unavailable. */
  #closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    assertOptionNames("memoryStore()", options, MEMORY_STORE_OPTION_NAMES);
    this.#maxEntries = positiveIntegerOption("maxEntries", options.maxEntries, 100_000);
    this.#maxBytes = positiveIntegerOption("maxBytes", options.maxBytes, 64 * 1024 * 1024);
    this.maxRecordBytes = positiveIntegerOption("maxRecordBytes", options.maxRecordBytes, 1024 * 1024);
    if (this.maxRecordBytes > this.#maxBytes) throw new InterlockConfigError("maxRecordBytes cannot exceed maxBytes");
    // A record's size is kept in 32 bits (slots.ts).
    if (this.maxRecordBytes > MAX_RECORD_BYTES)
      throw new InterlockConfigError(`maxRecordBytes cannot exceed ${MAX_RECORD_BYTES} (4 GiB less a byte)`);
    this.#refuseWhenFull =
      choiceOption("whenFull", options.whenFull, ["evict-oldest", "refuse"], "evict-oldest") === "refuse";
    this.#evictAfterMs = nonNegativeMs("evictAfterMs", options.evictAfterMs, DEFAULT_EVICT_AFTER_MS);
    if (this.#refuseWhenFull && options.evictAfterMs !== undefined)
      throw new InterlockConfigError(
        'evictAfterMs applies to whenFull "evict-oldest": a store that refuses when full evicts nothing',
      );
    this.#now = options.now ?? monotonicClock();
    // Date.now as it is when the store is made: one made while a test fakes Date keeps the fake.
    this.#wallNow = options.now ?? Date.now;
    this.#slots = this.#newSlots();
  }

  /** Keys held now (locks and records), for tests and metrics. */
  get size(): number {
    return this.#size;
  }

  async claim(key: string, options: ClaimOptions): Promise<ClaimResult> {
    assertClaim(key, options);
    this.#refuseIfClosed();
    const now = this.#now();
    const slots = this.#slots;
    const found = slots.find(key);
    if (found >= 0) {
      if (this.#live(found, now)) {
        return slots.state.get(found) === COMPLETED
          ? { state: "completed", record: this.#record(found) }
          : {
              state: "in_flight",
              fingerprint: slots.fingerprint.get(found),
              lockExpiresAt: slots.expiresAt.get(found),
            };
      }
      this.#drop(found);
    }
    this.#sweep(now);
    this.#makeRoom(now);
    const token = this.#tokenPrefix + ++this.#tokens;
    const slot = slots.add(key);
    this.#lockHints[this.#tokens % LOCK_HINTS] = slot;
    this.#fullUntil = Number.NEGATIVE_INFINITY; // a new entry may expire before what was known
    slots.lock(slot, LOCKED, token, options.fingerprint, now, now + options.lockTtlMs);
    this.#size++;
    return { state: "claimed", token };
  }

  async complete(key: string, token: string, response: StoredResponse, options: CompleteOptions): Promise<boolean> {
    // The key is checked with the lock (`#liveLock`): one a claim took needs no second look.
    const bytes = completionSize(this, response, options);
    refuseTransaction(this.name, options);
    const now = this.#now();
    const slot = this.#liveLock(key, token, now);
    if (slot < 0) return false;
    const slots = this.#slots;
    const headers = this.#headerLists.flat(response.headers);
    const wallExpiresAt = this.#wallNow() + options.ttlMs;
    slots.complete(slot, COMPLETED, response.status, headers, bytes, now, now + options.ttlMs, wallExpiresAt);
    slots.setBody(slot, response.body);
    this.#bytes += bytes;
    // A claim was admitted with room for its record when the store refuses when full; a few
    // admitted at once may pass `maxBytes` by a record each, and no record goes early for them.
    if (this.#refuseWhenFull) {
      this.#fullUntil = Math.min(this.#fullUntil, now + options.ttlMs);
      return true;
    }
    // The record just written is kept: a slow request's slot is among the oldest (the ring is in
    // claim order), and evicting it now would answer `true` for a record already gone. While
    // nothing may go (`#fullUntil`), no walk: under a flood every completion would walk them all.
    while (this.#bytes > this.#maxBytes && now >= this.#fullUntil && this.#evictOldest(now, slot)) {}
    // The lock became a record, which may go sooner than what was known: not a reset to "walk
    // again", which made the next refused claim walk the whole store after every completion.
    this.#fullUntil = Math.min(this.#fullUntil, now + Math.min(this.#evictAfterMs, options.ttlMs));
    return true;
  }

  async release(key: string, token: string): Promise<boolean> {
    const slot = this.#liveLock(key, token, this.#now());
    if (slot < 0) return false;
    this.#drop(slot);
    return true;
  }

  async extend(key: string, token: string, lockTtlMs: number): Promise<boolean> {
    assertClaim(key, { fingerprint: "", lockTtlMs });
    const now = this.#now();
    const slot = this.#liveLock(key, token, now);
    if (slot < 0) return false;
    this.#slots.expiresAt.set(slot, now + lockTtlMs);
    return true;
  }

  /**
   * Frees every entry, and fails every later operation as `StoreUnavailableError`: a request
   * still answered after shutdown is refused (503), never run without the records it would
   * have been checked against. Closing twice is fine.
   */
  async close(): Promise<void> {
    this.#closed = true;
    this.#slots = this.#newSlots();
    this.#size = 0;
    this.#bytes = 0;
  }

  #refuseIfClosed(): void {
    if (this.#closed) throw new StoreUnavailableError(this.name, "the store was closed");
  }

  /** Room for every live entry plus as many dropped ones awaiting the walk (see the top). */
  #newSlots(): Slots {
    return new Slots(2 * this.#maxEntries);
  }

  /**
   * Whether the entry in `slot` has not expired: a lock until its lease ends, a record until its
   * retention has passed on both clocks (the system clock is read only once monotonic time has).
   */
  #live(slot: number, now: number): boolean {
    const slots = this.#slots;
    if (slots.expiresAt.get(slot) > now) return true;
    return slots.state.get(slot) === COMPLETED && slots.wallExpiresAt.get(slot) > this.#wallNow();
  }

  /**
   * The slot of the lock on `key` if `token` holds it and its lease has not ended, or -1. A key
   * the hinted slot does not hold is checked first: it may be one no store accepts.
   */
  #liveLock(key: string, token: string, now: number): number {
    this.#refuseIfClosed();
    const slots = this.#slots;
    let slot = this.#hintedSlot(token);
    if (!slots.holds(slot, key, token)) {
      assertKey(key);
      slot = slots.find(key);
    }
    return slot >= 0 &&
      slots.state.get(slot) === LOCKED &&
      slots.token.get(slot) === token &&
      slots.expiresAt.get(slot) > now
      ? slot
      : -1;
  }

  /** The slot `#lockHints` keeps for the claim that made `token` (its counter, after the prefix), or -1. */
  #hintedSlot(token: string): number {
    if (typeof token !== "string" || token.length > this.#tokenPrefix.length + 15) return -1;
    let counter = 0;
    for (let i = this.#tokenPrefix.length; i < token.length; i++) {
      const digit = token.charCodeAt(i) - 48;
      if (digit < 0 || digit > 9) return -1;
      counter = counter * 10 + digit;
    }
    return this.#lockHints[counter % LOCK_HINTS] as number;
  }

  #record(slot: number): StoredRecord {
    const slots = this.#slots;
    return {
      status: slots.status.get(slot),
      headers: headerPairs(slots.headers.get(slot)),
      body: slots.bodyCopy(slot),
      fingerprint: slots.fingerprint.get(slot),
      createdAt: slots.createdAt.get(slot),
      completedAt: slots.completedAt.get(slot),
    };
  }

  /** Drops an entry; its slot stays in the ring until the walk passes it. */
  #drop(slot: number): void {
    if (this.#slots.state.get(slot) === COMPLETED) this.#bytes -= this.#slots.bytes.get(slot);
    this.#slots.drop(slot);
    this.#size--;
  }

  /** Drops up to a few expired entries from the oldest end; stops at the first live record. */
  #sweep(now: number): void {
    const slots = this.#slots;
    for (let budget = SWEEP_PER_WRITE; budget > 0; budget--) {
      const oldest = slots.oldest();
      if (oldest < 0) return;
      if (slots.dropped(oldest)) slots.pass();
      else if (!this.#live(oldest, now)) {
        this.#drop(oldest);
        slots.pass();
      } else if (slots.state.get(oldest) === LOCKED) slots.carry();
      else return;
    }
  }

  /**
   * Frees room for one more key: evicts the oldest records past `maxEntries`, or while the
   * records hold more than `maxBytes` (a record completed while none could go), never a live
   * lock or a record younger than `evictAfterMs`; then, in a ring full of dropped slots, walks
   * the head to the first of them.
   */
  #makeRoom(now: number): void {
    if (this.#refuseWhenFull) this.#refuseUnlessRoom(now);
    else {
      while (this.#size >= this.#maxEntries || this.#bytes > this.#maxBytes) {
        if (now < this.#fullUntil || !this.#evictOldest(now)) this.#refuseFull(now);
      }
    }
    const slots = this.#slots;
    while (slots.full) {
      if (slots.dropped(slots.oldest())) slots.pass();
      else slots.carry();
    }
  }

  #refuseFull(now: number): never {
    const bound =
      this.#size >= this.#maxEntries ? `${this.#size} keys (maxEntries)` : `${this.#bytes} bytes of records (maxBytes)`;
    throw new StoreUnavailableError(
      this.name,
      `full: ${bound}, each a lock in flight or a record completed less than evictAfterMs (${this.#evictAfterMs} ms) ago`,
      { retryAfterSeconds: this.#secondsUntilRoom(now) },
    );
  }

  /**
   * The 503's `Retry-After` while full: the seconds until the first entry may go (`#fullUntil`),
   * when the store can take a claim again (a key released earlier frees its room sooner), at
   * least 1. Not the 2 seconds of a store that cannot be reached: a store full of records
   * kept for an hour would have every client back, and refused, every 2 seconds meanwhile.
   */
  #secondsUntilRoom(now: number): number {
    const seconds = Math.ceil((this.#fullUntil - now) / 1000);
    return Number.isFinite(seconds) ? Math.max(1, seconds) : 1;
  }

  /**
   * Frees the oldest entry that may go (an expired entry, or a record completed `evictAfterMs`
   * ago), carrying live locks, younger records and the slot `keep` forward: carried to the
   * newest end, a record is then evicted in the order of its completion. False when nothing can
   * go; then, till the first of the entries carried may go, `#fullUntil` refuses claims without a walk.
   */
  #evictOldest(now: number, keep = -1): boolean {
    const slots = this.#slots;
    let firstEnd = Number.POSITIVE_INFINITY;
    // Each slot is visited at most twice (once before and once after being carried).
    for (let visits = 2 * slots.held + 2; visits > 0; visits--) {
      const oldest = slots.oldest();
      if (oldest < 0) return false;
      if (slots.dropped(oldest)) {
        slots.pass();
      } else if (oldest === keep || this.#safeFromEviction(oldest, now)) {
        if (oldest !== keep) firstEnd = Math.min(firstEnd, this.#mayGoAt(oldest, now));
        slots.carry();
      } else {
        this.#drop(oldest);
        slots.pass();
        return true;
      }
    }
    // Without `keep`, which the caller accounts for itself (see `complete`).
    this.#fullUntil = firstEnd;
    return false;
  }

  /** A live lock, or a live record completed less than `evictAfterMs` ago. */
  #safeFromEviction(slot: number, now: number): boolean {
    return this.#evictableAt(slot) > now && this.#live(slot, now);
  }

  /**
   * When the entry in `slot` kept from eviction may go: when it may be evicted, or before that
   * when it expires (a record kept for less than `evictAfterMs`). A record past its end on
   * monotonic time but not yet on the system clock is looked at again soon, as `#dropExpired` does.
   */
  #mayGoAt(slot: number, now: number): number {
    const end = this.#slots.expiresAt.get(slot);
    return Math.min(this.#evictableAt(slot), end > now ? end : now + WALL_CLOCK_RECHECK_MS);
  }

  /** When the entry in `slot` may be evicted: a lock when its lease ends, a record `evictAfterMs` after completion. */
  #evictableAt(slot: number): number {
    const slots = this.#slots;
    return slots.state.get(slot) === LOCKED
      ? slots.expiresAt.get(slot)
      : slots.completedAt.get(slot) + this.#evictAfterMs;
  }

  /**
   * For `whenFull: "refuse"`: room for one more key and one more record of `maxRecordBytes`,
   * made only by dropping expired entries, or a `StoreUnavailableError`. The walk over every
   * entry (moving none) runs at most once till the first live entry's end: until then a full
   * store refuses at once.
   */
  #refuseUnlessRoom(now: number): void {
    if (!this.#full()) return;
    if (now >= this.#fullUntil) this.#fullUntil = this.#dropExpired(now);
    if (!this.#full()) return;
    const bound =
      this.#size >= this.#maxEntries
        ? `${this.#size} live keys (maxEntries ${this.#maxEntries})`
        : `${this.#bytes} of ${this.#maxBytes} bytes of live records, no room for one more (maxBytes)`;
    throw new StoreUnavailableError(
      this.name,
      `full: ${bound}; records are kept for their retention (whenFull "refuse")`,
      { retryAfterSeconds: this.#secondsUntilRoom(now) },
    );
  }

  #full(): boolean {
    return this.#size >= this.#maxEntries || this.#bytes + this.maxRecordBytes > this.#maxBytes;
  }

  /** Drops every expired entry, wherever it is in the ring; answers when the first live one ends. */
  #dropExpired(now: number): number {
    const slots = this.#slots;
    let firstEnd = Number.POSITIVE_INFINITY;
    for (let index = 0; index < slots.held; index++) {
      const slot = slots.inRing(index);
      if (slots.dropped(slot)) continue;
      if (!this.#live(slot, now)) this.#drop(slot);
      else {
        const end = slots.expiresAt.get(slot);
        // A record past its end on monotonic time but not yet on the system clock: look again soon.
        firstEnd = Math.min(firstEnd, end > now ? end : now + WALL_CLOCK_RECHECK_MS);
      }
    }
    return firstEnd;
  }
}

/** `new MemoryStore(options)`. */
export function memoryStore(options?: MemoryStoreOptions): MemoryStore {
  return new MemoryStore(options);
}
