/**
 * The metric instruments, named and described once. Durations are histograms in seconds, as
 * the semantic conventions ask, with buckets fine enough for a 50 µs verification and wide
 * enough for a handler that runs into its lease.
 */

import type { Counter, Histogram, Meter } from "@opentelemetry/api";
import { type BreakerGauge, observeBreakers } from "./breakers.js";

/** Counter: webhook deliveries verified or rejected, by scheme, outcome and rejection code. */
export const METRIC_WEBHOOK_VERIFICATIONS = "interlock.webhook.verifications";
/** Histogram (seconds): time spent verifying a delivery's signature. */
export const METRIC_WEBHOOK_VERIFICATION_DURATION = "interlock.webhook.verification.duration";
/** Counter: webhook deliveries by what became of them (processed, duplicate, in flight, …). */
export const METRIC_WEBHOOK_DELIVERIES = "interlock.webhook.deliveries";
/** Histogram (seconds): time a webhook handler ran, store time excluded. */
export const METRIC_WEBHOOK_HANDLER_DURATION = "interlock.webhook.handler.duration";
/** Counter: idempotency engine decisions, by method, route and outcome. */
export const METRIC_IDEMPOTENCY_OUTCOMES = "interlock.idempotency.outcomes";
/** Histogram (seconds): time an idempotent request's handler ran, store time excluded. */
export const METRIC_IDEMPOTENCY_HANDLER_DURATION = "interlock.idempotency.handler.duration";
/** Histogram (seconds): time a store operation (claim, complete, release) took. */
export const METRIC_STORE_DURATION = "interlock.store.duration";

/** Counter: outbound attempts, by origin, method, outcome and status. */
export const METRIC_CLIENT_ATTEMPTS = "interlock.client.attempts";
/** Histogram (seconds): time an outbound attempt took, to its response headers or its failure. */
export const METRIC_CLIENT_ATTEMPT_DURATION = "interlock.client.attempt.duration";
/** Counter: outbound retries scheduled, by origin, method, status and whether the server sent Retry-After. */
export const METRIC_CLIENT_RETRIES = "interlock.client.retries";
/** Histogram (seconds): the wait before each retry (backoff, raised to Retry-After). */
export const METRIC_CLIENT_RETRY_DELAY = "interlock.client.retry.delay";
/** Counter: outbound calls the client stopped retrying, by origin, method and reason. */
export const METRIC_CLIENT_GIVE_UPS = "interlock.client.give_ups";
/** Counter: circuit breaker transitions, by origin, the state left and the state entered. */
export const METRIC_CLIENT_BREAKER_TRANSITIONS = "interlock.client.breaker.transitions";
/**
 * Observable UpDownCounter: circuit breakers not closed, by origin and state (`open`,
 * `half_open`), read from the clients' breaker registries at each collection.
 */
export const METRIC_CLIENT_BREAKERS = "interlock.client.breakers";
/** Counter: OAuth token requests, by grant and outcome. */
export const METRIC_OAUTH_TOKEN_REQUESTS = "interlock.oauth.token.requests";
/** Histogram (seconds): time an OAuth token request took. */
export const METRIC_OAUTH_TOKEN_REQUEST_DURATION = "interlock.oauth.token.request.duration";
/** Counter: answers to token requests sent once that had timed out (refresh grants, code exchanges), still waited for, by grant and outcome. */
export const METRIC_OAUTH_TOKEN_LATE_ANSWERS = "interlock.oauth.token.late_answers";
/** Counter: tokens used without a request of this process's own: shared from another's, or stale while the server failed. */
export const METRIC_OAUTH_TOKEN_REUSES = "interlock.oauth.token.reuses";
/** Counter: failed discoveries of the authorization server's metadata, by the error's code. */
export const METRIC_OAUTH_DISCOVERY_FAILURES = "interlock.oauth.discovery.failures";
/** Counter: logins, by outcome (`started`, `completed`, `refused`) and refusal code. */
export const METRIC_OAUTH_LOGINS = "interlock.oauth.logins";
/**
 * Counter: grants nothing will hold, revoked at the server, by reason (`late`, `refused`: a login's;
 * `session_ended`, `refresh_refused`: a session refresh's) and outcome (`revoked`, `not_revoked`).
 */
