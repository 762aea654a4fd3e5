/**
 * A client that leaves mid-body while an async middleware before Interlock's runs (an
 * authentication lookup, a rate limiter): by the time `webhook()` or `idempotency()` reads the
 * body, its request is over (HTTP/1.1: destroyed, its `close` fired; HTTP/2: its stream reset,
 * the request then ended as if complete). A client's doing: 400 `body_incomplete` at once,
 * through `onError` and the `*.rejected` event, nothing claimed; never a read that waits forever
 * for an end that will not come, nor the 500 `body_not_raw` of a parser that read the body.
 */

import { createServer } from "node:http2";
import { MemoryStore, standardWebhooks } from "@interlock/core";
import { serveHttp2 } from "@interlock/test-harness/http2";
import { holdFirst, leaveWhileHeld, type Protocol, reports } from "@interlock/test-harness/left-before-read";
import Koa, { type Middleware } from "koa";
import { afterEach, describe, expect, it, vi } from "vitest";
import { idempotency, webhook } from "../src/index.js";
import { type Served, serve } from "./serve.js";
import { delivery, newId, route, SECRET, watchErrors } from "./support.js";

let served: (Served & { fetch?: typeof fetch }) | undefined;
afterEach(async () => {
  await served?.close();
  served = undefined;
});

/**
 * An async middleware that holds the first request until the test lets it go: `reached` gives
 * its Node request once it runs. Later requests pass.
 */
function heldOnce() {
  const gate = holdFirst();
  const middleware: Middleware = async (ctx, next) => {
    await gate.hold(ctx.req);
    await next();
  };
  return { ...gate, middleware };
}

/** Serves `app` over `protocol`, with a `fetch` that speaks it. */
async function serveOver(protocol: Protocol, app: Koa) {
  served = protocol === "HTTP/2" ? await serveHttp2(createServer(app.callback())) : await serve(app);
  return { url: served.url, fetch: served.fetch ?? fetch };
}

describe.each<Protocol>(["HTTP/1.1", "HTTP/2"])(
  "a client that leaves mid-body during an async middleware before Interlock's, over %s",
  (protocol) => {
    it("webhook(): 400 body_incomplete through onError and webhook.rejected; nothing runs, the redelivery is processed", async () => {
      const { events, refusals, onEvent, onError } = reports();
      const errors: unknown[] = [];
      const handled: string[] = [];
      const held = heldOnce();
      const app = new Koa();
      app.silent = true;
      app.use(held.middleware);
      app.use(watchErrors(errors));
      const verify = webhook({
        scheme: standardWebhooks,
        secret: SECRET,
        store: new MemoryStore(),
        onEvent,
        onError,
      });
      app.use(
        route("POST", "/webhooks", verify, (ctx: Koa.Context) => {
          handled.push(ctx.state.webhook.id);
          ctx.body = { received: ctx.state.webhook.id };
        }),
      );
      const { url, fetch: send } = await serveOver(protocol, app);
      const text = '{"type":"invoice.paid","amount":4200}';
      const d = await delivery(text);

      const client = await leaveWhileHeld(protocol, url, held, "/webhooks", d.headers, text.slice(0, 9));
      await client.close();
      await vi.waitFor(() => expect(refusals).toHaveLength(1));
      expect(refusals).toEqual([[400, "body_incomplete"]]);
      expect(events).toEqual([expect.objectContaining({ type: "webhook.rejected", code: "body_incomplete" })]);
      expect([handled, errors]).toEqual([[], []]);

      const redelivery = await send(`${url}/webhooks`, { method: "POST", headers: d.headers, body: text });
      expect([redelivery.status, await redelivery.json()]).toEqual([200, { received: d.id }]);
    });

    it("idempotency(): 400 body_incomplete through onError and idempotency.rejected; nothing claimed, the retry runs", async () => {
      const { events, refusals, onEvent, onError } = reports();
      const errors: unknown[] = [];
      const held = heldOnce();
      let runs = 0;
      const app = new Koa();
      app.silent = true;
      app.use(held.middleware);
      app.use(watchErrors(errors));
      const idem = idempotency({
        store: new MemoryStore(),
        principal: false,
        onEvent,
        onError,
      });
      app.use(
        route("POST", "/payments", idem, (ctx: Koa.Context) => {
          ctx.status = 201;
          ctx.body = { run: ++runs };
        }),
      );
      const { url, fetch: send } = await serveOver(protocol, app);
      const headers = { "content-type": "application/json", "idempotency-key": newId("key") };
      const body = '{"amount":4200}';

      const client = await leaveWhileHeld(protocol, url, held, "/payments", headers, body.slice(0, 9));
      await client.close();
      await vi.waitFor(() => expect(refusals).toHaveLength(1));
      expect(refusals).toEqual([[400, "body_incomplete"]]);
      expect(events).toEqual([expect.objectContaining({ type: "idempotency.rejected", code: "body_incomplete" })]);
      expect([runs, errors]).toEqual([0, []]);

      const retry = await send(`${url}/payments`, { method: "POST", headers, body });
      expect([retry.status, await retry.json(), retry.headers.get("idempotent-replayed")]).toEqual([
        201,
        { run: 1 },
        null,
      ]);
    });
  },
);
