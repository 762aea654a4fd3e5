/**
 * Replay de-duplication around webhook handlers, for any store: several receivers, each on a
 * store of its own that shares one key space with the others, as the instances of an app do.
 * The same delivery must run its handler once whichever instance receives each copy.
 *
 * ```ts
 * import { describeWebhookReplayBehaviour } from "@interlock/core/testing";
 * describeWebhookReplayBehaviour("redis", {
 *   instances: (count) => {
 *     const prefix = uniquePrefix();
 *     return Array.from({ length: count }, () => redisStore(new Redis(url), { prefix }));
 *   },
 * });
 * ```
 */

import { afterAll, describe, expect, it } from "vitest";
import { WebhookVerificationError } from "../errors.js";
import type { WebhookEvent } from "../events.js";
import type { InterlockStore } from "../store/contract.js";
import { createWebhookReceiver, type WebhookReceipt } from "../webhooks/receiver.js";
import { github, standardWebhooks, stripe } from "../webhooks/schemes/index.js";
import { signWebhook } from "../webhooks/sign.js";

/** How to make the stores, one per app instance, the replay suite runs receivers on. */
export interface WebhookReplayBehaviourOptions {
  /**
   * `count` stores on one fresh key space no other call sees, one per app instance (each on a
   * connection or pool of its own, where the store has one). An in-process store may return
   * one fresh store `count` times.
   */
  instances: (count: number) => InterlockStore[] | Promise<InterlockStore[]>;
}

const NOW = 1_700_000_000;
const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const BODY = '{"type":"invoice.paid","id":"evt_1"}';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const text = (body: Uint8Array) => new TextDecoder().decode(body);
const delivery = (id: string, timestamp = NOW, body = BODY) =>
  signWebhook({ scheme: standardWebhooks, secret: SECRET, body, id, timestamp });

function receiverOn(store: InterlockStore, events: WebhookEvent[] = []) {
  return createWebhookReceiver({
    scheme: standardWebhooks,
    secret: SECRET,
    store,
    now: () => NOW * 1000,
    onEvent: (event) => events.push(event),
  });
}

/** `store`, with every call that reaches it noted in `calls`. */
function watched(store: InterlockStore, calls: string[]): InterlockStore {
  const watch =
    <A extends unknown[], R>(name: string, call: (...args: A) => R) =>
    (...args: A): R => {
      calls.push(name);
      return call(...args);
    };
  return {
    name: store.name,
    maxRecordBytes: store.maxRecordBytes,
    claim: watch("claim", store.claim.bind(store)),
    complete: watch("complete", store.complete.bind(store)),
    release: watch("release", store.release.bind(store)),
    extend: watch("extend", store.extend.bind(store)),
  };
}

/**
 * Registers replay de-duplication tests with vitest: several receivers on stores sharing one
 * key space must run each delivery's handler once.
 */
