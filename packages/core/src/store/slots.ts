/**
 * Where the memory store's entries live: fields indexed by a slot number, in blocks of 1,024
 * slots; a ring of slots in insertion order; and a key index that maps a key to its slot.
 *
 * No object per entry: numbers sit in typed arrays, strings in plain arrays, and short bodies
 * in a per-slot share of a block, so what the garbage collector sees of a record is its key,
 * its header list (often shared) and only a long body; the index holds small integers, not
 * pointers. The ring gives the oldest-first order for sweeping and eviction; it grows by
 * doubling up to `maxSlots`, so a store that holds little stays small, and its blocks are made
 * as it reaches them, so growing copies no field (and the key index moves into its larger
 * table a few cells at a time).
 *
 * The index (key-index.ts) is open addressing over slot numbers: a slot is indexed while it
 * holds a key, and dropping it removes it from the index.
 */

import { copyBytes, copyBytesShared } from "../encoding.js";
import { KeyIndex } from "./key-index.js";

/**
 * Slots come in blocks of this many, each made when the ring first reaches it: the ring grows
 * (doubling up to `maxSlots`) without copying a field. New memory is dear on first touch (a
 * page fault: about 14 µs a 4 KiB page on these VMs), and columns copied into ones twice as
 * large stopped the process while they were touched: 314 ms at the step from 524,288 slots to
 * 1,048,576, every request in flight waiting. A block is touched as it fills instead. The price
 * is a second lookup per field read, the block's.
 */
const BLOCK_SHIFT = 10;
const BLOCK_SLOTS = 1 << BLOCK_SHIFT;
const IN_BLOCK = BLOCK_SLOTS - 1;

/** The ring's first size (up to `maxSlots`): one block. */
const INITIAL_SLOTS = BLOCK_SLOTS;

/**
 * Bodies up to this size are copied into their slot's share of a column rather than into an
 * array of their own: a typed array per record, promoted and then swept, was the largest cost
 * of a write. The share is fixed per slot, so it is bounded by entries like every other
 * column, and it is reused with the slot, so retention never pins it (unlike shared chunks).
 */
const INLINE_BODY_BYTES = 128;

/** A dropped slot's body and headers: shared, so dropping lets go of the entry's own. */
const NO_BODY = new Uint8Array(0);
const NO_HEADERS: string[] = [];

/** Where `slot`'s share of the short bodies starts in its block. */
function shareOf(slot: number): number {
  return (slot & IN_BLOCK) * INLINE_BODY_BYTES;
}

/**
 * A block's fields sit slot by slot (a slot's times next to each other, its counts, its
 * strings), so an operation on one entry reads a cache line or two of each kind, not one line
 * per field. One class per kind of array, so each access site sees one kind.
 */
const TIMES = 4;
const CREATED_AT = 0;
const COMPLETED_AT = 1;
const EXPIRES_AT = 2;
const WALL_EXPIRES_AT = 3;
const COUNTS = 5;
const STATE = 0;
const STATUS = 1;
const BYTES = 2;
const BODY_LENGTH = 3;
/** The key index's hash of the slot's key (key-index.ts), while the slot is indexed. */
const HASH = 4;
const VALUES = 5;
const KEY = 0;
const TOKEN = 1;
const FINGERPRINT = 2;
const HEADERS = 3;
const BODY = 4;

/** A time field of every slot (ms), in the blocks' Float64Arrays. */
export class TimeField {
  readonly blocks: Float64Array[];
  readonly field: number;

  constructor(blocks: Float64Array[], field: number) {
    this.blocks = blocks;
    this.field = field;
  }

  get(slot: number): number {
    return (this.blocks[slot >>> BLOCK_SHIFT] as Float64Array)[(slot & IN_BLOCK) * TIMES + this.field] as number;
  }
  set(slot: number, value: number): void {
    (this.blocks[slot >>> BLOCK_SHIFT] as Float64Array)[(slot & IN_BLOCK) * TIMES + this.field] = value;
  }
}

/** A whole-number field of every slot, under 2^32, in the blocks' Uint32Arrays. */
export class CountField {
  readonly blocks: Uint32Array[];
  readonly field: number;

  constructor(blocks: Uint32Array[], field: number) {
    this.blocks = blocks;
    this.field = field;
  }

  get(slot: number): number {
    return (this.blocks[slot >>> BLOCK_SHIFT] as Uint32Array)[(slot & IN_BLOCK) * COUNTS + this.field] as number;
  }
  set(slot: number, value: number): void {
    (this.blocks[slot >>> BLOCK_SHIFT] as Uint32Array)[(slot & IN_BLOCK) * COUNTS + this.field] = value;
  }
}

