/**
 * Response capture for idempotency. Fastify hands every response it sends to `onSend` as one
 * serialized payload; a reply the handler hijacked (`reply.hijack()` then `reply.raw.write` /
 * `end`) bypasses onSend, so its writes to the raw response are recorded instead.
 */

import type { OutgoingHttpHeaders, ServerResponse } from "node:http";
import { finished } from "node:stream";
import { BodyCollector, type CapturedResponse, writeHeadHeaders } from "@interlock/core";
import type { FastifyReply, FastifyRequest } from "fastify";
import { onHandlerThrow } from "./handler-throw.js";

/**
 * The body of an `onSend` payload: a string as it is; bytes as a copy (a Buffer), which is
 * what goes out too: the answer leaves once the store has it, and the handler may have reused
 * or zeroed its own buffer meanwhile. `null`/`undefined` is an empty body; streams (Node, web),
 * web `Response`s (recorded by core's `recordResponse` as Fastify sends them) and anything unknown are `undefined`, which core
 * answers by passing the response through uncached and releasing the key.
 */
export function payloadBody(payload: unknown): CapturedResponse["body"] {
  if (payload === undefined || payload === null) return "";
  if (typeof payload === "string") return payload;
  if (payload instanceof Uint8Array) return Buffer.from(payload);
  return undefined;
}

/**
 * The headers a web `Response` goes out with: the reply's, then the `Response`'s over them, as
 * Fastify applies them (after every onSend hook).
 */
export function sentHeaders(reply: FastifyReply, response: Response): CapturedResponse["headers"] {
  // getHeaders() is a fresh copy: the reply's own are left as they are.
  const headers: Record<string, string | number | string[] | undefined> = reply.getHeaders();
  response.headers.forEach((value, name) => {
    headers[name] = value;
  });
  return headers;
}

/**
 * Settles a streamed `onSend` payload (a Node or web stream: nothing recorded) once it is over,
 * not before: until then the key or delivery stays claimed, so a retry meanwhile is refused
 * (409) rather than run beside the stream still produced. The response's `end` (which Fastify
 * calls once the stream has ended, or with the error answer for a stream that failed before
 * sending anything) is held until `settle(true)` is done, so a client that retries the moment it
 * has read the answer finds the request settled. A response closed first (the client left, or
 * the stream failed mid-way: Fastify then destroys both) is settled as it closes: `settle(false)`.
 */
export function settleAtEnd(raw: FastifyReply["raw"], settle: (ended: boolean) => Promise<unknown>): void {
  let settling: Promise<void> | undefined;
  const once = (ended: boolean) => {
    settling ??= settle(ended).then(
      () => {},
      () => {},
    );
    return settling;
  };
  const end = raw.end;
  raw.end = function (this: ServerResponse, ...args: unknown[]) {
    once(true).then(() => (end as (...a: unknown[]) => unknown).apply(this, args));
    return this;
  } as End;
  raw.once("close", () => void once(false));
}

/** How a hijacked reply ends when Fastify runs none of its hooks for it. */
export interface HijackedEnds {
  /**
   * The client left, and the reply is over: `answered` when the route itself ended it (what it
   * wrote is its whole answer), false when a stream piped into it stopped (ended, failed or
   * destroyed) after the response had closed, which no answer of the route's ever completed.
   */
  cutOff: (answered: boolean) => void;
  /**
   * The client left an answer the route began (its header block, a write) and has not ended:
   * the claim's lease is renewed no more (core's `cutOff`), nothing settled. The route's later
   * end is recorded as usual (`cutOff(true)`); one that never comes leaves the claim to lapse
   * within `lockTtlMs`, not held until `extendLease.maxMs`.
   */
  stopRenewal: () => void;
  /** The handler threw (or rejected) before it ended the reply, which it leaves open. */
  threw: () => void;
  /**
   * The route ended the reply itself (its `write`s and `end`, no stream piped in), the client
   * still there: settles it by what it wrote. The end goes out once that is done, as onSend
   * settles the replies Fastify sends before they go: a client that retries the moment it has
   * the whole answer finds it settled, not in flight.
   */
  settleEnded: () => Promise<unknown>;
}

/** A claimed key or delivery, kept on its request until settled, and how to read what a hijacked reply sent. */
export interface Pending<Ticket> {
  ticket: Ticket;
  hijacked: () => CapturedResponse;
}

type PendingSlots<Ticket> = Record<symbol, Pending<Ticket> | null | undefined>;