export const METRIC_OAUTH_LOGIN_REVOCATIONS = "interlock.oauth.login.revocations";
/**
 * Counter: sessions whose tokens were deleted, by reason (`revoked`, `deleted`, `no_session`, `expired`,
 * `refresh_rejected`, `token_rejected`, `identity_changed`, `refresh_answer_refused`), and `error.type`
 * when revoking at the server failed, or (`revoked`) the OAuth error the server answered in place
 * of a revocation that still counts (`invalid_token`: a token no longer valid there), or when the
 * store failed the delete of a session that ended (`store_unavailable`).
 */
export const METRIC_OAUTH_SESSIONS_ENDED = "interlock.oauth.sessions.ended";
/** Counter: refreshed tokens the store could not take (kept in memory until written back), by the error's code. */
export const METRIC_OAUTH_SESSION_WRITE_FAILURES = "interlock.oauth.session.write_failures";

/** Bucket boundaries (seconds) every duration histogram advises. */
export const DURATION_BUCKETS: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

const COUNTERS = {
  [METRIC_WEBHOOK_VERIFICATIONS]: {
    unit: "{verification}",
    description: "Webhook deliveries verified or rejected, by scheme, outcome and rejection code (error.type).",
  },
  [METRIC_WEBHOOK_DELIVERIES]: {
    unit: "{delivery}",
    description:
      "Webhook deliveries by what became of them: rejected, duplicate, in_flight, store_unavailable, processed or handler_failed.",
  },
  [METRIC_IDEMPOTENCY_OUTCOMES]: {
    unit: "{outcome}",
    description:
      "Idempotency engine decisions, by method, route and outcome (a request that runs is first, then completed, released or not_recorded).",
  },
  [METRIC_CLIENT_ATTEMPTS]: {
    unit: "{attempt}",
    description:
      "Outbound attempts, by origin, method, outcome (response, network_error, timeout, aborted) and status.",
  },
  [METRIC_CLIENT_RETRIES]: {
    unit: "{retry}",
    description:
      "Outbound retries scheduled, by origin, method, the status retried and whether the server sent Retry-After.",
  },
  [METRIC_CLIENT_GIVE_UPS]: {
    unit: "{call}",
    description: "Outbound calls whose failure the client did not retry further, by origin, method and reason.",
  },
  [METRIC_CLIENT_BREAKER_TRANSITIONS]: {
    unit: "{transition}",
    description: "Circuit breaker transitions, by origin, the state left and the state entered.",
  },
  [METRIC_OAUTH_TOKEN_REQUESTS]: {
    unit: "{request}",
    description: "OAuth token requests, by grant and outcome (issued, or the error code).",
  },
  [METRIC_OAUTH_TOKEN_LATE_ANSWERS]: {
    unit: "{answer}",
    description:
      "Answers to token requests sent once that had timed out, still waited for, by grant: issued (a refresh's new tokens were kept, a code exchange's revoked), or the error code (server_unavailable: none came in time).",
  },
  [METRIC_OAUTH_TOKEN_REUSES]: {
    unit: "{token}",
    description:
      "Tokens used without this process's own request: shared (another process requested it) or stale_used (the server failed, the unexpired token was kept).",
  },
  [METRIC_OAUTH_DISCOVERY_FAILURES]: {
    unit: "{discovery}",
    description:
      "Failed discoveries of the authorization server's metadata, by the error's code (error.type); the next call tries again.",
  },
  [METRIC_OAUTH_LOGINS]: {
    unit: "{login}",
    description: "Logins by outcome: started, completed or refused (with the refusal code as error.type).",
  },
  [METRIC_OAUTH_LOGIN_REVOCATIONS]: {
    unit: "{grant}",
    description:
      "Tokens the server issued that nothing will hold, revoked so that no grant is left behind: by reason (late: a code exchange's answer came after its timeout; refused: the login refused the answer; session_ended: a refresh answered after its session was logged out or ended; refresh_refused: a refresh answer refused that ended its session) and outcome (revoked, or not_revoked: no revocation endpoint, or the server revokes neither token type); error.type when revoking failed, or, with revoked, the error the server answered for the access token once it had revoked the refresh token (invalid_token).",
  },
  [METRIC_OAUTH_SESSIONS_ENDED]: {
    unit: "{session}",
    description:
      "Sessions whose tokens were deleted, by reason: revoked, deleted (not revoked at the server), no_session, expired, refresh_rejected, token_rejected, identity_changed or refresh_answer_refused; error.type when revoking at the server failed, or, with revoked, the error the server answered for the access token once it had revoked the refresh token (invalid_token).",
  },
  [METRIC_OAUTH_SESSION_WRITE_FAILURES]: {
    unit: "{write}",
    description:
      "Refreshed session tokens the store could not take, by the error's code (error.type): kept in the process's memory and written back on the session's next call; lost if the process stops first.",
  },
} as const;

