// Boots the Express example on 127.0.0.1:0 and drives it over real HTTP, as Stripe and a
// payments client would.
import { signWebhook, stripe } from "@interlock/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { memoryDb } from "./app.mjs";
import { start } from "./server.mjs";

const STRIPE_SECRET = "whsec_example_express";
const API_KEY = "sk_test_shop_7";
const OTHER_API_KEY = "sk_test_shop_9";
const db = memoryDb();
let app: { url: string; close(): Promise<void> };

beforeAll(async () => {
  const apiKeys = new Map([
    [API_KEY, "acct_shop_7"],
    [OTHER_API_KEY, "acct_shop_9"],
  ]);
  app = await start({ port: 0, host: "127.0.0.1", stripeSecret: STRIPE_SECRET, apiKeys, db });
});
afterAll(() => app?.close());

describe("Stripe webhooks", () => {
  const event = JSON.stringify({ id: "evt_1042", object: "event", type: "checkout.session.completed" });
  const deliver = (headers: Record<string, string>, body: string | Uint8Array) =>
    fetch(`${app.url}/webhooks/stripe`, { method: "POST", headers, body });

  it("processes a signed delivery once, answers its redelivery as a duplicate, refuses a tampered one", async () => {
    const signed = await signWebhook({ scheme: stripe, secret: STRIPE_SECRET, body: event });

    const first = await deliver(signed.headers, signed.body);
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({ received: "evt_1042" });

    const again = await deliver(signed.headers, signed.body);
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ duplicate: true, id: "evt_1042" });
    expect(db.fulfilled).toEqual(["evt_1042"]);

    const tampered = await deliver(signed.headers, event.replace("completed", "expired"));
    expect(tampered.status).toBe(401);
    expect(tampered.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(await tampered.json()).toMatchObject({ status: 401, code: "no_matching_signature" });
    expect(db.fulfilled).toEqual(["evt_1042"]);
  });
});

describe("POST /payments", () => {
  const pay = (body: unknown, { key = "order-1042", apiKey = API_KEY } = {}) =>
    fetch(`${app.url}/payments`, {
      method: "POST",
      headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json", "idempotency-key": key },
      body: JSON.stringify(body),
    });

  it("creates a payment once: the retry is replayed byte for byte, another body with the key is 422", async () => {
    const first = await pay({ amount: 4200, currency: "eur" });
    expect(first.status).toBe(201);
    expect(first.headers.get("idempotent-replayed")).toBeNull();
    const created = await first.text();
    const payment = JSON.parse(created);
    expect(payment).toMatchObject({ amount: 4200, currency: "eur", account: "acct_shop_7" });
    expect(first.headers.get("location")).toBe(`/payments/${payment.id}`);

    const retry = await pay({ amount: 4200, currency: "eur" });
    expect(retry.status).toBe(201);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(retry.headers.get("location")).toBe(`/payments/${payment.id}`);
    expect(await retry.text()).toBe(created);

    const other = await pay({ amount: 9900, currency: "eur" });
    expect(other.status).toBe(422);
    expect(other.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(await other.json()).toMatchObject({ code: "idempotency_key_mismatch" });

    expect([...db.payments.keys()]).toEqual([payment.id]);
    const read = await fetch(`${app.url}${first.headers.get("location")}`, {
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    expect(await read.json()).toEqual(payment);
  });

  it("scopes keys per account, requires a key and an API key", async () => {
    const mine = await pay({ amount: 100 }, { key: "shared-key" });
    const theirs = await pay({ amount: 100 }, { key: "shared-key", apiKey: OTHER_API_KEY });
    expect([mine.status, theirs.status]).toEqual([201, 201]);
    expect(theirs.headers.get("idempotent-replayed")).toBeNull();
    expect((await theirs.json()).account).toBe("acct_shop_9");

    const keyless = await fetch(`${app.url}/payments`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ amount: 100 }),
    });
    expect(keyless.status).toBe(400);
    expect(await keyless.json()).toMatchObject({ code: "idempotency_key_missing" });

    const anonymous = await pay({ amount: 100 }, { apiKey: "sk_unknown" });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  });
});
