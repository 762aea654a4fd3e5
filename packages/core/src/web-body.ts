/**
 * Request and response bodies on web standards (`Request`, `Response`, `ReadableStream`), for
 * the adapters that run on every runtime (@interlock/hono, @interlock/web): a request body read
 * without ever buffering past a limit, and a response body recorded as it goes out.
 */
import { copyBytes } from "./encoding.js";
import { BodyError } from "./errors.js";
import { BodyCollector } from "./http.js";
import type { CapturedResponse } from "./idempotency/response.js";

/**
 * Content-Length, when it frames the body (not with Transfer-Encoding, as Hono's `bodyLimit` reads it).
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function declaredLength(headers: Headers): number | undefined {
  const value = headers.get("content-length");
  if (value === null || headers.has("transfer-encoding")) return undefined;
  const length = Number(value);
  return Number.isSafeInteger(length) && length >= 0 ? length : undefined;
}

/**
 * `/payments?x=1` from `http://host/payments?x=1#top`, without parsing the whole URL. A URL
 * without a path (`http://host?x=1`, as a client may send a request target) has the empty path,
 * which is "/" (RFC 9110 §4.2.3): `/?x=1`, its query kept, never a `/` found inside the query.
 * A fragment is no part of a request target (RFC 9112 §3.2): a retry of `/payments` sent as
 * `/payments#retry` names the same resource, so it is left out (see `withoutFragment`).
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function pathAndQuery(url: string): string {
  const target = withoutFragment(url);
  for (let at = target.indexOf("://") + 3; at < target.length; at++) {
    const char = target.charCodeAt(at);
    if (char === 0x2f /* / */) return target.slice(at);
    if (char === 0x3f /* ? */) return `/${target.slice(at)}`;
  }
  return "/";
}

/**
 * A URL or an origin-form target (`/payments#retry`, as Node's parser passes what a client sent)
 * without its fragment, which is no part of a request target (RFC 9112 §3.2).
 */
export function withoutFragment(target: string): string {
  const fragment = target.indexOf("#");
  return fragment === -1 ? target : target.slice(0, fragment);
}

/**
 * A request body's bytes, read from its stream chunk by chunk up to `limit`, never buffering
 * more: past the limit, `BodyError` `body_too_large` (the rest is cancelled, unread); a stream
 * that fails before its end (the client went away mid-upload), `body_incomplete`. The bytes are
 * the caller's own, never a chunk another reader of a tee of the same stream also holds.
 */
export async function readStreamUpTo(
  stream: ReadableStream<Uint8Array>,
  limit: number,
): Promise<Uint8Array<ArrayBuffer> | BodyError> {
  const reader = stream.getReader();
  const body = new BodyCollector(limit);
  try {
    for (let read = await reader.read(); !read.done; read = await reader.read()) {
      if (!body.add(read.value)) {
        reader.cancel().catch(() => {});
        return BodyError.tooLarge(limit);
      }
    }
  } catch (error) {
    return BodyError.incomplete(error); // a 400 to nobody, not an error thrown on to the host
  }
  // A lone chunk is copied: a tee's branches share chunk objects (@interlock/web reads a clone),
  // so the other branch's reader could change bytes already verified or fingerprinted.
  const bytes = body.body() as Uint8Array<ArrayBuffer>;
  return body.chunks.length === 1 ? copyBytes(bytes) : bytes;
}

/** A response body recorded as it is read: the stream to send, and a way to record it unread. */
export interface Recording {
  /** The body to send in the original's place: the same bytes, its end held until `settle` is done. */
  readonly stream: ReadableStream<Uint8Array>;
  /**
   * Reads the body on into `stream`'s queue, with or without a reader: until it ends (`settle`
   * gets its bytes) or passes the limit (`settle` gets `undefined`, `tooLarge`, then, not at the
   * end). A reader that comes later still gets every byte, in order. Never rejects.
   */
  readAhead(): void;
  /**
   * Reads on while the body has chunks ready (each read settles before the next macrotask), and
   * resolves to the whole body when it ended meanwhile within the limit, settled by then: what a
   * host can send whole, framed by its length. Undefined for a body still being produced, or
   * past the limit: then `stream` is sent, and `readAhead` reads on. Never rejects.
   */
  readReady(): Promise<Uint8Array | undefined>;
}

