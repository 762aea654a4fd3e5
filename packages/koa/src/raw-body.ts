/**
 * Reads the request stream once, before any body parser, with a size limit. The bytes are
 * kept per request, so `webhook()` and `idempotency()` on one route share a single read.
 */

import type { IncomingMessage } from "node:http";
import { announcesBody, BodyError, decodeContent, readRequestBody, requestCutOff } from "@interlock/core";
import type { Context } from "koa";
import { notRawMessage } from "./errors.js";
import { exposeBody } from "./parse.js";

const EMPTY = Buffer.alloc(0);
// Kept on the request itself. Not a WeakMap: every WeakMap entry is an ephemeron the collector
// re-examines, which costs more than the request.
const RAW_BODY = Symbol("@interlock/koa.rawBody");

interface Remembered {
  [RAW_BODY]?: Buffer;
}

/**
 * The body's bytes, or core's `BodyError` when they are too many (413) or already read by a
 * parser (500 `body_not_raw`). For `idempotency()`, the text `@koa/bodyparser` and
 * `koa-bodyparser` keep on `ctx.request.rawBody` is accepted too: the same request always
 * decodes to the same text, enough for a fingerprint, never for a signature.
 */
export async function readRawBody(
  ctx: Context,
  limit: number,
  middleware: "webhook" | "idempotency",
): Promise<Buffer | string | BodyError> {
  const req = ctx.req;
  // Bytes or text kept by an earlier read are held to this limit too: the webhook's, or the
  // app's parser, may allow more than `bodyLimit`.
  const known = (req as Remembered)[RAW_BODY];
  if (known !== undefined) return known.byteLength > limit ? BodyError.tooLarge(limit) : known;
  // Nothing announced, nothing lost: whoever comes next still gets the (empty) stream untouched,
  // but the app's parser never gets one that names a coding (`codedEmptyBody`).
  if (!announcesBody(req)) return remember(req, EMPTY, ctx, middleware === "idempotency" && codedEmptyBody(req));
  // Whether a parser read the body is the stream's to say, not `ctx.request.body`'s: @koa/bodyparser
  // and koa-bodyparser set that to `{}` for a type they do not parse (binary), leaving its bytes unread.
  // A stream ended by its client's leaving (an HTTP/2 reset while a middleware before this one
  // ran) was read by nobody: core's reader refuses it `body_incomplete`.
  if (req.readableDidRead || (req.readableEnded && !requestCutOff(req))) {
    const kept = (ctx.request as { rawBody?: unknown }).rawBody;
    if (middleware === "idempotency" && typeof kept === "string")
      return Buffer.byteLength(kept) > limit ? BodyError.tooLarge(limit) : kept;
    return new BodyError("body_not_raw", notRawMessage(middleware));
  }
  // Past the limit, declared by its Content-Length or found while reading: 413 at once. A client
  // that went away mid-body, even before this read began: 400 `body_incomplete`, refused and
  // reported like any bad body (nothing claimed, so its retry runs), as on Hono, Fastify and the
  // web adapter.
  const read = await readRequestBody(req, limit);
  if (read instanceof BodyError) return read;
  const body = asBuffer(read);
  // Not for webhook(): core refuses every compressed delivery (415) before its body is read.
  const payload =
    middleware === "idempotency" && req.headers["content-encoding"] !== undefined
      ? await decoded(req, body, limit)
      : body;
  return payload instanceof BodyError ? payload : remember(req, payload, ctx, true);
}

/**
 * The body decoded as its `Content-Encoding` says (core's `decodeContent`): what the fingerprint
 * covers and the handler reads, as the Koa body parsers inflate it; a refusal, before a key is
 * claimed, for a coding not decoded (415), data that does not decode (400), or a body that
 * decodes past the limit (413).
 */
async function decoded(req: IncomingMessage, body: Buffer, limit: number): Promise<Buffer | BodyError> {
  const payload = await decodeContent(body, req.headers["content-encoding"], limit);
  return payload instanceof BodyError ? payload : asBuffer(payload);
}

/**
 * An empty body (`Content-Length: 0`) that names a `Content-Encoding`: the empty payload, as
 * `decodeContent` takes it, kept from the app's body parser, which would inflate it as its coding
 * says and fail (zlib's "unexpected end of file", a 500) where the same body sent plain is `{}`.
 */
function codedEmptyBody(req: IncomingMessage): boolean {
  return req.headers["content-encoding"] !== undefined && req.headers["content-length"] !== undefined;
}

function remember(req: IncomingMessage, body: Buffer, ctx: Context, consumed: boolean): Buffer {
  (req as Remembered)[RAW_BODY] = body;
  exposeBody(ctx, body, consumed);
  return body;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
