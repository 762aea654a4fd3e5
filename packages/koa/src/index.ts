/**
 * Interlock for Koa 2 and 3: `webhook()` verifies and de-duplicates deliveries on their raw
 * bytes, `idempotency()` makes unsafe routes safe to retry with an `Idempotency-Key`.
 */

export {
  DEFAULT_IDEMPOTENCY_BODY_LIMIT,
  type IdempotencyMiddlewareOptions,
  type IdempotencyRespondDecision,
  idempotency,
  type KoaIdempotencyRequest,
} from "./idempotency.js";
export type { RawBodyContext, RawBodyRequest, WebhookState } from "./types.js";
export { type WebhookOptions, type WebhookRespondDecision, webhook } from "./webhook.js";
