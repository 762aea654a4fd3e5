/**
 * Response capture. Express's `send`, `json`, `sendStatus`, `sendFile` and `stream.pipe(res)`
 * all end in Node's `res.write` / `res.end`, so those two are wrapped. Writes go out as they
 * come; the `end` is held until the store knows the outcome, so a client that retries the
 * moment it reads the answer finds the record, not a lock. `res.destroy` is wrapped too: the
 * app destroying its response before ending it is a failed handler (see `heldDestroy`).
 */

import type { ServerResponse } from "node:http";
import { finished } from "node:stream";
import { BodyCollector, writeHeadHeaders } from "@interlock/core";

type Writer = (...args: unknown[]) => unknown;

/** A response's headers: as `getHeaders()` gives them, or as pairs read from the header block. */
export type ResponseHeaders = Array<[string, string]> | ReturnType<ServerResponse["getHeaders"]>;

// A mark on the response itself, set when the app writes through a hold. Not a WeakSet: every
// WeakSet entry is an ephemeron the collector re-examines, which costs more than the request.
const STARTED = Symbol("@interlock/express.started");

interface Marked {
  [STARTED]?: true;
}

/** Whether the app has begun its response (its end possibly still held here). */
export function responseStarted(res: ServerResponse): boolean {
  return (res as Marked)[STARTED] === true || res.headersSent || res.writableEnded;
}

/**
 * What `holdResponse` hands the stored body, the headers the app set, whether the body was too
 * large, and whether the response was cut off: piped, and closed by the client before its end.
 */
type Settle = (
  body: Uint8Array | undefined,
  headers: ResponseHeaders,
  tooLarge: boolean,
  cutOff: boolean,
) => Promise<void>;

/** Releases what the request claimed, as for a throw: the app destroyed its response before ending it. */
type Fail = () => Promise<void>;

/**
 * Stops renewing the claim's lease, settling nothing (core's `cutOff`): the client left an answer
 * the app had begun and not ended. Never throws.
 */
type StopRenewal = () => void;

// One response's capture, kept on the response under this key. The wrappers put in place of
// `res.write`, `res.end`, `res.writeHead` and `res.destroy` are the same four functions for
// every response, reading this state through `this`: V8 13+ (Node 24, 26) charged about 12 to
// 20 µs a request for a new closure stored on each Express response (it keeps such a field's
// value constant in the response's hidden class, and every response brings another), while the
// same function stored on every response costs nothing measurable.
const HOLD = Symbol("@interlock/express.hold");

interface Held extends ServerResponse {
  [HOLD]?: Hold;
}

class Hold {
  /**
   * The response's methods as this hold found them: Node's, or (`previous` set) the held ones.
   * `destroy` is wrapped by the first hold alone, so only that one's is Node's.
   */
  readonly original: { write: Writer; end: Writer; writeHead: Writer; destroy: Writer };
  /**
   * The hold already on the response when this one was made (`webhook()` and `idempotency()`
   * on one request), or undefined. Holds stack: each write, header block and end passes through
   * this one, then the previous, then Node. Through `original`, they would come back here.
   */
  readonly previous: Hold | undefined;
  body: BodyCollector | undefined;
  /**
   * The headers as the app set them, read as its response starts: a layer mounted before this
   * one that encodes the body (compression) adds its Content-Encoding while the header block is
   * written, yet the bytes recorded here are the app's own, and a replay passes through that
   * layer again. Undefined until the app writes; then the header block, or these.
   */
  appHeaders: ResponseHeaders | undefined;
  ended = false;
  piped = false;
  /** The streams piped into the response (on the hold that was on top when they were). */
  sources: NodeJS.ReadableStream[] | undefined;

  constructor(
    readonly res: ServerResponse,
    readonly settle: Settle,
    readonly fail: Fail,
    readonly stopRenewal: StopRenewal,
    recordLimit: number | undefined,
  ) {
    this.original = {
      write: res.write as Writer,
      end: res.end as Writer,
      writeHead: res.writeHead as Writer,
      destroy: res.destroy as Writer,
    };
    this.previous = (res as Held)[HOLD];
    this.body = recordLimit === undefined ? undefined : new BodyCollector(recordLimit);
  }

