/**
 * The raw bytes of a web `Request`, read up to a limit from a copy (`clone()`), so the handler
 * still gets the request with its body unread: refused unread when its declared length is over
 * the limit, read chunk by chunk otherwise, never buffering past it.
 */
import { BodyError, declaredLength, readStreamUpTo } from "@interlock/core";

const EMPTY = new Uint8Array(0);

/**
 * The body's bytes, or core's `BodyError` when they cannot be had: past the limit (413), cut off
 * by a client that went away (400 `body_incomplete`), or already read (500 `body_not_raw`).
 */
export async function readRequestBody(request: Request, limit: number): Promise<Uint8Array | BodyError> {
  // Refused before `request.body` is touched: on Node, @hono/node-server then wraps the socket's
  // stream in a web one, and the body it drains after the 413 no longer drains: it closes the
  // keep-alive connection the 413 announced at its 500 ms drain timeout, under the next request.
  const declared = declaredLength(request.headers);
  if (declared !== undefined && declared > limit) return BodyError.tooLarge(limit);
  if (request.bodyUsed || request.body?.locked) return notRaw();
  if (request.body === null) return EMPTY;
  // Counted even under a Content-Length within the limit: a server frames the body by it, but a
  // `Request` made in code keeps whatever header it is given, with a body of any size.
  return readStreamUpTo(request.clone().body as ReadableStream<Uint8Array>, limit);
}

function notRaw(): BodyError {
  return new BodyError(
    "body_not_raw",
    "the request body was already read (request.json(), .text(), .formData() or a reader), so its raw bytes " +
      "are gone: wrap the handler before anything reads the body",
  );
}
