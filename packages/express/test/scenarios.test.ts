/**
 * The shared adapter scenario table over real HTTP on 127.0.0.1, twice: with no body parser
 * (the middlewares read the body themselves) and with a global `express.json()` that keeps
 * the raw bytes through `captureRawBody`, the setup most apps have.
 */
import { Readable } from "node:stream";
import { describeAdapterScenarios, type ScenarioAppOptions } from "@interlock/core/testing";
import { describeHostileClients } from "@interlock/test-harness/hostile-clients";
import { describeProtocolEdges } from "@interlock/test-harness/protocol-edges";
import express, { type ErrorRequestHandler, type Express } from "express";
import { captureRawBody, idempotency, releaseOnError, webhook } from "../src/index.js";
import { asyncRoute } from "./framework.js";
import { listen } from "./helpers.js";

const isClientError = (error: unknown): error is { status: number; message: string } => {
  const status = (error as { status?: unknown } | null)?.status;
  return typeof status === "number" && status >= 400 && status < 500;
};

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
  app.post("/exports", idempotent, (req, res) => {
    res.status(200).type("text/csv");
    Readable.from(handlers.exportRows(req.body)).pipe(res);
  });
  const onError: ErrorRequestHandler = (error, _req, res, _next) => {
    // A body parser's client error keeps its status, as Express's default handler answers it.
    if (isClientError(error)) res.status(error.status).send(error.message);
    else res.status(500).json({ error: "handler failed" });
  };
  app.use(releaseOnError, onError);
  return listen(app);
}

describeAdapterScenarios("express", (options) => scenarioApp(options));
describeHostileClients("express", (options) => scenarioApp(options));
describeProtocolEdges("express", (options) => scenarioApp(options));

describeAdapterScenarios("express + express.json({ verify: captureRawBody })", async (options) => ({
  ...(await scenarioApp(options, (app) => app.use(express.json({ verify: captureRawBody })))),
  parsesBodiesFirst: "express.json() runs before idempotency(): it decodes a compressed body, or refuses it itself",
}));
describeHostileClients("express + express.json({ verify: captureRawBody })", (options) =>
  scenarioApp(options, (app) => app.use(express.json({ verify: captureRawBody }))),
);