/** Keeps `pending` on the request under `slot` (a request decoration the plugin declares up front). */
export function keepPending<Ticket>(request: FastifyRequest, slot: symbol, pending: Pending<Ticket>): void {
  (request as unknown as PendingSlots<Ticket>)[slot] = pending;
}

/** How one hook set settles the claims it keeps: made once per set, shared by its requests. */
export interface Settling {
  /** The request decoration the claim is kept under. */
  readonly slot: symbol;
  /** The largest hijacked answer recorded (idempotency), or none recorded (webhooks: the status is enough). */
  readonly recordLimit: number | undefined;
  /** Settles the claim by what the reply sent. */
  readonly settle: (request: FastifyRequest) => Promise<unknown>;
  /** Releases the claim: the handler threw, or the response failed. */
  readonly release: (request: FastifyRequest) => Promise<unknown>;
  /** A hijacked reply the client left (see `HijackedEnds.cutOff`). */
  readonly cutOff: (request: FastifyRequest, answered: boolean) => void;
  /** A hijacked reply the client left mid-answer: its claim renewed no more (see `HijackedEnds.stopRenewal`). */
  readonly stopRenewal: (request: FastifyRequest) => void;
}

/**
 * Keeps the claim `ticket` on the request until it is settled: once the response has finished,
 * or, for a hijacked reply, as it ends, is cut off or its handler throws.
 */
export function holdUntilSettled<Ticket>(
  request: FastifyRequest,
  reply: FastifyReply,
  ticket: Ticket,
  settling: Settling,
): void {
  const { slot, settle, release, cutOff, stopRenewal } = settling;
  const ends: HijackedEnds = {
    cutOff: (answered) => cutOff(request, answered),
    stopRenewal: () => stopRenewal(request),
    threw: () => void release(request),
    settleEnded: () => settle(request),
  };
  keepPending(request, slot, { ticket, hijacked: recordOnHijack(reply, settling.recordLimit, ends) });
  settleWhenFinished(request, reply, slot, settle, release);
}

/**
 * Whether the request keeps an unsettled claim under `slot`. Asked first by the hooks and
 * listeners that most requests reach with nothing left to settle (a finished response after
 * `onSend` settled it), so they
 * answer at once instead of through an async function, a promise and a microtask: the hook
 * alone went from about 1,100 to 450 instructions a call (callgrind, 200,000 calls).
 */
export function hasPending(request: FastifyRequest, slot: symbol): boolean {
  return (request as unknown as PendingSlots<unknown>)[slot] != null;
}

/** What the request keeps under `slot`, if still unsettled, left in place. */
export function pendingOf<Ticket>(request: FastifyRequest, slot: symbol): Pending<Ticket> | undefined {
  return (request as unknown as PendingSlots<Ticket>)[slot] ?? undefined;
}

/** Takes what the request keeps under `slot`, if still unsettled: each is settled once. */
export function takePending<Ticket>(request: FastifyRequest, slot: symbol): Pending<Ticket> | undefined {
  const slots = request as unknown as PendingSlots<Ticket>;
  const pending = slots[slot] ?? undefined;
  if (pending) slots[slot] = null;
  return pending;
}

/**
 * Whether the client reset the HTTP/2 stream before the response was ended. Node's HTTP/2
 * compatibility API then reports the response as finished all the same (`finish` and
 * `writableFinished`), though nothing ended it: the route may
 * still be running, and what it answers settles the request, as after an HTTP/1.1 client left.
 */
export function resetBeforeEnd(raw: FastifyReply["raw"]): boolean {
  return (raw as { stream?: { aborted?: boolean } }).stream?.aborted === true;
}

// A claimed request's watch for its response's end, kept on the response under this key; the
// listener, and what replaces `destroy`, are the same functions for every response (see HIJACK
// below for why not closures). The response's own `destroy` is kept under DESTROY.
const FINISHED = Symbol("@interlock/fastify.finished");
const DESTROY = Symbol("@interlock/fastify.destroy");

interface FinishWatch {
  readonly request: FastifyRequest;
  readonly reply: FastifyReply;
  readonly slot: symbol;
  readonly settle: (request: FastifyRequest) => unknown;
  /** Releases the claim, as for a throw: the route destroyed its response before ending it. */
  readonly fail: (request: FastifyRequest) => unknown;
  /**
   * The watch of the other set on the route (`webhook()` and `idempotency()` both), or
   * undefined: each is settled, not only the last one made.
   */
  readonly previous: FinishWatch | undefined;
}

type FinishWatched = ServerResponse & { [FINISHED]?: FinishWatch | undefined; [DESTROY]?: Writer };

