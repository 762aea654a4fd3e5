/**
 * `interlock listen`: a local receiver for testing, what `stripe listen` or a tunnel and a
 * throwaway server are used for. Every POST goes through core's webhook receiver (verification,
 * then de-duplication in a memory store) and is reported with its verdict. A verified first
 * copy is answered 200, or forwarded (raw bytes, original headers) to the app, whose answer
 * goes back to the sender and decides whether the delivery counts as processed: a non-2xx
 * releases it, so the provider's retry is forwarded again.
 */

import { once, setMaxListeners } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import {
  answerZoomUrlValidation,
  assertOptionNames,
  BodyCollector,
  createWebhookReceiver,
  DEFAULT_IDEMPOTENCY_RENEWAL_MAX_MS,
  DEFAULT_WEBHOOK_LOCK_TTL_MS,
  DEFAULT_WEBHOOK_RETENTION_MS,
  type HttpResponse,
  type InterlockStore,
  jsonResponse,
  MAX_TOLERANCE_SECONDS,
  memoryStore,
  optionNames,
  problemResponse,
  slack,
  timerDelay,
  type VerifiedWebhook,
  type WebhookErrorCode,
  type WebhookReceiver,
  type WebhookReceiverOptions,
  type WebhookRespondDecision,
  type WebhookScheme,
  type WebhookSecret,
  type WebhookTicket,
  zoom,
} from "@interlock/core";
import type { Args } from "../args.js";
import type { Command } from "../command.js";
import { SCHEME_OPTION, SECRET_OPTIONS, secretSources } from "../delivery-options.js";
import { CliError, EXIT, firstLine, valueStart } from "../errors.js";
import {
  DEFAULT_TIMEOUT_MS,
  endToEndHeaders,
  type HttpAnswer,
  MAX_ANSWER_BYTES,
  MAX_TIMEOUT_MS,
  parseUrl,
  post,
  shownUrl,
  timeoutOption,
} from "../http.js";
import { readSecrets } from "../inputs.js";
import { type CliIo, Printer, reportError } from "../io.js";
import { resolveScheme } from "../schemes.js";
import { visible } from "../terminal.js";

/** What `listen` verifies with, where it listens, and where it forwards. */
export interface ListenOptions {
  /** The provider's scheme. */
  scheme: WebhookScheme;
  /** One secret, or several while rotating: a delivery signed with any of them is accepted. */
  secret: WebhookSecret | readonly WebhookSecret[];
  /** Default 3000; 0 takes a free port (see `Listener.url`). */
  port?: number;
  /** Default 127.0.0.1: only this machine (and a tunnel running on it) can reach the listener. */
  host?: string;
  /** Where verified first copies are forwarded; without it they are answered 200 here. */
  forward?: string | URL;
  /** Largest accepted timestamp age, either way, in seconds (at most a year). Default: core's (300). */
  toleranceSeconds?: number;
  /**
   * How long the sender waits for the forward's answer, in ms. Default 10 000. Past it the
   * sender gets a 502, and the app's answer, when it comes, settles the delivery (reported again,
   * with `forward.late`); meanwhile copies of it are `in_flight`.
   */
  timeoutMs?: number;
  /** Where processed delivery ids are remembered. Default: a memory store. */
  store?: InterlockStore;
  /** Told about every delivery, just before its answer is sent (an error it throws goes to `onError`). */
  onDelivery?: (report: DeliveryReport) => void;
  /** Told about a failure while answering a request (a bug: the sender got a 500). */
  onError?: (error: unknown) => void;
}

/** A running listener. */
export interface Listener {
  /** The URL it listens on, such as `http://127.0.0.1:3000`. */
  readonly url: string;
  /** Stops listening, closes every connection, and resolves once the server is closed. */
  close(): Promise<void>;
}

/**
 * What a delivery turned out to be: `valid` (verified, first copy), `duplicate` (processed
 * before), `in_flight` (a copy is being processed now), or rejected: `tampered` (no signature
 * matched: a changed body or another secret), `stale` (timestamp outside the tolerance),
 * `malformed` (headers missing or unreadable), `too_large`, `rejected` (any other reason), or
 * `store_unavailable`; or `incomplete`: the sender left before its body was complete, and
 * nothing was verified, processed or answered.
 */
