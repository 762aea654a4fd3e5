/**
 * A webhook scheme is data plus two functions: `parse` reads what a delivery claims (id,
 * timestamp, candidate signatures) from its headers, and `signedContent` builds the bytes the
 * sender signed. `format` is `parse` run backwards, so the same scheme signs deliveries too.
 */

import type { ContentParts } from "../crypto/port.js";
import { decodeBase64, utf8 } from "../encoding.js";
import { InterlockConfigError, WebhookVerificationError } from "../errors.js";
import type { HeaderReader } from "../headers.js";
import { unquoted } from "../store/validate.js";

/** The HMAC hash a scheme uses. */
export type HashName = "sha256" | "sha512";

/** Key material a secret stands for. */
export type KeyMaterial =
  | {
      /** An HMAC key. */
      kind: "hmac";
      /** The key bytes. */
      raw: Uint8Array;
    }
  | {
      /** An Ed25519 key pair, or half of one. */
      kind: "ed25519";
      /** The public key, which verifies. */
      publicKey: Uint8Array | undefined;
      /** The private seed, which signs. */
      seed: Uint8Array | undefined;
    };

/** A candidate signature: `bytes` is undefined when the text did not decode (it cannot match). */
export interface SignatureCandidate {
  /** The algorithm the signature claims. */
  kind: "hmac" | "ed25519";
  /** The decoded signature. */
  bytes: Uint8Array | undefined;
}

/** What a delivery's headers claim, before anything is checked. */
export interface ParsedDelivery {
  /** The id from the headers, when the scheme sends one there (not yet verified). */
  id: string | undefined;
  /** The timestamp exactly as it was signed. */
  timestamp: string | undefined;
  /** The same timestamp in milliseconds since the epoch, for the tolerance window. */
  timestampMs: number | undefined;
  /** Every signature the delivery carries. */
  signatures: SignatureCandidate[];
}

/** What the sender knows when it signs: the id and the timestamp text it will send. */
export interface DeliveryFields {
  /** The delivery id, for schemes that send one in a header. */
  id: string | undefined;
  /** The timestamp text, for schemes that sign one in a header. */
  timestamp: string | undefined;
}

/** A signature made by `sign`, ready to be formatted into the scheme's headers. */
export interface MadeSignature {
  /** The algorithm that made it. */
  kind: "hmac" | "ed25519";
  /** The signature's bytes. */
  bytes: Uint8Array;
}

/**
 * A provider's signing scheme as data: the presets (`stripe`, `github`, …) and `hmacScheme(…)`
 * are `WebhookScheme`s. The same scheme verifies and signs.
 */
