/** Replay de-duplication around webhook handlers, on the memory store. */
import { describe, expect, it } from "vitest";
import {
  type ClaimOptions,
  createWebhookReceiver,
  github,
  InterlockConfigError,
  type InterlockStore,
  MemoryStore,
  StoreUnavailableError,
  signWebhook,
  standardWebhooks,
  stripe,
  type WebhookEvent,
  WebhookVerificationError,
} from "../src/index.js";
import { clockAt } from "./helpers.js";

const NOW = 1_700_000_000;
const SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const BODY = '{"type":"invoice.paid","id":"evt_1"}';

const swDelivery = (id = "msg_1", timestamp = NOW, body = BODY) =>
  signWebhook({ scheme: standardWebhooks, secret: SW_SECRET, body, id, timestamp });

function receiverOn(store: InterlockStore, events: WebhookEvent[] = []) {
  return createWebhookReceiver({
    scheme: standardWebhooks,
    secret: SW_SECRET,
    store,
    now: clockAt(NOW),
    onEvent: (e) => events.push(e),
  });
}

describe("de-duplication", () => {
  it("runs the handler once; a redelivery (even re-signed later) is a duplicate", async () => {
    const events: WebhookEvent[] = [];
    const receiver = receiverOn(new MemoryStore(), events);
    let runs = 0;
    const handler = () => ++runs;
    const first = await swDelivery();
    expect(await receiver.receive(first.headers, BODY, handler)).toMatchObject({ outcome: "processed", result: 1 });
    expect(await receiver.receive(first.headers, BODY, handler)).toMatchObject({ outcome: "duplicate" });
    const resigned = await swDelivery("msg_1", NOW + 30);
    expect(await receiver.receive(resigned.headers, BODY, handler)).toMatchObject({ outcome: "duplicate" });
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
  });

  it("concurrent copies of one delivery run the handler exactly once", async () => {
    const receiver = receiverOn(new MemoryStore());
    const { headers } = await swDelivery();
    let runs = 0;
    const slowHandler = async () => {
      runs++;
      await new Promise((r) => setTimeout(r, 20));
    };
    const receipts = await Promise.all(Array.from({ length: 20 }, () => receiver.receive(headers, BODY, slowHandler)));
    expect(runs).toBe(1);
    expect(receipts.filter((r) => r.outcome === "processed")).toHaveLength(1);
    for (const receipt of receipts.filter((r) => r.outcome !== "processed")) {
      expect(receipt).toMatchObject({ outcome: "in_flight", retryAfterSeconds: 60 });
    }
  });

  it("a failed handler releases the delivery, so the provider's retry is processed", async () => {
    const events: WebhookEvent[] = [];
    const receiver = receiverOn(new MemoryStore(), events);
    const { headers } = await swDelivery();
    await expect(
      receiver.receive(headers, BODY, () => {
        throw new Error("database down");
      }),
    ).rejects.toThrow("database down");
    expect(events.at(-1)).toMatchObject({ type: "webhook.handler_failed", released: true });
    expect(await receiver.receive(headers, BODY, () => "ok")).toMatchObject({ outcome: "processed", result: "ok" });
  });

  it("refused deliveries never reach the store or the handler", async () => {
    const store = new MemoryStore();
    const receiver = receiverOn(store);
    const { headers } = await swDelivery();
    await expect(receiver.receive(headers, `${BODY} `, () => "ran")).rejects.toThrow(WebhookVerificationError);
    expect(store.size).toBe(0);
  });

  it("Stripe: de-duplicates by the event id in the signed body", async () => {
    const receiver = createWebhookReceiver({
      scheme: stripe,
      secret: "whsec_x",
      store: new MemoryStore(),
      now: clockAt(NOW),
    });
    let runs = 0;
    for (const timestamp of [NOW, NOW + 60]) {
      const { headers } = await signWebhook({ scheme: stripe, secret: "whsec_x", body: BODY, timestamp });
      await receiver.receive(headers, BODY, () => runs++);
    }
    expect(runs).toBe(1);
  });

  it("GitHub: a valid body replayed under a forged delivery id cannot suppress the real delivery", async () => {
    const receiver = createWebhookReceiver({ scheme: github, secret: "s", store: new MemoryStore() });
    const seen: string[] = [];
    const handler = (event: { text(): string }) => seen.push(event.text());
    const old = await signWebhook({ scheme: github, secret: "s", body: '{"old":true}', id: "guid-old" });
    await receiver.receive(old.headers, '{"old":true}', handler);
    // The attacker re-sends the old, validly signed body under the id of a real delivery to come.
    const forged = { ...old.headers, "x-github-delivery": "guid-real" };
    await receiver.receive(forged, '{"old":true}', handler);
    const real = await signWebhook({ scheme: github, secret: "s", body: '{"real":true}', id: "guid-real" });
    expect(await receiver.receive(real.headers, '{"real":true}', handler)).toMatchObject({ outcome: "processed" });
    expect(seen).toContain('{"real":true}');
    // And the real delivery's own redelivery is still a duplicate.
    expect(await receiver.receive(real.headers, '{"real":true}', handler)).toMatchObject({ outcome: "duplicate" });
  });
});

