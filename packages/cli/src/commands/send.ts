/**
 * `interlock send`: signs a delivery and POSTs it, as the provider would: `repeat` copies of one
 * delivery (redeliveries keep their id and body), optionally tampered in transit or signed
 * with a stale timestamp, `concurrency` at a time, each retried like a provider retries when
 * asked to. Every attempt is re-signed at the moment it is sent, as providers do.
 */

import { assertOptionNames, optionNames, type RawBody, type WebhookScheme, type WebhookSecret } from "@interlock/core";
import type { Args } from "../args.js";
import type { Command } from "../command.js";
import { checkDeliveryOptions, newDeliveryId, signDelivery, tamperedBody } from "../delivery.js";
import { DELIVERY_OPTIONS, readDeliveryInput, requestHeaders } from "../delivery-options.js";
import { EXIT, usageError } from "../errors.js";
import { DEFAULT_TIMEOUT_MS, type HttpAnswer, MAX_TIMEOUT_MS, parseUrl, post, timeoutOption } from "../http.js";
import { type CliIo, Printer } from "../io.js";
import { createProgress } from "../progress.js";
import { type AttemptOutcome, checkRetryPolicy, NO_RETRIES, type RetryPolicy, withRetries } from "../retry.js";
import { visible } from "../terminal.js";

/** With `--retry`: five attempts, 1 s, 2 s, 4 s and 8 s apart; no delay longer than a minute. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxAttempts: 5, initialDelayMs: 1000, maxDelayMs: 60_000 };

/** What to send, where, how often and how. */
export interface SendOptions {
  /** Where to POST the deliveries. */
  url: string | URL;
  /** The provider's scheme. */
  scheme: WebhookScheme;
  /** One secret, or several to sign with each (schemes that carry several signatures). */
  secret: WebhookSecret | readonly WebhookSecret[];
  /** The body, sent byte for byte. */
  body: RawBody;
  /** Headers besides the signature's; one with a signature header's name replaces it. Default: content-type application/json. */
  headers?: ReadonlyArray<readonly [string, string]>;
  /** The delivery id, for schemes with an id header. Default: a new one, shared by every copy. */
  id?: string;
  /** Unix time in seconds to sign with. Default: the time of each attempt. */
  timestamp?: number;
  /** Sign with a timestamp an hour old. */
  stale?: boolean;
  /** Change the body after signing (one trailing space). */
  tamper?: boolean;
  /** Copies of the delivery to send: redeliveries, with the same id and body. Default 1. */
  repeat?: number;
  /** Copies in flight at once. Default 1. */
  concurrency?: number;
  /** How to retry an attempt that is not acknowledged. Default: one attempt. */
  retry?: RetryPolicy;
  /** How long to wait for each answer, in ms. Default 10 000. */
  timeoutMs?: number;
  /** Told about every attempt as it ends. */
  onAttempt?: (report: AttemptReport) => void;
}

/** One attempt at one copy, as `send` reports it. */
export interface AttemptReport {
  /** Which copy, from 1. */
  delivery: number;
  /** Which attempt at that copy, from 1. */
  attempt: number;
  /** Attempts allowed per copy. */
  maxAttempts: number;
  /** The delivery id in the headers; undefined for schemes whose id is in the body. */
  id: string | undefined;
  /** The answer's status; undefined when none came. */
  status: number | undefined;
  /** The answer's status text. */
  statusText: string | undefined;
  /** The answer's `Content-Type`. */
  contentType: string | undefined;
  /** The answer's body as text: its first MiB when `bodyTruncated`. */
  body: string | undefined;
  /** The answer's body was longer than 1 MiB: the rest was not read (a 2xx still acknowledges). */
  bodyTruncated: boolean;
  /** Why no answer came. */
  error:
    | {
        /** `unreachable` or `timeout`. */
        code: string;
        /** What happened, in words. */
        message: string;
      }
    | undefined;
  /** A 2xx answer: the receiver took the delivery. */
  acknowledged: boolean;
  /** How long the attempt took, in ms. */
  durationMs: number;
  /** The delay before the next attempt; undefined after the last one. */
  retryInMs: number | undefined;
}

/** What `send` did in all. */
export interface SendSummary {
  /** The delivery id every copy carried; undefined for schemes whose id is in the body. */
  id: string | undefined;
  /** Copies sent (`repeat`). */
  deliveries: number;
  /** Copies answered with a 2xx (in the end, after any retries). */
  acknowledged: number;
  /** Attempts made, retries included. */
  attempts: number;
}

const DEFAULT_HEADERS: ReadonlyArray<readonly [string, string]> = [["content-type", "application/json"]];

const isAcknowledged = (status: number): boolean => status >= 200 && status < 300;

function count(name: string, value: number | undefined): number {
  if (value === undefined) return 1;
  if (!Number.isSafeInteger(value) || value < 1) throw usageError(`${name} must be a whole number of at least 1`);
  return value;
}

