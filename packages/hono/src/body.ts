/**
 * Bodies as web streams. The raw request bytes are read through Hono's own body cache, so the
 * route can still call `c.req.json()`, `c.req.text()` or a validator afterwards and gets the
 * same bytes; `readUpTo` also reads a route's response for the idempotency record.
 */
import { BodyCollector, BodyError } from "@interlock/core";
import type { Context } from "hono";

export interface ReadOptions {
  /** Largest body read, in bytes. */
  limit: number;
  /**
   * Accept text an earlier `c.req.text()`/`c.req.json()` already decoded. Right for a
   * fingerprint (the same body always decodes the same), wrong for a signature: decoding
   * replaces invalid UTF-8 and drops a byte-order mark, so the signed bytes are gone.
   */
  acceptText: boolean;
}

const EMPTY = new Uint8Array(0);

/**
 * The body's bytes (or exact text), or core's `BodyError` when they cannot be had: past the
 * limit (413), or already consumed (500 `body_not_raw`). Bytes already read are used as they are.
 */
export async function readBody(c: Context, options: ReadOptions): Promise<Uint8Array | string | BodyError> {
  // Hono caches the first read under its kind and derives every later one from it, so the
  // first key says what the request's stream became.
  const source = Object.keys(c.req.bodyCache)[0];
  if (source === "arrayBuffer" || source === "blob") return new Uint8Array(await c.req.arrayBuffer());
  if (source === "text" && options.acceptText) return c.req.text();
  if (source !== undefined || c.req.raw.bodyUsed) return notRaw(source);
  const stream = c.req.raw.body;
  if (stream === null) return EMPTY;
  // Refused unread when the sender announces the size.
  if ((declaredLength(c.req.raw.headers) ?? 0) > options.limit) return BodyError.tooLarge(options.limit);
  const read = await readUpTo(stream, options.limit);
  if (read.body === undefined) {
    read.rest.cancel().catch(() => {});
    return BodyError.tooLarge(options.limit);
  }
  // Put back as the request's body. Hono's `c.req.*` readers use the cache anyway; this keeps
  // `c.req.raw` usable too, for a route that streams it on or clones it.
  c.req.raw = new Request(c.req.raw, { body: read.body });
  return read.body;
}

/** Content-Length, when it frames the body (not with Transfer-Encoding, as Hono's `bodyLimit` reads it). */
function declaredLength(headers: Headers): number | undefined {
  const value = headers.get("content-length");
  if (value === null || headers.has("transfer-encoding")) return undefined;
  const length = Number(value);
  return Number.isSafeInteger(length) && length >= 0 ? length : undefined;
}

export type UpTo =
  | { body: Uint8Array<ArrayBuffer> }
  /** Past the limit: nothing kept; `rest` is the whole stream as it was, what was read included. */
  | { body: undefined; rest: ReadableStream<Uint8Array> };

/** Reads a stream chunk by chunk, up to `limit` bytes, never buffering more. */
export async function readUpTo(stream: ReadableStream<Uint8Array>, limit: number): Promise<UpTo> {
  const reader = stream.getReader();
  const body = new BodyCollector(limit);
  for (let read = await reader.read(); !read.done; read = await reader.read()) {
    if (!body.add(read.value)) return { body: undefined, rest: resumed([...body.chunks, read.value], reader) };
  }
  return { body: body.body() as Uint8Array<ArrayBuffer> };
}

/** The chunks already read, then the rest of the reader's stream. */
function resumed(read: Uint8Array[], reader: ReadableStreamDefaultReader<Uint8Array>): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const chunk = read.shift();
      if (chunk !== undefined) return controller.enqueue(chunk);
      const next = await reader.read();
      if (next.done) controller.close();
      else controller.enqueue(next.value);
    },
    cancel: (reason) => reader.cancel(reason),
  });
}

function notRaw(source: string | undefined): BodyError {
  const by = source === undefined ? "by reading c.req.raw directly" : `as ${source} (c.req.${source}() or a validator)`;
  return new BodyError(
    "body_not_raw",
    `the request body was already consumed ${by}, so its raw bytes are gone: ` +
      "register the Interlock middleware before any middleware that reads the body",
  );
}
