/**
 * Interlock for Koa 2.16+ and 3: `webhook()` verifies and de-duplicates deliveries on their raw
 * bytes, `idempotency()` makes unsafe routes safe to retry with an `Idempotency-Key`.
 */

export type {
  IdempotencyErrorDecision,
  IdempotencyRespondDecision,
  WebhookErrorDecision,
  WebhookRespondDecision,
} from "@interlock/core";
export { type IdempotencyMiddlewareOptions, idempotency, type KoaIdempotencyRequest } from "./idempotency.js";
export type { RawBodyContext, RawBodyRequest, WebhookState } from "./types.js";
export { type WebhookMiddlewareOptions, webhook } from "./webhook.js";
