export { describeStoreConformance, type SingleProcessStore, type StoreConformanceOptions } from "./conformance.js";
export { describeIdempotencyBehaviour, type IdempotencyBehaviourOptions } from "./idempotency.js";
export { describeWebhookReplayBehaviour, type WebhookReplayBehaviourOptions } from "./webhooks.js";
