/**
 * AWS Lambda behind API Gateway: a Koa app wrapped by `serverless-http`, invoked with the events
 * API Gateway sends (REST API payload 1.0, HTTP API payload 2.0). The wrapper makes a Node
 * request whose stream holds the event's body (decoded from base64 or encoded from its text),
 * and also puts those bytes on `ctx.req.body` as a Buffer, and hands it to `app.callback()`.
 * The rows are the harness's: the idempotency rows with no parser and with the README's.
 */
import {
  BINARY_TYPE,
  describeLambdaIdempotencyRows,
  describeLambdaWebhookRows,
  type LambdaAppOptions,
  type LambdaHost,
} from "@interlock/test-harness/lambda";
import Koa, { type DefaultState, type Middleware } from "koa";
import serverless from "serverless-http";
import { idempotency, type RawBodyContext, type WebhookState, webhook } from "../src/index.js";
import { koaBodyParser } from "./parsers.js";
import { route } from "./support.js";

/** The parsers an app may run before `idempotency()`: none (Interlock reads the body), or the README's. */
const PARSERS: Record<string, Middleware[]> = {
  "no body parser": [],
  "@koa/bodyparser before it": [koaBodyParser()],
};

/** The harness's app on Koa, `parsers` first; Koa answers a route's throw 500. */
function lambdaApp(
  parsers: Middleware[],
  { webhook: webhookOptions, idempotency: idempotencyOptions, work }: LambdaAppOptions,
) {
  const app = new Koa();
  app.silent = true; // the routes' throws are expected: Koa answers them 500 without logging them
  for (const parser of parsers) app.use(parser);
  const receive: Middleware<WebhookState> = async (ctx) => {
    work.webhook(ctx.state.webhook.body);
    ctx.body = { received: true };
  };
  app.use(route("POST", "/webhooks", webhook(webhookOptions), receive));
  const pay: Middleware<DefaultState, RawBodyContext> = async (ctx) => {
    const answer = await work.payment({ json: () => ctx.request.body, bytes: () => ctx.request.rawBody });
    ctx.status = answer.status;
    if ("bytes" in answer) {
      ctx.type = BINARY_TYPE;
      ctx.body = Buffer.from(answer.bytes);
    } else ctx.body = answer.json;
  };
  const payments = idempotency({ ...idempotencyOptions, principal: (request) => request.context.get("x-api-key") });
  app.use(route("POST", "/payments", payments, pay));
  return app;
}

/** The app behind `parsers` as a Lambda handler. */
const host = (parsers: Middleware[]): LambdaHost => ({
  // A binary answer must go back base64-encoded: the wrapper does so for the types listed here.
  handler: (options) => serverless(lambdaApp(parsers, options), { binary: [BINARY_TYPE] }),
});

describeLambdaWebhookRows("serverless-http", host([]));
for (const [parsers, before] of Object.entries(PARSERS)) {
  describeLambdaIdempotencyRows(`serverless-http, ${parsers}`, host(before));
}
