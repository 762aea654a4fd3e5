/**
 * The table: each event type (core's, the outbound client's, OAuth's), and the instruments and
 * spans it feeds. One row per event type, checked exhaustive by the compiler, so a new event is
 * added here by name, next to its siblings. The client's and OAuth's events are the shapes
 * outbound-events.ts declares: neither package is needed, to run or to compile.
 */

import type { IdempotencyEventBase, InterlockEvent } from "@interlock/core";
import type { Attributes } from "@opentelemetry/api";
import {
  ATTR_CLIENT_ATTEMPT,
  ATTR_CLIENT_BREAKER_FROM,
  ATTR_CLIENT_BREAKER_STATE,
  ATTR_CLIENT_GIVE_UP_REASON,
  ATTR_CLIENT_ORIGIN,
  ATTR_CLIENT_OUTCOME,
  ATTR_CLIENT_PROBE,
  ATTR_CLIENT_RETRY_AFTER,
  ATTR_CLIENT_STALE_CONNECTION,
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_REQUEST_RESEND_COUNT,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_IDEMPOTENCY_FAIL_OPEN,
  ATTR_IDEMPOTENCY_KEY,
  ATTR_IDEMPOTENCY_OUTCOME,
  ATTR_IDEMPOTENCY_REASON,
  ATTR_IDEMPOTENCY_WAITED,
  ATTR_OAUTH_GRANT,
  ATTR_OAUTH_OUTCOME,
  ATTR_OAUTH_REASON,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_STORE_OPERATION,
  ATTR_URL_SCHEME,
  ATTR_WEBHOOK_ID,
  ATTR_WEBHOOK_ID_COVERED,
  ATTR_WEBHOOK_OUTCOME,
  ATTR_WEBHOOK_RECORDED,
  ATTR_WEBHOOK_RELEASED,
  ATTR_WEBHOOK_SCHEME,
} from "./attributes.js";
import {
  METRIC_CLIENT_ATTEMPT_DURATION,
  METRIC_CLIENT_ATTEMPTS,
  METRIC_CLIENT_BREAKER_TRANSITIONS,
  METRIC_CLIENT_GIVE_UPS,
  METRIC_CLIENT_RETRIES,
  METRIC_CLIENT_RETRY_DELAY,
  METRIC_IDEMPOTENCY_HANDLER_DURATION,
  METRIC_IDEMPOTENCY_OUTCOMES,
  METRIC_OAUTH_DISCOVERY_FAILURES,
  METRIC_OAUTH_LOGIN_REVOCATIONS,
  METRIC_OAUTH_LOGINS,
  METRIC_OAUTH_SESSION_WRITE_FAILURES,
  METRIC_OAUTH_SESSIONS_ENDED,
  METRIC_OAUTH_TOKEN_LATE_ANSWERS,
  METRIC_OAUTH_TOKEN_REQUEST_DURATION,
  METRIC_OAUTH_TOKEN_REQUESTS,
  METRIC_OAUTH_TOKEN_REUSES,
  METRIC_WEBHOOK_DELIVERIES,
  METRIC_WEBHOOK_HANDLER_DURATION,
  METRIC_WEBHOOK_VERIFICATION_DURATION,
  METRIC_WEBHOOK_VERIFICATIONS,
} from "./instruments.js";
import type { TelemetryClientEvent, TelemetryOAuthEvent } from "./outbound-events.js";
import type { EventRecorder } from "./recorder.js";

/** Span: a delivery's verification, verified or rejected. */
export const SPAN_WEBHOOK_VERIFY = "interlock.webhook.verify";
/** Span: a verified delivery's claim in the store (first, duplicate, in flight, or store down). */
export const SPAN_WEBHOOK_CLAIM = "interlock.webhook.claim";
/** Span: a webhook handler's run, processed or failed. */
export const SPAN_WEBHOOK_HANDLE = "interlock.webhook.handle";
/** Span: a request refused before any key was claimed. */
export const SPAN_IDEMPOTENCY_REJECT = "interlock.idempotency.reject";
/** Span: a key's claim in the store (first, replayed, in flight, mismatch, or store down). */
export const SPAN_IDEMPOTENCY_CLAIM = "interlock.idempotency.claim";
/** Span: an idempotent request's handler run, until its response was stored or released. */
export const SPAN_IDEMPOTENCY_EXECUTE = "interlock.idempotency.execute";

