/**
 * Reads the request stream once, before any body parser, with a size limit. The bytes are
 * kept per request, so `webhook()` and `idempotency()` on one route share a single read.
 */

import type { IncomingMessage } from "node:http";
import { announcesBody, BodyCollector, BodyError, decodeContent } from "@interlock/core";
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
  if (req.readableDidRead || req.readableEnded) {
    const kept = (ctx.request as { rawBody?: unknown }).rawBody;
    if (middleware === "idempotency" && typeof kept === "string")
      return Buffer.byteLength(kept) > limit ? BodyError.tooLarge(limit) : kept;
    return new BodyError("body_not_raw", notRawMessage(middleware));
  }
  // A declared length over the limit is refused unread; Node drains it after the response.
  if (Number(req.headers["content-length"]) > limit) return BodyError.tooLarge(limit);
  // A client that went away mid-body: 400 `body_incomplete`, refused and reported like any bad
  // body (nothing claimed, so its retry runs), as on Hono, Fastify and the web adapter.
  const body = await collect(req, limit);
  if (body instanceof BodyError) return body;
  if (body === undefined) return BodyError.tooLarge(limit);
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

// One read in progress, kept on its request under this key. The listeners are the same three
// functions for every request, reading it through `this`: no closure, and no promise on top of
// the read's own, made per request. They stay on the request once the read is over, doing
// nothing: after its end a request emits only `close`, and taking three listeners off cost more
// than they hold (a body past the limit is drained through the `data` one).
const READING = Symbol("@interlock/koa.reading");

interface Reading {
  [READING]?: BodyRead | undefined;
}

class BodyRead {
  readonly body: BodyCollector;

  constructor(
    limit: number,
    readonly resolve: (body: Buffer | BodyError | undefined) => void,
  ) {
    this.body = new BodyCollector(limit);
  }
}

/** The request's read, ended now: undefined when it was over already. */
function endReading(req: IncomingMessage): BodyRead | undefined {
  const read = (req as Reading)[READING];
  (req as Reading)[READING] = undefined;
  return read;
}

function onBodyData(this: IncomingMessage, chunk: Buffer): void {
  const read = (this as Reading)[READING];
  if (read === undefined || read.body.add(chunk)) return;
  endReading(this);
  // Keep reading into nothing, so the connection is not left stalled and the 413 arrives.
  this.resume();
  read.resolve(undefined);
}

function onBodyEnd(this: IncomingMessage): void {
  const read = endReading(this);
  read?.resolve(asBuffer(read.body.body() as Uint8Array));
}

// A stream closed before its end, the client gone mid-body or the stream destroyed with an
// error, is 400 `body_incomplete`. No `error` listener: a request emits its error only to
// listeners, and `close` follows it either way.
function onBodyCut(this: IncomingMessage): void {
  endReading(this)?.resolve(BodyError.incomplete());
}

/**
 * The whole body; undefined once it passes `limit` (the rest is drained, not kept); a
 * `BodyError` when the stream fails or closes before its end.
 */
function collect(req: IncomingMessage, limit: number): Promise<Buffer | BodyError | undefined> {
  return new Promise((resolve) => {
    (req as Reading)[READING] = new BodyRead(limit, resolve);
    req.on("data", onBodyData).on("end", onBodyEnd).on("close", onBodyCut);
  });
}
