/** Serves fetch handlers over real HTTP on 127.0.0.1, through @hono/node-server's Node bridge. */
import { createServer as createHttp2Server } from "node:http2";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { type ServedHttp2, withClient } from "@interlock/test-harness/http2";

export interface Served {
  url: string;
  close(): Promise<void>;
}

export type FetchHandler = (request: Request) => Response | Promise<Response>;

/**
 * A fetch handler on Node: @hono/node-server turns each request into a web `Request`. By
 * default it also makes its own lighter `Request` and `Response` the global ones, for the whole
 * process: `nativeGlobals` keeps Node's (undici's), which check what Next.js, Bun, Deno and
 * Workers check (a 204 with a body refused when it is made, not when it is read). Set it on
 * every call in a file: the first call without it replaces them for the rest of the file.
 */
export function listen(
  handler: FetchHandler,
  createServer?: typeof createHttp2Server,
  { nativeGlobals = false }: { nativeGlobals?: boolean } = {},
): Promise<Served> {
  return new Promise((resolve) => {
    const server = serve(
      {
        fetch: handler,
        hostname: "127.0.0.1",
        port: 0,
        ...(createServer && { createServer }),
        ...(nativeGlobals && { overrideGlobalObjects: false }),
      },
      (info: AddressInfo) =>
        resolve({
          url: `http://127.0.0.1:${info.port}`,
          close: () => new Promise<void>((done) => server.close(() => done())),
        }),
    );
  });
}

/** A fetch handler on Node over HTTP/2 cleartext, with an HTTP/2 client. */
export async function listenHttp2(handler: FetchHandler, options?: { nativeGlobals?: boolean }): Promise<ServedHttp2> {
  const served = await listen(handler, createHttp2Server, options);
  return withClient(served.url, served.close);
}