/**
 * `stream` as it is read, its bytes kept up to `limit`. When it ends, `settle` gets them
 * (`undefined` past the limit, with `tooLarge` true: a capture's `body` and `tooLarge`), and the
 * end is passed on only once `settle` is done: a client that retries the moment it has the
 * whole answer finds it stored. When the reader cancels (the client went away), what the stream
 * has ready is still read: a body that then ends is settled as if read, one that does not yet
 * gets `undefined`, as does a stream that fails (`tooLarge` false: cut off, not too large,
 * unless it had passed the limit already). `settle` is called once.
 */
export function recordBody(
  stream: ReadableStream<Uint8Array>,
  limit: number,
  settle: (body: Uint8Array | undefined, tooLarge: boolean) => Promise<void>,
): Recording {
  let kept: BodyCollector | undefined = new BodyCollector(limit);
  /** Whether the body passed `limit`: nothing more was kept from then on. */
  let tooLarge = false;
  /** The body, once it ended within the limit. */
  let whole: Uint8Array | undefined;
  /**
   * Keeps a copy of `chunk` while within the limit, and returns what to send in its place: that
   * copy. A stream may enqueue a buffer, then change and enqueue it again; read ahead of the
   * client, the original would reach it changed, and the record would hold the last state twice.
   * Kept even once the reader cancelled: what is read on then is the rest of the answer settled,
   * and a record of only the chunks sent would be replayed as a whole answer, cut short.
   */
  const keep = (chunk: Uint8Array): Uint8Array => {
    if (kept === undefined || chunk.byteLength === 0) return chunk;
    if (!kept.add(chunk, true)) {
      kept = undefined;
      tooLarge = true;
      return chunk;
    }
    return kept.chunks[kept.chunks.length - 1] as Uint8Array;
  };
  const followed = followBody(stream, {
    pass: keep,
    settle: (ended) => {
      whole = ended ? kept?.body() : undefined;
      kept = undefined;
      return settle(whole, tooLarge);
    },
    // An answer the route had finished when the client went away is still its answer: a retry
    // must find it stored, not run the route again. What is ready is read on; a body still
    // being produced (a stream the route writes as it goes) is not waited for.
    beforeCancel: (body) => readWhileReady(body, () => kept !== undefined),
    highWaterMark: 1,
  });
  const readAhead = async () => {
    while (!followed.over && kept !== undefined) await followed.readInTurn();
    // Past the limit nothing more is kept: the key is released now, whether the rest is ever read.
    await followed.settle(false);
  };
  const readReady = async () => {
    // A read still pending when the loop stops is left to the stream's reader, never waited for;
    // one that ended the body is only settling it (the store's write), which the answer awaits.
    await readWhileReady(followed, () => kept !== undefined);
    if (!followed.ended || whole === undefined) return undefined;
    await followed.readInTurn();
    return whole;
  };
  // Nobody awaits this: when `settle` fails, a reader that comes later gets the failure from its read.
  return { stream: followed.stream, readAhead: () => void readAhead().catch(() => {}), readReady };
}

/**
 * A body passed on through `settleAtEnd`.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export interface SettledBody {
  /** The body to send in the original's place: the same chunks, its end held until `settle` is done. */
  readonly stream: ReadableStream<Uint8Array>;
  /**
   * Reads the body on into `stream`'s queue, with or without a reader, until it is over: for a
   * body nobody may read (a middleware replaced the answer), so that the route's stream can end
   * and the claim be settled. A reader that comes later still gets every chunk. Past `limit`
   * bytes read ahead (a stream that may never end), it stops, and `settle` gets `false` then,
   * the rest left to whoever reads it. Never rejects.
   */
  readAhead(limit: number): void;
  /**
   * Reads on while the body has chunks ready (each read settling before the next macrotask), and
   * resolves to its bytes when it ended meanwhile, settled by then (`true`): what can be sent
   * whole, framed by its length. Undefined for a body still being produced (then `stream` is
   * sent, and holds what was read), one past `limit` bytes (a stream that is always ready, that
   * may never end), or one that failed. Call it before `stream` has a reader.
   */
  readReady(limit: number): Promise<Uint8Array | undefined>;
}

