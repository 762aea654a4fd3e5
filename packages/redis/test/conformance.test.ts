/** The store contract, against a real standalone Redis. */

import { describeStoreConformance } from "@interlock/core/testing";
import { refusedPort } from "@interlock/test-harness";
import { Redis } from "ioredis";
import { redisClient, storeOn, track } from "./helpers.js";

describeStoreConformance("redis", {
  create: () => storeOn(redisClient()),
  // A second app process: its own connection to the same server, on the same prefix.
  sibling: (store) => storeOn(redisClient(), { prefix: store.prefix }),
  // Nothing listens on the port. ioredis' defaults keep the commands queued while it retries
  // (20 reconnects per request, far past the bound): only the store's timeout can answer.
  createUnavailable: async () => {
    const client = track(new Redis(await refusedPort(), "127.0.0.1", { lazyConnect: true }));
    client.on("error", () => {});
    return storeOn(client, { operationTimeoutMs: 1_000 });
  },
  unavailableWithinMs: 1_000,
});
