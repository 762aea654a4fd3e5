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
  type HeadersInput,
  MAX_TOLERANCE_SECONDS,
  optionNames,
  type RawBody,
  type WebhookErrorCode,
  type WebhookScheme,
  type WebhookSecret,
} from "@interlock/core";
import type { Args } from "../args.js";
import type { Command } from "../command.js";
import { bodySpec, headerOption, SCHEME_SECRET_BODY_OPTIONS, secretSources } from "../delivery-options.js";
import { EXIT, usageError, valueStart } from "../errors.js";
import { type HeaderList, headerRecord, parseHeaderOption, parseHeadersFile } from "../header-input.js";
import { ordinal, readBody, readSecrets, type SecretSources } from "../inputs.js";
import { type CliIo, Printer } from "../io.js";
import { resolveScheme } from "../schemes.js";
import {
  type Check,
  diagnose,
  duration,
  isoTime,
  matchedSecret,
  type VerifyHint,
  verifierFor,
  type Wording,
} from "../verify-hints.js";

export type { VerifyHint, VerifyHintCode } from "../verify-hints.js";

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
  const found = await diagnose(check, result, verifier.toleranceSeconds, wording);
  const { claimedMs } = found;
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

// ---------------------------------------------------------------------------------------
// The command.

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
    refuseMissingDay(text);
    // Date.parse reads ISO 8601 as ECMAScript writes it: a "T", and an offset with its colon.
    const normalised = text.replace(" ", "T").replace(/([+-]\d{2})(\d{2})$/, "$1:$2");
    const ms = Date.parse(normalised);
    if (Number.isFinite(ms) && ms >= 0) return ms / 1000;
  }
  throw usageError(
    `--at must be Unix seconds or an ISO 8601 date such as 2026-01-01T00:00:00Z, got "${valueStart(text)}"`,
  );
}

/**
 * A day its month does not have (`2026-02-30`) is a usage error: `Date.parse` reads it as a day
 * of the next month (March 2nd), and the delivery would be checked as of a time not meant.
 */
function refuseMissingDay(text: string): void {
  const [year, month, day] = text.slice(0, 10).split("-").map(Number) as [number, number, number];
  const days = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (month >= 1 && month <= 12 && day > days) {
    throw usageError(`--at ${text} is no date: ${text.slice(0, 7)} has no day ${day}`);
  }
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
    fromFiles.push(...parseHeadersFile(bytes, source));
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

/** `--at` and `--tolerance`, refused for a scheme that signs no timestamp. */
function timeOptions(args: Args, scheme: WebhookScheme): Pick<VerifyDeliveryOptions, "at" | "toleranceSeconds"> {
  const toleranceSeconds = args.optionalInteger("tolerance", { min: 1, max: MAX_TOLERANCE_SECONDS });
  const atText = args.string("at");
  const at = atText === undefined ? undefined : parseAt(atText);
  const given = at !== undefined ? "at" : toleranceSeconds !== undefined ? "tolerance" : undefined;
  if (scheme.timestamp === "none" && given !== undefined) {
    throw usageError(
      `--${given} does not apply to the ${scheme.name} scheme: it signs no timestamp, so no delivery of it is refused for its age`,
    );
  }
  return { ...(at === undefined ? {} : { at }), ...(toleranceSeconds === undefined ? {} : { toleranceSeconds }) };
}

/**
 * The command line's delivery, and how each secret was given (for naming the one that matched).
 * Checked cheapest first, as sign's are: a usage error never waits on stdin.
 */
async function readVerifyInput(args: Args, io: CliIo): Promise<{ options: VerifyDeliveryOptions; labels: string[] }> {
  const scheme = resolveScheme(args.string("scheme"));
  const time = timeOptions(args, scheme);
  const headerSpecs = headerSources(args);
  const body = bodySpec(args);
  if (body === "-" && headerSpecs.files.includes("-")) {
    throw usageError("--body - and --headers - cannot both read stdin: give one of them as @file");
  }
  const sources = secretSources(args);
  const secret = readSecrets(sources, io.env, scheme.name);
  const headers = await readHeaders(headerSpecs, io);
  const { bytes } = await readBody(body, io.stdin);
  return { options: { scheme, secret, headers, body: bytes, ...time }, labels: secretLabels(sources) };
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
    ...SCHEME_SECRET_BODY_OPTIONS,
    header: headerOption(
      "a header of the delivery, replacing any of its name from --headers; -H @file reads a headers file",
    ),
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
    const { options, labels } = await readVerifyInput(args, io);
    const result = await checkDelivery(options, cliWording(labels));
    new Printer(io.stdout, args.flag("json")).print(verdictRecord(result, labels), () =>
      verdictText(result, labels, options.at !== undefined),
    );
    return result.valid ? EXIT.ok : EXIT.notValid;
  },
};
