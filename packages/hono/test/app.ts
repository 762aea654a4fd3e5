/**
 * The scenario table's app (see the contract in core's testing/adapters.ts), built once so
 * Node and Bun serve exactly the same code.
 */
import type { ScenarioAppOptions } from "@interlock/core/testing";
import { Hono } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { idempotency, webhook } from "../src/index.js";

export function scenarioApp(options: ScenarioAppOptions): Hono {
  const app = new Hono();
  app.post("/webhooks", webhook(options.webhook), async (c) => {
    const event = c.get("webhook");
    await options.handlers.webhook(event);
    return c.json({ received: event.id });
  });
  const payments = idempotency({
    ...options.idempotency,
    principal: (request) => request.context.req.header("x-api-key"),
  });
  app.on(["GET", "POST"], "/payments", payments, async (c) => {
    const text = await c.req.text();
    const result = await options.handlers.payment(text ? JSON.parse(text) : undefined);
    return c.json(result.json, result.status as ContentfulStatusCode, result.headers);
  });
  app.onError((_error, c) => c.json({ error: "handler failed" }, 500));
  return app;
}
