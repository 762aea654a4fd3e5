/**
 * Standard Webhooks (https://www.standardwebhooks.com), which Svix sends as `svix-*`.
 * `webhook-signature` is a space-separated list of `v1,<base64 HMAC-SHA256>` (secret
 * `whsec_<base64>`) and `v1a,<base64 Ed25519>` (public key `whpk_<base64>`, signing key
 * `whsk_<base64 seed ‖ public key>`) over `{id}.{timestamp}.{body}`. Both presets read either
 * set of header names; each signs with its own: `webhook-*` for Standard Webhooks, `svix-*` for
 * Svix, whose `webhook-*` names are a white-label option of its paid plans.
 */

import { decodeBase64, encodeBase64 } from "../../encoding.js";
import {
  base64Secret,
  type DeliveryFields,
  type KeyMaterial,
  type MadeSignature,
  optionalHeader,
  parseTimestamp,
  refuse,
  requiredValue,
  requireHeader,
  type SignatureCandidate,
  type WebhookScheme,
} from "../scheme.js";

const NAME = "standard-webhooks";
const ALPHANUMERIC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

// Header names as constants: a name built per delivery (`${prefix}-id`) is a new string
// that every property look-up must hash and internalise first.
const WEBHOOK_HEADERS = { id: "webhook-id", timestamp: "webhook-timestamp", signature: "webhook-signature" };
const SVIX_HEADERS = { id: "svix-id", timestamp: "svix-timestamp", signature: "svix-signature" };

/** The kind of signature a version of `length` characters at `start` names: `v1` or `v1a`, else none. */
function versionAt(text: string, start: number, length: number): SignatureCandidate["kind"] | undefined {
  if (length !== 2 && length !== 3) return undefined;
  // Compared unit by unit: `startsWith` at an offset costs more than the three comparisons.
  if (text.charCodeAt(start) !== 118 /* v */ || text.charCodeAt(start + 1) !== 49 /* 1 */) return undefined;
  if (length === 2) return "hmac";
  return text.charCodeAt(start + 2) === 97 /* a */ ? "ed25519" : undefined;
}

/**
 * The candidates in a `webhook-signature` list, read as the reference libraries read it: split
 * on " ", each entry on ",". They skip an entry whose version is not `v1` and compare the text
 * after its first comma, so an entry that is no `version,signature` (no comma, no version) says
 * nothing here either, and a signature that does not decode is a candidate that cannot match:
 * one valid signature is accepted whatever else is listed.
 */
function parseSignatureList(text: string): SignatureCandidate[] {
  const candidates: SignatureCandidate[] = [];
  let versioned = 0;
  // One pass by index: no array of entries, and only the signature itself is copied out. The
  // next comma is found once and kept until the entries pass it: searched for from each entry
  // anew, a long run of entries without one would be scanned to its end once per entry.
  let comma = text.indexOf(",");
  for (let start = 0; start < text.length; ) {
    let end = text.indexOf(" ", start);
    if (end === -1) end = text.length;
    if (comma !== -1 && comma < start) comma = text.indexOf(",", start);
    if (comma > start && comma < end) {
      versioned++;
      const kind = versionAt(text, start, comma - start);
      // A further comma ends the signature, as the reference libraries split an entry: Node and
      // fetch join a header sent twice with ", ", which leaves a comma after the first list.
      const after = text.indexOf(",", comma + 1);
      if (kind !== undefined) {
        const signatureEnd = after === -1 || after > end ? end : after;
        candidates.push({ kind, bytes: decodeBase64(text, comma + 1, signatureEnd) });
      }
      comma = after;
    }
    start = end + 1;
  }
  if (candidates.length === 0) {
    if (versioned === 0) refuse(NAME, "malformed_header", "webhook-signature lists no `version,signature` entry");
    refuse(NAME, "unsupported_version", "webhook-signature lists no v1 or v1a signature");
  }
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

/** The headers a sender puts on a delivery, under one set of names. */
function formatHeaders(
  names: typeof WEBHOOK_HEADERS,
  { id, timestamp }: DeliveryFields,
  signatures: readonly MadeSignature[],
): Record<string, string> {
  const list = signatures.map((s) => `${s.kind === "hmac" ? "v1" : "v1a"},${encodeBase64(s.bytes)}`);
  return { [names.id]: id as string, [names.timestamp]: timestamp as string, [names.signature]: list.join(" ") };
}

/** Standard Webhooks and Svix: `v1` (HMAC) and `v1a` (Ed25519) signatures over `{id}.{timestamp}.{body}`. */
export const standardWebhooks: WebhookScheme = {
  name: NAME,
  hash: "sha256",
  idCovered: true,
  timestamp: "header",
  multipleSignatures: true,
  parseSecret,
  parsesHeadersOnly: true,
  idHeaders: [WEBHOOK_HEADERS.id, SVIX_HEADERS.id],
  parse(read) {
    // The signature header says which set of names the delivery uses, and is read once: on a
    // Fetch `Headers` every read checks and lower-cases the name again.
    const webhookSignature = read(WEBHOOK_HEADERS.signature);
    const svixSignature = webhookSignature === undefined ? read(SVIX_HEADERS.signature) : undefined;
    const names = svixSignature === undefined ? WEBHOOK_HEADERS : SVIX_HEADERS;
    const id = requireHeader(NAME, read, names.id);
    const timestamp = optionalHeader(NAME, read, names.timestamp);
    const timestampMs = parseTimestamp(NAME, timestamp, "seconds");
    const signatures = parseSignatureList(requiredValue(NAME, names.signature, svixSignature ?? webhookSignature));
    return { id, timestamp, timestampMs, signatures };
  },
  signedContent: ({ id, timestamp }, body) => [`${id}.${timestamp}.`, body],
  format: (fields, signatures) => formatHeaders(WEBHOOK_HEADERS, fields, signatures),
  // Svix ids are `msg_` and 27 base62 characters; 24 random ones carry 142 bits.
  newId: (random) => `msg_${Array.from(random.subarray(0, 24), (b) => ALPHANUMERIC[b % 62]).join("")}`,
};

/**
 * Svix: Standard Webhooks as Svix sends it, under `svix-id`, `svix-timestamp` and
 * `svix-signature` (receivers that read those names by hand miss `webhook-*` ones). It verifies
 * either set, and shares the `standard-webhooks` name, so de-duplication keys are the same.
 */
export const svix: WebhookScheme = {
  ...standardWebhooks,
  format: (fields, signatures) => formatHeaders(SVIX_HEADERS, fields, signatures),
};
