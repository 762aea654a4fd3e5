/**
 * Replay de-duplication around webhook handlers, on a real Redis: several receivers, each on
 * its own connection, share one key space as the instances of an app would.
 */

import {
  createWebhookReceiver,
  github,
  type InterlockStore,
  signWebhook,
  standardWebhooks,
  stripe,
  type WebhookEvent,
  type WebhookReceipt,
} from "@interlock/core";
import { describe, expect, it } from "vitest";
import { redisClient, storeOn, uniquePrefix } from "./helpers.js";

const NOW = 1_700_000_000;
const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const BODY = '{"type":"invoice.paid","id":"evt_1"}';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const delivery = (id: string, timestamp = NOW, body = BODY) =>
  signWebhook({ scheme: standardWebhooks, secret: SECRET, body, id, timestamp });

/** Stores on one prefix, each on a connection of its own (one per app instance). */
function instances(count: number): InterlockStore[] {
  const prefix = uniquePrefix("wh");
  return Array.from({ length: count }, () => storeOn(redisClient(), { prefix }));
}

function receiverOn(store: InterlockStore, events: WebhookEvent[] = []) {
  return createWebhookReceiver({
    scheme: standardWebhooks,
    secret: SECRET,
    store,
    now: () => NOW * 1000,
    onEvent: (event) => events.push(event),
  });
}

