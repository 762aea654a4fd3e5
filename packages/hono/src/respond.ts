/** Writing core's plain `HttpResponse` out as a Hono response. */
import type { HttpResponse } from "@interlock/core";
import type { Context } from "hono";

type StatusCode = Parameters<Context["status"]>[0];

/**
 * Through `c.newResponse`, so headers earlier middleware prepared (CORS, request ids) are
 * kept, as on any other answer. An empty body goes out as none: 204 and 304 forbid one.
 */
export function send(c: Context, response: HttpResponse): Response {
  const body = response.body.byteLength === 0 ? null : (response.body as Uint8Array<ArrayBuffer>);
  return c.newResponse(body, { status: response.status as StatusCode, headers: response.headers });
}
