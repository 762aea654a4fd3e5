/** Responses the engine stores, replays and answers with, as plain data an adapter writes out. */

import { encodeUtf8Shared } from "../encoding.js";
import type { HttpResponse } from "../http.js";
import type { StoredRecord } from "../store/contract.js";
import { unstorable } from "../store/validate.js";

/** What every Fetch `Headers` has, in every TypeScript `lib` setting. */
export interface FetchHeadersLike {
  /** Calls `callback` once per header, with its combined value. */
  forEach(callback: (value: string, name: string) => void): void;
}

/** What the adapter captured of the handler's response. */
export interface CapturedResponse {
  /** The status the handler answered. */
  status: number;
  /**
   * The response headers; only `replayHeaders` are stored. A Fetch `Headers` is taken as it is,
   * whatever `lib` a project compiles with (without `DOM.Iterable` its type has no iterator).
   */
  headers:
    | Iterable<readonly [string, string]>
    | FetchHeadersLike
    | Readonly<Record<string, string | number | readonly string[] | undefined>>;
  /**
   * The whole body, or `undefined` when it was not kept: streamed (piped, cut off, or a stream
   * the adapter does not record), or too large (see `tooLarge`).
   */
  body: Uint8Array | string | undefined;
  /**
   * True when the body was not kept because it passed the store's `maxRecordBytes` (`body` is
   * then not read): nothing is stored and the key is released with reason `too_large`, as for a
   * whole body over that limit, rather than `streamed`.
   */
  tooLarge?: boolean;
}

/**
 * Headers that describe the representation and are safe to replay to the same client, and
 * those HTTP requires on a status that is stored (RFC 9110: `WWW-Authenticate` on a 401, `Allow`
 * on a 405, `Proxy-Authenticate` on a 407, `Content-Range` on a 206 or 416): a replay without
 * them would be an answer the first one was not. Never `Set-Cookie` (a session minted for the
 * first request), never hop-by-hop or per-request headers (`Date`, `Content-Length`, tracing ids).
 */
export const DEFAULT_REPLAY_HEADERS: readonly string[] = [
  "content-type",
  "content-language",
  "content-encoding",
  "content-disposition",
  "content-location",
  "content-range",
  "location",
  "etag",
  "last-modified",
  "cache-control",
  "expires",
  "vary",
  "link",
  "retry-after",
  "allow",
  "accept-patch",
  "accept-post",
  "accept-ranges",
  "www-authenticate",
  "proxy-authenticate",
];

/**
 * Headers never stored, even when `replayHeaders` names them: those that describe one connection
 * or one message's framing (those RFC 9110 §7.6.1 names: `Connection`, `Keep-Alive`,
 * `Proxy-Connection`, `TE`, `Transfer-Encoding`, `Upgrade`; and `Trailer`), and `Content-Length`,
 * which the framework writes for each response it sends, from the replayed body; and
 * `Set-Cookie` (and the obsolete `Set-Cookie2`): a cookie minted for the first request, a
 * session most of all, would go to whoever sends the key again.
 */
const NEVER_REPLAYED: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "content-length",
  "set-cookie",
  "set-cookie2",
]);

/** The lower-case names of `replayHeaders` that may be stored: the connection's own headers left out. */
export function replayAllowList(names: readonly string[]): Set<string> {
  const allowed = new Set<string>();
  for (const name of names) {
    const lower = name.toLowerCase();
    if (!NEVER_REPLAYED.has(lower)) allowed.add(lower);
  }
  return allowed;
}

/**
 * The captured headers as lower-case pairs, keeping only the allow-listed names, and only values
 * a store can hold: a NUL (which RFC 9110 §5.5 forbids in a field value) or a lone surrogate (no
 * byte form at all) never reached the client either, as no HTTP server sends one, and would make
 * a store refuse the whole response (PostgreSQL's text cannot hold them).
 */
function replayableHeaders(
  headers: CapturedResponse["headers"],
  allowed: ReadonlySet<string>,
): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  if (Symbol.iterator in headers)
    for (const [name, value] of headers as Iterable<readonly [string, string]>) addAllowed(pairs, allowed, name, value);
  else if (typeof headers.forEach === "function")
    (headers as FetchHeadersLike).forEach((value, name) => {
      addAllowed(pairs, allowed, name, value);
    });
  else {
    // Keys, not entries: no array per header, and half the time on Node's getHeaders() object.
    const record = headers as Readonly<Record<string, unknown>>;
    for (const name of Object.keys(record)) addAllowed(pairs, allowed, name, record[name]);
  }
  return pairs;
}

