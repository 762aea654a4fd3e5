/**
 * The idempotency engine: framework-neutral, so every adapter gets the same behaviour.
 *
 * `begin(request)` decides, in this order: not covered → pass; key missing (when required)
 * or malformed → 400; completed or in flight with another fingerprint → 422; in flight → 409
 * (or wait and replay); completed → replay; first → execute. After `execute` the adapter
 * reports the captured response with `finish`, or the handler's failure with `abort`.
 */

import { correlated, correlationIdOf, correlationIdOfHeaders } from "../correlation.js";
import { BodyError, IdempotencyError, InterlockConfigError, type InterlockError } from "../errors.js";
import {
  ANONYMOUS_SCOPE_WARNING,
  type EventHook,
  emit,
  type IdempotencyEvent,
  type IdempotencyEventBase,
  type IdempotencyRejectedEvent,
  monotonicNow,
  NO_PRINCIPAL_WARNING,
  processWarning,
} from "../events.js";
import { sha256Hex } from "../hash.js";
import { type HeadersInput, headerReader } from "../headers.js";
import { type HttpResponse, problemResponse } from "../http.js";
import { assertOptionNames, optionNames } from "../option-names.js";
import type { InterlockStore } from "../store/contract.js";
import { type HeldLease, LeaseKeeper, type LeaseRenewal, renewalsOf } from "../store/lease.js";
import {
  asUnavailable,
  choiceOption,
  failureMessage,
  fitsRecord,
  HTTP_TOKEN,
  positiveMs,
  releaseClaim,
  storeOption,
  unstorable,
} from "../store/validate.js";
import { pathAndQuery, withoutFragment } from "../web-body.js";
import { type RawBody, requestBytes } from "../webhooks/body.js";
import { checkWait, claimKey, type WaitOptions } from "./claim.js";
import { parseIdempotencyKey } from "./key.js";
import {
  type CapturedResponse,
  DEFAULT_REPLAY_HEADERS,
  replayAllowList,
  replayResponse,
  responseToStore,
} from "./response.js";

/** A request as the engine sees it, translated by an adapter. */
export interface IdempotencyRequest {
  /** The HTTP method; only `methods` are covered. */
  method: string;
  /**
   * The key's scope, with the principal and method: the route pattern that matched
   * (`/payments/:id`), or the request's path where the adapter runs before routing.
   */
  route: string;
  /**
   * The route pattern events name (OpenTelemetry's `http.route`), read as each is emitted:
   * undefined while it is not known, and events then name no route, since a path would give
   * metrics one series per URL. An adapter that runs before routing learns it once routing has
   * matched a route. Default: `route`.
   */
  routePattern?: (() => string | undefined) | undefined;
  /** The path with its query string: part of the default fingerprint. */
  path: string;
  /** The request headers, where the key is read. */
  headers: HeadersInput;
  /**
   * The raw body bytes (or exact text); undefined for none. A function is called only when
   * the default fingerprint needs the body, so requests the engine passes through are never read;
   * it returns (or throws) a `BodyError` when the body cannot be had (413, 400, 500 `body_not_raw`).
   */
  body: RawBody | undefined | (() => RawBody | BodyError | undefined | Promise<RawBody | BodyError | undefined>);
  /** The framework's own request object, for `principal` and `fingerprint` functions. */
  context?: unknown;
}

export { DEFAULT_IDEMPOTENCY_RENEWAL_MAX_MS, type LeaseRenewal } from "../store/lease.js";

/**
 * Which of the handler's responses are stored and replayed; the others release the key. A 304
 * Not Modified is never stored: it answers the request's conditional headers (`If-None-Match`,
 * `If-Modified-Since`), which the fingerprint does not cover, and replayed to a retry without
 * them it would point at a copy that client does not have. Nor is a status outside 200 to 599 (a
 * web `Response.error()`'s 0): no answer can be replayed with it.
 */
export type CachePolicy =
  /**
   * Store everything below 500 but 304, 408, 425 and 429 (the last three ask the client to send
   * the same request again); release on those and on 5xx, so a retry runs again (default).
   */
  | "non-5xx"
  /**
   * Store every status the handler answers but a 304 to a safe method, 5xx included (close to
   * Stripe's strict behaviour; a handler that throws still releases its key).
   */
  | "all"
  /** Store only 2xx; release on everything else. */
  | "2xx";

/**
 * The engine's options. `R` is the request type an adapter hands `begin` (the neutral request
 * with its framework's own request as `context`), so `principal`, `fingerprint` and `required`
 * are typed for that framework.
 */
