/**
 * AWS Lambda behind API Gateway: an Express app wrapped by `@codegenie/serverless-express` or
 * `serverless-http`, invoked with the events API Gateway sends (REST API payload 1.0, HTTP API
 * payload 2.0). Both turn an event into a request whose stream holds the event's body, and
 * also put those bytes on `req.body` as a Buffer before any parser runs. The rows are the
 * harness's, run on each wrapper.
 */
import serverlessExpress from "@codegenie/serverless-express";
import { MemoryStore, signWebhook, standardWebhooks } from "@interlock/core";
import {
  AWKWARD_JSON,
  apiGatewayEvent,
  type GatewayRequest,
  gatewayAnswer,
  lambdaContext,
  type ProxyResult,
} from "@interlock/test-harness/api-gateway";
import {
  BINARY_TYPE,
  describeLambdaRows,
  type LambdaAppOptions,
  type LambdaHandler,
} from "@interlock/test-harness/lambda";
import express, { type ErrorRequestHandler } from "express";
import serverless from "serverless-http";
import { describe, expect, it } from "vitest";
import { captureRawBody, idempotency, releaseOnError, webhook } from "../src/index.js";
import { asyncRoute } from "./framework.js";
import { SECRET } from "./helpers.js";

const answerError: ErrorRequestHandler = (error, _req, res, _next) => {
  res.status(500).json({ error: (error as Error).message });
};

/** The harness's app on Express: both routes, releasing on a throw, then answering it 500. */
function lambdaApp({ webhook: webhookOptions, idempotency: idempotencyOptions, work }: LambdaAppOptions) {
  const app = express();
  app.post(
    "/webhooks",
    webhook(webhookOptions),
    asyncRoute(async (req, res) => {
      work.webhook(req.webhook!.body);
      res.json({ received: true });
    }),
  );
  app.post(
    "/payments",
    idempotency({ ...idempotencyOptions, principal: (request) => request.context.get("x-api-key") }),
    asyncRoute(async (req, res) => {
      // `idempotency()` parsed the JSON; a binary body stays the Buffer the wrapper put there.
      const answer = await work.payment({ json: () => req.body, bytes: () => req.body as Buffer });
      if ("bytes" in answer) res.status(answer.status).type(BINARY_TYPE).send(Buffer.from(answer.bytes));
      else res.status(answer.status).json(answer.json);
    }),
  );
  app.use(releaseOnError);
  app.use(answerError);
  return app;
}

// A binary answer must go back base64-encoded: each wrapper does so for the types listed here.
const WRAPPERS: Record<string, (app: express.Express) => LambdaHandler> = {
  "@codegenie/serverless-express": (app) => {
    const handler = serverlessExpress({ app, binarySettings: { contentTypes: [BINARY_TYPE] } });
    return (event, context) => handler(event, context, () => {}) as Promise<unknown>;
  },
  "serverless-http": (app) => serverless(app, { binary: [BINARY_TYPE] }) as LambdaHandler,
};

for (const [wrapper, wrap] of Object.entries(WRAPPERS)) {
  describeLambdaRows(wrapper, { handler: (options) => wrap(lambdaApp(options)) });
}

/** An app wrapped for Lambda, invoked with `version`'s events. */
function invoker(wrap: (app: express.Express) => LambdaHandler, version: "1.0" | "2.0", app: express.Express) {
  const handler = wrap(app);
  return async (request: GatewayRequest) => {
    const event = version === "1.0" ? apiGatewayEvent("1.0", request) : apiGatewayEvent("2.0", request);
    return gatewayAnswer((await handler(event, lambdaContext())) as ProxyResult);
  };
}

/** What an authentication middleware does before `idempotency()`: a lookup that awaits. */
const afterALookUp = asyncRoute(async (_req, _res, next) => {
  await new Promise((resolve) => setImmediate(resolve));
  next();
});

