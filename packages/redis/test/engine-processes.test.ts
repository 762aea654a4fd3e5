/**
 * The idempotency engine and `runIdempotent` in several processes on one Redis (the shared
 * suite in @interlock/test-harness): each worker process has its own client, store and engine.
 * The handler's side effect is an INCR every process sees, so "ran once" is counted by Redis.
 */

import { describeIdempotencyAcrossProcesses } from "@interlock/test-harness";
import { effectsKey } from "./fixtures/protocol.js";
import { redisClient, storeOn, uniquePrefix } from "./helpers.js";
import { workerPool } from "./workers.js";

const processes = workerPool();
const prefix = uniquePrefix("engine");
const client = redisClient();

describeIdempotencyAcrossProcesses("redis", {
  setup: () => processes.build(),
  start: async (count, label) =>
    (await processes.start(prefix, count, label)).map((worker) => ({
      engine: (args) => worker.request("engine", args),
      hang: (args) => worker.request("hang", args),
      run: (args) => worker.request("run", args),
      kill: () => worker.kill(),
    })),
  stop: () => processes.stop(),
  effects: async (key) => Number((await client.get(effectsKey(prefix, key))) ?? 0),
  store: () => storeOn(redisClient(), { prefix }),
});
