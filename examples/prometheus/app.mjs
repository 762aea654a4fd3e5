// An Express app whose Interlock decisions are Prometheus metrics: Stripe webhooks verified
// and processed once, an idempotent POST /payments, and GET /metrics for Prometheus to scrape.
import { memoryStore, stripe } from "@interlock/core";
import { captureRawBody, idempotency, rawBodyOf, releaseOnError, webhook } from "@interlock/express";
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

  // strict: false lets JSON `null` or a number through, for jsonObjectBody to refuse in this
  // API's words (strict, the parser calls it "not valid JSON").
  app.use(express.json({ strict: false, verify: captureRawBody }));
  app.post(
    "/payments",
    requireApiKey,
    // A body that is no JSON object is refused before idempotency() claims the key, so the
    // client's corrected retry runs (a stored 400 would make it a 422).
    jsonObjectBody,
    // Keys are scoped per API key; the route label in the metrics is the route pattern.
    idempotency({ store, principal: (request) => request.context.get("x-api-key"), required: true, onEvent }),
    (req, res) => {
      const { amount } = req.body;
      if (!Number.isSafeInteger(amount) || amount <= 0) {
        // Stored too (4xx are answers): the same request retried gets the same refusal.
        return problem(res, 400, "invalid_payment", "amount must be a positive integer (cents)");
      }
      res.status(201).json({ id: `pay_${crypto.randomUUID().replaceAll("-", "")}`, amount });
    },
  );

  // Errors as problem+json too (malformed JSON from express.json(), a handler that throws);
  // releaseOnError frees the key a failed request held, so the client's retry runs again.
  app.use(releaseOnError);
  app.use((error, _req, res, _next) => {
    const status = error.status ?? error.statusCode ?? 500;
    if (status >= 500) console.error(error); // unexpected: the details go to the log, not to the client
    problem(res, status, status === 500 ? "internal_error" : "bad_request", error.expose ? error.message : "");
  });
  return app;
}

/** A stand-in for your authentication: who is calling scopes their idempotency keys. */
function requireApiKey(req, res, next) {
  if (req.get("x-api-key")) return next();
  problem(res, 401, "unauthenticated", "send X-Api-Key");
}

/**
 * 400 for a body that is no JSON object: another Content-Type (express.json() left no
 * `req.body`), none, or JSON that is no object (`null`, an array, a number). An empty body is
 * told by its raw bytes: express.json() makes `{}` of it, as of a `{}` sent, and only the
 * latter is a payment (sent empty: the route's 400 `invalid_payment`). express.json() itself answers bad JSON and corrupt gzip
 * 400, through the error handler.
 */
function jsonObjectBody(req, res, next) {
  const body = req.body;
  const sent = rawBodyOf(req)?.length > 0;
  if (sent && typeof body === "object" && body !== null && !Array.isArray(body)) return next();
  problem(res, 400, "bad_request", "send the payment as a JSON object, Content-Type: application/json");
}

/** An RFC 9457 problem+json answer, as Interlock's own refusals are. */
function problem(res, status, code, detail) {
  res.status(status).type("application/problem+json");
  res.send(
    JSON.stringify({ type: `urn:example:problem:${code}`, title: code.replaceAll("_", " "), status, detail, code }),
  );
}