/** A field of every slot holding a string or an object, in the blocks' plain arrays. */
export class ValueField<T> {
  readonly blocks: unknown[][];
  readonly field: number;

  constructor(blocks: unknown[][], field: number) {
    this.blocks = blocks;
    this.field = field;
  }

  get(slot: number): T {
    return (this.blocks[slot >>> BLOCK_SHIFT] as unknown[])[(slot & IN_BLOCK) * VALUES + this.field] as T;
  }
  set(slot: number, value: T): void {
    (this.blocks[slot >>> BLOCK_SHIFT] as unknown[])[(slot & IN_BLOCK) * VALUES + this.field] = value;
  }
}

/** Gives the slot whose values start at `at` a free slot's: no key, token or fingerprint, the shared empty headers and body. */
function freeValues(values: unknown[], at: number): void {
  values[at + KEY] = "";
  values[at + TOKEN] = "";
  values[at + FINGERPRINT] = "";
  values[at + HEADERS] = NO_HEADERS;
  values[at + BODY] = NO_BODY;
}

/** A new block's values, slot by slot: key, token, fingerprint, headers, body. */
function valueBlock(slots: number): unknown[] {
  const block: unknown[] = new Array(slots * VALUES);
  for (let at = 0; at < block.length; at += VALUES) freeValues(block, at);
  return block;
}

/** The fields (in blocks), the ring and the index; the memory store decides what the fields mean. */
export class Slots {
  readonly #times: Float64Array[] = [];
  readonly #counts: Uint32Array[] = [];
  readonly #values: unknown[][] = [];