export interface IdempotencyOptions<R extends IdempotencyRequest = IdempotencyRequest> {
  /** Where keys are claimed and responses kept. */
  store: InterlockStore;
  /**
   * Who is calling: an API key id, user or tenant. Keys are scoped by it, so one client can
   * never replay another's response. `false` declares a deliberately shared key space. A
   * function that names nobody (`undefined`, `null`, `""`) puts the request in the shared
   * anonymous scope, reported the first time as a process warning (`INTERLOCK_ANONYMOUS_SCOPE`).
   */
  principal?: ((request: R) => Principal | Promise<Principal>) | false;
  /** Methods covered. Default POST and PATCH. */
  methods?: readonly string[];
  /** Refuse covered requests without a key (400). Default false: they pass through. */
  required?: boolean | ((request: R) => boolean);
  /** Default "Idempotency-Key". */
  headerName?: string;
  /**
   * Replaces the default fingerprint (hash of method, path and raw body). It must return a string
   * without NUL or lone surrogates, as every store keeps it (hash what it reads, above all what a
   * client sends): anything else makes `begin` throw `InterlockConfigError`.
   */
  fingerprint?: (request: R) => string | Promise<string>;
  /** Lease on a running request, in ms. Default 60 s. */
  lockTtlMs?: number;
  /**
   * Renew the lease while a long handler runs, every third of `lockTtlMs`. Default true.
   * Renewal stops once the request has held its key for `maxMs` (with `true`, 10 minutes), so a
   * response that never ends (a stream the app keeps open, a handler waiting on a call that never
   * returns) cannot lock its key for good: the key is free at most `lockTtlMs` later, and a retry
   * may then run beside the first. With `false`, a handler that outlives `lockTtlMs` loses its
   * lease: a retry may run beside it, and its response is not stored.
   */
  extendLease?: boolean | LeaseRenewal;
  /** Retention of stored responses, in ms. Default 24 h. */
  retentionMs?: number;
  /** Wait for an in-flight request with the same key to finish and replay it, instead of 409. */
  waitForInFlight?: WaitOptions;
  /** Status for a key reused with another request: a 4xx. Default 422 (the draft's; Stripe answers 400). */
  mismatchStatus?: number;
  /**
   * Which responses are stored. Default `"non-5xx"`: a 5xx, 408, 425 or 429 releases the key so a
   * retry runs again.
   */
  cache?: CachePolicy;
  /**
   * Response headers stored and replayed (lower case). Default `DEFAULT_REPLAY_HEADERS`. Never
   * stored, even when listed: `Content-Length` and the connection's own headers (`Connection`,
   * `Keep-Alive`, `Transfer-Encoding`, …), which the framework writes for each response, and
   * `Set-Cookie`, which would hand the first request's cookies to whoever sends the key again.
   */
  replayHeaders?: readonly string[];
  /** Header marking a replay. Default "Idempotent-Replayed". */
  replayedHeader?: string;
  /** Let requests through (unprotected) while the store is unreachable, instead of 503. Default false. */
  failOpen?: boolean;
  /** Told about every decision: first, replayed, in flight, mismatch, completed, released, store down, rejected. */
  onEvent?: EventHook<IdempotencyEvent | IdempotencyRejectedEvent>;
}

/** The engine's answer to `begin`. */
export type IdempotencyDecision =
  | {
      /** Not covered (or fail-open): run the handler as usual; nothing to finish. */
      action: "pass";
    }
  | {
      /** First request: run the handler, then `finish(ticket, captured)` or `abort(ticket)`. */
      action: "execute";
      /** The claimed key, to hand to `finish` or `abort`. */
      ticket: IdempotencyTicket;
    }
  | IdempotencyRespondDecision;

/**
 * A decision answered without running the handler: a refusal with its `error`, or a replay.
 * `replayed` tells them apart.
 */
export type IdempotencyRespondDecision = IdempotencyErrorDecision | IdempotencyReplayDecision;

/** A request refused (400, 409, 413, 422, 503, …): what an adapter's `onError` gets. Always carries the typed error. */
export interface IdempotencyErrorDecision {
  /** Answer with `response`, a problem+json refusal. The handler must not run. */
  action: "respond";
  /** The complete problem+json response to send. */
  response: HttpResponse;
  /** Not a replay. */
  replayed: false;
  /** The typed error behind the refusal, with its `code`. */
  error: InterlockError;
}

/** A replay of a stored response, sent as stored. Not an error. */
export interface IdempotencyReplayDecision {
  /** Answer with `response`, the stored response. The handler must not run. */
  action: "respond";
  /** The stored response, marked with the `replayedHeader`. */
  response: HttpResponse;
  /** A replay. */
  replayed: true;
  /** No error: a replay is the first request's answer. */
  error: undefined;
}

/** A claimed key, owned by one running request. */
export interface IdempotencyTicket {
  /** The client's key. */
  readonly key: string;
  /** The request's method, upper case. */
  readonly method: string;
  /** The route the key is scoped to. */
  readonly route: string;
}

interface Ticket extends IdempotencyTicket {
  readonly routePattern: (() => string | undefined) | undefined;
  readonly storeKey: string;
  readonly token: string;
  readonly correlationId: string | undefined;
  /** When the claim was won (timed only when someone listens to events). */
  readonly started: number;
  /** The lease being renewed (`extendLease`). */
  readonly lease: HeldLease | undefined;
  settled: boolean;
  /**
   * What a `finish` that called `complete` inside the caller's transaction leaves for `abort` to
   * release if that transaction rolls back, and how the release is reported; undefined when
   * there is nothing (no such `finish`, or released already). The status written there, reported
   * `completed`: the release is `released` with reason `rolled_back`, the correction of that
   * outcome, not a second one. `"not_recorded"`, nothing written and so reported: the release
   * only frees the key before its lease ends, and reports nothing more. `"unreported"`, the store
   * threw its `InterlockConfigError` before any outcome: the release is the failure's (`error`).
   */
  inTransaction: number | "not_recorded" | "unreported" | undefined;
}

