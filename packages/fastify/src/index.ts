export type { InterlockHooks } from "./hooks.js";
export {
  type FastifyIdempotencyOptions,
  type FastifyIdempotencyRequest,
  type IdempotencyRespondDecision,
  idempotency,
} from "./idempotency.js";
export { interlock } from "./plugin.js";
export type { TakeOver } from "./respond.js";
export { type FastifyWebhookOptions, type WebhookRespondDecision, webhook } from "./webhook.js";
