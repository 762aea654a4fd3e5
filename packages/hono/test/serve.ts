/** Serves apps over real HTTP on 127.0.0.1. */
import { createServer as createHttp2Server } from "node:http2";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { type ServedHttp2, withClient } from "@interlock/test-harness/http2";

export interface Served {
  url: string;
  close(): Promise<void>;
}

/** What `listen` serves: a Hono app of any env, or anything with its `fetch`. */
export interface Fetcher {
  fetch(request: Request): Response | Promise<Response>;
}

function served(server: { close(callback: () => void): unknown }, port: number): Served {
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((done) => server.close(() => done())),
  };
}

/** A Hono app on Node, through @hono/node-server (its default global Request/Response override included). */
export function listen(app: Fetcher, createServer?: typeof createHttp2Server): Promise<Served> {
  return new Promise((resolve) => {
    const server = serve(
      { fetch: (request) => app.fetch(request), hostname: "127.0.0.1", port: 0, ...(createServer && { createServer }) },
      (info: AddressInfo) => resolve(served(server, info.port)),
    );
  });
}

/** A Hono app on Node over HTTP/2 cleartext (@hono/node-server's `createServer` option), with an HTTP/2 client. */
export async function listenHttp2(app: Fetcher): Promise<ServedHttp2> {
  const served = await listen(app, createHttp2Server);
  return withClient(served.url, served.close);
}