/** The engine `createIdempotency` makes: `begin` decides, then `finish` or `abort` settles. */
export interface IdempotencyEngine<R extends IdempotencyRequest = IdempotencyRequest> {
  /** The options it was made with. */
  readonly options: Readonly<IdempotencyOptions<R>>;
  /**
   * Decides a request. A lazy `body` returning or throwing a `BodyError` (too large, not raw) is answered
   * like `refuse`: the problem+json decision and an `idempotency.rejected` event.
   */
  begin(request: R): Promise<IdempotencyDecision>;
  /**
   * Whether `begin` may read this request's body: only for a covered method that carries the
   * key header (without one, `begin` passes or refuses the request 400 unread). For adapters
   * whose framework consumes the body before `begin` can run: they keep the bytes only then.
   */
  mayReadBody(request: Pick<IdempotencyRequest, "method" | "headers">): boolean;
  /**
   * Whether `begin` refuses this request from its headers alone, reading no body and claiming
   * nothing: a covered method with a malformed key, or with none where `required` is `true` (a
   * `required` function is asked by `begin` only). For adapters whose framework parses the body
   * before `begin` can run, and would answer a body it cannot parse with an error of its own
   * first: they call `begin` early for such a request.
   */
  refusesUnread(request: Pick<IdempotencyRequest, "method" | "headers">): boolean;
  /**
   * Stores the captured response per the cache policy; resolves to whether it was stored.
   * A store that fails leaves the key to its lease and becomes an event, not an error; only a
   * store set up wrong (`InterlockConfigError`, e.g. a `transaction` it cannot join) throws,
   * for the app's error handling. `transaction` is passed to the store (the
   * PostgreSQL store writes the record inside your transaction): commit only when this
   * resolved true, and if you roll back instead, call `abort` to release the key. Its
   * `idempotency.completed` event then says `inTransaction: true`.
   */
  finish(ticket: IdempotencyTicket, response: CapturedResponse, options?: { transaction?: unknown }): Promise<boolean>;
  /**
   * The handler failed: releases the key so a retry runs again (`idempotency.released`, reason
   * `error`). Never throws. Also valid after a `finish` inside a transaction that was then rolled
   * back: after a stored response, its event has reason `rolled_back` (the correction of that
   * `completed`); after one not recorded, the key is freed with no further event.
   */
  abort(ticket: IdempotencyTicket): Promise<void>;
  /**
   * The client left before the answer was whole (it closed a response the handler had begun and
   * not ended): the lease is renewed no more, so the key lapses within `lockTtlMs` unless the
   * handler settles it first (its later `finish` is then recorded as usual, or refused by the
   * store once the lease has lapsed). A retry meanwhile gets 409, then runs: a handler that stops
   * at the close (server-sent events) holds the key no longer than its lease, not for
   * `extendLease`'s `maxMs`. Does not settle the ticket; idempotent; never throws.
   */
  cutOff(ticket: IdempotencyTicket): void;
  /**
   * For adapters that refuse a request before `begin` (a body over their limit, a body a
   * parser already consumed): the problem+json decision, reported like every other refusal.
   * Pass the request's `headers` so the event carries its correlation id, and its
   * `routePattern`, as for `begin`.
   */
  refuse(
    request: Pick<IdempotencyRequest, "method" | "route"> &
      Partial<Pick<IdempotencyRequest, "headers" | "routePattern">>,
    error: BodyError,
  ): IdempotencyErrorDecision;
}

/** The default lease on a running request: 60 s. */
export const DEFAULT_IDEMPOTENCY_LOCK_TTL_MS = 60_000;
/** The default retention of stored responses: 24 h. */
export const DEFAULT_IDEMPOTENCY_RETENTION_MS = 24 * 60 * 60 * 1000;
/**
 * `Retry-After` of a `request_in_flight` 409: 1 s. The key frees the moment the first request
 * finishes, usually within a second or two; the lease only bounds a handler that crashed. Telling
 * clients to wait out the lease (60 s) made a client whose attempt timed out give up at its
 * deadline while the handler went on to complete: the caller was told the call failed, and it had
 * not. Asked again within a second, the retry finds the stored response, or another short 409.
 */
export const IN_FLIGHT_RETRY_AFTER_SECONDS = 1;

/** Scope hashes the engine keeps, and the longest principal, method and route (as JSON) it keeps one for. */
const MAX_CACHED_SCOPES = 10_000;
const MAX_CACHED_SCOPE_LENGTH = 512;

const NO_PRINCIPAL_MESSAGE =
  "Interlock idempotency: no `principal` function is configured, so idempotency keys are shared by all " +
  "clients and one client could replay another's stored response. Pass `principal: (req) => <api key id, " +
  "user or tenant>`, or `principal: false` if this API has a single client.";

let warnedNoPrincipal = false;