export type Verdict =
  | "valid"
  | "duplicate"
  | "in_flight"
  | "tampered"
  | "stale"
  | "malformed"
  | "too_large"
  | "rejected"
  | "store_unavailable"
  | "incomplete";

/** One delivery the listener received, as it prints it. */
export interface DeliveryReport {
  /** When it arrived. */
  time: Date;
  /** The request's method. */
  method: string;
  /** The request's path, with each query parameter's value shown as `***`. */
  path: string;
  /** What the delivery turned out to be. */
  verdict: Verdict;
  /** The scheme's name. */
  scheme: string;
  /** The delivery id, once verified (or, for a duplicate, the id it repeats). */
  id: string | undefined;
  /** Core's code for a refusal, such as `no_matching_signature`; `body_incomplete` for an `incomplete` one. */
  reason: string | undefined;
  /** Core's message for a refusal, or what arrived of an `incomplete` body. */
  detail: string | undefined;
  /** The status the sender was answered with; undefined when it left before an answer (`incomplete`). */
  status: number | undefined;
  /** The forward of a valid delivery, with `--forward`. */
  forward: ForwardReport | undefined;
}

/** A valid delivery forwarded to the app. */
export interface ForwardReport {
  /** Where it was forwarded, with any password and the query's values in it shown as `***`. */
  url: string;
  /** The app's status; undefined when it could not be reached. */
  status: number | undefined;
  /**
   * Why the app's answer did not go back to the sender, which got a 502 instead: the app could
   * not be reached or did not answer within `timeoutMs`, or its body was over 1 MiB. Undefined
   * when it did.
   */
  error: string | undefined;
  /**
   * True on a second report of a delivery, made when the app answered (or failed) after the
   * sender had been answered 502 for its timeout: `status` and `error` are then the app's late
   * outcome, which settled the delivery (a 2xx counted it as processed).
   */
  late: boolean;
}

const VERDICTS: Partial<Record<WebhookErrorCode, Verdict>> = {
  no_matching_signature: "tampered",
  timestamp_too_old: "stale",
  timestamp_in_future: "stale",
  missing_header: "malformed",
  malformed_header: "malformed",
  invalid_timestamp: "malformed",
  unsupported_version: "malformed",
  body_too_large: "too_large",
};

function verdictOf(decision: WebhookRespondDecision): Verdict {
  if (decision.outcome !== "rejected") return decision.outcome;
  const code = decision.error?.code as WebhookErrorCode | undefined;
  return (code && VERDICTS[code]) ?? "rejected";
}

/**
 * How long processed ids are remembered: core's default, or, for a tolerance past half of it,
 * longer than the whole window that tolerance accepts (either way of now, and the second past
 * its edge a whole-second timestamp is still taken in), as core requires.
 */
const retentionFor = (toleranceSeconds: number): number =>
  Math.max(DEFAULT_WEBHOOK_RETENTION_MS, Math.ceil(2 * toleranceSeconds * 1000) + 1001);

/**
 * `toleranceSeconds` and the retention it needs. Core judges the tolerance; a value it refuses
 * (NaN, Infinity) may make no retention at all, and is then passed alone, for core's own error.
 */
function toleranceOptions(toleranceSeconds: number | undefined): Partial<WebhookReceiverOptions> {
  if (toleranceSeconds === undefined) return {};
  const retentionMs = retentionFor(toleranceSeconds);
  return Number.isSafeInteger(retentionMs) ? { toleranceSeconds, retentionMs } : { toleranceSeconds };
}

/**
 * The lease on a delivery being forwarded: core's default, or, for a forward allowed longer,
 * that wait and a second more, so a copy that arrives meanwhile is in flight, not forwarded again.
 */
const lockTtlFor = (timeoutMs: number): number => Math.max(DEFAULT_WEBHOOK_LOCK_TTL_MS, timeoutMs + 1000);

const LISTEN_OPTION_NAMES = optionNames<ListenOptions>({
  scheme: true,
  secret: true,
  port: true,
  host: true,
  forward: true,
  toleranceSeconds: true,
  timeoutMs: true,
  store: true,
  onDelivery: true,
  onError: true,
});

