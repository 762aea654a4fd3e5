/**
 * The memory store's key → slot index: open addressing with linear probing in one
 * `Int32Array` of cells, each a slot number and its key's hash side by side.
 *
 * A `Map<string, number>` of this size was the largest cost of a claim+complete pair (three
 * or four lookups a pair, a table rehashed as it grows, and old-space churn for the garbage
 * collector). Here a lookup is one hash of the key and, at a load of at most one half, one or
 * two adjacent cells read; the hash in the cell is compared before the slot's key, so a probe
 * rarely touches a key string it does not want. Deleting shifts the following cells back (no
 * tombstones), so lookups stay short however many keys come and go.
 *
 * The hash is seeded per index from a random source: keys come from clients, and a hash they
 * could predict would let them choose keys that collide and make every probe long.
 *
 * Growing never stops the process: the larger table is made (zeroed memory, touched as keys
 * reach it) and the old one is drained into it a few cells per insert, lookups asking both
 * meanwhile. Laid out anew at once, a million slots' worth stopped every request for 64 ms.
 */

/** One hash per key: a multiply-xorshift per UTF-16 unit, then murmur3's finalizer. */
export function hashKey(key: string, seed: number): number {
  let h = seed;
  for (let i = 0; i < key.length; i++) {
    h = Math.imul(h ^ key.charCodeAt(i), 0x5bd1e995);
    h ^= h >>> 15;
  }
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) | 0;
}

function randomSeed(): number {
  const crypto = globalThis.crypto;
  if (crypto?.getRandomValues) return crypto.getRandomValues(new Int32Array(1))[0] as number;
  return (Math.random() * 0x1_0000_0000) | 0;
}

/** Cells in the table for `slots` slots: a power of two, at least twice as many. */
function cellsFor(slots: number): number {
  let cells = 8;
  while (cells < 2 * slots) cells *= 2;
  return cells;
}

/**
 * Two numbers per cell: the slot + 1 of a key that hashed there or was shifted past it (0
 * when empty), and that key's hash.
 */
const CELL = 2;

/**
 * Old cells drained per insert while the index grows. The old table has at most four cells per
 * slot it was made for (`cellsFor` rounds up to a power of two), and at least as many slots again
 * are made before the next growth: 8 a step drains it well before then.
 */
const DRAIN_CELLS = 8;

/** Where the index reads a slot's key: the slots' key field. */
export interface KeyColumn {
  get(slot: number): string;
}

/** Where the index keeps each indexed slot's hash (to find its cell): a field of the slots. */
export interface HashColumn {
  get(slot: number): number;
  set(slot: number, hash: number): void;
}

/** The cell of a table holding `slot`, whose key hashed to `hash`, or -1: a run ends at an empty cell. */
function cellIn(cells: Int32Array, mask: number, hash: number, slot: number): number {
  for (let cell = hash & mask; ; cell = (cell + 1) & mask) {
    const entry = cells[CELL * cell] as number;
    if (entry === slot + 1) return cell;
    if (entry === 0) return -1;
  }
}

function place(cells: Int32Array, mask: number, hash: number, slot: number): void {
  let cell = hash & mask;
  while (cells[CELL * cell] !== 0) cell = (cell + 1) & mask;
  cells[CELL * cell] = slot + 1;
  cells[CELL * cell + 1] = hash;
}

/** Empties `gap`: later cells of its run shift back into it. */
function removeAt(cells: Int32Array, mask: number, gap: number): void {
  for (let cell = (gap + 1) & mask; ; cell = (cell + 1) & mask) {
    const entry = cells[CELL * cell] as number;
    if (entry === 0) break;
    const hash = cells[CELL * cell + 1] as number;
    const home = hash & mask;
    // The entry may fill the gap unless its home lies cyclically in (gap, cell]: then
    // moving it before its home would hide it from lookups.
    const stays = gap <= cell ? gap < home && home <= cell : gap < home || home <= cell;
    if (!stays) {
      cells[CELL * gap] = entry;
      cells[CELL * gap + 1] = hash;
      gap = cell;
    }
  }
  cells[CELL * gap] = 0;
}