  createdAt = new TimeField(this.#times, CREATED_AT);
  completedAt = new TimeField(this.#times, COMPLETED_AT);
  expiresAt = new TimeField(this.#times, EXPIRES_AT);
  /** A record's end on the system clock (the memory store's `expiresAt` is on its monotonic one). */
  wallExpiresAt = new TimeField(this.#times, WALL_EXPIRES_AT);
  state = new CountField(this.#counts, STATE);
  /** Three digits. */
  status = new CountField(this.#counts, STATUS);
  /** A record's size, at most the store's `maxRecordBytes`, which it keeps under 2^32 (`MAX_RECORD_BYTES`). */
  bytes = new CountField(this.#counts, BYTES);
  /** At most `bytes`. */
  readonly #bodyLength = new CountField(this.#counts, BODY_LENGTH);
  readonly #keyHash = new CountField(this.#counts, HASH);
  /** Per slot: the key, or "" when the slot is free or dropped (keys are never empty). */
  readonly #keys = new ValueField<string>(this.#values, KEY);
  token = new ValueField<string>(this.#values, TOKEN);
  fingerprint = new ValueField<string>(this.#values, FINGERPRINT);
  /** Header names and values, flat: [name, value, name, value, …]. */
  headers = new ValueField<string[]>(this.#values, HEADERS);
  /** A body longer than INLINE_BODY_BYTES: the store's own copy. */
  readonly #body = new ValueField<Uint8Array>(this.#values, BODY);
  /**
   * Shorter bodies: INLINE_BODY_BYTES per slot, a block's worth made at the first short body in
   * its slots that is not empty: a store that keeps none (a webhook receiver's records are
   * bodiless) never pays for it, most of a slot's bytes.
   */
  readonly inline: Uint8Array[] = [];

  readonly #maxSlots: number;
  /** Slots in the ring: it doubles, up to `#maxSlots`, when full. */
  #capacity: number;
  #head = 0;
  /** Slots in the ring from the head, live or dropped. */
  #count = 0;
  readonly #index: KeyIndex;

  constructor(maxSlots: number) {
    this.#maxSlots = maxSlots;
    this.#capacity = Math.min(INITIAL_SLOTS, maxSlots);
    this.#index = new KeyIndex(this.#keys, this.#keyHash, this.#capacity);
  }

  /** Slots the ring has room for now. */
  get capacity(): number {
    return this.#capacity;
  }

  /** Slots in the ring, live or dropped. */
  get held(): number {
    return this.#count;
  }

  /** True when no slot can be added without first passing or carrying the head. */
  get full(): boolean {
    return this.#count === this.#maxSlots;
  }

  /** The slot holding `key`, or -1. */
  find(key: string): number {
    return this.#index.find(key);
  }

  /** Takes the slot after the newest for `key`, which no slot holds; the caller has made room (`full` is false). */
  add(key: string): number {
    const slot = this.#take();
    this.#keys.set(slot, key);
    this.#index.insert(key, slot);
    return slot;
  }

  /** The slot after the newest, now in the ring, its block made. */
  #take(): number {
    if (this.#count === this.#capacity) this.#grow();
    const slot = (this.#head + this.#count) % this.#capacity;
    this.#count++;
    this.#blockFor(slot);
    return slot;
  }

  /** Makes the block that holds `slot`, if it was not yet; every cell of a new block is a free slot's. */
  #blockFor(slot: number): void {
    const index = slot >>> BLOCK_SHIFT;
    if (index < this.#values.length) return;
    // Blocks are made in order: the ring takes its slots in order, and a move goes to the newest end.
    for (let next = this.#values.length; next <= index; next++) {
      const slots = this.#slotsIn(next);
      this.#times.push(new Float64Array(slots * TIMES));
      this.#counts.push(new Uint32Array(slots * COUNTS));
      this.#values.push(valueBlock(slots));
      this.inline.push(NO_BODY);
    }
  }

  /** Slots in block `index`: all but the last of a ring whose bound is not a whole number of blocks hold BLOCK_SLOTS. */
  #slotsIn(index: number): number {
    return Math.min(BLOCK_SLOTS, this.#maxSlots - index * BLOCK_SLOTS);
  }

  /** The slot `index` places after the oldest in the ring (0 is the oldest), for a walk that moves nothing. */
  inRing(index: number): number {
    return (this.#head + index) % this.#capacity;
  }

  /** The oldest slot in the ring, or -1 when it is empty. */
  oldest(): number {
    return this.#count === 0 ? -1 : this.#head;
  }

  /** Moves the head past the oldest slot, which the caller has dropped. */
  pass(): void {
    this.#head = (this.#head + 1) % this.#capacity;
    this.#count--;
  }

  /** Makes the oldest slot the newest (a live entry that must not be dropped). */
  carry(): void {
    const from = this.#head;
    if (this.#count < this.#capacity) {
      this.#move(from, this.#take());
      this.pass();
      return;
    }
    // A full ring: the slot after the newest is the head itself, so the entry stays put.
    this.#head = (from + 1) % this.#capacity;
  }

  /** Writes a new lock's fields, its block looked up once: the claim's hottest writes. */
  lock(slot: number, state: number, token: string, fingerprint: string, createdAt: number, expiresAt: number): void {
    const block = slot >>> BLOCK_SHIFT;
    const at = slot & IN_BLOCK;
    (this.#counts[block] as Uint32Array)[at * COUNTS + STATE] = state;
    const values = this.#values[block] as unknown[];
    values[at * VALUES + TOKEN] = token;
    values[at * VALUES + FINGERPRINT] = fingerprint;
    const times = this.#times[block] as Float64Array;
    times[at * TIMES + CREATED_AT] = createdAt;
    times[at * TIMES + EXPIRES_AT] = expiresAt;
  }

  /** Writes a completed record's fields (its token cleared), its block looked up once; the body is `setBody`'s. */
  complete(
    slot: number,
    state: number,
    status: number,
    headers: string[],
    bytes: number,
    completedAt: number,
    expiresAt: number,
    wallExpiresAt: number,
  ): void {
    const block = slot >>> BLOCK_SHIFT;
    const at = slot & IN_BLOCK;
    const counts = this.#counts[block] as Uint32Array;
    counts[at * COUNTS + STATE] = state;
    counts[at * COUNTS + STATUS] = status;
    counts[at * COUNTS + BYTES] = bytes;
    const values = this.#values[block] as unknown[];
    values[at * VALUES + TOKEN] = "";
    values[at * VALUES + HEADERS] = headers;
    const times = this.#times[block] as Float64Array;
    times[at * TIMES + COMPLETED_AT] = completedAt;
    times[at * TIMES + EXPIRES_AT] = expiresAt;
    times[at * TIMES + WALL_EXPIRES_AT] = wallExpiresAt;
  }

  /** Keeps a copy of `body` in `slot`: the caller may reuse its buffer afterwards. */
  setBody(slot: number, body: Uint8Array): void {
    this.#bodyLength.set(slot, body.length);
    if (body.length === 0) return;
    if (body.length > INLINE_BODY_BYTES) {
      this.#body.set(slot, copyBytes(body));
      return;
    }
    this.#inlineMade(slot).set(body, shareOf(slot));
  }

  /** The short bodies' block that holds `slot`'s share, made if it was not yet. */
  #inlineMade(slot: number): Uint8Array {
    const index = slot >>> BLOCK_SHIFT;
    const block = this.inline[index] as Uint8Array;
    if (block.length > 0) return block;
    const made = new Uint8Array(this.#slotsIn(index) * INLINE_BODY_BYTES);
    this.inline[index] = made;
    return made;
  }

  /** A copy of the body in `slot`, the reader's own (cut from a shared block when short: see `copyBytesShared`). */
  bodyCopy(slot: number): Uint8Array {
    const length = this.#bodyLength.get(slot);
    if (length > INLINE_BODY_BYTES) return copyBytesShared(this.#body.get(slot));
    const start = shareOf(slot);
    return copyBytesShared((this.inline[slot >>> BLOCK_SHIFT] as Uint8Array).subarray(start, start + length));
  }

  /** Clears a slot, letting go of its strings and body: `find` no longer answers with it. */
  drop(slot: number): void {
    this.#index.remove(slot);
    this.#clear(slot);
  }

  #clear(slot: number): void {
    freeValues(this.#values[slot >>> BLOCK_SHIFT] as unknown[], (slot & IN_BLOCK) * VALUES);
  }

  /**
   * Whether `slot` (any number: a hint, maybe stale) is a slot made so far that holds `key` under
   * `token`: a lock found without the index hashing its key.
   */
  holds(slot: number, key: string, token: string): boolean {
    if (slot < 0) return false;
    const block = this.#values[slot >>> BLOCK_SHIFT];
    if (block === undefined) return false;
    const at = (slot & IN_BLOCK) * VALUES;
    return block[at + TOKEN] === token && block[at + KEY] === key;
  }

  /** Whether the slot was dropped (it stays in the ring until the head passes it). */
  dropped(slot: number): boolean {
    return this.#keys.get(slot) === "";
  }

  /** Copies every field of a slot, its key included (not its index entry), into `to`, whose block is made. */
  #copy(from: number, to: number): void {
    const times = this.#times;
    const counts = this.#counts;
    const values = this.#values;
    const fromBlock = from >>> BLOCK_SHIFT;
    const toBlock = to >>> BLOCK_SHIFT;
    const fromAt = from & IN_BLOCK;
    const toAt = to & IN_BLOCK;
    // Field by field: a subarray to copy from would be an object made per move.
    const fromTimes = times[fromBlock] as Float64Array;
    const toTimes = times[toBlock] as Float64Array;
    for (let field = 0; field < TIMES; field++)
      toTimes[toAt * TIMES + field] = fromTimes[fromAt * TIMES + field] as number;
    const fromCounts = counts[fromBlock] as Uint32Array;
    const toCounts = counts[toBlock] as Uint32Array;
    for (let field = 0; field < COUNTS; field++)
      toCounts[toAt * COUNTS + field] = fromCounts[fromAt * COUNTS + field] as number;
    const fromValues = values[fromBlock] as unknown[];
    const toValues = values[toBlock] as unknown[];
    for (let field = 0; field < VALUES; field++) toValues[toAt * VALUES + field] = fromValues[fromAt * VALUES + field];
    const length = this.#bodyLength.get(from);
    if (length > 0 && length <= INLINE_BODY_BYTES) {
      const start = shareOf(from);
      const share = (this.inline[fromBlock] as Uint8Array).subarray(start, start + length);
      this.#inlineMade(to).set(share, shareOf(to));
    }
  }

  /**
   * Doubles the ring (up to `maxSlots`). The ring may wrap: the slots before the head move to
   * just past the old end, so the ring stays contiguous; when they do not fit there (the last
   * step up to `maxSlots` may add fewer slots than there are before the head), the slots from
   * the head on move to the new end instead. The index grows first (drained into its larger
   * table as keys are inserted), then follows each move. No field is copied: the new slots'
   * blocks are made as the ring (or a move) reaches them.
   */
  #grow(): void {
    const length = this.#capacity;
    const larger = Math.min(length * 2, this.#maxSlots);
    this.#capacity = larger;
    this.#index.grow(larger);
    const added = larger - length;
    if (this.#head <= added) {
      for (let slot = 0; slot < this.#head; slot++) this.#move(slot, length + slot);
    } else {
      // From the newest end down, so no slot is overwritten before it has moved.
      for (let slot = length - 1; slot >= this.#head; slot--) this.#move(slot, slot + added);
      this.#head += added;
    }
  }

  /** Moves a slot's entry, and its index cell when it holds a key, to the free slot `to`. */
  #move(from: number, to: number): void {
    this.#blockFor(to);
    if (this.#keys.get(from) !== "") this.#index.move(from, to);
    this.#copy(from, to);
    this.#clear(from);
  }
}
