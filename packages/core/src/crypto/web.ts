import { encodeHex } from "../encoding.js";
import {
  type CryptoPort,
  concatBytes,
  constantTimeEqual,
  DIGEST_LENGTH,
  ED25519_PKCS8_PREFIX,
  type Ed25519Key,
  type HashAlgorithm,
  type HmacKey,
  joinContent,
} from "./port.js";

// Web Crypto imports keys asynchronously, while core imports them when a verifier is built
// (synchronously). Each key therefore holds the promise of its CryptoKey, made once.
interface WebHmacKey extends HmacKey {
  readonly key: Promise<CryptoKey>;
}

interface WebEd25519Key extends Ed25519Key {
  readonly key: Promise<CryptoKey>;
}

const HASH_NAME: Record<HashAlgorithm, string> = {
  sha1: "SHA-1",
  sha256: "SHA-256",
  sha512: "SHA-512",
};

function subtle(): SubtleCrypto {
  const webCrypto = globalThis.crypto;
  if (!webCrypto?.subtle) {
    throw new Error("Web Crypto (globalThis.crypto.subtle) is not available in this runtime");
  }
  return webCrypto.subtle;
}

// A key promise that rejects before anyone awaits it must not crash the process
// as an unhandled rejection; the rejection still reaches whoever awaits it later.
function quiet<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => {});
  return promise;
}

function copy(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(bytes);
}

export const crypto: CryptoPort = {
  name: "web",
  importHmacKey(algorithm: HashAlgorithm, raw: Uint8Array): HmacKey {
    const key: WebHmacKey = {
      algorithm,
      digestLength: DIGEST_LENGTH[algorithm],
      key: quiet(subtle().importKey("raw", copy(raw), { name: "HMAC", hash: HASH_NAME[algorithm] }, false, ["sign"])),
    };
    return key;
  },
  async hmac(key, content) {
    const cryptoKey = await (key as WebHmacKey).key;
    return new Uint8Array(await subtle().sign("HMAC", cryptoKey, joinContent(content)));
  },
  hmacSync: undefined,
  importEd25519PublicKey(raw: Uint8Array): Ed25519Key {
    const key: WebEd25519Key = {
      type: "public",
      key: quiet(subtle().importKey("raw", copy(raw), { name: "Ed25519" }, false, ["verify"])),
    };
    return key;
  },
  importEd25519PrivateKey(seed: Uint8Array): Ed25519Key {
    const der = concatBytes(ED25519_PKCS8_PREFIX, seed);
    const key: WebEd25519Key = {
      type: "private",
      key: quiet(subtle().importKey("pkcs8", copy(der), { name: "Ed25519" }, false, ["sign"])),
    };
    return key;
  },
  async ed25519Verify(key, content, signature) {
    if (signature.length !== 64) return false;
    const cryptoKey = await (key as WebEd25519Key).key;
    return subtle().verify({ name: "Ed25519" }, cryptoKey, copy(signature), joinContent(content));
  },
  ed25519VerifySync: undefined,
  async ed25519Sign(key, content) {
    const cryptoKey = await (key as WebEd25519Key).key;
    return new Uint8Array(await subtle().sign({ name: "Ed25519" }, cryptoKey, joinContent(content)));
  },
  async sha256Hex(content) {
    return encodeHex(new Uint8Array(await subtle().digest("SHA-256", joinContent(content))));
  },
  sha256HexSync: undefined,
  timingSafeEqual: constantTimeEqual,
  randomBytes(length) {
    const out = new Uint8Array(length);
    globalThis.crypto.getRandomValues(out);
    return out;
  },
};
