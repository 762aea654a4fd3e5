/**
 * End to end with Interlock's own Express idempotency middleware: a payment whose response is
 * lost, or whose first attempt times out while the handler is still running, is created exactly
 * once, and the client ends with the stored response marked `Idempotent-Replayed: true`.
 */
import type { AddressInfo } from "node:net";
import { type IdempotencyEvent, type InterlockEvent, MemoryStore } from "@interlock/core";
import { captureRawBody, idempotency, releaseOnError } from "@interlock/express";
import express from "express";
import { afterEach, describe, expect, it } from "vitest";
import { type ClientEvent, createClient } from "../src/index.js";
import { TestClock } from "./helpers/clock.js";
import { startLossyProxy } from "./helpers/proxy.js";
import { settled } from "./helpers/setup.js";

interface Payment {
  id: string;
  amount: number;
}

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
});

/** Serves `app` on 127.0.0.1 until the test ends; its base URL. */
async function listen(app: express.Express): Promise<string> {
  const server = app.listen(0, "127.0.0.1");
  await new Promise<void>((resolve) => server.once("listening", () => resolve()));
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/**
 * The payments API: `POST /payments` behind `idempotency()`, recording each payment it makes.
 * With `hold`, the handler waits for the test's go-ahead before recording anything.
 */
async function paymentsApi(options: { hold?: Promise<void> } = {}) {
  const payments: Payment[] = [];
  const keysSeen: Array<string | undefined> = [];
  const events: IdempotencyEvent[] = [];
  let handlerStarted = () => {};
  const started = new Promise<void>((resolve) => {
    handlerStarted = resolve;
  });
  const completedWaiters: Array<() => void> = [];

  const app = express();
  app.use((req, _res, next) => {
    keysSeen.push(req.get("idempotency-key"));
    next();
  });
  app.use(express.json({ verify: captureRawBody }));
  app.post(
    "/payments",
    idempotency({
      store: new MemoryStore(),
      principal: (request) => request.context.get("authorization"),
      onEvent: (event: InterlockEvent) => {
        events.push(event as IdempotencyEvent);
        if (event.type === "idempotency.completed") for (const done of completedWaiters.splice(0)) done();
      },
    }),
    async (req, res) => {
      handlerStarted();
      await options.hold;
      const payment = { id: `pay_${payments.length + 1}`, amount: (req.body as { amount: number }).amount };
      payments.push(payment);
      res.status(201).location(`/payments/${payment.id}`).json(payment);
    },
  );
  app.use(releaseOnError);

  return {
    url: await listen(app),
    payments,
    keysSeen,
    events,
    started,
    completed: () => new Promise<void>((resolve) => completedWaiters.push(resolve)),
  };
}

const pay = (amount: number): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json", authorization: "Bearer sk_test_42" },
  body: JSON.stringify({ amount }),
});

