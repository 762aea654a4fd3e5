// An Express app whose Interlock decisions are Prometheus metrics: Stripe webhooks verified
// and processed once, an idempotent POST /payments, and GET /metrics for Prometheus to scrape.
import { memoryStore, stripe } from "@interlock/core";
import { captureRawBody, idempotency, releaseOnError, webhook } from "@interlock/express";
import express from "express";
import { collectDefaultMetrics, Registry } from "prom-client";
import { interlockMetrics } from "./metrics.mjs";

/**
 * @param {object} options
 * @param {string | string[]} options.stripeSecret  the endpoint's `whsec_…` signing secret
 * @param {import("@interlock/core").InterlockStore} [options.store]  memory by default: one process only
 * @param {Registry} [options.registry]  where the metrics live (a fresh one by default)
 */
export function createApp({ stripeSecret, store = memoryStore(), registry = new Registry() }) {
  collectDefaultMetrics({ register: registry }); // the process's own: CPU, memory, event loop
  // One hook for every Interlock middleware. To log events too, call your logger from it.
  const onEvent = interlockMetrics(registry);
  const fulfilled = new Set();

  const app = express();
  app.disable("x-powered-by");

  app.get("/metrics", async (_req, res) => {
    res.type(registry.contentType).send(await registry.metrics());
  });

  app.post("/webhooks/stripe", webhook({ scheme: stripe, secret: stripeSecret, store, onEvent }), (req, res) => {
    fulfilled.add(req.webhook.id); // fulfil the order
    res.json({ received: req.webhook.id });
  });

  app.use(express.json({ verify: captureRawBody }));
  app.post(
    "/payments",
    requireApiKey,
    // Keys are scoped per API key; the route label in the metrics is the route pattern.
    idempotency({ store, principal: (request) => request.context.get("x-api-key"), required: true, onEvent }),
    (req, res) => {
      const { amount } = req.body ?? {};
      if (!Number.isSafeInteger(amount) || amount <= 0) {
        return res.status(400).json({ error: "amount must be a positive integer (cents)" });
      }
      res.status(201).json({ id: `pay_${crypto.randomUUID().replaceAll("-", "")}`, amount });
    },
  );

  app.use(releaseOnError);
  app.use((error, _req, res, _next) => {
    res.status(error.status ?? 500).json({ error: error.expose ? error.message : "internal error" });
  });
  return app;
}

/** A stand-in for your authentication: who is calling scopes their idempotency keys. */
function requireApiKey(req, res, next) {
  if (req.get("x-api-key")) return next();
  res.status(401).json({ error: "send X-Api-Key" });
}
