export type { ScriptingClient } from "./scripts.js";
export {
  DEFAULT_MAX_RECORD_BYTES,
  DEFAULT_OPERATION_TIMEOUT_MS,
  DEFAULT_PREFIX,
  RedisStore,
  type RedisStoreOptions,
  redisStore,
} from "./store.js";
