/**
 * A `fetch` over HTTP/2 cleartext (h2c, prior knowledge) with node:http2, for driving apps
 * served by `http2.createServer` (undici's fetch speaks HTTP/2 only over TLS). A request body
 * is sent in DATA frames with no `content-length`, as HTTP/2 allows (RFC 9113 §8.1.1): the
 * stream's end is what ends the body, so a server that looks for `content-length` or
 * `transfer-encoding` to decide whether there is a body at all gets it wrong here. As `fetch`
 * does, it resolves once the response's headers have come, its body read as its DATA frames come:
 * a streamed answer can be read while the server is still producing it.
 */

import {
  type ClientHttp2Session,
  connect,
  constants,
  type Http2Server,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
} from "node:http2";
import type { AddressInfo } from "node:net";

const { HTTP2_HEADER_METHOD, HTTP2_HEADER_PATH, HTTP2_HEADER_STATUS } = constants;

/** Statuses whose response has no content (RFC 9110 §6.4.1). */
const NO_CONTENT = new Set([204, 205, 304]);

export interface Http2Client {
  /** Sends one request on the origin's session (opened on first use). */
  fetch: typeof fetch;
  /** Closes every session, once their streams have ended. */
  close(): Promise<void>;
}

export function http2Client(): Http2Client {
  const sessions = new Map<string, ClientHttp2Session>();

  function sessionFor(origin: string): ClientHttp2Session {
    let session = sessions.get(origin);
    if (session === undefined || session.closed || session.destroyed) {
      session = connect(origin);
      // A session error also fails its streams, which reject their own requests.
      session.on("error", () => {});
      sessions.set(origin, session);
    }
    return session;
  }

  async function h2fetch(input: string | URL | Request, init: RequestInit = {}): Promise<Response> {
    if (input instanceof Request) throw new TypeError("http2Client().fetch takes a URL and an init, not a Request");
    const url = new URL(input);
    const method = (init.method ?? "GET").toUpperCase();
    const body = bodyBytes(init.body);
    const headers: OutgoingHttpHeaders = {
      [HTTP2_HEADER_METHOD]: method,
      [HTTP2_HEADER_PATH]: url.pathname + url.search,
    };
    new Headers(init.headers).forEach((value, name) => {
      headers[name] = value;
    });
    const [head, content] = await respond(sessionFor(url.origin), headers, body, init.signal ?? undefined);
    const status = Number(head[HTTP2_HEADER_STATUS]);
    const out = new Headers();
    for (const [name, value] of Object.entries(head)) {
      if (name.startsWith(":") || value === undefined) continue;
      for (const one of Array.isArray(value) ? value : [value]) out.append(name, String(one));
    }
    // No content to read: whatever the stream still carries is read and dropped.
    return new Response(NO_CONTENT.has(status) || method === "HEAD" ? null : content, { status, headers: out });
  }

  return {
    fetch: h2fetch as typeof fetch,
    close: async () => {
      const closing = [...sessions.values()].map(closeSession);
      sessions.clear();
      await Promise.all(closing);
    },
  };
}

/**
 * Sends one request on `session`, its body (if any) in DATA frames with no `content-length`,
 * and resolves to the response's headers and body bytes. Rejects, as fetch does, with a
 * `TypeError` when the stream fails or ends without a response, and with the reason of `signal`
 * once it aborts (the stream cancelled, so the session can close).
 */
export function exchange(
  session: ClientHttp2Session,
  headers: OutgoingHttpHeaders,
  body: Buffer | undefined,
  signal?: AbortSignal,
): Promise<[IncomingHttpHeaders, Buffer]> {
  const stream = session.request(headers, { endStream: body === undefined });
  if (body !== undefined) stream.end(body);
  return new Promise((resolve, reject) => {
    signal?.addEventListener(
      "abort",
      () => {
        reject(signal.reason);
        stream.close(constants.NGHTTP2_CANCEL);
      },
      { once: true },
    );
    const chunks: Buffer[] = [];
    let responseHeaders: IncomingHttpHeaders | undefined;
    stream.on("response", (received) => {
      responseHeaders = received;
    });
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", () => {
      if (responseHeaders === undefined) reject(new TypeError("fetch failed: the stream ended without a response"));
      else resolve([responseHeaders, Buffer.concat(chunks)]);
    });
    stream.on("error", (cause) => reject(new TypeError("fetch failed", { cause })));
  });
}

