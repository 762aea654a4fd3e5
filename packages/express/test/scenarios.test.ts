/**
 * The shared adapter scenario table over real HTTP on 127.0.0.1, twice: with no body parser
 * (the middlewares read the body themselves) and with a global `express.json()` that keeps
 * the raw bytes through `captureRawBody`, the setup most apps have.
 */
import { describeAdapterScenarios, type ScenarioAppOptions } from "@interlock/core/testing";
import express, { type ErrorRequestHandler, type Express } from "express";
import { captureRawBody, idempotency, releaseOnError, webhook } from "../src/index.js";
import { asyncRoute } from "./framework.js";
import { listen } from "./helpers.js";

function scenarioApp(options: ScenarioAppOptions, setup: (app: Express) => void = () => {}) {
  const app = express();
  setup(app);
  const { handlers } = options;
  app.post(
    "/webhooks",
    webhook(options.webhook),
    asyncRoute(async (req, res) => {
      const event = req.webhook!;
      await handlers.webhook(event);
      res.json({ received: event.id });
    }),
  );
  const idempotent = idempotency({ ...options.idempotency, principal: (request) => request.context.get("x-api-key") });
  const payments = asyncRoute(async (req, res) => {
    const result = await handlers.payment(req.body);
    res
      .status(result.status)
      .set(result.headers ?? {})
      .json(result.json);
  });
  app.post("/payments", idempotent, payments);
  app.get("/payments", idempotent, payments);
  const onError: ErrorRequestHandler = (_error, _req, res, _next) => {
    res.status(500).json({ error: "handler failed" });
  };
  app.use(releaseOnError, onError);
  return listen(app);
}

describeAdapterScenarios("express", (options) => scenarioApp(options));

describeAdapterScenarios("express + express.json({ verify: captureRawBody })", (options) =>
  scenarioApp(options, (app) => app.use(express.json({ verify: captureRawBody }))),
);
