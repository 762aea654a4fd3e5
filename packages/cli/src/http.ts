/**
 * One HTTP POST, as a webhook provider makes it: the exact bytes, the headers as given, no
 * redirects followed, a deadline. Node's `http` rather than `fetch`, which refuses some ports
 * (6000, 6665–6669, …) and some header names that a local test server may well use.
 */

import { request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from "node:http";
import { request as httpsRequest } from "node:https";
import { BodyCollector, timerDelay } from "@interlock/core";
import { CliError, firstLine, usageError, valueStart } from "./errors.js";

/** How long a POST waits for its whole answer unless told otherwise, in ms. */
export const DEFAULT_TIMEOUT_MS = 10_000;
/** The longest wait for an answer, in ms: an hour (`--timeout`, `timeoutMs`). */
export const MAX_TIMEOUT_MS = 3_600_000;

/**
 * `timeoutMs` given to the `send()` or `listen()` API: a whole number of ms within the
 * `--timeout` flag's range. Anything else made an instant, misleading `timeout` (0, NaN), and
 * past 2^31 - 1 ms Node's timer fires after 1 ms.
 */
export function timeoutOption(value: number | undefined): number {
  if (value === undefined) return DEFAULT_TIMEOUT_MS;
  if (!Number.isSafeInteger(value) || value < 1 || value > MAX_TIMEOUT_MS) {
    throw usageError(`timeoutMs must be a whole number from 1 to ${MAX_TIMEOUT_MS}`);
  }
  return value;
}

/**
 * The most of an answer's body a POST keeps: 1 MiB, ample for what a webhook receiver answers.
 * Past it the rest is not read (the connection is closed), so a receiver that streams without
 * end cannot fill the memory before the deadline.
 */
export const MAX_ANSWER_BYTES = 1024 * 1024;

export interface HttpAnswer {
  status: number;
  statusText: string;
  contentType: string | undefined;
  /** The end-to-end headers, as received: names as sent, in order, repeated ones (`Set-Cookie`) kept. */
  headers: Array<[string, string]>;
  /** The body, or its first bytes (up to `MAX_ANSWER_BYTES`) when `truncated`. */
  body: Uint8Array;
  /** The body was longer than `MAX_ANSWER_BYTES`: the rest was not read. */
  truncated: boolean;
}

/**
 * An `http:` or `https:` URL, named `what` in errors: text from the command line, or a `URL`
 * given to `send()` or `listen()`. Anything else is a usage error, which shows the value by its
 * first four characters (`valueStart`), whether it is no URL at all or one of another scheme:
 * `abc:SECRET` parses as a URL, and is most likely a secret given where the URL goes; a
 * password or a token may be anywhere in another scheme's text, which `shownUrl` does not know.
 */
export function parseUrl(value: string | URL, what: string): URL {
  const url = typeof value === "string" ? urlOf(value, what) : value;
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    const text = typeof value === "string" ? value : value.href;
    throw usageError(`${what} must be an http:// or https:// URL, got "${valueStart(text)}"`);
  }
  return url;
}

function urlOf(text: string, what: string): URL {
  try {
    return new URL(text);
  } catch {
    throw usageError(`${what} is not a URL: "${valueStart(text)}"`);
  }
}

// The userinfo of a URL: after "scheme://", up to the authority's last "@" (as URL parsers split it).
const USERINFO = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)@/i;

/**
 * `url` as the CLI prints and reports it: a password in it shown as `***` (`user:***@host`),
 * a user name alone (often a token, as in `https://TOKEN@host`) as `***`, and each query
 * parameter's value as `***` (`?token=***`: webhook URLs often carry their token there). The
 * request itself still carries them: Node's http sends a URL's user name and password as Basic
 * auth, and the query as it is.
 */
export function shownUrl(url: URL | string): string {
  const text = typeof url === "string" ? url : url.href;
  return maskedQuery(
    text.replace(USERINFO, (_, scheme: string, userinfo: string) => `${scheme}${maskedUserinfo(userinfo)}@`),
  );
}

