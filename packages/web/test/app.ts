/**
 * The scenario table's app (see the contract in core's testing/adapters.ts) as one fetch
 * handler, the way an app without a framework routes: by method and path. Built once, so Node,
 * Bun, Deno and workerd serve exactly the same code.
 */
import type { ScenarioAppOptions } from "@interlock/core/testing";
import { withIdempotency, withWebhook } from "@interlock/web";

export function scenarioApp(options: ScenarioAppOptions): (request: Request) => Promise<Response> {
  const webhook = withWebhook(options.webhook, async (event) => {
    await options.handlers.webhook(event);
    return Response.json({ received: event.id });
  });
  const payments = withIdempotency(
    {
      ...options.idempotency,
      route: "/payments",
      principal: (request) => request.context.headers.get("x-api-key") ?? undefined,
    },
    async (request) => {
      const body = await jsonBody(request);
      if (body instanceof Response) return body;
      const result = await options.handlers.payment(body);
      // A 204 or 304 has no content: a Response refuses one, as the Fetch spec says.
      if (result.status === 204 || result.status === 304)
        return new Response(null, { status: result.status, ...(result.headers && { headers: result.headers }) });
      return Response.json(result.json, { status: result.status, ...(result.headers && { headers: result.headers }) });
    },
  );
  return async (request) => {
    const { pathname } = new URL(request.url);
    try {
      if (pathname === "/webhooks" && request.method === "POST") return await webhook(request);
      if (pathname === "/payments" && ["POST", "GET", "HEAD"].includes(request.method)) return await payments(request);
      return Response.json({ error: "not found" }, { status: 404 });
    } catch {
      return Response.json({ error: "handler failed" }, { status: 500 });
    }
  };
}

/** The JSON body (undefined when empty); bad JSON is the client's mistake, a 400. */
async function jsonBody(request: Request): Promise<unknown> {
  const text = await request.text();
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return Response.json({ error: "the request body is not valid JSON" }, { status: 400 });
  }
}
