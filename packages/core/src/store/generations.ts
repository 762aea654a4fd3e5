/**
 * A key index in two generations, walked oldest-first, that never deletes on the hot path.
 *
 * Deleting from a large V8 Map leaves holes that are only reclaimed by rehashing the whole
 * table, which makes "insert one, evict the oldest" cost several times a plain insert. Here
 * new keys go into the current generation; the walk visits the previous one from its oldest
 * entry, and the owner marks what it drops as dead instead of deleting it. When the walk has
 * passed every entry of the previous generation, that whole Map is let go at once and the
 * current generation becomes the previous (quick-lru's trick, with exact oldest-first order).
 *
 * Physically a key may sit in both generations (an entry carried forward, or a dead one left
 * behind); `get` looks in the current one first, so the newest entry always wins. Memory is
 * bounded by two generations' keys.
 */
export class Generations<V> {
  #current = new Map<string, V>();
  #previous = new Map<string, V>();
  #walk: Iterator<[string, V]> = this.#previous.entries();
  #head: [string, V] | undefined;

  get(key: string): V | undefined {
    const value = this.#current.get(key);
    return value !== undefined ? value : this.#previous.get(key);
  }

  /** Adds `key` as the newest entry; the caller has removed any live entry for it. */
  add(key: string, value: V): void {
    this.#current.set(key, value);
  }

  /** Takes `value` out of the index now (off the hot path: the walk skips dead entries anyway). */
  delete(key: string, value: V): void {
    if (this.#current.get(key) === value) this.#current.delete(key);
    if (this.#previous.get(key) === value) this.#previous.delete(key);
    if (this.#head?.[1] === value) this.#head = undefined;
  }

  /** The oldest entry the walk has not passed, or undefined when the index is empty. */
  oldest(): [string, V] | undefined {
    if (this.#head !== undefined) return this.#head;
    let next = this.#walk.next();
    if (next.done) {
      if (this.#current.size === 0) return undefined;
      this.#previous = this.#current;
      this.#current = new Map();
      this.#walk = this.#previous.entries();
      next = this.#walk.next();
      if (next.done) return undefined;
    }
    this.#head = next.value;
    return this.#head;
  }

  /** Moves the walk past the oldest entry; the owner has marked it dead. */
  pass(): void {
    this.#head = undefined;
  }

  /** Moves the oldest entry to the newest position (a live entry that must not be dropped). */
  carry(): void {
    if (this.#head === undefined) return;
    const [key, value] = this.#head;
    // The same key may have a newer entry in the current generation; never shadow it.
    if (!this.#current.has(key)) this.#current.set(key, value);
    this.#head = undefined;
  }

  /** Physical entries held, live or dead (both generations). */
  get held(): number {
    return this.#current.size + this.#previous.size;
  }

  clear(): void {
    this.#current = new Map();
    this.#previous = new Map();
    this.#walk = this.#previous.entries();
    this.#head = undefined;
  }
}
