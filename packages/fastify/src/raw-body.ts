/**
 * Raw body capture in `preParsing`, so the app's own content-type parsers (JSON, text, form,
 * custom) run exactly as they would without Interlock. A body of the size its Content-Length
 * announces, as sent over HTTP/1, is tapped: its chunks are kept as the app's parser reads them
 * from the request, one read for both. Any other (chunked, HTTP/2, past the limit, from an
 * earlier hook's stream, to decode) is read whole first, and Fastify gets a fresh stream of it.
 */

import { PassThrough, Readable } from "node:stream";
import { announcesBody, BodyCollector, BodyError, decodeContent, requestCutOff } from "@interlock/core";
import type { FastifyReply, FastifyRequest, RequestPayload } from "fastify";

type Done = (error?: Error | null, payload?: RequestPayload) => void;

/** Answers a request whose bytes cannot be kept. */
export type RawBodyRefusal = (error: BodyError, request: FastifyRequest, reply: FastifyReply) => void;

/**
 * Global, so every copy of the package (its ESM and CommonJS builds, both loaded) reads the bytes
 * any copy kept: the plugin's body fallback, and a second hook set on the route.
 */
export const kRawBody = Symbol.for("@interlock/fastify.rawBody");

/** Global, as `kRawBody` is: either copy of the package may wait for a body the other taps. */
const kTapping = Symbol.for("@interlock/fastify.tapping");

/** A body being tapped: the chunks so far, and what waits for the whole of it. */
interface Tapping {
  readonly [kTapping]: true;
  readonly chunks: Array<Buffer | string>;
  readonly waiting: Array<() => void>;
}

const isTapping = (kept: unknown): kept is Tapping => (kept as Partial<Tapping> | null)?.[kTapping] === true;

interface WithRawBody {
  [kRawBody]?: Buffer | BodyError | Tapping | null;
}

/**
 * The bytes the `preParsing` hook kept; core's `BodyError` when it could not keep them (too
 * large, already read, cut off); undefined when it did not run for this request. Read it in
 * `whenKept`: a tapped body is whole only once the payload has ended.
 */
export function rawBodyOf(request: FastifyRequest): Buffer | BodyError | undefined {
  const kept = (request as WithRawBody)[kRawBody];
  return isTapping(kept) ? undefined : (kept ?? undefined);
}

/**
 * Calls `then` once the request's body is kept: at once, unless it is being tapped and has not
 * ended yet. The app's parser has read it by the time the route's hooks run, so that wait is for
 * a parser that left the payload unread (the webhook body fallback, which takes the kept bytes,
 * or one that reads nothing).
 */
export function whenKept(request: FastifyRequest, then: () => void): void {
  const kept = (request as WithRawBody)[kRawBody];
  if (isTapping(kept)) kept.waiting.push(then);
  else then();
}

/**
 * A stream some earlier hook already read from holds no more bytes: verifying or fingerprinting
 * what is left would silently fail (a 401 for a valid delivery), so it is refused instead.
 */
function wasConsumed(payload: Readable): boolean {
  return payload.readableDidRead || payload.readableEnded || payload.destroyed;
}

/**
 * A request its client left before anything read its body, while an earlier hook ran (an async
 * `onRequest` hook: an authentication lookup, `@fastify/rate-limit`): over HTTP/1 it is destroyed,
 * over HTTP/2 ended as if complete (core's `requestCutOff`), either of which `wasConsumed` would
 * take for a hook that read it.
 */
function leftUnread(request: FastifyRequest): boolean {
  return !request.raw.readableDidRead && requestCutOff(request.raw);
}

type Read = { body: Buffer } | { tooLarge: Uint8Array[] } | { incomplete: true };

/**
 * Reads `payload` to its end; past `limit` bytes it stops and gives what it read so far. A
 * client that left mid-body cut it off (`incomplete`): Node's request then emits `error` (its
 * own "aborted", ECONNRESET, which names no status: Fastify would answer and log it as a 500)
 * before `close`, and on HTTP/2 (RST_STREAM) its compatibility API closes the request and only
 * then ends it as if the body were complete. Any other error (from the stream of an app's
 * `preParsing` hook before this one) is given the status Fastify's own parser gives it.
 */
