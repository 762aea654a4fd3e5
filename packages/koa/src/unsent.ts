/**
 * What the route answers once a layer around it has answered the client: a request-timeout
 * middleware mounted before Interlock's that answers while the route still runs (its 503 set on
 * `ctx` and sent by Koa once that layer returns, or written to `ctx.res` itself). From then on
 * Koa drops what the route sets (`ctx.status =` and `ctx.set()` do nothing once the headers are
 * out; `ctx.body =` is kept but never sent), so after `next()` `ctx.status` is that layer's
 * answer, not the route's: settled by it, the key or the delivery would be released and the
 * retry would run the work again. So while Interlock's middleware waits for the route, the head
 * going out is watched, and the route's assignments from then on are noted as well as dropped,
 * as the Hono adapter notes the answer a route gives after a layer around it answered. Reads are
 * left to Koa: the route sees the response as it would without Interlock (`ctx.headerSent`,
 * `ctx.status` and `ctx.get()` tell what went out).
 */

import { type ServerResponse, STATUS_CODES } from "node:http";
import { type CapturedResponse, hasNoContent } from "@interlock/core";
import type { Context } from "koa";
import { EMPTY, isStreamed, statusText, TEXT_TYPE } from "./response.js";

type Writer = (...args: unknown[]) => unknown;

// One response's watch, kept on it under this key, and its `writeHead` replaced by the same
// function for every response (see response.ts, BYPASS: a closure stored on each response costs
// V8 13+ microseconds a request).
const AROUND = Symbol("@interlock/koa.around");

interface Watched extends ServerResponse {
  [AROUND]?: AroundWatch;
}

class AroundWatch {
  readonly writeHead: Writer;
  /** Interlock's middlewares on this response now waiting for the route (`next()`): stacked ones share the watch. */
  waiting = 0;

  constructor(readonly ctx: Context) {
    this.writeHead = ctx.res.writeHead as Writer;
  }
}

/**
 * Watches the head going out until `routeReturned`: called before `next()`. Node sends a head
 * through `writeHead` whichever way it goes out (`res.end()`, a first `write`, `flushHeaders()`,
 * HTTP/2's compatibility response too), so that one method is watched. A head already out (sent
 * by a layer before this one) is not: nothing the route sets from now on would be noted as more
 * than Koa makes of it.
 */
export function watchAround(ctx: Context): void {
  const res = ctx.res as Watched;
  let watch = res[AROUND];
  if (watch === undefined) {
    watch = new AroundWatch(ctx);
    res[AROUND] = watch;
  }
  if (watch.waiting++ === 0 && !res.headersSent) res.writeHead = aroundWriteHead as ServerResponse["writeHead"];
}

/**
 * The route has returned (or thrown) to the middleware that called `watchAround`: the head is
 * watched no more once no middleware waits (Koa's own answer, sent after every middleware has
 * returned, goes out unwatched). Returns the answer the route gave after a layer around it had
 * answered, if it did (see `unsentAnswer`).
 */
export function routeReturned(ctx: Context): UnsentAnswer | undefined {
  const res = ctx.res as Watched;
  const watch = res[AROUND];
  if (watch !== undefined && --watch.waiting === 0 && res.writeHead === (aroundWriteHead as Writer))
    res.writeHead = watch.writeHead as ServerResponse["writeHead"];
  return unsentAnswer(ctx);
}

/**
 * The head goes out: watched once (a head goes out once), the route's assignments noted from now
 * on. `writeHead` put back unless a layer has wrapped it since (`on-headers`): theirs stays.
 */
function aroundWriteHead(this: Watched, ...args: unknown[]): unknown {
  const watch = this[AROUND];
  if (watch === undefined)
    throw new TypeError("a watched response method was called on another object than its response");
  if (this.writeHead === (aroundWriteHead as Writer)) this.writeHead = watch.writeHead as ServerResponse["writeHead"];
  const result = watch.writeHead.apply(this, args);
  if (watch.waiting > 0 && this.headersSent) noteAfterHead(watch.ctx.response as Noted);
  return result;
}

