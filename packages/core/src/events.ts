/**
 * Every decision core makes is an event. Users hook them for logs, metrics and traces;
 * events never carry a secret, a full signature or a body.
 */

import type { WebhookErrorCode } from "./errors.js";

/** A delivery whose signature matched. */
export interface WebhookVerifiedEvent {
  /** What happened. */
  type: "webhook.verified";
  /** The scheme's name (`stripe`, `github`, …). */
  scheme: string;
  /** The delivery's id, when the scheme carries one. */
  id: string | undefined;
  /** Whether `id` is covered by the signature (false for GitHub, Shopify and Linear ids). */
  idCovered: boolean;
  /** Time spent verifying, in milliseconds. */
  durationMs: number;
}

/** A delivery refused: a bad signature, a stale timestamp, a malformed header, … */
export interface WebhookRejectedEvent {
  /** What happened. */
  type: "webhook.rejected";
  /** The scheme's name. */
  scheme: string;
  /** The id the delivery claimed (unverified), when it sent one in a header. */
  id: string | undefined;
  /** Why it was refused: the error's `code`. */
  code: WebhookErrorCode;
  /** Time spent before refusing, in milliseconds. */
  durationMs: number;
}

/** A verified delivery the store says was already processed, or is being processed now. */
export interface WebhookDuplicateEvent {
  /** What happened. */
  type: "webhook.duplicate";
  /** The scheme's name. */
  scheme: string;
  /** The delivery's id, when it has one. */
  id: string | undefined;
  /** "completed": processed before, the handler is not run; "in_flight": another worker has it. */
  state: "completed" | "in_flight";
}

/** The handler ran to completion for a delivery. */
export interface WebhookProcessedEvent {
  /** What happened. */
  type: "webhook.processed";
  /** The scheme's name. */
  scheme: string;
  /** The delivery's id, when it has one. */
  id: string | undefined;
  /** Time the handler took, in milliseconds. */
  durationMs: number;
  /** False when the outcome could not be recorded (store down, lease lost): a redelivery may run again. */
  recorded: boolean;
}

/** The handler threw: the claim is released so the provider's redelivery is processed. */
export interface WebhookHandlerFailedEvent {
  /** What happened. */
  type: "webhook.handler_failed";
  /** The scheme's name. */
  scheme: string;
  /** The delivery's id, when it has one. */
  id: string | undefined;
  /** Time until the handler failed, in milliseconds. */
  durationMs: number;
  /** False when the release itself failed; the lease then expires on its own. */
  released: boolean;
}

/** Every event a webhook receiver (or verifier) emits. */
export type WebhookEvent =
  | WebhookVerifiedEvent
  | WebhookRejectedEvent
  | WebhookDuplicateEvent
  | WebhookProcessedEvent
  | WebhookHandlerFailedEvent;

/** Where an idempotent request stands; `key` is the client's key, never the principal. */
export interface IdempotencyEventBase {
  /** The request's method, upper case. */
  method: string;
  /** The route pattern the key is scoped to. */
  route: string;
  /** The client's `Idempotency-Key`. */
  key: string;
}

/** Every decision the idempotency engine makes about a request with a key. */
export type IdempotencyEvent = IdempotencyEventBase &
  (
    | {
        /** The first request with this key: the handler runs. */
        type: "idempotency.first";
      }
    | {
        /** A completed key: the stored response was replayed. */
        type: "idempotency.replayed";
        /** The replayed status. */
        status: number;
      }
    | {
        /** The key is held by a request still running: 409, or a wait that timed out. */
        type: "idempotency.in_flight";
        /** Whether the engine waited (`waitForInFlight`) before answering 409. */
        waited: boolean;
      }
    | {
        /** The key was used for another request (another fingerprint): 422. */
        type: "idempotency.mismatch";
      }
    | {
        /** The handler's response was stored. */
        type: "idempotency.completed";
        /** The stored status. */
        status: number;
        /** Time from the claim to the stored response, in milliseconds. */
        durationMs: number;
      }
    | {
        /** Nothing was stored and the key was released: a retry runs again. */
        type: "idempotency.released";
        /** Why nothing was stored: the handler threw, its status is not cached, or the body could not be kept. */
        reason: "error" | "status" | "streamed" | "too_large";
        /** The handler's status; undefined when it threw. */
        status: number | undefined;
        /** Time from the claim to the release, in milliseconds. */
        durationMs: number;
      }
    | {
        /** `complete` found another owner (the lease ran out) or the store failed: a retry may run again. */
        type: "idempotency.not_recorded";
        /** `lease_lost`: another request holds the key now; `store_error`: the store failed. */
        reason: "lease_lost" | "store_error";
        /** Time from the claim to the failed store, in milliseconds. */
        durationMs: number;
      }
    | {
        /** The store could not be reached. */
        type: "idempotency.store_down";
        /** The operation that failed. */
        operation: "claim" | "complete" | "release";
        /** Whether the request went on unprotected (`failOpen`) instead of 503. */
        failOpen: boolean;
      }
  );

/** A request refused before any key was claimed (missing or malformed key, unusable body). */
export interface IdempotencyRejectedEvent {
  /** What happened. */
  type: "idempotency.rejected";
  /** The request's method, upper case. */
  method: string;
  /** The route pattern. */
  route: string;
  /** Why it was refused: the error's `code`. */
  code: "idempotency_key_missing" | "idempotency_key_invalid" | "body_too_large" | "body_not_raw";
}

/** Every event Interlock emits; tell them apart by `type`. */
export type InterlockEvent = WebhookEvent | IdempotencyEvent | IdempotencyRejectedEvent;

/** An `onEvent` option: called synchronously with each event. A hook that throws does not change the outcome. */
export type EventHook<E extends InterlockEvent = InterlockEvent> = (event: E) => void;

/**
 * Calls the user's hook. A hook that throws must not change the outcome it is told about
 * (a verified delivery refused because a logger failed), so its error is dropped.
 */
export function emit<E extends InterlockEvent>(hook: EventHook<E> | undefined, event: E): void {
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
