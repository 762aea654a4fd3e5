export {
  type IdempotentHandler,
  type WebIdempotencyRequest,
  type WithIdempotencyOptions,
  withIdempotency,
} from "./idempotency.js";
export type { OptionsOrFactory } from "./options.js";
export { toResponse } from "./respond.js";
export { type WebhookHandler, type WithWebhookOptions, withWebhook } from "./webhook.js";
