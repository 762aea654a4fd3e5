/**
 * `interlock verify`: checks a captured delivery (its headers and body, from logs, a request bin,
 * a failing test) offline, with core's verifier, as of now or of another time. When it fails, it
 * says why: core's reason code, and what would have verified. Every "would have" is core's
 * verifier again, run on a variant of the delivery (the body without its trailing line break, the
 * same JSON written compactly, the secret in another form, another scheme, the delivery as of
 * its own timestamp): nothing here computes or compares a signature.
 */

import {
  assertOptionNames,
  createWebhookVerifier,
  decodeBase64,
  type HeaderReader,
  type HeadersInput,
  InterlockConfigError,
  MAX_TOLERANCE_SECONDS,
  optionNames,
  type RawBody,
  type SchemeName,
  schemes,
  standardWebhooks,
  utf8,
  type VerifiedWebhook,
  type WebhookErrorCode,
  type WebhookRefusal,
  type WebhookScheme,
  type WebhookSecret,
  WebhookVerificationError,
} from "@interlock/core";
import type { Args } from "../args.js";
import type { Command } from "../command.js";
import { SCHEME_OPTION, SECRET_OPTIONS, secretSources } from "../delivery-options.js";
import { EXIT, usageError, valueStart } from "../errors.js";
import { type HeaderList, headerRecord, parseHeaderOption, parseHeadersFile } from "../header-input.js";
import { readBody, readSecrets, type SecretSources } from "../inputs.js";
import { type CliIo, Printer } from "../io.js";
import { resolveScheme, SCHEME_NAMES } from "../schemes.js";

/** What `verifyDelivery` checks, and as of when. */
export interface VerifyDeliveryOptions {
  /** The provider's scheme. */
  scheme: WebhookScheme;
  /** One secret, or several while rotating: a delivery signed with any of them is valid. */
  secret: WebhookSecret | readonly WebhookSecret[];
  /** The delivery's headers, as received. */
  headers: HeadersInput;
  /** The delivery's body, exactly as received. */
  body: RawBody;
  /** Unix time in seconds to check the timestamp as of. Default: now. */
  at?: number;
  /** Largest accepted timestamp age, either way, in seconds (at most a year). Default: core's (300). */
  toleranceSeconds?: number;
}

/** Why a delivery failed, in more words than core's code: what `verify` found would have verified. */
export type VerifyHintCode =
  /** The signature is valid; only the timestamp is outside the window (check as of its time). */
  | "timestamp_only"
  /** The timestamp is outside the window, and the signature does not match as of that time either. */
  | "signature_too"
  /** The body ends with a line break that was not signed: without it, the signature matches. */
  | "trailing_newline"
  /** The signed body ended with a line break this copy lacks: with one, the signature matches. */
  | "missing_trailing_newline"
  /** The line breaks were converted (CRLF and LF): with the others, the signature matches. */
  | "crlf_line_breaks"
  /** The body is JSON written in another form than the one signed (parsed and written again). */
  | "json_reformatted"
  /** The body is a JSON string holding the signed text (escaped once more, as a log does). */
  | "json_string"
  /** A secret in another form (with or without `whsec_`, its text or its base64's bytes) matches. */
  | "secret_format"
  /** The headers are another scheme's. */
  | "other_scheme"
  /** Header values are in quotes (copied from JSON or a log): without them they read. */
  | "quoted_header"
  /** The delivery was sent content-encoded, which core refuses. */
  | "content_encoding"
  /** No headers at all. */
  | "no_headers"
  /** Nothing found: either the secret is not the sender's, or the bytes are not the ones sent. */
  | "secret_or_body";

/** One finding about a delivery that failed. */
export interface VerifyHint {
  /** What was found, stable for scripts. */
  code: VerifyHintCode;
  /** What it means and what to do, in words. */
  message: string;
}

/** What `verifyDelivery` found. */
export interface DeliveryVerification {
  /** Whether the delivery verifies, timestamp included. */
  valid: boolean;
  /** The scheme's name. */
  scheme: string;
  /** Core's reason code when not valid, such as `no_matching_signature`. */
  code: WebhookErrorCode | undefined;
  /** Core's message when not valid. */
  message: string | undefined;
  /**
   * Whether a signature matched a secret: true when valid, or when only the timestamp failed;
   * false when none matched; undefined when the headers could not be read that far.
   */
  signatureValid: boolean | undefined;
  /** The delivery's id, once a signature matched (core's `VerifiedWebhook.id`). */
  id: string | undefined;
  /** The signed timestamp in Unix seconds, when the scheme signs one and it could be read. */
  timestamp: number | undefined;
  /** Seconds from `timestamp` to `at` (negative: signed after `at`). */
  ageSeconds: number | undefined;
  /** The time checked as of, in Unix seconds (whole). */
  at: number;
  /** The timestamp window either way, in seconds; undefined for schemes that sign no timestamp. */
  toleranceSeconds: number | undefined;
  /** Which secret matched, by its index in `secret` (0 for a single one); undefined when none did. */
  secretIndex: number | undefined;
  /** For a delivery that is not valid: what was found (empty when valid). */
  hints: VerifyHint[];
}

