// The Express reference app: Stripe webhooks verified on their raw bytes and processed once,
// and a payments API made safe to retry with an Idempotency-Key. Copy what you need.
import { memoryStore, stripe } from "@interlock/core";
import { captureRawBody, idempotency, rawBodyOf, releaseOnError, webhook } from "@interlock/express";
import express from "express";
import { bearerToken } from "../shared/bearer.mjs";
import { INVALID_PAYLOAD_DETAIL, payloadObject } from "../shared/payload.mjs";

/** Stands in for your database: what the handlers did, so you (and the test) can look. */
export function memoryDb() {
  return { fulfilled: [], payments: new Map() };
}

/**
 * @param {object} options
 * @param {string | string[]} options.stripeSecret  the endpoint's `whsec_…` signing secret (a list while rotating)
 * @param {Map<string, string>} options.apiKeys     API key → account id, for `Authorization: Bearer <api key>`
 * @param {import("@interlock/core").InterlockStore} [options.store]  memory by default: one process only
 * @param {ReturnType<typeof memoryDb>} [options.db]
 */
export function createApp({ stripeSecret, apiKeys, store = memoryStore(), db = memoryDb() }) {
  const app = express();
  app.disable("x-powered-by");

  // 1. Webhooks, declared BEFORE any JSON parser: webhook() reads the raw bytes itself, checks
  //    the Stripe-Signature over them, and claims the event id, so a redelivery is answered
  //    200 {"duplicate":true} without running the handler again.
  app.post("/webhooks/stripe", webhook({ scheme: stripe, secret: stripeSecret, store }), (req, res) => {
    const event = req.webhook; // verified: id, timestamp, payload
    // Signed, but no event: JSON null, a number, a form body… is a 422 problem, not a 500 on
    // every redelivery (a 4xx releases it too: Stripe's dashboard shows why it failed).
    const payload = payloadObject(event);
    if (payload === undefined) return problem(res, 422, "invalid_payload", INVALID_PAYLOAD_DETAIL);
    if (payload.type === "checkout.session.completed") {
      db.fulfilled.push(event.id); // fulfil the order
    }
    // A 2xx records the delivery as processed. Throw, or answer non-2xx, and it is released:
    // Stripe's retry will run this handler again.
    res.json({ received: event.id });
  });

  // 2. Your usual JSON parser for everything after; `verify: captureRawBody` keeps the exact
  //    bytes, which idempotency() fingerprints (same key + other bytes = 422). `strict: false`
  //    lets JSON `null` or a number through to jsonObjectBody, which refuses it in this API's
  //    words: strict, the parser calls it "not valid JSON".
  app.use(express.json({ strict: false, verify: captureRawBody }));

  // 3. An idempotent payments API. Authentication runs first so that keys are scoped per
  //    account: one client can never replay another's payment. A body that is no JSON object
  //    is refused before idempotency() claims the key, so the client's corrected retry runs.
  app.post(
    "/payments",
    authenticate(apiKeys),
    jsonObjectBody,
    idempotency({ store, principal: (request) => request.context.res.locals.accountId, required: true }),
    (req, res) => {
      const { amount, currency = "usd" } = req.body ?? {};
      if (
        !Number.isSafeInteger(amount) ||
        amount <= 0 ||
        typeof currency !== "string" ||
        !/^[a-z]{3}$/.test(currency)
      ) {
        // Stored too (4xx are answers): the same request retried gets the same refusal.
        return problem(res, 400, "invalid_payment", "amount must be a positive integer (cents), currency 3 letters");
      }
      const payment = {
        id: `pay_${crypto.randomUUID().replaceAll("-", "")}`,
        amount,
        currency,
        account: res.locals.accountId,
        created: new Date().toISOString(),
      };
      db.payments.set(payment.id, payment); // charge the card, write the row…
      res.status(201).location(`/payments/${payment.id}`).json(payment);
    },
  );

  app.get("/payments/:id", authenticate(apiKeys), (req, res) => {
    const payment = db.payments.get(req.params.id);
    if (payment === undefined || payment.account !== res.locals.accountId) {
      return problem(res, 404, "not_found", "no such payment");
    }
    res.json(payment);
  });

  // Errors as problem+json too (malformed JSON from express.json(), a handler that throws).
  // Express hides a route's throw from middleware: this releases the webhook delivery or
  // idempotency key the failed request held, so the provider's or client's retry runs again.
  app.use(releaseOnError);
  app.use((error, _req, res, _next) => {
    const status = error.status ?? error.statusCode ?? 500;
    if (status >= 500) console.error(error); // unexpected: the details go to the log, not to the client
    problem(res, status, status === 500 ? "internal_error" : "bad_request", error.expose ? error.message : "");
  });

  return app;
}

/**
 * 400 for a body that is no JSON object: another Content-Type (express.json() left no
 * `req.body`), none, or JSON that is no object (`null`, an array, a number). An empty body is
 * told by its raw bytes: express.json() makes `{}` of it, as of a `{}` sent, and only the
 * latter is a payment (sent empty: the route's 400 `invalid_payment`). express.json() itself answers bad JSON and corrupt gzip
 * 400, through the error handler below.
 */
function jsonObjectBody(req, res, next) {
  const body = req.body;
  const sent = rawBodyOf(req)?.length > 0;
  if (sent && typeof body === "object" && body !== null && !Array.isArray(body)) return next();
  problem(res, 400, "bad_request", "send the payment as a JSON object, Content-Type: application/json");
}

/** `Authorization: Bearer <api key>` (strictly: see bearerToken) → `res.locals.accountId`, or 401. */
function authenticate(apiKeys) {
  return (req, res, next) => {
    const accountId = apiKeys.get(bearerToken(req.get("authorization")));
    if (accountId === undefined) {
      res.set("www-authenticate", "Bearer");
      return problem(res, 401, "unauthenticated", "send Authorization: Bearer <api key>");
    }
    res.locals.accountId = accountId;
    next();
  };
}

function problem(res, status, code, detail) {
  res.status(status).type("application/problem+json");
  res.send(
    JSON.stringify({ type: `urn:example:problem:${code}`, title: code.replaceAll("_", " "), status, detail, code }),
  );
}
