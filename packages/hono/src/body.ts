/**
 * Request and response bodies. The raw request bytes are read through Hono's own
 * `c.req.arrayBuffer()` (on Node, @hono/node-server reads the socket straight into a buffer,
 * no web stream) and left in Hono's body cache, so the route's `c.req.json()`, `c.req.text()`,
 * `c.req.parseBody()` or a validator get the same bytes. Like any Hono middleware that reads
 * the body, this consumes `c.req.raw`'s stream. `recording` keeps a route's response as it goes out.
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
const utf8 = new TextDecoder();

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
  const declared = declaredLength(c.req.raw.headers);
  if (declared !== undefined) {
    // Refused unread when too large; otherwise the runtime reads exactly the declared bytes.
    if (declared > options.limit) return BodyError.tooLarge(options.limit);
    const bytes = new Uint8Array(await c.req.arrayBuffer());
    cacheBody(c, bytes);
    return bytes;
  }
  const stream = c.req.raw.body;
  if (stream === null) return EMPTY;
  // Chunked: read piece by piece, never buffering past the limit.
  const read = await readUpTo(stream, options.limit);
  if (read.body === undefined) {
    read.rest.cancel().catch(() => {});
    return BodyError.tooLarge(options.limit);
  }
  cacheBody(c, read.body);
  return read.body;
}

/**
 * Hono's body cache, holding the bytes read here. Hono derives `c.req.text()`/`json()` from a
 * cached ArrayBuffer through a new `Response`, which costs more than the rest of a request;
 * here the text is decoded on first use instead, exactly as `Response.text()` decodes (UTF-8,
 * a leading byte-order mark dropped). A class, not `defineProperty` on Hono's object: the
 * getter lives on the prototype, so no request pays for reshaping an object.
 */
class ReadBodyCache {
  arrayBuffer: Promise<ArrayBuffer>;
  readonly #bytes: Uint8Array;
  #text: Promise<string> | undefined;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    const { buffer, byteOffset, byteLength } = bytes;
    const whole = byteOffset === 0 && byteLength === buffer.byteLength && buffer instanceof ArrayBuffer;
    this.arrayBuffer = Promise.resolve(whole ? buffer : (bytes.slice().buffer as ArrayBuffer));
  }

  get text(): Promise<string> {
    this.#text ??= Promise.resolve(utf8.decode(this.#bytes));
    return this.#text;
  }

  set text(value: Promise<string>) {
    this.#text = value;
  }
}

/** Puts the bytes read in Hono's body cache, for the route's `c.req.*` readers. */
function cacheBody(c: Context, bytes: Uint8Array): void {
  c.req.bodyCache = new ReadBodyCache(bytes) as unknown as typeof c.req.bodyCache;
}

/** Content-Length, when it frames the body (not with Transfer-Encoding, as Hono's `bodyLimit` reads it). */
function declaredLength(headers: Headers): number | undefined {
  const value = headers.get("content-length");
  if (value === null || headers.has("transfer-encoding")) return undefined;
  const length = Number(value);
  return Number.isSafeInteger(length) && length >= 0 ? length : undefined;
}

type UpTo =
  | { body: Uint8Array<ArrayBuffer> }
  /** Past the limit: nothing kept; `rest` is the whole stream as it was, what was read included. */
  | { body: undefined; rest: ReadableStream<Uint8Array> };

/** Reads a stream chunk by chunk, up to `limit` bytes, never buffering more. */
async function readUpTo(stream: ReadableStream<Uint8Array>, limit: number): Promise<UpTo> {
  const reader = stream.getReader();
  const body = new BodyCollector(limit);
  for (let read = await reader.read(); !read.done; read = await reader.read()) {
    if (!body.add(read.value)) return { body: undefined, rest: resumed([...body.chunks, read.value], reader) };
  }
  return { body: body.body() as Uint8Array<ArrayBuffer> };
}

/** A response body recorded as it is read: the stream to send, and a way to record it unread. */
export interface Recording {
  readonly stream: ReadableStream<Uint8Array>;
  /**
   * Reads the body on into `stream`'s queue, with or without a reader: until it ends (`settle`
   * gets its bytes) or passes the limit (`settle` gets `undefined` then, not at the end). A
   * reader that comes later still gets every byte, in order. Never rejects.
   */
  readAhead(): void;
}

/**
 * `stream` as it is read, its bytes kept up to `limit`. When it ends, `settle` gets them
 * (`undefined` past the limit), and the end is passed on only once `settle` is done. When the
 * reader cancels (the client went away) or the stream fails, `settle` gets `undefined`.
 * `settle` is called once.
 */
export function recording(
  stream: ReadableStream<Uint8Array>,
  limit: number,
  settle: (body: Uint8Array | undefined) => Promise<void>,
): Recording {
  const reader = stream.getReader();
  let kept: BodyCollector | undefined = new BodyCollector(limit);
  let settled = false;
  const settleOnce = (body: Uint8Array | undefined) => {
    if (settled) return Promise.resolve();
    settled = true;
    kept = undefined;
    return settle(body);
  };
  /** No more to read: the body ended, failed, or the reader cancelled (`cancelled`: the queue is closed too). */
  let ended = false;
  let cancelled = false;
  let controller: ReadableStreamDefaultController<Uint8Array>;
  /** One chunk from the body into the queue. */
  const readOne = async () => {
    if (ended) return;
    let next: ReadableStreamReadResult<Uint8Array>;
    try {
      next = await reader.read();
    } catch (error) {
      ended = true;
      await settleOnce(undefined);
      if (!cancelled) controller.error(error);
      return;
    }
    if (cancelled) return;
    if (next.done) {
      ended = true;
      await settleOnce(kept?.body());
      if (!cancelled) controller.close();
      return;
    }
    if (kept !== undefined && !kept.add(next.value)) kept = undefined;
    controller.enqueue(next.value);
  };
  // The stream asks for one chunk at a time, and `readAhead` may ask meanwhile: they take turns.
  let reading = Promise.resolve();
  const readInTurn = () => {
    reading = reading.then(readOne);
    return reading;
  };
  const recorded = new ReadableStream<Uint8Array>({
    start(streamController) {
      controller = streamController;
    },
    pull: readInTurn,
    async cancel(reason) {
      cancelled = ended = true;
      await settleOnce(undefined);
      await reader.cancel(reason);
    },
  });
  const readAhead = async () => {
    while (!ended && kept !== undefined) await readInTurn();
    // Past the limit nothing more is kept: the key is released now, whether the rest is ever read.
    await settleOnce(undefined);
  };
  // Nobody awaits this: when `settle` fails, a reader that comes later gets the failure from its read.
  return { stream: recorded, readAhead: () => void readAhead().catch(() => {}) };
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
