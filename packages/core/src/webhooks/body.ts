import { utf8 } from "../encoding.js";
import { WebhookVerificationError } from "../errors.js";

/** The raw request body: bytes as received (a Node `Buffer` is a `Uint8Array`), or its text. */
export type RawBody = Uint8Array | ArrayBuffer | ArrayBufferView | string;

/**
 * Returns the body's bytes. A parsed object means a body parser ran first and the signed
 * bytes are gone; re-serialising it would verify a different byte string, so it is refused.
 */
export function rawBytes(body: RawBody, scheme: string): Uint8Array {
  if (body instanceof Uint8Array) return body;
  if (typeof body === "string") return utf8.encode(body);
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  throw new WebhookVerificationError(
    "body_not_raw",
    `expected the raw request body (bytes or text), got ${body === null ? "null" : typeof body}: ` +
      "read it before any JSON body parser runs",
    scheme,
  );
}
