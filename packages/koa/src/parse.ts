/**
 * Puts the raw bytes on `ctx.request.rawBody` and, for JSON and url-encoded forms, a parsed
 * `ctx.request.body`: the stream is consumed, so a body parser after us has nothing to read.
 * Parsing waits for the first read of `ctx.request.body`: a webhook handler that only uses
 * `ctx.state.webhook` never pays for it.
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
  const parse = parserFor(ctx.get("content-type"));
  if (parse) defineLazyBody(ctx, raw, parse);
}

function parserFor(contentType: string): Parse | undefined {
  const type = (contentType.split(";", 1)[0] ?? "").trim().toLowerCase();
  if (type === "application/json" || type.endsWith("+json")) return parseJson;
  if (type === "application/x-www-form-urlencoded") return parseForm;
  return undefined;
}

function defineLazyBody(ctx: Context, raw: Buffer, parse: Parse): void {
  let parsed: { value: unknown } | undefined;
  Object.defineProperty(ctx.request, "body", {
    configurable: true,
    enumerable: true,
    get() {
      if (parsed === undefined) {
        try {
          parsed = { value: parse(raw.toString("utf8")) };
        } catch {
          // The client sent bad JSON: a 400 through Koa's error handling, as a body parser answers.
          ctx.throw(400, "the request body is not valid JSON");
        }
      }
      return parsed.value;
    },
    set(value: unknown) {
      parsed = { value };
    },
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