/**
 * `body`, passed on chunk by chunk as it is read, and `settle` called once it is over: `true`
 * when it ended, `false` when it failed or its reader cancelled it (the client went away; the
 * cancel is passed on). Its end, or its failure, reaches the reader only once `settle` is done:
 * a client that retries the moment it has the whole answer finds the claim settled, not in
 * flight. `settle` is called once; when it rejects, the reader gets that failure. For what
 * is not recorded (a streamed idempotent answer, a webhook's acknowledgement): `recordBody`
 * keeps the bytes too.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function settleAtEnd(
  body: ReadableStream<Uint8Array>,
  settle: (ended: boolean) => Promise<unknown>,
): SettledBody {
  let bytesRead = 0;
  /** The chunks `readReady` read, while it reads. */
  let ready: BodyCollector | undefined;
  const followed = followBody(body, {
    pass: (chunk) => {
      bytesRead += chunk.byteLength;
      ready?.add(chunk);
      return chunk;
    },
    settle,
    highWaterMark: 0, // read only when asked: the route writes at the client's pace, as without us
  });
  const readAhead = async (limit: number) => {
    // Counted from now, whether a reader takes some meanwhile or not.
    const from = bytesRead;
    while (!followed.over && bytesRead - from <= limit) await followed.readInTurn();
    await followed.settle(false);
  };
  const readReady = async (limit: number) => {
    ready = new BodyCollector(limit);
    const kept = ready;
    await readWhileReady(followed, () => !kept.overflowed);
    ready = undefined;
    if (!followed.ended) return undefined;
    await followed.readInTurn(); // the settling of the end, which the answer awaits
    return kept.body();
  };
  return { stream: followed.stream, readAhead: (limit) => void readAhead(limit).catch(() => {}), readReady };
}

const UNSENDABLE = "the handler's Response cannot be sent: its body was already read or is locked to a reader";

/**
 * What to send for an answer settled by its body's end (`settleResponseAtEnd`).
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export interface SettledResponse {
  /** The answer to send: the handler's own when it was settled at once. */
  response: Response;
  /** For a body still being produced: its stream as sent, and how to read it on when nobody does. */
  pending: { stream: ReadableStream<Uint8Array>; readAhead(): void } | undefined;
}

/**
 * Settles a claim (a webhook delivery) by the web `Response` that answers it, once its body is
 * over: the body is the handler's work too (it may be a stream still being written), so `settle`
 * gets `true` once it ended, `false` if it failed or its reader stopped (released, never recorded
 * as processed). A body ready at once (a string, JSON) is settled now and sent whole, framed by
 * its length, up to `limit` bytes. A response with no body, or one whose body goes nowhere
 * (`bodyless`: a host drops a HEAD answer's body unread), is settled at once, as it ended, and
 * sent as it is. One whose body was already read or is locked to a reader cannot be sent: it is
 * settled as failed (released, never recorded as processed), and a `TypeError` says why, as
 * `recordResponse` does for a key.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export async function settleResponseAtEnd(
  response: Response,
  settle: (ended: boolean) => Promise<unknown>,
  limit: number,
  bodyless = false,
): Promise<SettledResponse> {
  const { status, statusText, headers, body } = response;
  if (body === null || bodyless) {
    await settle(true);
    return { response, pending: undefined };
  }
  if (response.bodyUsed || body.locked) {
    await settle(false);
    throw new TypeError(UNSENDABLE);
  }
  const passed = settleAtEnd(body, settle);
  const init = { status, statusText, headers };
  const whole = await passed.readReady(limit);
  // Without a Content-Type, bytes would go out labelled application/octet-stream on Bun: the
  // stream goes, holding them (settled all the same).
  if (whole !== undefined && headers.has("content-type"))
    return { response: new Response(whole as Uint8Array<ArrayBuffer>, init), pending: undefined };
  const pending = whole === undefined ? { stream: passed.stream, readAhead: () => passed.readAhead(limit) } : undefined;
  return { response: new Response(passed.stream, init), pending };
}

/** A body read into a stream of its own, its end held until it is settled: what `recordBody` and `settleAtEnd` share. */
interface FollowedBody {
  /** The body to send in the original's place. */
  readonly stream: ReadableStream<Uint8Array>;
  /** True once there is no more to read: the body ended, failed, or its reader cancelled. */
  readonly over: boolean;
  /** True once the body's end was read. */
  readonly ended: boolean;
  /** Reads one more chunk, or the end, in turn with the stream's own reads; resolves once it is passed on. */
  readInTurn(): Promise<void>;
  /** Settles now (`ended` false: the body is not over), unless it was already: `settle` is called once in all. */
  settle(ended: boolean): Promise<unknown>;
}

