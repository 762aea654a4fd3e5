/**
 * Byte encodings core needs, in plain TypeScript (no `Buffer`, so core runs anywhere).
 * Decoders return `undefined` instead of throwing: a signature that does not decode is
 * simply a signature that does not match.
 */

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();

/**
 * How many bytes `text` takes in UTF-8, without encoding it: 1 per code unit below U+0080, 2
 * below U+0800, 4 per surrogate pair, 3 for the rest, a lone surrogate included (it encodes as
 * U+FFFD, as `TextEncoder` and `Buffer` write it).
 */
function utf8ByteLength(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) continue;
    if (unit < 0x800) {
      bytes += 1;
      continue;
    }
    // Three bytes for one code unit; a surrogate pair's four for its two, its low half skipped.
    bytes += 2;
    if (unit <= 0xdbff && unit >= 0xd800) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
    }
  }
  return bytes;
}

/**
 * A copy of the bytes in memory of its own. Not `bytes.slice()`: on a Node `Buffer` (what
 * `Buffer.from` and most body readers hand over) that is a view of the same memory, often a slice
 * of Node's shared 8 KiB pool, so the copy would change with the original and keep the pool alive.
 */
export function copyBytes(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(bytes);
}

/** Texts up to this many UTF-16 units are encoded into a block (at most 3 bytes each: 4 KiB). */
const SHARED_TEXT_UNITS = 1365;
/** Bytes up to this many are copied into a block (see `copyBytesShared`). */
const SHARED_COPY_BYTES = 4 * 1024;
/** V8 keeps a typed array this short inside its heap (`typed_array_max_size_in_heap`): cheap to make. */
const IN_HEAP_BYTES = 64;
const SHARED_BLOCK_BYTES = 16 * 1024;
let sharedBlock = new Uint8Array(0);
let sharedUsed = 0;

/**
 * Where the next `bytes` go in the shared block: a new block when the current one has no room
 * left. Views are cut as Node's `Buffer` cuts small ones from its pool: an array of its own
 * costs ten times as much above 64 bytes (V8 allocates its memory outside the heap, ~1.1 µs on
 * Node 20, against ~0.1 µs here). Views never overlap and no byte is written twice, so each
 * stays as written; but a view's `.buffer` is the block, other views' bytes included (as with a
 * small `Buffer`: read through `byteOffset`, and copy before transferring).
 */
function sharedRoom(bytes: number): number {
  if (sharedBlock.length - sharedUsed < bytes) {
    sharedBlock = new Uint8Array(SHARED_BLOCK_BYTES);
    sharedUsed = 0;
  }
  return sharedUsed;
}

/**
 * The text's UTF-8 bytes as a view of a block shared with other bytes' (see `sharedRoom`): for
 * a response's body on its way to the store, which keeps a copy of its own.
 */
export function encodeUtf8Shared(text: string): Uint8Array {
  if (text.length > SHARED_TEXT_UNITS) return utf8Encoder.encode(text);
  const start = sharedRoom(text.length * 3);
  const { written } = utf8Encoder.encodeInto(text, sharedBlock.subarray(start));
  sharedUsed = start + written;
  return sharedBlock.subarray(start, sharedUsed);
}

/**
 * A copy of the bytes, the caller's own, as a view of a block shared with other bytes' (see
 * `sharedRoom`) when they are few: for a stored body read out to be sent (every replay's). Up to
 * 64 bytes, an array of their own, which V8 makes in its heap for less than a view costs.
 */
export function copyBytesShared(bytes: Uint8Array): Uint8Array {
  if (bytes.length <= IN_HEAP_BYTES || bytes.length > SHARED_COPY_BYTES) return copyBytes(bytes);
  const start = sharedRoom(bytes.length);
  sharedUsed = start + bytes.length;
  const copy = sharedBlock.subarray(start, sharedUsed);
  copy.set(bytes);
  return copy;
}

/** UTF-8, with one shared encoder and decoder. */
export const utf8 = {
  /** The text's UTF-8 bytes. */
  encode: (text: string): Uint8Array => utf8Encoder.encode(text),
  /** How many bytes `encode(text)` would return, without encoding. */
  byteLength: utf8ByteLength,
  /** The bytes as text; invalid sequences become U+FFFD. */
  decode: (bytes: Uint8Array): string => utf8Decoder.decode(bytes),
};

