/**
 * Between Koa and core's plain responses: `answer`/`writeResponse` put a decided response on `ctx`;
 * `captureResponse` reads back what the handler left on `ctx` as the bytes Koa will send, and
 * `recordBypass` what an app that bypasses Koa writes to `ctx.res` itself.
 */

import type { ServerResponse } from "node:http";
import { Readable } from "node:stream";
import {
  BodyCollector,
  type CapturedResponse,
  forEachHeader,
  type HttpResponse,
  hasNoContent,
  type IdempotencyEngine,
  type IdempotencyTicket,
} from "@interlock/core";
import type { Context } from "koa";

/** An empty body. */
export const EMPTY = new Uint8Array();

/** The Content-Type Koa gives a text body, and the status text it sends for a response without a body. */
export const TEXT_TYPE = "text/plain; charset=utf-8";

/**
 * The text Koa sends for a response without a body: the status message (`message`), or the bare
 * status code over HTTP/2, which has no reason phrase (nor, without a message, any status).
 */
export function statusText(status: number, httpVersionMajor: number, message: string | undefined): string {
  return httpVersionMajor >= 2 ? String(status) : message || String(status);
}

/**
 * Writes Interlock's `response`, unless `takeOver` (the app's `onError`) answered itself: it
 * did when it changed `ctx.body`, or set `ctx.status`, even to the 404 Koa starts with (an app
 * hiding its webhook route from bad signatures), which Koa notes as `_explicitStatus`.
 */
export function answer(
  ctx: Context,
  response: HttpResponse,
  takeOver?: () => void | Promise<void>,
): void | Promise<void> {
  // Without a take-over (a replay, a duplicate, no `onError`) written now: no promise for the
  // middleware to return, which would cost it a promise and two more ticks to settle its own.
  if (!takeOver) return writeResponse(ctx, response);
  return answerUnlessTakenOver(ctx, response, takeOver);
}

async function answerUnlessTakenOver(ctx: Context, response: HttpResponse, takeOver: () => void | Promise<void>) {
  const { body, status } = ctx;
  const explicit = statusSet(ctx);
  await takeOver();
  if (ctx.body !== body || ctx.status !== status || (!explicit && statusSet(ctx))) return;
  writeResponse(ctx, response);
}

/** Whether `ctx.status` was assigned (Koa 2 and 3 note it on the response). */
const statusSet = (ctx: Context): boolean => (ctx.response as { _explicitStatus?: boolean })._explicitStatus === true;

/** Writes a response core decided (a refusal, a duplicate, a replay) as the Koa response. */
export function writeResponse(ctx: Context, response: HttpResponse): void {
  ctx.status = response.status;
  let ownLength: string | string[] | undefined;
  forEachHeader(response.headers, (name, value) => {
    ctx.set(name, value);
    if (name === "content-length") ownLength = value;
  });
  const { body } = response;
  // A replayed HEAD answer brings the length of a GET's content, never sent, or none, as the
  // first answer did: Koa frames a HEAD answer by its body's length, an empty stream's unknown.
  if (ctx.method === "HEAD" && ownLength === undefined && body.byteLength === 0 && !hasNoContent(response.status))
    setBody(ctx, Readable.from([]));
  else setBytes(ctx, body);
  // Koa's body setter put the empty body's 0 in place of a HEAD answer's own length.
  if (ownLength !== undefined) ctx.set("Content-Length", ownLength);
}