/**
 * Settles a claimed request that is still unsettled once its response has finished (or failed):
 * a hijacked reply, or one the route wrote on `reply.raw` itself, which never passes `onSend`.
 * What an `onResponse` hook would do, for the claimed requests alone: a route with one makes
 * Fastify set up its response listeners (a clock read, two listeners, the hook runner) for every
 * request, replays and refusals included, about 0.65 µs of a 12 µs replay in process. Not when
 * an HTTP/2 client reset the stream first: the route's own end, or throw, settles it then. A
 * response the route destroys before ending it calls `fail` instead (see `destroyWatched`).
 */
export function settleWhenFinished(
  request: FastifyRequest,
  reply: FastifyReply,
  slot: symbol,
  settle: (request: FastifyRequest) => unknown,
  fail: (request: FastifyRequest) => unknown,
): void {
  const raw = reply.raw as FinishWatched;
  const previous = raw[FINISHED];
  raw[FINISHED] = { request, reply, slot, settle, fail, previous };
  if (previous !== undefined) return; // its listeners and `destroy` reach this watch too
  raw.on("finish", onFinished).on("error", onFinished);
  raw[DESTROY] = raw.destroy as Writer;
  raw.destroy = destroyWatched as ServerResponse["destroy"];
}

function onFinished(this: FinishWatched): void {
  let watch = this[FINISHED];
  if (watch === undefined) return;
  this[FINISHED] = undefined;
  this.off("finish", onFinished).off("error", onFinished);
  if (resetBeforeEnd(this)) return;
  for (; watch !== undefined; watch = watch.previous) {
    if (hasPending(watch.request, watch.slot)) settleLogged(watch.request, watch.settle);
  }
}

/** Logged as Fastify logs an onResponse hook's error: the response is gone, nothing else to tell. */
function settleLogged(request: FastifyRequest, settle: (request: FastifyRequest) => unknown): void {
  Promise.resolve(settle(request)).catch((error: unknown) => request.log.error({ err: error }));
}

/**
 * The route destroys its response (`reply.raw.destroy()`, the usual way to signal a body that
 * failed mid-way) before ending it: a failed handler, as if it threw, so each claim still
 * pending is released now (`fail`). Left alone, the response would never finish, and the lease
 * renewed meanwhile would keep the key or delivery claimed, every retry a 409. Node never calls
 * `destroy` when the client leaves, so this is the route's own call (or Fastify's, for a handler
 * past its `handlerTimeout`). Not for a reply already sent: one Fastify sends was settled in
 * `onSend` (a stream Fastify destroys as it fails is settled by `settleAtEnd`), one that ended
 * as its response finishes, and a hijacked one by its own `destroy` (`recordHijackedWrites`).
 */
function destroyWatched(this: FinishWatched, ...args: unknown[]): unknown {
  for (let watch = this[FINISHED]; watch !== undefined; watch = watch.previous) {
    if (!watch.reply.sent && hasPending(watch.request, watch.slot)) settleLogged(watch.request, watch.fail);
  }
  return (this[DESTROY] as Writer).apply(this, args);
}

type Writer = (...args: unknown[]) => unknown;
type Write = ServerResponse["write"];
type End = ServerResponse["end"];
type WriteHead = ServerResponse["writeHead"];
type Destroy = ServerResponse["destroy"];

/**
 * Starts recording what the reply writes once the handler hijacks it (`reply.hijack()`), and
 * not before: most replies go through onSend, and wrapping the raw response of every request
 * would cost them all. Returns the recording, read once the response has finished; a reply
 * never hijacked, or recorded without a `limit`, has recorded no body (`body: undefined`:
 * uncached). `settleWhenFinished` settles only a response that finished, and Fastify's `onError`
 * runs not for a hijacked reply: `ends` says when a hijacked reply is over without them.
 */
export function recordOnHijack(
  reply: FastifyReply,
  limit: number | undefined,
  ends: HijackedEnds,
): () => CapturedResponse {
  const watched = reply as Watched;
  const previous = watched[HIJACK];
  // The other set on the route (`webhook()` and `idempotency()` both) watches already: this watch
  // is linked to that one, and `reply.hijack`, wrapped once, records for each.
  const hijack = previous === undefined ? reply.hijack : previous.hijack;
  const watch: HijackWatch = { hijack, limit, ends, recording: undefined, previous };
  watched[HIJACK] = watch;
  if (previous === undefined) reply.hijack = hijackRecorded;
  return () =>
    watch.recording?.() ?? { status: reply.raw.statusCode, headers: reply.raw.getHeaders(), body: undefined };
}

