/**
 * Interlock for Express 4.21+ and 5: `webhook()` verifies and de-duplicates deliveries on their
 * raw bytes, `idempotency()` makes unsafe routes safe to retry with an `Idempotency-Key`.
 */

import "./augment.js";

export type {
  IdempotencyErrorDecision,
  IdempotencyRespondDecision,
  WebhookErrorDecision,
  WebhookRespondDecision,
} from "@interlock/core";
export { type ExpressIdempotencyRequest, type IdempotencyMiddlewareOptions, idempotency } from "./idempotency.js";
export { captureRawBody, rawBodyOf } from "./raw-body.js";
export { releaseOnError } from "./release.js";
export { type WebhookMiddlewareOptions, webhook } from "./webhook.js";
