export type {
  IdempotencyErrorDecision,
  IdempotencyRespondDecision,
  WebhookErrorDecision,
  WebhookRespondDecision,
} from "@interlock/core";
export type { InterlockHooks } from "./hooks.js";
export { type FastifyIdempotencyOptions, type FastifyIdempotencyRequest, idempotency } from "./idempotency.js";
export { interlock } from "./plugin.js";
export type { TakeOver } from "./respond.js";
export { type FastifyWebhookOptions, webhook } from "./webhook.js";
