/**
 * The raw bytes of a web `Request`, read up to a limit: refused unread when its declared length
 * is over the limit, read chunk by chunk otherwise, never buffering past it. The wrappers read
 * a copy (`clone()`), so the handler still gets the request with its body unread; the handler's
 * `readJson` and `readBytes` read the request itself, decoded as the wrapper decoded it.
 */
import { BodyError, declaredLength, decodeContent, readStreamUpTo } from "@interlock/core";

const EMPTY = new Uint8Array(0);

/**
 * The body's bytes, or core's `BodyError` when they cannot be had: past the limit (413), cut off
 * by a client that went away (400 `body_incomplete`), or already read (500 `body_not_raw`). Read
 * from a copy, unless `own`: then the request's own body is read (and so used).
 */
export async function readRequestBody(request: Request, limit: number, own = false): Promise<Uint8Array | BodyError> {
  // Refused before `request.body` is touched: on Node, @hono/node-server then wraps the socket's
  // stream in a web one, and the body it drains after the 413 no longer drains: it closes the
  // keep-alive connection the 413 announced at its 500 ms drain timeout, under the next request.
  const declared = declaredLength(request.headers);
  if (declared !== undefined && declared > limit) return BodyError.tooLarge(limit);
  if (request.bodyUsed || request.body?.locked) return notRaw();
  if (request.body === null) return EMPTY;
  // Counted even under a Content-Length within the limit: a server frames the body by it, but a
  // `Request` made in code keeps whatever header it is given, with a body of any size.
  return readStreamUpTo((own ? request : request.clone()).body as ReadableStream<Uint8Array>, limit);
}

/**
 * The payload: the body, sent with a `Content-Encoding`, decoded (core's `decodeContent`), the
 * limit holding for the bytes read and for the bytes decoded. A `BodyError` when it cannot be
 * had (as `readRequestBody`), or not decoded: 415 `unsupported_content_encoding`, 400
 * `body_not_decodable`, 413 `body_too_large`. What `withIdempotency` fingerprints (read from a
 * copy) and what `readJson` and `readBytes` give the handler (`own`).
 */
export async function readPayload(request: Request, limit: number, own = false): Promise<Uint8Array | BodyError> {
  const body = await readRequestBody(request, limit, own);
  const coding = request.headers.get("content-encoding");
  if (body instanceof BodyError || coding === null) return body;
  return decodeContent(body, coding, limit);
}

function notRaw(): BodyError {
  return new BodyError(
    "body_not_raw",
    "the request body was already read (request.json(), .text(), .formData() or a reader), so its raw bytes " +
      "are gone: wrap the handler before anything reads the body",
  );
}
