/**
 * Every decision core makes is an event. Users hook them for logs, metrics and traces;
 * events never carry a secret, a full signature or a body.
 */

import type { WebhookErrorCode } from "./errors.js";

/**
 * What every event may carry about the request it reports: its correlation id, the trace-id of
 * a valid W3C `traceparent` header or else a valid `x-request-id` (1 to 200 visible ASCII
 * characters). Absent when the request sent neither, or when the event is not about a request.
 */
export interface CorrelatedEvent {
  correlationId?: string;
}

export interface WebhookVerifiedEvent extends CorrelatedEvent {
  type: "webhook.verified";
  scheme: string;
  /** The delivery's id, when the scheme carries one. */
  id: string | undefined;
  idCovered: boolean;
  /** Time spent verifying, in milliseconds. */
  durationMs: number;
}

export interface WebhookRejectedEvent extends CorrelatedEvent {
  type: "webhook.rejected";
  scheme: string;
  /** The id the delivery claimed (unverified), when it sent one in a header. */
  id: string | undefined;
  code: WebhookErrorCode;
  durationMs: number;
}

/** A verified delivery the store says was already processed, or is being processed now. */
export interface WebhookDuplicateEvent extends CorrelatedEvent {
  type: "webhook.duplicate";
  scheme: string;
  id: string | undefined;
  /** "completed": processed before, the handler is not run; "in_flight": another worker has it. */
  state: "completed" | "in_flight";
  /** Time the store's `claim` took, in milliseconds. */
  storeMs: number;
}

/** The handler ran to completion for a delivery. */
export interface WebhookProcessedEvent extends CorrelatedEvent {
  type: "webhook.processed";
  scheme: string;
  id: string | undefined;
  /** From the won claim to the recorded outcome, in milliseconds: the handler, then `storeMs`. */
  durationMs: number;
  /** False when the outcome could not be recorded (store down, lease lost): a redelivery may run again. */
  recorded: boolean;
  /** Time the store's `claim` of this delivery took, in milliseconds (before `durationMs`). */
  claimMs: number;
  /** Time the store's `complete` took, in milliseconds (the end of `durationMs`). */
  storeMs: number;
}

/** The handler threw: the claim is released so the provider's redelivery is processed. */
export interface WebhookHandlerFailedEvent extends CorrelatedEvent {
  type: "webhook.handler_failed";
  scheme: string;
  id: string | undefined;
  /** From the won claim to the release, in milliseconds: the handler, then `storeMs`. */
  durationMs: number;
  /** False when the release itself failed; the lease then expires on its own. */
  released: boolean;
  /** Time the store's `claim` of this delivery took, in milliseconds (before `durationMs`). */
  claimMs: number;
  /** Time the store's `release` took, in milliseconds (the end of `durationMs`). */
  storeMs: number;
}

/** A verified delivery could not be claimed: the store failed, so it is answered 503 and the provider retries. */
export interface WebhookStoreDownEvent extends CorrelatedEvent {
  type: "webhook.store_down";
  scheme: string;
  id: string | undefined;
  operation: "claim";
  /** Time until the store failed, in milliseconds. */
  storeMs: number;
}

export type WebhookEvent =
  | WebhookVerifiedEvent
  | WebhookRejectedEvent
  | WebhookDuplicateEvent
  | WebhookProcessedEvent
  | WebhookHandlerFailedEvent
  | WebhookStoreDownEvent;

/**
 * Where an idempotent request stands; `key` is the client's key, never the principal.
 * `storeMs` is the time the store operation behind the event took, in milliseconds: the
 * `claim` (including any wait for an in-flight holder) for first, replayed, in_flight and
 * mismatch; the `complete` for completed and not_recorded; the `release` for released; the
 * failed operation for store_down. `durationMs` runs from the won claim to the outcome, so
 * it ends with `storeMs`: the handler took `durationMs - storeMs`.
 */
export interface IdempotencyEventBase extends CorrelatedEvent {
  method: string;
  route: string;
  key: string;
}

export type IdempotencyEvent = IdempotencyEventBase &
  (
    | { type: "idempotency.first"; storeMs: number }
    | { type: "idempotency.replayed"; status: number; storeMs: number }
    | { type: "idempotency.in_flight"; waited: boolean; storeMs: number }
    | { type: "idempotency.mismatch"; storeMs: number }
    | { type: "idempotency.completed"; status: number; durationMs: number; storeMs: number }
    | {
        type: "idempotency.released";
        /** Why nothing was stored: the handler threw, its status is not cached, or the body could not be kept. */
        reason: "error" | "status" | "streamed" | "too_large";
        status: number | undefined;
        durationMs: number;
        storeMs: number;
      }
    /** `complete` found another owner (the lease ran out) or the store failed: a retry may run again. */
    | { type: "idempotency.not_recorded"; reason: "lease_lost" | "store_error"; durationMs: number; storeMs: number }
    | {
        type: "idempotency.store_down";
        operation: "claim" | "complete" | "release";
        failOpen: boolean;
        storeMs: number;
      }
  );

/** A request refused before any key was claimed (missing or malformed key, unusable body). */
export interface IdempotencyRejectedEvent extends CorrelatedEvent {
  type: "idempotency.rejected";
  method: string;
  route: string;
  code: "idempotency_key_missing" | "idempotency_key_invalid" | "body_too_large" | "body_not_raw";
}

export type InterlockEvent = WebhookEvent | IdempotencyEvent | IdempotencyRejectedEvent;

export type EventHook<E extends InterlockEvent = InterlockEvent> = (event: E) => void;

/**
 * Calls the user's hook. A hook that throws must not change the outcome it is told about
 * (a verified delivery refused because a logger failed), so its error is dropped.
 */
export function emit<E extends { type: string }>(hook: ((event: E) => void) | undefined, event: E): void {
  if (hook === undefined) return;
  try {
    hook(event);
  } catch {
    // Deliberately ignored: see above.
  }
}

/** A monotonic clock in milliseconds, where the runtime has one. */
export const monotonicNow: () => number =
  typeof globalThis.performance?.now === "function" ? () => globalThis.performance.now() : () => Date.now();
