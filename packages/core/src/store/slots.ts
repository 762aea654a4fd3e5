/**
 * Where the memory store's entries live: columns indexed by a slot number, a ring of slots in
 * insertion order, and a key index that maps a key to its slot.
 *
 * No object per entry: numbers sit in typed arrays, strings in plain arrays, and short bodies
 * in a per-slot share of one column (made in blocks), so what the garbage collector sees of a
 * record is its key, its header list (often shared) and only a long body; the index holds small
 * integers, not pointers. The ring gives the oldest-first order for sweeping and eviction; it
 * grows by doubling up to `maxSlots`, so a store that holds little stays small.
 *
 * The index (key-index.ts) is open addressing over slot numbers: a slot is indexed while it
 * holds a key, and dropping it removes it from the index.
 */

import { copyBytes } from "../encoding.js";
import { KeyIndex } from "./key-index.js";

const INITIAL_SLOTS = 1024;

/**
 * Bodies up to this size are copied into their slot's share of a column rather than into an
 * array of their own: a typed array per record, promoted and then swept, was the largest cost
 * of a write. The share is fixed per slot, so it is bounded by entries like every other
 * column, and it is reused with the slot, so retention never pins it (unlike shared chunks).
 */
const INLINE_BODY_BYTES = 128;

/**
 * The short bodies' column is cut into blocks of this many slots, each made at the first short
 * body in its slots: the ring grows without copying it. New memory is dear on first touch (a
 * page fault: ~360 ns a slot's share on these VMs, against ~17 ns for memory in use), and a
 * column copied into one twice as large at each doubling touched each share twice.
 */
const INLINE_BLOCK_SLOTS = 1024;
const INLINE_BLOCK_SHIFT = 10;

/** A dropped slot's body and headers: shared, so dropping lets go of the entry's own. */
const NO_BODY = new Uint8Array(0);
const NO_HEADERS: string[] = [];

/** A typed column grown to `length`, keeping its cells. */
function grown<T extends Float64Array | Uint32Array | Uint16Array | Uint8Array>(column: T, length: number): T {
  const larger = new (column.constructor as new (length: number) => T)(length);
  larger.set(column);
  return larger;
}

/**
 * Appends `value` until `column` has `length` cells. Set in one step and filled: about three
 * times faster than a push per cell as the ring doubles (2.5 against 7 ms a column up to
 * 131,072 slots on Node 20). The array is then "holey" to V8, which reads it as fast.
 */
function extend<T>(column: T[], length: number, value: T): T[] {
  const from = column.length;
  column.length = length;
  return column.fill(value, from);
}

/** Inline blocks for a ring of `slots` slots. */
function blocksFor(slots: number): number {
  return Math.ceil(slots / INLINE_BLOCK_SLOTS);
}

/** Where `slot`'s share of the short bodies starts in its block. */
function shareOf(slot: number): number {
  return (slot & (INLINE_BLOCK_SLOTS - 1)) * INLINE_BODY_BYTES;
}

/** The columns, the ring and the index; the memory store decides what the cells mean. */
export class Slots {
  /** Per slot: the key, or "" when the slot is free or dropped (keys are never empty). */
  keys: string[];
  state: Uint8Array;
  token: string[];
  fingerprint: string[];
  createdAt: Float64Array;
  completedAt: Float64Array;
  expiresAt: Float64Array;
  /** A record's end on the system clock (the memory store's `expiresAt` is on its monotonic one). */
  wallExpiresAt: Float64Array;
  /** Three digits: 16 bits. */
  status: Uint16Array;
  /** A record's size, at most the store's `maxRecordBytes`, which it keeps under 2^32 (`MAX_RECORD_BYTES`). */
  bytes: Uint32Array;
  /** Header names and values, flat: [name, value, name, value, …]. */
  headers: string[][];
  /** At most `bytes`. */
  bodyLength: Uint32Array;
  /** A body longer than INLINE_BODY_BYTES: the store's own copy. */
  body: Uint8Array[];
  /**
   * Shorter bodies: INLINE_BODY_BYTES per slot, in blocks of INLINE_BLOCK_SLOTS slots. A block
   * is empty until the first short body in its slots that is not empty: a store that keeps none
   * (a webhook receiver's records are bodiless) never pays for the column, most of a slot's bytes.
   */
  inline: Uint8Array[];

  readonly #maxSlots: number;
  #head = 0;
  /** Slots in the ring from the head, live or dropped. */
  #count = 0;
  readonly #index: KeyIndex;

  constructor(maxSlots: number) {
    this.#maxSlots = maxSlots;
    const length = Math.min(INITIAL_SLOTS, maxSlots);
    this.keys = extend([], length, "");
    this.state = new Uint8Array(length);
    this.token = extend([], length, "");
    this.fingerprint = extend([], length, "");
    this.createdAt = new Float64Array(length);
    this.completedAt = new Float64Array(length);
    this.expiresAt = new Float64Array(length);
    this.wallExpiresAt = new Float64Array(length);
    this.status = new Uint16Array(length);
    this.bytes = new Uint32Array(length);
    this.headers = extend([], length, NO_HEADERS);
    this.bodyLength = new Uint32Array(length);
    this.body = extend([], length, NO_BODY);
    this.inline = extend([], blocksFor(length), NO_BODY);
    this.#index = new KeyIndex(this.keys, length);
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
    this.keys[slot] = key;
    this.#index.insert(key, slot);
    return slot;
  }

