/**
 * Small byte strings copied into shared chunks instead of one ArrayBuffer each.
 *
 * Every ArrayBuffer is a separately tracked allocation that the garbage collector must
 * visit; a store holding 100,000 small response bodies spends more time on them than on
 * anything else. Bodies up to `SLAB_ITEM_LIMIT` bytes are appended to a 64 KiB chunk and
 * referenced by (chunk, offset, length); a chunk is freed by the collector once no record
 * refers to it. Records leave a store roughly oldest-first, so chunks empty in order too.
 * This is the trade Node's own `Buffer.allocUnsafe` pool makes.
 */

const CHUNK_BYTES = 64 * 1024;
export const SLAB_ITEM_LIMIT = 4 * 1024;

/** Where a copy lives; set on the holder itself so a copy allocates no extra object. */
export interface SlabRef {
  chunk: Uint8Array;
  offset: number;
  length: number;
}

export class Slab {
  #chunk = new Uint8Array(0);
  #used = 0;

  /** Copies `bytes` and points `into` at the copy. */
  copy(bytes: Uint8Array, into: SlabRef): void {
    const length = bytes.length;
    if (length > SLAB_ITEM_LIMIT) {
      into.chunk = bytes.slice();
      into.offset = 0;
    } else {
      if (this.#used + length > this.#chunk.length) {
        this.#chunk = new Uint8Array(CHUNK_BYTES);
        this.#used = 0;
      }
      this.#chunk.set(bytes, this.#used);
      into.chunk = this.#chunk;
      into.offset = this.#used;
      // 8-byte alignment keeps later copies on word boundaries.
      this.#used += (length + 7) & ~7;
    }
    into.length = length;
  }
}

/** A fresh copy of the bytes `ref` points at, owned by the caller. */
export const slabRead = (ref: SlabRef): Uint8Array => ref.chunk.slice(ref.offset, ref.offset + ref.length);