/** Span: one outbound attempt, from its start to its response headers or its failure. */
export const SPAN_CLIENT_ATTEMPT = "interlock.client.attempt";
/** Span: one OAuth token request, retries included. */
export const SPAN_OAUTH_TOKEN = "interlock.oauth.token";

/** The `error.type` of a failure Interlock reports by outcome rather than by code. */
const STORE_UNAVAILABLE = "store_unavailable";
const HANDLER_FAILED = "handler_failed";
/**
 * The `error.type` of a webhook `complete` that did not record a processed delivery: the store
 * failed, or the lease was lost (`recorded: false` does not say which), so not `store_unavailable`.
 */
const NOT_RECORDED = "not_recorded";
/** The semantic conventions' `error.type` for an error outside the documented list. */
const OTHER = "_OTHER";

/**
 * The codes a refused login or a failed token request is counted by: a `LoginError`'s, RFC
 * 6749's and OpenID Connect's (the authorization response's), an `OAuthResponseError`'s (a
 * failed exchange), a pending login that no key decrypts, `invalid_token` (what a server that
 * revokes the access token with the refresh token answers for it, which @interlock/oauth's
 * revocation events name), and `"error"` (untyped). Any other is an `error` the other side
 * chose (a callback URL's, or an authorization server's extension code): counted as `_OTHER`,
 * not one series each.
 * test/outbound-events.test.ts checks the list against @interlock/oauth's code types.
 */
export const KNOWN_OAUTH_CODES = {
  state_missing: true,
  state_mismatch: true,
  state_unknown: true,
  issuer_mismatch: true,
  invalid_callback: true,
  invalid_request: true,
  invalid_client: true,
  invalid_grant: true,
  unauthorized_client: true,
  unsupported_grant_type: true,
  invalid_scope: true,
  invalid_target: true,
  unsupported_token_type: true,
  access_denied: true,
  unsupported_response_type: true,
  server_error: true,
  temporarily_unavailable: true,
  interaction_required: true,
  login_required: true,
  account_selection_required: true,
  consent_required: true,
  invalid_request_uri: true,
  invalid_request_object: true,
  request_not_supported: true,
  request_uri_not_supported: true,
  registration_not_supported: true,
  server_unavailable: true,
  invalid_response: true,
  id_token_mismatch: true,
  max_age_exceeded: true,
  token_decryption_failed: true,
  invalid_token: true,
  error: true,
} as const satisfies Record<string, true>;
const knownOAuthCode = (code: string) => (Object.hasOwn(KNOWN_OAUTH_CODES, code) ? code : OTHER);

/** Every event `interlockTelemetry()` records: core's, `@interlock/client`'s and `@interlock/oauth`'s. */
export type TelemetryEvent = InterlockEvent | TelemetryClientEvent | TelemetryOAuthEvent;

export type EventType = TelemetryEvent["type"];
export type EventOf<T extends EventType> = Extract<TelemetryEvent, { type: T }>;
/** What one event type feeds. */
export type EventRow<E> = (event: E, record: EventRecorder) => void;

/**
 * The methods `http.request.method` names as they are: RFC 9110's, PATCH and QUERY (the
 * semantic conventions' default "known" methods), or the list in
 * `OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS` (comma-separated, case-sensitive, replacing the
 * default), as the semantic conventions ask. Any other is `_OTHER`: an app's own method names
 * (`methods` for idempotency, a client call's `method`) are not one series each.
 */
const KNOWN_METHODS = new Set(
  (knownMethodsSetting() ?? "CONNECT,DELETE,GET,HEAD,OPTIONS,PATCH,POST,PUT,QUERY,TRACE")
    .split(",")
    .map((method) => method.trim())
    .filter((method) => method !== ""),
);

