/** Turns configured secrets into imported keys, once, when a verifier or signer is made. */

import { crypto } from "#crypto";
import type { Ed25519Key, HmacKey } from "../crypto/port.js";
import { InterlockConfigError, WebhookVerificationError } from "../errors.js";
import { sha256Hex } from "../hash.js";
import { typeName } from "../store/validate.js";
import { refuse, type WebhookScheme } from "./scheme.js";

/** A secret as the provider shows it (`whsec_…`, a hex string, …) or raw key bytes. */
export type WebhookSecret = string | Uint8Array;

export type SigningKey = { kind: "hmac"; key: HmacKey } | { kind: "ed25519"; key: Ed25519Key };

export interface VerificationKeys {
  hmac: HmacKey[];
  ed25519: Ed25519Key[];
}

export function secretList(secret: WebhookSecret | readonly WebhookSecret[] | undefined): readonly WebhookSecret[] {
  const list = Array.isArray(secret)
    ? (secret as readonly WebhookSecret[])
    : secret === undefined
      ? []
      : [secret as WebhookSecret];
  if (list.length === 0) throw new InterlockConfigError("at least one webhook secret is required");
  return list;
}

/**
 * A secret string with whitespace at either end is refused: it is almost always a line break
 * pasted with it into an environment file, and every delivery would then fail its signature
 * (a 401 for each, and the provider retrying). Bytes are taken as they are.
 */
function parseTrimmedSecret(scheme: WebhookScheme, secret: WebhookSecret) {
  if (typeof secret === "string" && secret.trim() !== secret) {
    refuse(
      scheme.name,
      "invalid_secret",
      "the secret starts or ends with whitespace (a line break from an environment file?): remove it, " +
        "or pass the secret's bytes as a Uint8Array if the whitespace belongs to it",
    );
  }
  return scheme.parseSecret(secret);
}

/**
 * The `scheme` option: a scheme object (`stripe`, `schemes.stripe`, `hmacScheme(…)`). A name
 * (`"stripe"`) or a misspelt lookup (`schemes["strip"]`) would fail as an untyped TypeError.
 * The error names what was given by its type only: a string there may be the secret, passed
 * in the wrong place (`scheme: process.env.WEBHOOK_SECRET`), and errors end up in logs.
 */
export function schemeOption(scheme: unknown): WebhookScheme {
  const candidate = scheme as Partial<WebhookScheme> | undefined;
  if (typeof candidate?.parse !== "function" || typeof candidate.parseSecret !== "function") {
    throw new InterlockConfigError(
      `scheme must be a scheme object, such as stripe or schemes.stripe imported from @interlock/core, or hmacScheme(…); got ${typeName(scheme)}`,
    );
  }
  return scheme as WebhookScheme;
}

/**
 * Parses the secret at `index` of a rotation list, made at start-up: an unusable one is named
 * by its place in the list, with a stack (refusals of deliveries are made without one).
 */
function parseListed(scheme: WebhookScheme, secret: WebhookSecret, index: number, count: number) {
  try {
    return parseTrimmedSecret(scheme, secret);
  } catch (error) {
    if (!(error instanceof WebhookVerificationError)) throw error;
    const message = count > 1 ? `secret[${index}] for ${scheme.name}: ${error.message}` : error.message;
    const named = new WebhookVerificationError(error.code, message, error.scheme);
    (Error as { captureStackTrace?: (target: object) => void }).captureStackTrace?.(named);
    throw named;
  }
}

export function importVerificationKeys(scheme: WebhookScheme, secrets: readonly WebhookSecret[]): VerificationKeys {
  const keys: VerificationKeys = { hmac: [], ed25519: [] };
  for (const [index, secret] of secrets.entries()) {
    const material = parseListed(scheme, secret, index, secrets.length);
    if (material.kind === "hmac") keys.hmac.push(crypto.importHmacKey(scheme.hash, material.raw));
    else if (material.publicKey) keys.ed25519.push(crypto.importEd25519PublicKey(material.publicKey));
  }
  return keys;
}

export function importSigningKey(scheme: WebhookScheme, secret: WebhookSecret): SigningKey {
  const material = parseListed(scheme, secret, 0, 1);
  if (material.kind === "hmac") return { kind: "hmac", key: crypto.importHmacKey(scheme.hash, material.raw) };
  if (!material.seed) refuse(scheme.name, "invalid_secret", "a public key cannot sign; use the signing key");
  return { kind: "ed25519", key: crypto.importEd25519PrivateKey(material.seed) };
}

/** Sets these digests apart from any other SHA-256 of the same bytes. */
const DIGEST_DOMAIN = "interlock: receiver key digest";

/**
 * A digest of each key the secrets verify with (the HMAC key's bytes, an Ed25519 public key),
 * to tell sets of secrets apart without keeping them. Not salted: the digests stay in this
 * process's memory, beside the keys themselves, and a random salt drawn as a receiver is made
 * would fail where that is forbidden (a Worker's global scope, where receivers are made). The
 * secrets were checked when the verifier imported them. Synchronous where the runtime hashes
 * synchronously (Node).
 */
export function keyDigests(scheme: WebhookScheme, secrets: readonly WebhookSecret[]): string[] | Promise<string[]> {
  const digests: (string | Promise<string>)[] = [];
  for (const secret of secrets) {
    const material = parseTrimmedSecret(scheme, secret);
    const key = material.kind === "hmac" ? material.raw : material.publicKey;
    if (key !== undefined) digests.push(sha256Hex([DIGEST_DOMAIN, material.kind, key]));
  }
  return digests.every((digest) => typeof digest === "string") ? (digests as string[]) : Promise.all(digests);
}
