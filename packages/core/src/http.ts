/**
 * Responses core decides and adapters write out, and what adapters share to read bodies:
 * plain data, the same for every framework.
 */

import { utf8 } from "./encoding.js";
import {
  BodyError,
  InterlockConfigError,
  type InterlockError,
  PROBLEM_CONTENT_TYPE,
  WebhookVerificationError,
} from "./errors.js";

/** A complete HTTP response for an adapter to send as it is. */
export interface HttpResponse {
  /** The status code. */
  status: number;
  /** Header name/value pairs, in order. */
  headers: Array<[string, string]>;
  /** The body's bytes. */
  body: Uint8Array;
}

/**
 * An RFC 9457 problem+json response for an Interlock error, with a `Retry-After` of
 * `retryAfterSeconds`: by default the error's own, for those that tell the client when to retry
 * (`request_in_flight`, `store_unavailable`). A 415 `unsupported_content_encoding` says, with
 * `Accept-Encoding`, the codings that are accepted (RFC 9110, section 15.5.16): the ones a
 * `BodyError` names, else `identity` alone (a webhook delivery is verified uncompressed only).
 */
export function problemResponse(
  error: InterlockError,
  retryAfterSeconds = (error as { retryAfterSeconds?: number }).retryAfterSeconds,
): HttpResponse {
  const headers: Array<[string, string]> = [["content-type", PROBLEM_CONTENT_TYPE]];
  if (retryAfterSeconds !== undefined) headers.push(["retry-after", String(retryAfterSeconds)]);
  if (error.code === "unsupported_content_encoding")
    headers.push(["accept-encoding", (error as { acceptEncoding?: string }).acceptEncoding ?? "identity"]);
  if (error.status === 401 && error instanceof WebhookVerificationError)
    headers.push(["www-authenticate", challenge(error)]);
  return { status: error.status, headers, body: utf8.encode(JSON.stringify(error.toProblem())) };
}

/**
 * The challenge of a delivery refused 401 (a signature that matched no secret, a timestamp
 * outside the window), which RFC 9110 §15.5.2 says a 401 MUST carry: what the sender must send,
 * a signature of the delivery's scheme (`Signature scheme="stripe"`). No HTTP authentication
 * scheme is registered for a webhook's signature: the name says what is asked for.
 */
function challenge(error: WebhookVerificationError): string {
  const scheme = error.scheme;
  return scheme === undefined ? "Signature" : `Signature scheme="${scheme.replace(/["\\]/g, "\\$&")}"`;
}

/**
 * The headers a Node `res.writeHead(status[, message][, headers])` call passes, from its
 * arguments, lower-cased: from an object, a flat `[name, value, name, value…]` list, or a list
 * of `[name, value]` pairs (Node takes all three); none when it passes none. A name a list
 * repeats (in any case) keeps each of its values, in order, as Node sends them on lines of
 * their own. For adapters that record what a route wrote.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function writeHeadHeaders(args: readonly unknown[]): Record<string, unknown> {
  const last = args[args.length - 1];
  // No prototype: a header named `__proto__` is a header like any other.
  const headers: Record<string, unknown> = Object.create(null);
  if (Array.isArray(last)) {
    const add = (name: unknown, value: unknown) => {
      const key = String(name).toLowerCase();
      const had = headers[key];
      headers[key] = had === undefined ? value : [had, value].flat();
    };
    if (Array.isArray(last[0])) for (const pair of last as unknown[][]) add(pair[0], pair[1]);
    else for (let i = 0; i + 1 < last.length; i += 2) add(last[i], last[i + 1]);
    return headers;
  }
  if (typeof last !== "object" || last === null) return headers;
  for (const [name, value] of Object.entries(last)) headers[name.toLowerCase()] = value;
  return headers;
}

/** Past this many headers, `forEachHeader` groups them in a `Map` rather than scanning for repeats. */
const SCANNED_HEADERS = 16;

