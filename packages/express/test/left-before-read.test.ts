/**
 * A client that leaves mid-body while an async middleware before Interlock's runs (an
 * authentication lookup, a rate limiter): by the time `webhook()` or `idempotency()` reads the
 * body, Node has destroyed the request and its `close` has fired. A client's doing: 400
 * `body_incomplete` at once, through `onError` and the `*.rejected` event, nothing claimed;
 * never a read that waits forever for an end that will not come, nor the parsers' 500 for a
 * stream they cannot read.
 */

import { once } from "node:events";
import type { IncomingMessage } from "node:http";
import { connect } from "node:net";
import { type InterlockEvent, MemoryStore, standardWebhooks } from "@interlock/core";
import express, { type ErrorRequestHandler, type RequestHandler } from "express";
import { afterEach, describe, expect, it, vi } from "vitest";
import { idempotency, webhook } from "../src/index.js";
import { listen, type Running, SECRET, send, signed } from "./helpers.js";

const running: Running[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((app) => app.close()));
});

let sequence = 0;

/**
 * An async middleware that holds the first request until the test lets it go: `reached` gives
 * the request once it runs. Later requests pass.
 */
function heldOnce() {
  let reach: (req: IncomingMessage) => void = () => {};
  let release: () => void = () => {};
  const reached = new Promise<IncomingMessage>((resolve) => {
    reach = resolve;
  });
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const middleware: RequestHandler = async (req, _res, next) => {
    reach(req);
    await released;
    next();
  };
  return { reached, release, middleware };
}

/** What reached Express's error handlers: nothing should. */
const watchErrors =
  (errors: unknown[]): ErrorRequestHandler =>
  (error, _req, res, _next) => {
    errors.push(error);
    res.status(500).json({ error: (error as Error).message });
  };

/**
 * Sends the head of a POST announcing 100 bytes of body and `part` of them on a raw connection,
 * then, once `held` has the request, closes the connection; `held` lets go once the request has
 * closed.
 */
async function leaveWhileHeld(
  url: string,
  held: ReturnType<typeof heldOnce>,
  path: string,
  headers: Record<string, string>,
  part: string,
): Promise<void> {
  const socket = connect(Number(new URL(url).port), "127.0.0.1");
  socket.on("error", () => {});
  await once(socket, "connect");
  const lines = Object.entries({ host: "127.0.0.1", "content-length": "100", ...headers }).map(
    ([name, value]) => `${name}: ${value}\r\n`,
  );
  socket.write(`POST ${path} HTTP/1.1\r\n${lines.join("")}\r\n${part}`);
  const req = await held.reached;
  const closed = new Promise((resolve) => req.once("close", resolve));
  socket.destroy();
  await closed;
  held.release();
}

describe("a client that leaves mid-body during an async middleware before Interlock's", () => {
  it("webhook(): 400 body_incomplete through onError and webhook.rejected; the route never runs, the redelivery is processed", async () => {
    const events: InterlockEvent[] = [];
    const refusals: Array<[number, string]> = [];
    const errors: unknown[] = [];
    const held = heldOnce();
    let runs = 0;
    const app = express();
    app.use(held.middleware);
    const verify = webhook({
      scheme: standardWebhooks,
      secret: SECRET,
      store: new MemoryStore(),
      onEvent: (event) => void events.push(event),
      onError: (decision) => void refusals.push([decision.error.status, decision.error.code]),
    });
    app.post("/webhooks", verify, (req, res) => void res.json({ id: req.webhook?.id, run: ++runs }));
    app.use(watchErrors(errors));
    const server = await listen(app);
    running.push(server);
    const text = '{"type":"invoice.paid","amount":4200}';
    const d = await signed(text);

    await leaveWhileHeld(server.url, held, "/webhooks", d.headers, text.slice(0, 9));
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
      const events: InterlockEvent[] = [];
      const refusals: Array<[number, string]> = [];
      const errors: unknown[] = [];
      const held = heldOnce();
      let runs = 0;
      const app = express();
      app.use(held.middleware);
      const idem = idempotency({
        store: new MemoryStore(),
        principal: false,
        onEvent: (event) => void events.push(event),
        onError: (decision) => void refusals.push([decision.error.status, decision.error.code]),
      });
      app.post("/pay", idem, (_req, res) => void res.status(201).json({ run: ++runs }));
      app.use(watchErrors(errors));
      const server = await listen(app);
      running.push(server);
      const key = `key_left_${++sequence}`;
      const headers = { "content-type": type, "idempotency-key": key };
      const body = type === "application/json" ? '{"amount":4200}' : "<amount>4200</amount>";

      await leaveWhileHeld(server.url, held, "/pay", headers, body.slice(0, 9));
      await vi.waitFor(() => expect(refusals).toHaveLength(1));
      expect(refusals).toEqual([[400, "body_incomplete"]]);
      expect(events).toEqual([expect.objectContaining({ type: "idempotency.rejected", code: "body_incomplete" })]);
      expect([runs, errors]).toEqual([0, []]);

      const retry = await send(`${server.url}/pay`, { headers, body });
      expect([retry.status, retry.json(), retry.headers["idempotent-replayed"]]).toEqual([201, { run: 1 }, undefined]);
    },
  );
});
