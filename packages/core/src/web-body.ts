/**
 * Request and response bodies on web standards (`Request`, `Response`, `ReadableStream`), for
 * the adapters that run on every runtime (@interlock/hono, @interlock/web): a request body read
 * without ever buffering past a limit, and a response body recorded as it goes out.
 */
import { BodyCollector } from "./http.js";

/** Content-Length, when it frames the body (not with Transfer-Encoding, as Hono's `bodyLimit` reads it). */
export function declaredLength(headers: Headers): number | undefined {
  const value = headers.get("content-length");
  if (value === null || headers.has("transfer-encoding")) return undefined;
  const length = Number(value);
  return Number.isSafeInteger(length) && length >= 0 ? length : undefined;
}

/** `/payments?x=1` from `http://host/payments?x=1`, without parsing the whole URL. */
export function pathAndQuery(url: string): string {
  const start = url.indexOf("/", url.indexOf("://") + 3);
  return start === -1 ? "/" : url.slice(start);
}

/** What `readStreamUpTo` read. */
export type StreamUpTo =
  | {
      /** The whole body: it ended within the limit. */
      body: Uint8Array<ArrayBuffer>;
    }
  | {
      /** Past the limit: nothing kept. */
      body: undefined;
      /** The whole stream as it was, what was read included: cancel it, or pass it on. */
      rest: ReadableStream<Uint8Array>;
    };

/** Reads a stream chunk by chunk, up to `limit` bytes, never buffering more. */
export async function readStreamUpTo(stream: ReadableStream<Uint8Array>, limit: number): Promise<StreamUpTo> {
  const reader = stream.getReader();
  const body = new BodyCollector(limit);
  for (let read = await reader.read(); !read.done; read = await reader.read()) {
    if (!body.add(read.value)) return { body: undefined, rest: resumed([...body.chunks, read.value], reader) };
  }
  return { body: body.body() as Uint8Array<ArrayBuffer> };
}

/** The chunks already read, then the rest of the reader's stream. */
function resumed(read: Uint8Array[], reader: ReadableStreamDefaultReader<Uint8Array>): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const chunk = read.shift();
      if (chunk !== undefined) return controller.enqueue(chunk);
      const next = await reader.read();
      if (next.done) controller.close();
      else controller.enqueue(next.value);
    },
    cancel: (reason) => reader.cancel(reason),
  });
}

/** A response body recorded as it is read: the stream to send, and a way to record it unread. */
export interface Recording {
  /** The body to send in the original's place: the same bytes, its end held until `settle` is done. */
  readonly stream: ReadableStream<Uint8Array>;
  /**
   * Reads the body on into `stream`'s queue, with or without a reader: until it ends (`settle`
   * gets its bytes) or passes the limit (`settle` gets `undefined` then, not at the end). A
   * reader that comes later still gets every byte, in order. Never rejects.
   */
  readAhead(): void;
}

/**
 * `stream` as it is read, its bytes kept up to `limit`. When it ends, `settle` gets them
 * (`undefined` past the limit), and the end is passed on only once `settle` is done: a client
 * that retries the moment it has the whole answer finds it stored. When the reader cancels (the
 * client went away), what the stream has ready is still read: a body that then ends is settled
 * as if read, one that does not yet gets `undefined`, as does a stream that fails. `settle` is
 * called once.
 */
export function recordBody(
  stream: ReadableStream<Uint8Array>,
  limit: number,
  settle: (body: Uint8Array | undefined) => Promise<void>,
): Recording {
  const reader = stream.getReader();
  let kept: BodyCollector | undefined = new BodyCollector(limit);
  let settled = false;
  const settleOnce = (body: Uint8Array | undefined) => {
    if (settled) return Promise.resolve();
    settled = true;
    kept = undefined;
    return settle(body);
  };
  /** No more to read: the body ended, failed, or the reader cancelled (`cancelled`: the queue is closed too). */
  let ended = false;
  let cancelled = false;
  let controller: ReadableStreamDefaultController<Uint8Array>;
  /** One chunk from the body: kept, and into the queue unless the reader cancelled. */
  const readOne = async () => {
    if (ended) return;
    let next: ReadableStreamReadResult<Uint8Array>;
    try {
      next = await reader.read();
    } catch (error) {
      ended = true;
      await settleOnce(undefined);
      if (!cancelled) controller.error(error);
      return;
    }
    if (next.done) {
      ended = true;
      await settleOnce(kept?.body());
      if (!cancelled) controller.close();
      return;
    }
    if (kept !== undefined && !kept.add(next.value)) kept = undefined;
    if (!cancelled) controller.enqueue(next.value);
  };
  // The stream asks for one chunk at a time, and `readAhead` may ask meanwhile: they take turns.
  let reading = Promise.resolve();
  const readInTurn = () => {
    reading = reading.then(readOne);
    return reading;
  };
  const recorded = new ReadableStream<Uint8Array>({
    start(streamController) {
      controller = streamController;
    },
    pull: readInTurn,
    async cancel(reason) {
      cancelled = true;
      // An answer the route had finished when the client went away is still its answer: a retry
      // must find it stored, not run the route again. What is ready is read on; a body still
      // being produced (a stream the route writes as it goes) is not waited for.
      while (!ended && kept !== undefined && (await settlesNow(readInTurn()))) {}
      if (ended) return;
      ended = true;
      await settleOnce(undefined);
      await reader.cancel(reason);
    },
  });
  const readAhead = async () => {
    while (!ended && kept !== undefined) await readInTurn();
    // Past the limit nothing more is kept: the key is released now, whether the rest is ever read.
    await settleOnce(undefined);
  };
  // Nobody awaits this: when `settle` fails, a reader that comes later gets the failure from its read.
  return { stream: recorded, readAhead: () => void readAhead().catch(() => {}) };
}

/** True when `promise` settles before the next macrotask: what was ready, not what is still coming. */
function settlesNow(promise: Promise<unknown>): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), 0);
    promise.then(
      () => {
        clearTimeout(timer);
        resolve(true);
      },
      () => {
        clearTimeout(timer);
        resolve(true);
      },
    );
  });
}
