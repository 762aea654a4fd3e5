/**
 * Replay de-duplication around a webhook handler. After a valid signature the receiver claims
 * `wh:<scheme>:<id>` in the store: the first delivery runs the handler, a duplicate does not.
 * A handler failure releases the claim so the provider's redelivery is processed; only
 * success completes it. Where the id is not covered by the signature (GitHub, Shopify,
 * Linear), the key also binds a hash of the signature, so a valid body replayed under a
 * forged id cannot suppress the real delivery that id belongs to.
 */

import { InterlockConfigError } from "../errors.js";
import { type EventHook, emit, monotonicNow, type WebhookEvent } from "../events.js";
import { sha256Hex } from "../hash.js";
import type { HeadersInput } from "../headers.js";
import type { InterlockStore, StoredResponse } from "../store/contract.js";
import type { RawBody } from "./body.js";
import { VerifiedWebhook } from "./verified.js";
import { createWebhookVerifier, type WebhookVerifier, type WebhookVerifierOptions } from "./verify.js";

export interface WebhookReceiverOptions extends Omit<WebhookVerifierOptions, "onEvent"> {
  store: InterlockStore;
  /**
   * How long a processed delivery is remembered, in ms. Default 7 days (providers redeliver
   * for up to 3). Must be longer than the timestamp tolerance, or a replay could slip in
   * after its id is forgotten but while its timestamp is still accepted.
   */
  retentionMs?: number;
  /** Lease on a delivery being processed, in ms: a crashed worker blocks it this long. Default 60 s. */
  lockTtlMs?: number;
  /** Told about every verification, duplicate, success and failure. */
  onEvent?: EventHook<WebhookEvent>;
}

export type WebhookReceipt<R> =
  /** The handler ran and succeeded: acknowledge (2xx). */
  | { outcome: "processed"; event: VerifiedWebhook; result: R }
  /** Processed before: acknowledge (2xx) without running the handler. */
  | { outcome: "duplicate"; event: VerifiedWebhook }
  /** Another worker is processing it now: answer 409 so the provider retries later. */
  | { outcome: "in_flight"; event: VerifiedWebhook; retryAfterSeconds: number };

export interface WebhookReceiver {
  readonly verifier: WebhookVerifier;
  /**
   * Verifies the delivery, de-duplicates it and runs `handler` at most once per delivery.
   * Throws `WebhookVerificationError` for a refused delivery, `StoreUnavailableError` when
   * the store cannot be reached (answer 503: the provider retries), and the handler's own
   * error when it fails (after releasing the claim).
   */
  receive<R>(
    headers: HeadersInput,
    body: RawBody,
    handler: (event: VerifiedWebhook) => R | Promise<R>,
  ): Promise<WebhookReceipt<Awaited<R>>>;
}

export const DEFAULT_WEBHOOK_RETENTION_MS = 7 * 24 * 60 * 60 * 1000;
export const DEFAULT_WEBHOOK_LOCK_TTL_MS = 60_000;

/** What a processed delivery leaves in the store: only the fact that it was processed. */
const PROCESSED: StoredResponse = { status: 200, headers: [], body: new Uint8Array() };

/** The store key and fingerprint for a verified delivery. */
export async function deliveryKey(event: VerifiedWebhook): Promise<{ key: string; fingerprint: string }> {
  const fingerprint = (await sha256Hex([VerifiedWebhook.matchedSignature(event)])).slice(0, 32);
  const id = event.id;
  if (id === undefined) return { key: `wh:${event.scheme}:sig:${fingerprint}`, fingerprint };
  return { key: event.idCovered ? `wh:${event.scheme}:${id}` : `wh:${event.scheme}:${id}:${fingerprint}`, fingerprint };
}

function positiveMs(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0)
    throw new InterlockConfigError(`${name} must be a positive number of ms`);
  return value;
}

export function createWebhookReceiver(options: WebhookReceiverOptions): WebhookReceiver {
  const { store, onEvent } = options;
  const retentionMs = positiveMs("retentionMs", options.retentionMs, DEFAULT_WEBHOOK_RETENTION_MS);
  const lockTtlMs = positiveMs("lockTtlMs", options.lockTtlMs, DEFAULT_WEBHOOK_LOCK_TTL_MS);
  const verifier = createWebhookVerifier({ ...options, ...(onEvent ? { onEvent } : {}) });
  if (retentionMs <= verifier.tolerance * 1000) {
    throw new InterlockConfigError(
      `retentionMs (${retentionMs}) must be longer than the timestamp tolerance (${verifier.tolerance}s): ` +
        "otherwise a delivery replayed after its id is forgotten would still pass the timestamp check",
    );
  }
  const retryAfterSeconds = Math.ceil(lockTtlMs / 1000);

  async function finishFailed(
    key: string,
    token: string,
    event: VerifiedWebhook,
    started: number,
    error: unknown,
  ): Promise<never> {
    const released = await store.release(key, token).catch(() => false);
    emit(onEvent, {
      type: "webhook.handler_failed",
      scheme: event.scheme,
      id: event.id,
      durationMs: monotonicNow() - started,
      released,
    });
    throw error;
  }

  return {
    verifier,
    async receive<R>(
      headers: HeadersInput,
      body: RawBody,
      handler: (event: VerifiedWebhook) => R | Promise<R>,
    ): Promise<WebhookReceipt<Awaited<R>>> {
      const event = await verifier.verify(headers, body);
      const { key, fingerprint } = await deliveryKey(event);
      const claim = await store.claim(key, { fingerprint, lockTtlMs });
      if (claim.state !== "claimed") {
        emit(onEvent, { type: "webhook.duplicate", scheme: event.scheme, id: event.id, state: claim.state });
        return claim.state === "completed"
          ? { outcome: "duplicate", event }
          : { outcome: "in_flight", event, retryAfterSeconds };
      }
      const started = monotonicNow();
      let result: Awaited<R>;
      try {
        result = await handler(event);
      } catch (error) {
        return finishFailed(key, claim.token, event, started, error);
      }
      // The handler succeeded: the delivery is processed and is acknowledged even if the
      // record cannot be written (a redelivery may then run again: at-least-once, never lost).
      const recorded = await store.complete(key, claim.token, PROCESSED, { ttlMs: retentionMs }).catch(() => false);
      emit(onEvent, {
        type: "webhook.processed",
        scheme: event.scheme,
        id: event.id,
        durationMs: monotonicNow() - started,
        recorded,
      });
      return { outcome: "processed", event, result };
    },
  };
}
