/**
 * What the route gave the context to answer with, watched for the middlewares that settle a
 * claim with it (`idempotency()`, `webhook()`): the body handed to the context's writers, and a
 * read-ahead for the answer a later middleware replaces without reading.
 */
import type { Context } from "hono";

/** What the route gave the context to answer with, and the response that came of it. */
export interface Written {
  response: Response | Promise<Response>;
  data: unknown;
  /**
   * The context's `error` as the route answered, when Hono had already answered it (`c.res` set):
   * one raised around the route, by a layer that answered the client while the route still ran.
   */
  errorAnswered: Error | undefined;
}

type Writer = (data: never, ...rest: never[]) => Response | Promise<Response>;

/**
 * One request's watch on the context's writers: Hono's own, and what the route handed the last
 * one it called. The writers put on the context are the same module-level functions for every
 * request, each bound to its request's watch. A new closure stored on every context cost V8 13+
 * (Node 24, 26) about 7 µs a request and kept each request's objects alive past young-generation
 * collections (about 3 KB a request promoted to the old generation); a bound function costs
 * neither. Bound, not read through `this`: Hono's writers are arrow functions, so a route may
 * call one detached (`const { json } = c`), and ours must work the same way.
 */
export class BodyWatch {
  written: Written | undefined = undefined;
  readonly body: Writer;
  readonly newResponse: Writer;
  readonly text: Writer;
  readonly html: Writer;

  constructor(readonly c: Context) {
    this.body = c.body as Writer;
    this.newResponse = c.newResponse as Writer;
    this.text = c.text as Writer;
    this.html = c.html as Writer;
  }

  note(response: Response | Promise<Response>, data: unknown): Response | Promise<Response> {
    const { error } = this.c;
    const errorAnswered = error !== undefined && this.c.finalized ? error : undefined;
    this.written = { response, data: snapshot(data), errorAnswered };
    return response;
  }
}

/**
 * Whether the context's `error` was raised around the route, not by it: a middleware mounted
 * before ours (`hono/timeout`) threw and Hono answered its error while the route was still
 * running, and the route then answered (its answer never sent). Hono records a throw on the
 * context at whichever level catches it, so after `next()` the route's own failure and an outer
 * one look alike; only an answer written after Hono had answered the error tells them apart.
 * Hono's error handler writes its answer to the route's throw (`app.onError` calling `c.json`)
 * before Hono sets it as `c.res`, and a route that throws writes nothing after its throw. Not
 * told by comparing that answer with `c.res`: once anything has read `c.res` (`cors()` before
 * `next()`), Hono's setter wraps every answer set in a new `Response`. Returns that answer, if so.
 */
export function raisedAroundRoute(c: Context, written: Written | undefined): Written | undefined {
  return c.error !== undefined && written?.errorAnswered === c.error ? written : undefined;
}

function noteBody(this: BodyWatch, data: never, ...rest: never[]) {
  return this.note(this.body(data, ...rest), data);
}
function noteNewResponse(this: BodyWatch, data: never, ...rest: never[]) {
  return this.note(this.newResponse(data, ...rest), data);
}
function noteText(this: BodyWatch, data: never, ...rest: never[]) {
  return this.note(this.text(data, ...rest), data);
}
function noteHtml(this: BodyWatch, data: never, ...rest: never[]) {
  return this.note(this.html(data, ...rest), data);
}
/** Hono's own `c.json`, through the noted `c.body`, so the JSON text is known, not re-read. */
function noteJson(this: BodyWatch, object: unknown, arg?: never, headers?: Record<string, string>) {
  return this.c.body(JSON.stringify(object) as never, arg, { "Content-Type": "application/json", ...headers });
}

/**
 * Notes the body the route hands `c.body`, `c.newResponse`, `c.text`, `c.json` or `c.html`. A
 * fetch `Response` looks the same for a string and a stream, and reading one back costs more
 * than the whole request on some runtimes; the data it was made from is the body, as it is.
 * A `ReadableStream` (`c.body(stream)`, `stream()`, `streamSSE()`) may never end and must reach
 * the client as it is written: it passes through uncached.
 */
export function watchBodies(c: Context): BodyWatch {
  const watch = new BodyWatch(c);
  c.body = noteBody.bind(watch) as unknown as typeof c.body;
  c.newResponse = noteNewResponse.bind(watch) as unknown as typeof c.newResponse;
  c.text = noteText.bind(watch) as unknown as typeof c.text;
  c.html = noteHtml.bind(watch) as unknown as typeof c.html;
  c.json = noteJson.bind(watch) as unknown as typeof c.json;
  return watch;
}

/**
 * A middleware mounted before ours may replace `c.res` without reading the body we put there
 * (an error mapper's own page): that body would then never be read, nor cancelled, and the claim
 * behind it (an idempotency key, a webhook delivery) would stay in flight until its lease
 * expires. So the first time `c.res` is set from now on, a `stream` nobody has taken yet is read
 * on (`readAhead`): the route's answer is settled as if the client had read it (`idempotency()`
 * stores it, or releases the key past `maxRecordBytes`), and a replay goes through that
 * middleware again. Reading ahead never takes the body from a late reader (one that re-wraps it
 * as it is, or reads it lazily): the bytes wait in the stream's queue. A body that never ends is
 * never settled this way: the lease (`lockTtlMs`) is the bound.
 *
 * Hono's setter keeps no trace of the response it replaces, hence an accessor of this context's
 * own in front of Hono's, which it removes at that first set: only a request whose answer is
 * followed as it goes out pays for it.
 */
export function readAheadWhenReplaced(c: Context, stream: ReadableStream, readAhead: () => void): void {
  const hono = honoResAccessor(c);
  if (hono?.get === undefined || hono.set === undefined) return;
  const { get, set } = hono;
  Object.defineProperty(c, "res", {
    configurable: true,
    get,
    set(response: Response | undefined) {
      Reflect.deleteProperty(c, "res");
      set.call(c, response);
      if (!stream.locked) readAhead();
    },
  });
}

/** Hono's `res` accessor, from the context's class. */
function honoResAccessor(c: Context): PropertyDescriptor | undefined {
  for (let proto = Object.getPrototypeOf(c); proto !== null; proto = Object.getPrototypeOf(proto)) {
    const accessor = Object.getOwnPropertyDescriptor(proto, "res");
    if (accessor !== undefined) return accessor;
  }
  return undefined;
}

/**
 * Bytes given to the context as they are now, copied: a Fetch `Response` copies a buffer it is
 * made from, and the route may reuse or clear its own once it has answered, before the answer
 * is stored and sent from this data. Anything else as it is.
 */
function snapshot(data: unknown): unknown {
  if (data instanceof ArrayBuffer) return data.slice(0);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
  return data;
}

/** The bytes of a body as given to the context, when it is one Response sends as it is. */
export function givenBody(data: unknown): Uint8Array | string | undefined {
  if (data === null || data === undefined) return new Uint8Array(0);
  if (typeof data === "string" || data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return undefined; // Blob, FormData, URLSearchParams…: read from the response
}
