// The Koa reference app: Shopify webhooks verified on their raw bytes and processed once, and a
// payments API made safe to retry with an Idempotency-Key. No router or body parser needed (the
// tiny `route()` below stands in for @koa/router). Copy what you need.
import { memoryStore, shopify } from "@interlock/core";
import { idempotency, webhook } from "@interlock/koa";
import Koa from "koa";
import { bearerToken } from "../shared/bearer.mjs";
import { INVALID_PAYLOAD_DETAIL, payloadObject } from "../shared/payload.mjs";

/** Stands in for your database: what the handlers did, so you (and the test) can look. */
export function memoryDb() {
  return { orders: [], payments: new Map() };
}

/**
 * @param {object} options
 * @param {string | string[]} options.shopifySecret  the app's client secret (a list while rotating)
 * @param {Map<string, string>} options.apiKeys      API key → account id, for `Authorization: Bearer <api key>`
 * @param {import("@interlock/core").InterlockStore} [options.store]  memory by default: one process only
 * @param {ReturnType<typeof memoryDb>} [options.db]
 */
export function createApp({ shopifySecret, apiKeys, store = memoryStore(), db = memoryDb() }) {
  const app = new Koa();

  // Errors as problem+json (a malformed JSON body, a handler that throws). Outermost, so
  // Interlock's middlewares see the throw first and release the delivery or key.
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      const status = error.status ?? 500;
      if (status >= 500) console.error(error); // unexpected: the details go to the log, not to the client
      problem(ctx, status, status === 500 ? "internal_error" : "bad_request", error.expose ? error.message : "");
    }
  });

  // 1. Webhooks, before any body parser: webhook() reads the raw bytes itself, checks
  //    X-Shopify-Hmac-Sha256 over them, and claims the delivery's event id (X-Shopify-Event-Id,
  //    else X-Shopify-Webhook-Id), so a redelivery is answered 200 {"duplicate":true} without
  //    running the handler again.
  app.use(
    route("POST", "/webhooks/shopify", webhook({ scheme: shopify, secret: shopifySecret, store }), (ctx) => {
      const delivery = ctx.state.webhook; // verified: id, payload, body (the raw bytes)
      // Signed, but no event: JSON null, a number, a form body… is a 422 problem, not a 500 on
      // every redelivery (a 4xx releases it too: Shopify's log shows why it failed).
      const payload = payloadObject(delivery);
      if (payload === undefined) return problem(ctx, 422, "invalid_payload", INVALID_PAYLOAD_DETAIL);
      const topic = ctx.get("x-shopify-topic");
      if (topic === "orders/paid") db.orders.push({ id: delivery.id, order: payload.id }); // fulfil it
      // A 2xx records the delivery as processed. Throw, or answer non-2xx, and it is released:
      // Shopify's retry will run this handler again.
      ctx.body = { received: delivery.id };
    }),
  );

  // 2. An idempotent payments API. Authentication runs first so that keys are scoped per
  //    account: one client can never replay another's payment. idempotency() reads the body
  //    (it needs the bytes) and leaves the parsed JSON on ctx.request.body.
  app.use(
    route(
      "POST",
      "/payments",
      authenticate(apiKeys),
      idempotency({ store, principal: (request) => request.context.state.accountId, required: true }),
      (ctx) => {
        const body = ctx.request.body; // bad JSON throws 400 here, as a Koa body parser answers it
        // An empty (or blank) body is parsed `{}`, as the Koa body parsers do: told by its bytes,
        // it is no payment sent, where `{}` sent is an empty payment (400 invalid_payment below).
        const sent = ctx.request.rawBody?.toString().trim() !== "";
        if (!sent || typeof body !== "object" || body === null || Array.isArray(body)) {
          // No JSON object (none, text, null, an array): thrown, so idempotency() releases the key
          // and the client's corrected retry runs; answered 400 by the error handler above.
          ctx.throw(400, "send the payment as a JSON object, Content-Type: application/json");
        }
        const { amount, currency = "usd" } = body;
        if (
          !Number.isSafeInteger(amount) ||
          amount <= 0 ||
          typeof currency !== "string" ||
          !/^[a-z]{3}$/.test(currency)
        ) {
          // Stored too (4xx are answers): the same request retried gets the same refusal.
          return problem(ctx, 400, "invalid_payment", "amount must be a positive integer (cents), currency 3 letters");
        }
        const payment = {
          id: `pay_${crypto.randomUUID().replaceAll("-", "")}`,
          amount,
          currency,
          account: ctx.state.accountId,
          created: new Date().toISOString(),
        };
        db.payments.set(payment.id, payment); // charge the card, write the row…
        ctx.status = 201;
        ctx.set("location", `/payments/${payment.id}`);
        ctx.body = payment;
      },
    ),
  );

  app.use(
    route("GET", /^\/payments\/(?<id>[^/]+)$/, authenticate(apiKeys), (ctx) => {
      const payment = db.payments.get(ctx.params.id);
      if (payment === undefined || payment.account !== ctx.state.accountId) {
        return problem(ctx, 404, "not_found", "no such payment");
      }
      ctx.body = payment;
    }),
  );

  return app;
}

/**
 * Runs `middleware` in turn for one method and path (a string, or a RegExp whose named groups
 * become `ctx.params`); other requests go on. What @koa/router does, in a few lines.
 */
function route(method, path, ...middleware) {
  return (ctx, next) => {
    const match = typeof path === "string" ? ctx.path === path && {} : path.exec(ctx.path)?.groups;
    if (ctx.method !== method || !match) return next();
    ctx.params = { ...match };
    const run = (i) => Promise.resolve(middleware[i]?.(ctx, () => run(i + 1)));
    return run(0);
  };
}

/** `Authorization: Bearer <api key>` (strictly: see bearerToken) → `ctx.state.accountId`, or 401. */
function authenticate(apiKeys) {
  return async (ctx, next) => {
    const accountId = apiKeys.get(bearerToken(ctx.get("authorization")));
    if (accountId === undefined) {
      ctx.set("www-authenticate", "Bearer");
      return problem(ctx, 401, "unauthenticated", "send Authorization: Bearer <api key>");
    }
    ctx.state.accountId = accountId;
    await next();
  };
}

function problem(ctx, status, code, detail) {
  ctx.status = status;
  ctx.type = "application/problem+json";
  ctx.body = JSON.stringify({
    type: `urn:example:problem:${code}`,
    title: code.replaceAll("_", " "),
    status,
    detail,
    code,
  });
}
