/**
 * A client that leaves mid-body while something asynchronous runs before Interlock reads the
 * body (an async `onRequest` hook: an authentication lookup, `@fastify/rate-limit`): by the time
 * `preParsing` runs, its request is over (HTTP/1.1: destroyed; HTTP/2: reset, then ended as if
 * complete). A client's doing: 400 `body_incomplete`, reported and logged at info as a body cut
 * off while being read is, nothing claimed; never the 500 `body_not_raw` of a hook that consumed
 * the payload.
 */

import { once } from "node:events";
import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import { connect } from "node:net";
import { type InterlockEvent, MemoryStore, signWebhook, standardWebhooks } from "@interlock/core";
import { withClient } from "@interlock/test-harness/http2";
import type { FastifyServerOptions } from "fastify";
import { afterEach, describe, expect, it, vi } from "vitest";
import { RawHttp2Connection } from "../../test-harness/src/raw-http2.js";
import { idempotency, webhook } from "../src/index.js";
import { keepLogs, type LogLine, listen, type Running, SECRET } from "./app.js";

type Protocol = "HTTP/1.1" | "HTTP/2";

let running: Running | undefined;
afterEach(async () => {
  await running?.close();
  running = undefined;
});

let sequence = 0;

/**
 * An async `onRequest` hook that holds the first request until the test lets it go: `reached`
 * gives its Node request once the hook runs. Later requests pass.
 */
function heldOnce() {
  let reach: (request: IncomingMessage | Http2ServerRequest) => void = () => {};
  let release: () => void = () => {};
  const reached = new Promise<IncomingMessage | Http2ServerRequest>((resolve) => {
    reach = resolve;
  });
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  return {
    reached,
    release,
    hook: async (request: { raw: IncomingMessage | Http2ServerRequest }) => {
      reach(request.raw);
      await released;
    },
  };
}

/**
 * Sends the head of a POST announcing 100 bytes of body and `part` of them; `leave` closes the
 * connection (HTTP/1.1) or resets the stream (HTTP/2, RST_STREAM with no END_STREAM before it,
 * as a browser that aborts an upload), `close` lets go of what is left.
 */
async function sendPart(protocol: Protocol, url: string, path: string, headers: Record<string, string>, part: string) {
  const head = { ...headers, "content-length": "100" };
  if (protocol === "HTTP/2") {
    const connection = await RawHttp2Connection.open(url);
    const stream = await connection.request({ method: "POST", path, headers: head }, Buffer.from(part));
    return { leave: () => connection.reset(stream), close: () => connection.close() };
  }
  const socket = connect(Number(new URL(url).port), "127.0.0.1");
  socket.on("error", () => {});
  await once(socket, "connect");
  const lines = Object.entries({ host: "127.0.0.1", ...head }).map(([name, value]) => `${name}: ${value}\r\n`);
  socket.write(`POST ${path} HTTP/1.1\r\n${lines.join("")}\r\n${part}`);
  return {
    leave: async () => {
      socket.destroy();
    },
    close: async () => {},
  };
}

/** The client sends part of the body, then leaves while the hook holds its request; the hook lets go once the request has closed. */
async function leaveWhileHeld(
  protocol: Protocol,
  held: ReturnType<typeof heldOnce>,
  path: string,
  headers: Record<string, string>,
  part: string,
) {
  const client = await sendPart(protocol, (running as Running).url, path, headers, part);
  const request = await held.reached;
  // Not `events.once`, whose `error` listener would make the request emit its "aborted" error.
  const closed = new Promise((resolve) => request.once("close", resolve));
  await client.leave();
  await closed;
  held.release();
  return client;
}

/** A client for the retry, over the protocol the app speaks. */
function retryClient(protocol: Protocol) {
  return protocol === "HTTP/2"
    ? withClient((running as Running).url, async () => {})
    : { fetch, close: async () => {} };
}

const serverOptions = (protocol: Protocol, logs: LogLine[]): FastifyServerOptions => ({
  ...keepLogs(logs),
  ...(protocol === "HTTP/2" ? ({ http2: true } as FastifyServerOptions) : {}),
});

/**
 * The log lines with an error: Interlock's one, at info, as Fastify logs a client's abort, none at
 * warn or above. (Its status is `onError`'s to check: with `onError`, the answer goes out after
 * the line is written.)
 */
