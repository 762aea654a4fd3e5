export {
  type IdempotentHandler,
  type WebIdempotencyRequest,
  type WithIdempotencyOptions,
  withIdempotency,
} from "./idempotency.js";
export type { OptionsOrFactory } from "./options.js";
export { type ReadBodyOptions, RequestBodyError, type RequestBodyErrorCode, readBytes, readJson } from "./read.js";
export { toResponse } from "./respond.js";
export { type WebhookHandler, type WithWebhookOptions, withWebhook } from "./webhook.js";