// A reply's watch for its hijack, kept on the reply under this key. What replaces `reply.hijack`
// is the same function for every reply, reading the watch through `this`: a new closure stored
// on every reply cost about 7 µs of CPU a request on Node 20 (V8 keeps a function field's value
// constant in the object's hidden class, and every reply brought another).
const HIJACK = Symbol("@interlock/fastify.hijack");

interface HijackWatch {
  /** The reply's own `hijack`, before any set wrapped it. */
  readonly hijack: FastifyReply["hijack"];
  readonly limit: number | undefined;
  readonly ends: HijackedEnds;
  recording: (() => CapturedResponse) | undefined;
  /**
   * The watch of the other set on the route (`webhook()` and `idempotency()` both), or
   * undefined: each records what the reply writes, and settles it, not only the last one made.
   */
  readonly previous: HijackWatch | undefined;
}

type Watched = FastifyReply & { [HIJACK]?: HijackWatch };

/**
 * Records for every watch on the reply, then hijacks it. Each recording wraps the response's
 * writers over the last one's, as stacked holds: the route's `end` is held by each in turn,
 * the outer one's passed on once its set has settled, so the end goes out once every set has.
 */
function hijackRecorded(this: FastifyReply): FastifyReply {
  const watch = (this as Watched)[HIJACK] as HijackWatch;
  for (let each: HijackWatch | undefined = watch; each !== undefined; each = each.previous) {
    each.recording ??= recordHijackedWrites(this, each.limit, each.ends);
  }
  return watch.hijack.call(this);
}

/**
 * Records what a hijacked reply writes with `write` and `end`, up to `limit` bytes (none
 * without a `limit`). Past it the response counts as too large (`tooLarge`), and when a stream
 * is piped into the raw response, as streamed (either way not cached, key released), over once
 * that stream is. Writes
 * made while the reply is not hijacked are Fastify's own and are skipped: onSend already saw
 * them. Returns the recording, read once the response has finished.
 */