function expectLoggedAtInfo(logs: LogLine[]) {
  expect(logs.filter((line) => line.err !== undefined)).toMatchObject([
    { level: 30, err: { code: "body_incomplete" } },
  ]);
  expect(logs.filter((line) => line.level >= 40)).toEqual([]);
}

describe.each<Protocol>(["HTTP/1.1", "HTTP/2"])(
  "a client that leaves mid-body during an async onRequest hook, over %s",
  (protocol) => {
    it("webhook(): 400 body_incomplete through onError and webhook.rejected, logged at info, not 500 body_not_raw; the redelivery is processed", async () => {
      const events: InterlockEvent[] = [];
      const refusals: Array<[number, string]> = [];
      const logs: LogLine[] = [];
      const held = heldOnce();
      const handled: string[] = [];
      running = await listen(
        (app) => {
          app.addHook("onRequest", held.hook);
          const hooks = webhook({
            scheme: standardWebhooks,
            secret: SECRET,
            store: new MemoryStore(),
            onEvent: (event) => void events.push(event),
            onError: (decision) => void refusals.push([decision.error.status, decision.error.code]),
          });
          app.post("/hook", { config: { interlock: hooks } }, async (request) => {
            handled.push(request.webhook!.id as string);
            return { id: request.webhook!.id };
          });
        },
        serverOptions(protocol, logs),
      );
      const body = '{"type":"invoice.paid","amount":4200}';
      const id = `msg_left_${++sequence}`;
      const signed = await signWebhook({ scheme: standardWebhooks, secret: SECRET, body, id });
      const headers = { ...(signed.headers as Record<string, string>), "content-type": "application/json" };

      const client = await leaveWhileHeld(protocol, held, "/hook", headers, body.slice(0, 9));
      try {
        await vi.waitFor(() => expect(refusals).toHaveLength(1));
        expect(refusals).toEqual([[400, "body_incomplete"]]);
        expect(events.map((e) => (e.type === "webhook.rejected" ? e.code : e.type))).toEqual(["body_incomplete"]);
        await vi.waitFor(() => expect(logs.filter((line) => line.err !== undefined)).toHaveLength(1));
        expectLoggedAtInfo(logs);
        expect(handled).toEqual([]);
      } finally {
        await client.close();
      }

      const retry = retryClient(protocol);
      try {
        const redelivery = await retry.fetch(`${running.url}/hook`, { method: "POST", headers, body });
        expect([redelivery.status, await redelivery.json()]).toEqual([200, { id }]);
        expect(handled).toEqual([id]);
      } finally {
        await retry.close();
      }
    });

    it("idempotency(): 400 body_incomplete through onError and idempotency.rejected, logged at info, not 500 body_not_raw; nothing claimed, the retry runs", async () => {
      const events: InterlockEvent[] = [];
      const refusals: Array<[number, string]> = [];
      const logs: LogLine[] = [];
      const held = heldOnce();
      let calls = 0;
      running = await listen(
        (app) => {
          app.addHook("onRequest", held.hook);
          const hooks = idempotency({
            store: new MemoryStore(),
            principal: false,
            onEvent: (event) => void events.push(event),
            onError: (decision) => void refusals.push([decision.error.status, decision.error.code]),
          });
          app.post("/pay", { config: { interlock: hooks } }, async (_request, reply) =>
            reply.code(201).send({ calls: ++calls }),
          );
        },
        serverOptions(protocol, logs),
      );
      const key = `key_left_${++sequence}`;
      const headers = { "content-type": "application/json", "idempotency-key": key };
      const body = '{"amount":4200}';

      const client = await leaveWhileHeld(protocol, held, "/pay", headers, body.slice(0, 10));
      try {
        await vi.waitFor(() => expect(refusals).toHaveLength(1));
        expect(refusals).toEqual([[400, "body_incomplete"]]);
        expect(events.map((e) => (e.type === "idempotency.rejected" ? e.code : e.type))).toEqual(["body_incomplete"]);
        await vi.waitFor(() => expect(logs.filter((line) => line.err !== undefined)).toHaveLength(1));
        expectLoggedAtInfo(logs);
        expect(calls).toBe(0);
      } finally {
        await client.close();
      }

      const retry = retryClient(protocol);
      try {
        const answer = await retry.fetch(`${running.url}/pay`, { method: "POST", headers, body });
        expect([answer.status, await answer.json(), answer.headers.get("idempotent-replayed")]).toEqual([
          201,
          { calls: 1 },
          null,
        ]);
      } finally {
        await retry.close();
      }
    });
  },
);
