export {
  type CreateScenarioApp,
  describeAdapterScenarios,
  type ScenarioApp,
  type ScenarioAppOptions,
  type ScenarioHandlers,
} from "./adapters.js";
export { describeStoreConformance, type SingleProcessStore, type StoreConformanceOptions } from "./conformance.js";
export { describeIdempotencyBehaviour, type IdempotencyBehaviourOptions, unreachableStore } from "./idempotency.js";
export { describeWebhookReplayBehaviour, type WebhookReplayBehaviourOptions } from "./webhooks.js";
