// Boots the Express app on the Redis store: `node server.mjs` (REDIS_URL, PORT, HOST,
// STRIPE_WEBHOOK_SECRET, API_KEYS). Run as many instances as you like against one Redis: a
// delivery or a payment retried on any of them is recognised.
import { fileURLToPath } from "node:url";
import { redisStore } from "@interlock/redis";
import { Redis } from "ioredis";
import {
  apiKeysFrom,
  hostFrom,
  portFrom,
  runServer,
  StartupError,
  serverUrl,
  shown,
  urlFrom,
} from "../shared/config.mjs";
import { createApp } from "./app.mjs";

/**
 * Connects to Redis, starts the app and resolves once it listens. `port: 0` (the default
 * without PORT) takes a free port; the URL says which. `close()` stops the server, then quits
 * Redis: the store never closes the client it is given.
 */
export async function start({
  redisUrl = urlFrom(process.env, "REDIS_URL", ["redis:", "rediss:"], "redis://127.0.0.1:6379"),
  prefix = "payments-api:", // several apps or environments can share one Redis
  port = portFrom(process.env),
  host = hostFrom(process.env),
  ...options
}) {
  const redis = new Redis(redisUrl, { lazyConnect: true });
  await connect(redis, redisUrl); // fail at start-up, not on the first request, if Redis is not there
  redis.on("error", (error) => console.error(`redis: ${error.message}`)); // ioredis reconnects by itself
  // Every operation is bounded: past operationTimeoutMs, or on any error, the store reports itself
  // unavailable and Interlock answers 503 (fail closed) — the provider or client retries later.
  const store = redisStore(redis, { prefix, operationTimeoutMs: 1_000 });
  const app = createApp({ ...options, store });
  return new Promise((resolve, reject) => {
    const server = app.listen(port, host, (error) => {
      if (error) {
        redis.disconnect();
        return reject(error);
      }
      const close = () =>
        new Promise((done) => {
          server.close(() => quit(redis).then(done));
          server.closeIdleConnections();
        });
      resolve({ url: serverUrl(host, server.address().port), close });
    });
  });
}

/**
 * Connects, or throws a StartupError that says why in one line (ioredis rejects with "Connection is
 * closed." and reports the cause as an 'error' event), naming Redis without its password. The
 * client is disconnected then, so it does not go on reconnecting behind a server that never started.
 */
async function connect(redis, redisUrl) {
  let cause;
  const remember = (error) => {
    cause ??= error;
  };
  redis.on("error", remember);
  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    throw new StartupError(`Redis at ${shown(redisUrl)}: ${(cause ?? error).message}`, { cause: cause ?? error });
  } finally {
    redis.off("error", remember);
  }
}

/** QUIT, bounded: while Redis is down, ioredis would hold the QUIT in its offline queue forever. */
async function quit(redis) {
  const waited = new Promise((resolve) => setTimeout(resolve, 1_000).unref());
  await Promise.race([redis.quit().catch(() => {}), waited]);
  redis.disconnect(); // rejects whatever is still queued
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await runServer(async () => {
    const { STRIPE_WEBHOOK_SECRET, API_KEYS } = process.env;
    if (!STRIPE_WEBHOOK_SECRET || !API_KEYS) {
      throw new StartupError('Set STRIPE_WEBHOOK_SECRET (whsec_…) and API_KEYS ("sk_test_1:acct_1,…"); see README.md.');
    }
    const { url, close } = await start({ stripeSecret: STRIPE_WEBHOOK_SECRET, apiKeys: apiKeysFrom(API_KEYS) });
    console.log(`Stripe webhooks on ${url}/webhooks/stripe, payments on ${url}/payments (Redis store)`);
    process.once("SIGINT", close).once("SIGTERM", close);
  });
}