function readAll(payload: Readable, limit: number, callback: (error: Error | null, read?: Read) => void): void {
  const body = new BodyCollector(limit);
  const settle = (error: Error | null, read?: Read) => {
    payload.removeListener("data", onData);
    payload.removeListener("end", onEnd);
    payload.removeListener("error", onError);
    payload.removeListener("close", onClose);
    callback(error, read);
  };
  function onData(chunk: Buffer | string) {
    const bytes = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    if (!body.add(bytes)) settle(null, { tooLarge: [...body.chunks, bytes] });
  }
  const onEnd = () => settle(null, { body: asBuffer(body.body() as Uint8Array) });
  const onError = (error: Error) => (leftMidBody(error) ? settle(null, INCOMPLETE) : settle(asParseError(error)));
  const onClose = () => settle(null, INCOMPLETE);
  payload.on("data", onData);
  payload.on("end", onEnd);
  payload.on("error", onError);
  payload.on("close", onClose);
  // A stream an earlier hook paused flows only when resumed, not for a 'data' listener: as Fastify's
  // own parser reads it. (@fastify/compress hands on its request decompressor paused.)
  payload.resume();
}

const INCOMPLETE = { incomplete: true } as const;

/** Node's error for a request its client left mid-body, as the request emits it or a stream piped from it passes it on. */
function leftMidBody(error: Error): boolean {
  return (error as { code?: unknown }).code === "ECONNRESET";
}

/** `error` with the status Fastify's own parser gives an error of the body's stream: its own from 400 up, else 400. */
function asParseError(error: Error): Error {
  const withStatus = error as Error & { statusCode?: unknown };
  if (!(typeof withStatus.statusCode === "number" && withStatus.statusCode >= 400)) withStatus.statusCode = 400;
  return error;
}

export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A readable stream of `body`, as Fastify's body parsers expect from a `preParsing` hook. */
function streamOf(body: Buffer): Readable {
  const stream = new Readable({ read() {} });
  if (body.length > 0) stream.push(body);
  stream.push(null);
  return stream;
}

/** The payload as it was sent: the chunks already read from it, then the rest. */
function rejoined(read: Uint8Array[], payload: Readable): Readable {
  const stream = new PassThrough();
  for (const chunk of read) stream.write(chunk);
  payload.pipe(stream);
  return stream;
}

export interface CaptureOptions {
  /** The largest body kept for a request. */
  limitOf: (request: FastifyRequest) => number;
  /** The `body_not_raw` detail for a payload another hook already read. */
  consumed: string;
  /** Answers at once a request whose bytes cannot be kept, through core's receiver or engine. */
  refuse: RawBodyRefusal;
  /**
   * Reports, without answering, a tapped body cut off while the app's parser read it: the
   * parser answers the error itself.
   */
  report: (error: BodyError, request: FastifyRequest) => void;
  /**
   * A body past the limit: refused at once (webhooks, which always need the bytes: before the
   * app's parsers run, without buffering the rest), or kept as the `BodyError` for the engine,
   * which asks for the body only when the fingerprint needs it (idempotency; the payload goes
   * on to Fastify's parsers as sent, bounded by the route's own `bodyLimit`).
   */
  tooLarge: "refuse" | "defer";
  /**
   * Whether this request's bytes may be needed at all (default: always). When not, the hook
   * keeps nothing and leaves the payload to Fastify's parsers as it is (one already consumed is
   * still refused: they could not read it either).
   */
  wanted?: (request: FastifyRequest) => boolean;
  /**
   * Decode a body sent with a `Content-Encoding` (idempotency): the payload is kept and handed to
   * Fastify's parsers, a body that cannot be decoded refused at once (see `keepDecoded`).
   */
  decode?: boolean;
}

/**
 * The `preParsing` hook. When the bytes cannot be kept, core's `BodyError` is kept instead. A
 * payload another hook already read is refused at once whenever the request has a body:
 * Fastify's own parser could not read it either; one its client left before anything read it
 * is refused as `body_incomplete`, as a body cut off while read is. A body already kept by
 * another Interlock hook set on the route is left as it is.
 */
