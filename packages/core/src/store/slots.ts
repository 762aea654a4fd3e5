/**
 * Where the memory store's entries live: fields indexed by a slot number, in blocks of 1,024
 * slots; lanes, lists of slots in the order they joined them; and a key index that maps a key
 * to its slot.
 *
 * No object per entry: numbers sit in typed arrays, strings in plain arrays, and short bodies
 * in a per-slot share of a block, so what the garbage collector sees of a record is its key,
 * its header list (often shared) and only a long body; the index holds small integers, not
 * pointers. An entry keeps its slot until it is dropped, and a dropped slot is free at once:
 * taken again before a new one is made. Slots are made in order up to `maxSlots`, their blocks
 * as they are reached, so a store that holds little stays small and growing copies no field
 * (the key index moves into its larger table a few cells at a time).
 *
 * A lane is a list through two fields of its slots (the next and the previous), so an entry
 * joins the end of a lane, or leaves it from anywhere, in a few writes. The memory store keeps
 * one lane for locks and one per retention for records: a lane's first slot is its oldest.
 *
 * The index (key-index.ts) is open addressing over slot numbers: a slot is indexed while it
 * holds a key, and dropping it removes it from the index.
 */

import { copyBytes, copyBytesShared } from "../encoding.js";
import { KeyIndex } from "./key-index.js";

/**
 * Slots come in blocks of this many, each made when the first of its slots is: the store grows
 * (up to `maxSlots`) without copying a field. New memory is dear on first touch (a
 * page fault: about 14 µs a 4 KiB page on these VMs), and columns copied into ones twice as
 * large stopped the process while they were touched: 314 ms at the step from 524,288 slots to
 * 1,048,576, every request in flight waiting. A block is touched as it fills instead. The price
 * is a second lookup per field read, the block's.
 */
const BLOCK_SHIFT = 10;
const BLOCK_SLOTS = 1 << BLOCK_SHIFT;
const IN_BLOCK = BLOCK_SLOTS - 1;

/** Slots the key index is first made for (up to `maxSlots`): one block. */
const INITIAL_SLOTS = BLOCK_SLOTS;

/** No slot: the end of a lane, or of the free slots. */
export const NO_SLOT = -1;

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
const COUNTS = 8;
const STATE = 0;
const STATUS = 1;
const BYTES = 2;
const BODY_LENGTH = 3;
/** The key index's hash of the slot's key (key-index.ts), while the slot is indexed. */
const HASH = 4;
/** The next slot + 1 (0: none) in the slot's lane, or among the free slots. */
const NEXT = 5;
/** The previous slot + 1 (0: none) in the slot's lane. */
const PREVIOUS = 6;
/** The slot's lane, while it holds an entry. */
const LANE = 7;
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

