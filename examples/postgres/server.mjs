// Boots the Hono app on Node and PostgreSQL: `node server.mjs` (DATABASE_URL, PORT, HOST,
// GITHUB_WEBHOOK_SECRET, API_KEYS). Creates the tables at start-up; every instance can.
import { fileURLToPath } from "node:url";
import { serve } from "@hono/node-server";
import { migrate, postgresStore } from "@interlock/postgres";
import pg from "pg";
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
import { APP_SCHEMA_SQL, createApp } from "./app.mjs";

/**
 * Connects, migrates, starts the app and resolves once it listens. `port: 0` (the default
 * without PORT) takes a free port; the URL says which. `close()` stops the server, then ends
 * the pool: the store never ends the pool it is given.
 */
export async function start({
  databaseUrl = urlFrom(process.env, "DATABASE_URL", ["postgres:", "postgresql:"]),
  port = portFrom(process.env),
  host = hostFrom(process.env),
  ...options
}) {
  // A wait for a connection ends with the store's operation (operationTimeoutMs below): pg-pool
  // cannot take a wait back, and each one a refused operation left would stay queued meanwhile.
  const pool = new pg.Pool({ connectionString: databaseUrl, connectionTimeoutMillis: 1_000 });
  pool.on("error", (error) => console.error(`idle postgres connection lost: ${error.message}`)); // as pg asks
  try {
    await migrate(pool); // Interlock's table: safe on every start, from every instance at once
    await pool.query(APP_SCHEMA_SQL); // the app's own tables (use your migration tool)
  } catch (error) {
    await pool.end();
    // One line that says where and why: the connection refused (an AggregateError with no message,
    // when both ::1 and 127.0.0.1 refuse), the password, the permissions… not the URL's password.
    const where = databaseUrl ? ` at ${shown(databaseUrl)}` : "";
    throw new StartupError(`PostgreSQL${where}: ${error.message || error.code}`, { cause: error });
  }
  const store = postgresStore(pool, { operationTimeoutMs: 1_000 });
  // Expired locks and records are never returned, but take space until purged.
  const purge = setInterval(() => store.purgeExpired().catch(() => {}), 5 * 60_000);
  purge.unref();

  const app = createApp({ ...options, pool, store });
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, hostname: host, port }, (info) => {
      const close = () =>
        new Promise((done) => {
          clearInterval(purge);
          server.close(() => pool.end().then(() => done()));
        });
      resolve({ url: serverUrl(host, info.port), close });
    });
    server.once("error", (error) => {
      clearInterval(purge);
      pool.end().finally(() => reject(error));
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await runServer(async () => {
    const { DATABASE_URL, GITHUB_WEBHOOK_SECRET, API_KEYS } = process.env;
    if (!DATABASE_URL || !GITHUB_WEBHOOK_SECRET || !API_KEYS) {
      throw new StartupError(
        'Set DATABASE_URL, GITHUB_WEBHOOK_SECRET and API_KEYS ("sk_test_1:acct_1,…"); see README.md.',
      );
    }
    const { url, close } = await start({ githubSecret: GITHUB_WEBHOOK_SECRET, apiKeys: apiKeysFrom(API_KEYS) });
    console.log(`GitHub webhooks on ${url}/webhooks/github, payments on ${url}/payments (PostgreSQL store)`);
    process.once("SIGINT", close).once("SIGTERM", close);
  });
}