export function captureRawBody(options: CaptureOptions) {
  return function interlockRawBody(request: FastifyRequest, reply: FastifyReply, payload: RequestPayload, done: Done) {
    if (((request as WithRawBody)[kRawBody] ?? undefined) !== undefined) return done(null, payload);
    const fail = (error: BodyError, rest: () => RequestPayload) => {
      (request as WithRawBody)[kRawBody] = error;
      if (error.code === "body_too_large" && options.tooLarge === "defer") return done(null, rest());
      // The sender may still be sending: close the connection after the answer, as Fastify
      // does after its own parse errors, rather than read an unbounded body to keep it alive.
      // HTTP/2 has no Connection header (Node drops it with a warning): the stream ends with the answer.
      if (error.code === "body_too_large" && request.raw.httpVersionMajor < 2) reply.header("connection", "close");
      options.refuse(error, request, reply);
    };
    // A client's doing, not the server's: a 400 `body_incomplete`, reported like any other
    // refusal; nothing was claimed, so its retry runs. The answer goes to nobody, so Fastify logs
    // no "request completed": logged here at info level, as Fastify logs a client's abort while
    // its own parser reads the body.
    const failIncomplete = (error = BodyError.incomplete()) => {
      fail(error, () => payload);
      request.log.info({ res: reply, err: error }, error.message);
    };
    const left = leftUnread(request);
    if (left || wasConsumed(payload)) {
      // No body announced, none lost (a hook that read an empty stream, a client that left after the headers).
      if (!announcesBody(request.raw)) return keep(request, EMPTY, done);
      if (left) return failIncomplete();
      return fail(new BodyError("body_not_raw", options.consumed), () => payload);
    }
    if (options.wanted?.(request) === false) return done(null, payload);
    const limit = options.limitOf(request);
    // Not read at all when the sender announces the size.
    const announced = Number(request.headers["content-length"]);
    if (announced > limit) return fail(BodyError.tooLarge(limit), () => payload);
    if (tappable(request, payload, options.decode === true)) {
      if (announced === 0) {
        (request as WithRawBody)[kRawBody] = EMPTY;
        return done(null, payload);
      }
      return tap(request, payload, failIncomplete, options.report, done);
    }
    readAll(payload, limit, (error, read) => {
      if (error || read === undefined) return done(error);
      if ("incomplete" in read) return failIncomplete();
      if ("tooLarge" in read)
        return fail(BodyError.tooLarge(limit), () => rejoined(read.tooLarge, payload) as RequestPayload);
      const sentLength = decodedBefore(payload);
      if (options.decode && sentLength === undefined && request.headers["content-encoding"] !== undefined) {
        const refuse = (error: BodyError) => {
          (request as WithRawBody)[kRawBody] = error;
          options.refuse(error, request, reply);
        };
        return keepDecoded(request, read.body, limit, refuse, done);
      }
      keep(request, read.body, done, sentLength);
    });
  };
}

const EMPTY = Buffer.alloc(0);

/**
 * The bytes of tapped chunks. A parser that set an encoding on the request stream made its
 * chunks text for every listener: encoded back, they are the bytes sent, except where UTF-8
 * decoding replaced an invalid sequence with U+FFFD (the sent U+FFFD and the replacement read
 * the same), so text holding U+FFFD is refused rather than verified or fingerprinted as a guess.
 */
function joinTapped(chunks: Array<Buffer | string>, encoding: BufferEncoding | null): Buffer | BodyError {
  // Node names the decoder's encoding in its normal form: "utf8", never "UTF-8".
  const textEncoding = encoding ?? "utf8";
  const bytes: Buffer[] = [];
  for (const chunk of chunks) {
    if (typeof chunk !== "string") bytes.push(chunk);
    else if (textEncoding === "utf8" && chunk.includes("\uFFFD")) return new BodyError("body_not_raw", DECODED);
    else bytes.push(Buffer.from(chunk, textEncoding));
  }
  return Buffer.concat(bytes);
}

const DECODED =
  "the app's body parser set an encoding on the request stream and the text holds U+FFFD, which UTF-8 " +
  "decoding also puts in place of invalid bytes, so the bytes sent are unknown: read the payload as bytes in " +
  "the parser (`parseAs: 'buffer'` or `'string'`, or no `setEncoding`)";