/**
 * Sends one request as `exchange` does, and resolves once the response's headers have come, to
 * them and the body as a stream of its DATA frames, each readable as it comes. The frames are
 * read as they come, whether or not the body is (kept until it is, as a test's bodies are
 * small), so an unread body does not hold its stream open. Rejects as `exchange` does until the
 * headers have come; then the body fails instead (a `TypeError`, or the reason of `signal`), as
 * fetch's does. Cancelling the body cancels the stream.
 */
function respond(
  session: ClientHttp2Session,
  headers: OutgoingHttpHeaders,
  body: Buffer | undefined,
  signal?: AbortSignal,
): Promise<[IncomingHttpHeaders, ReadableStream<Uint8Array>]> {
  const stream = session.request(headers, { endStream: body === undefined });
  if (body !== undefined) stream.end(body);
  return new Promise((resolve, reject) => {
    let content: ReadableStreamDefaultController<Uint8Array> | undefined;
    let over = false;
    const fail = (reason: unknown) => {
      if (over) return;
      over = true;
      if (content === undefined) reject(reason);
      else content.error(reason);
    };
    signal?.addEventListener(
      "abort",
      () => {
        fail(signal.reason);
        stream.close(constants.NGHTTP2_CANCEL);
      },
      { once: true },
    );
    stream.on("response", (received) => {
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          content = controller;
        },
        cancel() {
          over = true;
          stream.close(constants.NGHTTP2_CANCEL);
        },
      });
      resolve([received, body]);
    });
    stream.on("data", (chunk: Buffer) => {
      if (!over) content?.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    });
    stream.on("end", () => {
      if (content === undefined) return fail(new TypeError("fetch failed: the stream ended without a response"));
      if (over) return;
      over = true;
      content.close();
    });
    stream.on("error", (cause) => fail(new TypeError("fetch failed", { cause })));
  });
}

/**
 * Closes `session` once its streams have ended. One the server already destroyed (it went
 * away, or failed the connection) is done at once: its `close(callback)` would never call back.
 */
export function closeSession(session: ClientHttp2Session): Promise<void> {
  return new Promise((resolve) => {
    if (session.destroyed) return resolve();
    session.once("close", () => resolve());
    session.close();
  });
}

/** The bodies the scenario tables send: text or bytes. */
function bodyBytes(body: RequestInit["body"]): Buffer | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body === "string") return Buffer.from(body);
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  if (body instanceof ArrayBuffer) return Buffer.from(body);
  throw new TypeError("http2Client().fetch sends a string, a Uint8Array or an ArrayBuffer body");
}

/** An app served over h2c on 127.0.0.1, with a client for it: the shape of core's `ScenarioApp`. */
export interface ServedHttp2 {
  url: string;
  fetch: typeof fetch;
  close(): Promise<void>;
}

/** Listens with an `http2.createServer(…)` server on 127.0.0.1 and a free port. */
export async function serveHttp2(server: Http2Server): Promise<ServedHttp2> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return withClient(`http://127.0.0.1:${port}`, () => new Promise<void>((resolve) => server.close(() => resolve())));
}

/** A client for an app already listening at `url`; `close` closes the client, then the app. */
export function withClient(url: string, closeServer: () => Promise<void>): ServedHttp2 {
  const client = http2Client();
  return {
    url,
    fetch: client.fetch,
    close: async () => {
      await client.close();
      await closeServer();
    },
  };
}
