// Boots the Koa example on 127.0.0.1:0 and drives it over real HTTP, as Shopify and a payments
// client would.
import { shopify, signWebhook } from "@interlock/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiKeys, describePaymentsApi, itLogsAnUnexpectedError } from "../payments-api.js";
import { memoryDb } from "./app.mjs";
import { start } from "./server.mjs";

const SHOPIFY_SECRET = "example-koa-shopify-client-secret";
const db = memoryDb();
let app: { url: string; close(): Promise<void> };

beforeAll(async () => {
  app = await start({ port: 0, host: "127.0.0.1", shopifySecret: SHOPIFY_SECRET, apiKeys: apiKeys(), db });
});
afterAll(() => app?.close());

describe("Shopify webhooks", () => {
  const order = JSON.stringify({ id: 450789469, email: "jon@example.com", total_price: "42.00" });
  const deliver = (headers: Record<string, string>, body: string | Uint8Array) =>
    fetch(`${app.url}/webhooks/shopify`, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json", "x-shopify-topic": "orders/paid" },
      body,
    });

  it("processes a signed delivery once, answers its redelivery as a duplicate, refuses a tampered one", async () => {
    const id = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043";
    const signed = await signWebhook({ scheme: shopify, secret: SHOPIFY_SECRET, body: order, id });

    const first = await deliver(signed.headers, signed.body);
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({ received: id });

    const again = await deliver(signed.headers, signed.body);
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ duplicate: true, id });
    expect(db.orders).toEqual([{ id, order: 450789469 }]);

    const tampered = await deliver(signed.headers, order.replace("42.00", "0.01"));
    expect(tampered.status).toBe(401);
    expect(tampered.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(await tampered.json()).toMatchObject({ status: 401, code: "no_matching_signature" });
    expect(db.orders).toHaveLength(1);
  });

  // Signed by the sender, so verified, but no event object: read as one, each was a 500 on every redelivery.
  const notObjects = ["null", "42", '"evt"', "[]", "{not json", "id=450789469"];

  it.each(notObjects)(
    "answers 422 invalid_payload to a signed delivery whose payload is %s, and records nothing",
    async (body) => {
      const orders = db.orders.length;
      const signed = await signWebhook({ scheme: shopify, secret: SHOPIFY_SECRET, body, id: crypto.randomUUID() });

      const refused = await deliver(signed.headers, signed.body);
      expect(refused.status).toBe(422);
      expect(refused.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(await refused.json()).toMatchObject({ status: 422, code: "invalid_payload" });
      expect(db.orders).toHaveLength(orders);
    },
  );
});

describePaymentsApi(() => ({ url: app.url, db }));
itLogsAnUnexpectedError(() => ({ url: app.url, db }));