interface FollowOptions {
  /** Each chunk read, even once the reader cancelled; returns what to pass on in its place. */
  pass: (chunk: Uint8Array) => Uint8Array;
  /** `true` when the body's end was read, `false` when it failed or its reader cancelled. */
  settle: (ended: boolean) => Promise<unknown>;
  /** What to read on when the reader cancels, before that settles the body unless it ended meanwhile. */
  beforeCancel?: (followed: FollowedBody) => Promise<void>;
  /** Chunks read before the reader asks: 0 reads only when asked. */
  highWaterMark: number;
}

/** A Uint8Array (a Buffer too) of any realm: what a body stream may give. */
function isUint8Array(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array || Object.prototype.toString.call(value) === "[object Uint8Array]";
}

/**
 * `body` passed on chunk by chunk as it is read, and settled once: its end, or its failure,
 * reaches the reader only once `settle` is done. A reader that cancels settles it as not ended
 * (after `beforeCancel`), and the cancel is passed on.
 */
function followBody(body: ReadableStream<Uint8Array>, options: FollowOptions): FollowedBody {
  const reader = body.getReader();
  let settling: Promise<unknown> | undefined;
  let over = false;
  let ended = false;
  let cancelled = false;
  let controller: ReadableStreamDefaultController<Uint8Array>;
  const settle = (bodyEnded: boolean) => {
    settling ??= options.settle(bodyEnded);
    return settling;
  };
  const readOne = async () => {
    if (over) return;
    let next: ReadableStreamReadResult<Uint8Array>;
    try {
      next = await reader.read();
    } catch (error) {
      over = true;
      await settle(false);
      if (!cancelled) controller.error(error);
      return;
    }
    if (next.done) {
      over = true;
      ended = true;
      await settle(true);
      if (!cancelled) controller.close();
      return;
    }
    if (!isUint8Array(next.value)) {
      // As the platform fails such a body (Node: "Received non-Uint8Array chunk"): copied, a
      // Uint16Array's values would be cut to bytes and a DataView lost, an answer sent and
      // stored that the route never wrote.
      over = true;
      const error = new TypeError("a response body stream must give Uint8Array chunks");
      reader.cancel(error).catch(() => {});
      await settle(false);
      if (!cancelled) controller.error(error);
      return;
    }
    const chunk = options.pass(next.value);
    if (!cancelled) controller.enqueue(chunk);
  };
  // The stream asks for one chunk at a time, and a read-ahead may ask meanwhile: they take turns.
  let reading = Promise.resolve();
  const readInTurn = () => {
    reading = reading.then(readOne);
    return reading;
  };
  const followed: FollowedBody = {
    stream: new ReadableStream<Uint8Array>(
      {
        start(streamController) {
          controller = streamController;
        },
        pull: readInTurn,
        async cancel(reason) {
          cancelled = true;
          await options.beforeCancel?.(followed);
          if (over) return;
          over = true;
          await settle(false);
          await reader.cancel(reason);
        },
      },
      { highWaterMark: options.highWaterMark },
    ),
    get over() {
      return over;
    },
    get ended() {
      return ended;
    },
    readInTurn,
    settle,
  };
  return followed;
}

/** Reads `body` on while it has chunks ready (each read settling before the next macrotask) and `more()` holds. */
async function readWhileReady(body: FollowedBody, more: () => boolean): Promise<void> {
  while (!body.over && more() && (await settlesNow(body.readInTurn()))) {}
}

