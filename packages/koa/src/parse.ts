/**
 * Puts the raw bytes on `ctx.request.rawBody` and, for JSON and url-encoded forms, a parsed
 * `ctx.request.body`: the stream is consumed, so a body parser after us has nothing to read.
 * Parsing waits for the first read of `ctx.request.body`: a webhook handler that only uses
 * `ctx.state.webhook` never pays for it. As the Koa body parsers do, the text is decoded with
 * the `charset` the type names. The bytes are the payload: `idempotency()` decoded a compressed
 * body as it read it, and `webhook()` refuses one unread.
 */

import type { Context } from "koa";
import type { RawBodyRequest } from "./types.js";

type Parse = (text: string) => unknown;

export function exposeBody(ctx: Context, raw: Buffer, consumed: boolean): void {
  const request = ctx.request as Context["request"] & RawBodyRequest;
  request.rawBody = raw;
  if (!consumed) return;
  // @koa/bodyparser and koa-bodyparser skip a request with this flag (or with a body set).
  ctx.disableBodyParser = true;
  // Read as bodyText reads it: `ctx.get` is the same header through two delegating layers.
  const parse = parserFor(ctx.req.headers["content-type"] ?? "");
  if (parse) defineLazyBody(ctx, raw, parse);
}

function parserFor(contentType: string): Parse | undefined {
  const semicolon = contentType.indexOf(";");
  const type = (semicolon === -1 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase();
  if (type === "application/json" || type.endsWith("+json")) return parseJson;
  if (type === "application/x-www-form-urlencoded") return parseForm;
  return undefined;
}

/** What the shared `body` accessor reads: the bytes, how to parse them, and the result once made. */
interface LazyBody {
  raw: Buffer;
  parse: Parse;
  parsed: { value: unknown } | undefined;
  ctx: Context;
}

const LAZY_BODY = Symbol("@interlock/koa.lazyBody");

type WithLazyBody = Context["request"] & { [LAZY_BODY]: LazyBody };

// One getter and one setter for every request, their state on the request object: a closure
// per request would give each request object its own hidden class (V8 then drops it into
// slow dictionary mode, and every later property access on it pays).
function readLazyBody(this: WithLazyBody): unknown {
  const lazy = this[LAZY_BODY];
  if (lazy.parsed === undefined) {
    const text = bodyText(lazy);
    try {
      lazy.parsed = { value: lazy.parse(text) };
    } catch {
      // The client sent bad JSON: a 400 through Koa's error handling, as a body parser answers.
      return lazy.ctx.throw(400, "the request body is not valid JSON");
    }
  }
  return lazy.parsed.value;
}

/** The body as text, decoded in its `charset`; else a 415, as the body parsers answer. */
function bodyText(lazy: LazyBody): string {
  const { ctx, raw: bytes } = lazy;
  const contentType = ctx.req.headers["content-type"] ?? "";
  // Most bodies name no charset: no parameters to look through.
  const charset = contentType.includes(";") ? charsetOf(contentType) : "utf-8";
  if (charset === "utf-8" || charset === "utf8") return bytes.toString("utf8");
  try {
    return new TextDecoder(charset).decode(bytes);
  } catch {
    return ctx.throw(415, `unsupported charset "${charset}"`);
  }
}

/** The `charset` parameter of a content type, lower-case; UTF-8 when it names none. */
function charsetOf(contentType: string): string {
  const match = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(contentType);
  return match?.[1]?.toLowerCase() ?? "utf-8";
}

function writeLazyBody(this: WithLazyBody, value: unknown): void {
  this[LAZY_BODY].parsed = { value };
}

function defineLazyBody(ctx: Context, raw: Buffer, parse: Parse): void {
  const request = ctx.request as WithLazyBody;
  request[LAZY_BODY] = { raw, parse, parsed: undefined, ctx };
  Object.defineProperty(request, "body", {
    configurable: true,
    enumerable: true,
    get: readLazyBody,
    set: writeLazyBody,
  });
}

/** As the Koa body parsers do: an empty body is `{}`; a leading BOM is ignored. */
function parseJson(text: string): unknown {
  const json = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  return json.trim() === "" ? {} : JSON.parse(json);
}

/** Flat fields; a repeated name gives an array. `a[b]=1` stays the key `"a[b]"` (no `qs` nesting). */
function parseForm(text: string): Record<string, string | string[]> {
  const fields = new Map<string, string | string[]>();
  for (const [name, value] of new URLSearchParams(text)) {
    const previous = fields.get(name);
    if (previous === undefined) fields.set(name, value);
    else fields.set(name, Array.isArray(previous) ? [...previous, value] : [previous, value]);
  }
  // fromEntries defines own properties, so a "__proto__" field cannot reach the prototype.
  return Object.fromEntries(fields);
}
