// Boots the Prometheus example on 127.0.0.1:0, sends it Stripe deliveries and payment requests
// over real HTTP, then scrapes /metrics as Prometheus would and checks every Interlock series.
import { type InterlockStore, memoryStore, signWebhook, stripe } from "@interlock/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { itAnswersEveryPaymentBody } from "../payments-api.js";
import { start } from "./server.mjs";

const STRIPE_SECRET = "whsec_example_prometheus";
let app: { url: string; close(): Promise<void> };

beforeAll(async () => {
  app = await start({ port: 0, host: "127.0.0.1", stripeSecret: STRIPE_SECRET });
});
afterAll(() => app?.close());

/** One sample line of the text exposition format: `name{label="value",…} value`. */
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

type Labels = Record<string, string>;

/** A series' key, as `samples` makes them: `name{a="1",b="2"}`, labels sorted. */
const series = (name: string, labels: Labels) =>
  `${name}{${Object.entries(labels)
    .map(([label, value]) => `${label}="${value}"`)
    .sort()
    .join(",")}}`;

/** Every sample whose name starts with `prefix`, keyed `name{a="1",b="2"}` with labels sorted. */
function samples(text: string, prefix: string): Record<string, number> {
  const found: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const match = SAMPLE.exec(line);
    if (!match?.[1]?.startsWith(prefix)) continue;
    const labels = [...(match[2] ?? "").matchAll(LABEL)].map(([, name, value]) => `${name}="${value}"`).sort();
    found[`${match[1]}{${labels.join(",")}}`] = Number(match[3]);
  }
  return found;
}

