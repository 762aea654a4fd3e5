/**
 * Standard Webhooks (https://www.standardwebhooks.com), which Svix sends as `svix-*`.
 * `webhook-signature` is a space-separated list of `v1,<base64 HMAC-SHA256>` (secret
 * `whsec_<base64>`) and `v1a,<base64 Ed25519>` (public key `whpk_<base64>`, signing key
 * `whsk_<base64 seed ‖ public key>`) over `{id}.{timestamp}.{body}`.
 */

import { decodeBase64, encodeBase64 } from "../../encoding.js";
import type { HeaderReader } from "../../headers.js";
import {
  base64Secret,
  type KeyMaterial,
  optionalHeader,
  parseTimestamp,
  refuse,
  requireHeader,
  type SignatureCandidate,
  type WebhookScheme,
} from "../scheme.js";

const NAME = "standard-webhooks";
const ALPHANUMERIC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

function headerPrefix(read: HeaderReader): "webhook" | "svix" {
  return read("webhook-signature") === undefined && read("svix-signature") !== undefined ? "svix" : "webhook";
}

function parseSignatureList(text: string): SignatureCandidate[] {
  const candidates: SignatureCandidate[] = [];
  let recognised = 0;
  for (const entry of text.split(" ")) {
    if (entry === "") continue;
    const comma = entry.indexOf(",");
    if (comma <= 0) refuse(NAME, "malformed_header", "a signature entry is not `version,signature`");
    recognised++;
    const version = entry.slice(0, comma);
    if (version !== "v1" && version !== "v1a") continue;
    candidates.push({ kind: version === "v1" ? "hmac" : "ed25519", bytes: decodeBase64(entry.slice(comma + 1)) });
  }
  if (recognised === 0) refuse(NAME, "malformed_header", "webhook-signature lists no signature");
  if (candidates.length === 0) refuse(NAME, "unsupported_version", "no v1 or v1a signature");
  return candidates;
}

function parseSecret(secret: string | Uint8Array): KeyMaterial {
  if (secret instanceof Uint8Array) {
    if (secret.length === 0) refuse(NAME, "invalid_secret", "the secret is empty");
    return { kind: "hmac", raw: secret };
  }
  if (typeof secret !== "string") refuse(NAME, "invalid_secret", "the secret is not a string");
  if (secret.startsWith("whpk_")) {
    const publicKey = base64Secret(NAME, secret.slice(5));
    if (publicKey.length !== 32) refuse(NAME, "invalid_secret", "a whpk_ key must be 32 bytes");
    return { kind: "ed25519", publicKey, seed: undefined };
  }
  if (secret.startsWith("whsk_")) {
    const key = base64Secret(NAME, secret.slice(5));
    if (key.length !== 64) refuse(NAME, "invalid_secret", "a whsk_ key must be 64 bytes");
    return { kind: "ed25519", seed: key.subarray(0, 32), publicKey: key.subarray(32) };
  }
  // Libraries accept the secret with or without its `whsec_` prefix.
  return { kind: "hmac", raw: base64Secret(NAME, secret.startsWith("whsec_") ? secret.slice(6) : secret) };
}

export const standardWebhooks: WebhookScheme = {
  name: NAME,
  hash: "sha256",
  idCovered: true,
  timestamp: "header",
  multipleSignatures: true,
  parseSecret,
  parse(read) {
    const prefix = headerPrefix(read);
    const id = requireHeader(NAME, read, `${prefix}-id`);
    const timestamp = optionalHeader(NAME, read, `${prefix}-timestamp`);
    const timestampMs = parseTimestamp(NAME, timestamp, "seconds");
    const signatures = parseSignatureList(requireHeader(NAME, read, `${prefix}-signature`));
    return { id, timestamp, timestampMs, signatures };
  },
  signedContent: ({ id, timestamp }, body) => [`${id}.${timestamp}.`, body],
  format({ id, timestamp }, signatures) {
    const list = signatures.map((s) => `${s.kind === "hmac" ? "v1" : "v1a"},${encodeBase64(s.bytes)}`);
    return {
      "webhook-id": id as string,
      "webhook-timestamp": timestamp as string,
      "webhook-signature": list.join(" "),
    };
  },
  // Svix ids are `msg_` and 27 base62 characters; 24 random ones carry 142 bits.
  newId: (random) => `msg_${Array.from(random.subarray(0, 24), (b) => ALPHANUMERIC[b % 62]).join("")}`,
};
