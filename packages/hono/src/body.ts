/**
 * The raw request bytes, read through Hono's own body cache: the route can still call
 * `c.req.json()`, `c.req.text()` or a validator afterwards and gets the same bytes.
 */
import { type BodyErrorCode, InterlockConfigError } from "@interlock/core";
import type { Context } from "hono";

export interface ReadOptions<E> {
  /** Largest body read, in bytes. */
  limit: number;
  /**
   * Accept text an earlier `c.req.text()`/`c.req.json()` already decoded. Right for a
   * fingerprint (the same body always decodes the same), wrong for a signature: decoding
   * replaces invalid UTF-8 and drops a byte-order mark, so the signed bytes are gone.
   */
  acceptText: boolean;
  /** The caller's typed error for a body it cannot have (returned, or thrown). */
  fail(code: BodyErrorCode, message: string): E;
}

const EMPTY = new Uint8Array(0);

/** A `bodyLimit` option, checked when the middleware is made. */
export function limitOption(bytes: number | undefined, fallback: number): number {
  const limit = bytes ?? fallback;
  if (typeof limit !== "number" || !(limit > 0)) {
    throw new InterlockConfigError("bodyLimit must be a positive number of bytes");
  }
  return limit;
}

/** The body's bytes (or exact text), or the caller's error when they cannot be had. */
export async function readBody<E>(c: Context, options: ReadOptions<E>): Promise<Uint8Array | string | E> {
  // Hono caches the first read under its kind and derives every later one from it, so the
  // first key says what the request's stream became.
  const source = Object.keys(c.req.bodyCache)[0];
  if (source === "arrayBuffer" || source === "blob") {
    const body = new Uint8Array(await c.req.arrayBuffer());
    return body.byteLength > options.limit ? tooLarge(options) : body;
  }
  if (source === "text" && options.acceptText) return c.req.text();
  if (source !== undefined || c.req.raw.bodyUsed) return notRaw(source, options);
  if (c.req.raw.body === null) return EMPTY;
  if (Number.isFinite(options.limit)) {
    const declared = declaredLength(c.req.raw.headers);
    if (declared === undefined) return readBounded(c, options);
    if (declared > options.limit) return tooLarge(options);
  }
  return refill(c, new Uint8Array(await c.req.arrayBuffer()));
}

/**
 * Puts the bytes back as the request's body. Hono's `c.req.*` readers use the cache anyway;
 * this keeps `c.req.raw` usable too, for a route that streams it on or clones it.
 */
function refill(c: Context, body: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  c.req.raw = new Request(c.req.raw, { body });
  return body;
}

/** Content-Length, when it frames the body (not with Transfer-Encoding, as Hono's `bodyLimit` reads it). */
function declaredLength(headers: Headers): number | undefined {
  const value = headers.get("content-length");
  if (value === null || headers.has("transfer-encoding")) return undefined;
  const length = Number(value);
  return Number.isSafeInteger(length) && length >= 0 ? length : undefined;
}

/** A body of unknown length: read it chunk by chunk and stop at the limit, never buffering more. */
async function readBounded<E>(c: Context, options: ReadOptions<E>): Promise<Uint8Array | E> {
  const reader = (c.req.raw.body as ReadableStream<Uint8Array>).getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (let read = await reader.read(); !read.done; read = await reader.read()) {
    size += read.value.byteLength;
    if (size > options.limit) {
      reader.cancel().catch(() => {});
      return tooLarge(options);
    }
    chunks.push(read.value);
  }
  return refill(c, concat(chunks, size));
}

function concat(chunks: readonly Uint8Array[], size: number): Uint8Array<ArrayBuffer> {
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}

function tooLarge<E>(options: ReadOptions<E>): E {
  return options.fail("body_too_large", `body exceeds ${options.limit} bytes`);
}

function notRaw<E>(source: string | undefined, options: ReadOptions<E>): E {
  const by = source === undefined ? "by reading c.req.raw directly" : `as ${source} (c.req.${source}() or a validator)`;
  return options.fail(
    "body_not_raw",
    `the request body was already consumed ${by}, so its raw bytes are gone: ` +
      "register the Interlock middleware before any middleware that reads the body",
  );
}