/** How hints name what the caller gave: the command line's options, or the function's. */
interface Wording {
  /** The secret at `index` of `count`. */
  secret(index: number, count: number): string;
  /** How to check as of Unix time `seconds`. */
  at(seconds: number): string;
  /** How to widen the window. */
  tolerance: string;
  /** How to choose the scheme `name`. */
  scheme(name: string): string;
  /** How to give a secret as bytes. */
  bytes: string;
}

const LIBRARY_WORDING: Wording = {
  secret: (index, count) => (count === 1 ? "the secret" : `secret[${index}]`),
  at: (seconds) => `at: ${seconds}`,
  tolerance: "toleranceSeconds",
  scheme: (name) => `the ${name} scheme`,
  bytes: "as a Uint8Array",
};

const VERIFY_DELIVERY_OPTION_NAMES = optionNames<VerifyDeliveryOptions>({
  scheme: true,
  secret: true,
  headers: true,
  body: true,
  at: true,
  toleranceSeconds: true,
});

/**
 * Verifies one delivery with core's verifier and, when it fails, looks for why. Resolves for a
 * delivery that is not valid too; rejects only for what cannot be checked at all: a secret not
 * in the scheme's format (`invalid_secret`), an option core refuses.
 */
export async function verifyDelivery(options: VerifyDeliveryOptions): Promise<DeliveryVerification> {
  assertOptionNames("verifyDelivery()", options, VERIFY_DELIVERY_OPTION_NAMES);
  return checkDelivery(options, LIBRARY_WORDING);
}

/** What one check is run with; a variant changes some of it. */
interface Check {
  scheme: WebhookScheme;
  secrets: readonly WebhookSecret[];
  headers: HeadersInput;
  body: RawBody;
  nowMs: number;
  toleranceSeconds: number | undefined;
}

/** A delivery being diagnosed. */
interface Diagnosis {
  check: Check;
  /** The body's bytes; undefined when it is not raw (core says so). */
  bytes: Uint8Array | undefined;
  wording: Wording;
}

async function checkDelivery(options: VerifyDeliveryOptions, wording: Wording): Promise<DeliveryVerification> {
  const { scheme, headers, body, toleranceSeconds } = options;
  const secrets: readonly WebhookSecret[] = Array.isArray(options.secret)
    ? options.secret
    : [options.secret as WebhookSecret];
  const nowMs = atOption(options.at);
  const check: Check = { scheme, secrets, headers, body, nowMs, toleranceSeconds };
  // Made here, outside `run`: a secret core cannot use, or an option it refuses, is an error.
  const verifier = verifierFor(check);
  const result = await verifier.check(headers, body);
  const window = {
    at: Math.floor(nowMs / 1000),
    toleranceSeconds: scheme.timestamp === "none" ? undefined : verifier.toleranceSeconds,
  };
  if (result.ok) {
    return {
      valid: true,
      scheme: scheme.name,
      code: undefined,
      message: undefined,
      signatureValid: true,
      id: result.id,
      ...timing(result.timestamp, nowMs),
      ...window,
      secretIndex: await matchedSecret(check),
      hints: [],
    };
  }
  const diagnosis: Diagnosis = { check, bytes: bytesOf(body), wording };
  const found = await diagnose(diagnosis, result, verifier.toleranceSeconds);
  const claimedMs = claimedTimestampMs(diagnosis);
  return {
    valid: false,
    scheme: scheme.name,
    code: result.code,
    message: result.error.message,
    signatureValid: found.signatureValid,
    id: found.id,
    ...timing(claimedMs === undefined ? undefined : claimedMs / 1000, nowMs),
    ...window,
    secretIndex: found.secretIndex,
    hints: found.hints,
  };
}

/** `at` in ms: now, or the Unix seconds given. */
function atOption(at: number | undefined): number {
  if (at === undefined) return Date.now();
  if (typeof at !== "number" || !Number.isFinite(at) || at < 0) {
    throw usageError("at must be Unix time in seconds: a finite number of at least 0");
  }
  return at * 1000;
}

function timing(timestamp: number | undefined, nowMs: number): Pick<DeliveryVerification, "timestamp" | "ageSeconds"> {
  if (timestamp === undefined) return { timestamp: undefined, ageSeconds: undefined };
  return { timestamp, ageSeconds: Math.floor((nowMs - timestamp * 1000) / 1000) };
}

const verifierFor = (check: Check) =>
  createWebhookVerifier({
    scheme: check.scheme,
    secret: check.secrets,
    now: () => check.nowMs,
    ...(check.toleranceSeconds === undefined ? {} : { toleranceSeconds: check.toleranceSeconds }),
  });

/**
 * Core's verdict on a variant of the delivery; undefined when the variant cannot be checked (a
 * secret in a form the scheme refuses).
 */
async function attempt(check: Check): Promise<VerifiedWebhook | WebhookRefusal | undefined> {
  let verifier: ReturnType<typeof verifierFor>;
  try {
    verifier = verifierFor(check);
  } catch (error) {
    if (error instanceof WebhookVerificationError || error instanceof InterlockConfigError) return undefined;
    throw error;
  }
  return verifier.check(check.headers, check.body);
}