/**
 * Whether the body can be kept as the app's parser reads it: the request's own stream (no
 * earlier hook put another in its place), over HTTP/1, with a Content-Length (already checked
 * against the limit) and no Transfer-Encoding, so it holds exactly the bytes announced and ends
 * or fails, never runs past the limit; and nothing to decode.
 */
function tappable(request: FastifyRequest, payload: RequestPayload, decode: boolean): boolean {
  const { headers } = request;
  return (
    payload === request.raw &&
    request.raw.httpVersionMajor < 2 &&
    headers["content-length"] !== undefined &&
    headers["transfer-encoding"] === undefined &&
    !(decode && headers["content-encoding"] !== undefined)
  );
}

/**
 * Keeps the payload's chunks as they pass to the app's parser, which reads the same stream:
 * Fastify gets it unchanged, not a second stream of bytes read ahead. (Our listeners come first,
 * so the bytes are kept before the parser's `end` moves the request on.) Cut off before its
 * end, the body is `body_incomplete`: only reported when the app's parser was reading it (it
 * answers the error itself, before any route hook); refused (`fail`) when a hook was waiting for
 * it (`whenKept`), which then never resumes.
 */
function tap(
  request: FastifyRequest,
  payload: Readable,
  fail: (error: BodyError) => void,
  report: (error: BodyError, request: FastifyRequest) => void,
  done: Done,
): void {
  const tapping: Tapping = { [kTapping]: true, chunks: [], waiting: [] };
  const kept = request as WithRawBody;
  kept[kRawBody] = tapping;
  // Left in place once settled: a request emits nothing more after its end but `close`.
  payload.on("data", (chunk: Buffer | string) => tapping.chunks.push(chunk));
  payload.on("end", () => {
    const { chunks } = tapping;
    const only = chunks.length === 1 ? chunks[0] : undefined;
    kept[kRawBody] = Buffer.isBuffer(only) ? only : joinTapped(chunks, payload.readableEncoding);
    for (const then of tapping.waiting) then();
  });
  // Settled first: every request closes after its end, and an error made for nothing costs its stack trace.
  const cut = () => {
    if (kept[kRawBody] !== tapping) return;
    const error = BodyError.incomplete();
    kept[kRawBody] = error;
    if (tapping.waiting.length > 0) fail(error);
    else report(error, request);
  };
  payload.on("error", cut);
  payload.on("close", cut);
  done(null, payload);
}

/**
 * Keeps the bytes and hands Fastify a fresh stream of them; for a decoded payload, one that says
 * how many bytes came encoded (`sentLength`), which Fastify checks against the Content-Length.
 */
function keep(request: FastifyRequest, body: Buffer, done: Done, sentLength?: number): void {
  (request as WithRawBody)[kRawBody] = body;
  const stream = streamOf(body);
  done(
    null,
    (sentLength === undefined
      ? stream
      : Object.assign(stream, { receivedEncodedLength: sentLength })) as RequestPayload,
  );
}

/**
 * How many bytes came encoded, when an earlier `preParsing` hook (`@fastify/compress`'s request
 * decompression) put a stream of the decoded body in the request's place: such a stream says so
 * (`receivedEncodedLength`), as Fastify asks of one that transforms the payload, and the stream
 * handed on must say it too, for Fastify's Content-Length check. Undefined for the body as sent.
 */
function decodedBefore(payload: Readable): number | undefined {
  return (payload as Readable & { receivedEncodedLength?: number }).receivedEncodedLength;
}

/**
 * Keeps the payload of a body sent with a `Content-Encoding`, decoded (core's `decodeContent`),
 * and hands Fastify's parsers a stream of it, which says how many bytes came encoded for
 * Fastify's Content-Length check: the fingerprint and the route get the same payload, as on
 * every adapter. A coding not decoded (415), data that does not decode (400), or a body that
 * decodes past the limit (413) is refused at once, before any parser: none could parse it.
 */
function keepDecoded(
  request: FastifyRequest,
  sent: Buffer,
  limit: number,
  refuse: (error: BodyError) => void,
  done: Done,
): void {
  decodeContent(sent, request.headers["content-encoding"], limit).then((payload) => {
    if (payload instanceof BodyError) refuse(payload);
    else keep(request, asBuffer(payload), done, sent.byteLength);
  }, done);
}