const HEX_DIGITS = "0123456789abcdef";
const BASE64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Index by char code; 255 marks "not in the alphabet". Base64 accepts both the standard
// and the URL-safe alphabet, since senders and copy-pasted secrets use either.
const HEX_VALUE = new Uint8Array(128).fill(255);
for (let i = 0; i < 16; i++) {
  HEX_VALUE[HEX_DIGITS.charCodeAt(i)] = i;
  HEX_VALUE[HEX_DIGITS.toUpperCase().charCodeAt(i)] = i;
}
const BASE64_VALUE = new Uint8Array(128).fill(255);
for (let i = 0; i < 64; i++) BASE64_VALUE[BASE64_ALPHABET.charCodeAt(i)] = i;
BASE64_VALUE["-".charCodeAt(0)] = 62;
BASE64_VALUE["_".charCodeAt(0)] = 63;

/** Lower-case hex. */
export function encodeHex(bytes: Uint8Array): string {
  let out = "";
  for (const byte of bytes) out += HEX_DIGITS[byte >> 4] + (HEX_DIGITS[byte & 15] as string);
  return out;
}

export function decodeHex(text: string): Uint8Array | undefined {
  if (text.length % 2 !== 0) return undefined;
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) {
    const hi = HEX_VALUE[text.charCodeAt(2 * i)] ?? 255;
    const lo = HEX_VALUE[text.charCodeAt(2 * i + 1)] ?? 255;
    if (hi === 255 || lo === 255) return undefined;
    out[i] = (hi << 4) | lo;
  }
  return out;
}

/** Standard base64, padded. */
export function encodeBase64(bytes: Uint8Array): string {
  let out = "";
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = ((bytes[i] as number) << 16) | ((bytes[i + 1] as number) << 8) | (bytes[i + 2] as number);
    out +=
      (BASE64_ALPHABET[n >> 18] as string) +
      BASE64_ALPHABET[(n >> 12) & 63] +
      BASE64_ALPHABET[(n >> 6) & 63] +
      BASE64_ALPHABET[n & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = (bytes[i] as number) << 16;
    out += `${BASE64_ALPHABET[n >> 18]}${BASE64_ALPHABET[(n >> 12) & 63]}==`;
  } else if (rest === 2) {
    const n = ((bytes[i] as number) << 16) | ((bytes[i + 1] as number) << 8);
    out += `${BASE64_ALPHABET[n >> 18]}${BASE64_ALPHABET[(n >> 12) & 63]}${BASE64_ALPHABET[(n >> 6) & 63]}=`;
  }
  return out;
}

/**
 * Decodes standard or URL-safe base64, padded or not: the text from `start` to `end` (the whole
 * text by default), so a signature is decoded where it stands in its header, without a slice to
 * read through. A quad of characters (three bytes) a step: a signature's 44 characters are
 * decoded on every delivery.
 */
export function decodeBase64(text: string, start = 0, end = text.length): Uint8Array | undefined {
  let stop = end;
  while (stop > start && text.charCodeAt(stop - 1) === 61 /* = */) stop--;
  const length = stop - start;
  if (end - stop > 2 || length % 4 === 1) return undefined;
  if ((end - start) % 4 !== 0 && stop !== end) return undefined; // padding only on whole quads
  const out = new Uint8Array((length * 3) >> 2);
  const whole = stop - (length % 4);
  let o = 0;
  for (let i = start; i < whole; i += 4) {
    const n = sextets(text, i, 4);
    if (n < 0) return undefined;
    out[o] = n >> 16;
    out[o + 1] = (n >> 8) & 0xff;
    out[o + 2] = n & 0xff;
    o += 3;
  }
  // Two or three characters left: one or two bytes, and the unused low bits of the last
  // character must be zero, or any last character of a run would decode alike. Other spellings
  // of one byte string are accepted, as senders' encoders differ: either base64 alphabet,
  // padding or none, hex in either case. Harmless: a signature is compared as the bytes it
  // decodes to, and no key is made from its text.
  const rest = stop - whole;
  if (rest === 2) {
    const n = sextets(text, whole, 2);
    if (n < 0 || (n & 0xf) !== 0) return undefined;
    out[o] = n >> 4;
  } else if (rest === 3) {
    const n = sextets(text, whole, 3);
    if (n < 0 || (n & 0x3) !== 0) return undefined;
    out[o] = n >> 10;
    out[o + 1] = (n >> 2) & 0xff;
  }
  return out;
}

/** The `count` (2 to 4) characters of base64 from `at` as one number, 6 bits each; -1 if any is not base64. */
function sextets(text: string, at: number, count: number): number {
  let n = 0;
  let units = 0;
  let values = 0;
  for (let i = at; i < at + count; i++) {
    const unit = text.charCodeAt(i);
    const value = BASE64_VALUE[unit & 0x7f] as number;
    units |= unit;
    values |= value;
    n = (n << 6) | value;
  }
  // Checked once for the group: a unit past ASCII, or one the table marks (255) as no base64.
  return units > 0x7f || values > 63 ? -1 : n;
}
