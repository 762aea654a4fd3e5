/**
 * The shared adapter scenario table (the same rows, statuses and bodies as every other
 * adapter) against the contract app built with Koa and this package's two middlewares.
 */
import { createServer } from "node:http2";
import { Readable } from "node:stream";
import { describeAdapterScenarios, type ScenarioAppOptions } from "@interlock/core/testing";
import { describeHostileClients } from "@interlock/test-harness/hostile-clients";
import { serveHttp2 } from "@interlock/test-harness/http2";
import { describeHttp2Resets } from "@interlock/test-harness/http2-resets";
import { describeProtocolEdges } from "@interlock/test-harness/protocol-edges";
import Koa from "koa";
import { idempotency, webhook } from "../src/index.js";
import { koaMajor } from "./framework.js";
import { serve } from "./serve.js";
import { bodyParser, route } from "./support.js";

function contractApp({ webhook: webhookOptions, idempotency: idempotencyOptions, handlers }: ScenarioAppOptions) {
  const app = new Koa();
  app.silent = true;
  // The contract's error handler: a handler's throw is answered 500 {"error": "handler failed"}.
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      // A client error Koa's own way (ctx.throw(400), as the body parsers do) keeps its status.
      const { status, expose } = error as { status?: number; expose?: boolean };
      if (expose && status !== undefined && status < 500) {
        ctx.status = status;
        ctx.body = (error as Error).message;
      } else {
        ctx.status = 500;
        ctx.body = { error: "handler failed" };
      }
    }
  });
  app.use(
    route("POST", "/webhooks", webhook(webhookOptions), async (ctx) => {
      await handlers.webhook(ctx.state.webhook);
      ctx.body = { received: ctx.state.webhook.id };
    }),
  );
  const idempotent = idempotency({
    ...idempotencyOptions,
    principal: (request) => request.context.get("x-api-key") || undefined,
  });
  app.use(
    route(
      "ALL",
      "/payments",
      idempotent,
      // The app's own body parser, for the requests idempotency() lets through unread.
      bodyParser(),
      async (ctx) => {
        const result = await handlers.payment(ctx.request.body);
        ctx.status = result.status;
        ctx.set(result.headers ?? {});
        ctx.body = result.json;
      },
    ),
  );
  app.use(
    route("POST", "/exports", idempotent, bodyParser(), (ctx) => {
      ctx.status = 200;
      ctx.type = "text/csv";
      ctx.body = Readable.from(handlers.exportRows(ctx.request.body));
    }),
  );
  return app;
}

describeAdapterScenarios("koa", async (options) => serve(contractApp(options)));
describeAdapterScenarios("koa over HTTP/2 (h2c)", async (options) => ({
  ...(await serveHttp2(createServer(contractApp(options).callback()))),
  ...(koaMajor < 3 && {
    unansweredHead: "Koa 2 over HTTP/2 never ends the answer to a HEAD request, with or without Interlock",
  }),
}));
describeHostileClients("koa", async (options) => serve(contractApp(options)));
describeProtocolEdges("koa", async (options) => serve(contractApp(options)));
describeHostileClients(
  "koa over HTTP/2 (h2c)",
  async (options) => serveHttp2(createServer(contractApp(options).callback())),
  { http2: true },
);
describeHttp2Resets("koa over HTTP/2 (h2c)", async (options) =>
  serveHttp2(createServer(contractApp(options).callback())),
);
