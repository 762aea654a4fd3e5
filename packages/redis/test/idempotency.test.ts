/** The idempotency engine's whole behaviour table, on a real standalone Redis. */

import { describeIdempotencyBehaviour } from "@interlock/core/testing";
import { refusedPort } from "@interlock/test-harness";
import { Redis } from "ioredis";
import { redisClient, storeOn, track } from "./helpers.js";

// One connection for every store of the table; each store has a prefix of its own.
const client = redisClient();

describeIdempotencyBehaviour("redis", {
  create: () => storeOn(client),
  // Nothing listens on the port: ioredis queues the commands while it retries, so only the
  // store's timeout answers (kept short: the table calls an unreachable store three times).
  createUnavailable: async () => {
    const down = track(new Redis(await refusedPort(), "127.0.0.1", { lazyConnect: true }));
    down.on("error", () => {});
    return storeOn(down, { operationTimeoutMs: 500 });
  },
});
