/** Turns configured secrets into imported keys, once, when a verifier or signer is made. */

import { crypto } from "#crypto";
import type { Ed25519Key, HmacKey } from "../crypto/port.js";
import { InterlockConfigError } from "../errors.js";
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

export function importVerificationKeys(scheme: WebhookScheme, secrets: readonly WebhookSecret[]): VerificationKeys {
  const keys: VerificationKeys = { hmac: [], ed25519: [] };
  for (const secret of secrets) {
    const material = parseTrimmedSecret(scheme, secret);
    if (material.kind === "hmac") keys.hmac.push(crypto.importHmacKey(scheme.hash, material.raw));
    else if (material.publicKey) keys.ed25519.push(crypto.importEd25519PublicKey(material.publicKey));
  }
  return keys;
}

export function importSigningKey(scheme: WebhookScheme, secret: WebhookSecret): SigningKey {
  const material = parseTrimmedSecret(scheme, secret);
  if (material.kind === "hmac") return { kind: "hmac", key: crypto.importHmacKey(scheme.hash, material.raw) };
  if (!material.seed) refuse(scheme.name, "invalid_secret", "a public key cannot sign; use the signing key");
  return { kind: "ed25519", key: crypto.importEd25519PrivateKey(material.seed) };
}
