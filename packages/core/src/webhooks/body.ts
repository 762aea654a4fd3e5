import { utf8 } from "../encoding.js";
import { BodyError, WebhookVerificationError } from "../errors.js";

/** The raw request body: bytes as received (a Node `Buffer` is a `Uint8Array`), or its text. */
export type RawBody = Uint8Array | ArrayBuffer | ArrayBufferView | string;

/**
 * Returns the body's bytes. A parsed object means a body parser ran first and the signed
 * bytes are gone; re-serialising it would verify a different byte string, so it is refused.
 */
export function rawBytes(body: RawBody, scheme: string): Uint8Array {
  const bytes = asBytes(body);
  if (bytes === undefined) throw new WebhookVerificationError("body_not_raw", notRawMessage(body), scheme);
  return bytes;
}

/** The same for a request the idempotency engine fingerprints; no body is an empty one. */
export function requestBytes(body: RawBody | undefined): Uint8Array {
  if (body === undefined) return new Uint8Array();
  const bytes = asBytes(body);
  if (bytes === undefined) throw new BodyError("body_not_raw", notRawMessage(body));
  return bytes;
}

function asBytes(body: RawBody): Uint8Array | undefined {
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
