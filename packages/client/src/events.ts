/**
 * Every decision the client makes is an event: each attempt, each wait before a retry, each
 * give-up and each breaker transition. Events name the origin, never the path or query (which
 * may hold a token), and never carry headers or bodies.
 */

import type { BreakerState } from "./breaker.js";
import type { BreakerRegistry } from "./origins.js";

/** What every event about one logical request carries. */
export interface ClientEventBase {
  /** `https://api.example.com`: the origin only. */
  origin: string;
  /** The request's method as fetch sends it: DELETE, GET, HEAD, OPTIONS, POST and PUT upper-cased, any other as given. */
  method: string;
  /** The request's `Idempotency-Key` (the client's or the caller's), when it has one. */
  key: string | undefined;
}

/** How an attempt ended. */
export type AttemptOutcome = "response" | "network_error" | "timeout" | "aborted";

/** An attempt ended: a response, a network error, a timeout or an abort. */
export interface AttemptEvent extends ClientEventBase {
  /** What happened. */
  type: "client.attempt";
  /** 1 for the first attempt. */
  attempt: number;
  /** How the attempt ended. */
  outcome: AttemptOutcome;
  /** The response status, for `outcome: "response"`. */
  status: number | undefined;
  /** For a network error: the platform's error code (`ECONNRESET`, `UND_ERR_SOCKET`) or the error's name. */
  error: string | undefined;
  /** True when this attempt was the half-open circuit's probe. */
  probe: boolean;
  /** How long the attempt took, in milliseconds. */
  durationMs: number;
}

/** A retry is coming: the client waits `delayMs`, then makes attempt `attempt + 1`. */
export interface RetryEvent extends ClientEventBase {
  /** What happened. */
  type: "client.retry";
  /** The attempt that failed; the next one is `attempt + 1`. */
  attempt: number;
  /** What the client waits before the next attempt: the backoff, raised to `Retry-After` when the server sent a longer one. */
  delayMs: number;
  /** The backoff alone, before `Retry-After` was applied. */
  backoffMs: number;
  /** The server's `Retry-After`, in milliseconds, when it sent a valid one. */
  retryAfterMs: number | undefined;
  /** The failed attempt's status, when it got a response. */
  status: number | undefined;
  /** The origin's retry budget after paying for this retry, when budgets are on. */
  budgetTokens: number | undefined;
  /**
   * True when the failed attempt was taken for a stale connection: a kept-alive connection the
   * server closed as the request went out on it (a reset, or a close before any answer). Its
   * retry goes at once (`delayMs` 0), is not paid from the budget, and the breaker was not told
   * of the failure. One attempt per call at most.
   */
  staleConnection: boolean;
}

/**
 * Why the client did not retry an outcome its `retryOn` wanted retried. The first five end in a
 * typed error; `not_idempotent` (an unsafe method without an `Idempotency-Key`),
 * `body_not_replayable` (a one-shot stream body) and `redirected` (a request only its key made
 * safe to send again, a POST or a PATCH, answered through a redirect: the server had answered
 * it) hand the outcome back as it is.
 */
export type GiveUpReason =
  | "attempts"
  | "budget"
  | "deadline"
  | "retry_after_too_long"
  | "circuit_open"
  | "not_idempotent"
  | "body_not_replayable"
  | "redirected";

/** The client stopped: an outcome worth retrying was not retried, for `reason`. */
export interface GiveUpEvent extends ClientEventBase {
  /** What happened. */
  type: "client.give_up";
  /** Why the outcome was not retried. */
  reason: GiveUpReason;
  /** Attempts made (0 when the circuit refused the first one). */
  attempts: number;
  /** The last response's status, when the last attempt got one. */
  status: number | undefined;
}

/** An origin's circuit breaker changed state. */
export interface BreakerTransitionEvent {
  /** What happened. */
  type: "client.breaker";
  /** The origin whose breaker it is. */
  origin: string;
  /** The state before. */
  from: BreakerState;
  /** The state now. */
  to: BreakerState;
}

/**
 * A client was made (emitted once, by `createClient`, before it returns). It hands over the
 * client's breaker registry, so a hook can read every breaker's state when it needs it:
 * `@interlock/opentelemetry` reads it at each metric collection. Transitions alone cannot
 * say which breakers exist: the client drops the least recently used origin's breaker past
 * `maxOrigins` without a transition.
 */
export interface ClientCreatedEvent {
  /** What happened. */
  type: "client.created";
  /** The client's `client.breakers`: live, not a copy. */
  breakers: BreakerRegistry;
}

/** Every event the client emits; tell them apart by `type`. */
export type ClientEvent = AttemptEvent | RetryEvent | GiveUpEvent | BreakerTransitionEvent | ClientCreatedEvent;