const BREAKERS = {
  unit: "{breaker}",
  description:
    "Circuit breakers not closed, by origin and state (open, half_open), read from the clients' breaker registries at collection.",
} as const;

const HISTOGRAMS = {
  [METRIC_WEBHOOK_VERIFICATION_DURATION]: { description: "Time spent verifying a webhook delivery's signature." },
  [METRIC_WEBHOOK_HANDLER_DURATION]: {
    description: "Time a webhook handler ran, from the won claim to the handler's outcome (store time excluded).",
  },
  [METRIC_IDEMPOTENCY_HANDLER_DURATION]: {
    description: "Time an idempotent request's handler ran, from the won claim to its response (store time excluded).",
  },
  [METRIC_STORE_DURATION]: {
    description: "Time a store operation (claim, complete, release) took, by component and operation.",
  },
  [METRIC_CLIENT_ATTEMPT_DURATION]: {
    description:
      "Time an outbound attempt took, to its response headers or its failure, by origin, method, outcome and status.",
  },
  [METRIC_CLIENT_RETRY_DELAY]: {
    description: "The wait before each outbound retry: the backoff, raised to the server's Retry-After.",
  },
  [METRIC_OAUTH_TOKEN_REQUEST_DURATION]: {
    description: "Time an OAuth token request took, retries included, by grant and outcome.",
  },
} as const;

export type CounterName = keyof typeof COUNTERS;
export type HistogramName = keyof typeof HISTOGRAMS;

export interface Instruments {
  counters: Record<CounterName, Counter>;
  histograms: Record<HistogramName, Histogram>;
}

/** Makes every instrument; the breakers gauge reads `breakers` whenever the SDK collects. */
export function createInstruments(meter: Meter, breakers: BreakerGauge): Instruments {
  const counters = {} as Record<CounterName, Counter>;
  for (const [name, options] of Object.entries(COUNTERS) as Array<[CounterName, (typeof COUNTERS)[CounterName]]>) {
    counters[name] = meter.createCounter(name, options);
  }
  observeBreakers(meter, breakers, () => meter.createObservableUpDownCounter(METRIC_CLIENT_BREAKERS, BREAKERS));
  const histograms = {} as Record<HistogramName, Histogram>;
  for (const [name, { description }] of Object.entries(HISTOGRAMS) as Array<[HistogramName, { description: string }]>) {
    histograms[name] = meter.createHistogram(name, {
      unit: "s",
      description,
      advice: { explicitBucketBoundaries: [...DURATION_BUCKETS] },
    });
  }
  return { counters, histograms };
}