/** The environment's list, where there is an environment to read (Deno without env access throws). */
function knownMethodsSetting(): string | undefined {
  try {
    return globalThis.process?.env?.OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS;
  } catch {
    return undefined;
  }
}
const requestMethod = (method: string): Attributes => ({
  [ATTR_HTTP_REQUEST_METHOD]: KNOWN_METHODS.has(method) ? method : OTHER,
});

/**
 * A verified delivery's id, for its spans, as core's events carry it: one the signature does not
 * cover only when it is 1 to 200 visible ASCII characters (it is the sender's text, as a rejected
 * delivery's claimed id is, which no span carries).
 */
const webhookId = (id: string | undefined): Attributes => (id === undefined ? {} : { [ATTR_WEBHOOK_ID]: id });

/** `http.route` only when the event names a route pattern: the semantic conventions forbid a path in its place. */
const idempotency = (event: Omit<IdempotencyEventBase, "key">, outcome: string): Attributes => ({
  ...requestMethod(event.method),
  ...(event.route === undefined ? {} : { [ATTR_HTTP_ROUTE]: event.route }),
  [ATTR_IDEMPOTENCY_OUTCOME]: outcome,
});

const status = (code: number | undefined): Attributes =>
  code === undefined ? {} : { [ATTR_HTTP_RESPONSE_STATUS_CODE]: code };

/** An outbound call's low-cardinality attributes: where it went and how. */
const outbound = (event: { origin: string; method: string }): Attributes => ({
  [ATTR_CLIENT_ORIGIN]: event.origin,
  ...requestMethod(event.method),
});

/** The port `server.port` names when an origin leaves it out: its scheme's default. */
const DEFAULT_PORTS: { readonly [scheme: string]: number } = { http: 80, https: 443 };

/**
 * Where an attempt went, as the semantic conventions' HTTP client attributes name it:
 * `server.address` (an IPv6 address without its brackets), `server.port` and `url.scheme`.
 * Derived from the origin, the one place the event names it (never the path). None for an
 * origin that is not a URL.
 */
function server(origin: string): Attributes {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return {};
  }
  const scheme = url.protocol.slice(0, -1);
  const port = url.port === "" ? DEFAULT_PORTS[scheme] : Number(url.port);
  return {
    [ATTR_SERVER_ADDRESS]: url.hostname.replace(/^\[(.*)\]$/, "$1"),
    ...(port === undefined ? {} : { [ATTR_SERVER_PORT]: port }),
    [ATTR_URL_SCHEME]: scheme,
  };
}

/** `http.request.resend_count`, on the attempts after the first only, as the semantic conventions ask. */
const resendCount = (attempt: number): Attributes =>
  attempt > 1 ? { [ATTR_HTTP_REQUEST_RESEND_COUNT]: attempt - 1 } : {};

/**
 * An attempt's `error.type`: the platform's code for a network error, the outcome for a timeout
 * or an abort, the status for a 5xx (what the breaker counts as a failure). None for a 1xx-4xx.
 */
function attemptError(event: EventOf<"client.attempt">): string | undefined {
  if (event.outcome === "network_error") return event.error ?? "network_error";
  if (event.outcome !== "response") return event.outcome;
  return event.status !== undefined && event.status >= 500 ? String(event.status) : undefined;
}

const errorType = (type: string | undefined): Attributes => (type === undefined ? {} : { [ATTR_ERROR_TYPE]: type });

/**
 * A failed revocation's `error.type`: RFC 7009 lets the server answer any `error`, which becomes
 * the event's code, so one outside the known codes is `_OTHER`, as for token requests.
 */
const revocationError = (code: string | undefined): Attributes =>
  errorType(code === undefined ? undefined : knownOAuthCode(code));

/** The handler's own time: the outcome's duration less the store write that ends it. */
const handlerMs = (event: { durationMs: number; storeMs: number }) => event.durationMs - event.storeMs;

/** Every answer a claim gives (first, replayed, in flight, mismatch): one outcome, the store's time, a claim span. */
function claimOutcome(event: { key: string; storeMs: number }, attributes: Attributes, record: EventRecorder): void {
  record.count(METRIC_IDEMPOTENCY_OUTCOMES, attributes);
  record.store("idempotency", "claim", event.storeMs);
  record.span(
    SPAN_IDEMPOTENCY_CLAIM,
    { durationMs: event.storeMs },
    { ...attributes, [ATTR_IDEMPOTENCY_KEY]: event.key },
  );
}