/** Sets `bytes` as the body Koa sends, leaving a response without a Content-Type without one. */
function setBytes(ctx: Context, bytes: Uint8Array): void {
  setBody(ctx, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
}

function setBody(ctx: Context, body: Buffer | Readable): void {
  const typed = ctx.res.hasHeader("content-type");
  ctx.body = body;
  // Koa labels a Buffer or stream body application/octet-stream when it has no type of its own.
  if (!typed) ctx.remove("Content-Type");
}

/**
 * The handler's response as Koa's `respond()` will send it: `body: undefined` (not cached) for
 * a streamed body. An object body is serialised here, once, and becomes `ctx.body` as those
 * bytes (see `sendAsJson`). A client gone meanwhile changes nothing: its retry is replayed.
 */
export function captureResponse(ctx: Context): CapturedResponse {
  const status = ctx.status;
  const body: unknown = ctx.body;
  // Koa strips these answers' bodies (`statuses.empty`): the same three.
  if (hasNoContent(status)) return { status, headers: ctx.response.headers, body: EMPTY };
  if (body === null || body === undefined) return bodyless(ctx, status, ctx.response.headers);
  if (typeof body === "string" || Buffer.isBuffer(body)) return { status, headers: ctx.response.headers, body };
  if (isStreamed(body)) return { status, headers: ctx.response.headers, body: undefined };
  // Serialised first: the headers, a copy Koa makes when read, then carry the bytes' length.
  const json = sendAsJson(ctx, body);
  return { status, headers: ctx.response.headers, body: json };
}

/**
 * Serialises an object body once and makes those bytes what Koa sends (a Buffer, as a replay
 * sets it), instead of letting `respond()` call `JSON.stringify` a second time: a `toJSON`
 * that reads a clock or a counter would send other bytes than were stored. A body JSON cannot
 * serialise (a function, a BigInt) throws, as Koa's own `respond()` would: the key is released
 * and Koa answers its 500.
 */
function sendAsJson(ctx: Context, body: unknown): Buffer {
  const text: string | undefined = JSON.stringify(body);
  if (text === undefined) throw new TypeError(`ctx.body (a ${typeof body}) cannot be serialised as JSON`);
  const json = Buffer.from(text);
  setBody(ctx, json);
  return json;
}

/** No body: Koa sends the status message as text, or nothing after an explicit `ctx.body = null`. */
function bodyless(ctx: Context, status: number, headers: CapturedResponse["headers"]): CapturedResponse {
  // Koa answers a HEAD before it makes the status text: no Content-Type, no length.
  if (ctx.method === "HEAD") return { status, headers, body: EMPTY };
  if ((ctx.response as { _explicitNullBody?: boolean })._explicitNullBody) {
    return { status, headers: { ...headers, "content-type": undefined }, body: EMPTY };
  }
  const text = statusText(status, ctx.req.httpVersionMajor, ctx.message);
  return { status, headers: { ...headers, "content-type": TEXT_TYPE }, body: text };
}

/** Bodies Koa pipes rather than ends in one piece: Node streams, and (Koa 3) web streams, Blobs, Responses. */
export function isStreamed(body: unknown): boolean {
  if (typeof body !== "object" || body === null) return false;
  return (
    typeof (body as { pipe?: unknown }).pipe === "function" ||
    body instanceof ReadableStream ||
    body instanceof Blob ||
    body instanceof Response
  );
}

type Writer = (...args: unknown[]) => unknown;

// One response's bypass recording, kept on the response under this key. The functions put in
// place of `res.write` and `res.end` (and `res.destroy`, see DESTROY) are the same for every
// response, reading this through `this`: V8 13+ (Node 24, 26) charged about 12 µs a request for
// a new closure stored on each response (it keeps such a field's value constant in the
// response's hidden class, and every response brings another), while the same function stored
// on every response costs nothing.
const BYPASS = Symbol("@interlock/koa.bypass");

interface Recorded extends ServerResponse {
  [BYPASS]?: Bypass;
}

/**
 * One response's recording, and what the middleware asks of it. Allocated lean, as it is made for
 * every keyed request and nearly all of them answer through Koa: no closure of its own, the
 * collector made at the first write, the end's promise made only when something waits for it.
 */
class Bypass {
  readonly res: ServerResponse;
  readonly originalWrite: Writer;
  readonly originalEnd: Writer;
  /**
   * The recording of an idempotency() mounted before this one, which this one's `originalWrite`
   * and `originalEnd` (the same shared functions) reach: the response's recording while they run
   * (see `passOn`) and once this one is restored, so each layer records the app's calls once.
   */
  readonly previous: Bypass | undefined;
  /** What the app wrote, made at its first write. */
  collector: BodyCollector | undefined;
  /** A stream was piped in, or a chunk that is no bytes written: the body is not recorded. */
  unrecorded = false;
  piped = false;
  /** Whether the app wrote or ended `ctx.res` itself (headers flushed alone are not an answer: Koa still sends `ctx.body`). */
  wrote = false;
  /** The response has ended (or closed, for a pipe cut off), or its end is held: what was written is final. */
  hasEnded = false;
  /** The app destroyed the response before ending it: a failed handler, as one that throws (see `guardedDestroy`). */
  failed = false;
  /** Until `restore`: `res.write` and `res.end` are this recording's. */
  recording = true;
  /**
   * The app's end of a response it answers itself (`ctx.respond = false`), held until the record
   * is settled (`sendHeld`): sent at once, a client that retried the moment it had the answer
   * would find its key still in flight. Undefined when no end is held.
   */
  heldEnd: unknown[] | undefined;
  /** The app's end was held (`heldEnd`), whether or not it has been sent since. */
  endHeld = false;
  /**
   * The app's `write` and `end` calls made while its end is held, passed on once it has gone out
   * (as the Express adapter does, and `StreamedBody` below). Passed on at once, a second `end()`
   * would end the response first, and the held end would then be a write after end: an 'error'
   * event on the response that nothing handles, and the process down.
   */
  afterEnd: Array<[Writer, unknown[]]> | undefined;
  /** Made by `end()` for whoever waits, settled by `ended()`. */
  endPromise: Promise<void> | undefined;
  resolveEnd: (() => void) | undefined;

  /**
   * `engine` and `ticket` are the key's claim, whose lease stops being renewed when the client
   * leaves an answer the app began and has not ended (see `onBypassCutOff`): kept as they are, not
   * as a closure of this recording's own.
   */
  constructor(
    readonly ctx: Context,
    readonly limit: number,
    readonly engine: Pick<IdempotencyEngine, "cutOff">,
    readonly ticket: IdempotencyTicket,
  ) {
    const res = ctx.res;
    this.res = res;
    this.originalWrite = res.write as Writer;
    this.originalEnd = res.end as Writer;
    const found = (res as Recorded)[BYPASS];
    this.previous = found?.recording === true ? found : undefined;
  }

  /**
   * Records a chunk; returns what to send in its place: the copy kept of the app's own buffer,
   * which a held end sends, as the app may reuse its buffer once `end()` has returned.
   */
  keep(chunk: unknown, encoding: unknown): unknown {
    if (this.unrecorded || chunk === undefined || chunk === null || typeof chunk === "function") return chunk;
    const body = this.body();
    if (body.overflowed) return chunk;
    const bytes =
      typeof chunk === "string"
        ? Buffer.from(chunk, typeof encoding === "string" ? (encoding as BufferEncoding) : "utf8")
        : chunk instanceof Uint8Array
          ? chunk
          : undefined;
    if (bytes === undefined) {
      this.unrecord();
      return chunk;
    }
    // The app's own buffer is copied (when kept): it may reuse it once written. Past the limit
    // nothing is kept (what was is let go: a stream may go on for long), and the collector says
    // the body was too large.
    if (!body.add(bytes, bytes === chunk)) {
      body.forget();
      return chunk;
    }
    if (bytes !== chunk || bytes.byteLength === 0) return chunk;
    // A Buffer over the copy, as the app wrote one.
    const copy = body.chunks[body.chunks.length - 1] as Uint8Array;
    return Buffer.from(copy.buffer, copy.byteOffset, copy.byteLength);
  }

  body(): BodyCollector {
    this.collector ??= new BodyCollector(this.limit);
    return this.collector;
  }

  unrecord(): void {
    this.unrecorded = true;
    this.collector = undefined;
  }

  /** Stops recording: the methods back to what they were, unless an end is held (`sendHeld` puts them back). */
  stop(): void {
    if (this.heldEnd === undefined) this.restore();
  }

  restore(): void {
    const res = this.res;
    this.recording = false;
    res.write = this.originalWrite as ServerResponse["write"];
    res.end = this.originalEnd as ServerResponse["end"];
    // The layer before records from now on. The last one stays the response's once restored: what
    // it held is read after (`watchEnd`, `guardedDestroy`).
    if (this.previous !== undefined) (res as Recorded)[BYPASS] = this.previous;
  }

  /**
   * Calls the method this recording replaced. When it is the layer before's recording function,
   * that layer's recording is the response's for the call: otherwise the shared function would
   * find this one again, and call itself until the stack overflows.
   */
  passOn(method: Writer, args: unknown[]): unknown {
    const res = this.res as Recorded;
    if (this.previous === undefined || res[BYPASS] !== this) return method.apply(res, args);
    res[BYPASS] = this.previous;
    try {
      return method.apply(res, args);
    } finally {
      res[BYPASS] = this;
    }
  }

  /** The app destroyed the response before its end (see `guardedDestroy`): what it wrote is final, and failed. */
  fail(): void {
    if (!this.recording) return;
    this.failed = true;
    this.stop();
    this.ended();
  }

  /**
   * Sends the held end, once the record is settled (stored or not), then the app's calls made
   * meanwhile, as Node takes calls after an end. Nothing when no end is held.
   */
  sendHeld(): void {
    const args = this.heldEnd;
    if (args === undefined) return;
    const afterEnd = this.afterEnd ?? [];
    this.heldEnd = undefined;
    this.afterEnd = undefined;
    this.restore();
    const res = this.res;
    this.originalEnd.apply(res, args);
    for (const [method, callArgs] of afterEnd) method.apply(res, callArgs);
  }

  ended(): void {
    this.hasEnded = true;
    this.resolveEnd?.();
  }

  end(): Promise<void> {
    if (this.hasEnded) return Promise.resolve();
    this.endPromise ??= new Promise<void>((resolve) => {
      this.resolveEnd = resolve;
    });
    return this.endPromise;
  }

  written(): CapturedResponse {
    const res = this.res;
    const body = this.unrecorded ? undefined : this.body();
    return {
      status: res.statusCode,
      headers: sentHeaders(res),
      body: body?.body(),
      tooLarge: body?.overflowed === true,
    };
  }

  /**
   * Whether the app answered through `ctx.res` rather than through Koa: it bypassed Koa, or
   * wrote or ended `ctx.res` itself. Headers flushed alone (`ctx.flushHeaders()`, as for
   * server-sent events) are not: Koa still sends `ctx.body`, which is captured as usual.
   */
  used(ctx: Context): boolean {
    return ctx.respond === false || this.res.writableEnded || this.wrote || this.failed;
  }

  /**
   * Whether Koa itself ends the response the app began writing (`ctx.respond` left on): its
   * end comes only once every middleware has returned, so nothing may wait for it before then.
   */
  endedByKoa(ctx: Context): boolean {
    return ctx.respond !== false && !this.res.writableEnded && this.heldEnd === undefined;
  }

  /**
   * What the app wrote, once it has ended the response (its end held until the caller has
   * settled the record and calls `sendHeld`); undefined when it destroyed the response instead.
   */
  async recorded(): Promise<CapturedResponse | undefined> {
    // Its header block alone sent (`writeHead`, `flushHeaders`: server-sent events before their
    // first event) is an answer begun too: a close from now on cuts it off.
    if (!this.wrote && this.res.headersSent && !this.res.writableEnded) watchCutOff(this.res);
    await this.end();
    return this.failed ? undefined : this.written();
  }

  /**
   * What went out once Koa has ended the response: the app's writes, then Koa's. A response
   * closed first, which Koa then never ends (the client left), is settled as cut off, uncached;
   * one the app destroyed is undefined (failed).
   */
  whenEnded(): Promise<CapturedResponse | undefined> {
    const res = this.res;
    const cutOff = (): CapturedResponse | undefined =>
      this.failed ? undefined : { status: res.statusCode, headers: sentHeaders(res), body: undefined };
    if (res.destroyed) return Promise.resolve(cutOff());
    return new Promise((resolve) => {
      const onClose = () => resolve(cutOff());
      res.once("close", onClose);
      this.end().then(() => {
        res.removeListener("close", onClose);
        resolve(this.written());
      });
    });
  }
}

/** The response's recording; a wrapper called on anything else is a caller's mistake. */
function bypassOf(res: ServerResponse): Bypass {
  const bypass = (res as Recorded | undefined)?.[BYPASS];
  if (bypass === undefined)
    throw new TypeError("a recorded response method was called on another object than its response");
  return bypass;
}

function bypassWrite(this: ServerResponse, ...args: unknown[]): unknown {
  const bypass = bypassOf(this);
  if (bypass.afterEnd !== undefined) {
    bypass.afterEnd.push([bypass.originalWrite, args]);
    return false; // what Node's write answers after an end
  }
  if (!bypass.wrote) watchCutOff(this);
  bypass.wrote = true;
  bypass.keep(args[0], args[1]);
  return bypass.passOn(bypass.originalWrite, args);
}

/**
 * The app has begun its answer on `ctx.res` (a first write, or its header block alone once
 * `next()` returned: see `Bypass.recorded`), and not ended it: a close from now on cuts it off
 * (see `onBypassCutOff`). Watched only from then: most responses are Koa's, or ended by the app
 * in one call, and never pay for the listener.
 */
function watchCutOff(res: ServerResponse): void {
  // Begun after the client left: closed already, it emits no more "close".
  if (closed(res)) process.nextTick(() => onBypassCutOff.call(res));
  else res.once("close", onBypassCutOff);
}

// Closed before the app's end (the client left). The recording goes on: the handler may have done
// its work (a payment) and still end its answer, which is then recorded as usual, so the client's
// retry is a replay, not a second run beside it. But a handler written with `res.write`
// (server-sent events, streamed tokens) that stops at the close never ends it: the key's lease is
// renewed no more, so it lapses within `lockTtlMs` unless that end comes first, rather than be
// held until `extendLease.maxMs`. A stream piped in is settled by its own close (`onBypassClose`).
function onBypassCutOff(this: ServerResponse): void {
  const bypass = bypassOf(this);
  if (bypass.hasEnded || !bypass.recording || bypass.piped) return;
  bypass.engine.cutOff(bypass.ticket);
}

/**
 * The app's end. Of a response it answers itself (`ctx.respond = false`), held until the record
 * is settled (see `Bypass.heldEnd`), its headers fixed now as Node's end would fix them. Not held:
 * an end after the client left (it goes nowhere), a chunk Node refuses (its `end` throws to the
 * app now, as without Interlock), and an end with `ctx.respond` left on, which Koa must see as
 * ended (`writableEnded`), or it would send `ctx.body` after it.
 */
function bypassEnd(this: ServerResponse, ...args: unknown[]): unknown {
  const bypass = bypassOf(this);
  if (bypass.afterEnd !== undefined) {
    bypass.afterEnd.push([bypass.originalEnd, args]);
    return this;
  }
  bypass.wrote = true;
  const chunk = bypass.keep(args[0], args[1]);
  if (bypass.ctx.respond === false && !closed(this) && !bypass.failed && endsAsIs(chunk)) {
    if (args.length > 0) args[0] = chunk;
    bypass.heldEnd = args;
    bypass.endHeld = true;
    bypass.afterEnd = [];
    fixHeaders(this, chunk, args[1]);
    bypass.ended();
    return this;
  }
  bypass.stop();
  const result = bypass.originalEnd.apply(this, args);
  bypass.ended();
  return result;
}

/** Whether the response is closed: destroyed, or (HTTP/2's compatibility response has no `destroyed`) its stream. */
const closed = (res: ServerResponse): boolean =>
  res.destroyed === true || (res as { stream?: { destroyed?: boolean } }).stream?.destroyed === true;

/** A chunk Node's `end` takes: bytes, text, or none (a callback in its place). */
const endsAsIs = (chunk: unknown): boolean =>
  chunk === undefined ||
  chunk === null ||
  typeof chunk === "function" ||
  typeof chunk === "string" ||
  chunk instanceof Uint8Array;

/**
 * Fixes the header block now, as Node's `end` itself does (`_implicitHeader`, with the length of
 * the end's chunk), though nothing is sent until the held end goes out (as the Express adapter's
 * `fixHeaders`). The record reads the headers as sent (`sentHeaders`), and the app sees its
 * response as ended: a `setHeader` now throws ERR_HTTP_HEADERS_SENT, as it would without Interlock.
 */
function fixHeaders(res: ServerResponse, chunk: unknown, encoding: unknown): void {
  if (res.headersSent) return;
  let length = 0;
  if (typeof chunk === "string")
    length = Buffer.byteLength(chunk, typeof encoding === "string" ? (encoding as BufferEncoding) : "utf8");
  else if (chunk instanceof Uint8Array) length = chunk.byteLength;
  (res as ServerResponse & { _contentLength?: number })._contentLength = length;
  res.writeHead(res.statusCode);
}

// The app's `res.destroy()`, wrapped once for a response whichever layers are on it (the bypass
// recording above, a webhook's watch below), kept on the response under this key: the same
// function for every response, as the recording's (see BYPASS).
const DESTROY = Symbol("@interlock/koa.destroy");

interface Guarded extends ServerResponse {
  [DESTROY]?: DestroyGuard;
}

/** A response's `destroy` as it was found, and whether the app destroyed it before its end. */
export class DestroyGuard {
  readonly original: Writer;
  /** The app destroyed the response before its end: a failed handler, as one that throws. */
  failed = false;

  constructor(res: ServerResponse) {
    this.original = res.destroy as Writer;
  }
}

/**
 * Watches for the app destroying `res` before its end (see `guardedDestroy`): `failed` on what
 * it returns, and the recording (`recordBypass`) and a webhook's watch (`watchEnd`) on `res`
 * told at once. One guard for a response, whichever layer asks first; it stays in place (a
 * later destroy, with no layer left to tell, only passes through).
 */
export function guardDestroy(res: ServerResponse): DestroyGuard {
  const found = (res as Guarded)[DESTROY];
  if (found !== undefined) return found;
  const guard = new DestroyGuard(res);
  (res as Guarded)[DESTROY] = guard;
  res.destroy = guardedDestroy as ServerResponse["destroy"];
  return guard;
}

/**
 * The app destroys the response. Before its end, a failed handler: the key and the delivery are
 * released, as for a throw (an answer cut off mid-way is no answer; its lease would otherwise be
 * renewed for as long as the middleware waits for an end that never comes). Told apart from a
 * client that leaves: Node never calls `res.destroy()` then, and a destroy once the response is
 * destroyed (a `pipeline` into it, after its client left) is no failure of the app's. After the
 * app's end (held by the recording, or sent), passed on as is.
 */
function guardedDestroy(this: ServerResponse, ...args: unknown[]): unknown {
  const guard = (this as Guarded)[DESTROY];
  if (guard === undefined)
    throw new TypeError("a guarded response method was called on another object than its response");
  const bypass = (this as Recorded)[BYPASS];
  if (!guard.failed && !closed(this) && !this.writableEnded && bypass?.hasEnded !== true) {
    guard.failed = true;
    // Every idempotency() recording the response fails (see `Bypass.previous`): each holds a key.
    for (let failed = bypass; failed !== undefined; failed = failed.previous) failed.fail();
    (this as Watched)[END_WATCH]?.fail();
  }
  return guard.original.apply(this, args);
}

/** A stream is piped in: nothing is recorded (streamed), and a client that leaves first settles it then. */
function onBypassPipe(this: ServerResponse): void {
  const bypass = bypassOf(this);
  bypass.unrecord();
  if (bypass.piped) return;
  bypass.piped = true;
  this.once("close", onBypassClose);
}

// A pipe stops when its response closes: when the client left first, nothing ends this
// response any more, so what was recorded (a stream: nothing) is settled then.
function onBypassClose(this: ServerResponse): void {
  const bypass = bypassOf(this);
  bypass.stop();
  bypass.ended();
}

/**
 * Records what the app writes to `ctx.res` itself (`ctx.respond = false`, then `res.write` /
 * `res.end`), as the Fastify adapter records a hijacked reply: up to `limit` bytes, past which
 * the response counts as too large (`tooLarge`), and when a stream is piped into `ctx.res`, as
 * streamed (either way not cached, key released). With `ctx.respond = false` the app's end is
 * held until the caller has settled the record (`sendHeld`). `stop` once Koa answers from `ctx`:
 * its own writes are not recorded. A piped response the client closed before its end is settled
 * when it closes; one the app destroys before its end, as failed; one the app wrote and the client
 * closed before its end stops the lease's renewal (`engine.cutOff(ticket)`), and is recorded as
 * the app still ends it.
 */
export function recordBypass(
  ctx: Context,
  limit: number,
  engine: Pick<IdempotencyEngine, "cutOff">,
  ticket: IdempotencyTicket,
): Bypass {
  const res = ctx.res;
  const bypass = new Bypass(ctx, limit, engine, ticket);
  (res as Recorded)[BYPASS] = bypass;
  // The "pipe" listener is never removed: Node keeps no fixed shape for a response's `_events`,
  // so removing one deletes a property and turns that object into a slow dictionary for the rest
  // of the response (~1-3 µs a request here). Left in place, it only marks unrecorded a body no
  // one reads any more.
  res.on("pipe", onBypassPipe);
  res.write = bypassWrite as ServerResponse["write"];
  res.end = bypassEnd as ServerResponse["end"];
  guardDestroy(res);
  return bypass;
}

/**
 * The headers as sent: `writeHead(status, headers)` without a prior `setHeader` writes its
 * headers straight into the header block, so that is read when present.
 */
function sentHeaders(res: ServerResponse): CapturedResponse["headers"] {
  const block = (res as ServerResponse & { _header?: unknown })._header;
  if (typeof block !== "string" || block === "") return res.getHeaders();
  const pairs: Array<[string, string]> = [];
  for (const line of block.split("\r\n").slice(1)) {
    const colon = line.indexOf(":");
    if (colon > 0) pairs.push([line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()]);
  }
  return pairs;
}

// A streamed body's settling, kept on its response under this key: the same functions for every
// response, as the bypass recording's (see BYPASS).
const STREAMED = Symbol("@interlock/koa.streamed");

interface Streaming extends ServerResponse {
  [STREAMED]?: StreamedBody;
}

interface StreamedSource {
  [STREAMED]?: StreamedBody;
}

class StreamedBody {
  readonly end: Writer;
  readonly write: Writer;
  settling: Promise<void> | undefined;
  /**
   * The app's `write` and `end` calls made while the first end is held, passed on once it has
   * gone out (as the Express adapter does). Passed on at once, an app's own `res.end()` would end
   * the response before the store is settled, so a retry sent the moment the answer arrives
   * would find the key still in flight.
   */
  afterEnd: Array<[Writer, unknown[]]> | undefined;

  constructor(
    readonly res: ServerResponse,
    readonly settle: (sent: boolean) => Promise<unknown>,
  ) {
    this.end = res.end as Writer;
    this.write = res.write as Writer;
  }

  /** Settles once, whatever comes first (`sent`: the whole body went out); never rejects. */
  done(sent: boolean): Promise<void> {
    if (this.settling === undefined) {
      const ignore = () => {};
      this.settling = this.settle(sent).then(ignore, ignore);
    }
    return this.settling;
  }
}

function streamedOf(target: Streaming | StreamedSource): StreamedBody {
  const streamed = target[STREAMED];
  if (streamed === undefined)
    throw new TypeError("a held response method was called on another object than its response");
  return streamed;
}

/** The stream has been sent (Koa's pipe ends the response): settled, then the end goes out. */
function heldStreamedEnd(this: ServerResponse, ...args: unknown[]): ServerResponse {
  const streamed = streamedOf(this);
  if (streamed.afterEnd !== undefined) {
    streamed.afterEnd.push([streamed.end, args]);
    return this;
  }
  streamed.afterEnd = [];
  this.write = heldStreamedWrite as ServerResponse["write"];
  const flush = () => {
    const afterEnd = streamed.afterEnd ?? [];
    if (this.end === (heldStreamedEnd as ServerResponse["end"])) this.end = streamed.end as ServerResponse["end"];
    if (this.write === (heldStreamedWrite as ServerResponse["write"]))
      this.write = streamed.write as ServerResponse["write"];
    streamed.end.apply(this, args);
    for (const [method, callArgs] of afterEnd) method.apply(this, callArgs);
  };
  streamed.done(true).then(flush, flush);
  return this;
}

/** A write while the end is held: after it, as Node takes a write after an end. */
function heldStreamedWrite(this: ServerResponse, ...args: unknown[]): boolean {
  const streamed = streamedOf(this);
  streamed.afterEnd?.push([streamed.write, args]);
  return false; // what Node's write answers after an end
}

// The body stream failed (Koa 2 leaves a response whose headers went out open), or the response
// closed before its end (the client left, or Koa 3's pipeline destroyed it): nothing sends more.
function onStreamedStop(this: Streaming | StreamedSource): void {
  void streamedOf(this).done(false);
}

/**
 * Settles a streamed `ctx.body` once it has been sent, not when `next()` returns: Koa pipes it
 * only after every middleware has returned, and the handler may still be producing it, so a
 * retry (or a provider's redelivery) meanwhile is in flight, not run beside it. Settled when the
 * response is ended (`settle(true)`; its end held until then, so a client that read the whole
 * stream and retries finds it settled), or with `settle(false)` when the body stream fails or the
 * response closes first.
 */
export function settleWhenSent(res: ServerResponse, body: unknown, settle: (sent: boolean) => Promise<unknown>): void {
  const streamed = new StreamedBody(res, settle);
  const nodeStream =
    typeof (body as { once?: unknown } | null)?.once === "function"
      ? (body as StreamedSource & NodeJS.EventEmitter & { destroyed?: boolean })
      : undefined;
  if (res.writableEnded || res.destroyed || nodeStream?.destroyed === true) {
    void streamed.done(false); // the body never goes out
    return;
  }
  (res as Streaming)[STREAMED] = streamed;
  res.end = heldStreamedEnd as ServerResponse["end"];
  // Listeners never removed, as the "pipe" one above: each settles once at most.
  res.once("close", onStreamedStop);
  if (nodeStream !== undefined) {
    nodeStream[STREAMED] = streamed;
    nodeStream.once("error", onStreamedStop).once("close", onStreamedStop);
  }
}

// What a webhook handler that bypasses Koa (`ctx.respond = false`) did with `ctx.res`, kept on the
// response under this key (same functions for every response, as above).
const END_WATCH = Symbol("@interlock/koa.endWatch");

interface Watched extends ServerResponse {
  [END_WATCH]?: EndWatch;
}

class EndWatch {
  readonly end: Writer;
  piped: boolean;
  cutOff: boolean;
  report: (status: number | undefined) => void = () => {};
  readonly status = new Promise<number | undefined>((resolve) => {
    this.report = resolve;
  });

  constructor(
    readonly res: ServerResponse,
    readonly stopRenewal: () => void,
  ) {
    this.end = res.end as Writer;
    this.cutOff = res.destroyed;
    // A stream piped in before the watch began: Readable#pipe listens for its target's "unpipe".
    this.piped = res.listenerCount("unpipe") > 0;
  }

  /** Stops watching: `res.end` back to what it was when it is still this watch's. */
  stop(): void {
    if (this.res.end === (watchedEnd as ServerResponse["end"])) this.res.end = this.end as ServerResponse["end"];
  }

  /** The app destroyed the response before its end (see `guardedDestroy`): no status, now. */
  fail(): void {
    this.stop();
    this.report(undefined);
  }
}

function endWatchOf(res: ServerResponse): EndWatch {
  const watch = (res as Watched | undefined)?.[END_WATCH];
  if (watch === undefined)
    throw new TypeError("a watched response method was called on another object than its response");
  return watch;
}

function watchedEnd(this: ServerResponse, ...args: unknown[]): unknown {
  const watch = endWatchOf(this);
  // Ended after the response closed: the answer never reached the client whole, whatever its status.
  const cutOff = watch.cutOff || this.destroyed;
  watch.stop();
  let result: unknown;
  try {
    result = watch.end.apply(this, args);
  } catch (error) {
    watch.report(undefined);
    throw error;
  }
  watch.report(cutOff ? undefined : this.statusCode);
  return result;
}

function onWatchedPipe(this: ServerResponse): void {
  endWatchOf(this).piped = true;
}

// Closed before the handler ended it: cut off. The handler is still running until it ends the
// response, which reports then; a pipe stops when its response closes and never ends it: now. A
// handler that answers as it goes (server-sent events, streamed tokens, begun before the close
// or after it) and stops at the close never ends it either: the delivery's lease is renewed no
// more, so it lapses within `lockTtlMs` unless that end comes first, rather than be held until
// `extendLease.maxMs`.
function onWatchedClose(this: ServerResponse): void {
  const watch = endWatchOf(this);
  watch.cutOff = true;
  if (watch.piped) {
    watch.stop();
    watch.report(undefined);
  } else watch.stopRenewal();
}

/**
 * The status a handler that answered through `ctx.res` itself (`ctx.respond = false`) sent, once
 * it has ended the response; undefined for a response cut off before its end (the client closed
 * it first, whatever status its headers carried: the work behind it may still fail). Called when
 * `next()` has returned, so only such a handler pays for it. A handler still writing is watched
 * until it ends the response (reported then, even cut off: only then is it done) or, for a
 * stream piped in, until the response closes (the pipe stops then, and never ends it); one the
 * app destroys before its end is reported undefined at once, through the response's guard
 * (`guardDestroy`, set by the caller before `next()`: it may be destroyed before it returns). A
 * response the client closed before the handler's end calls `stopRenewal` (core's `cutOff`):
 * that end may never come.
 */
export function watchEnd(res: ServerResponse, stopRenewal: () => void): Promise<number | undefined> {
  // An end held by an idempotency() mounted before (see `Bypass.heldEnd`) goes out only once this
  // middleware has returned, and one held by an idempotency() mounted after went out (or not,
  // when the app destroyed the response after its end) as that one settled: ended either way, by
  // its status. Not read from the response: after a destroy, Node 20 marks such an end finished,
  // Node 24 and later do not.
  const bypass = (res as Recorded)[BYPASS];
  if (res.writableFinished || (bypass?.endHeld === true && !bypass.failed)) return Promise.resolve(res.statusCode);
  if (res.writableEnded) {
    // Ended, still going out: finished, or closed first (cut off).
    return new Promise((resolve) => {
      res.once("finish", () => resolve(res.statusCode)).once("close", () => resolve(undefined));
    });
  }
  const watch = new EndWatch(res, stopRenewal);
  if (watch.cutOff && watch.piped) return Promise.resolve(undefined);
  (res as Watched)[END_WATCH] = watch;
  res.on("pipe", onWatchedPipe);
  if (!watch.cutOff) res.once("close", onWatchedClose);
  else stopRenewal();
  res.end = watchedEnd as ServerResponse["end"];
  return watch.status;
}
