/**
 * Encryption at rest for what the token store keeps: AES-256-GCM through Web Crypto (Node, Bun,
 * Deno, Workers alike), in a versioned text format that names its key, so keys rotate:
 *
 *     v1.<key id>.<iv, base64url>.<ciphertext and tag, base64url>
 *
 * Values are sealed with the first key of the list and opened with whichever listed key they
 * name. The store key is authenticated with the value (additional data), so a sealed value moved
 * to another key (another session) no longer opens.
 */

import { decodeBase64, encodeBase64, InterlockConfigError, utf8 } from "@interlock/core";
import { TokenDecryptionError } from "./errors.js";

/** One AES-256 key: 32 bytes, raw or as base64/base64url text (what `generateEncryptionKey` makes). */
export interface EncryptionKey {
  /** Names the key inside every value it seals: 1–32 of `A-Z a-z 0-9 _ -`. Never reuse an id for another key. */
  id: string;
  /** The 32 key bytes, raw or as base64/base64url text. */
  key: string | Uint8Array;
}

/** Seals and opens values; made by `createKeyring`. */
export interface Keyring {
  /** Encrypts `plaintext` with the first key, bound to `context` (the store key). */
  seal(plaintext: string, context: string): Promise<string>;
  /** Decrypts a sealed value with the key it names; `TokenDecryptionError` if it cannot. */
  open(sealed: string, context: string): Promise<string>;
}

// Web Crypto takes ArrayBuffer-backed bytes, which the platform's encoder gives.
const encoder = new TextEncoder();

const VERSION = "v1";
const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/;
const KEY_BYTES = 32;
const IV_BYTES = 12;

export const base64url = {
  encode: (bytes: Uint8Array): string => encodeBase64(bytes).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_"),
  /** Undefined for text that is not unpadded base64url. */
  decode: (text: string): Uint8Array | undefined => (/^[A-Za-z0-9_-]*$/.test(text) ? decodeBase64(text) : undefined),
};

/** A new random AES-256 key as base64url text, for `EncryptionKey.key`. */
export function generateEncryptionKey(): string {
  return base64url.encode(crypto.getRandomValues(new Uint8Array(KEY_BYTES)));
}

function keyBytes(entry: EncryptionKey): Uint8Array<ArrayBuffer> {
  const bytes = typeof entry.key === "string" ? decodeBase64(entry.key.trim()) : entry.key;
  if (!(bytes instanceof Uint8Array) || bytes.length !== KEY_BYTES) {
    throw new InterlockConfigError(`encryption key "${entry.id}" must be ${KEY_BYTES} bytes (base64 text or bytes)`);
  }
  return new Uint8Array(bytes);
}

/**
 * A keyring over `keys`: seals with `keys[0]`, opens with any of them. To rotate, put the new key
 * first and keep the old ones until every value sealed with them has been rewritten or expired.
 */
export function createKeyring(keys: readonly EncryptionKey[]): Keyring {
  if (!Array.isArray(keys) || keys.length === 0) {
    throw new InterlockConfigError("encryption needs at least one key");
  }
  const raws = new Map<string, Uint8Array<ArrayBuffer>>();
  for (const entry of keys) {
    if (typeof entry?.id !== "string" || !KEY_ID.test(entry.id)) {
      throw new InterlockConfigError("an encryption key id must be 1-32 characters of A-Z a-z 0-9 _ -");
    }
    if (raws.has(entry.id)) throw new InterlockConfigError(`encryption key id "${entry.id}" is listed twice`);
    raws.set(entry.id, keyBytes(entry));
  }
  // Imported on first use, once: creating a keyring stays synchronous.
  const imported = new Map<string, Promise<CryptoKey>>();
  const cryptoKey = (id: string): Promise<CryptoKey> | undefined => {
    const raw = raws.get(id);
    if (raw === undefined) return undefined;
    let key = imported.get(id);
    if (key === undefined) {
      key = crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
      imported.set(id, key);
    }
    return key;
  };
  const sealingId = keys[0]!.id;
  const additionalData = (keyId: string, context: string) => encoder.encode(`${VERSION}.${keyId}.${context}`);

  return {
    async seal(plaintext, context) {
      const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
      const key = await cryptoKey(sealingId)!;
      const algorithm = { name: "AES-GCM", iv, additionalData: additionalData(sealingId, context) };
      const sealed = new Uint8Array(await crypto.subtle.encrypt(algorithm, key, encoder.encode(plaintext)));
      return `${VERSION}.${sealingId}.${base64url.encode(iv)}.${base64url.encode(sealed)}`;
    },

    async open(sealed, context) {
      const parts = typeof sealed === "string" ? sealed.split(".") : [];
      const [version, keyId, ivText, dataText] = parts;
      if (parts.length !== 4 || version !== VERSION) {
        throw new TokenDecryptionError(`a stored value is not in the ${VERSION} encrypted format`);
      }
      const key = cryptoKey(keyId!);
      if (key === undefined)
        throw new TokenDecryptionError(`a stored value names encryption key "${keyId}", not listed`);
      const iv = base64url.decode(ivText!);
      const data = base64url.decode(dataText!);
      if (iv?.length !== IV_BYTES || data === undefined) {
        throw new TokenDecryptionError("a stored encrypted value is malformed");
      }
      const algorithm = { name: "AES-GCM", iv: new Uint8Array(iv), additionalData: additionalData(keyId!, context) };
      try {
        return utf8.decode(new Uint8Array(await crypto.subtle.decrypt(algorithm, await key, new Uint8Array(data))));
      } catch (error) {
        throw new TokenDecryptionError("a stored value failed authentication: altered, or sealed for another key", {
          cause: error,
        });
      }
    },
  };
}
