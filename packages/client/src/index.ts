/**
 * Resilient outbound HTTP: `createClient(options)` returns a fetch with per-attempt timeouts and
 * an overall deadline, safe retries (idempotent methods, or unsafe ones carrying the
 * `Idempotency-Key` it adds), jittered backoff under `Retry-After`, and a retry budget and
 * circuit breaker per origin.
 */

export { type Backoff, type BackoffStrategy, backoffDelay } from "./backoff.js";
export type {
  BreakerOptions,
  BreakerSnapshot,
  BreakerState,
  CircuitBreaker,
  ConsecutiveBreakerOptions,
  RatioBreakerOptions,
} from "./breaker.js";
export { DEFAULT_RETRY_BUDGET, type RetryBudget, type RetryBudgetOptions } from "./budget.js";
export { type Client, createClient } from "./client.js";
export {
  CircuitOpenError,
  ClientError,
  type ClientErrorCode,
  type ClientErrorDetails,
  RetryAfterTooLongError,
  RetryLimitError,
  type RetryLimitReason,
  TimeoutError,
} from "./errors.js";
export type {
  AttemptEvent,
  AttemptOutcome,
  BreakerTransitionEvent,
  ClientCreatedEvent,
  ClientEvent,
  ClientEventBase,
  GiveUpEvent,
  GiveUpReason,
  RetryEvent,
} from "./events.js";
export {
  type BackoffOptions,
  CLIENT_OPTION_NAMES,
  type ClientOptions,
  type FetchFunction,
  type IdempotencyKeyOptions,
  MAX_DELAY_MS,
} from "./options.js";
export type { BreakerRegistry, BreakersSnapshot, BudgetRegistry } from "./origins.js";
export {
  type AttemptResult,
  defaultIsFailure,
  defaultRetryOn,
  IDEMPOTENT_METHODS,
  isReplayableBody,
  RETRYABLE_STATUSES,
  type RetryContext,
} from "./policy.js";
export type { FetchInput, KeyRequest } from "./request.js";
export { parseHttpDate, parseRetryAfter } from "./retry-after.js";
export { platformSleep, type Sleep } from "./signals.js";
