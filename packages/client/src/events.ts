/**
 * Every decision the client makes is an event: each attempt, each wait before a retry, each
 * give-up and each breaker transition. Events name the origin, never the path or query (which
 * may hold a token), and never carry headers or bodies.
 */

import type { BreakerState } from "./breaker.js";

/** What every event about one logical request carries. */
export interface ClientEventBase {
  /** `https://api.example.com`: the origin only. */
  origin: string;
  method: string;
  /** The request's `Idempotency-Key` (the client's or the caller's), when it has one. */
  key: string | undefined;
}

/** How an attempt ended. */
export type AttemptOutcome = "response" | "network_error" | "timeout" | "aborted";

export interface AttemptEvent extends ClientEventBase {
  type: "client.attempt";
  /** 1 for the first attempt. */
  attempt: number;
  outcome: AttemptOutcome;
  /** The response status, for `outcome: "response"`. */
  status: number | undefined;
  /** For a network error: the platform's error code (`ECONNRESET`, `UND_ERR_SOCKET`) or the error's name. */
  error: string | undefined;
  /** True when this attempt was the half-open circuit's probe. */
  probe: boolean;
  durationMs: number;
}

export interface RetryEvent extends ClientEventBase {
  type: "client.retry";
  /** The attempt that failed; the next one is `attempt + 1`. */
  attempt: number;
  /** What the client waits before the next attempt: the backoff, raised to `Retry-After` when the server sent a longer one. */
  delayMs: number;
  backoffMs: number;
  retryAfterMs: number | undefined;
  status: number | undefined;
  /** The origin's retry budget after paying for this retry, when budgets are on. */
  budgetTokens: number | undefined;
}

/**
 * Why the client did not retry an outcome its `retryOn` wanted retried. The first five end in a
 * typed error; `not_idempotent` (an unsafe method without an `Idempotency-Key`) and
 * `body_not_replayable` (a one-shot stream body) hand the outcome back as it is.
 */
export type GiveUpReason =
  | "attempts"
  | "budget"
  | "deadline"
  | "retry_after_too_long"
  | "circuit_open"
  | "not_idempotent"
  | "body_not_replayable";

export interface GiveUpEvent extends ClientEventBase {
  type: "client.give_up";
  reason: GiveUpReason;
  /** Attempts made (0 when the circuit refused the first one). */
  attempts: number;
  /** The last response's status, when the last attempt got one. */
  status: number | undefined;
}

export interface BreakerTransitionEvent {
  type: "client.breaker";
  origin: string;
  from: BreakerState;
  to: BreakerState;
}

export type ClientEvent = AttemptEvent | RetryEvent | GiveUpEvent | BreakerTransitionEvent;
