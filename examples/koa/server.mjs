// Boots the Koa app: `node server.mjs` (PORT, HOST, SHOPIFY_WEBHOOK_SECRET, API_KEYS).
import { fileURLToPath } from "node:url";
import { apiKeysFrom, hostFrom, portFrom, runServer, StartupError, serverUrl } from "../shared/config.mjs";
import { createApp } from "./app.mjs";

/**
 * Starts the app and resolves once it listens. `port: 0` (the default without PORT) takes a
 * free port; the URL says which.
 */
export function start({ port = portFrom(process.env), host = hostFrom(process.env), ...options }) {
  const app = createApp(options);
  return new Promise((resolve, reject) => {
    const server = app.listen(port, host, () => {
      const close = () =>
        new Promise((done) => {
          server.close(() => done());
          server.closeIdleConnections();
        });
      resolve({ url: serverUrl(host, server.address().port), close });
    });
    server.once("error", reject);
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await runServer(async () => {
    const { SHOPIFY_WEBHOOK_SECRET, API_KEYS } = process.env;
    if (!SHOPIFY_WEBHOOK_SECRET || !API_KEYS) {
      throw new StartupError(
        'Set SHOPIFY_WEBHOOK_SECRET (the app\'s client secret) and API_KEYS ("sk_test_1:acct_1,…"); see README.md.',
      );
    }
    const { url, close } = await start({ shopifySecret: SHOPIFY_WEBHOOK_SECRET, apiKeys: apiKeysFrom(API_KEYS) });
    console.log(`Shopify webhooks on ${url}/webhooks/shopify, payments on ${url}/payments (memory store)`);
    process.once("SIGINT", close).once("SIGTERM", close);
  });
}