const verifies = async (check: Check): Promise<boolean> => (await attempt(check))?.ok === true;

/** Which secret a delivery verifies with: the first, in order, that does alone (as core's verifier picks it). */
async function matchedSecret(check: Check): Promise<number | undefined> {
  if (check.secrets.length === 1) return 0;
  for (const [index, secret] of check.secrets.entries()) {
    if (await verifies({ ...check, secrets: [secret] })) return index;
  }
  return undefined;
}

/** What was found about a delivery core refused. */
interface Findings {
  signatureValid: boolean | undefined;
  id: string | undefined;
  secretIndex: number | undefined;
  hints: VerifyHint[];
}

const TIMESTAMP_CODES = new Set<WebhookErrorCode>(["timestamp_too_old", "timestamp_in_future"]);

async function diagnose(diagnosis: Diagnosis, refusal: WebhookRefusal, tolerance: number): Promise<Findings> {
  const { check, wording } = diagnosis;
  const none: Findings = { signatureValid: undefined, id: undefined, secretIndex: undefined, hints: [] };
  if (TIMESTAMP_CODES.has(refusal.code)) {
    const signedMs = claimedTimestampMs(diagnosis);
    if (signedMs === undefined) return none;
    // As of its own timestamp, the window passes: what is left is the signature's verdict.
    const asSigned: Check = { ...check, nowMs: signedMs };
    const then = await attempt(asSigned);
    if (then?.ok) {
      const secretIndex = await matchedSecret(asSigned);
      const hint = timestampOnly(signedMs, check.nowMs, tolerance, wording);
      return { signatureValid: true, id: then.id, secretIndex, hints: [hint] };
    }
    const seconds = Math.floor(signedMs / 1000);
    const too: VerifyHint = {
      code: "signature_too",
      message: `the timestamp is not the only failure: as of the time it was signed (${wording.at(seconds)}), no signature matches either`,
    };
    return {
      ...none,
      signatureValid: false,
      hints: [too, ...(await signatureHints({ ...diagnosis, check: asSigned }))],
    };
  }
  if (refusal.code === "no_matching_signature") {
    return { ...none, signatureValid: false, hints: await signatureHints(diagnosis) };
  }
  return { ...none, hints: await headerHints(diagnosis, refusal.code) };
}

function timestampOnly(signedMs: number, nowMs: number, tolerance: number, wording: Wording): VerifyHint {
  const age = Math.floor((nowMs - signedMs) / 1000);
  const seconds = Math.floor(signedMs / 1000);
  const when = `${duration(Math.abs(age))} ${age >= 0 ? "old" : "in the future"}`;
  return {
    code: "timestamp_only",
    message:
      `the signature is valid: only the timestamp fails, signed ${seconds} (${isoTime(signedMs / 1000)}), ${when}, ` +
      `past the ${tolerance} s tolerance either way. To check a captured delivery as of when it was sent, ` +
      `use ${wording.at(seconds)} (or a wider ${wording.tolerance})`,
  };
}

/** Hints for a signature that matched no secret: the variants of the body, the secret and the headers that do. */
async function signatureHints(diagnosis: Diagnosis): Promise<VerifyHint[]> {
  const hints: VerifyHint[] = [];
  const body = await bodyHint(diagnosis);
  if (body) hints.push(body);
  hints.push(...(await secretHints(diagnosis)));
  const quoted = await quotedHint(diagnosis, "no_matching_signature");
  if (quoted) hints.push(quoted);
  hints.push(...(await otherSchemeHints(diagnosis)));
  if (hints.length === 0) hints.push(secretOrBody(diagnosis));
  return hints;
}

/** Hints for headers core could not read: quotes, a content coding, another scheme's, none at all. */
async function headerHints(diagnosis: Diagnosis, code: WebhookErrorCode): Promise<VerifyHint[]> {
  const entries = headerEntries(diagnosis.check.headers);
  if (entries?.length === 0) {
    return [{ code: "no_headers", message: "no headers were given: the delivery's signature is in its headers" }];
  }
  const hints: VerifyHint[] = [];
  if (code === "unsupported_content_encoding") hints.push(await contentEncodingHint(diagnosis));
  const quoted = await quotedHint(diagnosis, code);
  if (quoted) hints.push(quoted);
  hints.push(...(await otherSchemeHints(diagnosis)));
  return hints;
}

function secretOrBody({ check, bytes }: Diagnosis): VerifyHint {
  const secrets = check.secrets.length === 1 ? "the secret" : `any of the ${check.secrets.length} secrets`;
  const json = bytes !== undefined && jsonValue(bytes) !== undefined;
  return {
    code: "secret_or_body",
    message:
      `no signature over these bytes matches ${secrets}, nor any variant tried (line breaks, JSON forms, secret forms): ` +
      "either the secret is not the one the sender signed with (each endpoint has its own; test and live modes " +
      "differ), or the body is not the bytes that were sent" +
      (json ? " (a JSON body parsed and written again, by a framework, a logger or a viewer, is other bytes)" : "") +
      ": verify the raw request body",
  };
}

// ---------------------------------------------------------------------------------------
// Variants of the body.

