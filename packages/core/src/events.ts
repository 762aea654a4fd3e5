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

export type InterlockEvent = WebhookVerifiedEvent | WebhookRejectedEvent;

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
