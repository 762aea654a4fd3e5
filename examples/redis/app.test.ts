// Boots two instances of the Redis example on 127.0.0.1:0, sharing one real Redis (a throwaway
// redis-server, or REDIS_URL), and drives them over real HTTP: what one instance did, the other
// knows. No Redis installed fails the test with install advice; it never skips.
import { randomUUID } from "node:crypto";
import { signWebhook, stripe } from "@interlock/core";
import { type RedisServer, startRedis } from "@interlock/test-harness";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { itAnswersEveryPaymentBody } from "../payments-api.js";
import { memoryDb } from "./app.mjs";
import { start } from "./server.mjs";

const STRIPE_SECRET = "whsec_example_redis";
const API_KEY = "sk_test_shop_7";
const prefix = `example-redis-${randomUUID()}:`; // a run of its own, also on a shared REDIS_URL
const db = memoryDb(); // the database both instances share
let redis: RedisServer;
let a: { url: string; close(): Promise<void> };
let b: { url: string; close(): Promise<void> };

beforeAll(async () => {
  redis = await startRedis();
  const options = {
    redisUrl: redis.url,
    prefix,
    port: 0,
    host: "127.0.0.1",
    stripeSecret: STRIPE_SECRET,
    apiKeys: new Map([[API_KEY, "acct_shop_7"]]),
    db,
  };
  [a, b] = await Promise.all([start(options), start(options)]);
}, 30_000);
afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
  if (redis?.external) {
    // A shared REDIS_URL: leave it as it was (the records would expire, but only in days).
    const client = new Redis(redis.url);
    const keys = await client.keys(`${prefix}*`);
    if (keys.length > 0) await client.del(...keys);
    client.disconnect();
  }
  await redis?.stop();
});

describe("Stripe webhooks on two instances", () => {
  const event = JSON.stringify({ id: "evt_1042", object: "event", type: "checkout.session.completed" });
  const deliver = (url: string, headers: Record<string, string>, body: string | Uint8Array) =>
    fetch(`${url}/webhooks/stripe`, { method: "POST", headers, body });

  it("processes a delivery once, whichever instance its redelivery reaches; refuses a tampered one", async () => {
    const signed = await signWebhook({ scheme: stripe, secret: STRIPE_SECRET, body: event });

    const first = await deliver(a.url, signed.headers, signed.body);
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({ received: "evt_1042" });

    const again = await deliver(b.url, signed.headers, signed.body);
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ duplicate: true, id: "evt_1042" });
    expect(db.fulfilled).toEqual(["evt_1042"]);

    const tampered = await deliver(b.url, signed.headers, event.replace("completed", "expired"));
    expect(tampered.status).toBe(401);
    expect(tampered.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(await tampered.json()).toMatchObject({ status: 401, code: "no_matching_signature" });
  });
});

describe("POST /payments on two instances", () => {
  const pay = (url: string, body: unknown) =>
    fetch(`${url}/payments`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json", "idempotency-key": "order-1" },
      body: JSON.stringify(body),
    });

  it("creates a payment once: the retry on the other instance is a replay, another body is 422", async () => {
    const first = await pay(a.url, { amount: 4200, currency: "eur" });
    expect(first.status).toBe(201);
    const created = await first.text();
    const payment = JSON.parse(created);

    const retry = await pay(b.url, { amount: 4200, currency: "eur" });
    expect(retry.status).toBe(201);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(retry.headers.get("location")).toBe(`/payments/${payment.id}`);
    expect(await retry.text()).toBe(created);

    const other = await pay(b.url, { amount: 9900, currency: "eur" });
    expect(other.status).toBe(422);
    expect(other.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(await other.json()).toMatchObject({ code: "idempotency_key_mismatch" });
    expect([...db.payments.keys()]).toEqual([payment.id]);
  });

  it("keeps its records in Redis, under the app's prefix", async () => {
    const client = new Redis(redis.url);
    try {
      const keys = await client.keys(`${prefix}*`);
      expect(keys.length).toBeGreaterThanOrEqual(2); // the delivery and the payment's key
      const states = await Promise.all(keys.map((key) => client.hget(key, "state")));
      expect(states.every((state) => state === "done")).toBe(true);
    } finally {
      client.disconnect();
    }
  });
});

describe("POST /payments, each shape of body, on the Redis store", () => {
  // The table every example is held to: the same body, the same status and problem code.
  itAnswersEveryPaymentBody(() => ({
    url: a.url,
    headers: { authorization: `Bearer ${API_KEY}` },
    payments: () => db.payments.size,
  }));
});
