// Boots the NestJS example on 127.0.0.1:0 and drives it over real HTTP, as Stripe and a payments
// client would. Vitest compiles the TypeScript (with its decorators) as it imports it.
import { signWebhook, stripe, WebhookPayloadError } from "@interlock/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiKeys, describePaymentsApi } from "../payments-api.js";
import { start } from "./src/main.js";
import { ProblemFilter } from "./src/problem.js";
import { memoryDb } from "./src/settings.js";

const STRIPE_SECRET = "whsec_example_nestjs";
const db = memoryDb();
let app: { url: string; close(): Promise<void> };

beforeAll(async () => {
  app = await start({
    port: 0,
    host: "127.0.0.1",
    stripeSecret: STRIPE_SECRET,
    apiKeys: apiKeys(),
    db,
    logger: false,
  });
});
afterAll(() => app?.close());

describe("Stripe webhooks", () => {
  const event = JSON.stringify({ id: "evt_1042", object: "event", type: "checkout.session.completed" });
  const deliver = (headers: Record<string, string>, body: string) =>
    fetch(`${app.url}/webhooks/stripe`, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json" },
      body,
    });

  it("processes a signed delivery once, answers its redelivery as a duplicate, refuses a tampered one", async () => {
    const signed = await signWebhook({ scheme: stripe, secret: STRIPE_SECRET, body: event });

    const first = await deliver(signed.headers, event);
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({ received: "evt_1042" });

    const again = await deliver(signed.headers, event);
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

      // As text: labelled JSON, a body that is no object is refused first by Nest's strict JSON parser (400 problem).
      const refused = await fetch(`${app.url}/webhooks/stripe`, {
        method: "POST",
        headers: { ...signed.headers, "content-type": "text/plain" },
        body,
      });
      expect(refused.status).toBe(422);
      expect(refused.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(await refused.json()).toMatchObject({ status: 422, code: "invalid_payload" });
      expect(db.fulfilled).toEqual(fulfilled);
    },
  );
});

describePaymentsApi(() => ({ url: app.url, db }));

describe("ProblemFilter", () => {
  /** What the filter sent on a stand-in for Express's response. */
  const caught = (exception: unknown) => {
    const sent: { status?: number; type?: string; body?: string } = {};
    const response = {
      status(status: number) {
        sent.status = status;
        return response;
      },
      type(type: string) {
        sent.type = type;
        return response;
      },
      send(body: string) {
        sent.body = body;
        return response;
      },
    };
    new ProblemFilter().catch(exception, { switchToHttp: () => ({ getResponse: () => response }) } as never);
    return sent;
  };

  it("answers an Interlock 4xx a controller lets through as Interlock words it: a payload that is not JSON is 400 payload_not_decodable", () => {
    const error = new WebhookPayloadError("stripe", "the delivery's body is not valid JSON");
    const sent = caught(error);
    expect([sent.status, sent.type]).toEqual([400, "application/problem+json"]);
    expect(JSON.parse(sent.body ?? "")).toEqual(error.toProblem());
    expect(JSON.parse(sent.body ?? "")).toMatchObject({ code: "payload_not_decodable", scheme: "stripe" });
  });
});
