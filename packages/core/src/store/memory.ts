/**
 * The embedded store: one process, no dependencies. Bounded by entries and bytes, expiry
 * without a timer per key (an expired entry is dropped when touched, the oldest few of each
 * retention are checked on every write, and a full store drops every expired entry before it
 * evicts a record), O(1) operations, and a live lock is never evicted: when every slot holds
 * one, a new claim is refused as unavailable rather than breaking a lock.
 *
 * Built for throughput (bench/stores-memory.mjs measures claim+complete pairs a second):
 * slots in blocks (slots.ts). An entry is a slot number into typed and plain arrays, not an
 * object, and the blocks of 1,024 slots are made as the store first needs them, so it grows
 * without copying (or stalling on) what it holds; a key index by open addressing in a typed
 * array (key-index.ts), not a `Map`; header lists shared between records that carry the same
 * ones; and bodies up to 128 bytes copied into their slot's share of a block. A typed array per
 * body was the largest cost of a write, yet bodies packed into shared chunks would break the
 * bound: a chunk lives as long as its longest-lived record. A slot's share is reused with the
 * slot, so records of any retention hold at most `maxBytes` plus a fixed 128 bytes a slot.
 *
 * Entries sit in lanes, lists of slots oldest first: one for locks (claimed at its end, a live
 * one the sweep meets moved there again), and one per retention for records, in the order they
 * were completed. A lane of
 * records is so in the order of their ends too: its first record is the next to expire and the
 * least recently completed, so the sweep and eviction look at the first of each lane and walk
 * none. One list for all records would not be: a record kept 7 days (a webhook delivery's)
 * ahead of records kept 24 hours (idempotency keys') would hold every one of them, expired,
 * until it expired itself, and be evicted first when the store filled up.
 */

import { checkedClock, monotonicClock } from "../clock.js";
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
import { NO_SLOT, Slots } from "./slots.js";
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
   * once expired entries are dropped). `"evict-oldest"` (the default): once every expired entry
   * is dropped, the least recently completed record goes, whatever its retention, if it was
   * completed at least `evictAfterMs` ago, so the store stays available under steady use; a key
   * or delivery whose record went early runs again if it comes back before its retention ends.
   * A store full of younger records and live locks (a burst, or one client sending key after
   * key) refuses new claims as unavailable (503) instead: a flood never evicts the record of a
   * request made minutes ago. `"refuse"`: a record is kept for its whole retention, and a new
   * claim is refused (503) until room frees up, as Redis does with `noeviction`: fail closed,
   * never a second run. Either way a live lock is never evicted.
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
   * `MemoryStore`). A clock given here is the only one: leases and records both run on it. A
   * reading of it that is not a finite number fails the operation with `InterlockConfigError`.
   */
  now?: () => number;
}

/** How long a completed record is safe from eviction by default: 1 hour. */
export const DEFAULT_EVICT_AFTER_MS = 60 * 60 * 1000;

const LOCKED = 0;
const COMPLETED = 1;

/** The lane of locks (slots.ts): each claimed at its end, a live one the sweep meets moved there again; a lock completed moves to its retention's lane. */
const LOCKS = 0;

/**
 * Lanes of records at most, one per retention: a store sees one or two (a webhook receiver's,
 * idempotency keys'), and an empty lane is taken over by a new retention. Past them a record
 * joins the lane of another retention (`#retentionLane`).
 */
const RECORD_LANES = 8;