/**
 * Calls `set` once for each header name of a response's `pairs`, in lower case, in the order
 * the names first appear: with the name's value, or when it repeats (in any case), the list of
 * its values in order, as a framework's `setHeader(name, values)` sends each on a line of its
 * own. The few headers of a response are scanned for repeats (no `Map` or `Set` made for every
 * replay); a long list is grouped in a `Map`, so no response costs the square of its headers.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function forEachHeader(
  pairs: ReadonlyArray<readonly [string, string]>,
  set: (name: string, value: string | string[]) => void,
): void {
  if (pairs.length > SCANNED_HEADERS) {
    const grouped = new Map<string, string[]>();
    for (const [pairName, value] of pairs) {
      const name = pairName.toLowerCase();
      const values = grouped.get(name);
      if (values === undefined) grouped.set(name, [value]);
      else values.push(value);
    }
    for (const [name, values] of grouped) set(name, values.length === 1 ? (values[0] as string) : values);
    return;
  }
  for (let i = 0; i < pairs.length; i++) {
    const [pairName, value] = pairs[i] as readonly [string, string];
    const name = pairName.toLowerCase();
    if (namedBefore(pairs, i, name)) continue;
    let values: string[] | undefined;
    for (let j = i + 1; j < pairs.length; j++) {
      const [other, more] = pairs[j] as readonly [string, string];
      if (!sameName(other, name)) continue;
      values ??= [value];
      values.push(more);
    }
    set(name, values ?? value);
  }
}

/** Whether a header before `index` has the name `lower` (in any case). */
function namedBefore(pairs: ReadonlyArray<readonly [string, string]>, index: number, lower: string): boolean {
  for (let i = 0; i < index; i++) if (sameName((pairs[i] as readonly [string, string])[0], lower)) return true;
  return false;
}

/** Whether `name` is `lower` in any case; most differ in length, and are told apart without lower-casing. */
const sameName = (name: string, lower: string): boolean =>
  name.length === lower.length && (name === lower || name.toLowerCase() === lower);

/**
 * What `sendOnNode` writes through: node:http's `ServerResponse`, or the HTTP/2 compatibility
 * API's `Http2ServerResponse`, nothing of it sent yet.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export interface NodeResponseSink {
  statusCode: number;
  setHeader(name: string, value: number | string | readonly string[]): unknown;
  end(body: Uint8Array): unknown;
  /** The request answered: a HEAD is told apart. */
  readonly req?: { readonly method?: string | undefined } | null | undefined;
}

/**
 * Writes a response core decided exactly as it is, on a Node response none of which has gone
 * out: Node's own `setHeader`/`end`, not a framework's (Express's `res.send` would add a charset
 * or an ETag to a replayed answer). Framed by its length, as frameworks frame their own answers:
 * without one, Node closes an HTTP/1.0 keep-alive connection to mark the end, and a request
 * queued on it goes unanswered. A replayed HEAD answer (stored without content) brings its own
 * length (that of a GET's content, never sent) or none, as the first answer did: its empty body
 * is no GET's content. A refusal to a HEAD is framed as the same refusal to a GET. The body goes
 * to `end` as `asBuffer` makes it (a Node `Buffer` over the same memory), as Node's own writes
 * hand chunks to an app's wrapped `res.end` (loggers and caches call `toString()` on it).
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function sendOnNode(
  res: NodeResponseSink,
  response: HttpResponse,
  asBuffer: (bytes: Uint8Array) => Uint8Array,
): void {
  res.statusCode = response.status;
  let ownLength = false;
  forEachHeader(response.headers, (name, value) => {
    res.setHeader(name, value);
    if (name === "content-length") ownLength = true;
  });
  const { body } = response;
  const headReplay = res.req?.method === "HEAD" && body.byteLength === 0;
  if (hasContent(response.status) && !headReplay && !ownLength) res.setHeader("content-length", body.byteLength);
  res.end(asBuffer(body));
}

/** Whether a response of `status` has content to frame (RFC 9110 §6.4.1: not 1xx, 204, 304). */
const hasContent = (status: number): boolean => status >= 200 && status !== 204 && status !== 304;

/** A JSON response: `value` serialised, with `content-type: application/json`. */
export function jsonResponse(status: number, value: unknown): HttpResponse {
  return { status, headers: [["content-type", "application/json"]], body: utf8.encode(JSON.stringify(value)) };
}

/**
 * The largest request body an adapter's idempotency middleware reads for the fingerprint
 * unless its `bodyLimit` option says otherwise: 1 MiB, the usual JSON body parser limit.
 * (A webhook middleware reads up to its verifier's `maxBodyBytes`.)
 */
export const DEFAULT_REQUEST_BODY_LIMIT = 1024 * 1024;

/**
 * An adapter's `bodyLimit` option, checked when the middleware is made so a bad limit is
 * reported at start-up: a positive whole number of bytes, or `fallback` when not given.
 */
