/**
 * Replay de-duplication around webhook handlers, on a real Redis: several receivers, each on
 * its own connection, share one key space as the instances of an app would.
 */

import { describeWebhookReplayBehaviour } from "@interlock/core/testing";
import { redisClient, storeOn, uniquePrefix } from "./helpers.js";

describeWebhookReplayBehaviour("redis", {
  // Stores on one prefix, each on a connection of its own (one per app instance).
  instances: (count) => {
    const prefix = uniquePrefix("wh");
    return Array.from({ length: count }, () => storeOn(redisClient(), { prefix }));
  },
});
