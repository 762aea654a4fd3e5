/**
 * AWS Lambda behind API Gateway: a Hono app as the handler (`handle(app)` from
 * `hono/aws-lambda`), invoked with the events API Gateway sends (REST API payload 1.0, HTTP API
 * payload 2.0). `handle` makes a web `Request` from the event, its body decoded from base64 or
 * encoded from the event's text. The rows are the harness's.
 */
import { BINARY_TYPE, describeLambdaRows, type LambdaAppOptions } from "@interlock/test-harness/lambda";
import { type Context, Hono } from "hono";
import { handle, type LambdaEvent } from "hono/aws-lambda";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { idempotency, type WebhookVariables, webhook } from "../src/index.js";

/** Hono's own answer to a route that threw, as an app usually has one. */
const answerError = (error: Error, c: Context) => c.json({ error: error.message }, 500);

/** The harness's app on Hono: both routes, a throw answered by the app's error handler. */
function lambdaApp({ webhook: webhookOptions, idempotency: idempotencyOptions, work }: LambdaAppOptions) {
  const app = new Hono<{ Variables: WebhookVariables }>();
  app.onError(answerError);
  app.post("/webhooks", webhook(webhookOptions), (c) => {
    work.webhook(c.get("webhook").body);
    return c.json({ received: true });
  });
  app.post(
    "/payments",
    idempotency({ ...idempotencyOptions, principal: (request) => request.context.req.header("x-api-key") }),
    async (c) => {
      // The route reads the body itself, as a Hono route does: the middleware left it readable.
      const answer = await work.payment({
        json: () => c.req.json(),
        bytes: async () => new Uint8Array(await c.req.arrayBuffer()),
      });
      const status = answer.status as ContentfulStatusCode;
      if ("bytes" in answer) return c.body(Uint8Array.from(answer.bytes), status, { "content-type": BINARY_TYPE });
      return c.json(answer.json, status);
    },
  );
  return app;
}

describeLambdaRows("hono/aws-lambda", {
  handler: (options) => {
    const handler = handle(lambdaApp(options));
    // Hono types its events more narrowly than AWS's (no `null` query parameters, which a
    // REST API sends for a request without any); it reads them as sent.
    return (event, context) => handler(event as unknown as LambdaEvent, context);
  },
});
