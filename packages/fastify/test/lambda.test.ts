/**
 * AWS Lambda behind API Gateway: a Fastify app wrapped by `@fastify/aws-lambda`, invoked with
 * the events API Gateway sends (REST API payload 1.0, HTTP API payload 2.0). The wrapper replays
 * each event through `app.inject()`: the payload is the event's body, decoded from base64 or
 * encoded from its text, and Fastify reads it as the stream of any request. The rows are the
 * harness's.
 */
import awsLambdaFastify from "@fastify/aws-lambda";
import { BINARY_TYPE, describeLambdaRows, type LambdaAppOptions } from "@interlock/test-harness/lambda";
import Fastify, { type FastifyInstance } from "fastify";
import { idempotency, interlock, webhook } from "../src/index.js";

/** The harness's app as the README sets one up: the plugin registered, and awaited, before the routes. */
async function lambdaApp({
  webhook: webhookOptions,
  idempotency: idempotencyOptions,
  work,
}: LambdaAppOptions): Promise<FastifyInstance> {
  const app = Fastify();
  await app.register(interlock);
  // Fastify parses JSON and text; binary bodies need a parser of the app's own, as on a server.
  app.addContentTypeParser(BINARY_TYPE, { parseAs: "buffer" }, (_request, body, done) => done(null, body));
  const deliveries = webhook(webhookOptions);
  app.post("/webhooks", { config: { interlock: deliveries } }, async (request) => {
    work.webhook(request.webhook!.body);
    return { received: true };
  });
  const payments = idempotency({
    ...idempotencyOptions,
    principal: (request) => request.context.headers["x-api-key"] as string | undefined,
  });
  app.post("/payments", { config: { interlock: payments } }, async (request, reply) => {
    const answer = await work.payment({ json: () => request.body, bytes: () => request.body as Buffer });
    if ("bytes" in answer) return reply.code(answer.status).type(BINARY_TYPE).send(Buffer.from(answer.bytes));
    return reply.code(answer.status).send(answer.json);
  });
  return app;
}

describeLambdaRows("@fastify/aws-lambda", {
  // A binary answer must go back base64-encoded: the wrapper does so for the types listed here.
  handler: async (options) => awsLambdaFastify(await lambdaApp(options), { binaryMimeTypes: [BINARY_TYPE] }),
});
