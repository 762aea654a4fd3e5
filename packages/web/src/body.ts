/**
 * The raw bytes of a web `Request`, read up to a limit: refused unread when its declared length
 * is over the limit, read chunk by chunk otherwise, never buffering past it. The wrappers read
 * a copy (`clone()`), so the handler still gets the request with its body unread, and hand what
 * they read to the handler's `readJson` and `readBytes` (`handOver`): the request's own body is
 * then not read, nor decoded, a second time.
 */
import { BodyError, DEFAULT_REQUEST_BODY_LIMIT, declaredLength, decodeContent, readStreamUpTo } from "@interlock/core";

const EMPTY = new Uint8Array(0);

/**
 * The body's bytes, or core's `BodyError` when they cannot be had: past the limit (413), cut off
 * by a client that went away (400 `body_incomplete`), or already read (500 `body_not_raw`). Read
 * from a copy, unless `own`: then the request's own body is read (and so used).
 */
export async function readRequestBody(request: Request, limit: number, own = false): Promise<Uint8Array | BodyError> {
  const refused = refusedUnread(request, limit);
  if (refused !== undefined) return refused;
  if (request.body === null) return EMPTY;
  // Counted even under a Content-Length within the limit: a server frames the body by it, but a
  // `Request` made in code keeps whatever header it is given, with a body of any size.
  return readStreamUpTo((own ? request : request.clone()).body as ReadableStream<Uint8Array>, limit);
}

/**
 * Why `request`'s body cannot be read within `limit`, told before it is read: a declared length
 * past the limit (413), or a body already used or being read (`body_not_raw`); else undefined.
 */
function refusedUnread(request: Request, limit: number): BodyError | undefined {
  // Refused before `request.body` is touched: on Node, @hono/node-server then wraps the socket's
  // stream in a web one, and the body it drains after the 413 no longer drains: it closes the
  // keep-alive connection the 413 announced at its 500 ms drain timeout, under the next request.
  const declared = declaredLength(request.headers);
  if (declared !== undefined && declared > limit) return BodyError.tooLarge(limit);
  if (request.bodyUsed || request.body?.locked) return notRaw();
  return undefined;
}

/** A payload read: its bytes, decoded, and how many were sent. */
export interface Payload {
  readonly bytes: Uint8Array;
  /** The bytes as sent, before decoding: what the limit holds for besides the decoded ones. */
  readonly sent: number;
}

/**
 * The payload: the body, sent with a `Content-Encoding`, decoded (core's `decodeContent`), the
 * limit holding for the bytes read and for the bytes decoded. A `BodyError` when it cannot be
 * had (as `readRequestBody`), or not decoded: 415 `unsupported_content_encoding`, 400
 * `body_not_decodable`, 413 `body_too_large`. What `withIdempotency` fingerprints (read from a
 * copy) and what `readJson` and `readBytes` give the handler (`own`).
 */
export async function readPayload(request: Request, limit: number, own = false): Promise<Payload | BodyError> {
  const body = await readRequestBody(request, limit, own);
  if (body instanceof BodyError) return body;
  const coding = request.headers.get("content-encoding");
  const bytes = coding === null ? body : await decodeContent(body, coding, limit);
  return bytes instanceof BodyError ? bytes : { bytes, sent: body.byteLength };
}

/** What a wrapper handed the handler's `readJson` and `readBytes` for one request. */
interface Handed {
  /** The wrapper's limit: theirs, unless they are given one. */
  readonly limit: number;
  /** What the wrapper read and decoded of the body, until the handler takes it. */
  payload: Payload | undefined;
  /** Whether the bytes are the wrapper's too (a webhook's `event.body`): the handler gets a copy. */
  readonly shared: boolean;
}

/**
 * Each request a wrapper handed its handler, the request as the key: kept no longer than the
 * request, and only for the object the wrapper was given (a `new Request(request)` is read as any).
 * One map for every copy of the package (its ESM and CommonJS builds, both loaded): the handler's
 * `readJson` may be the other build's, and would otherwise read within 1 MiB, not the wrapper's
 * limit. Keyed by the shape of `Handed`: a version that changes it takes another key.
 */
const handed = sharedHanded(Symbol.for("@interlock/web.handed.v1"));

function sharedHanded(key: symbol): WeakMap<Request, Handed> {
  const shared = globalThis as Record<symbol, WeakMap<Request, Handed> | undefined>;
  const found = shared[key];
  if (found !== undefined) return found;
  const made = new WeakMap<Request, Handed>();
  shared[key] = made;
  return made;
}

/**
 * Tells the handler's `readJson` and `readBytes` what the wrapper knows of `request`'s body: the
 * limit it read within, and the payload, when it read one (the request's own body still unread).
 * `shared` when the bytes are kept elsewhere too (a webhook's `event.body`).
 */
export function handOver(request: Request, limit: number, payload: Payload | undefined, shared = false): void {
  // Nothing to say of a body unread within the default limit: the request reads as any.
  if (payload === undefined && limit === DEFAULT_REQUEST_BODY_LIMIT) return;
  handed.set(request, { limit, payload, shared });
}

/** The limit a wrapper read `request` within; undefined for a request no wrapper handed on. */
export function handedLimit(request: Request): number | undefined {
  return handed.get(request)?.limit;
}

/**
 * The handler's payload, within `limit`: what the wrapper read and decoded, when it did (the
 * request's body not read again, nor decoded), or else the request's own body, read and decoded
 * (`readPayload`). Either way the body is read once: taken, the request's own body is cancelled,
 * so it counts as used (`bodyUsed`) and its branch of the wrapper's `clone()` lets go of the copy
 * it kept; a second read finds it used (`body_not_raw`).
 */
export async function readHandlerPayload(request: Request, limit: number): Promise<Uint8Array | BodyError> {
  const entry = handed.get(request);
  const payload = entry?.payload;
  if (entry === undefined || payload === undefined) {
    const read = await readPayload(request, limit, true);
    return read instanceof BodyError ? read : read.bytes;
  }
  // Refused as the request's own read is: over its declared length unread, read already not at all.
  const refused = refusedUnread(request, limit);
  if (refused !== undefined) return refused;
  // Taken at once, before anything else can read it: a concurrent second read finds the body used.
  entry.payload = undefined;
  request.body?.cancel().catch(() => {});
  // A limit of the handler's own, lower than the wrapper's, holds for the bytes sent and decoded alike.
  if (payload.sent > limit || payload.bytes.byteLength > limit) return BodyError.tooLarge(limit);
  return entry.shared ? new Uint8Array(payload.bytes) : payload.bytes;
}

function notRaw(): BodyError {
  return new BodyError(
    "body_not_raw",
    "the request body was already read (request.json(), .text(), .formData() or a reader), so its raw bytes " +
      "are gone: wrap the handler before anything reads the body",
  );
}