export interface WebhookScheme {
  /** Stable name: used in errors, events and de-duplication keys. */
  readonly name: string;
  /** The HMAC hash. */
  readonly hash: HashName;
  /** Whether the delivery id this scheme reports is covered by the signature. */
  readonly idCovered: boolean;
  /** Where the signed timestamp lives; "none" when the provider signs no timestamp. */
  readonly timestamp: "header" | "body" | "none";
  /** Unit of a header timestamp. Default "seconds". */
  readonly timestampUnit?: TimestampUnit;
  /** Whether one delivery can carry several signatures (sender-side secret rotation). */
  readonly multipleSignatures: boolean;
  /** Turns a configured secret into key material; throws `invalid_secret`. */
  parseSecret(secret: string | Uint8Array): KeyMaterial;
  /** Reads what a delivery claims from its headers (and body); throws `WebhookVerificationError` when it cannot. */
  parse(read: HeaderReader, body: Uint8Array): ParsedDelivery;
  /**
   * The headers `parse` reads the delivery's id from, the one it prefers first; absent or empty
   * when the id is in the body or none is sent. Read alone, nothing else parsed, for the
   * `webhook.rejected` event of a delivery refused before `parse` read them (a signature header
   * missing, a body over the limit): the id it claimed, unverified. Every preset and
   * `hmacScheme(…)` sets it.
   */
  readonly idHeaders?: readonly string[];
  /**
   * Whether `parse` reads the headers alone, never the body. A receiver then refuses a delivery
   * whose headers `parse` refuses, or whose timestamp is outside the window, before reading its
   * body (`checkHeaders`). Every preset and `hmacScheme(…)` sets it; a scheme without it has its
   * headers checked only once the body is read.
   */
  readonly parsesHeadersOnly?: boolean;
  /** The bytes the sender signed, in parts. */
  signedContent(fields: DeliveryFields, body: Uint8Array): ContentParts;
  /** The headers a sender puts on a delivery it signed: `parse` run backwards. */
  format(fields: DeliveryFields, signatures: readonly MadeSignature[]): Record<string, string>;
  /** A new delivery id in the provider's style from 24 random bytes; undefined when the id lives in the body. */
  newId(random: Uint8Array): string | undefined;
  /**
   * Decodes a verified body. Defaults to JSON. A `SyntaxError` it throws (a body that is not what
   * it decodes) reaches `payload`'s reader as the `cause` of a `WebhookPayloadError`; anything
   * else as it is.
   */
  decodePayload?(body: Uint8Array): unknown;
  /**
   * Reads the event id from a decoded payload, for schemes whose id lives in the body. An id it
   * finds is the delivery's, over one `parse` read from a header the signature does not cover
   * (`idCovered` false).
   */
  payloadId?(payload: unknown): string | undefined;
  /**
   * Reads the signed timestamp from the body, in milliseconds since the epoch, for schemes that
   * sign it there (`timestamp: "body"`); undefined when the body has none. Called only once a
   * signature matched, since decoding a body costs far more than hashing it; throws
   * `WebhookVerificationError` to refuse the delivery.
   */
  bodyTimestamp?(body: Uint8Array): number | undefined;
  /**
   * What of a verified body identifies its delivery, for the de-duplication key of a delivery
   * whose id is not signed (`wh:<scheme>:<id>:<hash of this>`): the body less what the sender
   * changes when it re-signs the same delivery, such as a timestamp signed in the body (Linear's
   * `webhookTimestamp`), so that a redelivery stays a duplicate. Parts of the body as they are,
   * never re-serialised. Default, and when it throws: the whole body.
   */
  deliveryContent?(body: Uint8Array): ContentParts;
}

/**
 * What names a space of de-duplication keys (`wh:<scheme>:<id>`, `wh@<namespace>:…`): a scheme's
 * name, a receiver's namespace. No `:`, which ends each name in a key: a scheme `acme` with
 * delivery `eu:7` would otherwise share its key with a scheme `acme:eu` and delivery `7`.
 */
const KEY_SPACE_NAME = /^[\x21-\x39\x3b-\x7e]{1,64}$/;

/** `value` when it can name a key space (1 to 64 visible ASCII characters other than `:`); else `InterlockConfigError`. */
export function keySpaceName(option: string, value: unknown): string {
  if (typeof value !== "string" || !KEY_SPACE_NAME.test(value)) {
    // Shown when a colon is its only fault (`"acme:eu"`), else by its length only: a string
    // there may be a secret passed in the wrong place, and errors end up in logs.
    const onlyColons = typeof value === "string" && value.length <= 64 && /^[\x21-\x7e]+$/.test(value);
    const got = onlyColons ? JSON.stringify(value) : unquoted(value);
    throw new InterlockConfigError(`${option} must be 1 to 64 visible ASCII characters other than ":", not ${got}`);
  }
  return value;
}

// ---------------------------------------------------------------------------------------
// Helpers shared by the schemes: one implementation of each parsing decision.

export function refuse(scheme: string, code: WebhookVerificationError["code"], message: string): never {
  throw new WebhookVerificationError(code, message, scheme);
}

const NO_HEADERS: readonly string[] = [];