describe("failure handling", () => {
  const downStore = (failing: Partial<Record<keyof InterlockStore, boolean>>): InterlockStore => {
    const inner = new MemoryStore();
    const fail = () => Promise.reject(new StoreUnavailableError("test", "down"));
    return {
      name: "flaky",
      maxRecordBytes: inner.maxRecordBytes,
      claim: (k: string, o: ClaimOptions) => (failing.claim ? fail() : inner.claim(k, o)),
      complete: (...a) => (failing.complete ? fail() : inner.complete(...a)),
      release: (...a) => (failing.release ? fail() : inner.release(...a)),
      extend: (...a) => inner.extend(...a),
    };
  };

  it("store unreachable: StoreUnavailableError, handler not run (the provider retries on 503)", async () => {
    const receiver = receiverOn(downStore({ claim: true }));
    const { headers } = await swDelivery();
    let ran = false;
    await expect(receiver.receive(headers, BODY, () => (ran = true))).rejects.toMatchObject({ status: 503 });
    expect(ran).toBe(false);
  });

  it("a record that cannot be written still acknowledges the processed delivery, and says so", async () => {
    const events: WebhookEvent[] = [];
    const receiver = receiverOn(downStore({ complete: true }), events);
    const { headers } = await swDelivery();
    expect(await receiver.receive(headers, BODY, () => "done")).toMatchObject({ outcome: "processed" });
    expect(events.at(-1)).toMatchObject({ type: "webhook.processed", recorded: false });
  });

  it("a release that fails still rethrows the handler's error", async () => {
    const events: WebhookEvent[] = [];
    const receiver = receiverOn(downStore({ release: true }), events);
    const { headers } = await swDelivery();
    await expect(
      receiver.receive(headers, BODY, () => {
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    expect(events.at(-1)).toMatchObject({ type: "webhook.handler_failed", released: false });
  });
});

describe("configuration", () => {
  it("refuses a retention not longer than the timestamp tolerance", () => {
    const base = { scheme: standardWebhooks, secret: SW_SECRET, store: new MemoryStore() };
    expect(() => createWebhookReceiver({ ...base, retentionMs: 300_000 })).toThrow(InterlockConfigError);
    expect(() => createWebhookReceiver({ ...base, tolerance: 600, retentionMs: 599_000 })).toThrow(/tolerance/);
    expect(() => createWebhookReceiver({ ...base, retentionMs: 300_001 })).not.toThrow();
    expect(() => createWebhookReceiver({ ...base, lockTtlMs: 0 })).toThrow(InterlockConfigError);
  });
});

describe("the two-step API adapters use", () => {
  const text = (body: Uint8Array) => new TextDecoder().decode(body);

  it("answers refusals, duplicates and in-flight copies with the response to send", async () => {
    const receiver = receiverOn(new MemoryStore());
    const { headers } = await swDelivery();
    const refused = await receiver.begin(headers, `${BODY}x`);
    expect(refused).toMatchObject({ action: "respond", outcome: "refused", response: { status: 401 } });
    if (refused.action !== "respond") throw new Error("unreachable");
    expect(refused.response.headers).toContainEqual(["content-type", "application/problem+json"]);
    expect(JSON.parse(text(refused.response.body))).toMatchObject({ code: "no_matching_signature", status: 401 });

    const first = await receiver.begin(headers, BODY);
    if (first.action !== "process") throw new Error("expected to process");
    const concurrent = await receiver.begin(headers, BODY);
    expect(concurrent).toMatchObject({ action: "respond", outcome: "in_flight", response: { status: 409 } });
    if (concurrent.action !== "respond") throw new Error("unreachable");
    expect(concurrent.response.headers).toContainEqual(["retry-after", "60"]);

    await receiver.finish(first.ticket, { status: 204 });
    await receiver.finish(first.ticket, { status: 500 }); // settled already: no effect
    const duplicate = await receiver.begin(headers, BODY);
    expect(duplicate).toMatchObject({ action: "respond", outcome: "duplicate", response: { status: 200 } });
    if (duplicate.action !== "respond") throw new Error("unreachable");
    expect(JSON.parse(text(duplicate.response.body))).toEqual({ duplicate: true, id: "msg_1" });
  });

  it("a non-2xx answer or an abort releases the delivery for the provider's retry", async () => {
    const receiver = receiverOn(new MemoryStore());
    const { headers } = await swDelivery();
    const first = await receiver.begin(headers, BODY);
    if (first.action !== "process") throw new Error("expected to process");
    await receiver.finish(first.ticket, { status: 500 });
    const second = await receiver.begin(headers, BODY);
    if (second.action !== "process") throw new Error("expected the retry to process");
    await receiver.abort(second.ticket);
    expect((await receiver.begin(headers, BODY)).action).toBe("process");
  });

  it("an unreachable store answers 503 problem+json", async () => {
    const store = new MemoryStore();
    store.claim = () => Promise.reject(new StoreUnavailableError("memory", "down"));
    const decision = await receiverOn(store).begin((await swDelivery()).headers, BODY);
    expect(decision).toMatchObject({ action: "respond", outcome: "store_unavailable", response: { status: 503 } });
  });
});