/**
 * The byte length of a body that is never sent (a HEAD answer's), read while it has chunks ready
 * (each read settling before the next macrotask, as `readReady` reads): the length when it
 * ended within `limit`; `"too_large"` past it; `"streaming"` for a body still being produced,
 * which may never end (server-sent events) and is not waited for. Only a body that ended is
 * left uncancelled. Rejects with the body's own error when a read fails.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export async function readyLength(
  body: ReadableStream<Uint8Array>,
  limit: number,
): Promise<number | "too_large" | "streaming"> {
  const reader = body.getReader();
  let length = 0;
  for (;;) {
    const read = reader.read();
    if (!(await settlesNow(read))) {
      reader.cancel().catch(() => {}); // the pending read resolves as done
      return "streaming";
    }
    const { done, value } = await read;
    if (done) return length;
    length += value.byteLength;
    if (length > limit) {
      reader.cancel().catch(() => {});
      return "too_large";
    }
  }
}

/** True when `promise` settles before the next macrotask: what was ready, not what is still coming. */
function settlesNow(promise: Promise<unknown>): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), 0);
    const settled = () => {
      clearTimeout(timer);
      resolve(true);
    };
    promise.then(settled, settled);
  });
}

/**
 * Whether `value` is a web `Response`, of any realm (a runtime's own, a polyfill's, another copy
 * of undici): known by its WebIDL tag, `[object Response]`, where `instanceof` fails across them.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function isWebResponse(value: unknown): value is Response {
  return Object.prototype.toString.call(value) === "[object Response]";
}

/** How `recordResponse` settles a claimed key: the engine's `finish` and `abort` for its ticket. */
export interface ResponseSettlement {
  /** The response as stored. */
  headers: () => CapturedResponse["headers"];
  /** Largest body recorded: the store's `maxRecordBytes`. */
  limit: number;
  /** Whether no body goes out (a HEAD answer, whose body the host drops unread). */
  bodyless: boolean;
  /** Stores the answer: the engine's `finish` for the key's ticket. */
  finish: (captured: CapturedResponse) => Promise<unknown>;
  /** Releases the key, so a retry runs: the engine's `abort` for the ticket. */
  abort: () => Promise<unknown>;
}

/** What to send for a handler's web `Response`, and the recording of its body, if it has one. */
export interface RecordedResponse {
  /** The response to send: the handler's own when the key is settled, else one over the recording. */
  response: Response;
  /** Undefined when the key is already settled: there was no body to record. */
  recording: Recording | undefined;
}

/**
 * Settles a claimed key with the web `Response` a handler answered (one decision for every
 * adapter that meets one). A `Response` built from a string and one built from a stream look the
 * same, and one may never end (server-sent events), so the body is not read before it is sent:
 * it is recorded as it goes out (`recordBody`), in a new `Response` with the handler's status
 * and headers. A `Response` without a body, or one whose body goes nowhere (`bodyless`), is
 * stored empty at once. One whose body was already read or locked cannot be sent: the key is
 * released, so the retry runs, and a `TypeError` says why (the host answers it as the
 * handler's error). The stored headers are taken
 * after the body (`settle.headers`): a runtime may spell a default Content-Type differently in a
 * `Response` whose body it has not yet made.
 */
export async function recordResponse(response: Response, settle: ResponseSettlement): Promise<RecordedResponse> {
  const { status, statusText, body } = response;
  if (body === null || settle.bodyless) {
    await settle.finish({ status, headers: settle.headers(), body: EMPTY });
    return { response, recording: undefined };
  }
  if (response.bodyUsed || body.locked) {
    await settle.abort();
    throw new TypeError(UNSENDABLE);
  }
  const headers = settle.headers();
  const recording = recordBody(body, settle.limit, (bytes, tooLarge) =>
    settle.finish({ status, headers, body: bytes, tooLarge }).then(() => undefined),
  );
  return { response: new Response(recording.stream, { status, statusText, headers: response.headers }), recording };
}

const EMPTY = new Uint8Array(0);
