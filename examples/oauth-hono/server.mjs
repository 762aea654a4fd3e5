// Boots the Hono OAuth app on Node: `node server.mjs` (ISSUER, CLIENT_ID, CLIENT_SECRET,
// TOKEN_KEY, PORT, HOST, BASE_URL). Bun, Deno and Workers serve app.mjs's default export.
import { fileURLToPath } from "node:url";
import { serve } from "@hono/node-server";
import { hostFrom, portFrom, runServer, serverUrl } from "../shared/config.mjs";
import { configFrom, createApp } from "./app.mjs";

/**
 * Starts the app and resolves once it listens. The callback URL is `${baseUrl}/callback`; without
 * `baseUrl` it is this server's own address, so `port` must then be given.
 */
export function start({
  port = portFrom(process.env, "PORT", 3000),
  host = hostFrom(process.env),
  baseUrl,
  ...options
}) {
  const app = createApp({ ...options, baseUrl: baseUrl ?? serverUrl(host, port) });
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
    const config = configFrom(process.env); // as Bun, Deno and Workers read it
    const { url, close } = await start(config);
    console.log(`Log in at ${url}/login (callback ${config.baseUrl ?? url}/callback)`);
    process.once("SIGINT", close).once("SIGTERM", close);
  });
}