interface BodyVariant {
  code: VerifyHintCode;
  bytes: Uint8Array;
  message: string;
}

const LF = 0x0a;
const CR = 0x0d;

/** The first variant of the body that verifies, as a hint; undefined when none does. */
async function bodyHint(diagnosis: Diagnosis): Promise<VerifyHint | undefined> {
  const { bytes, check } = diagnosis;
  if (bytes === undefined) return undefined;
  // Each distinct variant once: compact JSON may be the body itself, or the body without its line break.
  const tried: Uint8Array[] = [bytes];
  for (const variant of bodyVariants(bytes)) {
    if (tried.some((other) => Buffer.compare(other, variant.bytes) === 0)) continue;
    tried.push(variant.bytes);
    if (await verifies({ ...check, body: variant.bytes })) return { code: variant.code, message: variant.message };
  }
  return undefined;
}

const RAW = "verify the bytes as received (a request bin's raw view, the request's raw body in the app)";

/** The body as it was, had it been changed the common ways after it was signed: most likely first. */
function* bodyVariants(bytes: Uint8Array): Generator<BodyVariant> {
  const last = bytes.at(-1);
  if (last === LF) {
    const crlf = bytes.at(-2) === CR;
    yield {
      code: "trailing_newline",
      bytes: bytes.subarray(0, bytes.length - (crlf ? 2 : 1)),
      message:
        `the body ends with a line break${crlf ? " (CRLF)" : ""} that was not signed: the signature over the body without it matches. ` +
        `It was added after the delivery arrived (an editor, echo or a here-document saving it, a log line): ${RAW}`,
    };
    let end = bytes.length;
    while (end > 0 && (bytes[end - 1] === LF || bytes[end - 1] === CR)) end--;
    yield {
      code: "trailing_newline",
      bytes: bytes.subarray(0, end),
      message: `the body ends with line breaks that were not signed: the signature over the body without them matches: ${RAW}`,
    };
  } else {
    yield {
      code: "missing_trailing_newline",
      bytes: concat(bytes, [LF]),
      message:
        "the signed body ended with a line break that this copy lacks: the signature over the body with one matches. " +
        `It was lost after the delivery arrived (copied from a log or a terminal, read with $(…)): ${RAW}`,
    };
  }
  const text = decoded(bytes);
  if (text === undefined) return;
  if (text.includes("\r\n")) {
    yield {
      code: "crlf_line_breaks",
      bytes: utf8.encode(text.replaceAll("\r\n", "\n")),
      message: `the signed body's line breaks were LF, and this copy's are CRLF (a Windows editor, git's autocrlf): ${RAW}`,
    };
  } else if (text.includes("\n")) {
    yield {
      code: "crlf_line_breaks",
      bytes: utf8.encode(text.replaceAll("\n", "\r\n")),
      message: `the signed body's line breaks were CRLF, and this copy's are LF (an editor or git converted them): ${RAW}`,
    };
  }
  const value = jsonValue(bytes);
  if (value === undefined) return;
  if (typeof value.json === "string") {
    yield {
      code: "json_string",
      bytes: utf8.encode(value.json),
      message: `the body is a JSON string holding the signed text: it was escaped as JSON once more (logged or exported as a string): ${RAW}`,
    };
  }
  for (const [form, write] of JSON_FORMS) {
    let written: string;
    try {
      written = write(value.json);
    } catch {
      continue; // nested too deep to write again
    }
    yield {
      code: "json_reformatted",
      bytes: utf8.encode(written),
      message:
        `the signature matches this JSON written ${form}: the sender signed that text, and this body was ` +
        `re-formatted after it arrived (parsed and written again, by a JSON body parser, a logger or a viewer): ${RAW}`,
    };
  }
}

/** The forms JSON is most often written in, named for the hint. */
const JSON_FORMS: ReadonlyArray<readonly [string, (value: unknown) => string]> = [
  ["compactly (as JSON.stringify writes it)", (value) => JSON.stringify(value)],
  ["with 2-space indentation (as JSON.stringify(value, null, 2) writes it)", (value) => JSON.stringify(value, null, 2)],
  ['with ", " and ": " between items (as Python\'s json.dumps writes it)', (value) => spacedJson(value)],
];

