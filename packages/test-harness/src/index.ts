export * from "./config-error.js";
export * from "./idempotency-processes.js";
export * from "./idempotency-workers.js";
export * from "./postgres.js";
export { asUser, type ChildServer, freePort, refusedPort, requireBinary, run, startServer } from "./process.js";
export * from "./redis.js";
export * from "./redis-proxy.js";