describe("webhook de-duplication on redis", () => {
  it("a delivery is processed once; its redelivery, even re-signed later and received elsewhere, is a duplicate", async () => {
    const events: WebhookEvent[] = [];
    const [a, b] = instances(2);
    const here = receiverOn(a!, events);
    const there = receiverOn(b!);
    let runs = 0;
    const handler = () => ++runs;
    const first = await delivery("msg_1");
    expect(await here.receive(first.headers, BODY, handler)).toMatchObject({ outcome: "processed", result: 1 });
    expect(events.at(-1)).toMatchObject({ type: "webhook.processed", id: "msg_1", recorded: true });
    expect(await there.receive(first.headers, BODY, handler)).toMatchObject({ outcome: "duplicate" });
    const resigned = await delivery("msg_1", NOW + 30);
    expect(await there.receive(resigned.headers, BODY, handler)).toMatchObject({ outcome: "duplicate" });
    expect(await here.receive(resigned.headers, BODY, handler)).toMatchObject({ outcome: "duplicate" });
    expect(runs).toBe(1);
    // Another delivery is another key.
    const second = await delivery("msg_2");
    expect(await there.receive(second.headers, BODY, handler)).toMatchObject({ outcome: "processed", result: 2 });
  });

  it("a failing handler releases the delivery, so the provider's redelivery is processed", async () => {
    const events: WebhookEvent[] = [];
    const [a, b] = instances(2);
    const { headers } = await delivery("msg_fail");
    await expect(
      receiverOn(a!, events).receive(headers, BODY, () => Promise.reject(new Error("database down"))),
    ).rejects.toThrow("database down");
    expect(events.at(-1)).toMatchObject({ type: "webhook.handler_failed", id: "msg_fail", released: true });
    const redelivered = await delivery("msg_fail", NOW + 60);
    expect(await receiverOn(b!).receive(redelivered.headers, BODY, () => "ok")).toMatchObject({
      outcome: "processed",
      result: "ok",
    });
    expect(await receiverOn(a!).receive(headers, BODY, () => "again")).toMatchObject({ outcome: "duplicate" });
  });

  it("20 identical deliveries at once, over 4 connections: the handler runs once", async () => {
    const receivers = instances(4).map((store) => receiverOn(store));
    const { headers } = await delivery("msg_burst");
    let runs = 0;
    const slowHandler = async () => {
      runs++;
      await sleep(50);
      return "done";
    };
    const receipts: Array<WebhookReceipt<string>> = await Promise.all(
      Array.from({ length: 20 }, (_, i) => receivers[i % 4]!.receive(headers, BODY, slowHandler)),
    );
    expect(runs).toBe(1);
    expect(receipts.filter((r) => r.outcome === "processed")).toHaveLength(1);
    // The copies overlap the handler (409 for the provider to retry); a straggler may already see it done.
    const others = receipts.filter((r) => r.outcome !== "processed");
    for (const receipt of others) {
      if (receipt.outcome === "in_flight") expect(receipt.retryAfterSeconds).toBe(60);
      else expect(receipt.outcome).toBe("duplicate");
    }
    expect(others.filter((r) => r.outcome === "in_flight").length).toBeGreaterThan(0);
    expect(await receivers[3]!.receive(headers, BODY, slowHandler)).toMatchObject({ outcome: "duplicate" });
    expect(runs).toBe(1);
  });

  it("the two-step API adapters use: a 2xx answer records the delivery, anything else releases it", async () => {
    const [a, b] = instances(2);
    const [here, there] = [receiverOn(a!), receiverOn(b!)];
    const { headers } = await delivery("msg_steps");
    const first = await here.begin(headers, BODY);
    if (first.action !== "process") throw new Error(`expected to process, got ${first.outcome}`);
    const copy = await there.begin(headers, BODY);
    expect(copy).toMatchObject({ action: "respond", outcome: "in_flight", response: { status: 409 } });
    expect(copy.action === "respond" && copy.response.headers).toContainEqual(["retry-after", "60"]);
    await here.finish(first.ticket, { status: 500 }); // the handler answered 5xx: released
    const retry = await there.begin(headers, BODY);
    if (retry.action !== "process") throw new Error(`expected to process the retry, got ${retry.outcome}`);
    await there.finish(retry.ticket, { status: 204 });
    const duplicate = await here.begin(headers, BODY);
    expect(duplicate).toMatchObject({ action: "respond", outcome: "duplicate", response: { status: 200 } });
    // A copy whose body was tampered with is refused before the store is asked.
    expect(await there.begin(headers, `${BODY} `)).toMatchObject({ action: "respond", outcome: "refused" });
  });

  it("Stripe: de-duplicates by the event id in the signed body", async () => {
    const [a, b] = instances(2);
    const receivers = [a!, b!].map((store) =>
      createWebhookReceiver({ scheme: stripe, secret: "whsec_x", store, now: () => NOW * 1000 }),
    );
    let runs = 0;
    for (const [i, timestamp] of [NOW, NOW + 60].entries()) {
      const { headers } = await signWebhook({ scheme: stripe, secret: "whsec_x", body: BODY, timestamp });
      await receivers[i]!.receive(headers, BODY, () => runs++);
    }
    expect(runs).toBe(1);
  });

  it("GitHub: a valid body replayed under a forged delivery id cannot suppress the real delivery", async () => {
    const [a, b] = instances(2);
    const [first, second] = [a!, b!].map((store) => createWebhookReceiver({ scheme: github, secret: "s", store }));
    const seen: string[] = [];
    const handler = (event: { text(): string }) => seen.push(event.text());
    const old = await signWebhook({ scheme: github, secret: "s", body: '{"old":true}', id: "guid-old" });
    expect(await first!.receive(old.headers, '{"old":true}', handler)).toMatchObject({ outcome: "processed" });
    // The attacker re-sends the old, validly signed body under the id of a real delivery to come.
    const forged = { ...old.headers, "x-github-delivery": "guid-real" };
    await first!.receive(forged, '{"old":true}', handler);
    const real = await signWebhook({ scheme: github, secret: "s", body: '{"real":true}', id: "guid-real" });
    expect(await second!.receive(real.headers, '{"real":true}', handler)).toMatchObject({ outcome: "processed" });
    expect(seen).toContain('{"real":true}');
    // The real delivery's own redelivery is still a duplicate, on either instance.
    expect(await first!.receive(real.headers, '{"real":true}', handler)).toMatchObject({ outcome: "duplicate" });
    expect(await second!.receive(real.headers, '{"real":true}', handler)).toMatchObject({ outcome: "duplicate" });
    expect(seen.filter((text) => text === '{"real":true}')).toHaveLength(1);
  });
});