export function bodyLimitOption(value: number | undefined, fallback: number): number {
  const limit = value ?? fallback;
  if (!Number.isSafeInteger(limit) || limit <= 0) {
    throw new InterlockConfigError("bodyLimit must be a positive whole number of bytes");
  }
  return limit;
}

/**
 * What `announcesBody` reads of a Node request: node:http's `IncomingMessage` and the HTTP/2
 * compatibility API's `Http2ServerRequest` both have it.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export interface NodeRequestHead {
  /** The request headers, with lower-case names. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** 1 for HTTP/1.x, 2 for HTTP/2. */
  readonly httpVersionMajor: number;
  /** The HTTP/2 stream (`Http2ServerRequest` only). */
  readonly stream?: {
    /** True when the request's HEADERS frame ended the stream: no body follows. */
    readonly endAfterHeaders?: boolean;
  };
}

/**
 * Whether a request may carry content, so an adapter reads its stream rather than take the
 * body as empty. HTTP/1.1 announces content with `Transfer-Encoding` or a `Content-Length`,
 * and a request with neither has none (RFC 9112 §6.3). HTTP/2 frames it instead:
 * `Content-Length` is optional there (RFC 9113 §8.1.1), so only a HEADERS frame that ended
 * the stream, or a length of 0, says there is none. Reading HTTP/2 the HTTP/1.1 way would take
 * every body sent without a length as empty: a valid webhook refused, or two different
 * payloads given one idempotency fingerprint.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function announcesBody(request: NodeRequestHead): boolean {
  const length = request.headers["content-length"];
  if (length !== undefined) return Number(length) !== 0;
  if (request.httpVersionMajor >= 2) return request.stream?.endAfterHeaders !== true;
  return request.headers["transfer-encoding"] !== undefined;
}

/**
 * Collects a body that arrives in chunks, keeping at most `limit` bytes: a request body read
 * from its stream, or a response written with `write()` and `end()`. Once the total passes the
 * limit nothing more is kept, `add` answers false and `body()` is undefined. For a request
 * that means too large to read (413 `body_too_large`); for a response, too large to store, so
 * it is handed to the engine as such (`body: undefined`, `tooLarge: overflowed`: passed
 * through, not cached, key released with reason `too_large`). Chunks are kept as given unless
 * `add` is told to copy them (a response writer may reuse its buffer once written).
 */
export class BodyCollector {
  /** The most bytes kept. */
  readonly limit: number;
  /** The chunks kept, in order (those before the limit was passed), to hand on what was read. */
  readonly chunks: Uint8Array[] = [];
  #size = 0;

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Every byte added so far, kept or not. */
  get size(): number {
    return this.#size;
  }

  /** True once the total passed the limit. */
  get overflowed(): boolean {
    return this.#size > this.limit;
  }

