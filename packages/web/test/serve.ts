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

/** A fetch handler on Node: @hono/node-server turns each request into a web `Request`. */
export function listen(handler: FetchHandler, createServer?: typeof createHttp2Server): Promise<Served> {
  return new Promise((resolve) => {
    const server = serve(
      { fetch: handler, hostname: "127.0.0.1", port: 0, ...(createServer && { createServer }) },
      (info: AddressInfo) =>
        resolve({
          url: `http://127.0.0.1:${info.port}`,
          close: () => new Promise<void>((done) => server.close(() => done())),
        }),
    );
  });
}

/** A fetch handler on Node over HTTP/2 cleartext, with an HTTP/2 client. */
export async function listenHttp2(handler: FetchHandler): Promise<ServedHttp2> {
  const served = await listen(handler, createHttp2Server);
  return withClient(served.url, served.close);
}
