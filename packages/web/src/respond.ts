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
 * A Response of any realm passes (a runtime's own, a polyfill's); a look-alike does not: a plain
 * `{ status, headers }`, or node-fetch's response, whose body is a Node stream, not a web one.
 * Its body is read here, where the callers' throw releases the claim (a Response may check
 * its init only then: @hono/node-server's refuses a 204 with a body when it is first asked for).
 */
export function handlerResponse(value: unknown): Response {
  const response = value as Response | undefined;
  if (typeof response?.status !== "number" || typeof response.headers?.forEach !== "function")
    throw new TypeError(`the handler must return a Response, not ${value === null ? "null" : typeof value}`);
  const body: unknown = response.body;
  if (body !== null && typeof (body as ReadableStream | undefined)?.getReader !== "function")
    throw new TypeError("the handler must return a Response, not an object with a status and headers but no web body");
  return response;
}
