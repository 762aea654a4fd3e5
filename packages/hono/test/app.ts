/**
 * The scenario table's app (see the contract in core's testing/adapters.ts), built once so
 * Node, Bun and Deno serve exactly the same code (Deno with the packed, built packages).
 */
import type { ScenarioAppOptions } from "@interlock/core/testing";
import { idempotency, webhook } from "@interlock/hono";
import { Hono } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";

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
    // A 204 or 304 has no content: Deno's and workerd's Response refuse one, as the Fetch spec says.
    if (result.status === 204 || result.status === 304) return c.body(null, result.status, result.headers);
    return c.json(result.json, result.status as ContentfulStatusCode, result.headers);
  });
  app.onError((_error, c) => c.json({ error: "handler failed" }, 500));
  return app;
}