  /**
   * Records a chunk; returns what to write in its place. The app's own buffer is copied (when
   * kept): it may reuse it once written. The copy is what goes out too: Node keeps a reference
   * to a written buffer until it flushes the socket, which the held end puts off, so the app's
   * later changes would reach the client and not the record.
   */
  record(chunk: unknown, encoding: unknown): unknown {
    const body = this.body;
    if (body === undefined || body.overflowed || chunk === undefined || chunk === null || typeof chunk === "function")
      return chunk;
    const bytes = chunkBytes(chunk, encoding);
    if (bytes === undefined) {
      this.body = undefined;
      return chunk;
    }
    // Past the limit the collector keeps nothing, and lets go of what it kept (a stream may go on
    // for long): it stays, to say the body was too large.
    if (!body.add(bytes, bytes === chunk)) {
      body.forget();
      return chunk;
    }
    if (bytes !== chunk || bytes.byteLength === 0) return chunk;
    // A Buffer over the copy, as the app wrote one: layers before this one may call its methods.
    const copy = body.chunks[body.chunks.length - 1] as Uint8Array;
    return Buffer.from(copy.buffer, copy.byteOffset, copy.byteLength);
  }

  noteHeaders(writeHeadArgs?: unknown[]): void {
    if (this.appHeaders !== undefined || this.res.headersSent) return;
    const headers = this.res.getHeaders();
    if (writeHeadArgs !== undefined) Object.assign(headers, writeHeadHeaders(writeHeadArgs));
    this.appHeaders = headers;
  }

  /**
   * Ends this hold: the response's methods go to the previous hold, or back to Node's (with
   * `restore` false, the last hold's stay until its held end goes out: see `endNow`).
   */
  unwrap(restore = true): void {
    this.ended = true;
    if (this.previous !== undefined) {
      (this.res as Held)[HOLD] = this.previous;
      return;
    }
    if (restore) this.restore();
  }

  /** The response's methods back to what this hold found. */
  restore(): void {
    const { res, original } = this;
    res.write = original.write as ServerResponse["write"];
    res.end = original.end as ServerResponse["end"];
    res.writeHead = original.writeHead as ServerResponse["writeHead"];
    res.destroy = original.destroy as ServerResponse["destroy"];
  }
}

// The app's `write` and `end` calls made while its first `end` is held, kept on the response
// under this key until that end has gone out. Passed on at once, a second `res.end()` (a
// "make sure it is ended" helper after `res.json`) would end the response before the held end,
// which would then be a write after end: an 'error' event on the response that nothing handles,
// and the process down. Passed on after it, Node takes them as it takes calls after an end.
const AFTER_END = Symbol("@interlock/express.afterEnd");

interface Ending {
  [AFTER_END]?: Array<["write" | "end", unknown[]]> | undefined;
}

/** The response's hold; a wrapper called on anything else is a caller's mistake Node's own method would refuse too. */
function holdOf(res: ServerResponse): Hold {
  const hold = (res as Held | undefined)?.[HOLD];
  if (hold === undefined) throw new TypeError("a held response method was called on another object than its response");
  return hold;
}

function heldWriteHead(this: ServerResponse, ...args: unknown[]): unknown {
  const hold = holdOf(this);
  watchCutOff(this);
  return writeHeadThrough(hold, this, args);
}

function writeHeadThrough(hold: Hold, res: ServerResponse, args: unknown[]): unknown {
  hold.noteHeaders(args);
  if (hold.previous !== undefined) return writeHeadThrough(hold.previous, res, args);
  return hold.original.writeHead.apply(res, args);
}

function heldWrite(this: ServerResponse, ...args: unknown[]): unknown {
  const afterEnd = (this as Ending)[AFTER_END];
  if (afterEnd !== undefined) {
    afterEnd.push(["write", args]);
    return false; // what Node's write answers after an end
  }
  const hold = holdOf(this);
  (this as Marked)[STARTED] = true;
  watchCutOff(this);
  return writeThrough(hold, this, args);
}

function writeThrough(hold: Hold, res: ServerResponse, args: unknown[]): unknown {
  hold.noteHeaders();
  args[0] = hold.record(args[0], args[1]);
  if (hold.previous !== undefined) return writeThrough(hold.previous, res, args);
  return hold.original.write.apply(res, args);
}

function heldEnd(this: ServerResponse, ...args: unknown[]): ServerResponse {
  const afterEnd = (this as Ending)[AFTER_END];
  if (afterEnd !== undefined) {
    afterEnd.push(["end", args]);
    return this;
  }
  (this as Marked)[STARTED] = true;
  (this as Ending)[AFTER_END] = [];
  endThrough(holdOf(this), args);
  return this;
}