export function describeWebhookReplayBehaviour(name: string, options: WebhookReplayBehaviourOptions): void {
  const stores = new Set<InterlockStore>();
  /** `count` app instances on one fresh key space. */
  const instances = async (count: number): Promise<InterlockStore[]> => {
    const made = await options.instances(count);
    expect(made, "instances(count) returns count stores").toHaveLength(count);
    for (const store of made) stores.add(store);
    return made;
  };

  describe(`webhook de-duplication on ${name}`, () => {
    afterAll(async () => {
      await Promise.all([...stores].map((store) => store.close?.()));
    });

    it("a delivery is processed once; its redelivery, even re-signed later and received elsewhere, is a duplicate", async () => {
      const events: WebhookEvent[] = [];
      const [a, b] = await instances(2);
      const here = receiverOn(a!, events);
      const there = receiverOn(b!);
      let runs = 0;
      const handler = () => ++runs;
      const first = await delivery("msg_1");
      expect(await here.receive(first.headers, BODY, handler)).toMatchObject({ outcome: "processed", result: 1 });
      expect(events.at(-1)).toMatchObject({ type: "webhook.processed", id: "msg_1", recorded: true });
      expect(await here.receive(first.headers, BODY, handler)).toMatchObject({ outcome: "duplicate" });
      expect(await there.receive(first.headers, BODY, handler)).toMatchObject({ outcome: "duplicate" });
      const resigned = await delivery("msg_1", NOW + 30);
      expect(await there.receive(resigned.headers, BODY, handler)).toMatchObject({ outcome: "duplicate" });
      expect(await here.receive(resigned.headers, BODY, handler)).toMatchObject({ outcome: "duplicate" });
      expect(runs).toBe(1);
      expect(events.map((e) => e.type)).toEqual([
        "webhook.verified",
        "webhook.processed",
        "webhook.verified",
        "webhook.duplicate",
        "webhook.verified",
        "webhook.duplicate",
      ]);
      expect(events[1]).toMatchObject({ recorded: true, id: "msg_1" });
      // Another delivery is another key.
      const second = await delivery("msg_2");
      expect(await there.receive(second.headers, BODY, handler)).toMatchObject({ outcome: "processed", result: 2 });
    });

    it("a failing handler releases the delivery, so the provider's redelivery is processed", async () => {
      const events: WebhookEvent[] = [];
      const [a, b] = await instances(2);
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

    it("a handler that throws synchronously releases the delivery too: the same copy, retried, is processed", async () => {
      const events: WebhookEvent[] = [];
      const [store] = await instances(1);
      const receiver = receiverOn(store!, events);
      const { headers } = await delivery("msg_throw");
      await expect(
        receiver.receive(headers, BODY, () => {
          throw new Error("database down");
        }),
      ).rejects.toThrow("database down");
      expect(events.at(-1)).toMatchObject({ type: "webhook.handler_failed", released: true });
      expect(await receiver.receive(headers, BODY, () => "ok")).toMatchObject({ outcome: "processed", result: "ok" });
    });

    it("refused deliveries never reach the store or the handler", async () => {
      const [store] = await instances(1);
      const calls: string[] = [];
      const receiver = receiverOn(watched(store!, calls));
      const { headers } = await delivery("msg_refused");
      let ran = false;
      await expect(
        receiver.receive(headers, `${BODY} `, () => {
          ran = true;
        }),
      ).rejects.toThrow(WebhookVerificationError);
      expect(await receiver.begin(headers, `${BODY} `)).toMatchObject({ action: "respond", outcome: "rejected" });
      expect(ran).toBe(false);
      expect(calls).toEqual([]);
    });

    it("20 identical deliveries at once, over 4 instances: the handler runs once", async () => {
      const receivers = (await instances(4)).map((store) => receiverOn(store));
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

    it("the two-step API adapters use answers refusals, duplicates and in-flight copies with the response to send", async () => {
      const [a, b] = await instances(2);
      const [here, there] = [receiverOn(a!), receiverOn(b!)];
      const { headers } = await delivery("msg_respond");
      const refused = await there.begin(headers, `${BODY}x`);
      expect(refused).toMatchObject({ action: "respond", outcome: "rejected", response: { status: 401 } });
      if (refused.action !== "respond") throw new Error("unreachable");
      expect(refused.response.headers).toContainEqual(["content-type", "application/problem+json"]);
      expect(JSON.parse(text(refused.response.body))).toMatchObject({ code: "no_matching_signature", status: 401 });

      const first = await here.begin(headers, BODY);
      if (first.action !== "process") throw new Error(`expected to process, got ${first.outcome}`);
      const concurrent = await there.begin(headers, BODY);
      expect(concurrent).toMatchObject({ action: "respond", outcome: "in_flight", response: { status: 409 } });
      if (concurrent.action !== "respond") throw new Error("unreachable");
      expect(concurrent.response.headers).toContainEqual(["retry-after", "60"]);
      // A delivery carries no Idempotency-Key: the problem says what is in flight.
      expect(JSON.parse(text(concurrent.response.body))).toMatchObject({
        code: "request_in_flight",
        status: 409,
        title: "A copy of this delivery is still being processed",
        detail: "this delivery is being processed; retry later",
      });

      await here.finish(first.ticket, { status: 204 });
      await here.finish(first.ticket, { status: 500 }); // settled already: no effect
      const duplicate = await there.begin(headers, BODY);
      expect(duplicate).toMatchObject({ action: "respond", outcome: "duplicate", response: { status: 200 } });
      if (duplicate.action !== "respond") throw new Error("unreachable");
      expect(JSON.parse(text(duplicate.response.body))).toEqual({ duplicate: true, id: "msg_respond" });
    });

    it("the two-step API adapters use: a 2xx answer records the delivery, anything else (or an abort) releases it", async () => {
      const [a, b] = await instances(2);
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
      await there.abort(retry.ticket); // the handler threw: released
      const again = await here.begin(headers, BODY);
      if (again.action !== "process") throw new Error(`expected to process after the abort, got ${again.outcome}`);
      await here.finish(again.ticket, { status: 204 });
      const duplicate = await there.begin(headers, BODY);
      expect(duplicate).toMatchObject({ action: "respond", outcome: "duplicate", response: { status: 200 } });
      // A copy whose body was tampered with is refused before the store is asked.
      expect(await there.begin(headers, `${BODY} `)).toMatchObject({ action: "respond", outcome: "rejected" });
    });

    it("Stripe: de-duplicates by the event id in the signed body", async () => {
      const [a, b] = await instances(2);
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
      const [a, b] = await instances(2);
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
      expect(seen.filter((body) => body === '{"real":true}')).toHaveLength(1);
    });
  });
}
