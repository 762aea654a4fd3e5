/**
 * A client that leaves mid-body while an async middleware before Interlock's runs (an
 * authentication lookup, a rate limiter): by the time `webhook()` or `idempotency()` reads the
 * body, Node has destroyed the request and its `close` has fired. A client's doing: 400
 * `body_incomplete` at once, through `onError` and the `*.rejected` event, nothing claimed;
 * never a read that waits forever for an end that will not come, nor the parsers' 500 for a
 * stream they cannot read.
 */

import { MemoryStore, standardWebhooks } from "@interlock/core";
import { holdFirst, leaveWhileHeld, reports } from "@interlock/test-harness/left-before-read";
import express, { type ErrorRequestHandler, type Express, type RequestHandler } from "express";
import { afterEach, describe, expect, it, vi } from "vitest";
import { idempotency, webhook } from "../src/index.js";
import { listen, type Running, SECRET, send, signed } from "./helpers.js";

const running: Running[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((app) => app.close()));
});

let sequence = 0;

/** What reached Express's error handlers: nothing should. */
const watchErrors =
  (errors: unknown[]): ErrorRequestHandler =>
  (error, _req, res, _next) => {
    errors.push(error);
    res.status(500).json({ error: (error as Error).message });
  };

/**
 * Serves an app with an async middleware before Interlock's that holds the first request until
 * the test lets it go (`held`; later requests pass), then `route`, then `watchErrors`.
 */
async function serveHeld(route: (app: Express) => void) {
  const held = holdFirst();
  const errors: unknown[] = [];
  const hold: RequestHandler = async (req, _res, next) => {
    await held.hold(req);
    next();
  };
  const app = express();
  app.use(hold);
  route(app);
  app.use(watchErrors(errors));
  const server = await listen(app);
  running.push(server);
  return { server, held, errors };
}

describe("a client that leaves mid-body during an async middleware before Interlock's", () => {
  it("webhook(): 400 body_incomplete through onError and webhook.rejected; the route never runs, the redelivery is processed", async () => {
    const { events, refusals, onEvent, onError } = reports();
    let runs = 0;
    const verify = webhook({
      scheme: standardWebhooks,
      secret: SECRET,
      store: new MemoryStore(),
      onEvent,
      onError,
    });
    const { server, held, errors } = await serveHeld((app) => {
      app.post("/webhooks", verify, (req, res) => void res.json({ id: req.webhook?.id, run: ++runs }));
    });
    const text = '{"type":"invoice.paid","amount":4200}';
    const d = await signed(text);

    await leaveWhileHeld("HTTP/1.1", server.url, held, "/webhooks", d.headers, text.slice(0, 9));
    await vi.waitFor(() => expect(refusals).toHaveLength(1));
    expect(refusals).toEqual([[400, "body_incomplete"]]);
    expect(events).toEqual([expect.objectContaining({ type: "webhook.rejected", code: "body_incomplete" })]);
    expect([runs, errors]).toEqual([0, []]);

    const redelivery = await send(`${server.url}/webhooks`, d);
    expect([redelivery.status, redelivery.json()]).toEqual([200, { id: d.id, run: 1 }]);
  });

  it.each([
    ["application/json", "one Express's parsers read"],
    ["application/xml", "one read raw"],
  ])(
    "idempotency(), a %s body (%s): 400 body_incomplete through onError and idempotency.rejected; nothing claimed, the retry runs",
    async (type) => {
      const { events, refusals, onEvent, onError } = reports();
      let runs = 0;
      const idem = idempotency({
        store: new MemoryStore(),
        principal: false,
        onEvent,
        onError,
      });
      const { server, held, errors } = await serveHeld((app) => {
        app.post("/pay", idem, (_req, res) => void res.status(201).json({ run: ++runs }));
      });
      const key = `key_left_${++sequence}`;
      const headers = { "content-type": type, "idempotency-key": key };
      const body = type === "application/json" ? '{"amount":4200}' : "<amount>4200</amount>";

      await leaveWhileHeld("HTTP/1.1", server.url, held, "/pay", headers, body.slice(0, 9));
      await vi.waitFor(() => expect(refusals).toHaveLength(1));
      expect(refusals).toEqual([[400, "body_incomplete"]]);
      expect(events).toEqual([expect.objectContaining({ type: "idempotency.rejected", code: "body_incomplete" })]);
      expect([runs, errors]).toEqual([0, []]);

      const retry = await send(`${server.url}/pay`, { headers, body });
      expect([retry.status, retry.json(), retry.headers["idempotent-replayed"]]).toEqual([201, { run: 1 }, undefined]);
    },
  );
});
