/**
 * A handler that throws after it began its answer on `ctx.res` itself (`ctx.respond = false`).
 * Koa leaves that response open, with or without Interlock: once the headers are out, its
 * `ctx.onerror` only emits the error ("nothing we can do here other than delegate to the
 * app-level handler and log"), and `respond()` skips a context with `ctx.respond = false`. The
 * answer is the app's, as Koa documents for a bypassed response. Interlock changes nothing of
 * it: the key or the delivery is released at once, the error goes on to the app's error
 * middleware, and an app that destroys the response there gets it closed.
 */
import type { InterlockEvent } from "@interlock/core";
import { MemoryStore, standardWebhooks } from "@interlock/core";
import Koa, { type Middleware } from "koa";
import { afterEach, describe, expect, it, vi } from "vitest";
import { idempotency, webhook } from "../src/index.js";
import { type Served, serve } from "./serve.js";
import { delivery, newId, route, SECRET } from "./support.js";

let served: Served | undefined;
afterEach(async () => {
  await served?.close(); // closes the responses left open too
  served = undefined;
});

/** A request the route's middleware (none, or one of Interlock's) runs for, and what it tells of its release. */
interface Guarded {
  request: () => Promise<{ headers: Record<string, string>; body: string }>;
  /** Whether what the middleware claimed was released, from its events. */
  released: (events: InterlockEvent[]) => boolean;
}

const guards: Record<string, Guarded> = {
  "no Interlock": {
    request: async () => ({ headers: { "content-type": "application/json" }, body: "{}" }),
    released: () => true,
  },
  "idempotency()": {
    request: async () => ({
      headers: { "content-type": "application/json", "idempotency-key": newId("key") },
      body: "{}",
    }),
    released: (events) => events.some((e) => e.type === "idempotency.released"),
  },
  "webhook()": {
    request: async () => {
      const d = await delivery('{"type":"x"}');
      return { headers: d.headers, body: Buffer.from(d.body).toString() };
    },
    released: (events) => events.some((e) => e.type === "webhook.handler_failed"),
  },
};

/**
 * An app whose route runs `name`'s middleware, then a handler that writes its head and a first
 * chunk on `ctx.res` and throws; behind the app's error middleware, which `onHeaderSent` lets
 * act on a response whose head went out.
 */
async function start(name: string, onHeaderSent: (res: Koa.Context["res"]) => void) {
  const events: InterlockEvent[] = [];
  const state = { calls: 0, errors: [] as unknown[] };
  const onEvent = (event: InterlockEvent) => events.push(event);
  const store = new MemoryStore();
  // biome-ignore lint/suspicious/noExplicitAny: Interlock's middleware of either kind, on one route.
  const middleware: Middleware<any, any>[] =
    name === "idempotency()"
      ? [idempotency({ store, principal: false, onEvent })]
      : name === "webhook()"
        ? [webhook({ scheme: standardWebhooks, secret: SECRET, store, onEvent })]
        : [];
  const app = new Koa();
  app.silent = true;
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      state.errors.push(error);
      if (ctx.headerSent) onHeaderSent(ctx.res);
      else {
        ctx.status = 500;
        ctx.body = { error: "handler failed" };
      }
    }
  });
  app.use(
    route("POST", "/work", ...middleware, async (ctx) => {
      state.calls++;
      ctx.respond = false;
      ctx.res.writeHead(200, { "content-type": "text/plain" });
      ctx.res.write("partial ");
      throw new Error("failed mid-answer");
    }),
  );
  served = await serve(app);
  return { events, state };
}

const send = (request: { headers: Record<string, string>; body: string }, timeoutMs: number) =>
  fetch(`${served?.url}/work`, { method: "POST", ...request, signal: AbortSignal.timeout(timeoutMs) });

describe.each(Object.keys(guards))("a handler that throws after writing its head itself (%s)", (name) => {
  const guard = guards[name] as Guarded;

  it("an app that leaves the response alone: Koa leaves it open, as without Interlock; released at once", async () => {
    const { events, state } = await start(name, () => {});
    const response = await send(await guard.request(), 400);
    expect(response.status).toBe(200);
    await expect(response.text()).rejects.toMatchObject({ name: "TimeoutError" });
    expect(state.errors).toHaveLength(1);
    expect(guard.released(events)).toBe(true);
  });

  it("an app whose error middleware destroys it: the client sees the connection close, the retry runs again", async () => {
    const { state } = await start(name, (res) => res.destroy());
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
    expect(state.errors).toHaveLength(2);
  });
});