/**
 * Adds the header's values to `pairs` under its lower-case name, if allowed and storable. A
 * function of the module, as `addStorable`: closures made per response cost their allocation.
 */
function addAllowed(pairs: Array<[string, string]>, allowed: ReadonlySet<string>, name: string, value: unknown): void {
  const lower = name.toLowerCase();
  if (!allowed.has(lower) || value === undefined) return;
  if (!Array.isArray(value)) addStorable(pairs, lower, String(value));
  else for (const v of value) addStorable(pairs, lower, String(v));
}

function addStorable(pairs: Array<[string, string]>, name: string, text: string): void {
  if (!unstorable(text)) pairs.push([name, text]);
}

const NO_CONTENT_STATUSES = new Set([204, 205, 304]);
const NO_CONTENT = new Uint8Array(0);

/**
 * Whether answers of `status` have no content, and no Content-Length (RFC 9110 §6.4.1, §8.6,
 * §15.3.6): 204 No Content, 205 Reset Content and 304 Not Modified.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function hasNoContent(status: number): boolean {
  return NO_CONTENT_STATUSES.has(status);
}

/**
 * The body to store for a response of `status`: none for a 204, 205 or 304, whatever the handler
 * gave (Node drops it from the wire but a Fetch `Response` keeps it), so no replay sends it or a
 * `Content-Length` for it.
 */
function capturedBody(status: number, body: Uint8Array | string): Uint8Array {
  if (hasNoContent(status)) return NO_CONTENT;
  return typeof body === "string" ? encodeUtf8Shared(body) : body;
}

/** A response as a store keeps it. */
export interface ResponseToStore {
  status: number;
  headers: Array<[string, string]>;
  body: Uint8Array;
}

/**
 * What is stored of the answer to a request of `method`: its status, its allow-listed headers
 * and its body. A HEAD answer has no content; its `Content-Length`, when it gave one, says how
 * long a GET's content would be (RFC 9110 §8.6, §9.3.2), and is kept so the replay says the same
 * (the framework would otherwise frame the replay's empty body as `Content-Length: 0`, which a
 * server must not send for a HEAD unless a GET's content is empty). Only the header as sent
 * counts: content an adapter was handed for a HEAD (Koa's `ctx.body`) is dropped unsent.
 */
export function responseToStore(
  method: string,
  status: number,
  captured: CapturedResponse["headers"],
  body: Uint8Array | string,
  allowed: ReadonlySet<string>,
): ResponseToStore {
  if (method !== "HEAD")
    return { status, headers: replayableHeaders(captured, allowed), body: capturedBody(status, body) };
  // Read twice below: an iterator (a Map's `entries()`) would give its Content-Length to the first read only.
  const readTwice =
    Symbol.iterator in captured ? Array.from(captured as Iterable<readonly [string, string]>) : captured;
  const headers = replayableHeaders(readTwice, allowed);
  const length = headContentLength(status, readTwice);
  if (length !== undefined) headers.push(["content-length", length]);
  return { status, headers, body: NO_CONTENT };
}

const CONTENT_LENGTH = new Set(["content-length"]);
/** A Content-Length value (RFC 9110 §8.6: 1*DIGIT), short enough to be a safe integer. */
const DECIMAL_LENGTH = /^\d{1,15}$/;

/** The Content-Length a HEAD answer announced, if a valid one. */
function headContentLength(status: number, headers: CapturedResponse["headers"]): string | undefined {
  if (status < 200 || hasNoContent(status)) return undefined;
  const announced = replayableHeaders(headers, CONTENT_LENGTH);
  if (announced.length !== 1) return undefined;
  const value = (announced[0] as [string, string])[1].trim();
  return DECIMAL_LENGTH.test(value) ? value : undefined;
}

/**
 * A record's headers, as replayed: those never replayed are left out here too, for a record an
 * earlier version stored with them (an older instance still writes such records during a
 * rolling upgrade, and a record lives for the whole retention).
 */
function storedHeaders(headers: StoredRecord["headers"], method: string): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (const [name, value] of headers) {
    const lower = name.toLowerCase();
    // A HEAD answer's own Content-Length (see `responseToStore`): keys are scoped by method, so
    // only a HEAD request is answered with a HEAD answer.
    if (!NEVER_REPLAYED.has(lower) || (lower === "content-length" && method === "HEAD")) pairs.push([name, value]);
  }
  return pairs;
}

/** The stored answer, as replayed to a request of `method`, marked with `replayedHeader`. */
export function replayResponse(record: StoredRecord, replayedHeader: string, method: string): HttpResponse {
  const headers = storedHeaders(record.headers, method);
  headers.push([replayedHeader, "true"]);
  return { status: record.status, headers, body: record.body };
}
