/**
 * The scenario table's app (see the contract in core's testing/adapters.ts) as one fetch
 * handler, the way an app without a framework routes: by method and path. Built once, so Node,
 * Bun, Deno and workerd serve exactly the same code.
 */
import type { ScenarioAppOptions } from "@interlock/core/testing";
import { withIdempotency, withWebhook } from "@interlock/web";

/**
 * The adapter's own rule the scenario table's streamed-answer row is told (`ScenarioApp`'s
 * `storesStreamedAnswers`), wherever this app is served.
 */
export const STORES_STREAMED_ANSWERS =
  "withIdempotency records a streamed Response body as it is sent and stores it once it ends, within maxRecordBytes (README: a streamed body is stored once it ends)";

export function scenarioApp(options: ScenarioAppOptions): (request: Request) => Promise<Response> {
  const webhook = withWebhook(options.webhook, async (event) => {
    await options.handlers.webhook(event);
    return Response.json({ received: event.id });
  });
  // One middleware configuration for every idempotent route: one key space.
  const idempotent = (route: string, handler: Parameters<typeof withIdempotency>[1]) =>
    withIdempotency(
      { ...options.idempotency, route, principal: (request) => request.context.headers.get("x-api-key") ?? undefined },
      handler,
    );
  const payments = idempotent("/payments", async (request) => {
    const body = await jsonBody(request);
    if (body instanceof Response) return body;
    const result = await options.handlers.payment(body);
    // A 204 or 304 has no content: a Response refuses one, as the Fetch spec says.
    if (result.status === 204 || result.status === 304)
      return new Response(null, { status: result.status, ...(result.headers && { headers: result.headers }) });
    return Response.json(result.json, { status: result.status, ...(result.headers && { headers: result.headers }) });
  });
  const exportRows = idempotent("/exports", async (request) => {
    const body = await jsonBody(request);
    if (body instanceof Response) return body;
    return new Response(readableOf(options.handlers.exportRows(body)), {
      headers: { "content-type": "text/csv; charset=utf-8" },
    });
  });
  return async (request) => {
    const { pathname } = new URL(request.url);
    try {
      if (pathname === "/webhooks" && request.method === "POST") return await webhook(request);
      if (pathname === "/payments" && ["POST", "GET", "HEAD"].includes(request.method)) return await payments(request);
      if (pathname === "/exports" && request.method === "POST") return await exportRows(request);
      return Response.json({ error: "not found" }, { status: 404 });
    } catch {
      return Response.json({ error: "handler failed" }, { status: 500 });
    }
  };
}

/** The JSON body (undefined when empty); bad JSON is the client's mistake, a 400. */
async function jsonBody(request: Request): Promise<unknown> {
  const text = await payloadText(request);
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return Response.json({ error: "the request body is not valid JSON" }, { status: 400 });
  }
}

/**
 * The body's text as the client meant it. A fetch handler gets the body as sent, so one that
 * takes compressed bodies decodes them itself, with or without Interlock (which decoded them for
 * the fingerprint, and refused a coding it does not decode before the handler runs).
 */
async function payloadText(request: Request): Promise<string> {
  const codings = (request.headers.get("content-encoding") ?? "")
    .split(",")
    .map((coding) => coding.trim().toLowerCase())
    .filter((coding) => coding !== "" && coding !== "identity");
  const bytes = await request.arrayBuffer();
  // One coding at most got through; an empty body is empty whatever it names.
  if (codings.length === 0 || bytes.byteLength === 0) return new TextDecoder().decode(bytes);
  const format = ({ "x-gzip": "gzip", br: "brotli" }[codings[0] as string] ?? codings[0]) as CompressionFormat;
  return new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream(format))).text();
}

/** The chunks as a web stream, each pulled from `chunks` as the stream is read. */
function readableOf(chunks: AsyncIterable<string>): ReadableStream<Uint8Array> {
  const iterator = chunks[Symbol.asyncIterator]();
  const encoder = new TextEncoder();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = await iterator.next();
      if (next.done) controller.close();
      else controller.enqueue(encoder.encode(next.value));
    },
    async cancel() {
      await iterator.return?.();
    },
  });
}
