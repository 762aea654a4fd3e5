// Boots the Fastify app: `node server.mjs` (PORT, HOST, WEBHOOK_SECRET, API_KEYS).
import { fileURLToPath } from "node:url";
import { apiKeysFrom, hostFrom, portFrom, runServer, StartupError, serverUrl } from "../shared/config.mjs";
import { createApp } from "./app.mjs";

/**
 * Starts the app and resolves once it listens. `port: 0` (the default without PORT) takes a
 * free port; the URL says which.
 */
export async function start({ port = portFrom(process.env), host = hostFrom(process.env), ...options }) {
  const app = await createApp(options);
  await app.listen({ port, host });
  return { url: serverUrl(host, app.server.address().port), close: () => app.close() };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await runServer(async () => {
    const { WEBHOOK_SECRET, API_KEYS } = process.env;
    if (!WEBHOOK_SECRET || !API_KEYS) {
      throw new StartupError('Set WEBHOOK_SECRET (whsec_…) and API_KEYS ("sk_test_1:acct_1,…"); see README.md.');
    }
    const { url, close } = await start({ webhookSecret: WEBHOOK_SECRET, apiKeys: apiKeysFrom(API_KEYS) });
    console.log(`Standard Webhooks (Svix) on ${url}/webhooks/svix, payments on ${url}/payments (memory store)`);
    process.once("SIGINT", close).once("SIGTERM", close);
  });
}
