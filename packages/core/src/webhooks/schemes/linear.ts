/**
 * Linear: `Linear-Signature: <hex HMAC-SHA256 of the body>`. Linear signs no timestamp
 * header; instead the JSON body carries `webhookTimestamp` in milliseconds, which the
 * signature covers, and which this scheme checks against the tolerance window once the
 * signature matched (a forged body is never parsed). `Linear-Delivery` (the delivery id) is not covered by the signature.
 * A retry re-signed with a fresh `webhookTimestamp` (as a copy older than the window must be to
 * pass) differs from the first copy only there, so the de-duplication key binds the body without
 * that member: a retry of one delivery is a duplicate, any other body is not.
 */

import type { ContentParts } from "../../crypto/port.js";
import { utf8 } from "../../encoding.js";
import { assertOptionNames, optionNames } from "../../option-names.js";
import { refuse, type WebhookScheme } from "../scheme.js";
import { hmacScheme } from "./hmac.js";

/** Options of `linearScheme`. */
export interface LinearSchemeOptions {
  /**
   * Refuse a body without a numeric `webhookTimestamp`. Default true: Linear always sends
   * one, and without it a captured delivery could be replayed at any time.
   */
  requireTimestamp?: boolean;
}

const base = hmacScheme({
  name: "linear",
  signatureHeader: "linear-signature",
  timestampHeader: false,
  idHeader: "linear-delivery",
  template: "{body}",
});

function webhookTimestampOf(body: Uint8Array): number | undefined {
  try {
    const value = (JSON.parse(utf8.decode(body)) as { webhookTimestamp?: unknown })?.webhookTimestamp;
    return typeof value === "number" && Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  } catch {
    return undefined;
  }
}

const TIMESTAMP_MEMBER = "webhookTimestamp";
const TIMESTAMP_KEY = utf8.encode(JSON.stringify(TIMESTAMP_MEMBER));
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
/** A JSON number, as Linear writes `webhookTimestamp`. */
const JSON_NUMBER = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$/;

const isSpace = (byte: number | undefined): boolean => byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;

function skipSpace(body: Uint8Array, at: number): number {
  while (isSpace(body[at])) at++;
  return at;
}

/** The index just past the JSON string whose opening quote is at `at`; -1 when it never closes. */
function stringEnd(body: Uint8Array, at: number): number {
  for (let i = at + 1; i < body.length; i++) {
    if (body[i] === BACKSLASH) i++;
    else if (body[i] === QUOTE) return i + 1;
  }
  return -1;
}

/**
 * The index just past the JSON value starting at `at`, a member's value in an object; -1 when it
 * never ends. Nested objects and arrays are skipped by their brackets (outside strings), not
 * checked: a body whose timestamp was read is one `JSON.parse` accepted.
 */
function valueEnd(body: Uint8Array, at: number): number {
  let depth = 0;
  let i = at;
  while (i < body.length) {
    const byte = body[i] as number;
    if (byte === QUOTE) {
      i = stringEnd(body, i);
      if (i < 0 || depth === 0) return i;
      continue;
    }
    if (byte === OPEN_OBJECT || byte === OPEN_ARRAY) depth++;
    else if (byte === CLOSE_OBJECT || byte === CLOSE_ARRAY) {
      if (depth === 0) return i; // a number or literal ends where its object does
      if (--depth === 0) return i + 1;
    } else if (depth === 0 && (byte === COMMA || isSpace(byte))) return i;
    i++;
  }
  return -1;
}

/** Whether the member name at [start, end) (its quotes included) is `webhookTimestamp`, however escaped. */
function isTimestampKey(body: Uint8Array, start: number, end: number): boolean {
  const key = body.subarray(start, end);
  if (!key.includes(BACKSLASH))
    return key.length === TIMESTAMP_KEY.length && key.every((b, i) => b === TIMESTAMP_KEY[i]);
  try {
    return JSON.parse(utf8.decode(key)) === TIMESTAMP_MEMBER;
  } catch {
    return false;
  }
}

/**
 * Where the body's one top-level `webhookTimestamp` member is, from its name's opening quote to
 * the end of its value, a number: undefined when the body is no JSON object, has none, has it
 * more than once, or with a value that is not a number. A scan of the bytes, which
 * `JSON.parse` (called once the signature matched, for the window) does not report.
 */
function timestampMemberRange(body: Uint8Array): [start: number, end: number] | undefined {
  let i = skipSpace(body, 0);
  if (body[i] !== OPEN_OBJECT) return undefined;
  i = skipSpace(body, i + 1);
  if (body[i] === CLOSE_OBJECT) return undefined;
  let found: [number, number] | undefined;
  for (;;) {
    if (body[i] !== QUOTE) return undefined;
    const keyStart = i;
    const keyEnd = stringEnd(body, i);
    if (keyEnd < 0) return undefined;
    i = skipSpace(body, keyEnd);
    if (body[i] !== COLON) return undefined;
    const valueStart = skipSpace(body, i + 1);
    const end = valueEnd(body, valueStart);
    if (end <= valueStart) return undefined;
    if (isTimestampKey(body, keyStart, keyEnd)) {
      // Twice: which one a parser keeps is the parser's choice, so neither is cut.
      if (found !== undefined || !JSON_NUMBER.test(utf8.decode(body.subarray(valueStart, end)))) return undefined;
      found = [keyStart, end];
    }
    i = skipSpace(body, end);
    if (body[i] === CLOSE_OBJECT) break;
    if (body[i] !== COMMA) return undefined;
    i = skipSpace(body, i + 1);
  }
  return skipSpace(body, i + 1) === body.length ? found : undefined;
}

/**
 * What identifies a Linear delivery: its body, less the bytes of its `webhookTimestamp` member
 * (which Linear signs afresh on every retry of one delivery), cut out as they are, never
 * re-serialised. The whole body when that member cannot be told apart (`timestampMemberRange`):
 * a copy is then a duplicate only when byte for byte the same.
 */
function linearDeliveryContent(body: Uint8Array): ContentParts {
  const range = timestampMemberRange(body);
  if (range === undefined) return [body];
  return [body.subarray(0, range[0]), body.subarray(range[1])];
}

const LINEAR_SCHEME_OPTION_NAMES = optionNames<LinearSchemeOptions>({ requireTimestamp: true });

/** The Linear scheme with options; `linear` is `linearScheme()`. */
export function linearScheme(options: LinearSchemeOptions = {}): WebhookScheme {
  assertOptionNames("linearScheme()", options, LINEAR_SCHEME_OPTION_NAMES);
  const requireTimestamp = options.requireTimestamp ?? true;
  return {
    ...base,
    timestamp: "body",
    bodyTimestamp(body) {
      const timestampMs = webhookTimestampOf(body);
      if (timestampMs === undefined && requireTimestamp) {
        refuse("linear", "invalid_timestamp", "the body has no numeric webhookTimestamp");
      }
      return timestampMs;
    },
    deliveryContent: linearDeliveryContent,
  };
}

/** Linear: `Linear-Signature` over the body, whose `webhookTimestamp` (ms) is checked; `Linear-Delivery` is the (unsigned) id. */
export const linear: WebhookScheme = linearScheme();