// A URL's query: from its first "?" up to the fragment's "#", if any.
const QUERY = /\?([^#]*)/;

/**
 * The query with each value as `***` and the names kept, so the URL is still recognisable. A
 * parameter without "=" is all value as far as anyone can tell (`?s3cr3t`): `***` too.
 */
function maskedQuery(text: string): string {
  return text.replace(QUERY, (_, query: string) => `?${query.split("&").map(maskedParameter).join("&")}`);
}

function maskedParameter(parameter: string): string {
  if (parameter === "") return parameter;
  const equals = parameter.indexOf("=");
  return equals === -1 ? "***" : `${parameter.slice(0, equals)}=***`;
}

/** `user:***` for `user:password`; `***` for a user name alone (often a token). */
function maskedUserinfo(userinfo: string): string {
  const colon = userinfo.indexOf(":");
  return colon === -1 ? "***" : `${userinfo.slice(0, colon)}:***`;
}

// Line breaks and controls but tab: no header value carries them (Node's http throws a
// TypeError when the request is made, long after the command line was read).
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;
const NON_ASCII = /[^\t\x20-\x7e]/; // what is left once controls are refused: past ASCII

/**
 * Refuses, as a usage error naming `what`, a header value that is not tab and printable ASCII.
 * Past ASCII a value has no one byte form: Node's http sends "é" as the Latin-1 byte E9 (and
 * refuses "€"), curl sends the argument's UTF-8 bytes C3 A9 (as would the `sign` output given
 * to curl), and receivers read those bytes as Latin-1 (Node) or UTF-8. A signed id would not
 * verify on every receiver, and `sign` and `send` would differ: refused, rather than guessed.
 */
export function checkHeaderValue(text: string, what: string): void {
  if (CONTROL.test(text)) {
    throw usageError(`${what} has a character a header value cannot carry (a line break or a control character)`);
  }
  const other = NON_ASCII.exec(text)?.[0];
  if (other !== undefined) {
    const codePoint = `U+${(other.codePointAt(0) as number).toString(16).toUpperCase().padStart(4, "0")}`;
    throw usageError(
      `${what} has a character outside ASCII (${codePoint}): a header value is sent as bytes, which receivers read as Latin-1 or as UTF-8; use ASCII (percent-encode the rest, as RFC 8187 does)`,
    );
  }
}

/**
 * Headers a proxy does not pass on, either way (RFC 9110 §7.6.1; `Proxy-*` are the proxy's own),
 * and those the message is re-framed with: the body is sent whole, with its own
 * `Content-Length`, to a host of its own.
 */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "host",
  "content-length",
  "expect",
]);

const isHopByHop = (name: string): boolean => HOP_BY_HOP.has(name) || name.startsWith("proxy-");

/**
 * The headers of a message a proxy passes on, from Node's `rawHeaders` (`[name, value, …]`):
 * names as sent, in order, repeated ones kept, without the hop-by-hop ones, including those
 * its `Connection` header names (RFC 9110 §7.6.1).
 */
export function endToEndHeaders(rawHeaders: readonly string[]): Array<[string, string]> {
  const named = new Set<string>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if ((rawHeaders[i] as string).toLowerCase() !== "connection") continue;
    for (const token of (rawHeaders[i + 1] as string).split(",")) named.add(token.trim().toLowerCase());
  }
  const headers: Array<[string, string]> = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    const lower = name.toLowerCase();
    if (!isHopByHop(lower) && !named.has(lower)) headers.push([name, rawHeaders[i + 1] as string]);
  }
  return headers;
}

/**
 * POSTs `body` to `url`. Resolves with any answer, 2xx or not (the caller decides); rejects
 * with `unreachable` when no answer came (refused, reset, unknown host, or `signal` aborted)
 * and `timeout` when it did not come whole within `timeoutMs`.
 */
export function post(
  url: URL,
  headers: Iterable<readonly [string, string]>,
  body: Uint8Array,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === "https:" ? httpsRequest : httpRequest;
    const options = { method: "POST", headers: outgoing(headers, body.length), ...(signal ? { signal } : {}) };
    const request = send(url, options, (response) => {
      collect(response).then((answer) => {
        clearTimeout(deadline);
        resolve(answer);
      }, fail);
    });
    const deadline = setTimeout(() => request.destroy(new DeadlineError()), timerDelay(timeoutMs));
    function fail(error: unknown): void {
      clearTimeout(deadline);
      reject(networkError(url, error, timeoutMs));
    }
    request.on("error", fail);
    request.end(body);
  });
}

/** The request headers: repeated names kept (as one list each), a user agent unless one is given. */
function outgoing(headers: Iterable<readonly [string, string]>, length: number): OutgoingHttpHeaders {
  const result: Record<string, string[]> = { "user-agent": ["interlock-cli"] };
  const given = new Set<string>();
  for (const [name, value] of headers) {
    const key = name.toLowerCase();
    if (!given.has(key)) result[key] = [];
    given.add(key);
    result[key]?.push(value);
  }
  return { ...result, "content-length": String(length) };
}

/** The answer, its body read up to `MAX_ANSWER_BYTES`; leaving the loop past it closes the response. */
async function collect(response: IncomingMessage): Promise<HttpAnswer> {
  const collector = new BodyCollector(MAX_ANSWER_BYTES);
  for await (const chunk of response) if (!collector.add(chunk as Buffer)) break;
  return {
    status: response.statusCode ?? 0,
    statusText: response.statusMessage ?? "",
    contentType: response.headers["content-type"],
    headers: endToEndHeaders(response.rawHeaders),
    body: Buffer.concat(collector.chunks),
    truncated: collector.overflowed,
  };
}

class DeadlineError extends Error {}

/** What the usual socket error codes mean to someone sending a webhook. */
const REASONS: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host not found",
  ECONNRESET: "the connection was closed before an answer",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ABORT_ERR: "stopped before an answer",
};

function networkError(url: URL, error: unknown, timeoutMs: number): CliError {
  if (error instanceof DeadlineError) {
    return new CliError("timeout", `no answer from ${shownUrl(url)} within ${timeoutMs} ms`);
  }
  const code = (error as NodeJS.ErrnoException).code;
  const reason = (code && REASONS[code]) ?? firstLine(String((error as Error).message));
  return new CliError("unreachable", `cannot reach ${shownUrl(url)}: ${reason}`, { cause: error });
}
