/**
 * Attribute names, in the OpenTelemetry semantic-conventions style: Interlock's own under
 * `interlock.*`, and the registry's where one fits (`error.type`, `http.*`). Metrics carry only
 * the low-cardinality ones; ids, keys and correlation ids go on spans.
 */

/** The webhook scheme (`stripe`, `github`, `standard-webhooks`, …). */
export const ATTR_WEBHOOK_SCHEME = "interlock.webhook.scheme";
/**
 * The delivery id a verified delivery carries (spans only): one the signature does not cover
 * only when it is 1 to 200 visible ASCII characters, as core's events carry it.
 */
export const ATTR_WEBHOOK_ID = "interlock.webhook.id";
/** Whether the scheme's signature covers the delivery id (spans only). */
export const ATTR_WEBHOOK_ID_COVERED = "interlock.webhook.id_covered";
/**
 * What became of a delivery: `verified` or `rejected` (verification); `claimed`, `duplicate`,
 * `in_flight` or `store_unavailable` (claim); `processed` or `handler_failed` (handler).
 */
export const ATTR_WEBHOOK_OUTCOME = "interlock.webhook.outcome";
/** On `processed`: whether the store recorded the delivery (false: a redelivery may run again). */
export const ATTR_WEBHOOK_RECORDED = "interlock.webhook.recorded";
/** On `handler_failed`: whether the claim was released for the provider's retry. */
export const ATTR_WEBHOOK_RELEASED = "interlock.webhook.released";

/**
 * What the idempotency engine decided: `first`, `replayed`, `in_flight`, `mismatch`,
 * `completed`, `released`, `not_recorded`, `store_unavailable` or `rejected`.
 */
export const ATTR_IDEMPOTENCY_OUTCOME = "interlock.idempotency.outcome";
/**
 * On `released`: why nothing was stored (`error`, `status`, `streamed`, `too_large`), or
 * `rolled_back`: the caller's transaction the response was written in rolled back, which
 * corrects that request's `completed`.
 */
export const ATTR_IDEMPOTENCY_REASON = "interlock.idempotency.reason";
/** The client's Idempotency-Key (spans only; never the principal). */
export const ATTR_IDEMPOTENCY_KEY = "interlock.idempotency.key";
/** On `in_flight`: whether the engine waited for the holder before answering 409. */
export const ATTR_IDEMPOTENCY_WAITED = "interlock.idempotency.waited";
/** On `store_unavailable`: whether the request was let through unprotected (`failOpen`). */
export const ATTR_IDEMPOTENCY_FAIL_OPEN = "interlock.idempotency.fail_open";

/** The store operation timed: `claim`, `complete` or `release`. */
export const ATTR_STORE_OPERATION = "interlock.store.operation";
/** Which part of Interlock called the store: `webhook` or `idempotency`. */
export const ATTR_COMPONENT = "interlock.component";
/** The request's correlation id: a `traceparent`'s trace-id or an `x-request-id` (spans only). */
export const ATTR_CORRELATION_ID = "interlock.correlation_id";

/** The origin an outbound call went to (`https://api.example.com:8443`): scheme, host and port, never a path. */
export const ATTR_CLIENT_ORIGIN = "interlock.client.origin";
/** How an outbound attempt ended: `response`, `network_error`, `timeout` or `aborted`. */
export const ATTR_CLIENT_OUTCOME = "interlock.client.outcome";
/** The attempt's number, 1 for the first (spans only). */
export const ATTR_CLIENT_ATTEMPT = "interlock.client.attempt";
/** Whether the attempt was a half-open circuit's probe (spans only). */
export const ATTR_CLIENT_PROBE = "interlock.client.probe";
/** Why the client gave up: `attempts`, `budget`, `deadline`, `retry_after_too_long`, `circuit_open`, `not_idempotent`, `body_not_replayable`, `redirected`. */
export const ATTR_CLIENT_GIVE_UP_REASON = "interlock.client.give_up_reason";
/** Whether the server asked for the wait with `Retry-After`. */
export const ATTR_CLIENT_RETRY_AFTER = "interlock.client.retry_after";
/**
 * Whether the retried attempt was taken for a stale kept-alive connection (one the server closed
 * as the request went out on it): resent at once, unpaid by the retry budget, the breaker not told.
 */
export const ATTR_CLIENT_STALE_CONNECTION = "interlock.client.stale_connection";
/** A breaker's state: `closed`, `open` or `half_open` (the state entered, on transitions). */
export const ATTR_CLIENT_BREAKER_STATE = "interlock.client.breaker.state";
/** On a breaker transition: the state left. */
export const ATTR_CLIENT_BREAKER_FROM = "interlock.client.breaker.from";

/** The OAuth grant of a token request: `client_credentials`, `authorization_code` or `refresh_token`. */
export const ATTR_OAUTH_GRANT = "interlock.oauth.grant";
/** What became of an OAuth step: `issued` or an error code (token requests); `started`, `completed` or `refused` (logins); why a session ended. */
export const ATTR_OAUTH_OUTCOME = "interlock.oauth.outcome";
/** Why a login's tokens were revoked: `late` (its code exchange answered after its timeout) or `refused` (the login refused the answer). */
export const ATTR_OAUTH_REASON = "interlock.oauth.reason";

/** Semantic conventions: the class of error an operation ended with. */
export const ATTR_ERROR_TYPE = "error.type";
/** Semantic conventions: the HTTP method. */
export const ATTR_HTTP_REQUEST_METHOD = "http.request.method";
/** Semantic conventions: the matched route pattern (`/payments/:id`). */
export const ATTR_HTTP_ROUTE = "http.route";
/**
 * Semantic conventions: the HTTP status: stored, replayed or released (idempotency), the one a
 * webhook handler answered outside 2xx, or an outbound attempt's response.
 */
export const ATTR_HTTP_RESPONSE_STATUS_CODE = "http.response.status_code";
/** Semantic conventions: the resend's number of an outbound attempt after the first (attempt 2 is 1; spans only). */
export const ATTR_HTTP_REQUEST_RESEND_COUNT = "http.request.resend_count";
/** Semantic conventions: the host an outbound attempt went to, a name or an IP address (spans only). */
export const ATTR_SERVER_ADDRESS = "server.address";
/** Semantic conventions: the port an outbound attempt went to, the scheme's default when the origin names none (spans only). */
export const ATTR_SERVER_PORT = "server.port";
/** Semantic conventions: the scheme an outbound attempt used, `http` or `https` (spans only). */
export const ATTR_URL_SCHEME = "url.scheme";
