// Boots the Express OAuth app: `node server.mjs` (ISSUER, CLIENT_ID, CLIENT_SECRET, TOKEN_KEY,
// PORT, HOST, BASE_URL).
import { fileURLToPath } from "node:url";
import { hostFrom, originFrom, portFrom, runServer, StartupError, serverUrl } from "../shared/config.mjs";
import { createApp } from "./app.mjs";

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
    const server = app.listen(port, host, (error) => {
      if (error) return reject(error);
      const url = serverUrl(host, server.address().port);
      const close = () =>
        new Promise((done) => {
          server.close(() => done());
          server.closeIdleConnections();
        });
      resolve({ url, close });
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await runServer(async () => {
    const { ISSUER, CLIENT_ID, CLIENT_SECRET, TOKEN_KEY } = process.env;
    const BASE_URL = originFrom(process.env, "BASE_URL"); // ISSUER: createOAuthClient checks it
    if (!ISSUER || !CLIENT_ID || !CLIENT_SECRET || !TOKEN_KEY) {
      throw new StartupError("Set ISSUER, CLIENT_ID, CLIENT_SECRET and TOKEN_KEY (see README.md).");
    }
    const { url, close } = await start({
      issuer: ISSUER,
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      encryptionKeys: [{ id: "k1", key: TOKEN_KEY }],
      ...(BASE_URL ? { baseUrl: BASE_URL } : {}),
    });
    console.log(`Log in at ${url}/login (callback ${BASE_URL ?? url}/callback)`);
    process.once("SIGINT", close).once("SIGTERM", close);
  });
}