  /**
   * Keeps `chunk` (a string as UTF-8; with `copy`, bytes as a copy, made only when kept) while
   * the total stays within the limit; false once it has passed it.
   */
  add(chunk: Uint8Array | string, copy = false): boolean {
    const bytes = typeof chunk === "string" ? utf8.encode(chunk) : chunk;
    this.#size += bytes.byteLength;
    if (this.#size > this.limit) return false;
    if (bytes.byteLength > 0) this.chunks.push(copy && bytes === chunk ? new Uint8Array(bytes) : bytes);
    return true;
  }

  /**
   * Lets go of the chunks kept, once past the limit: a response still being written (a stream
   * that may never end) would otherwise hold them until its end. `overflowed` still says so.
   */
  forget(): void {
    this.chunks.length = 0;
  }

  /** The whole body (a lone chunk as it is, several joined), or undefined past the limit. */
  body(): Uint8Array | undefined {
    if (this.overflowed) return undefined;
    const { chunks } = this;
    if (chunks.length === 1) return chunks[0];
    const body = new Uint8Array(this.#size);
    let offset = 0;
    for (const chunk of chunks) {
      body.set(chunk, offset);
      offset += chunk.byteLength;
    }
    return body;
  }
}

/**
 * Core's `body_too_large` when a Node request's Content-Length declares more than `limit` bytes;
 * undefined otherwise. Answered before anything waits for that body, which may never come (a
 * client that sent `Expect: 100-continue` and stopped after the headers) or come as a long
 * upload. Left unread: Node's server reads an unread body into nothing once the response has
 * been sent, so a keep-alive client's next request is read after it.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function declaredTooLarge(request: NodeRequestHead, limit: number): BodyError | undefined {
  return Number(request.headers["content-length"]) > limit ? BodyError.tooLarge(limit) : undefined;
}

/**
 * What `readRequestBody` uses of a Node request (node:http's `IncomingMessage`, the HTTP/2
 * compatibility API's `Http2ServerRequest`): its stream's events, and its state
 * (`requestCutOff`).
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export interface NodeRequestStream extends NodeRequestState {
  on(event: "data" | "end" | "close", listener: (...args: never[]) => void): unknown;
}

/**
 * What `requestCutOff` reads of a Node request: what its stream says, and what the HTTP/2
 * compatibility API adds.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export interface NodeRequestState {
  readonly destroyed?: boolean;
  readonly readableEnded?: boolean;
  /** `Http2ServerRequest`: its stream was reset (node:http's request says it too, as `destroyed` does). */
  readonly aborted?: boolean;
}

/**
 * Whether a Node request is over without its body having ended: its client left (or the stream
 * was destroyed) before the last byte, and no more of it will come. Over HTTP/1, Node destroys
 * the request of a connection that closed, before its end; over HTTP/2, the compatibility API
 * marks the request of a reset stream `aborted`, then ends it as if the body were complete.
 * Either is over by the time something asynchronous that ran before the body was read (an
 * authentication lookup, a rate limiter) returns: its `close` has fired, so a reader that
 * waited for its end, or its `close`, would wait forever, and one that took an ended stream for
 * one read already would blame a parser that does not exist. A client's doing: 400
 * `body_incomplete`. (Whether something else read part of it first is the caller's to ask:
 * `readableDidRead`.)
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function requestCutOff(request: NodeRequestState): boolean {
  return request.aborted === true || (request.destroyed === true && request.readableEnded !== true);
}

/**
 * Reads a Node request's stream to its end, keeping at most `limit` bytes: the bytes, or core's
 * `BodyError`. Past the limit, 413 `body_too_large` at once: unread when its Content-Length
 * declares it (`declaredTooLarge`), else as the bytes pass it, the rest read into nothing as it
 * comes (so the connection is not left stalled, and a keep-alive client's next request is read
 * after it); closed before its end, 400 `body_incomplete` (the client went away mid-body, or the
 * stream was destroyed, with an error or without), at once when it was over before the read
 * began (`requestCutOff`). No `error` listener: a request emits its error only to listeners, and
 * `close` follows it either way.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function readRequestBody(
  request: NodeRequestHead & NodeRequestStream,
  limit: number,
): Promise<Uint8Array | BodyError> {
  // Over already (its `close` fired before this read began): no listener would hear of it again.
  if (requestCutOff(request)) return Promise.resolve(BodyError.incomplete());
  const declared = declaredTooLarge(request, limit);
  if (declared) return Promise.resolve(declared);
  return new Promise((resolve) => {
    (request as Reading)[READING] = new BodyRead(limit, resolve);
    request.on("data", onBodyData);
    request.on("end", onBodyEnd);
    request.on("close", onBodyCut);
  });
}

// The read in progress, kept on its request under this key. The listeners are the same three
// functions for every request, reading it through `this`: no closure made per request. They
// stay on the request once the read is over, doing nothing: after its end a request emits only
// `close`, and taking them off cost more than they hold. A body past the limit is drained
// through the `data` one, which keeps the stream flowing.
const READING = Symbol("@interlock/core.reading");

type Reading = NodeRequestStream & { [READING]?: BodyRead | undefined };

class BodyRead {
  readonly body: BodyCollector;

  constructor(
    limit: number,
    readonly resolve: (body: Uint8Array | BodyError) => void,
  ) {
    this.body = new BodyCollector(limit);
  }
}

/** The request's read, ended now: undefined when it was over already. */
function endReading(request: Reading): BodyRead | undefined {
  const read = request[READING];
  request[READING] = undefined;
  return read;
}

function onBodyData(this: Reading, chunk: Uint8Array | string): void {
  const read = this[READING];
  if (read === undefined || read.body.add(chunk)) return;
  endReading(this);
  read.resolve(BodyError.tooLarge(read.body.limit));
}

function onBodyEnd(this: Reading): void {
  const read = endReading(this);
  read?.resolve(read.body.body() as Uint8Array);
}

function onBodyCut(this: Reading): void {
  endReading(this)?.resolve(BodyError.incomplete());
}
