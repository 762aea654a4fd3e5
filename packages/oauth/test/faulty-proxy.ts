/**
 * An HTTP proxy on 127.0.0.1 in front of a real server, for failure injection: it records every
 * request it receives and forwards it, unless a fault was queued for it: then it answers the
 * fault's status instead (the real server never sees the request), resets the connection, or
 * stalls midway through the body.
 */

import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";

export type Fault =
  | { status: number; headers?: Record<string, string>; body?: string }
  | { reset: true }
  /** A 200 JSON answer whose headers and first bytes arrive, and the rest never does. */
  | { stallAfter: string };

export interface ProxiedRequest {
  method: string;
  path: string;
  /** The form body's `grant_type`, for token requests. */
  grantType: string | undefined;
  headers: IncomingMessage["headers"];
}

export interface FaultyProxy {
  url: string;
  /** Every request received, faulted or forwarded, in order. */
  readonly received: ProxiedRequest[];
  /** Requests received for `path` (and of one grant type, for the token endpoint). */
  count(path: string, grantType?: string): number;
  /** Answers the next request `matches` accepts with `fault`, once. */
  inject(matches: (request: ProxiedRequest) => boolean, fault: Fault): void;
  /** A fetch that sends what was meant for the real server through the proxy. */
  fetch(input: string | URL | Request, init?: RequestInit): Promise<Response>;
  close(): Promise<void>;
}

/** Hop-by-hop and length headers: the forwarded response gets its own. */
const NOT_COPIED = new Set(["connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"]);

export async function startFaultyProxy(target: string): Promise<FaultyProxy> {
  const received: ProxiedRequest[] = [];
  const faults: Array<{ matches: (request: ProxiedRequest) => boolean; fault: Fault }> = [];

  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const url = new URL(req.url ?? "/", target);
    const form = req.headers["content-type"]?.startsWith("application/x-www-form-urlencoded")
      ? new URLSearchParams(body.toString())
      : undefined;
    const request: ProxiedRequest = {
      method: req.method ?? "GET",
      path: url.pathname,
      grantType: form?.get("grant_type") ?? undefined,
      headers: req.headers,
    };
    received.push(request);

    const queued = faults.findIndex((f) => f.matches(request));
    if (queued >= 0) {
      const { fault } = faults.splice(queued, 1)[0] as { fault: Fault };
      if ("reset" in fault) {
        req.socket.resetAndDestroy();
        return;
      }
      if ("stallAfter" in fault) {
        res.writeHead(200, { "content-type": "application/json", "content-length": "4096" }).write(fault.stallAfter);
        return; // ended by close()
      }
      res.writeHead(fault.status, fault.headers).end(fault.body ?? "");
      return;
    }

    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      if (name !== "host" && typeof value === "string") headers.set(name, value);
    }
    let upstream: Response;
    try {
      upstream = await fetch(url, {
        method: request.method,
        headers,
        body: request.method === "GET" || request.method === "HEAD" ? null : body,
        redirect: "manual",
      });
    } catch {
      res.writeHead(502).end();
      return;
    }
    const copied: Record<string, string> = {};
    upstream.headers.forEach((value, name) => {
      if (!NOT_COPIED.has(name)) copied[name] = value;
    });
    res.writeHead(upstream.status, copied).end(Buffer.from(await upstream.arrayBuffer()));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    received,
    count: (path, grantType) =>
      received.filter((r) => r.path === path && (grantType === undefined || r.grantType === grantType)).length,
    inject: (matches, fault) => {
      faults.push({ matches, fault });
    },
    fetch: (input, init) => {
      const original = new URL(input instanceof Request ? input.url : input);
      const rewritten = `${url}${original.pathname}${original.search}`;
      return fetch(input instanceof Request ? new Request(rewritten, input) : rewritten, init);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
