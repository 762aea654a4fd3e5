// Boots the Fastify example on 127.0.0.1:0 and drives it over real HTTP, as a Standard Webhooks
// sender (Svix) and a payments client would.
import { signWebhook, standardWebhooks } from "@interlock/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiKeys, describePaymentsApi, itLogsAnUnexpectedError } from "../payments-api.js";
import { memoryDb } from "./app.mjs";
import { start } from "./server.mjs";

const WEBHOOK_SECRET = `whsec_${Buffer.from("example-fastify-secret-32-bytes!").toString("base64")}`;
const db = memoryDb();
let app: { url: string; close(): Promise<void> };

beforeAll(async () => {
  app = await start({ port: 0, host: "127.0.0.1", webhookSecret: WEBHOOK_SECRET, apiKeys: apiKeys(), db });
});
afterAll(() => app?.close());

describe("Standard Webhooks (Svix)", () => {
  const event = JSON.stringify({ type: "invoice.paid", timestamp: "2026-11-29T10:00:00Z", data: { id: "inv_1" } });
  const deliver = (headers: Record<string, string>, body: string | Uint8Array) =>
    fetch(`${app.url}/webhooks/svix`, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json" },
      body,
    });
  /** The same delivery as Svix names its headers: svix-id, svix-timestamp, svix-signature. */
  const asSvix = (headers: Record<string, string>) =>
    Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.replace(/^webhook-/, "svix-"), value]));

  it("processes a signed delivery once, answers its redelivery as a duplicate, refuses a tampered one", async () => {
    const signed = await signWebhook({ scheme: standardWebhooks, secret: WEBHOOK_SECRET, body: event });

    const first = await deliver(signed.headers, signed.body);
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({ received: signed.id });

    const again = await deliver(asSvix(signed.headers), signed.body);
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ duplicate: true, id: signed.id });
    expect(db.received).toEqual([{ id: signed.id, type: "invoice.paid" }]);

    const tampered = await deliver(signed.headers, event.replace("paid", "voided"));
    expect(tampered.status).toBe(401);
    expect(tampered.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(await tampered.json()).toMatchObject({ status: 401, code: "no_matching_signature" });
    expect(db.received).toHaveLength(1);
  });

  // Signed by the sender, so verified, but no event object: read as one, each was a 500 on every redelivery.
  const notObjects = ["null", "42", '"evt"', "[]", "{not json", "type=checkout.session.completed"];

  it.each(notObjects)(
    "answers 422 invalid_payload to a signed delivery whose payload is %s, and records nothing",
    async (body) => {
      const received = db.received.length;
      const signed = await signWebhook({ scheme: standardWebhooks, secret: WEBHOOK_SECRET, body });

      // Sent as a form when it is no JSON: labelled JSON, Fastify's own parser refuses it first (400 problem).
      const type = isJson(body) ? "application/json" : "application/x-www-form-urlencoded";
      const refused = await fetch(`${app.url}/webhooks/svix`, {
        method: "POST",
        headers: { ...signed.headers, "content-type": type },
        body: signed.body,
      });
      expect(refused.status).toBe(422);
      expect(refused.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(await refused.json()).toMatchObject({ status: 422, code: "invalid_payload" });
      expect(db.received).toHaveLength(received);
    },
  );

  it("a delivery sent as JSON whose bytes are not JSON, which Fastify's parser refuses, is verified all the same: signed → 400 payload_not_decodable, forged → 401", async () => {
    const signed = await signWebhook({ scheme: standardWebhooks, secret: WEBHOOK_SECRET, body: "{not json" });
    const forged = { ...signed.headers, "webhook-signature": "v1,AAAA" };
    const expected = { signed: [400, "payload_not_decodable"], forged: [401, "no_matching_signature"] };
    for (const [name, headers] of Object.entries({ signed: signed.headers, forged })) {
      const refused = await deliver(headers, signed.body);
      const problem = (await refused.json()) as { status: number; code: string };
      expect([name, refused.headers.get("content-type"), problem.status, problem.code]).toEqual([
        name,
        expect.stringMatching(/^application\/problem\+json/),
        ...expected[name as keyof typeof expected],
      ]);
      expect(refused.status).toBe(problem.status);
    }
  });
});

describePaymentsApi(() => ({ url: app.url, db }));
itLogsAnUnexpectedError(() => ({ url: app.url, db }));

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}