function recordHijackedWrites(
  reply: FastifyReply,
  limit: number | undefined,
  { cutOff, stopRenewal, threw, settleEnded }: HijackedEnds,
): () => CapturedResponse {
  const raw = reply.raw;
  const { writeHead, write, end, destroy } = raw;
  let body = limit === undefined ? undefined : new BodyCollector(limit);
  // The headers a hijacked `writeHead(status, headers)` passed; undefined when it passed none.
  let headHeaders: OutgoingHttpHeaders | undefined;
  // Whether the hijacked reply was ended (by the route: `answered`, or by the end of the stream
  // piped into it), whether a stream is (or was) piped into it, and whether the client left before it finished.
  let over = false;
  let answered = false;
  const piped: NodeJS.ReadableStream[] = [];
  let left = false;
  // Once the client left, a stream the closed response let go of is read on to its end, where
  // the reply is over: unpiped and unread, it would stop (paused) and never end. Not one another
  // consumer still reads: that one drives it. On the next tick: the pipe lets go of the stream
  // (its `data` listener) only after the response's `unpipe` listeners have run.
  const drain = (source: NodeJS.ReadableStream) =>
    process.nextTick(() => {
      if (left && !over && source.listenerCount("data") === 0 && typeof source.resume === "function") source.resume();
    });
  const ended = (byRoute: boolean) => {
    over = true;
    answered ||= byRoute;
    if (left) cutOff(answered);
  };

  // `reply.sent` is true for a hijacked reply, and false while Fastify itself writes.
  const keep = (chunk: unknown, encoding: unknown) => {
    if (
      !reply.sent ||
      body === undefined ||
      body.overflowed ||
      chunk === undefined ||
      chunk === null ||
      typeof chunk === "function"
    )
      return;
    const bytes =
      typeof chunk === "string"
        ? Buffer.from(chunk, typeof encoding === "string" ? (encoding as BufferEncoding) : "utf8")
        : chunk instanceof Uint8Array
          ? chunk
          : undefined;
    if (bytes === undefined) body = undefined;
    // The writer's own buffer is copied (when kept): it may reuse it once written. Past the
    // limit nothing more is kept, and the collector says the body was too large.
    else body.add(bytes, bytes === chunk);
  };
  // A piped stream is streamed (not recorded), and the reply is over when the stream is: its end
  // ends the response, unless the client left first. Then the pipe stops, but the stream's
  // producer (the route) may still be running, so the reply is over only once the stream has
  // ended, failed or been destroyed: a retry meanwhile is refused, not run beside it.
  raw.on("pipe", (source: NodeJS.ReadableStream) => {
    if (!reply.sent) return;
    body = undefined;
    piped.push(source);
    finished(source, { writable: false }, () => ended(false));
  });
  raw.on("unpipe", (source: NodeJS.ReadableStream) => drain(source));
  // Closed without finishing: the client left. What the route ended is recorded as it was; a
  // route still writing, or a stream still piped in, is settled when it ends: the route may have
  // done its work (a payment) and still end its answer, which its client's retry then replays
  // rather than run the route again beside it. But a route that began its answer (its header
  // block, a write) and stops at the close (server-sent events) never ends it: its claim's lease
  // is renewed no more, so it lapses within `lockTtlMs` unless that end comes first, rather than
  // be held until `extendLease.maxMs`. One the route has not begun stays renewed for the answer
  // it still gives.
  raw.once("close", () => {
    if (raw.writableFinished && !resetBeforeEnd(raw)) return;
    left = true;
    if (over) cutOff(answered);
    // A stream unpiped already (the response refused its writes); one still piped is let go of next.
    else if (piped.length > 0) for (const source of piped) drain(source);
    else if (raw.headersSent) stopRenewal();
  });
  // An answer begun only once the client left stops the renewal as it begins: the closed response
  // emits no more "close".
  const begun = () => {
    if (left && !over && piped.length === 0) stopRenewal();
  };
  // A throw after the end, or once a stream is piped in, leaves the reply to be settled as it ends.
  onHandlerThrow(reply, () => {
    if (!over && piped.length === 0) threw();
  });
  // The route destroys the response before ending it (a body that failed mid-way): it failed, as
  // if it threw. Node never calls `destroy` when the client leaves (the route's later end is then
  // recorded), so this is the route's own call. After the end (held until settled, or once the
  // client left), or once a stream is piped in (`pipeline` destroys the response as its source
  // fails), it is passed on, and the reply settled as it ends, once. (`destroy` is the other
  // set's recording's, or `destroyWatched`, which leaves a hijacked reply to the recordings.)
  raw.destroy = function (this: ServerResponse, ...args: unknown[]) {
    if (!over && piped.length === 0) threw();
    return (destroy as Writer).apply(this, args);
  } as Destroy;
  // The status the hijacked reply sent: a handler that throws after its end gets a 500 set on the
  // response by Fastify (for its diagnostics channel), which no client ever saw.
  let sentStatus: number | undefined;
  raw.writeHead = function (this: ServerResponse, ...args: unknown[]) {
    const result = (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args);
    if (reply.sent) {
      headHeaders = writeHeadHeaders(args) as OutgoingHttpHeaders;
      sentStatus = raw.statusCode;
      begun();
    }
    return result;
  } as WriteHead;
  // The route's `write` and `end` calls made while its first `end` is held, passed on once that
  // end has gone out, as Node takes calls after an end. Passed on at once, a second `end()` would
  // end the response first, and the held end would then be a write after end: an 'error' event
  // on the response that nothing handles, and the process down.
  let afterEnd: Array<[Writer, unknown[]]> | undefined;
  raw.write = function (this: ServerResponse, ...args: unknown[]) {
    if (afterEnd !== undefined) {
      afterEnd.push([write as Writer, args]);
      return false; // what Node's write answers after an end
    }
    keep(args[0], args[1]);
    if (reply.sent) begun();
    return (write as (...a: unknown[]) => boolean).apply(this, args);
  } as Write;
  raw.end = function (this: ServerResponse, ...args: unknown[]) {
    if (afterEnd !== undefined) {
      afterEnd.push([end as Writer, args]);
      return this;
    }
    keep(args[0], args[1]);
    if (reply.sent && !over && !left && piped.length === 0 && !this.destroyed) {
      // Over from now: a close meanwhile (the client left) settles nothing more.
      over = true;
      answered = true;
      const held: Array<[Writer, unknown[]]> = [];
      afterEnd = held;
      const endNow = () => {
        afterEnd = undefined;
        (end as Writer).apply(this, args);
        for (const [method, later] of held) method.apply(this, later);
      };
      settleEnded().then(endNow, endNow);
      return this;
    }
    const result = (end as Writer).apply(this, args);
    if (reply.sent) ended(true);
    return result;
  } as End;

  // getHeaders() is a fresh copy already; spreading it again costs ~0.5 µs a request on Node 20.
  const headers = () => (headHeaders === undefined ? raw.getHeaders() : Object.assign(raw.getHeaders(), headHeaders));
  return () => ({
    status: sentStatus ?? raw.statusCode,
    headers: headers(),
    body: body?.body(),
    tooLarge: body?.overflowed === true,
  });
}
