/**
 * Replay de-duplication around webhook handlers, on the memory store: the store-independent
 * behaviour is the shared suite every store runs; what stays here is the receiver's handling of
 * a store that fails, its configuration, and what only an in-process store can promise.
 */
import { describe, expect, it } from "vitest";
import {
  type ClaimOptions,
  createWebhookReceiver,
  InterlockConfigError,
  type InterlockStore,
  MemoryStore,
  StoreUnavailableError,
  signWebhook,
  standardWebhooks,
  type WebhookEvent,
} from "../src/index.js";
import { describeWebhookReplayBehaviour } from "../src/testing/index.js";
import { clockAt } from "./helpers.js";

const NOW = 1_700_000_000;
const SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const BODY = '{"type":"invoice.paid","id":"evt_1"}';

const swDelivery = () =>
  signWebhook({ scheme: standardWebhooks, secret: SW_SECRET, body: BODY, id: "msg_1", timestamp: NOW });

function receiverOn(store: InterlockStore, events: WebhookEvent[] = []) {
  return createWebhookReceiver({
    scheme: standardWebhooks,
    secret: SW_SECRET,
    store,
    now: clockAt(NOW),
    onEvent: (e) => events.push(e),
  });
}

// One store shared by every "instance": in one process, the app's instances are one store.
describeWebhookReplayBehaviour("memory", {
  instances: (count) => {
    const store = new MemoryStore();
    return Array.from({ length: count }, () => store);
  },
});

describe("in one process", () => {
  it("concurrent copies of one delivery run the handler exactly once; every other copy is in flight", async () => {
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
  it("an unreachable store answers 503 problem+json", async () => {
    const store = new MemoryStore();
    store.claim = () => Promise.reject(new StoreUnavailableError("memory", "down"));
    const decision = await receiverOn(store).begin((await swDelivery()).headers, BODY);
    expect(decision).toMatchObject({ action: "respond", outcome: "store_unavailable", response: { status: 503 } });
  });
});

describe("refusals an adapter makes before begin", () => {
  it("answers problem+json and reports the refusal", async () => {
    const events: WebhookEvent[] = [];
    const receiver = receiverOn(new MemoryStore(), events);
    const decision = receiver.refuse("body_too_large", "body exceeds 1024 bytes");
    expect(decision).toMatchObject({ action: "respond", outcome: "refused", response: { status: 413 } });
    expect(events).toEqual([expect.objectContaining({ type: "webhook.rejected", code: "body_too_large" })]);
  });
});