describe("exactly once, with @interlock/express idempotency()", () => {
  it("the response is lost on the way back: the retry gets the stored response, the payment exists once", async () => {
    const api = await paymentsApi();
    const proxy = await startLossyProxy(api.url, 1);
    closers.push(proxy.close);
    const events: ClientEvent[] = [];
    const client = createClient({ onEvent: (event) => events.push(event) });

    const response = await client(`${proxy.url}/payments`, pay(1000));

    expect(proxy.dropped()).toBe(1);
    expect(response.status).toBe(201);
    expect(response.headers.get("idempotent-replayed")).toBe("true");
    expect(response.headers.get("location")).toBe("/payments/pay_1");
    expect(await response.json()).toEqual({ id: "pay_1", amount: 1000 });
    expect(api.payments).toEqual([{ id: "pay_1", amount: 1000 }]);

    // One key, made by the client, on both attempts; the server ran the handler for the first only.
    expect(api.keysSeen).toHaveLength(2);
    expect(api.keysSeen[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(api.keysSeen[1]).toBe(api.keysSeen[0]);
    expect(api.events.map((e) => e.type)).toEqual([
      "idempotency.first",
      "idempotency.completed",
      "idempotency.replayed",
    ]);
    const attempts = events.filter((e) => e.type === "client.attempt");
    expect(attempts.map((e) => [e.outcome, e.status])).toEqual([
      ["network_error", undefined],
      ["response", 201],
    ]);
  });

  it("the first attempt times out while the handler runs: 409 in flight, a wait of its Retry-After (1 s), then the stored response, both sides on their defaults", async () => {
    // The client's defaults (10 s attempts, 30 s deadline) and the middleware's (60 s lease).
    // When the 409 asked for the lease, the client gave up at once (a 60 s wait cannot fit in
    // the deadline) while the handler went on to make the payment.
    let go = () => {};
    const hold = new Promise<void>((resolve) => {
      go = resolve;
    });
    const api = await paymentsApi({ hold });
    const clock = new TestClock({ auto: false });
    const events: ClientEvent[] = [];
    const client = createClient({
      random: () => 0.5,
      now: clock.now,
      sleep: clock.sleep,
      onEvent: (event) => events.push(event),
    });

    const pending = client(`${api.url}/payments`, pay(2500));
    await api.started;
    await clock.advance(10_000); // attempt 1 times out; the handler is still waiting
    const retryAfterWait = clock.sleepRequested(1000);
    await clock.advance(50); // the backoff: attempt 2 finds the key in flight, 409 + Retry-After: 1
    await retryAfterWait;
    const stored = api.completed();
    go(); // the handler finishes and its response is stored
    await stored;
    await clock.advance(1000); // attempt 3: the stored response
    const response = await pending;

    expect(response.status).toBe(201);
    expect(response.headers.get("idempotent-replayed")).toBe("true");
    expect(await response.json()).toEqual({ id: "pay_1", amount: 2500 });
    expect(api.payments).toHaveLength(1);
    expect(new Set(api.keysSeen).size).toBe(1);
    expect(api.keysSeen).toHaveLength(3);
    const attempts = events.filter((e) => e.type === "client.attempt");
    expect(attempts.map((e) => [e.outcome, e.status])).toEqual([
      ["timeout", undefined],
      ["response", 409],
      ["response", 201],
    ]);
    const retries = events.filter((e) => e.type === "client.retry");
    expect(retries.map((e) => [e.delayMs, e.retryAfterMs])).toEqual([
      [50, undefined],
      [1000, 1000],
    ]);
    expect(api.events.map((e) => e.type)).toEqual([
      "idempotency.first",
      "idempotency.in_flight",
      "idempotency.completed",
      "idempotency.replayed",
    ]);
  });

  it("a multipart upload (FormData) whose response is lost: the retry sends the same bytes and gets the stored response", async () => {
    // The default fingerprint hashes the raw body: a retry whose multipart boundary changed
    // would be another request under the same key (422), not the same one replayed.
    const uploads: string[] = [];
    const app = express();
    app.post(
      "/uploads",
      idempotency({ store: new MemoryStore(), principal: false, lockTtlMs: 60_000 }),
      (_req, res) => {
        uploads.push(`up_${uploads.length + 1}`);
        res.status(201).json({ id: uploads.at(-1) });
      },
    );
    app.use(releaseOnError);
    const proxy = await startLossyProxy(await listen(app), 1);
    closers.push(proxy.close);
    const form = new FormData();
    form.set("title", "report");
    form.set("file", new Blob(["quarterly numbers"], { type: "text/plain" }), "report.txt");

    const response = await createClient()(`${proxy.url}/uploads`, { method: "POST", body: form });

    expect(proxy.dropped()).toBe(1);
    expect(response.status).toBe(201);
    expect(response.headers.get("idempotent-replayed")).toBe("true");
    expect(await response.json()).toEqual({ id: "up_1" });
    expect(uploads).toEqual(["up_1"]);
  });

  it("control: without an Idempotency-Key the POST is not retried; the payment was made but the caller never learns it", async () => {
    const api = await paymentsApi();
    const proxy = await startLossyProxy(api.url, 1);
    closers.push(proxy.close);
    const client = createClient({ idempotencyKey: false });

    const { error } = await settled(client(`${proxy.url}/payments`, pay(700)));

    expect(error).toBeInstanceOf(TypeError); // fetch's network error, as plain fetch would give it
    expect(api.keysSeen).toEqual([undefined]);
    expect(api.payments).toEqual([{ id: "pay_1", amount: 700 }]);
  });
});