/**
 * A delivery whose handler ran, processed or failed: the handler's time, the store's for the claim
 * and for the write that ended it (`ending`), the claim's span (over when the handler started)
 * and the handler's, with `handled` (what became of the record) and `errorType` when it failed.
 */
function handledDelivery(
  event: EventOf<"webhook.processed" | "webhook.handler_failed">,
  attributes: Attributes,
  ending: "complete" | "release",
  handled: Attributes,
  record: EventRecorder,
  errorType?: string,
): void {
  record.time(METRIC_WEBHOOK_HANDLER_DURATION, handlerMs(event), attributes);
  record.store("webhook", "claim", event.claimMs);
  record.store("webhook", ending, event.storeMs, endingFailure(event));
  const id = webhookId(event.id);
  record.span(
    SPAN_WEBHOOK_CLAIM,
    { durationMs: event.claimMs, endedMsAgo: event.durationMs },
    { [ATTR_WEBHOOK_SCHEME]: event.scheme, [ATTR_WEBHOOK_OUTCOME]: "claimed", ...id },
  );
  record.span(SPAN_WEBHOOK_HANDLE, event, { ...attributes, ...id, ...handled }, errorType);
}

/**
 * The `error.type` of the store call that ended a handled delivery, when it did not do its part:
 * a release that failed (the lease then ends on its own), `store_unavailable`; a complete that
 * did not record the delivery (a redelivery may run it again), `not_recorded`.
 */
function endingFailure(event: EventOf<"webhook.processed" | "webhook.handler_failed">): string | undefined {
  if (event.type === "webhook.handler_failed") return event.released ? undefined : STORE_UNAVAILABLE;
  return event.recorded ? undefined : NOT_RECORDED;
}

