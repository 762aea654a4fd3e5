export {
  type HonoIdempotencyRequest,
  type IdempotencyMiddlewareOptions,
  type IdempotencyRespondDecision,
  idempotency,
} from "./idempotency.js";
export { type WebhookOptions, type WebhookRespondDecision, type WebhookVariables, webhook } from "./webhook.js";