  /** The slot after the newest, now in the ring. */
  #take(): number {
    if (this.#count === this.keys.length) this.#grow();
    const slot = (this.#head + this.#count) % this.keys.length;
    this.#count++;
    return slot;
  }

  /** The slot `index` places after the oldest in the ring (0 is the oldest), for a walk that moves nothing. */
  inRing(index: number): number {
    return (this.#head + index) % this.keys.length;
  }

  /** The oldest slot in the ring, or -1 when it is empty. */
  oldest(): number {
    return this.#count === 0 ? -1 : this.#head;
  }

  /** Moves the head past the oldest slot, which the caller has dropped. */
  pass(): void {
    this.#head = (this.#head + 1) % this.keys.length;
    this.#count--;
  }

  /** Makes the oldest slot the newest (a live entry that must not be dropped). */
  carry(): void {
    const from = this.#head;
    if (this.#count < this.keys.length) {
      this.#move(from, this.#take());
      this.pass();
      return;
    }
    // A full ring: the slot after the newest is the head itself, so the entry stays put.
    this.#head = (from + 1) % this.keys.length;
  }

  /** Keeps a copy of `body` in `slot`: the caller may reuse its buffer afterwards. */
  setBody(slot: number, body: Uint8Array): void {
    this.bodyLength[slot] = body.length;
    if (body.length === 0) return;
    if (body.length > INLINE_BODY_BYTES) {
      this.body[slot] = copyBytes(body);
      return;
    }
    this.#blockMade(slot).set(body, shareOf(slot));
  }

  /** The inline block that holds `slot`'s share, made if it was not yet. */
  #blockMade(slot: number): Uint8Array {
    const index = slot >>> INLINE_BLOCK_SHIFT;
    const block = this.inline[index] as Uint8Array;
    if (block.length > 0) return block;
    const slots = Math.min(INLINE_BLOCK_SLOTS, this.#maxSlots - index * INLINE_BLOCK_SLOTS);
    const made = new Uint8Array(slots * INLINE_BODY_BYTES);
    this.inline[index] = made;
    return made;
  }

  /** A copy of the body in `slot`, the reader's own. */
  bodyCopy(slot: number): Uint8Array {
    const length = this.bodyLength[slot] as number;
    if (length > INLINE_BODY_BYTES) return copyBytes(this.body[slot] as Uint8Array);
    const start = shareOf(slot);
    return (this.inline[slot >>> INLINE_BLOCK_SHIFT] as Uint8Array).slice(start, start + length);
  }

  /** Clears a slot, letting go of its strings and body: `find` no longer answers with it. */
  drop(slot: number): void {
    this.#index.remove(slot);
    this.#clear(slot);
  }

  #clear(slot: number): void {
    this.keys[slot] = "";
    this.token[slot] = "";
    this.fingerprint[slot] = "";
    this.headers[slot] = NO_HEADERS;
    this.body[slot] = NO_BODY;
  }

  /** Whether the slot was dropped (it stays in the ring until the head passes it). */
  dropped(slot: number): boolean {
    return this.keys[slot] === "";
  }

  /** Copies every column of a slot, its key included (not its index entry). */
  #copy(from: number, to: number): void {
    this.keys[to] = this.keys[from] as string;
    this.state[to] = this.state[from] as number;
    this.token[to] = this.token[from] as string;
    this.fingerprint[to] = this.fingerprint[from] as string;
    this.createdAt[to] = this.createdAt[from] as number;
    this.completedAt[to] = this.completedAt[from] as number;
    this.expiresAt[to] = this.expiresAt[from] as number;
    this.wallExpiresAt[to] = this.wallExpiresAt[from] as number;
    this.status[to] = this.status[from] as number;
    this.bytes[to] = this.bytes[from] as number;
    this.headers[to] = this.headers[from] as string[];
    this.bodyLength[to] = this.bodyLength[from] as number;
    this.body[to] = this.body[from] as Uint8Array;
    const length = this.bodyLength[from] as number;
    if (length > 0 && length <= INLINE_BODY_BYTES) {
      const start = shareOf(from);
      const share = (this.inline[from >>> INLINE_BLOCK_SHIFT] as Uint8Array).subarray(start, start + length);
      this.#blockMade(to).set(share, shareOf(to));
    }
  }

  /**
   * Doubles the ring (up to `maxSlots`). The ring may wrap: the slots before the head move to
   * just past the old end, so the ring stays contiguous; when they do not fit there (the last
   * step up to `maxSlots` may add fewer slots than there are before the head), the slots from
   * the head on move to the new end instead. The index grows first, then follows each move.
   */
  #grow(): void {
    const length = this.keys.length;
    const larger = Math.min(length * 2, this.#maxSlots);
    this.state = grown(this.state, larger);
    this.createdAt = grown(this.createdAt, larger);
    this.completedAt = grown(this.completedAt, larger);
    this.expiresAt = grown(this.expiresAt, larger);
    this.wallExpiresAt = grown(this.wallExpiresAt, larger);
    this.status = grown(this.status, larger);
    this.bytes = grown(this.bytes, larger);
    this.bodyLength = grown(this.bodyLength, larger);
    extend(this.inline, blocksFor(larger), NO_BODY);
    extend(this.keys, larger, "");
    extend(this.token, larger, "");
    extend(this.fingerprint, larger, "");
    extend(this.headers, larger, NO_HEADERS);
    extend(this.body, larger, NO_BODY);
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
    if (this.keys[from] !== "") this.#index.move(from, to);
    this.#copy(from, to);
    this.#clear(from);
  }
}
