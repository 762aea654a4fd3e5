export type {
  IdempotencyErrorDecision,
  IdempotencyRespondDecision,
  WebhookErrorDecision,
  WebhookRespondDecision,
} from "@interlock/core";
export { type HonoIdempotencyRequest, type IdempotencyMiddlewareOptions, idempotency } from "./idempotency.js";
export type { OptionsOrFactory } from "./options.js";
export { type WebhookEnv, type WebhookMiddlewareOptions, type WebhookVariables, webhook } from "./webhook.js";
