export { describeStoreConformance, type StoreConformanceOptions } from "./conformance.js";
export { describeIdempotencyBehaviour, type IdempotencyBehaviourOptions, unreachableStore } from "./idempotency.js";
