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

/** The cells, their mask and the per-slot hashes of an empty index for `slots` slots. */
function emptyTables(slots: number): [Int32Array, number, Int32Array] {
  const cells = cellsFor(slots);
  return [new Int32Array(CELL * cells), cells - 1, new Int32Array(slots)];
}

/** Where the index reads a slot's key: the slots' key field. */
export interface KeyColumn {
  get(slot: number): string;
}

export class KeyIndex {
  #cells: Int32Array;
  /** Cells - 1: a hash masked with it is the key's home cell. */
  #mask: number;
  /** Per slot: its key's hash (meaningful while the slot is indexed), to find its cell. */
  #hashes: Int32Array;
  readonly #keys: KeyColumn;
  /**
   * Drawn on first use, not when the store is made: Cloudflare Workers refuse random values in
   * global scope, where apps make their store.
   */
  #seed: number | undefined;
  // A claim looks its key up and then adds it: the second hash is this one.
  #lastKey = "";
  #lastHash = 0;

  /** `keys` is the slots' key field (read, never written): a slot answers for the key in its cell. */
  constructor(keys: KeyColumn, slots: number) {
    this.#keys = keys;
    [this.#cells, this.#mask, this.#hashes] = emptyTables(slots);
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
    const cells = this.#cells;
    const mask = this.#mask;
    for (let cell = hash & mask; ; cell = (cell + 1) & mask) {
      const entry = cells[CELL * cell] as number;
      if (entry === 0) return -1;
      if (cells[CELL * cell + 1] === hash && this.#keys.get(entry - 1) === key) return entry - 1;
    }
  }

  /** Indexes `slot` for `key`, which is not indexed yet. */
  insert(key: string, slot: number): void {
    const hash = this.#hash(key);
    this.#hashes[slot] = hash;
    this.#place(hash, slot);
  }

  #place(hash: number, slot: number): void {
    const cells = this.#cells;
    const mask = this.#mask;
    let cell = hash & mask;
    while (cells[CELL * cell] !== 0) cell = (cell + 1) & mask;
    cells[CELL * cell] = slot + 1;
    cells[CELL * cell + 1] = hash;
  }

  /** The cell that holds `slot`, which is indexed. */
  #cellOf(slot: number): number {
    const cells = this.#cells;
    const mask = this.#mask;
    let cell = (this.#hashes[slot] as number) & mask;
    while (cells[CELL * cell] !== slot + 1) cell = (cell + 1) & mask;
    return cell;
  }

  /** The key indexed at `from` now lives at slot `to`. */
  move(from: number, to: number): void {
    this.#cells[CELL * this.#cellOf(from)] = to + 1;
    this.#hashes[to] = this.#hashes[from] as number;
  }

  /** Forgets `slot`, which is indexed: later cells of its run shift back into the gap. */
  remove(slot: number): void {
    const cells = this.#cells;
    const mask = this.#mask;
    let gap = this.#cellOf(slot);
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

  /**
   * Makes room for `slots` slots, every indexed slot staying indexed where it is: the cells are
   * laid out anew from the hashes they hold, no key is hashed or read again. Slots that then
   * move to another slot number are told with `move`.
   */
  grow(slots: number): void {
    const old = this.#cells;
    const hashes = this.#hashes;
    [this.#cells, this.#mask, this.#hashes] = emptyTables(slots);
    this.#hashes.set(hashes);
    for (let cell = 0; cell < old.length; cell += CELL) {
      const entry = old[cell] as number;
      if (entry !== 0) this.#place(old[cell + 1] as number, entry - 1);
    }
  }
}
