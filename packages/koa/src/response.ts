/**
 * Between Koa and core's plain responses: `answer`/`writeResponse` put a decided response on `ctx`;
 * `captureResponse` reads back what the handler left on `ctx` as the bytes Koa will send.
 */

import type { CapturedResponse, HttpResponse } from "@interlock/core";
import type { Context } from "koa";

/** Statuses whose body Koa strips (`statuses.empty`). */
const EMPTY_STATUSES = new Set([204, 205, 304]);
const EMPTY = new Uint8Array();

/**
 * Writes Interlock's `response`, unless `takeOver` (the app's `onError`) answered itself: it
 * did when it changed `ctx.body` or `ctx.status`.
 */
export async function answer(ctx: Context, response: HttpResponse, takeOver?: () => void | Promise<void>) {
  if (takeOver) {
    const { body, status } = ctx;
    await takeOver();
    if (ctx.body !== body || ctx.status !== status) return;
  }
  writeResponse(ctx, response);
}

/** Writes a response core decided (a refusal, a duplicate, a replay) as the Koa response. */
export function writeResponse(ctx: Context, response: HttpResponse): void {
  ctx.status = response.status;
  const written = new Set<string>();
  for (const [name, value] of response.headers) {
    const lower = name.toLowerCase();
    if (written.has(lower)) ctx.append(name, value);
    else ctx.set(name, value);
    written.add(lower);
  }
  const { body } = response;
  ctx.body = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  // Koa labels a Buffer body application/octet-stream; a response stored without a type has none.
  if (!written.has("content-type")) ctx.remove("Content-Type");
}

/**
 * The handler's response as Koa's `respond()` will serialise it. `body: undefined` (not
 * cached) for a streamed body, and when the app bypassed Koa (`ctx.respond = false`).
 */
export function captureResponse(ctx: Context): CapturedResponse {
  const status = ctx.status;
  const headers = ctx.response.headers;
  const body: unknown = ctx.body;
  if (ctx.respond === false || !ctx.writable) return { status, headers, body: undefined };
  if (EMPTY_STATUSES.has(status)) return { status, headers, body: EMPTY };
  if (body === null || body === undefined) return bodyless(ctx, status, headers);
  if (typeof body === "string" || Buffer.isBuffer(body)) return { status, headers, body };
  if (isStreamed(body)) return { status, headers, body: undefined };
  // JSON.stringify gives undefined for a function body, which Koa ends as an empty response.
  return { status, headers, body: JSON.stringify(body) ?? "" };
}

/** No body: Koa sends the status message as text, or nothing after an explicit `ctx.body = null`. */
function bodyless(ctx: Context, status: number, headers: CapturedResponse["headers"]): CapturedResponse {
  if ((ctx.response as { _explicitNullBody?: boolean })._explicitNullBody) {
    return { status, headers: { ...headers, "content-type": undefined }, body: EMPTY };
  }
  const text = ctx.req.httpVersionMajor >= 2 ? String(status) : ctx.message || String(status);
  return { status, headers: { ...headers, "content-type": "text/plain; charset=utf-8" }, body: text };
}

/** Bodies Koa pipes rather than ends in one piece: Node streams, and (Koa 3) web streams, Blobs, Responses. */
function isStreamed(body: object): boolean {
  return (
    typeof (body as { pipe?: unknown }).pipe === "function" ||
    body instanceof ReadableStream ||
    body instanceof Blob ||
    body instanceof Response
  );
}
