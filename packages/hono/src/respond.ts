/** Writing core's plain `HttpResponse` out as a Hono response. */
import type { HttpResponse } from "@interlock/core";
import type { Context } from "hono";

type StatusCode = Parameters<Context["status"]>[0];

/**
 * Through `c.newResponse`, so headers earlier middleware prepared (CORS, request ids) are
 * kept, as on any other answer. An empty body goes out as none: 204 and 304 forbid one. The
 * headers go as a record, not as `init.headers`: Hono copies those into a `Headers` of their
 * own before merging (two `Headers` a replay, the costliest part of Hono's side of it).
 */
export function send(c: Context, response: HttpResponse): Response {
  const body = response.body.byteLength === 0 ? null : (response.body as Uint8Array<ArrayBuffer>);
  const status = response.status as StatusCode;
  // Hono hands a lone header to the Response as a plain record, which @hono/node-server sends
  // without the default Content-Type it gives a `Headers`: kept the way every answer goes.
  if (response.headers.length < 2) return c.newResponse(body, { status, headers: response.headers });
  return c.newResponse(body, status, headerRecord(response.headers));
}

/** Header pairs as a record, a repeated name's values in a list (Hono appends each). */
function headerRecord(pairs: ReadonlyArray<readonly [string, string]>): Record<string, string | string[]> {
  const record: Record<string, string | string[]> = Object.create(null); // a "__proto__" name is a name
  for (const [pairName, value] of pairs) {
    const name = pairName.toLowerCase();
    const had = record[name];
    record[name] = had === undefined ? value : Array.isArray(had) ? [...had, value] : [had, value];
  }
  return record;
}