/** JSON with Python's default separators: `{"a": 1, "b": [1, 2]}`. */
function spacedJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(spacedJson).join(", ")}]`;
  if (value !== null && typeof value === "object") {
    const items = Object.entries(value).map(([key, item]) => `${JSON.stringify(key)}: ${spacedJson(item)}`);
    return `{${items.join(", ")}}`;
  }
  return JSON.stringify(value);
}

function decoded(bytes: Uint8Array): string | undefined {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

/** The body's JSON value, boxed (it may be null); undefined when it is not JSON text. */
function jsonValue(bytes: Uint8Array): { json: unknown } | undefined {
  const text = decoded(bytes);
  if (text === undefined) return undefined;
  try {
    return { json: JSON.parse(text) };
  } catch {
    return undefined;
  }
}

function concat(bytes: Uint8Array, more: readonly number[]): Uint8Array {
  const out = new Uint8Array(bytes.length + more.length);
  out.set(bytes);
  out.set(more, bytes.length);
  return out;
}

function bytesOf(body: RawBody): Uint8Array | undefined {
  if (body instanceof Uint8Array) return body;
  if (typeof body === "string") return utf8.encode(body);
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  return undefined;
}

// ---------------------------------------------------------------------------------------
// Variants of the secret.

const WHSEC = "whsec_";

/**
 * For each secret given as text, the forms it is mistaken for that verify, as hints: a Stripe
 * secret without its `whsec_` (Stripe keys with the whole text), a `whsec_` secret given to a
 * scheme that keys with the text as is, a Standard Webhooks sender keying with the text itself.
 */
async function secretHints(diagnosis: Diagnosis): Promise<VerifyHint[]> {
  const { check, wording } = diagnosis;
  const hints: VerifyHint[] = [];
  for (const [index, secret] of check.secrets.entries()) {
    if (typeof secret !== "string") continue;
    const named = wording.secret(index, check.secrets.length);
    for (const variant of secretVariants(check.scheme, secret, named, wording)) {
      if (await verifies({ ...check, secrets: [variant.secret] })) {
        hints.push({ code: "secret_format", message: variant.message });
        break;
      }
    }
  }
  return hints;
}

function* secretVariants(
  scheme: WebhookScheme,
  secret: string,
  named: string,
  wording: Wording,
): Generator<{ secret: WebhookSecret; message: string }> {
  const prefixed = secret.startsWith(WHSEC);
  const rest = prefixed ? secret.slice(WHSEC.length) : secret;
  if (scheme.name === standardWebhooks.name) {
    const keyed =
      "the sender keyed its HMAC with the secret's text, where Standard Webhooks keys it with the bytes the base64 after whsec_ holds";
    yield {
      secret: utf8.encode(secret),
      message: `the signature matches with ${named}'s whole text as the key: ${keyed} (its text's bytes, given ${wording.bytes}, verify such deliveries)`,
    };
    if (prefixed) {
      yield {
        secret: utf8.encode(rest),
        message: `the signature matches with ${named}'s text after whsec_ as the key: ${keyed} (its text's bytes, given ${wording.bytes}, verify such deliveries)`,
      };
    }
    return;
  }
  if (scheme.name === schemes.stripe.name) {
    yield prefixed
      ? {
          secret: rest,
          message: `the signature matches with ${named} without its whsec_ prefix: the sender keyed its HMAC with the text after it, where Stripe keys it with the whole signing secret, whsec_ included`,
        }
      : {
          secret: `${WHSEC}${secret}`,
          message: `the signature matches with whsec_ put before ${named}: Stripe keys its HMAC with the whole signing secret, whsec_ included: give it as the dashboard shows it`,
        };
    return;
  }
  if (!prefixed) return;
  yield {
    secret: rest,
    message: `the signature matches with ${named} without its whsec_ prefix: the ${scheme.name} scheme keys its HMAC with the secret's text exactly as given, and the sender signed with the text after whsec_: give the secret without it`,
  };
  const bytes = decodeBase64(rest);
  if (bytes !== undefined && bytes.length > 0) {
    yield {
      secret: bytes,
      message: `the signature matches with the bytes ${named}'s base64 after whsec_ holds, as Standard Webhooks keys its HMAC, where the ${scheme.name} scheme keys it with the secret's text: give those bytes ${wording.bytes}`,
    };
  }
}

// ---------------------------------------------------------------------------------------
// Variants of the headers, and other schemes.

/** The headers as name/value pairs, for variants; undefined for a `get()`-only object that cannot be listed. */
function headerEntries(headers: HeadersInput): Array<[string, string | readonly string[]]> | undefined {
  const listed = headers as { forEach?: (fn: (value: string, name: string) => void) => void; get?: unknown };
  if (typeof listed.get === "function") {
    if (typeof listed.forEach !== "function") return undefined;
    const entries: Array<[string, string]> = [];
    listed.forEach((value, name) => {
      entries.push([name.toLowerCase(), value]);
    });
    return entries;
  }
  return Object.entries(headers as Record<string, string | readonly string[] | undefined>)
    .filter((entry): entry is [string, string | readonly string[]] => entry[1] !== undefined)
    .map(([name, value]) => [name.toLowerCase(), value]);
}

