export { describeStoreConformance, type StoreConformanceOptions } from "./conformance.js";