/** Settles `hold` with the response's body, then lets the end go on: to the previous hold, or out. */
function endThrough(hold: Hold, args: unknown[]): void {
  const res = hold.res;
  hold.noteHeaders();
  hold.unwrap(false);
  if (args.length > 0) args[0] = hold.record(args[0], args[1]);
  const { previous } = hold;
  const flush = () => void (previous !== undefined ? endThrough(previous, args) : endNow(hold, args));
  const { body } = hold;
  const settling = hold.settle(body?.body(), hold.appHeaders ?? responseHeaders(res), body?.overflowed === true, false);
  fixHeaders(res, args[0], args[1]);
  settling.then(flush, flush);
}

/** The last hold's end goes out, then the app's calls made while it was held (see AFTER_END). */
function endNow(hold: Hold, args: unknown[]): void {
  const res = hold.res as ServerResponse & Ending;
  const afterEnd = res[AFTER_END] ?? [];
  res[AFTER_END] = undefined;
  hold.restore();
  hold.original.end.apply(res, args);
  for (const [method, callArgs] of afterEnd) hold.original[method].apply(res, callArgs);
}

/**
 * The app destroys its response (`res.destroy()`, the usual way to signal a body that failed
 * mid-way) before ending it: a failed handler, as if it threw. Each hold still open releases
 * what it claimed (`fail`) now; left alone, nothing would ever end the response, and the lease
 * renewed meanwhile would keep the key or delivery claimed, every retry a 409. Node never calls
 * `destroy` when the client leaves (the route then goes on, and its answer is recorded), so
 * this is the app's own call. Passed on as it is after the app's end (held here until stored,
 * which settles it), and with a stream piped in: `pipeline` destroys the response when its
 * source fails, and the close that follows settles it (`cutOff`), once.
 */
function heldDestroy(this: ServerResponse, ...args: unknown[]): unknown {
  const top = holdOf(this);
  const failed = !top.piped && (this as Ending)[AFTER_END] === undefined;
  let first = top;
  for (let hold: Hold | undefined = top; hold !== undefined; hold = hold.previous) {
    first = hold;
    if (!failed || hold.ended) continue;
    hold.unwrap();
    hold.fail().catch(() => {});
  }
  // Only the first hold wraps `destroy`: its `original` one is Node's.
  return first.original.destroy.apply(this, args);
}

/** A stream is piped in: no hold records the body (streamed), and a client that leaves first settles them once it is over. */
function onPipe(this: ServerResponse, source: NodeJS.ReadableStream): void {
  const top = holdOf(this);
  top.sources ??= [];
  top.sources.push(source);
  for (let hold: Hold | undefined = top; hold !== undefined; hold = hold.previous) hold.body = undefined;
  if (top.piped) return;
  for (let hold: Hold | undefined = top; hold !== undefined; hold = hold.previous) hold.piped = true;
  watchCutOff(this);
}

// Set on a response once a close before its end is watched for (see `watchCutOff`).
const WATCHED = Symbol("@interlock/express.watched");

interface Watching {
  [WATCHED]?: true;
}

/**
 * The app has begun its answer (its header block, a first write, a stream piped in) and not
 * ended it: a close from now on cuts it off (see `cutOff`). Watched only from then: a response
 * the app ends in one call (`res.json`, `res.send`) never pays for the listener, and one closed
 * before the app began it is held, its lease renewed, for the answer the route still gives it.
 */
function watchCutOff(res: ServerResponse): void {
  if ((res as Watching)[WATCHED] === true || (res as Ending)[AFTER_END] !== undefined) return;
  (res as Watching)[WATCHED] = true;
  // Begun after the client left: closed already, it emits no more "close".
  if (res.destroyed) process.nextTick(() => cutOff.call(res));
  else res.once("close", cutOff);
}

// Closed before the app's end (the client left, or a host destroyed the socket: Express's final
// handler does after a throw once headers went out). A response written with `res.write`
// (server-sent events, streamed tokens) stays held: the route may have done its work (a payment)
// and still end its answer, which is then recorded as usual, so the client's retry is a replay,
// not a second run beside it. But a route that stops at the close never ends it, so each hold
// still open stops renewing its lease (`stopRenewal`): the key or delivery lapses within
// `lockTtlMs` unless that end comes first, rather than be held until `extendLease.maxMs`. A pipe
// stops when its response closes, and nothing ends the response any more; the stream's producer
// (the route) may still be running, so each hold still open is settled (as cut off) only once
// every stream piped in is over: ended, failed or destroyed. Unpiped and unread, a stream would
// stay paused and never end: one nothing else reads is read on, to nowhere (on the next tick: the
// pipe lets go of it after this close).
function cutOff(this: ServerResponse): void {
  const top = holdOf(this);
  const settleOpen = () => {
    for (let hold: Hold | undefined = top; hold !== undefined; hold = hold.previous) {
      if (hold.ended) continue;
      hold.unwrap();
      hold.settle(undefined, hold.appHeaders ?? responseHeaders(this), false, true).catch(() => {});
    }
  };
  const sources: NodeJS.ReadableStream[] = [];
  for (let hold: Hold | undefined = top; hold !== undefined; hold = hold.previous)
    sources.push(...(hold.sources ?? []));
  let open = sources.length;
  if (open === 0) {
    for (let hold: Hold | undefined = top; hold !== undefined; hold = hold.previous) {
      if (!hold.ended) hold.stopRenewal();
    }
    return;
  }
  for (const source of sources) {
    finished(source, { writable: false }, () => {
      if (--open === 0) settleOpen();
    });
    process.nextTick(drain, source);
  }
}