const ANONYMOUS_SCOPE_MESSAGE =
  "Interlock idempotency: the `principal` function returned no principal (undefined, null or an empty " +
  "string) for a request, which puts it in the shared anonymous scope: every such request shares one key " +
  "space, and one client could replay another's stored response. Authenticate before the idempotency " +
  "middleware runs, so the function can read who is calling, or return a principal for every request. " +
  "Reported once per middleware.";

/**
 * Below 500, the statuses that tell the client to send the same request again: 408 Request
 * Timeout (RFC 9110 §15.5.9), 425 Too Early (RFC 8470 §5.2) and 429 Too Many Requests (RFC 6585
 * §4). Stored, they would answer every such retry for the whole retention, so `"non-5xx"`
 * releases them as it does a 5xx.
 */
const RETRY_STATUSES = new Set([408, 425, 429]);
/** Answers conditional headers the fingerprint does not cover: stored only to an unsafe method (see `shouldCache`). */
const NOT_MODIFIED = 304;
/** Methods that change nothing (RFC 9110 §9.2.1): run again for a retry, they harm nothing. */
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS", "TRACE"]);

/**
 * A final HTTP answer, the only kind a replay can be built from: a web `Response` refuses any
 * other status, so a stored 0 (`Response.error()`, a network error) would fail every retry.
 */
function isFinalStatus(status: number): boolean {
  return Number.isInteger(status) && status >= 200 && status <= 599;
}

/**
 * A status for a refusal of the client's request: a whole 400–499. Checked at setup: Node refuses
 * a status past 999 only as the answer is written (a 500 for every such request), and a 2xx or 5xx
 * would tell the client something other than "this key was used for another request".
 */
function clientErrorStatus(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 400 || value > 499) {
    throw new InterlockConfigError(`${name} must be a 4xx status (400–499), got ${String(value)}`);
  }
  return value;
}

/**
 * What a `principal` function may return: a string or a number (a user id) names the caller;
 * `undefined`, `null` (`req.user?.id ?? null`) or `""`, nobody: the shared anonymous scope (the
 * first such request is reported once as a process warning, `INTERLOCK_ANONYMOUS_SCOPE`).
 */
export type Principal = string | number | null | undefined;

/** The principal as hashed into the scope; anything else is the function's bug, thrown as such. */
function principalText(found: unknown): string {
  if (typeof found === "string") return found;
  if (found === undefined || found === null) return "";
  if (typeof found === "number" && Number.isFinite(found)) return String(found);
  throw new InterlockConfigError(
    `principal must return a string, a finite number, undefined or null (or a promise of one), not ${describe(found)}`,
  );
}

function describe(value: unknown): string {
  return typeof value === "number" ? String(value) : typeof value;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === "function";
}

/**
 * A custom fingerprint, if every store can hold it; else the app's bug, thrown as such, as a
 * throwing `fingerprint` is. Left to the store, NUL or a lone surrogate would be refused at the
 * claim and answered as an outage (503 `store_unavailable`, or let through under `failOpen`).
 */
function storableFingerprint(fingerprint: unknown): string {
  if (typeof fingerprint !== "string" || unstorable(fingerprint)) {
    throw new InterlockConfigError(
      "the fingerprint option must return a string without NUL or lone surrogates: hash what it reads",
    );
  }
  return fingerprint;
}

/**
 * A header name option. Not a token, the name could never be read (`headerName`: every request
 * passed unprotected) or sent (`replayedHeader`: every replay a 500 from Node).
 */
function headerNameOption(name: string, value: string | undefined, fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== "string" || !HTTP_TOKEN.test(value))
    throw new InterlockConfigError(
      `${name} must be an HTTP header name (a token, no spaces), not ${JSON.stringify(value)}`,
    );
  return value;
}

/**
 * `replayHeaders`: a list of header names (tokens). Another string names no header a response
 * can carry, and one a store cannot hold (a NUL) would fail every `complete`, the key locked.
 */
function replayHeadersOption(value: readonly string[] | undefined): readonly string[] {
  if (value === undefined) return DEFAULT_REPLAY_HEADERS;
  if (!Array.isArray(value)) throw new InterlockConfigError("replayHeaders must be a list of header names");
  const wrong = value.find((name) => typeof name !== "string" || !HTTP_TOKEN.test(name));
  if (wrong !== undefined) {
    throw new InterlockConfigError(
      `replayHeaders must be a list of HTTP header names (tokens, no spaces), not ${JSON.stringify(wrong)}`,
    );
  }
  return value;
}

/** `methods`: a non-empty list of method names (an empty one would cover no request at all). */
function methodsOption(value: readonly string[] | undefined): readonly string[] {
  if (value === undefined) return DEFAULT_METHODS;
  if (!Array.isArray(value) || value.length === 0 || !value.every((m) => typeof m === "string" && HTTP_TOKEN.test(m)))
    throw new InterlockConfigError('methods must be a non-empty list of HTTP methods, such as ["POST", "PATCH"]');
  return value;
}

const DEFAULT_METHODS = ["POST", "PATCH"];
const CACHE_POLICIES: readonly CachePolicy[] = ["non-5xx", "2xx", "all"];

