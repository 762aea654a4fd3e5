// The Hono reference app: GitHub webhooks verified on their raw bytes and processed once, and
// a payments API made safe to retry with an Idempotency-Key. Web standards only (no `node:`
// imports, no Buffer), so this one file runs on Node (server.mjs), Bun, Deno and Workers.
import { github, memoryStore } from "@interlock/core";
import { idempotency, webhook } from "@interlock/hono";
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { bearerToken } from "../shared/bearer.mjs";
import { apiKeysFrom, checkedAtStart, hostFrom, portFrom, StartupError } from "../shared/config.mjs";
import { INVALID_PAYLOAD_DETAIL, payloadObject } from "../shared/payload.mjs";

/** Stands in for your database: what the handlers did, so you (and the test) can look. */
export function memoryDb() {
  return { deliveries: [], payments: new Map() };
}

/**
 * @param {object} options
 * @param {string | string[]} options.githubSecret  the webhook's secret (a list while rotating)
 * @param {Map<string, string>} options.apiKeys     API key → account id, for `Authorization: Bearer <api key>`
 * @param {import("@interlock/core").InterlockStore} [options.store]  memory by default: one process only
 * @param {ReturnType<typeof memoryDb>} [options.db]
 */
export function createApp({ githubSecret, apiKeys, store = memoryStore(), db = memoryDb() }) {
  const app = new Hono();

  // 1. Webhooks: webhook() reads the raw bytes first (before anything parses them), checks
  //    X-Hub-Signature-256 over them, and claims the X-GitHub-Delivery id, so a redelivery is
  //    answered 200 {"duplicate":true} without running the handler again.
  app.post("/webhooks/github", webhook({ scheme: github, secret: githubSecret, store }), (c) => {
    const delivery = c.get("webhook"); // verified: id, payload (decoded on first use), body
    const event = c.req.header("x-github-event");
    // Signed, but no event: JSON null, a number, a form body without `payload=`… is a 422
    // problem, not a 500 on every redelivery (a 4xx releases it too: GitHub's log shows why).
    const payload = payloadObject(delivery);
    if (payload === undefined) return problem(c, 422, "invalid_payload", INVALID_PAYLOAD_DETAIL);
    if (event === "push") {
      db.deliveries.push({ id: delivery.id, event, head: payload.after }); // deploy, sync, …
    }
    // A 2xx records the delivery as processed. Throw, or answer non-2xx, and it is released:
    // a redelivery will run this handler again.
    return c.json({ received: delivery.id });
  });

  // 2. An idempotent payments API. Authentication runs first so that keys are scoped per
  //    account: one client can never replay another's payment.
  app.post(
    "/payments",
    authenticate(apiKeys),
    idempotency({ store, principal: (request) => request.context.get("accountId"), required: true }),
    async (c) => {
      // The body is still yours to parse (idempotency() decodes a compressed one for you). One
      // that is no JSON object (bad JSON, none, null, an array) is the client's mistake: thrown
      // as an HTTPException, it is answered 400 and releases the key, so the corrected retry runs.
      const body = await c.req.json().catch(() => undefined);
      if (typeof body !== "object" || body === null || Array.isArray(body)) {
        throw badRequest("send the payment as a JSON object, Content-Type: application/json");
      }
      const { amount, currency = "usd" } = body;
      if (
        !Number.isSafeInteger(amount) ||
        amount <= 0 ||
        typeof currency !== "string" ||
        !/^[a-z]{3}$/.test(currency)
      ) {
        // Stored too (4xx are answers): the same request retried gets the same refusal.
        return problem(c, 400, "invalid_payment", "amount must be a positive integer (cents), currency 3 letters");
      }
      const payment = {
        id: `pay_${crypto.randomUUID().replaceAll("-", "")}`,
        amount,
        currency,
        account: c.get("accountId"),
        created: new Date().toISOString(),
      };
      db.payments.set(payment.id, payment); // charge the card, write the row…
      return c.json(payment, 201, { location: `/payments/${payment.id}` });
    },
  );

  app.get("/payments/:id", authenticate(apiKeys), (c) => {
    const payment = db.payments.get(c.req.param("id"));
    if (payment === undefined || payment.account !== c.get("accountId")) {
      return problem(c, 404, "not_found", "no such payment");
    }
    return c.json(payment);
  });

  app.notFound((c) => problem(c, 404, "not_found", "no such route"));
  // A handler that throws: the middleware has released its delivery or key, so a retry runs
  // again. An HTTPException (a client's mistake) is answered as it says, anything else 500, its
  // details in the log, not in the answer.
  app.onError((error, c) => {
    if (error instanceof HTTPException) return error.getResponse();
    console.error(error);
    return problem(c, 500, "internal_error", "");
  });
  return app;
}