/** The fields (in blocks), the lanes and the index; the memory store decides what the fields and lanes mean. */
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
  readonly #next = new CountField(this.#counts, NEXT);
  readonly #previous = new CountField(this.#counts, PREVIOUS);
  readonly #lane = new CountField(this.#counts, LANE);
  /** Per slot: the key, or "" when the slot is free (keys are never empty). */
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
  /** Slots the key index has room for: it doubles, up to `#maxSlots`, as slots are made. */
  #capacity: number;
  /** Slots made so far: 0 to `#made` - 1, each holding an entry or free. */
  #made = 0;
  /** The free slot dropped last, or NO_SLOT; the other free slots follow it through NEXT. */
  #free = NO_SLOT;
  /** Each lane's first and last slot (NO_SLOT when empty); a lane not used yet is empty. */
  readonly #firsts: number[] = [];
  readonly #lasts: number[] = [];
  readonly #index: KeyIndex;

  constructor(maxSlots: number) {
    this.#maxSlots = maxSlots;
    this.#capacity = Math.min(INITIAL_SLOTS, maxSlots);
    this.#index = new KeyIndex(this.#keys, this.#keyHash, this.#capacity);
  }

  /** Slots the key index has room for now. */
  get capacity(): number {
    return this.#capacity;
  }

  /** The slot holding `key`, or -1. */
  find(key: string): number {
    return this.#index.find(key);
  }

  /**
   * Takes a slot for `key`, which no slot holds, at the end of `lane`; the caller has made room
   * (fewer than `maxSlots` held).
   */
  add(key: string, lane = 0): number {
    const slot = this.#take();
    this.#keys.set(slot, key);
    this.#index.insert(key, slot);
    this.#append(slot, lane);
    return slot;
  }

  /** The free slot dropped last (its block in use, likely in cache too), or else the next one made. */
  #take(): number {
    const free = this.#free;
    if (free !== NO_SLOT) {
      this.#free = this.#next.get(free) - 1;
      return free;
    }
    if (this.#made === this.#capacity) this.#grow();
    const slot = this.#made++;
    this.#blockFor(slot);
    return slot;
  }

  /** The first (oldest) slot of `lane`, or NO_SLOT. */
  first(lane: number): number {
    return this.#firsts[lane] ?? NO_SLOT;
  }

  /** The slot after `slot` in its lane, or NO_SLOT. */
  next(slot: number): number {
    return this.#next.get(slot) - 1;
  }

  /** Moves `slot`, which holds an entry, to the end of `lane` (its own one too): it is that lane's newest. */
  moveTo(slot: number, lane: number): void {
    this.#unlink(slot);
    this.#append(slot, lane);
  }

  #append(slot: number, lane: number): void {
    const last = this.#lasts[lane] ?? NO_SLOT;
    this.#lane.set(slot, lane);
    this.#next.set(slot, 0);
    this.#previous.set(slot, last + 1);
    if (last === NO_SLOT) this.#firsts[lane] = slot;
    else this.#next.set(last, slot + 1);
    this.#lasts[lane] = slot;
  }

  #unlink(slot: number): void {
    const lane = this.#lane.get(slot);
    const next = this.#next.get(slot) - 1;
    const previous = this.#previous.get(slot) - 1;
    if (previous === NO_SLOT) this.#firsts[lane] = next;
    else this.#next.set(previous, next + 1);
    if (next === NO_SLOT) this.#lasts[lane] = previous;
    else this.#previous.set(next, previous + 1);
  }

  /** Makes the block that holds `slot`, if it was not yet; every cell of a new block is a free slot's. */
  #blockFor(slot: number): void {
    const index = slot >>> BLOCK_SHIFT;
    if (index < this.#values.length) return;
    // Blocks are made in order, as slots are.
    for (let next = this.#values.length; next <= index; next++) {
      const slots = this.#slotsIn(next);
      this.#times.push(new Float64Array(slots * TIMES));
      this.#counts.push(new Uint32Array(slots * COUNTS));
      this.#values.push(valueBlock(slots));
      this.inline.push(NO_BODY);
    }
  }

  /** Slots in block `index`: all but the last of a store whose bound is not a whole number of blocks hold BLOCK_SLOTS. */
  #slotsIn(index: number): number {
    return Math.min(BLOCK_SLOTS, this.#maxSlots - index * BLOCK_SLOTS);
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

  /** Drops the entry in `slot`: it leaves its lane and the index, lets go of its strings and body, and is free. */
  drop(slot: number): void {
    this.#index.remove(slot);
    this.#unlink(slot);
    this.#clear(slot);
    this.#next.set(slot, this.#free + 1);
    this.#free = slot;
  }

  #clear(slot: number): void {
    freeValues(this.#values[slot >>> BLOCK_SHIFT] as unknown[], (slot & IN_BLOCK) * VALUES);
  }

  /**
   * Whether `slot` (any number: a hint, maybe stale) is a slot made so far that holds `key` under
   * `token`: a lock found without the index hashing its key. Never for the empty token: a free
   * slot holds the empty key and token, a record the empty token, and a lock's token is never empty.
   */
  holds(slot: number, key: string, token: string): boolean {
    if (slot < 0 || token === "") return false;
    const block = this.#values[slot >>> BLOCK_SHIFT];
    if (block === undefined) return false;
    const at = (slot & IN_BLOCK) * VALUES;
    return block[at + TOKEN] === token && block[at + KEY] === key;
  }

  /**
   * Makes room in the key index for twice the slots (up to `maxSlots`) once the slots made reach
   * its bound: it drains into its larger table as keys are inserted, and no field is copied.
   */
  #grow(): void {
    this.#capacity = Math.min(this.#capacity * 2, this.#maxSlots);
    this.#index.grow(this.#capacity);
  }
}