const SEND_OPTION_NAMES = optionNames<SendOptions>({
  url: true,
  scheme: true,
  secret: true,
  body: true,
  headers: true,
  id: true,
  timestamp: true,
  stale: true,
  tamper: true,
  repeat: true,
  concurrency: true,
  retry: true,
  timeoutMs: true,
  onAttempt: true,
});
const RETRY_POLICY_OPTION_NAMES = optionNames<RetryPolicy>({
  maxAttempts: true,
  initialDelayMs: true,
  maxDelayMs: true,
});

/**
 * Sends the deliveries and resolves with how many were acknowledged. Rejects with `unreachable`
 * or `timeout` when an attempt got no answer and no retry is left; no new copy starts after that.
 */
export async function send(options: SendOptions): Promise<SendSummary> {
  assertOptionNames("send()", options, SEND_OPTION_NAMES);
  if (options.retry) assertOptionNames("send() retry", options.retry, RETRY_POLICY_OPTION_NAMES);
  const url = parseUrl(options.url, "the URL");
  const { scheme, secret, body, stale = false, tamper = false, timestamp } = options;
  checkDeliveryOptions(options);
  const repeat = count("repeat", options.repeat);
  const concurrency = Math.min(count("concurrency", options.concurrency), repeat);
  const policy = options.retry ? checkRetryPolicy(options.retry) : NO_RETRIES;
  const timeoutMs = timeoutOption(options.timeoutMs);
  const headers = options.headers ?? DEFAULT_HEADERS;
  const id = options.id ?? newDeliveryId(scheme);
  const summary: SendSummary = { id, deliveries: repeat, acknowledged: 0, attempts: 0 };

  async function deliver(delivery: number): Promise<void> {
    let started = 0;
    const attempt = async (): Promise<HttpAnswer> => {
      const signed = await signDelivery({
        scheme,
        secret,
        body,
        stale,
        ...(id === undefined ? {} : { id }),
        ...(timestamp === undefined ? {} : { timestamp }),
      });
      started = performance.now();
      return post(
        url,
        requestHeaders(headers, signed.headers),
        tamper ? tamperedBody(signed.body) : signed.body,
        timeoutMs,
      );
    };
    const report = (outcome: AttemptOutcome<HttpAnswer>, number: number, retryInMs: number | undefined) => {
      summary.attempts++;
      options.onAttempt?.(
        attemptReport(outcome, { delivery, attempt: number, maxAttempts: policy.maxAttempts, id }, started, retryInMs),
      );
    };
    const outcome = await withRetries(policy, attempt, (answer) => isAcknowledged(answer.status), report);
    if (outcome.error) throw outcome.error;
    if (isAcknowledged(outcome.result.status)) summary.acknowledged++;
  }

  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (failure === undefined && next < repeat) {
      next++;
      await deliver(next).catch((error: unknown) => {
        failure ??= { error };
      });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  if (failure) throw failure.error;
  return summary;
}

function attemptReport(
  outcome: AttemptOutcome<HttpAnswer>,
  which: Pick<AttemptReport, "delivery" | "attempt" | "maxAttempts" | "id">,
  started: number,
  retryInMs: number | undefined,
): AttemptReport {
  const answer = outcome.result;
  return {
    ...which,
    status: answer?.status,
    statusText: answer?.statusText,
    contentType: answer?.contentType,
    body: answer && new TextDecoder().decode(answer.body),
    bodyTruncated: answer?.truncated ?? false,
    error: outcome.error && { code: outcome.error.code, message: outcome.error.message },
    acknowledged: answer !== undefined && isAcknowledged(answer.status),
    durationMs: Math.round(performance.now() - started),
    retryInMs,
  };
}

// ---------------------------------------------------------------------------------------
// The command.

const ONE_LINE_BODY = 200;

/** An answer's body on one line, shortened: the whole body is in `--json` output. */
function bodyPreview(text: string | undefined): string {
  // Each run of white space is matched once, whole, and becomes one space if it breaks a line.
  // (A pattern such as /\s*[\r\n]+\s*/ backtracks over a long run without a line break from
  // every position in it: quadratic in the run, minutes for the megabyte a receiver may send.)
  const flat = (text ?? "").replace(/\s+/g, (run) => (/[\r\n]/.test(run) ? " " : run)).trim();
  return flat.length > ONE_LINE_BODY ? `${visible(flat.slice(0, ONE_LINE_BODY))}…` : visible(flat);
}

function attemptLine(report: AttemptReport): string {
  const what =
    report.status === undefined
      ? `no answer: ${report.error?.message}`
      : `${report.status} ${visible(report.statusText ?? "")}  ${report.durationMs} ms  ${bodyPreview(report.body)}`;
  const retry =
    report.maxAttempts === 1
      ? ""
      : `  (attempt ${report.attempt} of ${report.maxAttempts}${report.retryInMs === undefined ? "" : `; retrying in ${report.retryInMs} ms`})`;
  return `#${report.delivery}  ${what.trimEnd()}${retry}`;
}

function retryPolicy(args: Args): RetryPolicy | undefined {
  const tuned = ["max-attempts", "retry-delay"].find((name) => args.string(name) !== undefined);
  if (!args.flag("retry")) {
    if (tuned) throw usageError(`--${tuned} needs --retry`);
    return undefined;
  }
  return {
    maxAttempts: args.integer("max-attempts", DEFAULT_RETRY_POLICY.maxAttempts, { min: 1, max: 100 }),
    initialDelayMs: args.integer("retry-delay", DEFAULT_RETRY_POLICY.initialDelayMs, { min: 0, max: 3_600_000 }),
    maxDelayMs: DEFAULT_RETRY_POLICY.maxDelayMs,
  };
}

export const sendCommand: Command = {
  name: "send",
  summary: "sign a delivery and POST it: repeated, tampered, stale, concurrent, retried",
  usage: "<url> --scheme NAME --secret SECRET --body BODY [options]",
  description: [
    "Signs the body as the scheme's provider does and POSTs it to <url>, printing each answer.",
    "--repeat sends the same delivery again (a redelivery: same id and body, re-signed), which a",
    "receiver must answer as a duplicate; --tamper changes the body after signing and --stale",
    "backdates the timestamp by an hour, both of which it must refuse. With --retry, an attempt",
    "answered with anything but a 2xx (or not at all) is retried with exponential backoff, as a",
    "provider does. Exits 0 when every delivery got a 2xx, 1 when one did not. Of each answer's",
    "body, the first MiB is kept; the rest is not read. A user name and password in <url> are",
    "sent as Basic auth, and shown as user:*** wherever the URL is printed, as are the query's",
    "values (?token=***).",
  ].join("\n"),
  positionals: ["url"],
  options: {
    ...DELIVERY_OPTIONS,
    tamper: { type: "boolean", description: "change the body after signing (one trailing space)" },
    repeat: { type: "string", value: "N", description: "send the same delivery N times (default 1)" },
    concurrency: { type: "string", value: "N", description: "copies in flight at once (default 1)" },
    retry: { type: "boolean", description: "retry a non-2xx answer or a network failure, with exponential backoff" },
    "max-attempts": { type: "string", value: "N", description: "attempts per delivery with --retry (default 5)" },
    "retry-delay": {
      type: "string",
      value: "MS",
      description: "the first retry's delay with --retry, doubled each time, at most 60 s (default 1000)",
    },
    timeout: { type: "string", value: "MS", description: "how long to wait for each answer (default 10000)" },
    progress: {
      type: "boolean",
      description: "print a progress line on stderr (the default on a terminal with --repeat)",
    },
  },
  examples: [
    "interlock send http://localhost:3000/webhooks/stripe --scheme stripe --secret-env STRIPE_WEBHOOK_SECRET --body @event.json",
    "interlock send $URL --scheme stripe --secret-env STRIPE_WEBHOOK_SECRET --body @event.json --repeat 2",
    "interlock send $URL --scheme svix --secret whsec_… --body @event.json --tamper",
    "interlock send $URL --scheme github --secret s3cret --body @push.json -H 'x-github-event: push' --retry",
    "interlock send $URL --scheme shopify --secret s3cret --body @order.json --repeat 500 --concurrency 20 --json",
  ],
  async run(args: Args, io: CliIo): Promise<number> {
    const url = parseUrl(args.positionals[0] as string, "<url>");
    const repeat = args.integer("repeat", 1, { min: 1, max: 1_000_000 });
    const concurrency = args.integer("concurrency", 1, { min: 1, max: 1000 });
    const timeoutMs = args.integer("timeout", DEFAULT_TIMEOUT_MS, { min: 1, max: MAX_TIMEOUT_MS });
    const retry = retryPolicy(args);
    const input = await readDeliveryInput(args, io);
    const printer = new Printer(io.stdout, args.flag("json"));
    const showProgress = args.flag("progress") || (io.stderr.isTTY === true && repeat > 1);
    const progress = createProgress(showProgress ? io.stderr : undefined, repeat);
    const counts = { sent: 0, acknowledged: 0 };
    const summary = await send({
      url,
      scheme: input.scheme,
      secret: input.secrets,
      body: input.body.bytes,
      headers: input.headers,
      stale: input.stale,
      tamper: args.flag("tamper"),
      repeat,
      concurrency,
      timeoutMs,
      ...(retry ? { retry } : {}),
      ...(input.id === undefined ? {} : { id: input.id }),
      ...(input.timestamp === undefined ? {} : { timestamp: input.timestamp }),
      onAttempt(report) {
        progress.around(() => printer.print({ type: "attempt", ...report }, () => attemptLine(report)));
        if (report.retryInMs !== undefined) return;
        counts.sent++;
        if (report.acknowledged) counts.acknowledged++;
        progress.update(counts);
      },
    }).finally(() => progress.finish(counts));
    const attempts = summary.attempts === repeat ? "" : ` in ${summary.attempts} attempts`;
    if (printer.json || repeat > 1 || retry) {
      printer.print(
        { type: "summary", ...summary },
        () => `${summary.acknowledged} of ${repeat} acknowledged (2xx)${attempts}`,
      );
    }
    return summary.acknowledged === repeat ? EXIT.ok : EXIT.notAcknowledged;
  },
};