// serverless-express marks the request stream unreadable once the app's first synchronous pass
// returns: after anything awaits, the parsers must read the bytes it put on req.body instead.
for (const [wrapper, wrap] of Object.entries(WRAPPERS)) {
  for (const version of ["1.0", "2.0"] as const) {
    describe(`AWS Lambda, API Gateway payload ${version}, ${wrapper}: a middleware that awaits first`, () => {
      it("idempotency() still gives the route the parsed body; a malformed one is the parser's 400", async () => {
        const app = express();
        app.post(
          "/payments",
          afterALookUp,
          idempotency({ store: new MemoryStore(), principal: false }),
          (req, res) => void res.status(201).json({ got: req.body }),
        );
        app.use(((error, _req, res, _next) => {
          res.status(error.status ?? 500).json({ type: error.type });
        }) as ErrorRequestHandler);
        const invoke = invoker(wrap, version, app);
        const post = (key: string, body: string, contentType: string) =>
          invoke({
            path: "/payments",
            headers: [
              ["Content-Type", contentType],
              ["Idempotency-Key", key],
            ],
            body,
          });
        for (const [body, contentType, parsed] of [
          [AWKWARD_JSON, "application/json", JSON.parse(AWKWARD_JSON)],
          ["amount=4200&currency=eur", "application/x-www-form-urlencoded", { amount: "4200", currency: "eur" }],
          ["naïve — ✓ ½", "text/plain; charset=utf-8", "naïve — ✓ ½"],
        ] as const) {
          const key = crypto.randomUUID();
          const first = await post(key, body, contentType);
          expect([first.status, first.json()]).toEqual([201, { got: parsed }]);
          expect((await post(key, body, contentType)).headers["idempotent-replayed"]).toBe("true");
          expect((await post(key, `${body} `, contentType)).status).toBe(422);
        }
        const malformed = await post(crypto.randomUUID(), '{"amount":', "application/json");
        expect([malformed.status, malformed.json()]).toEqual([400, { type: "entity.parse.failed" }]);
      });

      it("an empty body of a type a parser takes: the route gets what the app's own parser gives, not the wrapper's Buffer", async () => {
        const app = express();
        const answerBody: express.RequestHandler = (req, res) =>
          void res.status(201).json({ body: req.body ?? null, buffer: Buffer.isBuffer(req.body) });
        app.post(
          "/parsed",
          afterALookUp,
          express.json(),
          express.urlencoded({ extended: false }),
          express.text(),
          answerBody,
        );
        app.post("/payments", afterALookUp, idempotency({ store: new MemoryStore(), principal: false }), answerBody);
        const invoke = invoker(wrap, version, app);
        for (const contentType of ["application/json", "application/x-www-form-urlencoded", "text/plain"]) {
          const post = (path: string) =>
            invoke({
              path,
              headers: [
                ["Content-Type", contentType],
                ["Idempotency-Key", crypto.randomUUID()],
              ],
              body: "",
            });
          const [parsed, idempotent] = [await post("/parsed"), await post("/payments")];
          expect(parsed.json()).toMatchObject({ buffer: false });
          expect([idempotent.status, idempotent.json()]).toEqual([201, parsed.json()]);
        }
      });

      it("bodyLimit (the serverless guide's body sizes) bounds the wrapper's bytes: 413 body_too_large from idempotency() and webhook()", async () => {
        const app = express();
        const limit = Buffer.byteLength(AWKWARD_JSON) - 1;
        app.post(
          "/webhooks",
          webhook({ scheme: standardWebhooks, secret: SECRET, store: new MemoryStore(), maxBodyBytes: limit }),
          (_req, res) => void res.json({ received: true }),
        );
        app.post(
          "/payments",
          idempotency({ store: new MemoryStore(), principal: false, bodyLimit: limit }),
          (_req, res) => void res.status(201).json({}),
        );
        const invoke = invoker(wrap, version, app);
        const tooLarge = await invoke({
          path: "/payments",
          headers: [
            ["Content-Type", "application/json"],
            ["Idempotency-Key", crypto.randomUUID()],
          ],
          body: AWKWARD_JSON,
        });
        expect([tooLarge.status, (tooLarge.json() as { code: string }).code]).toEqual([413, "body_too_large"]);
        const delivery = await signWebhook({ scheme: standardWebhooks, secret: SECRET, body: AWKWARD_JSON });
        const verified = await invoke({
          path: "/webhooks",
          headers: [...Object.entries(delivery.headers), ["Content-Type", "application/json"]],
          body: AWKWARD_JSON,
        });
        expect([verified.status, (verified.json() as { code: string }).code]).toEqual([413, "body_too_large"]);
      });

      it("the guide's app (a parser with captureRawBody first): parsed bodies with a key or without, deliveries verified", async () => {
        const app = express();
        app.use(express.json({ verify: captureRawBody }));
        app.post(
          "/webhooks",
          webhook({ scheme: standardWebhooks, secret: SECRET, store: new MemoryStore() }),
          (req, res) => void res.json({ received: req.webhook!.body.length, parsed: req.body }),
        );
        app.post(
          "/payments",
          afterALookUp,
          idempotency({ store: new MemoryStore(), principal: false }),
          (req, res) => void res.status(201).json({ got: req.body }),
        );
        const invoke = invoker(wrap, version, app);
        for (const headers of [[], [["Idempotency-Key", crypto.randomUUID()]]] as Array<Array<[string, string]>>) {
          const answer = await invoke({
            path: "/payments",
            headers: [["Content-Type", "application/json"], ...headers],
            body: AWKWARD_JSON,
          });
          expect([answer.status, answer.json()]).toEqual([201, { got: JSON.parse(AWKWARD_JSON) }]);
        }
        const delivery = await signWebhook({ scheme: standardWebhooks, secret: SECRET, body: AWKWARD_JSON });
        const received = await invoke({
          path: "/webhooks",
          headers: [...Object.entries(delivery.headers), ["Content-Type", "application/json"]],
          body: AWKWARD_JSON,
        });
        expect([received.status, received.json()]).toEqual([
          200,
          { received: Buffer.byteLength(AWKWARD_JSON), parsed: JSON.parse(AWKWARD_JSON) },
        ]);
      });
    });
  }
}
