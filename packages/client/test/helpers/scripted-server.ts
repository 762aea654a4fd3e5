/**
 * A real HTTP server on 127.0.0.1 that answers each request by the next step of a script:
 * a status with headers and a body, a connection reset, a dropped connection, a slow answer, or
 * no answer at all. It records every request it receives.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export type Step =
  /** A header given a list is sent once per item, as a server sending a field more than once does. */
  | { status: number; headers?: Record<string, string | string[]>; body?: string }
  /** A TCP reset (RST) once the request is read. */
  | { reset: true }
  /** The socket closed without a response (`socket.destroy()`). */
  | { drop: true }
  /** No answer until `release` is called with the step to answer (or the server closes). */
  | { hang: true }
  /** Answers `answer` after `delayMs` of real time. */
  | { delayMs: number; answer: Step };

export interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** Which connection it came on: 1 for the server's first, in the order they were opened. */
  connection: number;
  /** 1 for the first request on its connection, 2 for the next one kept alive, … */
  onConnection: number;
}

export type Script = Step[] | ((index: number, request: Received) => Step);

const OK: Step = { status: 200, body: "ok" };

export interface ScriptedServer {
  url: string;
  origin: string;
  /** Every request received, in order. */
  received: Received[];
  /** Resolves once `count` requests have been received. */
  receivedCount(count: number): Promise<void>;
  /**
   * Answers a hanging request with `step`: the one received as number `index` (0-based), else
   * the oldest whose client is still connected.
   */
  release(step?: Step, index?: number): void;
  /** Resolves once the client has closed the connection of hanging request number `index`. */
  hungUp(index: number): Promise<void>;
  close(): Promise<void>;
}

export async function startScriptedServer(script: Script): Promise<ScriptedServer> {
  const received: Received[] = [];
  let opened = 0;
  const hanging: Array<{ res: ServerResponse; index: number }> = [];
  const hangUps = new Map<number, Promise<void>>();
  const waiters: Array<{ count: number; resolve: () => void }> = [];
  const next = (index: number, request: Received): Step =>
    typeof script === "function" ? script(index, request) : (script[index] ?? OK);

  const connections = new WeakMap<object, { connection: number; requests: number }>();
  const server = createServer(async (req, res) => {
    const seen = connections.get(req.socket) ?? { connection: 0, requests: 0 };
    if (seen.connection === 0) connections.set(req.socket, Object.assign(seen, { connection: ++opened }));
    const request = { ...(await read(req)), connection: seen.connection, onConnection: ++seen.requests };
    const index = received.push(request) - 1;
    for (const waiter of waiters.filter((w) => received.length >= w.count)) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
    answer(res, next(index, request), index);
  });

  function answer(res: ServerResponse, step: Step, index: number): void {
    if ("reset" in step) return void res.socket?.resetAndDestroy();
    if ("drop" in step) return void res.socket?.destroy();
    if ("hang" in step) {
      hanging.push({ res, index });
      const socket = res.socket;
      hangUps.set(
        index,
        !socket || socket.destroyed
          ? Promise.resolve()
          : new Promise((resolve) => socket.once("close", () => resolve())),
      );
      return;
    }
    if ("delayMs" in step) return void setTimeout(() => answer(res, step.answer, index), step.delayMs);
    // No `Date` unless the step sets one: it would be the real time, not the test's virtual clock.
    res.sendDate = false;
    res.writeHead(step.status, { "content-type": "text/plain", ...step.headers });
    res.end(step.body ?? "");
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: `${origin}/resource`,
    origin,
    received,
    receivedCount: (count) =>
      received.length >= count ? Promise.resolve() : new Promise((resolve) => waiters.push({ count, resolve })),
    release(step = OK, index) {
      const at =
        index === undefined
          ? hanging.findIndex((h) => !h.res.socket?.destroyed)
          : hanging.findIndex((h) => h.index === index);
      const [held] = at < 0 ? [] : hanging.splice(at, 1);
      if (!held) throw new Error(`no request ${index ?? ""} is hanging`);
      answer(held.res, step, held.index);
    },
    hungUp(index) {
      const hangUp = hangUps.get(index);
      if (hangUp === undefined) throw new Error(`request ${index} did not hang`);
      return hangUp;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function read(req: IncomingMessage): Promise<Omit<Received, "connection" | "onConnection">> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return {
    method: req.method ?? "",
    url: req.url ?? "",
    headers: req.headers,
    body: Buffer.concat(chunks).toString("utf8"),
  };
}
