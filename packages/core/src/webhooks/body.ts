import { contentCodings } from "../content-coding.js";
import { utf8 } from "../encoding.js";
import { BodyError, WebhookVerificationError } from "../errors.js";
import { type HeadersInput, headerReader } from "../headers.js";

/** The raw request body: bytes as received (a Node `Buffer` is a `Uint8Array`), or its text. */
export type RawBody = Uint8Array | ArrayBuffer | ArrayBufferView | string;

/**
 * Returns the body's bytes. A parsed object means a body parser ran first and the signed
 * bytes are gone; re-serialising it would verify a different byte string, so it is refused.
 */
export function rawBytes(body: RawBody, scheme: string): Uint8Array {
  const bytes = rawBodyBytes(body);
  if (bytes === undefined) throw new WebhookVerificationError("body_not_raw", notRawMessage(body), scheme);
  return bytes;
}

/** The same for a request the idempotency engine fingerprints; no body is an empty one. */
export function requestBytes(body: RawBody | undefined): Uint8Array {
  if (body === undefined) return new Uint8Array();
  const bytes = rawBodyBytes(body);
  if (bytes === undefined) throw new BodyError("body_not_raw", notRawMessage(body));
  return bytes;
}

/** The bytes of a `RawBody`, as the verifier reads them (a string as UTF-8); undefined for anything else (a parsed body). */
export function rawBodyBytes(body: RawBody): Uint8Array | undefined {
  if (body instanceof Uint8Array) return body;
  if (typeof body === "string") return utf8.encode(body);
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  return undefined;
}

function notRawMessage(body: unknown): string {
  const kind = body === null ? "null" : typeof body;
  return `expected the raw request body (bytes or text), got ${kind}: read it before any JSON body parser runs`;
}

/**
 * Why a delivery sent with a `Content-Encoding` (gzip, deflate, br, …) is refused, 415
 * `unsupported_content_encoding`; undefined for a body sent as is (no header, or `identity`).
 * A signature covers bytes, and nothing says whether the sender signed them before compressing
 * or after: verifying the bytes as received refuses the first kind with a misleading 401, and
 * a body parser that inflates first (Express's, Cloud Functions') refuses the second kind. Every
 * adapter gives this one answer instead, whatever read the body (the verifier checks it, with
 * the headers, before the body is read: `checkHeaders`).
 */
export function contentEncodingRefusal(headers: HeadersInput): string | undefined {
  // Asked twice a delivery: by the headers' check before the body is read, and by the verifier's.
  const codings = contentCodings(headerReader(headers)("content-encoding"));
  if (codings.length === 0) return undefined;
  return (
    `the delivery was sent with Content-Encoding: ${codings.join(", ")}; signatures are checked on bodies sent ` +
    "uncompressed only: have the sender (or a proxy in front) send it without compression"
  );
}