/** Starts a listener; resolves once it accepts connections. */
export async function listen(options: ListenOptions): Promise<Listener> {
  assertOptionNames("listen()", options, LISTEN_OPTION_NAMES);
  const forward = options.forward === undefined ? undefined : parseUrl(options.forward, "--forward");
  const timeoutMs = timeoutOption(options.timeoutMs);
  const receiver = createWebhookReceiver({
    scheme: options.scheme,
    secret: options.secret,
    store: options.store ?? memoryStore(),
    lockTtlMs: lockTtlFor(timeoutMs),
    ...toleranceOptions(options.toleranceSeconds),
  });
  // Aborted by close(), so a forward still waiting on the app does not keep the process alive.
  // Each forward in flight listens to it: no limit, or Node warns of a leak past ten at once.
  const stopping = new AbortController();
  setMaxListeners(0, stopping.signal);
  // A callback that throws is the caller's error, told to onError: the answer still goes out.
  const failed = (error: unknown) => options.onError?.(error);
  const report = (delivery: DeliveryReport) => {
    try {
      options.onDelivery?.(delivery);
    } catch (error) {
      failed(error);
    }
  };
  const answerer: Answerer = {
    receiver,
    forward,
    timeoutMs,
    stopping: stopping.signal,
    challenge: challengeFor(options.scheme),
    report: Object.assign(report, { failed }),
  };
  const server = createServer((request, response) => {
    handle(answerer, request).then(
      ({ answer, report }) => {
        // Reported before it is answered: a sender's next delivery is always reported after this one.
        if (report) answerer.report(report);
        // No answer for a sender that left: its connection is gone.
        if (answer) sendAnswer(response, answer);
        else response.destroy();
      },
      (error: unknown) => {
        response.writeHead(500).end();
        options.onError?.(error);
      },
    );
  });
  const host = options.host ?? "127.0.0.1";
  await start(server, options.port ?? 3000, host);
  const { port } = server.address() as { port: number };
  return {
    url: `http://${host.includes(":") ? `[${host}]` : host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        stopping.abort();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** What the listener answers a sender: core's response, or the app's with its reason phrase. */
interface Answer extends HttpResponse {
  /** The app's reason phrase (`201 Created Here`), when the answer is the app's. */
  statusText?: string;
}

/**
 * A status Node's server writes: 100 to 999. Its client reads any three digits, so an app can
 * answer 099, which passed on would throw when the answer is written and end the listener.
 */
const WRITABLE_STATUS = (status: number): boolean => status >= 100 && status <= 999;

/** A reason phrase Node will write: visible ASCII, spaces and tabs (RFC 9112 §4, without obs-text). */
const WRITABLE_REASON = /^[\t\x20-\x7e]+$/;

/**
 * Writes `answer` with its reason phrase and headers (each value of a repeated one), framed by
 * Node from the whole body: a `Content-Length`, or none for a 204 or 304, never the framing of
 * an app it came from.
 */
function sendAnswer(response: ServerResponse, answer: Answer): void {
  response.statusCode = answer.status;
  if (answer.statusText !== undefined && WRITABLE_REASON.test(answer.statusText))
    response.statusMessage = answer.statusText;
  for (const [name, value] of answer.headers) response.appendHeader(name, value);
  response.end(answer.body);
}

/** Why a port cannot be listened on, in words. */
const LISTEN_REASONS: Record<string, string> = {
  EADDRINUSE: "it is in use (pick another with --port)",
  EACCES: "permission denied (ports below 1024 need privileges)",
  EADDRNOTAVAIL: "the address is not one of this machine's (check --host)",
  ENOTFOUND: "no such host (check --host)",
  EAI_AGAIN: "the host name could not be looked up (check --host)",
};

/** Failures of a host that is an address (it resolved): it is shown whole. */
const HOST_RESOLVED = new Set(["EADDRINUSE", "EACCES", "EADDRNOTAVAIL"]);

async function start(server: Server, port: number, host: string): Promise<void> {
  server.listen(port, host);
  try {
    await once(server, "listening");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // A host that is no address (a secret given to --host?) is shown by its start, also in
    // Node's own message (`getaddrinfo ENOTFOUND <host>`).
    const shown = code && HOST_RESOLVED.has(code) ? host : valueStart(host);
    const reason = (code && LISTEN_REASONS[code]) ?? firstLine((error as Error).message).replaceAll(host, shown);
    throw new CliError("listen_failed", `cannot listen on ${shown}:${port}: ${reason}`, { cause: error });
  }
}

interface Answerer {
  receiver: WebhookReceiver;
  forward: URL | undefined;
  timeoutMs: number;
  /** Aborts the forwards in flight when the listener closes. */
  stopping: AbortSignal;
  /** The provider's URL validation challenge, answered here when not forwarding. */
  challenge: Challenge | undefined;
  /** Tells `onDelivery` of a delivery settled after its answer (a forward's late answer). */
  report: ((report: DeliveryReport) => void) & { failed: (error: unknown) => void };
}

const NOT_POST: HttpResponse = { status: 405, headers: [["allow", "POST"]], body: new Uint8Array() };

/**
 * The answer to one request, and its report (none for a request that is not a delivery). No
 * answer for a sender that left before its body was complete: there is no one to answer.
 */
async function handle(
  answerer: Answerer,
  request: IncomingMessage,
): Promise<{ answer: Answer | undefined; report: DeliveryReport | undefined }> {
  if (request.method !== "POST") {
    request.resume();
    return { answer: NOT_POST, report: undefined };
  }
  const time = new Date();
  const { receiver } = answerer;
  // A webhook URL may carry a token in its query: names shown, values masked, as for the forward URL.
  const path = shownUrl(request.url ?? "/");
  const base = { time, method: "POST", path, scheme: receiver.verifier.scheme.name };
  // A delivery its headers refuse is answered before its body is read, as the adapters answer it
  // (the body is drained, not kept).
  const refused = receiver.checkHeaders(request.headers);
  if (refused) {
    request.resume();
    return responded(base, refused);
  }
  const read = await readRequestBody(request, receiver.verifier.maxBodyBytes);
  if (read.left) return { answer: undefined, report: { ...base, ...incompleteReport(read.received, request) } };
  const decision =
    read.body === undefined
      ? receiver.refuse("body_too_large", `the body exceeds ${receiver.verifier.maxBodyBytes} bytes`)
      : await receiver.begin(request.headers, read.body);
  if (decision.action === "respond") return responded(base, decision);
  const { event, ticket } = decision;
  const valid = await answerValid(answerer, event, request).catch(async (error: unknown) => {
    await receiver.abort(ticket);
    throw error;
  });
  const { answer, forward } = valid;
  const report: DeliveryReport = {
    ...base,
    verdict: "valid",
    id: event.id,
    reason: undefined,
    detail: undefined,
    status: answer.status,
    forward,
  };
  if (valid.late) settleLate(answerer, ticket, valid.late, report);
  else await receiver.finish(ticket, { status: valid.decidingStatus });
  return { answer, report };
}

/**
 * Settles a delivery whose forward outlasted `timeoutMs` once the app answers. The sender was
 * answered 502 and will retry; meanwhile the delivery stays claimed (its retries are
 * `in_flight`), and the app's answer decides, as it would have in time: a 2xx counts it as
 * processed (the retries are `duplicate`), anything else, or no answer at all, releases it.
 * Releasing it at the timeout instead had the retry forwarded while the app still worked on the
 * first copy: one delivery, processed twice.
 */
function settleLate(
  { receiver, report }: Pick<Answerer, "receiver" | "report">,
  ticket: WebhookTicket,
  late: Promise<HttpAnswer>,
  sent: DeliveryReport,
): void {
  const forward = sent.forward as ForwardReport;
  late
    .then(
      async (reply) => {
        await receiver.finish(ticket, { status: reply.status });
        return { ...forward, status: reply.status, error: undefined };
      },
      async (error: unknown) => {
        await receiver.abort(ticket);
        return { ...forward, error: (error as Error).message };
      },
    )
    .then((settled) => report({ ...sent, time: new Date(), forward: { ...settled, late: true } }), report.failed);
}

/** Core's answer to a delivery the handler does not see, and its report. */
function responded(
  base: Pick<DeliveryReport, "time" | "method" | "path" | "scheme">,
  decision: WebhookRespondDecision,
): { answer: Answer; report: DeliveryReport } {
  const { event, error, response } = decision;
  const report: DeliveryReport = {
    ...base,
    verdict: verdictOf(decision),
    id: event?.id,
    reason: error?.code,
    detail: error?.message,
    status: response.status,
    forward: undefined,
  };
  return { answer: response, report };
}

/** The answer to a verified first copy: the app's (forwarded), the provider's challenge answer, or 200. */
async function answerValid(
  answerer: Answerer,
  event: VerifiedWebhook,
  { rawHeaders }: Pick<IncomingMessage, "rawHeaders">,
): Promise<ValidAnswer> {
  const { forward } = answerer;
  if (forward) return forwardTo(forward, event.body, rawHeaders, answerer);
  const challenge = answerer.challenge && (await answerChallenge(answerer.challenge, event));
  const answer = challenge ?? jsonResponse(200, { received: event.id ?? null });
  return { answer, forward: undefined, decidingStatus: answer.status, late: undefined };
}

/** What a verified first copy is answered, and what decides whether it counts as processed. */
interface ValidAnswer {
  /** The sender's answer. */
  answer: Answer;
  forward: ForwardReport | undefined;
  /**
   * The status that settles the delivery (2xx: processed; else released): the app's whenever it
   * answered, also when its answer could not be passed on (over 1 MiB, a status such as 099).
   */
  decidingStatus: number;
  /** The app's answer still to come, when it outlasted `timeoutMs`: it settles the delivery. */
  late: Promise<HttpAnswer> | undefined;
}

/**
 * A provider's URL validation, sent signed when the endpoint is saved: the JSON answer to a
 * verified delivery that is the challenge, or undefined for any other.
 */
type Challenge = (event: VerifiedWebhook) => Promise<object | undefined> | object | undefined;

/**
 * The challenges `listen` answers by itself, like the app it stands in for. Zoom's answer is an
 * HMAC of its `plainToken` under the secret token that signed the challenge (core builds it from
 * the verified delivery, so it holds while rotating, either way). Slack's `url_verification`
 * is answered `{"challenge": …}` as JSON rather than the bare value as text/plain, which Slack
 * also accepts: it is what the Slack guide's apps answer, and every answer of `listen` is JSON.
 */
function challengeFor(scheme: WebhookScheme): Challenge | undefined {
  if (scheme === slack) return (event) => slackUrlVerification(event.payload);
  return scheme === zoom ? (event) => answerZoomUrlValidation(event) : undefined;
}

function slackUrlVerification(payload: unknown): { challenge: string } | undefined {
  const { type, challenge } = (payload ?? {}) as { type?: unknown; challenge?: unknown };
  return type === "url_verification" && typeof challenge === "string" ? { challenge } : undefined;
}

async function answerChallenge(challenge: Challenge, event: VerifiedWebhook): Promise<HttpResponse | undefined> {
  try {
    void event.payload; // decoded once, and kept for the challenge to read
  } catch {
    return undefined; // not what the scheme decodes: not the challenge
  }
  const answer = await challenge(event);
  return answer && jsonResponse(200, answer);
}

/**
 * Sends the exact bytes and end-to-end headers on; the app's answer is the sender's, as a
 * reverse proxy passes it back: its status, its body and its end-to-end headers (each
 * `Set-Cookie`, `Location`, `Retry-After`, …), re-framed with a `Content-Length` of its own.
 */
async function forwardTo(
  url: URL,
  body: Uint8Array,
  rawHeaders: readonly string[],
  { timeoutMs, stopping }: Pick<Answerer, "timeoutMs" | "stopping">,
): Promise<ValidAnswer> {
  // The app is waited on for as long as the receiver holds the delivery, not just `timeoutMs`:
  // past that the sender is answered, but the app may still be processing the delivery.
  const sent = post(url, forwardedHeaders(url, rawHeaders), body, lateWaitFor(timeoutMs), stopping);
  let reply: HttpAnswer | undefined;
  try {
    reply = await within(sent, timeoutMs);
  } catch (error) {
    if (!(error instanceof CliError)) throw error;
    // The sender (anyone who can reach the listener, through a tunnel too) is not told where
    // the app is; the listener's own line says.
    const toSender = FORWARD_FAILURES[error.code] ?? error.message;
    return forwardFailed(url, undefined, error.message, error, toSender);
  }
  if (reply === undefined) {
    const why = `no answer from ${shownUrl(url)} within ${timeoutMs} ms (still waiting: its answer settles the delivery)`;
    return { ...forwardFailed(url, undefined, why, undefined, FORWARD_FAILURES.timeout), late: sent };
  }
  if (!WRITABLE_STATUS(reply.status)) {
    const why = `the app answered ${String(reply.status).padStart(3, "0")}, which is not an HTTP status (100 to 999)`;
    return forwardFailed(url, reply.status, why);
  }
  if (reply.truncated) {
    const why = `the app answered ${reply.status} with a body over ${MAX_ANSWER_BYTES / 1024 / 1024} MiB, which is not passed on`;
    return forwardFailed(url, reply.status, why);
  }
  return {
    answer: { status: reply.status, statusText: reply.statusText, headers: reply.headers, body: reply.body },
    forward: { url: shownUrl(url), status: reply.status, error: undefined, late: false },
    decidingStatus: reply.status,
    late: undefined,
  };
}

/**
 * How long a forward is waited on in all: as long as the receiver renews its claim on the
 * delivery (core's renewal limit), or `timeoutMs` if longer. Past it, an answer could no longer
 * settle the delivery: its claim has lapsed, and a retry may already have been forwarded.
 */
const lateWaitFor = (timeoutMs: number): number => Math.max(timeoutMs, DEFAULT_IDEMPOTENCY_RENEWAL_MAX_MS);

/** `promise`'s value, or undefined if it has not settled within `ms`; its rejection within `ms` is thrown. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const elapsed = new Promise<undefined>((resolve) => {
    timer = setTimeout(resolve, timerDelay(ms), undefined);
  });
  try {
    return await Promise.race([promise, elapsed]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The sender's end-to-end headers, without its `Authorization` when the forward URL carries
 * credentials: they are the operator's choice for the local app, so they win (Node's http sends
 * a URL's credentials as Basic auth only when no `Authorization` header is given).
 */
function forwardedHeaders(url: URL, rawHeaders: readonly string[]): Array<[string, string]> {
  const headers = endToEndHeaders(rawHeaders);
  if (url.username === "" && url.password === "") return headers;
  return headers.filter(([name]) => name.toLowerCase() !== "authorization");
}

/** What the sender is told of a forward that got no answer: the why, without the app's URL. */
const FORWARD_FAILURES: Partial<Record<CliError["code"], string>> = {
  timeout: "the app did not answer in time",
  unreachable: "the app cannot be reached",
};

/**
 * The app's answer cannot go back to the sender (there was none, or it was too large to pass
 * on): the sender gets a 502 problem+json and will retry. The app's status settles the delivery:
 * one that answered 2xx processed it (the retry is a duplicate); with none, or another, the
 * delivery is released and the retry forwarded again.
 */
function forwardFailed(
  url: URL,
  status: number | undefined,
  why: string,
  cause?: unknown,
  toSender = why,
): ValidAnswer {
  const failed = new CliError("forward_failed", `could not forward the delivery: ${toSender}`, { cause });
  const answer = problemResponse(failed);
  return {
    answer,
    forward: { url: shownUrl(url), status, error: why, late: false },
    decidingStatus: status ?? answer.status,
    late: undefined,
  };
}

/** A request body as read: whole (undefined past the limit), or cut short by a sender that left. */
type ReadBody = { left: false; body: Uint8Array | undefined } | { left: true; received: number };

/**
 * The raw request body, or undefined past `limit` bytes (read to the end so the answer can be
 * sent). A connection that closes first ends the read as Node's "aborted" error, which is the
 * sender's doing, not a failure of the listener: it is told apart with how much had arrived.
 */
async function readRequestBody(request: IncomingMessage, limit: number): Promise<ReadBody> {
  const collector = new BodyCollector(limit);
  try {
    for await (const chunk of request) collector.add(chunk as Uint8Array);
  } catch (error) {
    if (request.complete) throw error;
    return { left: true, received: collector.size };
  }
  return { left: false, body: collector.body() ?? undefined };
}

/** The report of a sender that left mid-body: what arrived of what it announced, nothing processed. */
function incompleteReport(
  received: number,
  request: IncomingMessage,
): Pick<DeliveryReport, "verdict" | "id" | "reason" | "detail" | "status" | "forward"> {
  const announced = request.headers["content-length"];
  const of = announced === undefined ? "" : ` of ${announced}`;
  return {
    verdict: "incomplete",
    id: undefined,
    reason: "body_incomplete",
    detail: `the sender left after ${received}${of} bytes of the body: nothing processed`,
    status: undefined,
    forward: undefined,
  };
}

// ---------------------------------------------------------------------------------------
// The command.

function deliveryLine(report: DeliveryReport): string {
  const clock = report.time.toTimeString().slice(0, 8);
  const reason = report.reason === undefined ? "" : `  ${report.reason}: ${report.detail}`;
  const forward =
    report.forward === undefined
      ? ""
      : report.forward.error !== undefined
        ? `  forward failed${report.forward.late ? " late" : ""}: ${report.forward.error}`
        : `  forwarded${report.forward.late ? ", answered late" : ""}: ${report.forward.status}`;
  // The id, and a reason's detail, may be the sender's own text (an id the signature does not
  // cover, a header it could not parse): shown, never acted on by the terminal.
  return visible(`${clock}  ${report.verdict.padEnd(10)} ${report.scheme}  ${report.id ?? "-"}${reason}${forward}`);
}

export const listenCommand: Command = {
  name: "listen",
  summary: "receive deliveries locally: verify, de-duplicate, print, forward",
  usage: "--scheme NAME --secret SECRET [options]",
  description: [
    "Runs a local receiver on http://HOST:PORT (any path) that verifies every POST with",
    "@interlock/core, remembers processed ids in memory, and prints each delivery: its verdict",
    "(valid, duplicate, in_flight, tampered, stale, malformed, too_large, rejected; incomplete",
    "when the sender left mid-body), scheme, id and reason. With --forward URL, valid first",
    "copies go on to your app with their raw body and original headers, and the app's answer",
    "goes back to the sender (a 502 if its body is over 1 MiB). Point a tunnel (ngrok,",
    "cloudflared) at it to test with the real provider. Stop it with Ctrl+C.",
  ].join("\n"),
  positionals: [],
  options: {
    port: { type: "string", value: "PORT", description: "the port (default 3000; 0 picks a free one)" },
    host: { type: "string", value: "HOST", description: "the address to listen on (default 127.0.0.1)" },
    scheme: SCHEME_OPTION,
    ...SECRET_OPTIONS,
    forward: {
      type: "string",
      value: "URL",
      description:
        "forward verified first copies to URL (a user:password in it is sent as Basic auth instead of the sender's Authorization, shown as user:***; its query's values are shown as ***)",
    },
    tolerance: { type: "string", value: "SECONDS", description: "accepted timestamp age either way (default 300)" },
    timeout: {
      type: "string",
      value: "MS",
      description:
        "how long the sender waits for the forward's answer (default 10000); a later answer still settles the delivery",
    },
  },
  examples: [
    "interlock listen --port 3000 --scheme stripe --secret-env STRIPE_WEBHOOK_SECRET",
    "interlock listen --scheme github --secret s3cret --forward http://localhost:4000/webhooks/github",
    "interlock listen --port 0 --scheme svix --secret whsec_… --json",
  ],
  async run(args: Args, io: CliIo): Promise<number> {
    const port = args.integer("port", 3000, { min: 0, max: 65_535 });
    const toleranceSeconds = args.optionalInteger("tolerance", { min: 1, max: MAX_TOLERANCE_SECONDS });
    const timeoutMs = args.integer("timeout", DEFAULT_TIMEOUT_MS, { min: 1, max: MAX_TIMEOUT_MS });
    const forwardText = args.string("forward");
    const forward = forwardText === undefined ? undefined : parseUrl(forwardText, "--forward");
    const scheme = resolveScheme(args.string("scheme"));
    const secret = readSecrets(secretSources(args), io.env, scheme.name);
    const json = args.flag("json");
    const printer = new Printer(io.stdout, json);
    const listener = await listen({
      scheme,
      secret,
      port,
      host: args.string("host") ?? "127.0.0.1",
      timeoutMs,
      ...(forward === undefined ? {} : { forward }),
      ...(toleranceSeconds === undefined ? {} : { toleranceSeconds }),
      onDelivery: (report) => printer.print({ type: "delivery", ...report }, () => deliveryLine(report)),
      onError: (error) =>
        reportError(io, { command: "listen", error, json, during: "could not answer a request", carriesOn: true }),
    });
    const shownForward = forward && shownUrl(forward);
    printer.print({ type: "listening", url: listener.url, scheme: scheme.name, forward: shownForward }, () =>
      [
        `listening on ${listener.url} for ${scheme.name} deliveries`,
        shownForward ? `, forwarding verified ones to ${shownForward}` : "",
        " (Ctrl+C to stop)",
      ].join(""),
    );
    await stopped(io.signal);
    await listener.close();
    return EXIT.ok;
  },
};

/** Resolves when `signal` aborts; never without one (the process ends the listener). */
function stopped(signal: AbortSignal | undefined): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => signal?.addEventListener("abort", () => resolve(), { once: true }));
}