function drain(source: NodeJS.ReadableStream): void {
  if (source.listenerCount("data") === 0 && typeof source.resume === "function") source.resume();
}

/**
 * Wraps `res.write` and `res.end` (and `res.writeHead`, to read the headers the app set). With
 * `recordLimit`, the bytes written (by `write`s and the `end`, in order) are collected up to
 * that many: `settle` gets the whole body, or `undefined` when it passed the limit (then
 * `tooLarge` is true) or was piped in (`stream.pipe(res)`, `res.sendFile`), i.e. streamed, with
 * the headers the app set. The first `end` is held until `settle` is done, then goes out as it
 * was called. A response begun and closed by its client before its end calls `stopRenewal`, and
 * is settled by the end the app may still give it; a piped one is settled as cut off once its
 * streams are over (see `cutOff`). A response the app destroys before its end calls `fail`
 * instead (see `heldDestroy`).
 */
export function holdResponse(
  res: ServerResponse,
  settle: Settle,
  fail: Fail,
  stopRenewal: StopRenewal,
  recordLimit?: number,
): void {
  const hold = new Hold(res, settle, fail, stopRenewal, recordLimit);
  (res as Held)[HOLD] = hold;
  // The "pipe" listener is never removed: Node keeps no fixed shape for a response's `_events`,
  // so removing one deletes a property and turns that object into a slow dictionary for the rest
  // of the response (~1-3 µs a request here). Left in place, it only clears a collector no one
  // reads any more. One for all the holds on a response, as is the `destroy` wrapper: each
  // reaches every one of them.
  if (hold.previous === undefined) {
    res.on("pipe", onPipe);
    res.destroy = heldDestroy as ServerResponse["destroy"];
  }
  res.writeHead = heldWriteHead as ServerResponse["writeHead"];
  res.write = heldWrite as ServerResponse["write"];
  res.end = heldEnd as ServerResponse["end"];
}

/**
 * Fixes the header block now, as Node's `end` itself does (`_implicitHeader`, with the length
 * of the end's chunk), though nothing is sent until the held `end` goes out. The app then
 * sees its response as ended: a second `res.json` throws ERR_HTTP_HEADERS_SENT, as it would
 * without Interlock, instead of going out before the first and turning the held `end` into a
 * "write after end" error.
 */
function fixHeaders(res: ServerResponse, chunk: unknown, encoding: unknown): void {
  if (res.headersSent) return;
  let length = 0;
  if (typeof chunk === "string")
    length = Buffer.byteLength(chunk, typeof encoding === "string" ? (encoding as BufferEncoding) : "utf8");
  else if (chunk instanceof Uint8Array) length = chunk.byteLength;
  // Any other chunk makes Node's `end` throw: left to the held `end`, as without Interlock.
  else if (chunk !== undefined && chunk !== null && typeof chunk !== "function") return;
  (res as ServerResponse & { _contentLength?: number })._contentLength = length;
  res.writeHead(res.statusCode);
}

/** The bytes of a `write`/`end` chunk; undefined for anything Node would not write. */
function chunkBytes(chunk: unknown, encoding: unknown): Uint8Array | undefined {
  if (typeof chunk !== "string") return chunk instanceof Uint8Array ? chunk : undefined;
  return Buffer.from(chunk, typeof encoding === "string" ? (encoding as BufferEncoding) : "utf8");
}

/**
 * The response headers as they will be sent. `writeHead(status, headers)` without a prior
 * `setHeader` writes its headers straight into the header block, so read that when present.
 */
export function responseHeaders(res: ServerResponse): ResponseHeaders {
  const block = (res as ServerResponse & { _header?: unknown })._header;
  if (typeof block !== "string" || block === "") return res.getHeaders();
  const pairs: Array<[string, string]> = [];
  for (const line of block.split("\r\n").slice(1)) {
    const colon = line.indexOf(":");
    if (colon > 0) pairs.push([line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()]);
  }
  return pairs;
}
