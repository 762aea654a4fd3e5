/**
 * Response capture. Express's `send`, `json`, `sendStatus` and `stream.pipe(res)` all end in
 * Node's `res.write` / `res.end`, so those two are wrapped: the first call of either settles
 * the ticket (status, headers and, for a body written in one piece, the body), and the
 * response is held until the store knows the outcome. A client that retries the moment it
 * reads the answer then finds the record, not a lock.
 */

import type { ServerResponse } from "node:http";

/** The first write of the response: `end(chunk)` in one piece, or a `write` that starts a stream. */
export type FirstWrite = { method: "write" } | { method: "end"; chunk: unknown; encoding: BufferEncoding | undefined };

type Method = "write" | "end";
type Writer = (...args: unknown[]) => unknown;

const started = new WeakSet<ServerResponse>();

/** Whether the app has begun its response (possibly still held here). */
export function responseStarted(res: ServerResponse): boolean {
  return started.has(res) || res.headersSent || res.writableEnded;
}

/**
 * Calls `settle` on the first `write` or `end` and holds that call, and every later one, until
 * `settle` is done; then restores the originals and replays the calls in order.
 */
export function holdResponse(res: ServerResponse, settle: (first: FirstWrite) => Promise<void>): void {
  const original = { write: res.write as Writer, end: res.end as Writer };
  let queue: Array<[Method, unknown[]]> | undefined;
  const flush = () => {
    res.write = original.write as ServerResponse["write"];
    res.end = original.end as ServerResponse["end"];
    for (const [method, args] of queue ?? []) original[method].apply(res, args);
  };
  const hold = (method: Method) =>
    function held(...args: unknown[]) {
      if (queue) queue.push([method, args]);
      else {
        queue = [[method, args]];
        started.add(res);
        settle(firstWrite(method, args)).then(flush, flush);
      }
      // Calls return as if written: `write` reports no back-pressure while the write is held.
      return method === "write" ? true : res;
    };
  res.write = hold("write") as ServerResponse["write"];
  res.end = hold("end") as ServerResponse["end"];
}

function firstWrite(method: Method, args: unknown[]): FirstWrite {
  if (method === "write") return { method };
  const chunk = typeof args[0] === "function" ? undefined : args[0];
  const encoding = typeof args[1] === "string" ? (args[1] as BufferEncoding) : undefined;
  return { method, chunk, encoding };
}

/** The bytes of an `end(chunk, encoding)` body, copied: the app may reuse its buffer. */
export function bodyBytes(first: FirstWrite): Uint8Array | undefined {
  if (first.method === "write") return undefined;
  const { chunk, encoding } = first;
  if (chunk === undefined || chunk === null) return new Uint8Array();
  if (typeof chunk === "string") return Buffer.from(chunk, encoding ?? "utf8");
  if (chunk instanceof Uint8Array) return new Uint8Array(chunk);
  return undefined; // not something Node writes: treat it as not captured
}

/**
 * The response headers as they will be sent. `writeHead(status, headers)` without a prior
 * `setHeader` writes its headers straight into the header block, so read that when present.
 */
export function responseHeaders(
  res: ServerResponse,
): Array<[string, string]> | ReturnType<ServerResponse["getHeaders"]> {
  const block = (res as ServerResponse & { _header?: unknown })._header;
  if (typeof block !== "string" || block === "") return res.getHeaders();
  const pairs: Array<[string, string]> = [];
  for (const line of block.split("\r\n").slice(1)) {
    const colon = line.indexOf(":");
    if (colon > 0) pairs.push([line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()]);
  }
  return pairs;
}
