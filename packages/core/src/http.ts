/** Responses core decides and adapters write out: plain data, the same for every framework. */

import { utf8 } from "./encoding.js";
import { type InterlockError, PROBLEM_CONTENT_TYPE } from "./errors.js";

/** A complete HTTP response for an adapter to send as it is. */
export interface HttpResponse {
  status: number;
  headers: Array<[string, string]>;
  body: Uint8Array;
}

/** An RFC 9457 problem+json response for an Interlock error. */
export function problemResponse(error: InterlockError, retryAfterSeconds?: number): HttpResponse {
  const headers: Array<[string, string]> = [["content-type", PROBLEM_CONTENT_TYPE]];
  if (retryAfterSeconds !== undefined) headers.push(["retry-after", String(retryAfterSeconds)]);
  return { status: error.status, headers, body: utf8.encode(JSON.stringify(error.toProblem())) };
}

export function jsonResponse(status: number, value: unknown): HttpResponse {
  return { status, headers: [["content-type", "application/json"]], body: utf8.encode(JSON.stringify(value)) };
}
