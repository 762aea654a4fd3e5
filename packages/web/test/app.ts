/**
 * The scenario table's app (see the contract in core's testing/adapters.ts) as one fetch
 * handler, the way an app without a framework routes: by method and path. Built once, so Node,
 * Bun, Deno and workerd serve exactly the same code.
 */
import type { ScenarioAppOptions } from "@interlock/core/testing";
import { readBytes, readJson, type WithIdempotencyOptions, withIdempotency, withWebhook } from "@interlock/web";

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
  const read = readRoutes({
    webhook: options.webhook,
    idempotency: {
      ...options.idempotency,
      principal: (request) => request.context.headers.get("x-api-key") ?? undefined,
    },
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
      const readRoute = read(request);
      if (readRoute) return await readRoute;
      return Response.json({ error: "not found" }, { status: 404 });
    } catch {
      return Response.json({ error: "handler failed" }, { status: 500 });
    }
  };
}

/** `withIdempotency`'s `bodyLimit` on `POST /read/json`: over `readJson`'s own default of 1 MiB. */
export const READ_BODY_LIMIT = 2 * 1024 * 1024;

/** The JSON a read route parsed, as it answers it: the value itself only when its JSON is short. */
const ECHOED_JSON_CHARS = 4096;

/**
 * The routes whose handlers read their body with `readJson` and `readBytes` rather than the
 * request's own methods (test/read-routes.ts sends to them on every runtime), served by the
 * scenario app and by the Workers fixture:
 * - `POST /read/json`: `withIdempotency` with `bodyLimit: READ_BODY_LIMIT`; `readJson(request)`,
 *   without options, answered 201;
 * - `POST /read/webhook`: `withWebhook`; `readJson(request)` in its handler, answered 200 with the
 *   delivery's id and whether what it read is `event.payload`.
 *
 * Each answers what it parsed (`json`, when its JSON is at most 4096 characters; always its
 * length, `jsonChars`, and SHA-256, `jsonSha256`), `request.bodyUsed` before and after
 * `readJson`, and what a second read (`readBytes`) did: `"TypeError"` when it threw one. The
 * client's mistakes `readJson` throws are the wrappers' to answer. Undefined for any other request.
 */
export function readRoutes(options: {
  webhook: ScenarioAppOptions["webhook"];
  idempotency: WithIdempotencyOptions;
}): (request: Request) => Promise<Response> | undefined {
  const json = withIdempotency(
    { ...options.idempotency, route: "/read/json", bodyLimit: READ_BODY_LIMIT },
    async (request) => {
      const bodyUsedBefore = request.bodyUsed;
      const parsed = await readJson(request);
      return Response.json({ ...(await readReport(request, parsed)), bodyUsedBefore }, { status: 201 });
    },
  );
  const webhook = withWebhook(options.webhook, async (event, request) => {
    const bodyUsedBefore = request.bodyUsed;
    const parsed = await readJson(request);
    return Response.json({
      received: event.id,
      isPayload: JSON.stringify(parsed) === JSON.stringify(event.payload),
      ...(await readReport(request, parsed)),
      bodyUsedBefore,
    });
  });
  return (request) => {
    const route = `${request.method} ${new URL(request.url).pathname}`;
    if (route === "POST /read/json") return json(request);
    if (route === "POST /read/webhook") return webhook(request);
    return undefined;
  };
}

/** What a read route answers once `readJson` gave it `parsed` (see `readRoutes`). */
async function readReport(request: Request, parsed: unknown) {
  const bodyUsed = request.bodyUsed;
  let secondRead: string;
  try {
    secondRead = `read ${(await readBytes(request)).byteLength} bytes`;
  } catch (error) {
    secondRead = error instanceof TypeError ? "TypeError" : `${(error as Error).name}: ${(error as Error).message}`;
  }
  const text = JSON.stringify(parsed);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return {
    ...(text.length <= ECHOED_JSON_CHARS && { json: parsed }),
    jsonChars: text.length,
    jsonSha256: Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join(""),
    bodyUsed,
    secondRead,
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