/**
 * The id a delivery's headers claim, from the first of the scheme's `idHeaders` it sent (no
 * other header parsed, nothing checked): the sender's text, as sent.
 */
export function claimedIdIn(scheme: WebhookScheme, read: HeaderReader): string | readonly string[] | undefined {
  for (const name of scheme.idHeaders ?? NO_HEADERS) {
    const value = read(name);
    if (value !== undefined && value !== "") return value;
  }
  return undefined;
}

/** Reads a header that must be present exactly once. */
export function requireHeader(scheme: string, read: HeaderReader, name: string): string {
  return requiredValue(scheme, name, read(name));
}

/** `requireHeader` of a header read already: its value as the reader gave it. */
export function requiredValue(scheme: string, name: string, value: ReturnType<HeaderReader>): string {
  if (value === undefined || value === "") refuse(scheme, "missing_header", `missing ${name} header`);
  if (typeof value !== "string") {
    refuse(scheme, "malformed_header", `${name} header was sent more than once`);
  }
  return value;
}

/** Reads an optional header; repeated values are refused as ambiguous. */
export function optionalHeader(scheme: string, read: HeaderReader, name: string): string | undefined {
  const value = read(name);
  if (value === undefined || value === "") return undefined;
  if (typeof value !== "string") {
    refuse(scheme, "malformed_header", `${name} header was sent more than once`);
  }
  return value;
}

/** The unit of a timestamp header. */
export type TimestampUnit = "seconds" | "milliseconds";

const DIGITS = /^[0-9]{1,16}$/;

/**
 * Parses a signed timestamp. Only plain digits are accepted: `Number("")` is 0,
 * `Number("1e3")` is 1000 and `Number("x")` is NaN, and each of those has let replays through.
 */
export function parseTimestamp(scheme: string, text: string | undefined, unit: TimestampUnit): number {
  if (text === undefined || text === "") refuse(scheme, "invalid_timestamp", "missing timestamp");
  if (!DIGITS.test(text)) refuse(scheme, "invalid_timestamp", "timestamp is not a whole number");
  const value = Number(text);
  return unit === "seconds" ? value * 1000 : value;
}

export function formatTimestamp(ms: number, unit: TimestampUnit): string {
  return String(unit === "seconds" ? Math.floor(ms / 1000) : Math.floor(ms));
}

/** Secret text used as raw UTF-8 bytes, as most providers do. */
export function utf8Secret(scheme: string, secret: string | Uint8Array): KeyMaterial {
  const raw = typeof secret === "string" ? utf8.encode(secret) : secret;
  if (!(raw instanceof Uint8Array) || raw.length === 0) {
    refuse(scheme, "invalid_secret", "the secret is empty or not a string");
  }
  return { kind: "hmac", raw };
}

/** Base64 secret text decoded to key bytes. */
export function base64Secret(scheme: string, text: string): Uint8Array {
  const raw = decodeBase64(text);
  if (raw === undefined || raw.length === 0) {
    refuse(scheme, "invalid_secret", "the secret is not valid base64");
  }
  return raw;
}

/** A version 4 UUID from 16 random bytes. */
export function uuidFrom(random: Uint8Array): string {
  const b = Array.from(random.subarray(0, 16), (x) => x.toString(16).padStart(2, "0"));
  const variant = ((Number.parseInt(b[8] as string, 16) & 0x3f) | 0x80).toString(16);
  const version = `4${(b[6] as string)[1]}`;
  return `${b.slice(0, 4).join("")}-${b[4]}${b[5]}-${version}${b[7]}-${variant}${b[9]}-${b.slice(10).join("")}`;
}

/** Reads a string field from a decoded JSON object, if it is one. */
export function stringField(payload: unknown, field: string): string | undefined {
  if (payload === null || typeof payload !== "object") return undefined;
  const value = (payload as Record<string, unknown>)[field];
  return typeof value === "string" && value !== "" ? value : undefined;
}
