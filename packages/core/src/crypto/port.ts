/**
 * The one place where core touches a platform's cryptography. `#crypto` resolves to
 * `node.ts` on Node (synchronous, native HMAC) and to `web.ts` everywhere else (Web Crypto),
 * through the `imports` conditions in package.json. Core never imports either file directly.
 */

/** Hash functions core signs and verifies with. */
export type HashAlgorithm = "sha1" | "sha256" | "sha512";

/** Bytes and strings fed to a MAC in order; strings are UTF-8 encoded. */
export type ContentParts = ReadonlyArray<string | Uint8Array>;

/** An imported HMAC key: opaque to core, owned by the port that made it. */
export interface HmacKey {
  readonly algorithm: HashAlgorithm;
  /** Digest length in bytes, known without hashing. */
  readonly digestLength: number;
}

/** An imported Ed25519 key: opaque to core. */
export interface Ed25519Key {
  readonly type: "public" | "private";
}

export interface CryptoPort {
  /** "node" or "web": which implementation the runtime resolved. */
  readonly name: "node" | "web";
  importHmacKey(algorithm: HashAlgorithm, raw: Uint8Array): HmacKey;
  hmac(key: HmacKey, content: ContentParts): Promise<Uint8Array>;
  /** Present only where the platform hashes synchronously (Node). */
  readonly hmacSync: ((key: HmacKey, content: ContentParts) => Uint8Array) | undefined;
  /** A 32-byte raw public key. */
  importEd25519PublicKey(raw: Uint8Array): Ed25519Key;
  /** A 32-byte seed (the first half of a libsodium-style 64-byte secret key). */
  importEd25519PrivateKey(seed: Uint8Array): Ed25519Key;
  ed25519Verify(key: Ed25519Key, content: ContentParts, signature: Uint8Array): Promise<boolean>;
  readonly ed25519VerifySync: ((key: Ed25519Key, content: ContentParts, signature: Uint8Array) => boolean) | undefined;
  ed25519Sign(key: Ed25519Key, content: ContentParts): Promise<Uint8Array>;
  /** Lower-case hex SHA-256 of the content. */
  sha256Hex(content: ContentParts): Promise<string>;
  /** Present only where the platform hashes synchronously (Node). */
  readonly sha256HexSync: ((content: ContentParts) => string) | undefined;
  /** Compares equal-length byte strings in time independent of their contents. */
  timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean;
  randomBytes(length: number): Uint8Array;
}

export const DIGEST_LENGTH: Record<HashAlgorithm, number> = { sha1: 20, sha256: 32, sha512: 64 };

/** PKCS#8 and SPKI DER prefixes that wrap a raw Ed25519 seed / public key (RFC 8410). */
export const ED25519_PKCS8_PREFIX = new Uint8Array([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
]);
export const ED25519_SPKI_PREFIX = new Uint8Array([
  0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
]);

const encoder = new TextEncoder();

/**
 * Whether two byte strings are equal, in time that depends on their length only: every byte
 * is read and the differences OR-ed, with no branch on the data (as @noble/hashes' `equalBytes`).
 * Used on Node too: its `timingSafeEqual` first copies a signature decoded in JS (a small
 * `Uint8Array` that V8 keeps in its heap) out of the heap, ~0.85 µs a call against ~30 ns here.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] as number) ^ (b[i] as number);
  return diff === 0;
}

/** Joins content parts into one byte string, for APIs that take the message whole. */
export function joinContent(content: ContentParts): Uint8Array<ArrayBuffer> {
  const chunks = content.map((part) => (typeof part === "string" ? encoder.encode(part) : part));
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

export function concatBytes(prefix: Uint8Array, rest: Uint8Array): Uint8Array {
  const out = new Uint8Array(prefix.length + rest.length);
  out.set(prefix, 0);
  out.set(rest, prefix.length);
  return out;
}
