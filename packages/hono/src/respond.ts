/** Writing core's plain `HttpResponse` out as a Hono response. */
import { forEachHeader, type HttpResponse } from "@interlock/core";
import type { Context } from "hono";

type StatusCode = Parameters<Context["status"]>[0];
type HeaderPairs = ReadonlyArray<readonly [string, string]>;

/**
 * Sends core's answer (a refusal, a replay), with the headers earlier middleware prepared
 * (CORS, request ids: `c.header()`) kept, as on any other answer, each replaced by core's of
 * its name as `c.newResponse` does. An empty body goes out as none: 204 and 304 forbid one.
 *
 * Made here rather than by `c.newResponse`, which puts the headers in a `Headers` that
 * @hono/node-server then iterates again (sorted, per the Fetch spec) to write the answer: a plain
 * record of the headers is written as it is. With the answer returned as it is (no promise), a
 * replay on @hono/node-server ran about 5% fewer instructions (callgrind, in-process).
 */
export function send(c: Context, response: HttpResponse): Response {
  // An answer already set by a middleware before ours stays the one Hono sends, as it was.
  if (c.finalized)
    return c.newResponse(bodyOf(response), response.status as StatusCode, headerRecord(response.headers));
  // Hono's own answer starts from these: the ones prepared, or those of a `c.res` already read.
  return replaceAnswer(c, response, c.res.headers);
}

/**
 * Replaces the answer Hono's error handler gave a route's throw (the app's `onError`) with core's,
 * keeping the headers prepared for it (CORS, request ids), each replaced by core's of its name,
 * as `send` keeps them. Not those that describe that answer's body, which a middleware between
 * ours and the route may have set for it (`compress()`'s Content-Encoding, `etag()`'s ETag):
 * this body is another.
 */
export function replaceErrorAnswer(c: Context, response: HttpResponse): void {
  const answered = new Headers();
  c.res.headers.forEach((value, name) => {
    if (!describesBody(name)) answered.append(name, value);
  });
  replaceAnswer(c, response, answered);
}

/** Headers about a representation's bytes (RFC 9110 §8, §8.8), lower case: Content-*, ETag, Last-Modified, Transfer-Encoding. */
const describesBody = (name: string): boolean =>
  name.startsWith("content-") || name === "etag" || name === "last-modified" || name === "transfer-encoding";

/** Sets core's answer as `c.res`, after the headers in `prepared` that none of core's replaces. */
function replaceAnswer(c: Context, response: HttpResponse, prepared: Headers): Response {
  const body = bodyOf(response);
  const headers = withPrepared(prepared, response.headers);
  const answer = new Response(body, { status: response.status, headers: asHeadersInit(headers, body !== null) });
  c.res = undefined; // cleared first: Hono's setter would otherwise copy the headers just read again
  c.res = answer;
  return answer;
}

/** The body to send: an empty one as none, which 204 and 304 require. */
const bodyOf = (response: HttpResponse): Uint8Array<ArrayBuffer> | null =>
  response.body.byteLength === 0 ? null : (response.body as Uint8Array<ArrayBuffer>);

/** Core's headers (names in lower case), after those prepared that none of them replaces. */
function withPrepared(prepared: Headers, own: HeaderPairs): Array<[string, string]> {
  const headers: Array<[string, string]> = own.map(([name, value]) => [name.toLowerCase(), value]);
  const ownCount = headers.length;
  prepared.forEach((value, name) => {
    if (!replaces(headers, ownCount, name)) headers.push([name, value]);
  });
  return headers;
}

function replaces(headers: HeaderPairs, ownCount: number, name: string): boolean {
  for (let index = 0; index < ownCount; index++) if (headers[index]?.[0] === name) return true;
  return false;
}

/**
 * The headers as a plain record, the form @hono/node-server writes as it is. As pairs, which it
 * puts in a `Headers` as Hono did, when a name repeats (a record cannot hold two `Set-Cookie`s on
 * every runtime) or is `__proto__`, and when a body has no Content-Type: from a `Headers` it
 * sends its default one (text/plain), as it did the first answer that went out without one.
 */
function asHeadersInit(headers: Array<[string, string]>, hasBody: boolean): HeadersInit {
  const record: Record<string, string> = {};
  for (const [name, value] of headers) {
    if (name === "__proto__" || Object.hasOwn(record, name)) return headers;
    record[name] = value;
  }
  return hasBody && record["content-type"] === undefined ? headers : record;
}

/** Header pairs as a record, a repeated name's values in a list (Hono appends each). */
function headerRecord(pairs: HeaderPairs): Record<string, string | string[]> {
  const record: Record<string, string | string[]> = Object.create(null); // a "__proto__" name is a name
  forEachHeader(pairs, (name, value) => {
    record[name] = value;
  });
  return record;
}

/** The app's answer to an error decision (its `onError`), or core's when it returns nothing. */
export async function answerByApp<D extends { response: HttpResponse }>(
  c: Context,
  decision: D,
  onError: (decision: D, c: Context) => Response | undefined | Promise<Response | undefined>,
): Promise<Response> {
  return (await onError(decision, c)) || send(c, decision.response);
}