async function scrape() {
  const response = await fetch(`${app.url}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return response.text();
}

describe("GET /metrics", () => {
  it("counts verifications, deliveries and idempotency outcomes, and times handlers and the store", async () => {
    const body = JSON.stringify({ id: "evt_1", object: "event", type: "checkout.session.completed" });
    const signed = await signWebhook({ scheme: stripe, secret: STRIPE_SECRET, body });
    const deliver = (payload: string, headers = signed.headers) =>
      fetch(`${app.url}/webhooks/stripe`, { method: "POST", headers, body: payload });
    expect((await deliver(body)).status).toBe(200);
    expect(await (await deliver(body)).json()).toEqual({ duplicate: true, id: "evt_1" });
    expect((await deliver(body.replace("completed", "expired"))).status).toBe(401);
    const stale = await signWebhook({
      scheme: stripe,
      secret: STRIPE_SECRET,
      body,
      timestamp: Math.floor(Date.now() / 1000) - 600,
    });
    expect((await deliver(body, stale.headers)).status).toBe(401);

    const pay = (amount: number, key?: string) =>
      fetch(`${app.url}/payments`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-api-key": "sk_test_7",
          ...(key === undefined ? {} : { "idempotency-key": key }),
        },
        body: JSON.stringify({ amount }),
      });
    expect((await pay(4200, "order-1")).status).toBe(201);
    const replay = await pay(4200, "order-1");
    expect([replay.status, replay.headers.get("idempotent-replayed")]).toEqual([201, "true"]);
    expect((await pay(9900, "order-1")).status).toBe(422);
    expect((await pay(4200)).status).toBe(400);
    expect((await pay(-1, "order-2")).status).toBe(400);

    const text = await scrape();
    const stripeDelivery = (labels: Labels) => ({ scheme: "stripe", ...labels });
    const payments = (labels: Labels) => ({ method: "POST", route: "/payments", ...labels });
    const expectSeries = (name: string, expected: Array<[Labels, number]>) =>
      expect(samples(text, name)).toEqual(
        Object.fromEntries(expected.map(([labels, value]) => [series(name, labels), value])),
      );

    expectSeries("interlock_webhook_verifications_total", [
      [stripeDelivery({ outcome: "verified" }), 2],
      [stripeDelivery({ outcome: "rejected", code: "no_matching_signature" }), 1],
      [stripeDelivery({ outcome: "rejected", code: "timestamp_too_old" }), 1],
    ]);
    expectSeries("interlock_webhook_deliveries_total", [
      [stripeDelivery({ outcome: "processed", recorded: "true" }), 1],
      [stripeDelivery({ outcome: "duplicate" }), 1],
      [stripeDelivery({ outcome: "rejected" }), 2],
    ]);
    expectSeries("interlock_idempotency_outcomes_total", [
      [payments({ outcome: "first" }), 2],
      [payments({ outcome: "completed" }), 2],
      [payments({ outcome: "replayed" }), 1],
      [payments({ outcome: "mismatch" }), 1],
      [payments({ outcome: "rejected", reason: "idempotency_key_missing" }), 1],
    ]);
    // Histograms: how many observations each series has.
    expectSeries("interlock_webhook_verification_duration_seconds_count", [
      [stripeDelivery({ outcome: "verified" }), 2],
      [stripeDelivery({ outcome: "rejected" }), 2],
    ]);
    expectSeries("interlock_webhook_handler_duration_seconds_count", [[stripeDelivery({ outcome: "processed" }), 1]]);
    expectSeries("interlock_idempotency_handler_duration_seconds_count", [[payments({ outcome: "completed" }), 2]]);
    expectSeries("interlock_store_duration_seconds_count", [
      [{ component: "webhook", operation: "claim", failed: "false" }, 2],
      [{ component: "webhook", operation: "complete", failed: "false" }, 1],
      [{ component: "idempotency", operation: "claim", failed: "false" }, 4],
      [{ component: "idempotency", operation: "complete", failed: "false" }, 2],
    ]);
    // Each histogram's +Inf bucket holds every observation, and the sums are real durations.
    const buckets = samples(text, "interlock_store_duration_seconds_bucket");
    expect(
      buckets[
        'interlock_store_duration_seconds_bucket{component="idempotency",failed="false",le="+Inf",operation="claim"}'
      ],
    ).toBe(4);
    for (const [series, sum] of Object.entries(samples(text, "interlock_store_duration_seconds_sum"))) {
      expect(sum, series).toBeGreaterThan(0);
    }
    // The process's own metrics come along (collectDefaultMetrics).
    expect(Object.keys(samples(text, "process_cpu_user_seconds_total"))).toHaveLength(1);
  });

  it("reports a delivery and a request whose complete failed as not recorded, and the complete as failed", async () => {
    // The store takes claims and releases, but every complete fails: the delivery is answered 200
    // and the payment 201 all the same, and a redelivery or retry may run them again.
    const down = await start({ port: 0, host: "127.0.0.1", stripeSecret: STRIPE_SECRET, store: completeFails() });
    try {
      const body = JSON.stringify({ id: "evt_unrecorded", object: "event", type: "checkout.session.completed" });
      const signed = await signWebhook({ scheme: stripe, secret: STRIPE_SECRET, body });
      const delivered = await fetch(`${down.url}/webhooks/stripe`, { method: "POST", headers: signed.headers, body });
      expect(delivered.status).toBe(200);
      const paid = await fetch(`${down.url}/payments`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-api-key": "sk_test_7", "idempotency-key": "order-9" },
        body: JSON.stringify({ amount: 4200 }),
      });
      expect(paid.status).toBe(201);

      const text = await (await fetch(`${down.url}/metrics`)).text();
      const expectSeries = (name: string, expected: Array<[Labels, number]>) =>
        expect(samples(text, name)).toEqual(
          Object.fromEntries(expected.map(([labels, value]) => [series(name, labels), value])),
        );
      expectSeries("interlock_webhook_deliveries_total", [
        [{ scheme: "stripe", outcome: "processed", recorded: "false" }, 1],
      ]);
      // One request that ran: first, then not_recorded; and the failed store call, store_unavailable.
      expectSeries("interlock_idempotency_outcomes_total", [
        [{ method: "POST", route: "/payments", outcome: "first" }, 1],
        [{ method: "POST", route: "/payments", outcome: "not_recorded", reason: "store_error" }, 1],
        [{ method: "POST", route: "/payments", outcome: "store_unavailable", reason: "complete" }, 1],
      ]);
      expectSeries("interlock_store_duration_seconds_count", [
        [{ component: "webhook", operation: "claim", failed: "false" }, 1],
        [{ component: "webhook", operation: "complete", failed: "true" }, 1],
        [{ component: "idempotency", operation: "claim", failed: "false" }, 1],
        [{ component: "idempotency", operation: "complete", failed: "true" }, 1],
      ]);
    } finally {
      await down.close();
    }
  });

  it("counts from zero per app: another app has its own registry", async () => {
    const other = await start({ port: 0, host: "127.0.0.1", stripeSecret: STRIPE_SECRET });
    try {
      const text = await (await fetch(`${other.url}/metrics`)).text();
      expect(samples(text, "interlock_")).toEqual({});
      expect(text).toContain("# TYPE interlock_webhook_verifications_total counter");
    } finally {
      await other.close();
    }
  });
});

describe("the app's own refusals", () => {
  const pay = (key: string, body: BodyInit | null, headers: Record<string, string> = {}) =>
    fetch(`${app.url}/payments`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": "sk_test_7", "idempotency-key": key, ...headers },
      body,
    });

  const expectProblem = async (response: Response, status: number, code: string) => {
    expect(response.status).toBe(status);
    expect(response.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(await response.json()).toMatchObject({ status, code });
  };

  // The table every example is held to; this app's payment has no currency, which its
  // invalid_payment leaves out. It keeps no payments: one made is told by its 201.
  itAnswersEveryPaymentBody(
    () => ({ url: app.url, headers: { "x-api-key": "sk_test_7" } }),
    "amount must be a positive integer (cents)",
  );

  it("answers a bad amount and a missing API key as problem+json", async () => {
    await expectProblem(await pay("bad-amount", JSON.stringify({ amount: -1 })), 400, "invalid_payment");
    const anonymous = await fetch(`${app.url}/payments`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    await expectProblem(anonymous, 401, "unauthenticated");
  });
});

/** A memory store whose every `complete` fails, as a store that went down after the claim. */
function completeFails(): InterlockStore {
  const store = memoryStore();
  return new Proxy(store, {
    get(target, property) {
      if (property === "complete") return () => Promise.reject(new Error("the store went away"));
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
