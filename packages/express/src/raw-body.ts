/**
 * The raw request bytes, wherever they are: captured by a body parser's `verify` hook, left
 * as a Buffer by `express.raw()`, kept as `req.rawBody` by the host, or still unread in the
 * request stream.
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import { Readable } from "node:stream";
import { BodyError, readRequestBody } from "@interlock/core";
import { useDictionaryProperties } from "./dictionary-mode.js";

const RAW_BODY = Symbol.for("@interlock/express.rawBody");

/** What parsers, hosts and this module leave on a request. */
export interface RequestState {
  [RAW_BODY]?: Buffer;
  /** Set by body-parser 1.x (Express 4) once a parser has read the stream. */
  _body?: boolean;
  body?: unknown;
  /**
   * The bytes as read, kept by hosts that parse every body before the app's middleware runs:
   * NestJS (`NestFactory.create(AppModule, { rawBody: true })`), Google Cloud Functions and
   * Firebase's `onRequest` (functions-framework).
   */
  rawBody?: unknown;
}

/**
 * A body parser `verify` hook that keeps the exact bytes the parser read, so Interlock can
 * verify and fingerprint them while the app still gets its parsed `req.body`:
 * `app.use(express.json({ verify: captureRawBody }))`.
 */
export function captureRawBody(req: IncomingMessage, res: ServerResponse, buf: Buffer): void {
  useDictionaryProperties(req, res);
  remember(req, buf);
}

function remember(req: IncomingMessage, body: Buffer): void {
  (req as IncomingMessage & RequestState)[RAW_BODY] = body;
}

/** The raw body already known for this request, or undefined. */
export function rawBodyOf(req: IncomingMessage): Buffer | undefined {
  const state = req as IncomingMessage & RequestState;
  const captured = state[RAW_BODY];
  if (captured !== undefined) return captured;
  // express.raw() leaves the bytes as they were read; any other parser leaves something else.
  if (Buffer.isBuffer(state.body)) return state.body;
  // Only bytes: a `rawBody` string is decoded text (often re-serialised JSON), not what was signed.
  return state.rawBody instanceof Uint8Array ? asBuffer(state.rawBody) : undefined;
}

/** The end of every "the bytes are gone" advice: hosts that parse every body have their own switch. */
export const RAW_BODY_HOST_ADVICE = "; on NestJS, create the app with NestFactory.create(AppModule, { rawBody: true })";

/**
 * Whether something already read the request stream (so its bytes can no longer be read). Not a
 * request its client left before anything read it (destroyed, never ended): core's reader
 * refuses that one 400 `body_incomplete`.
 */
export function streamConsumed(req: IncomingMessage): boolean {
  return (req as IncomingMessage & RequestState)._body === true || req.readableEnded || req.readableDidRead;
}

/**
 * Reads the whole request stream, up to `limit` bytes, with core's reader, and remembers the
 * bytes on the request for later middleware. A body past the limit, declared by its
 * Content-Length or found while reading, is core's `body_too_large` at once; a client that went
 * away mid-body, even before the read began, 400 `body_incomplete`, refused and reported like
 * any bad body (nothing claimed, so its retry runs), as on Fastify, Koa, Hono and the web adapter.
 */
export async function readRawBody(req: IncomingMessage, limit: number): Promise<Buffer | BodyError> {
  const read = await readRequestBody(req, limit);
  if (read instanceof BodyError) return read;
  const bytes = asBuffer(read);
  remember(req, bytes);
  return bytes;
}

/**
 * Reads the whole request stream as `readRawBody` does, then hands it on: the request is readable
 * again, carrying the bytes read, for whatever comes after the middleware. A parser mounted after
 * it (`express.json()`) must find the body it would find without Interlock, and so must the
 * route's own reader (multer and busboy pipe the request, others listen for `data` or iterate
 * it), not an ended stream: Express 4's parsers fail it "stream is not readable" (a 500), Express
 * 5's leave `req.body` empty, and busboy fails it "Unexpected end of form". A body too large or
 * cut off is not handed on: it is answered, and nothing runs after.
 */
export async function readRawBodyHandedOn(req: IncomingMessage, limit: number): Promise<Buffer | BodyError> {
  const read = await readRawBody(req, limit);
  if (!(read instanceof BodyError)) handOn(req);
  return read;
}

/**
 * Node's `Readable` constructor, run again on the request, gives it a fresh reading state (its
 * listeners and every other property kept) whose `_read` pushes the bytes kept and their end when
 * a reader first asks: `pipe`, `data` events, `read()`, async iteration and `stream.pipeline` all
 * read them from the state they expect, as they would read a request, and it ends ("end", then
 * "close") once they have. Nothing is read from the socket again. Pushed only when asked: while
 * a route that reads nothing (the usual webhook route, reading `req.webhook`) runs, the request
 * costs only the new state; Node drains it once the answer is out, as it drains any unread body.
 * Run once the read's promise has settled, after the first state's
 * "end" and the auto-destroy and "close" that follow it in the same round of ticks: run from the
 * "end" listener itself, that auto-destroy would destroy the new state, unended, which Node takes
 * for an aborted request, closing the connection.
 */
function handOn(req: IncomingMessage): void {
  Reflect.apply(Readable, req, [{ highWaterMark: req.readableHighWaterMark, read: pushKeptBytes }]);
  // Unread again, as Node tells it (its own `_read` sets the flag): a request nobody reads is
  // drained once the answer is out (Node's `_dump`), so it ends and closes then, as an unread
  // body does without Interlock, rather than only with its connection.
  (req as HandedOn)._consuming = false;
}

/**
 * A handed-on request's `_read`: one function for every request, which reads its bytes through
 * `this`. Node 24 and later drain a complete request whose buffer is empty by reading 0 bytes
 * instead of resuming it (`_dump`): that read lands here, and the bytes it pushes are let flow
 * out, or the stream would never end.
 */
function pushKeptBytes(this: HandedOn): void {
  this._consuming = true;
  this.push(this[RAW_BODY]);
  this.push(null);
  if (this._dumped) this.resume();
}

/** Node's flags on a request: whether something reads its body, and whether it is being drained unread. */
interface HandedOn extends IncomingMessage, RequestState {
  _consuming: boolean;
  _dumped: boolean;
}

/** A Buffer over the same memory: what `req.body` and `rawBodyOf` give is always a Buffer. */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