/** `Authorization: Bearer <api key>` (strictly: see bearerToken) → `c.get("accountId")`, or 401. */
function authenticate(apiKeys) {
  return async (c, next) => {
    const accountId = apiKeys.get(bearerToken(c.req.header("authorization")));
    if (accountId === undefined) {
      c.header("www-authenticate", "Bearer");
      return problem(c, 401, "unauthenticated", "send Authorization: Bearer <api key>");
    }
    c.set("accountId", accountId);
    await next();
  };
}

function problem(c, status, code, detail) {
  return c.body(problemJson(status, code, detail), status, { "content-type": "application/problem+json" });
}

/** A client's mistake, to throw: answered 400 problem+json by app.onError. */
function badRequest(detail) {
  const res = new Response(problemJson(400, "bad_request", detail), {
    status: 400,
    headers: { "content-type": "application/problem+json" },
  });
  return new HTTPException(400, { res });
}

function problemJson(status, code, detail) {
  return JSON.stringify({
    type: `urn:example:problem:${code}`,
    title: code.replaceAll("_", " "),
    status,
    detail,
    code,
  });
}

/**
 * Bun (`bun app.mjs`), Deno (`deno serve app.mjs`) and Cloudflare Workers (`main = "app.mjs"`)
 * serve this default export. The app is made on the first request, from the Workers bindings
 * (`env`) or the process environment: GITHUB_WEBHOOK_SECRET and API_KEYS.
 */
let served;
export default {
  // Where Bun listens: PORT and HOST read as server.mjs reads them on Node (Bun would take
  // PORT=abc for its default, 3000), loopback unless HOST says otherwise (Bun's own default is
  // every interface). `deno serve` takes --port and --host instead; Workers ignore both. Getters:
  // read when Bun serves this, not when server.mjs imports the file on Node.
  get port() {
    return checkedAtStart(() => portFrom(globalThis.process?.env ?? {}, "PORT", undefined));
  },
  get hostname() {
    return checkedAtStart(() => hostFrom(globalThis.process?.env ?? {}));
  },
  fetch(request, env, ctx) {
    served ??= createApp(configFrom(env));
    return served.fetch(request, env, ctx);
  },
};

// Bun and Deno run this file as their main module: its configuration is checked as they start,
// not on the first request. Workers get theirs (the bindings) with a request: checked then.
if (import.meta.main) checkedAtStart(configFrom);

/** The app's settings from the Workers bindings (`env`) or the process environment; node server.mjs uses it too. */
export function configFrom(env) {
  const read = (name) =>
    (typeof env?.[name] === "string" ? env[name] : undefined) ??
    globalThis.process?.env?.[name] ??
    globalThis.Deno?.env.get(name);
  const githubSecret = read("GITHUB_WEBHOOK_SECRET");
  const apiKeys = read("API_KEYS");
  if (!githubSecret || !apiKeys) {
    throw new StartupError('Set GITHUB_WEBHOOK_SECRET and API_KEYS ("sk_test_1:acct_1,…"); see README.md.');
  }
  return { githubSecret, apiKeys: apiKeysFrom(apiKeys) };
}
