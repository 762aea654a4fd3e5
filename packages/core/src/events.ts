/**
 * Every decision core makes is an event. Users hook them for logs, metrics and traces;
 * events never carry a secret, a full signature or a body.
 */

import type { WebhookErrorCode } from "./errors.js";

export interface WebhookVerifiedEvent {
  type: "webhook.verified";
  scheme: string;
  /** The delivery's id, when the scheme carries one. */
  id: string | undefined;
  idCovered: boolean;
  /** Time spent verifying, in milliseconds. */
  durationMs: number;
}

export interface WebhookRejectedEvent {
  type: "webhook.rejected";
  scheme: string;
  /** The id the delivery claimed (unverified), when it sent one in a header. */
  id: string | undefined;
  code: WebhookErrorCode;
  durationMs: number;
}

/** A verified delivery the store says was already processed, or is being processed now. */
export interface WebhookDuplicateEvent {
  type: "webhook.duplicate";
  scheme: string;
  id: string | undefined;
  /** "completed": processed before, the handler is not run; "in_flight": another worker has it. */
  state: "completed" | "in_flight";
}

/** The handler ran to completion for a delivery. */
export interface WebhookProcessedEvent {
  type: "webhook.processed";
  scheme: string;
  id: string | undefined;
  durationMs: number;
  /** False when the outcome could not be recorded (store down, lease lost): a redelivery may run again. */
  recorded: boolean;
}

/** The handler threw: the claim is released so the provider's redelivery is processed. */
export interface WebhookHandlerFailedEvent {
  type: "webhook.handler_failed";
  scheme: string;
  id: string | undefined;
  durationMs: number;
  /** False when the release itself failed; the lease then expires on its own. */
  released: boolean;
}

export type WebhookEvent =
  | WebhookVerifiedEvent
  | WebhookRejectedEvent
  | WebhookDuplicateEvent
  | WebhookProcessedEvent
  | WebhookHandlerFailedEvent;

/** Where an idempotent request stands; `key` is the client's key, never the principal. */
export interface IdempotencyEventBase {
  method: string;
  route: string;
  key: string;
}

export type IdempotencyEvent = IdempotencyEventBase &
  (
    | { type: "idempotency.first" }
    | { type: "idempotency.replayed"; status: number }
    | { type: "idempotency.in_flight"; waited: boolean }
    | { type: "idempotency.mismatch" }
    | { type: "idempotency.completed"; status: number; durationMs: number }
    | {
        type: "idempotency.released";
        /** Why nothing was stored: the handler threw, its status is not cached, or the body could not be kept. */
        reason: "error" | "status" | "streamed" | "too_large";
        status: number | undefined;
        durationMs: number;
      }
    /** `complete` found another owner (the lease ran out) or the store failed: a retry may run again. */
    | { type: "idempotency.not_recorded"; reason: "lease_lost" | "store_error"; durationMs: number }
    | { type: "idempotency.store_down"; operation: "claim" | "complete" | "release"; failOpen: boolean }
  );

/** A request refused before any key was claimed (missing or malformed key, unusable body). */
export interface IdempotencyRejectedEvent {
  type: "idempotency.rejected";
  method: string;
  route: string;
  code: "idempotency_key_missing" | "idempotency_key_invalid" | "body_too_large" | "body_not_raw";
}

export type InterlockEvent = WebhookEvent | IdempotencyEvent | IdempotencyRejectedEvent;

export type EventHook<E extends InterlockEvent = InterlockEvent> = (event: E) => void;

/**
 * Calls the user's hook. A hook that throws must not change the outcome it is told about
 * (a verified delivery refused because a logger failed), so its error is dropped. Any
 * package's event union can go through it (`@interlock/client` has its own).
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
