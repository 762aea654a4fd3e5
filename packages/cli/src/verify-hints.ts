/**
 * Why a delivery failed, for `interlock verify` and `verifyDelivery`: core's verifier run again
 * on variants of the delivery (the body without its trailing line break, the same JSON written
 * compactly, the secret in another form, another scheme, the delivery as of its own timestamp).
 * A variant that verifies is a hint; nothing here computes or compares a signature.
 *
 * The search is bounded, so that a large body with many secrets costs seconds, not minutes:
 * the variants hash at most `MAX_VARIANT_HASH_BYTES` in all, and JSON is parsed and written
 * again only for a body of at most `MAX_JSON_VARIANT_BYTES`. What was left untried is a hint.
 */

import {
  createWebhookVerifier,
  decodeBase64,
  type HeaderReader,
  type HeadersInput,
  headerReader,
  InterlockConfigError,
  type RawBody,
  rawBodyBytes,
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
import { SCHEME_NAMES } from "./schemes.js";

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
  | "secret_or_body"
  /** Some variants were not tried: the search's bounds were reached (a large body, many secrets). */
  | "search_bounded";

/** One finding about a delivery that failed. */
export interface VerifyHint {
  /** What was found, stable for scripts. */
  code: VerifyHintCode;
  /** What it means and what to do, in words. */
  message: string;
}

/** How hints name what the caller gave: the command line's options, or the function's. */
export interface Wording {
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

/** What one check is run with; a variant changes some of it. */
export interface Check {
  scheme: WebhookScheme;
  secrets: readonly WebhookSecret[];
  headers: HeadersInput;
  body: RawBody;
  nowMs: number;
  toleranceSeconds: number | undefined;
}

/**
 * The most bytes the variants of one delivery hash in all: a verification hashes the body once
 * per secret, so a 25 MiB body with 4 secrets reaches it after 10 variants. About a second of
 * hashing; one secret never reaches it (its variants of a 25 MiB body hash a third of it at most).
 */
export const MAX_VARIANT_HASH_BYTES = 1024 ** 3;
/**
 * The largest body whose JSON is parsed and written again in other forms. Parsing costs far more
 * than hashing (a body of deep nesting or of many small values, seconds per 5 MiB), and a
 * webhook's JSON is rarely a megabyte.
 */
export const MAX_JSON_VARIANT_BYTES = 5 * 1024 * 1024;

export const verifierFor = (check: Check) =>
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

/** Which secret a delivery verifies with: the first, in order, that does alone (as core's verifier picks it). */
export async function matchedSecret(check: Check): Promise<number | undefined> {
  if (check.secrets.length === 1) return 0;
  for (const [index, secret] of check.secrets.entries()) {
    if ((await attempt({ ...check, secrets: [secret] }))?.ok) return index;
  }
  return undefined;
}

/** What was found about a delivery core refused. */
export interface Findings {
  signatureValid: boolean | undefined;
  id: string | undefined;
  secretIndex: number | undefined;
  /** The signed timestamp the delivery claims, in ms (unverified); undefined when it cannot be read. */
  claimedMs: number | undefined;
  hints: VerifyHint[];
}

/** A delivery being diagnosed. */
interface Diagnosis {
  check: Check;
  /** The body's bytes; undefined when it is not raw (core says so). */
  bytes: Uint8Array | undefined;
  wording: Wording;
  /** The body as UTF-8 text, decoded once; undefined when it is not. */
  text: () => string | undefined;
  /** The body's JSON value, boxed (it may be null), parsed once; undefined when it is not JSON or is too large. */
  json: () => { json: unknown } | undefined;
  /** What the search may still hash, and what it left untried. */
  search: { hashBytesLeft: number; skipped: number; jsonSkipped: boolean };
}

/** A value made on first use, then kept. */
function once<T>(make: () => T): () => T {
  let made: { value: T } | undefined;
  return () => {
    made ??= { value: make() };
    return made.value;
  };
}

const TIMESTAMP_CODES = new Set<WebhookErrorCode>(["timestamp_too_old", "timestamp_in_future"]);

/** What was found about a delivery core refused with `refusal`, checked with a window of `tolerance` seconds. */
export async function diagnose(
  check: Check,
  refusal: WebhookRefusal,
  tolerance: number,
  wording: Wording,
): Promise<Findings> {
  const bytes = rawBodyBytes(check.body);
  const text = once(() => (bytes === undefined ? undefined : decoded(bytes)));
  const json = once(() => (bytes === undefined || bytes.length > MAX_JSON_VARIANT_BYTES ? undefined : jsonOf(text())));
  const search = { hashBytesLeft: MAX_VARIANT_HASH_BYTES, skipped: 0, jsonSkipped: false };
  const diagnosis: Diagnosis = { check, bytes, wording, text, json, search };
  const claimedMs = claimedTimestampMs(diagnosis);
  const none: Findings = { signatureValid: undefined, id: undefined, secretIndex: undefined, claimedMs, hints: [] };
  if (TIMESTAMP_CODES.has(refusal.code)) {
    if (claimedMs === undefined) return none;
    return { ...none, ...(await timestampFindings(diagnosis, claimedMs, tolerance)) };
  }
  if (refusal.code === "no_matching_signature") {
    return { ...none, signatureValid: false, hints: await signatureHints(diagnosis) };
  }
  return { ...none, hints: await headerHints(diagnosis, refusal.code) };
}

/** A timestamp outside the window: as of its own timestamp the window passes, and what is left is the signature's verdict. */
async function timestampFindings(
  diagnosis: Diagnosis,
  signedMs: number,
  tolerance: number,
): Promise<Pick<Findings, "signatureValid" | "id" | "secretIndex" | "hints">> {
  const { check, wording } = diagnosis;
  const asSigned: Check = { ...check, nowMs: signedMs };
  const then = await attempt(asSigned);
  if (then?.ok) {
    const secretIndex = await matchedSecret(asSigned);
    return {
      signatureValid: true,
      id: then.id,
      secretIndex,
      hints: [timestampOnly(signedMs, check.nowMs, tolerance, wording)],
    };
  }
  const too: VerifyHint = {
    code: "signature_too",
    message: `the timestamp is not the only failure: as of the time it was signed (${wording.at(Math.floor(signedMs / 1000))}), no signature matches either`,
  };
  const hints = await signatureHints({ ...diagnosis, check: asSigned });
  return { signatureValid: false, id: undefined, secretIndex: undefined, hints: [too, ...hints] };
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
  return withBoundHint(diagnosis, hints);
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
  return withBoundHint(diagnosis, hints);
}

function secretOrBody({ check, json }: Diagnosis): VerifyHint {
  const secrets = check.secrets.length === 1 ? "the secret" : `any of the ${check.secrets.length} secrets`;
  return {
    code: "secret_or_body",
    message:
      `no signature over these bytes matches ${secrets}, nor any variant tried (line breaks, JSON forms, secret forms): ` +
      "either the secret is not the one the sender signed with (each endpoint has its own; test and live modes " +
      "differ), or the body is not the bytes that were sent" +
      (json() !== undefined
        ? " (a JSON body parsed and written again, by a framework, a logger or a viewer, is other bytes)"
        : "") +
      ": verify the raw request body",
  };
}

// ---------------------------------------------------------------------------------------
// The search's bounds.

/**
 * Core's verdict on a variant, within the search's bound on hashing: undefined when the variant
 * was not tried (the bound reached, counted as skipped) or cannot be checked.
 */
async function tryVariant(diagnosis: Diagnosis, variant: Check): Promise<VerifiedWebhook | WebhookRefusal | undefined> {
  const { search } = diagnosis;
  const size = (variant.body instanceof Uint8Array ? variant.body : diagnosis.bytes)?.length ?? 0;
  const cost = size * variant.secrets.length;
  if (cost > search.hashBytesLeft) {
    search.skipped++;
    return undefined;
  }
  search.hashBytesLeft -= cost;
  return attempt(variant);
}

/** Whether a variant verifies; undefined when it was not tried or cannot be checked. */
async function variantVerifies(diagnosis: Diagnosis, variant: Check): Promise<boolean | undefined> {
  return (await tryVariant(diagnosis, variant))?.ok;
}

const MIB = 1024 * 1024;

/** `hints`, then one saying what the search left untried, if it did: a hint not found may be among them. */
function withBoundHint({ bytes, check, search }: Diagnosis, hints: VerifyHint[]): VerifyHint[] {
  const untried: string[] = [];
  const size = `${((bytes?.length ?? 0) / MIB).toFixed(2)} MiB`;
  if (search.jsonSkipped) {
    untried.push(`the JSON forms, tried for a body of up to ${MAX_JSON_VARIANT_BYTES / MIB} MiB (this one is ${size})`);
  }
  if (search.skipped > 0) {
    const count = check.secrets.length;
    const secrets = count === 1 ? "the secret" : `each of the ${count} secrets`;
    const advice = count === 1 ? "" : ": give only the secret the sender uses to have more tried";
    untried.push(
      `${search.skipped} of them, past the ${MAX_VARIANT_HASH_BYTES / 1024 ** 3} GiB the search hashes at most ` +
        `(the body's ${size} with ${secrets})${advice}`,
    );
  }
  if (untried.length === 0) return hints;
  return [...hints, { code: "search_bounded", message: `not every variant was tried: ${untried.join("; ")}` }];
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
  for (const variant of bodyVariants(diagnosis, bytes)) {
    if (tried.some((other) => Buffer.compare(other, variant.bytes) === 0)) continue;
    tried.push(variant.bytes);
    if (await variantVerifies(diagnosis, { ...check, body: variant.bytes })) {
      return { code: variant.code, message: variant.message };
    }
  }
  return undefined;
}

const RAW = "verify the bytes as received (a request bin's raw view, the request's raw body in the app)";

/** The body as it was, had it been changed the common ways after it was signed: most likely first. */
function* bodyVariants(diagnosis: Diagnosis, bytes: Uint8Array): Generator<BodyVariant> {
  yield* lineEndVariants(bytes);
  const text = diagnosis.text();
  if (text === undefined) return;
  yield* lineBreakVariants(text);
  if (bytes.length > MAX_JSON_VARIANT_BYTES) {
    diagnosis.search.jsonSkipped = /^\s*[[{"]/.test(text.slice(0, 256));
    return;
  }
  const value = diagnosis.json();
  if (value !== undefined) yield* jsonVariants(value.json);
}

/** The body without its trailing line breaks, or with one more. */
function* lineEndVariants(bytes: Uint8Array): Generator<BodyVariant> {
  if (bytes.at(-1) !== LF) {
    yield {
      code: "missing_trailing_newline",
      bytes: concat(bytes, [LF]),
      message:
        "the signed body ended with a line break that this copy lacks: the signature over the body with one matches. " +
        `It was lost after the delivery arrived (copied from a log or a terminal, read with $(…)): ${RAW}`,
    };
    return;
  }
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
}

/** The text with its line breaks converted: CRLF to LF, or LF to CRLF. */
function* lineBreakVariants(text: string): Generator<BodyVariant> {
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
}

/** The JSON value written as a string's text, and in the forms JSON is most often written in. */
function* jsonVariants(json: unknown): Generator<BodyVariant> {
  if (typeof json === "string") {
    yield {
      code: "json_string",
      bytes: utf8.encode(json),
      message: `the body is a JSON string holding the signed text: it was escaped as JSON once more (logged or exported as a string): ${RAW}`,
    };
  }
  for (const [form, write] of JSON_FORMS) {
    let written: string;
    try {
      written = write(json);
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

/** The JSON value of `text`, boxed (it may be null); undefined when it is not JSON text. */
function jsonOf(text: string | undefined): { json: unknown } | undefined {
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
      if (await variantVerifies(diagnosis, { ...check, secrets: [variant.secret] })) {
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
  const after = await tryVariant(diagnosis, { ...check, headers: unquoted });
  if (after === undefined || (!after.ok && after.code === code)) return undefined;
  const outcome = after.ok ? "the delivery verifies" : `core gets further (${after.code})`;
  return {
    code: "quoted_header",
    message: `the value of ${quoted.join(", ")} is in quotes (copied from JSON or a log?): without them ${outcome}: remove the quotes`,
  };
}

async function contentEncodingHint(diagnosis: Diagnosis): Promise<VerifyHint> {
  const { check } = diagnosis;
  const entries = headerEntries(check.headers) ?? [];
  const without = Object.fromEntries(entries.filter(([name]) => name !== "content-encoding"));
  const sent =
    "the headers say the body was sent content-encoded (content-encoding), and core refuses such a delivery " +
    "whichever bytes were signed (a receiver answers 415)";
  const verifies = await variantVerifies(diagnosis, { ...check, headers: without });
  const after =
    verifies === undefined
      ? ""
      : verifies
        ? ". Without that header, the body you have verifies: the sender signed it uncompressed; have it (or a proxy) send it uncompressed"
        : ". Without that header, the body you have does not verify either";
  return { code: "content_encoding", message: `${sent}${after}` };
}

/** The `--scheme` names of each scheme name: `standard-webhooks` is also `svix`. */
const NAMES_OF = new Map<string, SchemeName[]>();
for (const name of SCHEME_NAMES) NAMES_OF.set(schemes[name].name, [...(NAMES_OF.get(schemes[name].name) ?? []), name]);

/** Hints naming every other scheme whose signature headers the delivery carries, and whether it verifies as that one. */
async function otherSchemeHints(diagnosis: Diagnosis): Promise<VerifyHint[]> {
  const { check, bytes, wording } = diagnosis;
  const read = headerReader(check.headers);
  const hints: VerifyHint[] = [];
  for (const [name, names] of NAMES_OF) {
    if (name === check.scheme.name) continue;
    const other = schemes[names[0] as SchemeName];
    if (!carries(other, read, bytes ?? new Uint8Array())) continue;
    const choose = names.map((n) => wording.scheme(n)).join(" or ");
    hints.push({
      code: "other_scheme",
      message: (await variantVerifies(diagnosis, { ...check, scheme: other }))
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
      return scheme.parse(headerReader(check.headers), bytes ?? new Uint8Array()).timestampMs;
    if (scheme.timestamp === "body" && bytes !== undefined) return scheme.bodyTimestamp?.(bytes);
  } catch {
    // Unreadable: core's code says why.
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------
// Time, as printed.

/** A Unix time as ISO 8601, without milliseconds when there are none. */
export function isoTime(seconds: number): string {
  return new Date(seconds * 1000).toISOString().replace(".000Z", "Z");
}

/** Seconds as people say them: `42 s`, `5 min`, `3 h`, `12 days` (rounded down). */
export function duration(seconds: number): string {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 172_800) return `${Math.floor(seconds / 3600)} h`;
  return `${Math.floor(seconds / 86_400)} days`;
}
