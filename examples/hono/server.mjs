// Boots the Hono app on Node: `node server.mjs` (PORT, HOST, GITHUB_WEBHOOK_SECRET, API_KEYS).
// Bun, Deno and Workers serve app.mjs's default export instead; see README.md.
import { fileURLToPath } from "node:url";
import { serve } from "@hono/node-server";
import { hostFrom, portFrom, runServer, serverUrl } from "../shared/config.mjs";
import { configFrom, createApp } from "./app.mjs";

/**
 * Starts the app and resolves once it listens. `port: 0` (the default without PORT) takes a
 * free port; the URL says which.
 */
export function start({ port = portFrom(process.env), host = hostFrom(process.env), ...options }) {
  const app = createApp(options);
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, hostname: host, port }, (info) => {
      const close = () => new Promise((done) => server.close(() => done()));
      resolve({ url: serverUrl(host, info.port), close });
    });
    server.once("error", reject);
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await runServer(async () => {
    const { url, close } = await start(configFrom(process.env)); // as Bun, Deno and Workers read it
    console.log(`GitHub webhooks on ${url}/webhooks/github, payments on ${url}/payments (memory store)`);
    process.once("SIGINT", close).once("SIGTERM", close);
  });
}
