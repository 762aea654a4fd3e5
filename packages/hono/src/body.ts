/**
 * Request and response bodies. The raw request bytes are read through Hono's own
 * `c.req.arrayBuffer()` (on Node, @hono/node-server reads the socket straight into a buffer,
 * no web stream) and left in Hono's body cache, so the route's `c.req.json()`, `c.req.text()`,
 * `c.req.parseBody()` or a validator get the same bytes. Like any Hono middleware that reads
 * the body, this consumes `c.req.raw`'s stream.
 */
import { BodyError, contentCodings, declaredLength, decodeContent, readStreamUpTo, utf8 } from "@interlock/core";
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
  /**
   * Decode a body sent with a `Content-Encoding` (core's `decodeContent`): the payload is what is
   * returned and what the route's `c.req` readers get. Right for a fingerprint, as Express's and
   * Koa's parsers decode; never for a signature (core refuses a compressed delivery unread).
   */
  decode: boolean;
}

const EMPTY = new Uint8Array(0);

/**
 * The body's bytes (or exact text), or core's `BodyError` when they cannot be had: past the
 * limit (413), cut off by a client that went away (400 `body_incomplete`), or already consumed
 * (500 `body_not_raw`); with `options.decode`, also a coding not decoded (415), data that does
 * not decode (400) or a payload past the limit (413). Bytes an earlier middleware read are held
 * to the same rules as those read here: the app's own reader bounds nothing.
 */
export async function readBody(c: Context, options: ReadOptions): Promise<Uint8Array | string | BodyError> {
  const source = cachedKind(c);
  if (source === "arrayBuffer" || source === "blob") return keptBytes(c, options);
  if (source === "text" && options.acceptText) return keptText(c, await c.req.text(), options);
  if (source !== undefined || c.req.raw.bodyUsed) return notRaw(source);
  const declared = declaredLength(c.req.raw.headers);
  if (declared !== undefined) {
    // Refused unread when too large; otherwise the runtime reads exactly the declared bytes.
    if (declared > options.limit) return BodyError.tooLarge(options.limit);
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await c.req.arrayBuffer());
    } catch (error) {
      // A stream some middleware took a reader on is gone too; fetch's readers refuse it with a
      // TypeError. Told here, not asked first: reading `c.req.raw.body` would make
      // @hono/node-server build a whole web Request, and lose its fast read, on every request.
      if (error instanceof TypeError) return notRaw(source);
      return failedRead(error);
    }
    // An HTTP server holds a body to its Content-Length; a Request made in code (`app.fetch`, a
    // Workers service binding) need not, and its longer body is refused as the limit says.
    if (bytes.byteLength > options.limit) return BodyError.tooLarge(options.limit);
    return keep(c, bytes, options);
  }
  const stream = c.req.raw.body;
  if (stream === null) return EMPTY;
  // A stream some middleware took a reader on is gone too: read, it would fail as if the client had left.
  if (stream.locked) return notRaw(source);
  // Chunked: read piece by piece, never buffering past the limit.
  const read = await readStreamUpTo(stream, options.limit);
  if (read instanceof BodyError) return read.code === "body_incomplete" ? failedRead(read.cause) : read;
  return keep(c, read, options);
}

/**
 * Puts the bytes read in Hono's body cache and returns them; with `options.decode`, a body sent
 * with a `Content-Encoding` decoded first, or the `BodyError` that refuses it (415, 400, 413).
 * Synchronous for a body sent as it is, nearly every one.
 */
function keep(c: Context, bytes: Uint8Array, options: ReadOptions): Uint8Array | Promise<Uint8Array | BodyError> {
  const coding = options.decode ? c.req.raw.headers.get("content-encoding") : null;
  if (coding === null) {
    cacheBody(c, bytes);
    return bytes;
  }
  return decodeContent(bytes, coding, options.limit).then((payload) => {
    if (!(payload instanceof BodyError)) cacheBody(c, payload);
    return payload;
  });
}

/**
 * What the request's stream became: Hono caches the first read under its kind and derives every
 * later one from it, so the first key says. Hono 4.8 also keeps what `c.req.parseBody()` returned
 * there (`parsedBody`), after the read it made: first only when it read nothing (a body that is
 * no form), a result its own readers then take for a read body and fail on. It is dropped: the
 * stream is unread, and read here as any other.
 */
function cachedKind(c: Context): string | undefined {
  const kind = Object.keys(c.req.bodyCache)[0];
  if (kind !== "parsedBody") return kind;
  c.req.bodyCache = {};
  return undefined;
}

/**
 * Bytes an earlier read left in Hono's body cache, as if read here: held to the limit, and
 * decoded as their `Content-Encoding` says. Those read here before (`webhook()` and
 * `idempotency()` on one route) are the payload already, decoded if they were to be: never twice.
 */
