/**
 * A client that leaves mid-body while something asynchronous runs before Interlock reads the
 * body (an async `onRequest` hook: an authentication lookup, `@fastify/rate-limit`): by the time
 * `preParsing` runs, its request is over (HTTP/1.1: destroyed; HTTP/2: reset, then ended as if
 * complete). A client's doing: 400 `body_incomplete`, reported and logged at info as a body cut
 * off while being read is, nothing claimed; never the 500 `body_not_raw` of a hook that consumed
 * the payload.
 */

import { MemoryStore, signWebhook, standardWebhooks } from "@interlock/core";
import { withClient } from "@interlock/test-harness/http2";
import {
  holdFirst,
  leaveWhileHeld,
  type NodeRequest,
  type Protocol,
  reports,
} from "@interlock/test-harness/left-before-read";
import type { FastifyServerOptions } from "fastify";
import { afterEach, describe, expect, it, vi } from "vitest";
import { idempotency, webhook } from "../src/index.js";
import { keepLogs, type LogLine, listen, type Running, SECRET } from "./app.js";

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
  const gate = holdFirst();
  return { ...gate, hook: (request: { raw: NodeRequest }) => gate.hold(request.raw) };
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
      const { events, refusals, onEvent, onError } = reports();
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
            onEvent,
            onError,
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

      const client = await leaveWhileHeld(protocol, running.url, held, "/hook", headers, body.slice(0, 9));
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
      const { events, refusals, onEvent, onError } = reports();
      const logs: LogLine[] = [];
      const held = heldOnce();
      let calls = 0;
      running = await listen(
        (app) => {
          app.addHook("onRequest", held.hook);
          const hooks = idempotency({
            store: new MemoryStore(),
            principal: false,
            onEvent,
            onError,
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

      const client = await leaveWhileHeld(protocol, running.url, held, "/pay", headers, body.slice(0, 10));
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