/**
 * The options read as flags or called, checked by kind (for JavaScript callers): `failOpen:
 * "false"` would otherwise fail open, `required: "true"` be ignored, and a `principal` that is
 * no function fail every keyed request.
 */
function checkFlags(options: IdempotencyOptions<never>): void {
  const { failOpen, required, principal, fingerprint } = options;
  if (failOpen !== undefined && typeof failOpen !== "boolean")
    throw new InterlockConfigError("failOpen must be true or false");
  if (required !== undefined && typeof required !== "boolean" && typeof required !== "function")
    throw new InterlockConfigError("required must be true, false or a function of the request");
  if (principal !== undefined && principal !== false && typeof principal !== "function")
    throw new InterlockConfigError("principal must be a function of the request, or false");
  if (fingerprint !== undefined && typeof fingerprint !== "function")
    throw new InterlockConfigError("fingerprint must be a function of the request");
}

/**
 * The path and query a fingerprint covers: an absolute-form request target
 * (`POST http://host/payments`, RFC 9112 §3.2.2) names the same resource as `/payments`, and
 * Node's adapters pass the target as the client sent it, a fragment (`/payments#retry`) too.
 */
function originRelative(path: string): string {
  return path.charCodeAt(0) === 0x2f /* / */ ? withoutFragment(path) : pathAndQuery(path);
}

/**
 * Every option `createIdempotency` takes: adapters add their own to check an app's options whole.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export const IDEMPOTENCY_OPTION_NAMES = optionNames<IdempotencyOptions>({
  store: true,
  principal: true,
  methods: true,
  required: true,
  headerName: true,
  fingerprint: true,
  lockTtlMs: true,
  extendLease: true,
  retentionMs: true,
  waitForInFlight: true,
  mismatchStatus: true,
  cache: true,
  replayHeaders: true,
  replayedHeader: true,
  failOpen: true,
  onEvent: true,
});

/**
 * Makes the framework-neutral `Idempotency-Key` engine that the adapters drive. Options are
 * checked here (`InterlockConfigError`); without a `principal` it warns once that keys are
 * shared by every client.
 */