/** Expired entries examined per write at the oldest end of each lane: keeps memory tidy at O(1) cost. */
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
   * lone surrogates). A lock older than the last LOCK_HINTS claims (its hint then names a later
   * claim's slot) is found by its key.
   */
  readonly #lockHints = new Int32Array(LOCK_HINTS).fill(-1);
  readonly #headerLists = new HeaderLists();
  readonly #refuseWhenFull: boolean;
  readonly #evictAfterMs: number;
  /**
   * While the store is full: no entry expires before this time (monotonic), so a claim until
   * then is refused at once instead of looking again (a walk over the locks). Reset by every new entry.
   */
  #fullUntil = Number.NEGATIVE_INFINITY;
  /**
   * With `whenFull: "evict-oldest"`: no lock's lease ends before this time (monotonic), as the
   * last walk over the locks found and new locks have lowered it since (`#dropExpiredIfDue`).
   */
  #noLockLapsesBefore = Number.NEGATIVE_INFINITY;
  /** Lane 1 + i holds the records kept `#retentions[i]` ms (but see RECORD_LANES). */
  readonly #retentions: number[] = [];
  /** The retention of the record completed last, and its lane: most completions repeat it. */
  #lastRetention = -1;
  #lastLane = LOCKS;
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
    const now = checkedClock("now", options.now);
    this.#now = now ?? monotonicClock();
    // Date.now as it is when the store is made: one made while a test fakes Date keeps the fake.
    this.#wallNow = now ?? Date.now;
    this.#slots = this.#newSlots();
  }

  /**
   * Keys held now (locks and records), for tests and metrics. An expired entry counts until it
   * is dropped: when touched, or by the writes after it expires.
   */
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
    const slot = slots.add(key, LOCKS);
    this.#lockHints[this.#tokens % LOCK_HINTS] = slot;
    this.#fullUntil = Number.NEGATIVE_INFINITY; // a new entry may expire before what was known
    const lockExpiresAt = now + options.lockTtlMs;
    this.#noLockLapsesBefore = Math.min(this.#noLockLapsesBefore, lockExpiresAt);
    slots.lock(slot, LOCKED, token, options.fingerprint, now, lockExpiresAt);
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
    const expiresAt = now + options.ttlMs;
    const wallExpiresAt = this.#wallNow() + options.ttlMs;
    slots.complete(slot, COMPLETED, response.status, headers, bytes, now, expiresAt, wallExpiresAt);
    slots.setBody(slot, response.body);
    slots.moveTo(slot, this.#laneFor(options.ttlMs));
    this.#bytes += bytes;
    // A claim was admitted with room for its record when the store refuses when full; a few
    // admitted at once may pass `maxBytes` by a record each, and no record goes early for them.
    if (this.#refuseWhenFull) {
      this.#fullUntil = Math.min(this.#fullUntil, expiresAt);
      return true;
    }
    // The record just written is kept: evicting it now (the only one of its retention) would
    // answer `true` for a record already gone. While nothing may go (`#fullUntil`), no look:
    // under a flood every completion would walk the locks.
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
    const expiresAt = now + lockTtlMs;
    this.#slots.expiresAt.set(slot, expiresAt);
    // A lease made shorter may lapse before what a full store knew: it looks again then.
    this.#fullUntil = Math.min(this.#fullUntil, expiresAt);
    this.#noLockLapsesBefore = Math.min(this.#noLockLapsesBefore, expiresAt);
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

  /** A slot for every entry the store may hold: a dropped one's is free at once (slots.ts). */
  #newSlots(): Slots {
    return new Slots(this.#maxEntries);
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

  /** Drops an entry: its slot is free. */
  #drop(slot: number): void {
    if (this.#slots.state.get(slot) === COMPLETED) this.#bytes -= this.#slots.bytes.get(slot);
    this.#slots.drop(slot);
    this.#size--;
  }

  /** The lane of records kept `ttlMs` (`#retentionLane`), the last one's remembered. */
  #laneFor(ttlMs: number): number {
    if (ttlMs === this.#lastRetention) return this.#lastLane;
    const lane = this.#retentionLane(ttlMs);
    this.#lastRetention = ttlMs;
    this.#lastLane = lane;
    return lane;
  }

  /**
   * The lane of records kept `ttlMs`: its own; else a new one, up to RECORD_LANES; else that of a
   * retention none of whose records is held, taken over. Else, the lane of the retention nearest
   * above (the record may be dropped late, by up to the difference, and holds none behind it),
   * or of the longest (the records behind it may be, by up to the difference).
   */
  #retentionLane(ttlMs: number): number {
    const retentions = this.#retentions;
    const at = retentions.indexOf(ttlMs);
    if (at >= 0) return at + 1;
    if (retentions.length < RECORD_LANES) return retentions.push(ttlMs);
    let nearest = -1;
    let longest = 0;
    for (let i = 0; i < retentions.length; i++) {
      const retention = retentions[i] as number;
      if (this.#slots.first(i + 1) === NO_SLOT) {
        retentions[i] = ttlMs;
        return i + 1;
      }
      if (retention > ttlMs && (nearest < 0 || retention < (retentions[nearest] as number))) nearest = i;
      if (retention > (retentions[longest] as number)) longest = i;
    }
    return (nearest < 0 ? longest : nearest) + 1;
  }

  /**
   * Drops up to a few expired entries at the oldest end of each lane. A lane of records is in
   * the order of their ends, so its first live one ends before the others; a live lock is moved
   * to the end of its lane, as leases differ, so the locks behind it are looked at too.
   */
  #sweep(now: number): void {
    const slots = this.#slots;
    for (let budget = SWEEP_PER_WRITE; budget > 0; budget--) {
      const oldest = slots.first(LOCKS);
      if (oldest === NO_SLOT) break;
      if (this.#live(oldest, now)) slots.moveTo(oldest, LOCKS);
      else this.#drop(oldest);
    }
    for (let lane = this.#retentions.length; lane > LOCKS; lane--) {
      for (let budget = SWEEP_PER_WRITE; budget > 0; budget--) {
        const oldest = slots.first(lane);
        if (oldest === NO_SLOT || this.#live(oldest, now)) break;
        this.#drop(oldest);
      }
    }
  }

  /**
   * Frees room for one more key past `maxEntries`, or while the records hold more than
   * `maxBytes` (a record completed while none could go): drops the expired entries, then evicts
   * the least recently completed records, never a live lock or a record younger than `evictAfterMs`.
   */
  #makeRoom(now: number): void {
    if (this.#refuseWhenFull) {
      this.#refuseUnlessRoom(now);
      return;
    }
    if (this.#size < this.#maxEntries && this.#bytes <= this.#maxBytes) return;
    this.#dropExpiredIfDue(now);
    while (this.#size >= this.#maxEntries || this.#bytes > this.#maxBytes) {
      if (now < this.#fullUntil || !this.#evictOldest(now)) this.#refuseFull(now);
    }
  }

  /**
   * For `whenFull: "evict-oldest"`: drops every expired entry before a record is evicted in its
   * place. An expired record is the first of its lane, which `#evictOldest` drops before it
   * evicts any; a lapsed lock may be behind live ones (their leases differ), and the walk over
   * the locks that finds it runs at most once till one may have lapsed (`#noLockLapsesBefore`).
   */
  #dropExpiredIfDue(now: number): void {
    if (now >= this.#noLockLapsesBefore) this.#noLockLapsesBefore = this.#dropExpired(now);
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
   * Frees the entry that may go first: an expired one at the oldest end of a lane, or else the
   * least recently completed record (the first of some lane), if it was completed `evictAfterMs`
   * ago; never a live lock, nor the record `keep`. False when nothing can go; then, till the
   * first entry may go, `#fullUntil` refuses claims without looking again.
   */
  #evictOldest(now: number, keep = NO_SLOT): boolean {
    const slots = this.#slots;
    let evictable = NO_SLOT;
    for (let lane = this.#retentions.length; lane >= LOCKS; lane--) {
      const oldest = slots.first(lane);
      // `keep`, just completed, is the newest of its lane: the first only when it is alone.
      if (oldest === NO_SLOT || oldest === keep) continue;
      if (!this.#live(oldest, now)) {
        this.#drop(oldest);
        return true;
      }
      if (
        lane !== LOCKS &&
        this.#evictableAt(oldest) <= now &&
        (evictable === NO_SLOT || slots.completedAt.get(oldest) < slots.completedAt.get(evictable))
      )
        evictable = oldest;
    }
    if (evictable !== NO_SLOT) {
      this.#drop(evictable);
      return true;
    }
    // Without `keep`, which the caller accounts for itself (see `complete`).
    this.#fullUntil = this.#firstMayGoAt(now, keep);
    return false;
  }

  /**
   * When the first entry kept from eviction may go (`#mayGoAt`): the first record of each lane,
   * but `keep`, and every lock, whose leases differ.
   */
  #firstMayGoAt(now: number, keep: number): number {
    const slots = this.#slots;
    let first = Number.POSITIVE_INFINITY;
    for (let lane = this.#retentions.length; lane > LOCKS; lane--) {
      const oldest = slots.first(lane);
      if (oldest !== NO_SLOT && oldest !== keep) first = Math.min(first, this.#mayGoAt(oldest, now));
    }
    for (let lock = slots.first(LOCKS); lock !== NO_SLOT; lock = slots.next(lock)) {
      first = Math.min(first, slots.expiresAt.get(lock));
    }
    return first;
  }

  /**
   * When the live record in `slot`, kept from eviction, may go: when it may be evicted, or before
   * that when it ends (`#endOf`: a record kept for less than `evictAfterMs`).
   */
  #mayGoAt(slot: number, now: number): number {
    return Math.min(this.#evictableAt(slot), this.#endOf(slot, now));
  }

  /** When the record in `slot` may be evicted: `evictAfterMs` after its completion. */
  #evictableAt(slot: number): number {
    return this.#slots.completedAt.get(slot) + this.#evictAfterMs;
  }

  /**
   * For `whenFull: "refuse"`: room for one more key and one more record of `maxRecordBytes`,
   * made only by dropping expired entries, or a `StoreUnavailableError`. The look for them (a
   * walk over the locks) runs at most once till the first live entry's end: until then a full
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

  /**
   * Drops every expired entry: the oldest records of each lane while they have expired, and
   * every lapsed lock. Answers when the first live entry ends.
   */
  #dropExpired(now: number): number {
    const slots = this.#slots;
    let firstEnd = Number.POSITIVE_INFINITY;
    for (let lane = this.#retentions.length; lane > LOCKS; lane--) {
      for (let oldest = slots.first(lane); oldest !== NO_SLOT; oldest = slots.first(lane)) {
        if (!this.#live(oldest, now)) this.#drop(oldest);
        else {
          firstEnd = Math.min(firstEnd, this.#endOf(oldest, now));
          break;
        }
      }
    }
    for (let lock = slots.first(LOCKS); lock !== NO_SLOT; ) {
      const next = slots.next(lock);
      if (!this.#live(lock, now)) this.#drop(lock);
      else firstEnd = Math.min(firstEnd, slots.expiresAt.get(lock));
      lock = next;
    }
    return firstEnd;
  }

  /**
   * When the live entry in `slot` ends: a record past its end on monotonic time but not yet on
   * the system clock is looked at again soon.
   */
  #endOf(slot: number, now: number): number {
    const end = this.#slots.expiresAt.get(slot);
    return end > now ? end : now + WALL_CLOCK_RECHECK_MS;
  }
}

/** `new MemoryStore(options)`. */
export function memoryStore(options?: MemoryStoreOptions): MemoryStore {
  return new MemoryStore(options);
}
