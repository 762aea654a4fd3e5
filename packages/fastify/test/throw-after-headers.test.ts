/**
 * A handler that throws after hijacking its reply and writing its head on `reply.raw`. Fastify
 * leaves that response open, with or without Interlock: it runs no hook and no error handler
 * for a hijacked reply, only logs "Promise errored, but reply.sent = true was set" (an async
 * handler) or "Reply was already sent" (a sync one); by hijacking, its docs say, "an application
 * claims full responsibility for the low-level request and response". Interlock changes nothing
 * of it: the key or the delivery is released at once (from Fastify's diagnostics channel), and
 * a handler that destroys its response when it fails gets it closed.
 */
import { type InterlockEvent, MemoryStore, signWebhook, standardWebhooks } from "@interlock/core";
import type { FastifyReply } from "fastify";
import { afterEach, describe, expect, it, vi } from "vitest";
import { idempotency, webhook } from "../src/index.js";
import { listen, type Running, SECRET } from "./app.js";

let running: Running | undefined;
afterEach(async () => {
  running?.app.server.closeAllConnections(); // the responses left open, which closing would wait for
  await running?.close();
  running = undefined;
});

let sequence = 0;

/** A request the route's sets (none, or one of Interlock's) run for, and whether what they claimed was released. */
interface Guarded {
  sets: (onEvent: (event: InterlockEvent) => void) => ReturnType<typeof webhook> | undefined;
  request: () => Promise<{ headers: Record<string, string>; body: string }>;
  released: (events: InterlockEvent[]) => boolean;
}

const guards: Record<string, Guarded> = {
  "no Interlock": {
    sets: () => undefined,
    request: async () => ({ headers: { "content-type": "application/json" }, body: "{}" }),
    released: () => true,
  },
  "idempotency()": {
    sets: (onEvent) => idempotency({ store: new MemoryStore(), principal: false, onEvent }),
    request: async () => ({
      headers: { "content-type": "application/json", "idempotency-key": `key_${++sequence}` },
      body: "{}",
    }),
    released: (events) => events.some((e) => e.type === "idempotency.released"),
  },
  "webhook()": {
    sets: (onEvent) => webhook({ scheme: standardWebhooks, secret: SECRET, store: new MemoryStore(), onEvent }),
    request: async () => {
      const body = '{"type":"x"}';
      const signed = await signWebhook({ scheme: standardWebhooks, secret: SECRET, body, id: `msg_${++sequence}` });
      return { headers: { ...signed.headers, "content-type": "application/json" }, body };
    },
    released: (events) => events.some((e) => e.type === "webhook.handler_failed"),
  },
};

type Mode = "sync" | "async";

/** Writes the head and a first chunk on the hijacked reply, then fails; `onFailure` is what the handler does about it. */
async function start(name: string, mode: Mode, onFailure: (reply: FastifyReply) => void) {
  const events: InterlockEvent[] = [];
  const state = { calls: 0 };
  const sets = (guards[name] as Guarded).sets((event) => events.push(event));
  const fail = (reply: FastifyReply) => {
    state.calls++;
    reply.hijack();
    reply.raw.writeHead(200, { "content-type": "text/plain" });
    reply.raw.write("partial ");
    const error = new Error("failed mid-answer");
    onFailure(reply);
    throw error;
  };
  running = await listen((app) => {
    const config = sets ? { config: { interlock: sets } } : {};
    if (mode === "sync") app.post("/work", config, (_request, reply) => fail(reply));
    else
      app.post("/work", config, async (_request, reply) => {
        await new Promise((resolve) => setTimeout(resolve, 5));
        fail(reply);
      });
  });
  return { events, state };
}

const send = (request: { headers: Record<string, string>; body: string }, timeoutMs: number) =>
  fetch(`${running?.url}/work`, { method: "POST", ...request, signal: AbortSignal.timeout(timeoutMs) });

describe.each(Object.keys(guards).flatMap((name) => (["sync", "async"] as const).map((mode) => [name, mode])))(
  "a handler that throws after hijacking its reply and writing its head (%s, %s)",
  (name, mode) => {
    const guard = guards[name] as Guarded;

    it("left as it is: Fastify leaves the response open, as without Interlock; released at once", async () => {
      const { events } = await start(name, mode as Mode, () => {});
      const response = await send(await guard.request(), 400);
      expect(response.status).toBe(200);
      await expect(response.text()).rejects.toMatchObject({ name: "TimeoutError" });
      expect(guard.released(events)).toBe(true);
    });

    it("destroyed by the handler as it fails: the client sees the connection close, the retry runs again", async () => {
      const { state } = await start(name, mode as Mode, (reply) => reply.raw.destroy());
      const request = await guard.request();
      for (let attempt = 1; attempt <= 2; attempt++) {
        // Cut off, not timed out: a network error (a TypeError), before its head arrived or in its body.
        const outcome = await send(request, 2000).then(
          (response) =>
            response.text().then(
              () => "whole",
              (error: Error) => error.name,
            ),
          (error: Error) => error.name,
        );
        expect(outcome).toBe("TypeError");
        await vi.waitFor(() => expect(state.calls).toBe(attempt));
      }
    });
  },
);