export class KeyIndex {
  #cells: Int32Array;
  /** Cells - 1: a hash masked with it is the key's home cell. */
  #mask: number;
  /**
   * While the index grows: the smaller table, drained into `#cells` from its first cell on.
   * Every indexed slot is in one table or the other; new ones go to `#cells`.
   */
  #old: Int32Array | undefined;
  #oldMask = 0;
  /** The next old cell to drain. Those before it are empty: removals only shift entries back towards it. */
  #draining = 0;
  readonly #keys: KeyColumn;
  readonly #hashes: HashColumn;
  /**
   * Drawn on first use, not when the store is made: Cloudflare Workers refuse random values in
   * global scope, where apps make their store.
   */
  #seed: number | undefined;
  // A claim looks its key up and then adds it: the second hash is this one.
  #lastKey = "";
  #lastHash = 0;

  /** `keys` and `hashes` are fields of the slots: a slot answers for the key in its cell. */
  constructor(keys: KeyColumn, hashes: HashColumn, slots: number) {
    this.#keys = keys;
    this.#hashes = hashes;
    const cells = cellsFor(slots);
    this.#cells = new Int32Array(CELL * cells);
    this.#mask = cells - 1;
  }

  #hash(key: string): number {
    if (key !== this.#lastKey) {
      this.#lastKey = key;
      this.#seed ??= randomSeed();
      this.#lastHash = hashKey(key, this.#seed);
    }
    return this.#lastHash;
  }

  /** The slot indexed for `key`, or -1. */
  find(key: string): number {
    const hash = this.#hash(key);
    const found = this.#findIn(this.#cells, this.#mask, hash, key);
    if (found >= 0 || this.#old === undefined) return found;
    return this.#findIn(this.#old, this.#oldMask, hash, key);
  }

  #findIn(cells: Int32Array, mask: number, hash: number, key: string): number {
    for (let cell = hash & mask; ; cell = (cell + 1) & mask) {
      const entry = cells[CELL * cell] as number;
      if (entry === 0) return -1;
      if (cells[CELL * cell + 1] === hash && this.#keys.get(entry - 1) === key) return entry - 1;
    }
  }

  /** Indexes `slot` for `key`, which is not indexed yet. */
  insert(key: string, slot: number): void {
    const hash = this.#hash(key);
    this.#hashes.set(slot, hash);
    place(this.#cells, this.#mask, hash, slot);
    if (this.#old !== undefined) this.#drain(DRAIN_CELLS);
  }

  /** Forgets `slot`, which is indexed: later cells of its run shift back into the gap. */
  remove(slot: number): void {
    const hash = this.#hashOf(slot);
    const cell = cellIn(this.#cells, this.#mask, hash, slot);
    if (cell >= 0) removeAt(this.#cells, this.#mask, cell);
    else removeAt(this.#old as Int32Array, this.#oldMask, cellIn(this.#old as Int32Array, this.#oldMask, hash, slot));
  }

  /** A slot's hash as the cells hold it (a signed 32-bit number: the field may keep it unsigned). */
  #hashOf(slot: number): number {
    return this.#hashes.get(slot) | 0;
  }

  /**
   * Makes room for `slots` slots, every indexed slot staying indexed where it is: a table twice
   * as large (at least), which the current one drains into as keys are inserted; no key is hashed
   * or read again. A growth still draining is finished first.
   */
  grow(slots: number): void {
    if (this.#old !== undefined) this.#drain(Number.POSITIVE_INFINITY);
    const cells = cellsFor(slots);
    if (CELL * cells <= this.#cells.length) return;
    this.#old = this.#cells;
    this.#oldMask = this.#mask;
    this.#draining = 0;
    this.#cells = new Int32Array(CELL * cells);
    this.#mask = cells - 1;
  }

  /** Moves the entries of up to `count` old cells into the new table; drops the old one once empty. */
  #drain(count: number): void {
    const old = this.#old as Int32Array;
    const oldCells = this.#oldMask + 1;
    let cell = this.#draining;
    for (let left = count; left > 0 && cell < oldCells; ) {
      const entry = old[CELL * cell] as number;
      left--;
      if (entry === 0) {
        cell++;
        continue;
      }
      // Taken out of the old table as a removal would, which may shift the next entry of its
      // run into this cell: looked at again before moving on.
      place(this.#cells, this.#mask, old[CELL * cell + 1] as number, entry - 1);
      removeAt(old, this.#oldMask, cell);
    }
    this.#draining = cell;
    if (cell >= oldCells) this.#old = undefined;
  }
}
