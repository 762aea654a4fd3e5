/** Core's plain `HttpResponse` as a web `Response`. */
import type { HttpResponse } from "@interlock/core";

/**
 * Interlock's answer (a refusal, a duplicate, a replay…) as a web `Response`, for code that
 * drives core's engine or receiver itself. An empty body goes out as none: a `Response` refuses
 * even an empty one for a 204, 205 or 304.
 */
export function toResponse({ status, headers, body }: HttpResponse): Response {
  return new Response(body.byteLength === 0 ? null : (body as Uint8Array<ArrayBuffer>), { status, headers });
}

/**
 * What a wrapped handler returned, checked before it is used: a JavaScript handler that forgot
 * its `return` must fail as a programming error, not answer the client whatever `undefined` reads as.
 */
export function handlerResponse(value: unknown): Response {
  const response = value as Response | undefined;
  if (typeof response?.status !== "number" || typeof response.headers?.forEach !== "function")
    throw new TypeError(`the handler must return a Response, not ${value === null ? "null" : typeof value}`);
  return response;
}