export function createIdempotency<R extends IdempotencyRequest = IdempotencyRequest>(
  options: IdempotencyOptions<R>,
): IdempotencyEngine<R> {
  assertOptionNames("createIdempotency()", options, IDEMPOTENCY_OPTION_NAMES);
  const { onEvent } = options;
  const store = storeOption(options.store);
  checkFlags(options);
  const methods = new Set(methodsOption(options.methods).map((m) => m.toUpperCase()));
  const headerName = headerNameOption("headerName", options.headerName, "Idempotency-Key").toLowerCase();
  const lockTtlMs = positiveMs("lockTtlMs", options.lockTtlMs, DEFAULT_IDEMPOTENCY_LOCK_TTL_MS);
  const retentionMs = positiveMs("retentionMs", options.retentionMs, DEFAULT_IDEMPOTENCY_RETENTION_MS);
  // On unless turned off (renewalsOf), as for webhooks: a retry during a slow handler gets 409.
  const leases = new LeaseKeeper(store, lockTtlMs, renewalsOf(options.extendLease, lockTtlMs));
  const allowedHeaders = replayAllowList(replayHeadersOption(options.replayHeaders));
  const replayedHeader = headerNameOption("replayedHeader", options.replayedHeader, "Idempotent-Replayed");
  const cache = choiceOption("cache", options.cache, CACHE_POLICIES, "non-5xx");
  const mismatchStatus = clientErrorStatus("mismatchStatus", options.mismatchStatus, 422);
  checkWait("waitForInFlight", options.waitForInFlight);
  if (options.principal === undefined && !warnedNoPrincipal) {
    warnedNoPrincipal = true;
    processWarning(NO_PRINCIPAL_WARNING, NO_PRINCIPAL_MESSAGE);
  }

  const isRequired = (request: R) =>
    typeof options.required === "function" ? options.required(request) : options.required === true;

  function fingerprintOf(request: R): string | Promise<string> {
    if (options.fingerprint) {
      const custom = options.fingerprint(request);
      return typeof custom === "string"
        ? storableFingerprint(custom)
        : Promise.resolve(custom).then(storableFingerprint);
    }
    const prefix = `${request.method.toUpperCase()}\n${originRelative(request.path)}\n`;
    if (typeof request.body !== "function") return sha256Hex([prefix, requestBytes(request.body)]);
    // Bytes an adapter already holds (Fastify's, read in preParsing) are hashed at once: a
    // promise only for a body still to be read.
    const body = request.body();
    if (!isThenable(body)) return sha256Hex([prefix, readBytes(body)]);
    return Promise.resolve(body).then((bytes) => sha256Hex([prefix, readBytes(bytes)]));
  }

  // The principal is hashed into the key, so stores and their logs never see an API key.
  // Scopes repeat (one per principal and route), so their hashes are cached, boundedly: in
  // number, and in length, since a client may choose the route (an app-wide middleware scopes
  // by path) or the principal (read from a header): kept, 10,000 of 16 KiB would hold 160 MiB.
  const scopes = new Map<string, string>();
  const principalOf = options.principal || undefined;
  function storeKeyOf(request: R, method: string, key: string): string | Promise<string> {
    if (principalOf === undefined) return scopedKey("", method, request.route, key);
    const found = principalOf(request);
    if (typeof found === "string" && found !== "") return scopedKey(found, method, request.route, key);
    if (!isThenable(found)) return scopedKey(namedPrincipal(found), method, request.route, key);
    return Promise.resolve(found).then((principal) => scopedKey(namedPrincipal(principal), method, request.route, key));
  }

  // A function that names nobody is most often one that runs before authentication (the
  // middleware mounted before it): every user then shares one scope, and user B is replayed
  // user A's response. Not refused, since a public route may be anonymous on purpose; said once.
  let anonymousReported = false;
  function namedPrincipal(found: unknown): string {
    const principal = principalText(found);
    if (principal === "" && !anonymousReported) {
      anonymousReported = true;
      processWarning(ANONYMOUS_SCOPE_WARNING, ANONYMOUS_SCOPE_MESSAGE);
    }
    return principal;
  }

  // The last scope is compared first: most requests to a route come one after another.
  let last = { principal: "", method: "", route: "", scope: "" };
  function scopedKey(principal: string, method: string, route: string, key: string): string | Promise<string> {
    if (route === last.route && method === last.method && principal === last.principal && last.scope !== "")
      return `idem:${last.scope}:${key}`;
    const id = JSON.stringify([principal, method, route]);
    const known = scopes.get(id);
    if (known !== undefined) {
      last = { principal, method, route, scope: known };
      return `idem:${known}:${key}`;
    }
    const remember = (digest: string) => {
      const scope = digest.slice(0, 32);
      if (id.length <= MAX_CACHED_SCOPE_LENGTH) {
        if (scopes.size >= MAX_CACHED_SCOPES) scopes.clear();
        scopes.set(id, scope);
      }
      last = { principal, method, route, scope };
      return `idem:${scope}:${key}`;
    };
    const digest = sha256Hex([id]);
    return typeof digest === "string" ? remember(digest) : digest.then(remember);
  }

  function refuse(error: InterlockError): IdempotencyErrorDecision {
    return { action: "respond", response: problemResponse(error), replayed: false, error };
  }

  function rejected(
    method: string,
    route: string | undefined,
    code: IdempotencyRejectedEvent["code"],
    correlationId: string | undefined,
  ): void {
    if (onEvent) {
      const event = routed<IdempotencyRejectedEvent>({ type: "idempotency.rejected", method, code }, route);
      emit(onEvent, correlated(event, correlationId));
    }
  }

  /** A body the adapter could not read (too large, not raw): one refusal and one event, wherever it is found. */
  function refuseBody(
    method: string,
    route: string | undefined,
    error: BodyError,
    correlationId: string | undefined,
  ): IdempotencyErrorDecision {
    rejected(method, route, error.code, correlationId);
    return refuse(error);
  }

  function storeUnavailable(
    base: IdempotencyEventBase,
    operation: "claim" | "complete" | "release",
    storeMs: number,
    error: unknown,
  ) {
    if (!onEvent) return;
    const failOpen = options.failOpen === true;
    emit(onEvent, {
      ...base,
      type: "idempotency.store_unavailable",
      operation,
      failOpen,
      storeMs,
      error: failureMessage(error),
    });
  }

  /** What every event about a claimed key carries. */
  function ticketBase(ticket: Ticket): IdempotencyEventBase {
    const base = routed<IdempotencyEventBase>({ key: ticket.key, method: ticket.method }, patternOf(ticket));
    return correlated(base, ticket.correlationId);
  }

  /** Settles a ticket once, stopping its lease's renewal: false when it was already settled. */
  function settle(ticket: Ticket): boolean {
    if (ticket.settled) return false;
    ticket.settled = true;
    leases.release(ticket.lease);
    return true;
  }

  async function release(
    ticket: Ticket,
    event: Omit<
      Extract<IdempotencyEvent, { type: "idempotency.released" }>,
      keyof IdempotencyEventBase | "type" | "released" | "durationMs" | "storeMs"
    >,
  ) {
    const releasing = onEvent ? monotonicNow() : 0;
    const outcome = await releaseClaim(store, ticket.storeKey, ticket.token);
    if (!onEvent) return outcome;
    const now = monotonicNow();
    const base = ticketBase(ticket);
    const storeMs = now - releasing;
    const durationMs = now - ticket.started;
    const { released } = outcome;
    emit(onEvent, { ...base, type: "idempotency.released", ...event, released, durationMs, storeMs });
    if (!outcome.released) storeUnavailable(base, "release", storeMs, outcome.error);
    return outcome;
  }

  /**
   * Releases the claim of an answer not stored: false, for `finish`. As at the claim, a store set
   * up wrong is no outage: its `InterlockConfigError` is thrown as it is. (`abort` ignores it: it
   * runs on the way out of a failure, which it must not replace.)
   */
  async function releaseUnstored(ticket: Ticket, event: Parameters<typeof release>[1]): Promise<false> {
    const outcome = await release(ticket, event);
    if (!outcome.released && outcome.error instanceof InterlockConfigError) throw outcome.error;
    return false;
  }

  /**
   * Whether an answer is stored. A 304 answers conditional headers the fingerprint does not
   * cover: to a safe method it is not, and the retry runs and gets the whole answer. To an
   * unsafe one (POST, PATCH) the handler has run already, and a middleware inside made its answer
   * a 304 (an ETag plugin that answers every method): released, the key would let the handler run
   * again, so the 304 is stored under every policy, and the retry gets what the first request got.
   */
  function shouldCache(status: number, method: string): boolean {
    if (status === NOT_MODIFIED) return !SAFE_METHODS.has(method);
    if (!isFinalStatus(status)) return false;
    if (cache === "all") return true;
    if (cache === "2xx") return status >= 200 && status < 300;
    return status < 500 && !RETRY_STATUSES.has(status);
  }

  // The last header parsed, and its key: Fastify asks `refusesUnread` before the body is read,
  // then `begin` after, of the same header; it is parsed once.
  let lastHeader: string | undefined;
  let lastKey: string | undefined;
  /** The key in an Idempotency-Key header value, or undefined when it holds no valid key. */
  function keyIn(header: string | readonly string[]): string | undefined {
    if (typeof header !== "string") return undefined;
    if (header !== lastHeader) {
      lastKey = parseIdempotencyKey(header);
      lastHeader = header;
    }
    return lastKey;
  }

  return {
    options,
    mayReadBody(request) {
      return methods.has(request.method.toUpperCase()) && headerReader(request.headers)(headerName) !== undefined;
    },
    refusesUnread(request) {
      if (!methods.has(request.method.toUpperCase())) return false;
      const header = headerReader(request.headers)(headerName);
      if (header === undefined) return options.required === true;
      return keyIn(header) === undefined;
    },
    async begin(request) {
      const method = request.method.toUpperCase();
      if (!methods.has(method)) return { action: "pass" };
      const read = headerReader(request.headers);
      const header = read(headerName);
      if (header === undefined && !isRequired(request)) return { action: "pass" };
      const correlationId = onEvent ? correlationIdOf(read) : undefined;
      const pattern = onEvent ? patternOf(request) : undefined;
      if (header === undefined) {
        rejected(method, pattern, "idempotency_key_missing", correlationId);
        return refuse(
          new IdempotencyError(
            "idempotency_key_missing",
            `this request requires an ${options.headerName ?? "Idempotency-Key"} header`,
          ),
        );
      }
      const key = keyIn(header);
      if (key === undefined) {
        rejected(method, pattern, "idempotency_key_invalid", correlationId);
        return refuse(
          new IdempotencyError(
            "idempotency_key_invalid",
            "the key must be one string of 1 to 255 printable ASCII characters, not all spaces: quoted (RFC 9651), or bare without spaces",
          ),
        );
      }
      const base = correlated(routed<IdempotencyEventBase>({ method, key }, pattern), correlationId);
      // Awaited only when asynchronous: on Node both are synchronous, and each await costs a tick.
      let fingerprint: string;
      try {
        const fingerprintOrPromise = fingerprintOf(request);
        fingerprint = typeof fingerprintOrPromise === "string" ? fingerprintOrPromise : await fingerprintOrPromise;
      } catch (error) {
        if (!(error instanceof BodyError)) throw error;
        return refuseBody(method, pattern, error, correlationId);
      }
      const storeKeyOrPromise = storeKeyOf(request, method, key);
      const storeKey = typeof storeKeyOrPromise === "string" ? storeKeyOrPromise : await storeKeyOrPromise;
      const claimStarted = onEvent ? monotonicNow() : 0;
      let claim: Awaited<ReturnType<typeof claimKey>>;
      try {
        claim = await claimKey(store, storeKey, { fingerprint, lockTtlMs }, options.waitForInFlight);
      } catch (error) {
        // A store set up wrong throws here, its error as it is: no outage, never failing open.
        const unavailable = asUnavailable(store, error);
        storeUnavailable(base, "claim", onEvent ? monotonicNow() - claimStarted : 0, unavailable);
        if (options.failOpen === true) return { action: "pass" };
        return refuse(unavailable);
      }
      const claimed = onEvent ? monotonicNow() : 0;
      const storeMs = claimed - claimStarted;
      if (claim.state === "claimed") {
        if (onEvent) emit(onEvent, { ...base, type: "idempotency.first", storeMs });
        const ticket: Ticket = {
          key,
          method,
          route: request.route,
          routePattern: request.routePattern,
          storeKey,
          token: claim.token,
          correlationId,
          started: claimed,
          lease: leases.hold(storeKey, claim.token),
          settled: false,
          inTransaction: undefined,
        };
        return { action: "execute", ticket };
      }
      const otherFingerprint = claim.state === "completed" ? claim.record.fingerprint : claim.fingerprint;
      if (otherFingerprint !== fingerprint) {
        emit(onEvent, { ...base, type: "idempotency.mismatch", storeMs });
        return refuse(
          new IdempotencyError(
            "idempotency_key_mismatch",
            "this key was already used for a request with other content",
            {
              status: mismatchStatus,
            },
          ),
        );
      }
      if (claim.state === "in_flight") {
        emit(onEvent, {
          ...base,
          type: "idempotency.in_flight",
          waited: options.waitForInFlight !== undefined,
          storeMs,
        });
        return refuse(
          new IdempotencyError("request_in_flight", "a request with this key is still being processed; retry later", {
            retryAfterSeconds: IN_FLIGHT_RETRY_AFTER_SECONDS,
          }),
        );
      }
      if (onEvent) emit(onEvent, { ...base, type: "idempotency.replayed", status: claim.record.status, storeMs });
      return {
        action: "respond",
        response: replayResponse(claim.record, replayedHeader, method),
        replayed: true,
        error: undefined,
      };
    },

    async finish(publicTicket, captured, finishOptions) {
      const ticket = publicTicket as Ticket;
      if (!settle(ticket)) return false;
      const status = captured.status;
      // A body dropped for its size is judged as a whole one over the limit: its status first.
      const tooLarge = captured.tooLarge === true;
      if (captured.body === undefined && !tooLarge) return releaseUnstored(ticket, { reason: "streamed", status });
      if (!shouldCache(status, ticket.method)) return releaseUnstored(ticket, { reason: "status", status });
      if (tooLarge || captured.body === undefined) return releaseUnstored(ticket, { reason: "too_large", status });
      const response = responseToStore(ticket.method, status, captured.headers, captured.body, allowedHeaders);
      if (!fitsRecord(response, store.maxRecordBytes)) {
        return releaseUnstored(ticket, { reason: "too_large", status });
      }
      const completing = onEvent ? monotonicNow() : 0;
      const transaction = finishOptions?.transaction;
      if (transaction !== undefined) ticket.inTransaction = "unreported";
      let stored: boolean | undefined;
      let failure: unknown;
      try {
        const completeOptions =
          transaction === undefined ? { ttlMs: retentionMs } : { ttlMs: retentionMs, transaction };
        stored = await store.complete(ticket.storeKey, ticket.token, response, completeOptions);
      } catch (error) {
        // As at the claim: a store set up wrong (a `transaction` it cannot join) throws its
        // error as it is, to the app's error handling, not reported as an outage.
        if (error instanceof InterlockConfigError) throw error;
        stored = undefined;
        failure = error;
      }
      if (transaction !== undefined) ticket.inTransaction = stored === true ? status : "not_recorded";
      if (onEvent) {
        const base = ticketBase(ticket);
        const now = monotonicNow();
        const durationMs = now - ticket.started;
        const storeMs = now - completing;
        if (stored === true) {
          const completed: Extract<IdempotencyEvent, { type: "idempotency.completed" }> = {
            ...base,
            type: "idempotency.completed",
            status,
            durationMs,
            storeMs,
          };
          if (transaction !== undefined) completed.inTransaction = true;
          emit(onEvent, completed);
        } else {
          emit(onEvent, {
            ...base,
            type: "idempotency.not_recorded",
            reason: stored === false ? "lease_lost" : "store_error",
            durationMs,
            storeMs,
          });
          // As for a failed release: the outcome first, then the store that failed.
          if (stored === undefined) storeUnavailable(base, "complete", storeMs, failure);
        }
      }
      return stored === true;
    },

    refuse(request, error) {
      const correlationId = onEvent ? correlationIdOfHeaders(request.headers) : undefined;
      return refuseBody(request.method.toUpperCase(), patternOf(request), error, correlationId);
    },

    cutOff(publicTicket) {
      // Not `settle`: the handler may still end its answer, which `finish` records.
      leases.release((publicTicket as Ticket | undefined)?.lease);
    },

    async abort(publicTicket) {
      const ticket = publicTicket as Ticket;
      // After a finish inside a transaction the record is not durable until the caller commits:
      // a rollback must be able to release the lock (a committed record is never released).
      const left = ticket.inTransaction;
      if (!settle(ticket) && left === undefined) return;
      ticket.inTransaction = undefined;
      if (left === "not_recorded") await releaseClaim(store, ticket.storeKey, ticket.token);
      else if (typeof left === "number") await release(ticket, { reason: "rolled_back", status: left });
      else await release(ticket, { reason: "error", status: undefined });
    },
  };
}

/** The route events name: the pattern, read now (an adapter may learn it only once routing matched). */
function patternOf(request: Pick<IdempotencyRequest, "route" | "routePattern">): string | undefined {
  return request.routePattern ? request.routePattern() : request.route;
}

/** `event` naming its `route` when the pattern is known: an unknown one leaves no key behind. */
function routed<E extends { route?: string }>(event: E, route: string | undefined): E {
  if (route !== undefined) event.route = route;
  return event;
}

/**
 * What a lazy body gave, as bytes; a `BodyError` returned is thrown, as one thrown is: an adapter
 * hands its reader over as it is, with no async wrapper of its own (a promise and its ticks on
 * every keyed request) to turn the one into the other.
 */
function readBytes(body: RawBody | BodyError | undefined): Uint8Array {
  if (body instanceof BodyError) throw body;
  return requestBytes(body);
}