const QUOTED = /^(["'])(.*)\1$/s;

/** A hint when header values are in quotes and, without them, the delivery gets further than `code`. */
async function quotedHint(diagnosis: Diagnosis, code: WebhookErrorCode): Promise<VerifyHint | undefined> {
  const { check } = diagnosis;
  const entries = headerEntries(check.headers);
  if (entries === undefined) return undefined;
  const quoted = entries.filter(([, value]) => typeof value === "string" && QUOTED.test(value)).map(([name]) => name);
  if (quoted.length === 0) return undefined;
  const unquoted = Object.fromEntries(
    entries.map(([name, value]) => [name, typeof value === "string" ? value.replace(QUOTED, "$2") : value]),
  );
  const after = await attempt({ ...check, headers: unquoted });
  if (after === undefined || (!after.ok && after.code === code)) return undefined;
  const outcome = after.ok ? "the delivery verifies" : `core gets further (${after.code})`;
  return {
    code: "quoted_header",
    message: `the value of ${quoted.join(", ")} is in quotes (copied from JSON or a log?): without them ${outcome}: remove the quotes`,
  };
}

async function contentEncodingHint({ check }: Diagnosis): Promise<VerifyHint> {
  const entries = headerEntries(check.headers) ?? [];
  const without = Object.fromEntries(entries.filter(([name]) => name !== "content-encoding"));
  const sent =
    "the headers say the body was sent content-encoded (content-encoding), and core refuses such a delivery " +
    "whichever bytes were signed (a receiver answers 415)";
  return {
    code: "content_encoding",
    message: (await verifies({ ...check, headers: without }))
      ? `${sent}. Without that header, the body you have verifies: the sender signed it uncompressed; have it (or a proxy) send it uncompressed`
      : `${sent}. Without that header, the body you have does not verify either`,
  };
}

/** The `--scheme` names of each scheme name: `standard-webhooks` is also `svix`. */
const NAMES_OF = new Map<string, SchemeName[]>();
for (const name of SCHEME_NAMES) NAMES_OF.set(schemes[name].name, [...(NAMES_OF.get(schemes[name].name) ?? []), name]);

/** Hints naming every other scheme whose signature headers the delivery carries, and whether it verifies as that one. */
async function otherSchemeHints(diagnosis: Diagnosis): Promise<VerifyHint[]> {
  const { check, bytes, wording } = diagnosis;
  const read = readerOf(check.headers);
  const hints: VerifyHint[] = [];
  for (const [name, names] of NAMES_OF) {
    if (name === check.scheme.name) continue;
    const other = schemes[names[0] as SchemeName];
    if (!carries(other, read, bytes ?? new Uint8Array())) continue;
    const choose = names.map((n) => wording.scheme(n)).join(" or ");
    hints.push({
      code: "other_scheme",
      message: (await verifies({ ...check, scheme: other }))
        ? `the headers are a ${name} delivery's, and it verifies as ${choose}`
        : `the headers carry a ${name} signature: is it a ${name} delivery (${choose})?`,
    });
  }
  return hints;
}

/** Whether the headers hold what `scheme` reads: its parse gets past its headers being missing. */
function carries(scheme: WebhookScheme, read: HeaderReader, body: Uint8Array): boolean {
  try {
    scheme.parse(read, body);
    return true;
  } catch (error) {
    return error instanceof WebhookVerificationError && error.code !== "missing_header";
  }
}

/**
 * The signed timestamp the delivery claims, in ms: read by the scheme's own `parse` (a header)
 * or `bodyTimestamp` (Linear's body), unverified; undefined when it cannot be read.
 */
function claimedTimestampMs({ check, bytes }: Diagnosis): number | undefined {
  const { scheme } = check;
  try {
    if (scheme.timestamp === "header")
      return scheme.parse(readerOf(check.headers), bytes ?? new Uint8Array()).timestampMs;
    if (scheme.timestamp === "body" && bytes !== undefined) return scheme.bodyTimestamp?.(bytes);
  } catch {
    // Unreadable: core's code says why.
  }
  return undefined;
}

/** A `HeaderReader` over `HeadersInput`, for a scheme's `parse`: names in any case, as core reads them. */
function readerOf(headers: HeadersInput): HeaderReader {
  const fetchLike = headers as { get?: (name: string) => string | null };
  if (typeof fetchLike.get === "function") {
    const get = fetchLike.get.bind(headers);
    return (name) => get(name) ?? undefined;
  }
  const entries = headerEntries(headers) ?? [];
  return (name) => {
    const values = entries.filter(([key]) => key === name).map(([, value]) => value);
    if (values.length === 0) return undefined;
    const flat = values.flatMap((value) => (typeof value === "string" ? [value] : [...value]));
    return flat.length === 1 ? flat[0] : flat;
  };
}

// ---------------------------------------------------------------------------------------
// Time, as printed.

/** A Unix time as ISO 8601, without milliseconds when there are none. */
function isoTime(seconds: number): string {
  return new Date(seconds * 1000).toISOString().replace(".000Z", "Z");
}

/** Seconds as people say them: `42 s`, `5 min`, `3 h`, `12 days` (rounded down). */
function duration(seconds: number): string {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 172_800) return `${Math.floor(seconds / 3600)} h`;
  return `${Math.floor(seconds / 86_400)} days`;
}

// ---------------------------------------------------------------------------------------
// The command.

/** `1st`, `2nd`, `3rd`, `4th`, …, `11th`, …, `21st`. */
function ordinal(n: number): string {
  const teen = n % 100 >= 11 && n % 100 <= 13;
  return `${n}${teen ? "th" : (["th", "st", "nd", "rd"][n % 10] ?? "th")}`;
}

/** A provider's prefix, shown where a secret is named: it is the provider's, not the secret's. */
const PROVIDER_PREFIX = /^wh(?:sec|sk|pk)_/;

/**
 * How each secret was given, in the order `readSecrets` returns them: its option, with the name
 * of its variable, or for a `whsec_…` text its first four characters (the provider's prefix).
 * No character of a secret of its own is shown.
 */
function secretLabels(sources: SecretSources): string[] {
  return [
    ...sources.literal.map((secret) =>
      PROVIDER_PREFIX.test(secret) ? `--secret "${valueStart(secret)}"` : "--secret",
    ),
    ...sources.hex.map(() => "--secret-hex"),
    ...sources.envNames.map((name) => `--secret-env ${name}`),
    ...sources.hexEnvNames.map((name) => `--secret-hex-env ${name}`),
  ];
}

function cliWording(labels: readonly string[]): Wording {
  return {
    secret: (index, count) =>
      `${count === 1 ? "the secret" : `the ${ordinal(index + 1)} secret`} (${labels[index] ?? "?"})`,
    at: (seconds) => `--at ${seconds}`,
    tolerance: "--tolerance",
    scheme: (name) => `--scheme ${name}`,
    bytes: "in hex with --secret-hex",
  };
}

const MAX_AT_SECONDS = 99_999_999_999;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}(?:([T ])\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/i;

/** `--at`: Unix seconds, or an ISO 8601 date (a date alone is midnight UTC; a time needs its zone). */
function parseAt(text: string): number {
  if (/^\d+$/.test(text)) {
    const seconds = Number(text);
    if (!Number.isSafeInteger(seconds) || seconds > MAX_AT_SECONDS) {
      throw usageError(`--at ${text} is past the year 5000: --at takes Unix seconds, not milliseconds`);
    }
    return seconds;
  }
  const match = ISO_DATE.exec(text);
  if (match) {
    if (match[1] !== undefined && match[2] === undefined) {
      throw usageError(`--at ${text} has no time zone: end it with Z (UTC) or an offset such as +01:00`);
    }
    // Date.parse reads ISO 8601 as ECMAScript writes it: a "T", and an offset with its colon.
    const normalised = text.replace(" ", "T").replace(/([+-]\d{2})(\d{2})$/, "$1:$2");
    const ms = Date.parse(normalised);
    if (Number.isFinite(ms) && ms >= 0) return ms / 1000;
  }
  throw usageError(
    `--at must be Unix seconds or an ISO 8601 date such as 2026-01-01T00:00:00Z, got "${valueStart(text)}"`,
  );
}

/** The delivery's headers from `--headers` and `-H`, read once their specs are checked. */
interface HeaderSources {
  /** Files to read: `--headers @file` or `-`, then each `-H @file`. */
  files: string[];
  /** `-H "Name: value"` options. */
  options: HeaderList;
}

function headerSources(args: Args): HeaderSources {
  const files: string[] = [];
  const spec = args.string("headers");
  if (spec !== undefined) {
    if (spec === "@") throw usageError("--headers @ needs a file name, as in --headers @headers.txt");
    if (spec !== "-" && !spec.startsWith("@")) {
      throw usageError(
        `--headers takes @file or - (stdin), got "${valueStart(spec)}"; -H "Name: value" gives one header`,
      );
    }
    files.push(spec);
  }
  const options: HeaderList = [];
  for (const text of args.strings("header")) {
    // curl's form: `-H @file` reads a file of headers (no header name starts with "@").
    if (text.startsWith("@") && text.length > 1) files.push(text);
    else options.push(parseHeaderOption(text));
  }
  if (files.length === 0 && options.length === 0) {
    throw usageError('no headers: give the delivery\'s headers with -H "Name: value" or --headers @file');
  }
  return { files, options };
}

async function readHeaders(sources: HeaderSources, io: CliIo): Promise<Record<string, string>> {
  const fromFiles: HeaderList = [];
  for (const spec of sources.files) {
    const { bytes } = await readBody(spec, io.stdin);
    const source = spec === "-" ? "the headers on stdin" : spec.slice(1);
    fromFiles.push(...parseHeadersFile(new TextDecoder().decode(bytes), source));
  }
  return headerRecord(fromFiles, sources.options);
}

/** `signed 1767225600 (2026-01-01T00:00:00Z, 42 s ago)`, or `… before --at`. */
function signedAt(timestamp: number, age: number, atGiven: boolean): string {
  const span = duration(Math.abs(age));
  const relation = atGiven
    ? `${span} ${age >= 0 ? "before" : "after"} --at`
    : age >= 0
      ? `${span} ago`
      : `${span} in the future`;
  return `signed ${Math.floor(timestamp)} (${isoTime(timestamp)}, ${relation})`;
}

function verdictText(result: DeliveryVerification, labels: readonly string[], atGiven: boolean): string {
  if (!result.valid) {
    const hints = result.hints.map((hint) => `\nhint: ${hint.message}`).join("");
    return `not valid: ${result.scheme}, ${result.code}: ${result.message}${hints}`;
  }
  const parts = [`valid: ${result.scheme}`];
  if (result.id !== undefined) parts.push(`id ${result.id}`);
  if (result.timestamp !== undefined && result.ageSeconds !== undefined) {
    parts.push(signedAt(result.timestamp, result.ageSeconds, atGiven));
  }
  if (labels.length > 1 && result.secretIndex !== undefined) {
    parts.push(
      `with the ${ordinal(result.secretIndex + 1)} of ${labels.length} secrets (${labels[result.secretIndex]})`,
    );
  }
  return parts.join(", ");
}

/** The `--json` object: the verdict's fields, the secret that matched by its place and option rather than its index. */
function verdictRecord(result: DeliveryVerification, labels: readonly string[]): Record<string, unknown> {
  const { secretIndex } = result;
  const secret =
    labels.length > 1 && secretIndex !== undefined
      ? { position: secretIndex + 1, of: labels.length, given: labels[secretIndex] }
      : undefined;
  return {
    type: "verification",
    valid: result.valid,
    scheme: result.scheme,
    code: result.code,
    message: result.message,
    signatureValid: result.signatureValid,
    id: result.id,
    timestamp: result.timestamp,
    ageSeconds: result.ageSeconds,
    at: result.at,
    toleranceSeconds: result.toleranceSeconds,
    secret,
    hints: result.hints,
  };
}

export const verifyCommand: Command = {
  name: "verify",
  summary: "check a captured delivery offline, and say why it fails",
  usage: '--scheme NAME --secret SECRET (-H "NAME: VALUE" | --headers @FILE) --body BODY [options]',
  description: [
    "Verifies a delivery you have (headers and body from logs, a request bin, a failing test) with",
    "@interlock/core's verifier, as a receiver would: valid (exit 0) with its id, timestamp and age,",
    "or not valid (exit 1) with core's reason code and hints found by verifying variants of it: the",
    "body without its trailing line break or re-formatted JSON, the secret in another form, another",
    "scheme's headers, the delivery as of its own timestamp (--at checks it as of another time).",
    "--headers reads interlock sign's output (or its --json), a JSON object of headers, or a raw",
    'request head: "Name: value" lines, a request line first and anything after a blank line ignored.',
  ].join("\n"),
  positionals: [],
  options: {
    scheme: SCHEME_OPTION,
    ...SECRET_OPTIONS,
    body: {
      type: "string",
      value: "BODY",
      description: "the body as received: @file reads a file, - reads stdin, anything else is the body itself",
      // An empty body is a delivery like any other, as for sign.
      blankAllowed: true,
    },
    header: {
      type: "string",
      short: "H",
      multiple: true,
      value: '"NAME: VALUE"',
      description: "a header of the delivery, replacing any of its name from --headers; -H @file reads a headers file",
    },
    headers: {
      type: "string",
      value: "@FILE",
      description:
        "the delivery's headers from a file (- reads stdin): interlock sign's output, JSON, or a request head",
    },
    at: {
      type: "string",
      value: "TIME",
      description: "check the timestamp as of TIME (Unix seconds, or an ISO 8601 date such as 2026-01-01T00:00:00Z)",
    },
    tolerance: { type: "string", value: "SECONDS", description: "accepted timestamp age either way (default 300)" },
  },
  examples: [
    "interlock sign --scheme stripe --secret-env STRIPE_WEBHOOK_SECRET --body @event.json > headers.txt",
    "interlock verify --scheme stripe --secret-env STRIPE_WEBHOOK_SECRET --headers @headers.txt --body @event.json",
    "interlock verify --scheme github --secret-env GITHUB_WEBHOOK_SECRET --headers @request.http --body @payload.json --json",
    "interlock verify --scheme svix --secret-env WEBHOOK_SECRET --headers @captured.txt --body @captured.json --at 2026-01-01T10:00:00Z",
  ],
  async run(args: Args, io: CliIo): Promise<number> {
    const scheme = resolveScheme(args.string("scheme"));
    const toleranceSeconds = args.optionalInteger("tolerance", { min: 1, max: MAX_TOLERANCE_SECONDS });
    const atText = args.string("at");
    const at = atText === undefined ? undefined : parseAt(atText);
    if (scheme.timestamp === "none") {
      const given = at !== undefined ? "at" : toleranceSeconds !== undefined ? "tolerance" : undefined;
      if (given !== undefined) {
        throw usageError(
          `--${given} does not apply to the ${scheme.name} scheme: it signs no timestamp, so no delivery of it is refused for its age`,
        );
      }
    }
    const headerSpecs = headerSources(args);
    const bodySpec = args.string("body");
    if (bodySpec === undefined) throw usageError("--body is required: @file, - (stdin) or the body itself");
    if (bodySpec === "-" && headerSpecs.files.includes("-")) {
      throw usageError("--body - and --headers - cannot both read stdin: give one of them as @file");
    }
    const sources = secretSources(args);
    const secrets = readSecrets(sources, io.env, scheme.name);
    const labels = secretLabels(sources);
    const headers = await readHeaders(headerSpecs, io);
    const body = await readBody(bodySpec, io.stdin);
    const result = await checkDelivery(
      {
        scheme,
        secret: secrets,
        headers,
        body: body.bytes,
        ...(at === undefined ? {} : { at }),
        ...(toleranceSeconds === undefined ? {} : { toleranceSeconds }),
      },
      cliWording(labels),
    );
    new Printer(io.stdout, args.flag("json")).print(verdictRecord(result, labels), () =>
      verdictText(result, labels, at !== undefined),
    );
    return result.valid ? EXIT.ok : EXIT.notValid;
  },
};