// What the route set once the head was out, kept on Koa's response object under this key.
const UNSENT = Symbol("@interlock/koa.unsent");

type KoaResponse = Context["response"];

interface Noted extends KoaResponse {
  [UNSENT]?: UnsentAnswer;
}

/** What the route set on `ctx` once the head was out, which Koa never sent. */
export class UnsentAnswer {
  /** A status the route set (Koa's body setter sets one too: 204 for no body). */
  status: number | undefined;
  /** Whether the route set `ctx.body`, and to what. */
  bodySet = false;
  body: unknown;
  /** Koa's body setter is running: a status it sets is its own rule's, not the route's. */
  settingBody = false;
  /** Headers the route set (`ctx.set`, `ctx.type`, `ctx.append`, Koa's body setter), by lower-case name. */
  readonly headers = new Map<string, string | string[]>();

  constructor(
    readonly koaStatus: PropertyDescriptor,
    readonly koaBody: PropertyDescriptor,
    readonly koaSet: Writer,
    readonly koaRemove: Writer,
  ) {}

  /** The status Koa would have sent: the route's, or what its body implies (Koa's own rule). */
  answeredStatus(): number | undefined {
    if (this.status !== undefined) return this.status;
    if (!this.bodySet) return undefined;
    return this.body === null || this.body === undefined ? 204 : 200;
  }
}

/**
 * Notes the route's assignments on Koa's response from now on: the head is out, so Koa drops
 * them (its setters return at once, or keep a body never sent), and each is noted as well.
 * Accessors of this response object's own, in front of Koa's: only a request whose head went out
 * while the route ran pays for them.
 */
function noteAfterHead(response: Noted): void {
  if (response[UNSENT] !== undefined) return;
  const status = koaAccessor(response, "status");
  const body = koaAccessor(response, "body");
  if (status?.get === undefined || status.set === undefined || body?.get === undefined || body.set === undefined)
    return;
  response[UNSENT] = new UnsentAnswer(status, body, response.set as Writer, response.remove as Writer);
  Object.defineProperty(response, "status", { configurable: true, enumerable: true, get: status.get, set: noteStatus });
  Object.defineProperty(response, "body", { configurable: true, enumerable: true, get: body.get, set: noteBody });
  response.set = noteSet as KoaResponse["set"];
  response.remove = noteRemove as KoaResponse["remove"];
}

/** Koa's accessor, from the response object's prototypes. */
function koaAccessor(response: KoaResponse, name: string): PropertyDescriptor | undefined {
  for (let proto = Object.getPrototypeOf(response); proto !== null; proto = Object.getPrototypeOf(proto)) {
    const accessor = Object.getOwnPropertyDescriptor(proto, name);
    if (accessor !== undefined) return accessor;
  }
  return undefined;
}

function unsentOf(response: Noted): UnsentAnswer {
  const unsent = response[UNSENT];
  if (unsent === undefined)
    throw new TypeError("a noted response accessor was used on another object than its response");
  return unsent;
}

/** Koa ignores a status once the head is out (without checking it): noted when it is one Koa takes. */
function noteStatus(this: Noted, code: unknown): void {
  const unsent = unsentOf(this);
  if (!this.res.headersSent) {
    unsent.koaStatus.set?.call(this, code);
    return;
  }
  if (typeof code !== "number" || !Number.isInteger(code) || code < 100 || code > 999) return;
  // Koa's body setter sets 200 on a response whose status was never set (Koa's `_explicitStatus`,
  // on this one perhaps never set by the layer that answered): a status the route set stands.
  if (unsent.settingBody && code === 200 && unsent.status !== undefined) return;
  unsent.status = code;
}

/** Koa keeps the body (and destroys a stream, the response being finished): noted, as what it sets meanwhile. */
function noteBody(this: Noted, value: unknown): void {
  const unsent = unsentOf(this);
  const headSent = this.res.headersSent;
  unsent.settingBody = true;
  try {
    unsent.koaBody.set?.call(this, value);
  } finally {
    unsent.settingBody = false;
  }
  if (!headSent) return;
  unsent.bodySet = true;
  unsent.body = value;
}