async function keptBytes(c: Context, options: ReadOptions): Promise<Uint8Array | BodyError> {
  const { bodyCache } = c.req;
  const ours = bodyCache instanceof ReadBodyCache;
  const bytes = ours ? bodyCache.bytes : new Uint8Array(await c.req.arrayBuffer());
  if (bytes.byteLength > options.limit) return BodyError.tooLarge(options.limit);
  return ours ? bytes : keep(c, bytes, options);
}

/**
 * Text an earlier `c.req.text()` (or `c.req.json()`, on Hono 4.13) read, held to the limit by its
 * UTF-8 bytes. A body sent with a `Content-Encoding` was read as its coded bytes decoded as
 * UTF-8, which loses them: it is `body_not_raw`, unless its coding is one refused anyway (415).
 */
async function keptText(c: Context, text: string, options: ReadOptions): Promise<string | BodyError> {
  const coding = c.req.raw.headers.get("content-encoding");
  if (contentCodings(coding).length > 0) {
    const decoded = await decodeContent(utf8.encode(text), coding, options.limit);
    return decoded instanceof BodyError && decoded.code === "unsupported_content_encoding" ? decoded : notRaw("text");
  }
  return utf8.byteLength(text) > options.limit ? BodyError.tooLarge(options.limit) : text;
}

/**
 * The answer to a read that failed: `body_incomplete`, the client went away mid-body. Thrown on
 * instead when it is Hono 4.8's `bodyLimit()` refusing a chunked body: that middleware fails the
 * request's stream with its `BodyLimitError` and answers its own 413 only when the error reaches
 * it (as `c.error`). Answered here, the client would get a 400 for a body too large.
 */
function failedRead(error: unknown): BodyError {
  if ((error as Error | undefined)?.name === "BodyLimitError") throw error;
  return BodyError.incomplete(error);
}

/**
 * Hono's body cache, holding the bytes read here. Hono derives `c.req.text()`/`json()` from a
 * cached ArrayBuffer through a new `Response`, which costs more than the rest of a request;
 * here the text is decoded on first use instead, exactly as `Response.text()` decodes (UTF-8,
 * a leading byte-order mark dropped). A class, not `defineProperty` on Hono's object: the
 * getters live on the prototype, so no request pays for reshaping an object.
 */
class ReadBodyCache {
  arrayBuffer: Promise<ArrayBuffer>;
  readonly #bytes: Uint8Array;
  /** The request's headers, for the form's Content-Type: read only if the route asks for a form. */
  readonly #headers: Headers;
  #text: Promise<string> | undefined;
  #formData: Promise<FormData> | undefined;

  constructor(bytes: Uint8Array, headers: Headers) {
    this.#bytes = bytes;
    this.#headers = headers;
    const { buffer, byteOffset, byteLength } = bytes;
    const whole = byteOffset === 0 && byteLength === buffer.byteLength && buffer instanceof ArrayBuffer;
    this.arrayBuffer = Promise.resolve(whole ? buffer : (bytes.slice().buffer as ArrayBuffer));
  }

  /** The bytes read (a getter: no key of Hono's cache, which takes its own keys for reads made). */
  get bytes(): Uint8Array {
    return this.#bytes;
  }

  get text(): Promise<string> {
    this.#text ??= Promise.resolve(utf8.decode(this.#bytes));
    return this.#text;
  }

  set text(value: Promise<string>) {
    this.#text = value;
  }

  /**
   * The form `c.req.parseBody()`/`formData()` read, parsed on first use as Hono 4.13 parses a
   * cached body. Hono 4.8 derives it through a `Response` without the request's Content-Type,
   * which no form parses from: the route's `parseBody()` would throw after this read.
   */
  get formData(): Promise<FormData> {
    this.#formData ??= this.arrayBuffer.then((buffer) => {
      const type = (this.#headers.get("content-type") ?? "").replace(/^[^;]+/, (t) => t.toLowerCase());
      return new Response(buffer, { headers: { "content-type": type } }).formData();
    });
    return this.#formData;
  }

  set formData(value: Promise<FormData>) {
    this.#formData = value;
  }
}

/** Puts the bytes read in Hono's body cache, for the route's `c.req.*` readers. */
function cacheBody(c: Context, bytes: Uint8Array): void {
  c.req.bodyCache = new ReadBodyCache(bytes, c.req.raw.headers) as unknown as typeof c.req.bodyCache;
}

function notRaw(source: string | undefined): BodyError {
  // Hono 4.8's parseBody() reads a form with c.req.formData(), keeping only the form.
  const readers = source === "formData" ? "c.req.formData(), c.req.parseBody() on Hono 4.8" : `c.req.${source}()`;
  const by =
    source === undefined
      ? "by reading c.req.raw directly (or taking a reader on it)"
      : `as ${source} (${readers} or a validator)`;
  return new BodyError(
    "body_not_raw",
    `the request body was already consumed ${by}, so its raw bytes are gone: ` +
      "register the Interlock middleware before any middleware that reads the body",
  );
}
