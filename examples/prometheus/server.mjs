// Boots the app: `node server.mjs` (PORT, HOST, STRIPE_WEBHOOK_SECRET).
import { fileURLToPath } from "node:url";
import { createApp } from "./app.mjs";

/** Starts the app and resolves once it listens. `port: 0` takes a free port; the URL says which. */
export function start({ port = Number(process.env.PORT ?? 0), host = process.env.HOST ?? "127.0.0.1", ...options }) {
  const app = createApp(options);
  return new Promise((resolve, reject) => {
    const server = app.listen(port, host, (error) => {
      if (error) return reject(error);
      const url = `http://${host}:${server.address().port}`;
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
  const { STRIPE_WEBHOOK_SECRET } = process.env;
  if (!STRIPE_WEBHOOK_SECRET) {
    console.error("Set STRIPE_WEBHOOK_SECRET (whsec_…); see README.md.");
    process.exit(1);
  }
  const { url, close } = await start({ stripeSecret: STRIPE_WEBHOOK_SECRET });
  console.log(`Stripe webhooks on ${url}/webhooks/stripe, payments on ${url}/payments, metrics on ${url}/metrics`);
  process.once("SIGINT", close).once("SIGTERM", close);
}
