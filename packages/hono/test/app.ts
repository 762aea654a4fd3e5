/**
 * The scenario table's app (see the contract in core's testing/adapters.ts), built once so
 * Node, Bun and Deno serve exactly the same code (Deno with the packed, built packages).
 */
import type { ScenarioAppOptions } from "@interlock/core/testing";
import { idempotency, webhook } from "@interlock/hono";
import { Hono, type HonoRequest } from "hono";
import { HTTPException } from "hono/http-exception";
import { stream } from "hono/streaming";
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
    const result = await options.handlers.payment(await jsonBody(c.req));
    // A 204 or 304 has no content: Deno's and workerd's Response refuse one, as the Fetch spec says.
    if (result.status === 204 || result.status === 304) return c.body(null, result.status, result.headers);
    return c.json(result.json, result.status as ContentfulStatusCode, result.headers);
  });
  // Hono's stream(): the rows are written in its callback, after the route has returned.
  app.post("/exports", payments, async (c) => {
    const rows = options.handlers.exportRows(await jsonBody(c.req));
    c.header("content-type", "text/csv; charset=utf-8");
    return stream(c, async (out) => {
      for await (const row of rows) await out.write(row);
    });
  });
  app.onError((error, c) =>
    error instanceof HTTPException ? error.getResponse() : c.json({ error: "handler failed" }, 500),
  );
  return app;
}

/** The route's JSON body (undefined when empty); bad JSON is the client's mistake, a 400. */
async function jsonBody(request: HonoRequest): Promise<unknown> {
  const text = await request.text();
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new HTTPException(400, { message: "the request body is not valid JSON" });
  }
}
