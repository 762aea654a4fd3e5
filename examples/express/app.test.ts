// Boots the Express example on 127.0.0.1:0 and drives it over real HTTP, as Stripe and a
// payments client would.
import { signWebhook, stripe } from "@interlock/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiKeys, describePaymentsApi, itLogsAnUnexpectedError } from "../payments-api.js";
import { memoryDb } from "./app.mjs";
import { start } from "./server.mjs";

const STRIPE_SECRET = "whsec_example_express";
const db = memoryDb();
let app: { url: string; close(): Promise<void> };

beforeAll(async () => {
  app = await start({ port: 0, host: "127.0.0.1", stripeSecret: STRIPE_SECRET, apiKeys: apiKeys(), db });
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

  // Signed by the sender, so verified, but no event object: read as one, each was a 500 on every redelivery.
  const notObjects = ["null", "42", '"evt"', "[]", "{not json", "type=checkout.session.completed"];

  it.each(notObjects)(
    "answers 422 invalid_payload to a signed delivery whose payload is %s, and fulfils nothing",
    async (body) => {
      const fulfilled = [...db.fulfilled];
      const signed = await signWebhook({ scheme: stripe, secret: STRIPE_SECRET, body });

      const refused = await deliver({ ...signed.headers, "content-type": "application/json" }, signed.body);
      expect(refused.status).toBe(422);
      expect(refused.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(await refused.json()).toMatchObject({ status: 422, code: "invalid_payload" });
      expect(db.fulfilled).toEqual(fulfilled);
    },
  );
});

describePaymentsApi(() => ({ url: app.url, db }));
itLogsAnUnexpectedError(() => ({ url: app.url, db }));