export const EVENT_TELEMETRY: { readonly [T in EventType]: EventRow<EventOf<T>> } = {
  "webhook.verified"(event, record) {
    const attributes = { [ATTR_WEBHOOK_SCHEME]: event.scheme, [ATTR_WEBHOOK_OUTCOME]: "verified" };
    record.count(METRIC_WEBHOOK_VERIFICATIONS, attributes);
    record.time(METRIC_WEBHOOK_VERIFICATION_DURATION, event.durationMs, attributes);
    record.span(SPAN_WEBHOOK_VERIFY, event, {
      ...attributes,
      ...webhookId(event.id),
      [ATTR_WEBHOOK_ID_COVERED]: event.idCovered,
    });
  },
  "webhook.rejected"(event, record) {
    const attributes = {
      [ATTR_WEBHOOK_SCHEME]: event.scheme,
      [ATTR_WEBHOOK_OUTCOME]: "rejected",
      [ATTR_ERROR_TYPE]: event.code,
    };
    record.count(METRIC_WEBHOOK_VERIFICATIONS, attributes);
    record.count(METRIC_WEBHOOK_DELIVERIES, attributes);
    record.time(METRIC_WEBHOOK_VERIFICATION_DURATION, event.durationMs, attributes);
    record.span(SPAN_WEBHOOK_VERIFY, event, attributes, event.code);
  },
  "webhook.duplicate"(event, record) {
    const outcome = event.state === "completed" ? "duplicate" : "in_flight";
    const attributes = { [ATTR_WEBHOOK_SCHEME]: event.scheme, [ATTR_WEBHOOK_OUTCOME]: outcome };
    record.count(METRIC_WEBHOOK_DELIVERIES, attributes);
    record.store("webhook", "claim", event.storeMs);
    record.span(SPAN_WEBHOOK_CLAIM, { durationMs: event.storeMs }, { ...attributes, ...webhookId(event.id) });
  },
  "webhook.store_unavailable"(event, record) {
    const attributes = { [ATTR_WEBHOOK_SCHEME]: event.scheme, [ATTR_WEBHOOK_OUTCOME]: STORE_UNAVAILABLE };
    record.count(METRIC_WEBHOOK_DELIVERIES, { ...attributes, [ATTR_ERROR_TYPE]: STORE_UNAVAILABLE });
    record.store("webhook", event.operation, event.storeMs, STORE_UNAVAILABLE);
    record.span(
      SPAN_WEBHOOK_CLAIM,
      { durationMs: event.storeMs },
      { ...attributes, ...webhookId(event.id) },
      STORE_UNAVAILABLE,
    );
  },
  "webhook.processed"(event, record) {
    const attributes = { [ATTR_WEBHOOK_SCHEME]: event.scheme, [ATTR_WEBHOOK_OUTCOME]: "processed" };
    record.count(METRIC_WEBHOOK_DELIVERIES, { ...attributes, [ATTR_WEBHOOK_RECORDED]: event.recorded });
    handledDelivery(event, attributes, "complete", { [ATTR_WEBHOOK_RECORDED]: event.recorded }, record);
  },
  "webhook.handler_failed"(event, record) {
    const attributes = { [ATTR_WEBHOOK_SCHEME]: event.scheme, [ATTR_WEBHOOK_OUTCOME]: HANDLER_FAILED };
    const released = { [ATTR_WEBHOOK_RELEASED]: event.released };
    record.count(METRIC_WEBHOOK_DELIVERIES, { ...attributes, ...released, [ATTR_ERROR_TYPE]: HANDLER_FAILED });
    // `status`: the handler answered outside 2xx (absent when it threw, and from a core before it).
    const answered = { ...released, ...status(event.status) };
    handledDelivery(event, attributes, "release", answered, record, HANDLER_FAILED);
  },

  "idempotency.rejected"(event, record) {
    const attributes = { ...idempotency(event, "rejected"), [ATTR_ERROR_TYPE]: event.code };
    record.count(METRIC_IDEMPOTENCY_OUTCOMES, attributes);
    record.span(SPAN_IDEMPOTENCY_REJECT, { durationMs: 0 }, attributes, event.code);
  },
  "idempotency.first"(event, record) {
    const attributes = idempotency(event, "first");
    claimOutcome(event, attributes, record);
  },
  "idempotency.replayed"(event, record) {
    const attributes = { ...idempotency(event, "replayed"), ...status(event.status) };
    claimOutcome(event, attributes, record);
  },
  "idempotency.in_flight"(event, record) {
    const attributes = { ...idempotency(event, "in_flight"), [ATTR_IDEMPOTENCY_WAITED]: event.waited };
    claimOutcome(event, attributes, record);
  },
  "idempotency.mismatch"(event, record) {
    const attributes = idempotency(event, "mismatch");
    claimOutcome(event, attributes, record);
  },
  "idempotency.completed"(event, record) {
    const attributes = { ...idempotency(event, "completed"), ...status(event.status) };
    record.count(METRIC_IDEMPOTENCY_OUTCOMES, attributes);
    record.time(METRIC_IDEMPOTENCY_HANDLER_DURATION, handlerMs(event), attributes);
    record.store("idempotency", "complete", event.storeMs);
    record.span(SPAN_IDEMPOTENCY_EXECUTE, event, { ...attributes, [ATTR_IDEMPOTENCY_KEY]: event.key });
  },
  "idempotency.released"(event, record) {
    const attributes = {
      ...idempotency(event, "released"),
      [ATTR_IDEMPOTENCY_REASON]: event.reason,
      ...status(event.status),
    };
    record.count(METRIC_IDEMPOTENCY_OUTCOMES, attributes);
    record.store("idempotency", "release", event.storeMs, event.released ? undefined : STORE_UNAVAILABLE);
    // The release after the caller's rollback corrects the `completed` its request already
    // counted, timed and drew an execute span for: the handler ran once, and did not fail.
    if (event.reason === "rolled_back") return;
    record.time(METRIC_IDEMPOTENCY_HANDLER_DURATION, handlerMs(event), attributes);
    const failed = event.reason === "error" ? HANDLER_FAILED : undefined;
    record.span(SPAN_IDEMPOTENCY_EXECUTE, event, { ...attributes, [ATTR_IDEMPOTENCY_KEY]: event.key }, failed);
  },
  "idempotency.not_recorded"(event, record) {
    const attributes = { ...idempotency(event, "not_recorded"), [ATTR_ERROR_TYPE]: event.reason };
    record.count(METRIC_IDEMPOTENCY_OUTCOMES, attributes);
    record.time(METRIC_IDEMPOTENCY_HANDLER_DURATION, handlerMs(event), attributes);
    record.store(
      "idempotency",
      "complete",
      event.storeMs,
      event.reason === "store_error" ? STORE_UNAVAILABLE : undefined,
    );
    record.span(SPAN_IDEMPOTENCY_EXECUTE, event, { ...attributes, [ATTR_IDEMPOTENCY_KEY]: event.key }, event.reason);
  },
  "idempotency.store_unavailable"(event, record) {
    const attributes = {
      ...idempotency(event, STORE_UNAVAILABLE),
      [ATTR_STORE_OPERATION]: event.operation,
      [ATTR_IDEMPOTENCY_FAIL_OPEN]: event.failOpen,
      [ATTR_ERROR_TYPE]: STORE_UNAVAILABLE,
    };
    record.count(METRIC_IDEMPOTENCY_OUTCOMES, attributes);
    // A failed complete or release is timed by the not_recorded or released event before it.
    if (event.operation !== "claim") return;
    record.store("idempotency", "claim", event.storeMs, STORE_UNAVAILABLE);
    record.span(
      SPAN_IDEMPOTENCY_CLAIM,
      { durationMs: event.storeMs },
      { ...attributes, [ATTR_IDEMPOTENCY_KEY]: event.key },
      STORE_UNAVAILABLE,
    );
  },

  "client.attempt"(event, record) {
    const error = attemptError(event);
    const attributes = {
      ...outbound(event),
      [ATTR_CLIENT_OUTCOME]: event.outcome,
      ...status(event.status),
      ...errorType(error),
    };
    record.count(METRIC_CLIENT_ATTEMPTS, attributes);
    record.time(METRIC_CLIENT_ATTEMPT_DURATION, event.durationMs, attributes);
    const key = event.key === undefined ? {} : { [ATTR_IDEMPOTENCY_KEY]: event.key };
    // INTERNAL, like every span here, though it stands for a request to a server: drawn after
    // the fact, its context never reaches that server, and the semantic conventions' CLIENT
    // span needs `url.full`, which events never carry (a path or query may hold a token). With
    // HTTP instrumentation (undici's, for fetch), that instrumentation's CLIENT span is the one
    // that carries the `traceparent`; a second CLIENT span per attempt would count each call
    // twice in service graphs. The semantic conventions' attributes still say where it went.
    record.span(
      SPAN_CLIENT_ATTEMPT,
      event,
      {
        ...attributes,
        ...server(event.origin),
        ...resendCount(event.attempt),
        [ATTR_CLIENT_ATTEMPT]: event.attempt,
        [ATTR_CLIENT_PROBE]: event.probe,
        ...key,
      },
      error,
    );
  },
  "client.retry"(event, record) {
    const attributes = {
      ...outbound(event),
      ...status(event.status),
      [ATTR_CLIENT_RETRY_AFTER]: event.retryAfterMs !== undefined,
      // False from an older client, which does not send it.
      [ATTR_CLIENT_STALE_CONNECTION]: event.staleConnection === true,
    };
    record.count(METRIC_CLIENT_RETRIES, attributes);
    record.time(METRIC_CLIENT_RETRY_DELAY, event.delayMs, attributes);
  },
  "client.give_up"(event, record) {
    record.count(METRIC_CLIENT_GIVE_UPS, {
      ...outbound(event),
      [ATTR_CLIENT_GIVE_UP_REASON]: event.reason,
      ...status(event.status),
    });
  },
  "client.breaker"(event, record) {
    record.count(METRIC_CLIENT_BREAKER_TRANSITIONS, {
      [ATTR_CLIENT_ORIGIN]: event.origin,
      [ATTR_CLIENT_BREAKER_FROM]: event.from,
      [ATTR_CLIENT_BREAKER_STATE]: event.to,
    });
    // The breakers gauge is not moved here: it reads the registries at collection (breakers.ts).
  },
  "client.created"(event, record) {
    record.watchBreakers(event.breakers);
  },

  "oauth.token.requested"(event, record) {
    const issued = event.outcome === "issued";
    const outcome = issued ? event.outcome : knownOAuthCode(event.outcome);
    const attributes = {
      [ATTR_OAUTH_GRANT]: event.grant,
      [ATTR_OAUTH_OUTCOME]: outcome,
      ...errorType(issued ? undefined : outcome),
    };
    record.count(METRIC_OAUTH_TOKEN_REQUESTS, attributes);
    record.time(METRIC_OAUTH_TOKEN_REQUEST_DURATION, event.durationMs, attributes);
    // `error.type` bounded as on the metrics; the status message is the server's own code.
    record.span(SPAN_OAUTH_TOKEN, event, attributes, issued ? undefined : outcome, event.outcome);
  },
  "oauth.token.answered_late"(event, record) {
    const issued = event.outcome === "issued";
    const outcome = issued ? event.outcome : knownOAuthCode(event.outcome);
    record.count(METRIC_OAUTH_TOKEN_LATE_ANSWERS, {
      [ATTR_OAUTH_GRANT]: event.grant,
      [ATTR_OAUTH_OUTCOME]: outcome,
      ...errorType(issued ? undefined : outcome),
    });
  },
  "oauth.token.shared"(event, record) {
    record.count(METRIC_OAUTH_TOKEN_REUSES, { [ATTR_OAUTH_GRANT]: event.grant, [ATTR_OAUTH_OUTCOME]: "shared" });
  },
  "oauth.token.stale_used"(event, record) {
    record.count(METRIC_OAUTH_TOKEN_REUSES, {
      [ATTR_OAUTH_GRANT]: event.grant,
      [ATTR_OAUTH_OUTCOME]: "stale_used",
      // The store's outage by its name; a server's 503 by its `error` when that is a known one.
      [ATTR_ERROR_TYPE]: event.code === STORE_UNAVAILABLE ? event.code : knownOAuthCode(event.code),
    });
  },
  "oauth.discovery.failed"(event, record) {
    // A discovery the issuer refused with a JSON `error` is counted by the code it chose.
    record.count(METRIC_OAUTH_DISCOVERY_FAILURES, { [ATTR_ERROR_TYPE]: knownOAuthCode(event.code) });
  },
  "oauth.login.started"(_event, record) {
    record.count(METRIC_OAUTH_LOGINS, { [ATTR_OAUTH_OUTCOME]: "started" });
  },
  "oauth.login.completed"(_event, record) {
    record.count(METRIC_OAUTH_LOGINS, { [ATTR_OAUTH_OUTCOME]: "completed" });
  },
  "oauth.login.refused"(event, record) {
    record.count(METRIC_OAUTH_LOGINS, {
      [ATTR_OAUTH_OUTCOME]: "refused",
      [ATTR_ERROR_TYPE]: knownOAuthCode(event.code),
    });
  },
  "oauth.login.tokens_revoked"(event, record) {
    record.count(METRIC_OAUTH_LOGIN_REVOCATIONS, {
      [ATTR_OAUTH_REASON]: event.reason,
      [ATTR_OAUTH_OUTCOME]: event.revoked ? "revoked" : "not_revoked",
      ...revocationError(event.error),
    });
  },
  "oauth.session.ended"(event, record) {
    // `error`: the store failed the delete (the session ended in this process all the same).
    record.count(METRIC_OAUTH_SESSIONS_ENDED, { [ATTR_OAUTH_OUTCOME]: event.reason, ...errorType(event.error) });
  },
  "oauth.session.write_failed"(event, record) {
    record.count(METRIC_OAUTH_SESSION_WRITE_FAILURES, { [ATTR_ERROR_TYPE]: event.code });
  },
  "oauth.session.revoked"(event, record) {
    // `revoked: false`: deleted here, nothing revoked at the server (no revocation endpoint, it
    // revokes neither token type, or the request failed: `error`).
    record.count(METRIC_OAUTH_SESSIONS_ENDED, {
      [ATTR_OAUTH_OUTCOME]: event.revoked ? "revoked" : "deleted",
      ...revocationError(event.error),
    });
  },
};