function noteSet(this: Noted, ...args: unknown[]): unknown {
  const unsent = unsentOf(this);
  if (!this.res.headersSent) return unsent.koaSet.apply(this, args);
  const [field, value] = args;
  if (typeof field === "string") unsent.headers.set(field.toLowerCase(), headerValue(value));
  else if (typeof field === "object" && field !== null)
    for (const [name, each] of Object.entries(field)) unsent.headers.set(name.toLowerCase(), headerValue(each));
  return undefined;
}

function noteRemove(this: Noted, ...args: unknown[]): unknown {
  const unsent = unsentOf(this);
  if (!this.res.headersSent) return unsent.koaRemove.apply(this, args);
  unsent.headers.delete(String(args[0]).toLowerCase());
  return undefined;
}

const headerValue = (value: unknown): string | string[] =>
  Array.isArray(value) ? value.map((each) => String(each)) : String(value);

/**
 * The answer the route gave after a layer around it had answered: the head went out while the
 * route ran, the response has ended (that layer's answer is complete), and the route then set a
 * status or a body, which Koa never sent. Undefined otherwise: nothing set since (the answer
 * that went out is all there is to settle by), or a response still open, whose `ctx.body` Koa is
 * still to send (a route that flushed its head for server-sent events, then set its stream).
 */
function unsentAnswer(ctx: Context): UnsentAnswer | undefined {
  const unsent = (ctx.response as Noted)[UNSENT];
  if (unsent === undefined || !ctx.res.writableEnded) return undefined;
  return unsent.answeredStatus() === undefined ? undefined : unsent;
}

/** Whether the route's unsent body is one Koa would have streamed: it says nothing of its work's end. */
export const streamedUnsent = (unsent: UnsentAnswer): boolean => unsent.bodySet && isStreamed(unsent.body);

const JSON_TYPE = "application/json; charset=utf-8";
const HTML_TYPE = "text/html; charset=utf-8";

/**
 * The route's unsent answer as Koa would have sent it on a response of its own: its status, the
 * headers it set, and its body, typed as Koa's body setter types one (its own type check read the
 * sent response's headers, so it may have set none). `body: undefined` for a streamed body (not
 * cached). Undefined for an object body JSON cannot serialise: Koa would have failed it.
 */
export function capturedUnsent(ctx: Context, unsent: UnsentAnswer, status: number): CapturedResponse | undefined {
  const headers = new Map(unsent.headers);
  const body = unsent.bodySet ? unsent.body : undefined;
  if (hasNoContent(status) || ctx.method === "HEAD" || body === null) {
    headers.delete("content-type");
    return { status, headers: pairs(headers), body: EMPTY };
  }
  if (body === undefined) {
    // No body: Koa sends the status text.
    headers.set("content-type", TEXT_TYPE);
    const text = statusText(status, ctx.req.httpVersionMajor, STATUS_CODES[status]);
    return { status, headers: pairs(headers), body: text };
  }
  if (isStreamed(body)) return { status, headers: pairs(headers), body: undefined };
  if (typeof body === "string") {
    if (!headers.has("content-type")) headers.set("content-type", /^\s*</.test(body) ? HTML_TYPE : TEXT_TYPE);
    return { status, headers: pairs(headers), body };
  }
  if (Buffer.isBuffer(body)) {
    if (!headers.has("content-type")) headers.set("content-type", "application/octet-stream");
    return { status, headers: pairs(headers), body };
  }
  let json: string | undefined;
  try {
    json = JSON.stringify(body);
  } catch {
    return undefined; // a BigInt, a cycle
  }
  if (json === undefined) return undefined; // a function
  if (!/\bjson\b/i.test(String(headers.get("content-type") ?? ""))) headers.set("content-type", JSON_TYPE);
  return { status, headers: pairs(headers), body: json };
}

function pairs(headers: Map<string, string | string[]>): Array<[string, string]> {
  const list: Array<[string, string]> = [];
  for (const [name, value] of headers) {
    if (Array.isArray(value)) for (const each of value) list.push([name, each]);
    else list.push([name, value]);
  }
  return list;
}
