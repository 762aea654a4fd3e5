// The Fastify reference app: Standard Webhooks deliveries (what Svix sends, and every provider
// that adopted the spec) verified on their raw bytes and processed once, and a payments API
// made safe to retry with an Idempotency-Key. Copy what you need.
import { memoryStore, standardWebhooks } from "@interlock/core";
import { idempotency, interlock, webhook } from "@interlock/fastify";
import Fastify from "fastify";
import { bearerToken } from "../shared/bearer.mjs";
import { INVALID_PAYLOAD_DETAIL, payloadObject } from "../shared/payload.mjs";

/** Stands in for your database: what the handlers did, so you (and the test) can look. */
export function memoryDb() {
  return { received: [], payments: new Map() };
}

/**
 * Resolves to the app, ready to listen: the plugin must be registered (awaited) before routes.
 * @param {object} options
 * @param {string | string[]} options.webhookSecret  the endpoint's `whsec_…` secret (a list while rotating)
 * @param {Map<string, string>} options.apiKeys      API key → account id, for `Authorization: Bearer <api key>`
 * @param {import("@interlock/core").InterlockStore} [options.store]  memory by default: one process only
 * @param {ReturnType<typeof memoryDb>} [options.db]
 * @param {import("fastify").FastifyServerOptions} [options.fastify]
 */
export async function createApp({ webhookSecret, apiKeys, store = memoryStore(), db = memoryDb(), fastify = {} }) {
  const app = Fastify(fastify);
  // Once, awaited, before the routes: it adds the hook sets named in `config.interlock` to each
  // route as it is declared. Your content-type parsers stay as they are.
  await app.register(interlock);
  app.decorateRequest("accountId", null);

  // 1. Webhooks: the raw bytes are kept before Fastify's JSON parser runs; webhook-signature is
  //    checked over them (svix-* headers too), and the webhook-id is claimed, so a redelivery is
  //    answered 200 {"duplicate":true} without running the handler again.
  const deliveries = webhook({ scheme: standardWebhooks, secret: webhookSecret, store });
  app.post("/webhooks/svix", { config: { interlock: deliveries } }, async (request, reply) => {
    const event = request.webhook; // verified: id, timestamp, payload
    // Signed, but no event: JSON null, a number, a form body… is a 422 problem, not a 500 on
    // every redelivery (a 4xx releases it too: the sender's log shows why it failed).
    const payload = payloadObject(event);
    if (payload === undefined) return problem(reply, 422, "invalid_payload", INVALID_PAYLOAD_DETAIL);
    db.received.push({ id: event.id, type: payload.type }); // the business work
    // A 2xx records the delivery as processed. Throw, or answer non-2xx, and it is released:
    // the sender's retry will run this handler again.
    return { received: event.id };
  });

  // 2. An idempotent payments API. The route's own preHandler authenticates; Interlock's
  //    idempotency hooks run after the route's own, so `principal` sees the account: one
  //    client can never replay another's payment. The body schema refuses a body that is no
  //    JSON object (text, null, an array) 400 before the key is claimed: the corrected retry runs.
  //    `{}` is a JSON object: the handler refuses it, as any payment that is not valid.
  const idempotent = idempotency({ store, principal: (request) => request.context.accountId, required: true });
  app.post(
    "/payments",
    {
      schema: { body: { type: "object" } },
      preHandler: authenticate(apiKeys),
      config: { interlock: idempotent },
    },
    async (request, reply) => {
      const { amount, currency = "usd" } = request.body ?? {}; // parsed by Fastify, as always
      if (
        !Number.isSafeInteger(amount) ||
        amount <= 0 ||
        typeof currency !== "string" ||
        !/^[a-z]{3}$/.test(currency)
      ) {
        // Stored too (4xx are answers): the same request retried gets the same refusal.
        return problem(reply, 400, "invalid_payment", "amount must be a positive integer (cents), currency 3 letters");
      }
      const payment = {
        id: `pay_${crypto.randomUUID().replaceAll("-", "")}`,
        amount,
        currency,
        account: request.accountId,
        created: new Date().toISOString(),
      };
      db.payments.set(payment.id, payment); // charge the card, write the row…
      return reply.code(201).header("location", `/payments/${payment.id}`).send(payment);
    },
  );

  app.get("/payments/:id", { preHandler: authenticate(apiKeys) }, async (request, reply) => {
    const payment = db.payments.get(request.params.id);
    if (payment === undefined || payment.account !== request.accountId) {
      return problem(reply, 404, "not_found", "no such payment");
    }
    return payment;
  });

  // Errors as problem+json too (a malformed JSON body, a handler that throws). A body with no
  // JSON object, which Fastify's parser (an empty body) or the body schema (JSON that is no
  // object) refused, is answered in this API's words, as the other examples answer it.
  app.setErrorHandler((error, _request, reply) => {
    const status = error.statusCode ?? 500;
    if (status >= 500) console.error(error); // unexpected: the details go to the log, not to the client
    if (error.code === "FST_ERR_CTP_EMPTY_JSON_BODY" || error.validationContext === "body") {
      return problem(reply, 400, "bad_request", "send the payment as a JSON object, Content-Type: application/json");
    }
    return problem(
      reply,
      status,
      status === 500 ? "internal_error" : "bad_request",
      status === 500 ? "" : error.message,
    );
  });
  return app;
}

/** `Authorization: Bearer <api key>` (strictly: see bearerToken) → `request.accountId`, or 401. */
function authenticate(apiKeys) {
  return async (request, reply) => {
    const accountId = apiKeys.get(bearerToken(request.headers.authorization));
    if (accountId === undefined) {
      reply.header("www-authenticate", "Bearer");
      return problem(reply, 401, "unauthenticated", "send Authorization: Bearer <api key>");
    }
    request.accountId = accountId;
  };
}

function problem(reply, status, code, detail) {
  const body = { type: `urn:example:problem:${code}`, title: code.replaceAll("_", " "), status, detail, code };
  return reply.code(status).type("application/problem+json").send(JSON.stringify(body));
}
