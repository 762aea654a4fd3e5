/**
 * Replay de-duplication around webhook handlers, on the memory store: the store-independent
 * behaviour is the shared suite every store runs; what stays here is the receiver's handling of
 * a store that fails, its configuration, and what only an in-process store can promise.
 */
import { createHash } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  BodyError,
  type ClaimOptions,
  createWebhookReceiver,
  DEFAULT_IDEMPOTENCY_RENEWAL_MAX_MS,
  deliveryKey,
  github,
  hmacScheme,
  InterlockConfigError,
  type InterlockStore,
  linear,
  linearScheme,
  MemoryStore,
  StoreUnavailableError,
  shopify,
  signWebhook,
  slack,
  standardWebhooks,
  type WebhookEvent,
  type WebhookReceiverOptions,
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

describe("ids no store key can hold", () => {
  it.each([
    ["a 2000-character id", standardWebhooks, SW_SECRET, "m".repeat(2000), BODY],
    ["an Events API id with a lone surrogate", slack, "slack-secret", undefined, '{"event_id":"Ev\\ud800"}'],
  ] as const)("%s: processed once, its copy a duplicate (not a store outage)", async (_, scheme, secret, id, body) => {
    const receiver = createWebhookReceiver({ scheme, secret, store: new MemoryStore(), now: clockAt(NOW) });
    const { headers } = await signWebhook({ scheme, secret, body, timestamp: NOW, ...(id ? { id } : {}) });
    let runs = 0;
    expect((await receiver.receive(headers, body, () => void runs++)).outcome).toBe("processed");
    expect((await receiver.receive(headers, body, () => void runs++)).outcome).toBe("duplicate");
    expect(runs).toBe(1);
  });
});

describe("namespaces: receivers sharing a store", () => {
  const receiverIn = (store: InterlockStore, namespace?: string) =>
    createWebhookReceiver({
      scheme: standardWebhooks,
      secret: SW_SECRET,
      store,
      now: clockAt(NOW),
      ...(namespace === undefined ? {} : { namespace }),
    });

  it("without one, a delivery one receiver processed is a duplicate to another of its scheme", async () => {
    const store = new MemoryStore();
    const { headers } = await swDelivery();
    const ran: string[] = [];
    await receiverIn(store).receive(headers, BODY, () => void ran.push("billing"));
    const second = await receiverIn(store).receive(headers, BODY, () => void ran.push("email"));
    expect([second.outcome, ran]).toEqual(["duplicate", ["billing"]]);
  });

  it("each namespace processes the delivery once", async () => {
    const store = new MemoryStore();
    const { headers } = await swDelivery();
    const ran: string[] = [];
    const billing = receiverIn(store, "billing");
    const email = receiverIn(store, "email");
    expect((await billing.receive(headers, BODY, () => void ran.push("billing"))).outcome).toBe("processed");
    expect((await email.receive(headers, BODY, () => void ran.push("email"))).outcome).toBe("processed");
    expect((await billing.receive(headers, BODY, () => void ran.push("billing"))).outcome).toBe("duplicate");
    expect((await receiverIn(store).receive(headers, BODY, () => void ran.push("none"))).outcome).toBe("processed");
    expect(ran).toEqual(["billing", "email", "none"]);
  });

  it.each(["", "a:b", "x".repeat(65), "caf\u00e9", "a b"])("refuses the namespace %j", (namespace) => {
    expect(() => receiverIn(new MemoryStore(), namespace)).toThrow(InterlockConfigError);
  });
});

describe("what a delivery is claimed under", () => {
  /** A memory store, and the key and fingerprint of each claim made on it. */
  const notingStore = () => {
    const store = new MemoryStore();
    const claim = vi.spyOn(store, "claim");
    return { store, claims: () => claim.mock.calls.map(([key, options]) => [key, options.fingerprint]) };
  };
  const HEX32 = /^[0-9a-f]{32}$/;

  it("a signed id is the key alone, claimed with no fingerprint; deliveryKey names the same", async () => {
    const { store, claims } = notingStore();
    const { headers } = await swDelivery();
    const receiver = receiverOn(store);
    await receiver.receive(headers, BODY, () => undefined);
    expect(claims()).toEqual([["wh:standard-webhooks:msg_1", ""]]);
    const event = await receiver.verifier.verify(headers, BODY);
    expect(await deliveryKey(event)).toEqual({ key: "wh:standard-webhooks:msg_1", fingerprint: "" });
    expect(await deliveryKey(event, "billing")).toEqual({ key: "wh@billing:standard-webhooks:msg_1", fingerprint: "" });
  });

  it("a signed id too long for a key: its hash is the key, still claimed with no fingerprint", async () => {
    const { store, claims } = notingStore();
    const id = "m".repeat(300);
    const { headers } = await signWebhook({
      scheme: standardWebhooks,
      secret: SW_SECRET,
      body: BODY,
      id,
      timestamp: NOW,
    });
    await receiverOn(store).receive(headers, BODY, () => undefined);
    const [[key, fingerprint]] = claims() as [[string, string]];
    expect(key).toMatch(/^wh:standard-webhooks:#[0-9a-f]{64}$/);
    expect(fingerprint).toBe("");
  });

  it("an unsigned id (Shopify's) binds the body's hash, in the key and as the fingerprint", async () => {
    const { store, claims } = notingStore();
    const body = '{"id":1}';
    const { headers } = await signWebhook({ scheme: shopify, secret: "shpss_test", body, id: "wh-1" });
    await createWebhookReceiver({ scheme: shopify, secret: "shpss_test", store }).receive(
      headers,
      body,
      () => undefined,
    );
    const [[key, fingerprint]] = claims() as [[string, string]];
    expect(fingerprint).toMatch(HEX32);
    expect(key).toBe(`wh:shopify:wh-1:${fingerprint}`);
  });

  it("no id at all (a Slack request with no event_id): the hash of the timestamp and body is the key", async () => {
    const { store, claims } = notingStore();
    const body = '{"type":"block_actions"}';
    const { headers } = await signWebhook({ scheme: slack, secret: "slack-secret", body, timestamp: NOW });
    const receiver = createWebhookReceiver({ scheme: slack, secret: "slack-secret", store, now: clockAt(NOW) });
    await receiver.receive(headers, body, () => undefined);
    const [[key, fingerprint]] = claims() as [[string, string]];
    const expected = createHash("sha256").update(`${NOW}:${body}`).digest("hex").slice(0, 32);
    expect([key, fingerprint]).toEqual([`wh:slack:signed:${expected}`, expected]);
  });

  it("no id, signed with two secrets while the sender rotates: a copy carrying either signature is a duplicate", async () => {
    const scheme = hmacScheme({ name: "acme", separator: " " }); // no id header
    const secret = ["old-secret", "new-secret"];
    const receiver = createWebhookReceiver({ scheme, secret, store: new MemoryStore(), now: clockAt(NOW) });
    const body = '{"amount":100}';
    const { headers } = await signWebhook({ scheme, secret, body, timestamp: NOW });
    const [first, second] = (headers["x-signature"] as string).split(" ");
    let runs = 0;
    const outcomes: string[] = [];
    for (const signature of [`${first} ${second}`, second, first, `${second} ${first}`]) {
      const result = await receiver.receive({ ...headers, "x-signature": signature }, body, () => runs++);
      outcomes.push(result.outcome);
    }
    expect([runs, outcomes]).toEqual([1, ["processed", "duplicate", "duplicate", "duplicate"]]);
    // A new timestamp is a new delivery (what a sender re-signing a later event sends).
    const later = await signWebhook({ scheme, secret, body, timestamp: NOW + 1 });
    expect((await receiver.receive(later.headers, body, () => runs++)).outcome).toBe("processed");
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

  it("a store set up wrong (its claim throws InterlockConfigError: a table never created): thrown as it is, no 503, no store_unavailable event", async () => {
    const store = new MemoryStore();
    store.claim = () =>
      Promise.reject(new InterlockConfigError('table "interlock_webhooks" is missing: run migrate()'));
    const events: WebhookEvent[] = [];
    const receiver = receiverOn(store, events);
    const { headers } = await swDelivery();
    let ran = false;
    await expect(receiver.receive(headers, BODY, () => (ran = true))).rejects.toThrow(/run migrate\(\)/);
    expect([ran, events.map((event) => event.type)]).toEqual([false, ["webhook.verified"]]);
  });

  // A store method that throws instead of returning a rejected promise, as a claim may.
  const throwing = (method: "complete" | "release"): InterlockStore => {
    const store = new MemoryStore();
    store[method] = () => {
      throw new Error("ECONNRESET");
    };
    return store;
  };
  const failing = (method: "complete" | "release", how: "rejects" | "throws") =>
    how === "rejects" ? downStore({ [method]: true }) : throwing(method);

  it.each(["rejects", "throws"] as const)(
    "a record that cannot be written (the store %s) still acknowledges the processed delivery, and says so",
    async (how) => {
      const events: WebhookEvent[] = [];
      const receiver = receiverOn(failing("complete", how), events);
      const { headers } = await swDelivery();
      expect(await receiver.receive(headers, BODY, () => "done")).toMatchObject({ outcome: "processed" });
      expect(events.at(-1)).toMatchObject({ type: "webhook.processed", recorded: false });
    },
  );

  it.each(["rejects", "throws"] as const)(
    "a release that fails (the store %s) still rethrows the handler's error",
    async (how) => {
      const events: WebhookEvent[] = [];
      const receiver = receiverOn(failing("release", how), events);
      const { headers } = await swDelivery();
      await expect(
        receiver.receive(headers, BODY, () => {
          throw new Error("boom");
        }),
      ).rejects.toThrow("boom");
      expect(events.at(-1)).toMatchObject({ type: "webhook.handler_failed", released: false });
    },
  );
});

it("a handler that outlives its lease: the store answered the release (false: not ours any more), so released is true", async () => {
  let now = 0;
  const store = new MemoryStore({ now: () => now });
  const events: WebhookEvent[] = [];
  const receiver = receiverOn(store, events);
  const { headers } = await swDelivery();
  await expect(
    receiver.receive(headers, BODY, () => {
      now += 10 * 60_000; // past the default lease
      throw new Error("boom");
    }),
  ).rejects.toThrow("boom");
  expect(events.at(-1)).toMatchObject({ type: "webhook.handler_failed", released: true });
  // The lease is gone: the redelivery runs.
  expect(await receiver.receive(headers, BODY, () => "done")).toMatchObject({ outcome: "processed" });
});

describe("configuration", () => {
  it("refuses a retention not longer than the timestamp window, twice the tolerance and a second (whole-second timestamps)", () => {
    const base = { scheme: standardWebhooks, secret: SW_SECRET, store: new MemoryStore() };
    expect(() => createWebhookReceiver({ ...base, retentionMs: 300_000 })).toThrow(InterlockConfigError);
    expect(() => createWebhookReceiver({ ...base, retentionMs: 600_000 })).toThrow(InterlockConfigError);
    expect(() => createWebhookReceiver({ ...base, retentionMs: 601_000 })).toThrow(InterlockConfigError);
    expect(() => createWebhookReceiver({ ...base, toleranceSeconds: 600, retentionMs: 1_199_000 })).toThrow(
      /toleranceSeconds/,
    );
    expect(() => createWebhookReceiver({ ...base, retentionMs: 601_001 })).not.toThrow();
    expect(() => createWebhookReceiver({ ...base, lockTtlMs: 0 })).toThrow(InterlockConfigError);
  });

  // The window is two-sided: a copy signed `toleranceSeconds` ahead of the clock is accepted until
  // `toleranceSeconds` after its time, twice the tolerance after it was first received.
  it.each([301_000, 450_000, 600_000])(
    "never both forgets and accepts a copy signed ahead of the clock (retention %i ms, tolerance 300 s)",
    async (retentionMs) => {
      let clock = NOW * 1000;
      const store = new MemoryStore({ now: () => clock });
      let receiver: ReturnType<typeof createWebhookReceiver>;
      try {
        receiver = createWebhookReceiver({
          scheme: standardWebhooks,
          secret: SW_SECRET,
          store,
          retentionMs,
          now: () => clock,
        });
      } catch (error) {
        expect(error).toBeInstanceOf(InterlockConfigError);
        return;
      }
      const ahead = await signWebhook({
        scheme: standardWebhooks,
        secret: SW_SECRET,
        body: BODY,
        id: "msg_ahead",
        timestamp: NOW + 299,
      });
      let runs = 0;
      expect((await receiver.receive(ahead.headers, BODY, () => runs++)).outcome).toBe("processed");
      clock += retentionMs + 1;
      const replay = await receiver.receive(ahead.headers, BODY, () => runs++).catch((e: unknown) => e);
      expect(runs).toBe(1);
      expect(replay).not.toMatchObject({ outcome: "processed" });
    },
  );
});

describe("the two-step API adapters use", () => {
  it("an unreachable store answers 503 problem+json with Retry-After, and receive throws the error it comes from", async () => {
    const store = new MemoryStore();
    store.claim = () => Promise.reject(new StoreUnavailableError("memory", "down"));
    const receiver = receiverOn(store);
    const { headers } = await swDelivery();
    const decision = await receiver.begin(headers, BODY);
    expect(decision).toMatchObject({ action: "respond", outcome: "store_unavailable", response: { status: 503 } });
    expect(decision.action === "respond" && decision.response.headers).toContainEqual(["retry-after", "2"]);
    const thrown = await receiver.receive(headers, BODY, () => "ran").catch((error: unknown) => error);
    expect(thrown).toMatchObject({ code: "store_unavailable", retryAfterSeconds: 2 });
  });
});

describe("what finish records", () => {
  it("only a 2xx answer records the delivery: a 299 does, a 300 (a 3xx) releases it for the redelivery", async () => {
    const receiver = receiverOn(new MemoryStore());
    const { headers } = await swDelivery();
    const first = await receiver.begin(headers, BODY);
    if (first.action !== "process") throw new Error(`expected to process, got ${first.outcome}`);
    await receiver.finish(first.ticket, { status: 300 });
    const retry = await receiver.begin(headers, BODY);
    if (retry.action !== "process") throw new Error(`expected to process the retry, got ${retry.outcome}`);
    await receiver.finish(retry.ticket, { status: 299 });
    expect(await receiver.begin(headers, BODY)).toMatchObject({ action: "respond", outcome: "duplicate" });
  });

  it("a status that is not a whole number from 200 to 299 (NaN, undefined, a string, 200.5) releases the delivery", async () => {
    const receiver = receiverOn(new MemoryStore());
    const { headers } = await swDelivery();
    for (const status of [Number.NaN, undefined, "200", 200.5, Number.POSITIVE_INFINITY]) {
      const decision = await receiver.begin(headers, BODY);
      if (decision.action !== "process") throw new Error(`expected to process after ${String(status)}`);
      await receiver.finish(decision.ticket, { status: status as number });
    }
    expect((await receiver.begin(headers, BODY)).action).toBe("process");
  });

  it("a ticket settles once: abort after a finish, or finish after an abort, does nothing and reports nothing", async () => {
    const events: WebhookEvent[] = [];
    const receiver = receiverOn(new MemoryStore(), events);
    const processed = await signWebhook({
      scheme: standardWebhooks,
      secret: SW_SECRET,
      body: BODY,
      id: "msg_settle_1",
      timestamp: NOW,
    });
    const released = await signWebhook({
      scheme: standardWebhooks,
      secret: SW_SECRET,
      body: BODY,
      id: "msg_settle_2",
      timestamp: NOW,
    });
    const first = await receiver.begin(processed.headers, BODY);
    const second = await receiver.begin(released.headers, BODY);
    if (first.action !== "process" || second.action !== "process") throw new Error("expected to process both");
    await receiver.finish(first.ticket, { status: 200 });
    await receiver.abort(second.ticket);
    const settled = events.length;
    await receiver.abort(first.ticket);
    await receiver.finish(second.ticket, { status: 200 });
    expect(events.slice(settled)).toEqual([]);
    expect(await receiver.begin(processed.headers, BODY)).toMatchObject({ outcome: "duplicate" });
    expect((await receiver.begin(released.headers, BODY)).action).toBe("process");
  });
});

describe("the lease on a delivery being processed", () => {
  it("a worker that crashed mid-handler blocks its delivery for lockTtlMs only: the redelivery after it is processed", async () => {
    let now = NOW * 1000;
    const store = new MemoryStore({ now: () => now });
    const receiver = createWebhookReceiver({
      scheme: standardWebhooks,
      secret: SW_SECRET,
      store,
      now: clockAt(NOW),
      lockTtlMs: 1_500,
      extendLease: false, // the worker's renewal timer died with it
    });
    const { headers } = await swDelivery();
    expect((await receiver.begin(headers, BODY)).action).toBe("process"); // and never settled: the worker died
    now += 1_499;
    const copy = await receiver.begin(headers, BODY);
    expect(copy).toMatchObject({ action: "respond", outcome: "in_flight", response: { status: 409 } });
    // Rounded up: a Retry-After of 1 would bring the copy back while the lease still holds.
    expect(copy.action === "respond" && copy.response.headers).toContainEqual(["retry-after", "2"]);
    now += 2;
    expect((await receiver.begin(headers, BODY)).action).toBe("process");
  });
});

describe("extendLease: the lease renewed while the handler runs", () => {
  // Timers and the store's clock are the fake timers' (the store is made after they are faked):
  // a renewal is a timer, a lease runs out on the clock.
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  function leasedReceiver(store: InterlockStore, options: Partial<WebhookReceiverOptions> = {}) {
    return createWebhookReceiver({
      scheme: standardWebhooks,
      secret: SW_SECRET,
      store,
      now: clockAt(NOW),
      ...options,
    });
  }

  /** A handler still running until `end` is called; `started` resolves once it runs. */
  function runningHandler() {
    let runs = 0;
    let markStarted!: () => void;
    let end!: () => void;
    const started = new Promise<void>((resolve) => {
      markStarted = resolve;
    });
    const ended = new Promise<void>((resolve) => {
      end = resolve;
    });
    const handler = () => {
      runs++;
      markStarted();
      return ended;
    };
    return { handler, started, end: () => end(), runs: () => runs };
  }

  it("by default, a redelivery while the handler still runs past lockTtlMs is in flight: the handler runs once", async () => {
    const store = new MemoryStore();
    const receiver = leasedReceiver(store, { lockTtlMs: 300 });
    const { headers } = await swDelivery();
    const slow = runningHandler();
    const first = receiver.receive(headers, BODY, slow.handler);
    await slow.started;
    vi.advanceTimersByTime(1_000); // more than three leases
    let redelivered = 0;
    const copy = await receiver.receive(headers, BODY, () => void redelivered++);
    expect(copy).toMatchObject({ outcome: "in_flight", retryAfterSeconds: 1 });
    slow.end();
    expect(await first).toMatchObject({ outcome: "processed" });
    expect([slow.runs(), redelivered]).toEqual([1, 0]);
    // Its lease was still its own: the delivery is recorded, and the next copy is a duplicate.
    expect(await receiver.receive(headers, BODY, () => void redelivered++)).toMatchObject({ outcome: "duplicate" });
  });

  it("extendLease: false renews nothing: a redelivery past lockTtlMs runs beside the handler", async () => {
    const store = new MemoryStore();
    const extend = vi.spyOn(store, "extend");
    const receiver = leasedReceiver(store, { lockTtlMs: 300, extendLease: false });
    const { headers } = await swDelivery();
    const slow = runningHandler();
    const first = receiver.receive(headers, BODY, slow.handler);
    await slow.started;
    vi.advanceTimersByTime(1_000);
    let redelivered = 0;
    expect(await receiver.receive(headers, BODY, () => void redelivered++)).toMatchObject({ outcome: "processed" });
    slow.end();
    expect(await first).toMatchObject({ outcome: "processed" });
    expect([slow.runs(), redelivered, extend.mock.calls.length]).toEqual([1, 1, 0]);
  });

  it("renews until the delivery has been held for maxMs; the lease then runs out and a redelivery runs", async () => {
    const store = new MemoryStore();
    const extend = vi.spyOn(store, "extend");
    const receiver = leasedReceiver(store, { lockTtlMs: 300, extendLease: { maxMs: 1_000 } });
    const { headers } = await swDelivery();
    expect((await receiver.begin(headers, BODY)).action).toBe("process"); // a handler that never returns
    vi.advanceTimersByTime(900);
    expect(await receiver.begin(headers, BODY)).toMatchObject({ action: "respond", outcome: "in_flight" });
    vi.advanceTimersByTime(10_000);
    expect(extend).toHaveBeenCalledTimes(10); // every 100 ms, for 1 s
    expect((await receiver.begin(headers, BODY)).action).toBe("process");
  });

  it("the default renews for 10 minutes at most (DEFAULT_IDEMPOTENCY_RENEWAL_MAX_MS), on the default 60 s lease", async () => {
    const store = new MemoryStore();
    const extend = vi.spyOn(store, "extend");
    const receiver = leasedReceiver(store);
    const { headers } = await swDelivery();
    expect((await receiver.begin(headers, BODY)).action).toBe("process");
    vi.advanceTimersByTime(DEFAULT_IDEMPOTENCY_RENEWAL_MAX_MS - 1);
    expect(await receiver.begin(headers, BODY)).toMatchObject({ action: "respond", outcome: "in_flight" });
    vi.advanceTimersByTime(60_000 + 1);
    expect((await receiver.begin(headers, BODY)).action).toBe("process");
    expect(extend).toHaveBeenCalledTimes(DEFAULT_IDEMPOTENCY_RENEWAL_MAX_MS / 20_000);
  });

  it("cutOff: the lease is renewed no more, so the delivery lapses within lockTtlMs; a redelivery meanwhile is in flight, then runs", async () => {
    const store = new MemoryStore();
    const extend = vi.spyOn(store, "extend");
    const receiver = leasedReceiver(store, { lockTtlMs: 300 });
    const { headers } = await swDelivery();
    const first = await receiver.begin(headers, BODY);
    if (first.action !== "process") throw new Error(`expected to process, got ${first.outcome}`);
    vi.advanceTimersByTime(150); // renewed once, at 100 ms: held until 400 ms
    receiver.cutOff(first.ticket);
    receiver.cutOff(first.ticket); // idempotent
    vi.advanceTimersByTime(200);
    expect(await receiver.begin(headers, BODY)).toMatchObject({ action: "respond", outcome: "in_flight" });
    vi.advanceTimersByTime(100); // past 400 ms: renewed, it would be held until 700 ms
    expect(extend).toHaveBeenCalledTimes(1);
    expect((await receiver.begin(headers, BODY)).action).toBe("process");
  });

  it("cutOff does not settle: a 2xx finish before the lease lapses records the delivery, and a redelivery is a duplicate", async () => {
    const receiver = leasedReceiver(new MemoryStore(), { lockTtlMs: 300 });
    const { headers } = await swDelivery();
    const first = await receiver.begin(headers, BODY);
    if (first.action !== "process") throw new Error(`expected to process, got ${first.outcome}`);
    receiver.cutOff(first.ticket);
    vi.advanceTimersByTime(200);
    await receiver.finish(first.ticket, { status: 200 });
    vi.advanceTimersByTime(10_000);
    expect(await receiver.begin(headers, BODY)).toMatchObject({ action: "respond", outcome: "duplicate" });
    receiver.cutOff(first.ticket); // after the finish: nothing, and no throw
  });

  it("stops renewing once the ticket is settled by finish or abort", async () => {
    const store = new MemoryStore();
    const extend = vi.spyOn(store, "extend");
    const receiver = leasedReceiver(store, { lockTtlMs: 300 });
    const signed = (id: string) =>
      signWebhook({ scheme: standardWebhooks, secret: SW_SECRET, body: BODY, id, timestamp: NOW });
    const finished = await receiver.begin((await signed("msg_renew_1")).headers, BODY);
    const aborted = await receiver.begin((await signed("msg_renew_2")).headers, BODY);
    if (finished.action !== "process" || aborted.action !== "process") throw new Error("expected to process both");
    vi.advanceTimersByTime(150);
    expect(extend).toHaveBeenCalledTimes(2); // one renewal each, every 100 ms
    await receiver.finish(finished.ticket, { status: 200 });
    await receiver.abort(aborted.ticket);
    vi.advanceTimersByTime(10_000);
    expect(extend).toHaveBeenCalledTimes(2);
  });

  it.each(["returns", "throws"] as const)("receive stops renewing once its handler %s", async (how) => {
    const store = new MemoryStore();
    const extend = vi.spyOn(store, "extend");
    const receiver = leasedReceiver(store, { lockTtlMs: 300 });
    const { headers } = await swDelivery();
    const slow = runningHandler();
    const handler = async () => {
      await slow.handler();
      if (how === "throws") throw new Error("boom");
      return "done";
    };
    const receipt = receiver.receive(headers, BODY, handler).catch((error: unknown) => error);
    await slow.started;
    vi.advanceTimersByTime(150);
    expect(extend).toHaveBeenCalledTimes(1);
    slow.end();
    expect(await receipt).toMatchObject(how === "returns" ? { outcome: "processed" } : { message: "boom" });
    vi.advanceTimersByTime(10_000);
    expect(extend).toHaveBeenCalledTimes(1);
  });

  it.each([0, -1, 1.5, Number.NaN])("refuses a maxMs of %s with InterlockConfigError", (maxMs) => {
    expect(() => leasedReceiver(new MemoryStore(), { extendLease: { maxMs } })).toThrow(InterlockConfigError);
  });
});

describe("checkHeaders then begin with the bytes (Fastify's preParsing, then preHandler)", () => {
  it("parses the headers once for the begin that follows with the same headers; another delivery's check between, or a second begin, parses again", async () => {
    const parse = vi.fn(standardWebhooks.parse);
    const receiver = createWebhookReceiver({
      scheme: { ...standardWebhooks, parse },
      secret: SW_SECRET,
      store: new MemoryStore(),
      now: () => NOW * 1000,
    });
    const first = await swDelivery();
    expect(receiver.checkHeaders(first.headers)).toBeUndefined();
    expect(await receiver.begin(first.headers, BODY)).toMatchObject({ action: "process", event: { id: "msg_1" } });
    expect(parse).toHaveBeenCalledTimes(1);
    // The claims were used once: the same headers again are parsed again (and are a copy in flight).
    expect(await receiver.begin(first.headers, BODY)).toMatchObject({ outcome: "in_flight" });
    expect(parse).toHaveBeenCalledTimes(2);
    const second = await signWebhook({
      scheme: standardWebhooks,
      secret: SW_SECRET,
      body: BODY,
      id: "msg_2",
      timestamp: NOW,
    });
    const third = await signWebhook({
      scheme: standardWebhooks,
      secret: SW_SECRET,
      body: BODY,
      id: "msg_3",
      timestamp: NOW,
    });
    receiver.checkHeaders(second.headers);
    receiver.checkHeaders(third.headers);
    expect(await receiver.begin(second.headers, BODY)).toMatchObject({ action: "process", event: { id: "msg_2" } });
    expect(parse).toHaveBeenCalledTimes(5);
    // Kept claims still have the bytes verified against them.
    receiver.checkHeaders(third.headers);
    expect(await receiver.begin(third.headers, `${BODY} `)).toMatchObject({
      outcome: "rejected",
      error: { code: "no_matching_signature" },
    });
    expect(parse).toHaveBeenCalledTimes(6);
  });

  it("one headers object reused for every delivery: a check whose begin never came leaves no claims for the next one's begin", async () => {
    const receiver = createWebhookReceiver({
      scheme: standardWebhooks,
      secret: SW_SECRET,
      store: new MemoryStore(),
      now: () => NOW * 1000,
    });
    const [a, b] = await Promise.all(
      ["msg_a", "msg_b"].map((id) =>
        signWebhook({ scheme: standardWebhooks, secret: SW_SECRET, body: BODY, id, timestamp: NOW }),
      ),
    );
    const headers: Record<string, string> = { ...a!.headers };
    expect(receiver.checkHeaders(headers)).toBeUndefined(); // A's body is then refused: no begin
    Object.assign(headers, b!.headers);
    expect(receiver.checkHeaders(headers)).toBeUndefined();
    expect(await receiver.begin(headers, BODY)).toMatchObject({ action: "process", event: { id: "msg_b" } });
  });
});

describe("begin with a body reader: the body read only once the headers pass", () => {
  it("answers a delivery its headers refuse without calling the reader, and reports it once", async () => {
    const events: WebhookEvent[] = [];
    const receiver = receiverOn(new MemoryStore(), events);
    const read = vi.fn(() => BODY);
    const stale = await signWebhook({
      scheme: standardWebhooks,
      secret: SW_SECRET,
      body: BODY,
      id: "msg_1",
      timestamp: NOW - 600,
    });
    for (const [headers, status, code] of [
      [{}, 400, "missing_header"],
      [stale.headers, 401, "timestamp_too_old"],
    ] as const) {
      const decision = await receiver.begin(headers, read);
      expect(decision).toMatchObject({ action: "respond", outcome: "rejected", response: { status }, error: { code } });
      expect(receiver.checkHeaders(headers)).toMatchObject({ outcome: "rejected", error: { code } });
    }
    expect(read).not.toHaveBeenCalled();
    expect(events.map((e) => [e.type, "code" in e && e.code])).toEqual([
      ["webhook.rejected", "missing_header"],
      ["webhook.rejected", "missing_header"],
      ["webhook.rejected", "timestamp_too_old"],
      ["webhook.rejected", "timestamp_too_old"],
    ]);
  });

  it("reads the body once for headers that pass, then decides as with the bytes", async () => {
    const receiver = receiverOn(new MemoryStore());
    const { headers } = await swDelivery();
    expect(receiver.checkHeaders(headers)).toBeUndefined();
    const read = vi.fn(async () => new TextEncoder().encode(BODY));
    const decision = await receiver.begin(headers, read);
    expect(read).toHaveBeenCalledTimes(1);
    expect(decision).toMatchObject({ action: "process", event: { id: "msg_1" } });
    if (decision.action === "process") await receiver.finish(decision.ticket, { status: 200 });
    expect(await receiver.begin(headers, () => BODY)).toMatchObject({ outcome: "duplicate" });
    const tampered = await receiver.begin(headers, () => `${BODY} `);
    expect(tampered).toMatchObject({ outcome: "rejected", error: { code: "no_matching_signature" } });
    expect(
      await receiver.receive(
        headers,
        () => BODY,
        () => "ran",
      ),
    ).toMatchObject({ outcome: "duplicate" });
  });

  it("checks the timestamp window again once the body is read (by a reader, or between checkHeaders and begin): a body slower than the window is refused", async () => {
    const events: WebhookEvent[] = [];
    let now = NOW * 1000;
    const receiver = createWebhookReceiver({
      scheme: standardWebhooks,
      secret: SW_SECRET,
      store: new MemoryStore(),
      now: () => now,
      onEvent: (e) => events.push(e),
    });
    const { headers } = await swDelivery();
    const slowRead = async () => {
      now += 301_000; // the headers passed; the body took longer than the tolerance
      return BODY;
    };
    expect(await receiver.begin(headers, slowRead)).toMatchObject({
      outcome: "rejected",
      error: { code: "timestamp_too_old" },
    });
    now = NOW * 1000;
    expect(await receiver.begin(headers, () => BODY)).toMatchObject({ action: "process", event: { id: "msg_1" } });
    expect(events.map((e) => [e.type, "code" in e ? e.code : e.id])).toEqual([
      ["webhook.rejected", "timestamp_too_old"],
      ["webhook.verified", "msg_1"],
    ]);
    // Headers checked first, then begun with the bytes read meanwhile (Fastify): the same.
    const late = await signWebhook({
      scheme: standardWebhooks,
      secret: SW_SECRET,
      body: BODY,
      id: "msg_9",
      timestamp: NOW,
    });
    expect(receiver.checkHeaders(late.headers)).toBeUndefined();
    now += 301_000;
    expect(await receiver.begin(late.headers, BODY)).toMatchObject({
      outcome: "rejected",
      error: { code: "timestamp_too_old" },
    });
  });

  it("refuses the body error a reader returns or throws, as refuse does; any other throw is the reader's own", async () => {
    const events: WebhookEvent[] = [];
    const receiver = receiverOn(new MemoryStore(), events);
    const { headers } = await swDelivery();
    const returned = await receiver.begin(headers, () => BodyError.tooLarge(16));
    expect(returned).toMatchObject({
      outcome: "rejected",
      response: { status: 413 },
      error: { code: "body_too_large" },
    });
    const thrown = await receiver.begin(headers, async () => {
      throw BodyError.incomplete();
    });
    expect(thrown).toMatchObject({
      outcome: "rejected",
      response: { status: 400 },
      error: { code: "body_incomplete" },
    });
    expect(events.map((e) => "code" in e && e.code)).toEqual(["body_too_large", "body_incomplete"]);
    const failure = new Error("socket gone");
    await expect(
      receiver.begin(headers, () => {
        throw failure;
      }),
    ).rejects.toBe(failure);
  });
});

describe("refusals an adapter makes before begin", () => {
  it("answers problem+json and reports the refusal", async () => {
    const events: WebhookEvent[] = [];
    const receiver = receiverOn(new MemoryStore(), events);
    const decision = receiver.refuse("body_too_large", "body exceeds 1024 bytes");
    expect(decision).toMatchObject({ action: "respond", outcome: "rejected", response: { status: 413 } });
    expect(events).toEqual([expect.objectContaining({ type: "webhook.rejected", code: "body_too_large" })]);
  });

  it("carries the request's correlation id when given its headers: traceparent's trace-id, else x-request-id", async () => {
    const events: WebhookEvent[] = [];
    const receiver = receiverOn(new MemoryStore(), events);
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    receiver.refuse("body_not_raw", "consumed", {
      traceparent: `00-${traceId}-00f067aa0ba902b7-01`,
      "x-request-id": "r",
    });
    receiver.refuse("body_not_raw", "consumed", new Headers({ "X-Request-Id": "req-7" }));
    receiver.refuse("body_not_raw", "consumed", { "x-request-id": "not valid: spaces" });
    receiver.refuse("body_not_raw", "consumed");
    expect(events.map((e) => e.correlationId)).toEqual([traceId, "req-7", undefined, undefined]);
    expect(events.slice(2).every((e) => !("correlationId" in e))).toBe(true);
  });
});

describe("Shopify: de-duplicated on X-Shopify-Event-Id, else X-Shopify-Webhook-Id, bound to the body", () => {
  const SECRET = "shpss_test_secret";
  const ORDER = '{"id":820982911946154500,"financial_status":"paid"}';

  function shopifyReceiver() {
    return createWebhookReceiver({ scheme: shopify, secret: SECRET, store: new MemoryStore() });
  }

  async function shopifyDelivery(webhookId: string, eventId: string | undefined, body = ORDER) {
    const signed = await signWebhook({ scheme: shopify, secret: SECRET, body, id: webhookId });
    const headers: Record<string, string> = { ...signed.headers, "x-shopify-topic": "orders/paid" };
    if (eventId !== undefined) headers["x-shopify-event-id"] = eventId;
    return { headers, body };
  }

  /** Receives each delivery in turn; the handler records the id it saw. */
  async function receiveAll(deliveries: Array<{ headers: Record<string, string>; body: string }>) {
    const receiver = shopifyReceiver();
    const handled: Array<string | undefined> = [];
    const outcomes: string[] = [];
    for (const { headers, body } of deliveries) {
      const receipt = await receiver.receive(headers, body, (event) => void handled.push(event.id));
      outcomes.push(receipt.outcome);
    }
    return { outcomes, handled };
  }

  it("one event delivered under two webhook ids: the second is a duplicate", async () => {
    const { outcomes, handled } = await receiveAll([
      await shopifyDelivery("wh-1", "evt-98880550"),
      await shopifyDelivery("wh-2", "evt-98880550"),
    ]);
    expect(outcomes).toEqual(["processed", "duplicate"]);
    expect(handled).toEqual(["evt-98880550"]);
  });

  it("two events under one webhook id are two deliveries (the event id decides when sent)", async () => {
    const { outcomes } = await receiveAll([
      await shopifyDelivery("wh-1", "evt-1"),
      await shopifyDelivery("wh-1", "evt-2"),
    ]);
    expect(outcomes).toEqual(["processed", "processed"]);
  });

  it("the event id is unsigned: the key still binds the body, so another body under it is not suppressed", async () => {
    const first = await shopifyDelivery("wh-1", "evt-1");
    const other = await shopifyDelivery("wh-2", "evt-1", '{"id":1,"financial_status":"refunded"}');
    expect((await receiveAll([first, other])).outcomes).toEqual(["processed", "processed"]);
    const verifier = shopifyReceiver().verifier;
    const event = await verifier.verify(first.headers, first.body);
    const { key, fingerprint } = await deliveryKey(event);
    expect([event.id, event.idCovered]).toEqual(["evt-1", false]);
    expect(key).toBe(`wh:shopify:evt-1:${fingerprint}`);
    expect(fingerprint).toBe(createHash("sha256").update(ORDER).digest("hex").slice(0, 32));
  });

  it("a redelivery signed with the rotated secret is still a duplicate (Shopify signs each send with the oldest live secret)", async () => {
    const NEW = "shpss_rotated_secret";
    const receiver = createWebhookReceiver({ scheme: shopify, secret: [NEW, SECRET], store: new MemoryStore() });
    const signedWith = async (secret: string) => {
      const signed = await signWebhook({ scheme: shopify, secret, body: ORDER, id: "wh-1" });
      return { ...signed.headers, "x-shopify-event-id": "evt-1" };
    };
    const runs: string[] = [];
    const handler = (event: { id: string | undefined }) => void runs.push(event.id ?? "");
    const outcomes = [
      (await receiver.receive(await signedWith(SECRET), ORDER, handler)).outcome,
      (await receiver.receive(await signedWith(NEW), ORDER, handler)).outcome,
    ];
    expect(outcomes).toEqual(["processed", "duplicate"]);
    expect(runs).toEqual(["evt-1"]);
  });

  it("without X-Shopify-Event-Id, as before: the webhook id is the id, a redelivery is a duplicate", async () => {
    const { outcomes, handled } = await receiveAll([
      await shopifyDelivery("wh-1", undefined),
      await shopifyDelivery("wh-1", undefined),
      await shopifyDelivery("wh-2", undefined),
    ]);
    expect(outcomes).toEqual(["processed", "duplicate", "processed"]);
    expect(handled).toEqual(["wh-1", "wh-2"]);
    const sent = await shopifyDelivery("wh-1", undefined);
    const event = await shopifyReceiver().verifier.verify(sent.headers, sent.body);
    const { key, fingerprint } = await deliveryKey(event);
    expect(key).toBe(`wh:shopify:wh-1:${fingerprint}`);
  });

  it("an event id sent twice is ambiguous: refused 400 malformed_header", async () => {
    const sent = await shopifyDelivery("wh-1", undefined);
    // As Node hands a repeated header over: an array.
    const headers = { ...sent.headers, "x-shopify-event-id": ["evt-1", "evt-2"] };
    const decision = await shopifyReceiver().begin(headers, sent.body);
    expect(decision).toMatchObject({ action: "respond", outcome: "rejected", error: { code: "malformed_header" } });
  });
});

describe("an unsigned id with a signed timestamp (a custom scheme)", () => {
  const acme = hmacScheme({ name: "acme", idHeader: "x-delivery-id", timestampHeader: "x-timestamp" });
  const SECRET = "acme-secret";

  it("a retry re-signed with a fresh timestamp is a duplicate: the key binds the body, not the signature", async () => {
    let now = NOW * 1000;
    const receiver = createWebhookReceiver({ scheme: acme, secret: SECRET, store: new MemoryStore(), now: () => now });
    const sent = async (timestamp: number) => {
      const signed = await signWebhook({ scheme: acme, secret: SECRET, body: BODY, timestamp });
      return { ...signed.headers, "x-delivery-id": "dlv_1" };
    };
    const runs: string[] = [];
    const handler = (event: { id: string | undefined }) => void runs.push(event.id ?? "");
    const first = await receiver.receive(await sent(NOW), BODY, handler);
    now += 60_000;
    const retry = await receiver.receive(await sent(NOW + 60), BODY, handler);
    expect([first.outcome, retry.outcome]).toEqual(["processed", "duplicate"]);
    expect(runs).toEqual(["dlv_1"]);
  });
});

describe("Linear: the key binds the body without its webhookTimestamp, so a copy re-signed with a fresh one stays a duplicate", () => {
  const SECRET = "lin_wh_s3cret";
  const DELIVERY = "0f1e2d3c-aaaa-4bbb-8ccc-123456789abc";
  const at = (ms: number) =>
    `{"action":"update","type":"Issue","data":{"id":"iss_1","title":"a"},"webhookTimestamp":${ms},"webhookId":"wh_1"}`;
  const sha = (text: string) => createHash("sha256").update(text).digest("hex").slice(0, 32);

  /** A receiver whose clock the test moves, and each delivery's outcome and handler runs. */
  function linearReceiver(scheme = linear) {
    let now = NOW * 1000;
    const receiver = createWebhookReceiver({ scheme, secret: SECRET, store: new MemoryStore(), now: () => now });
    let runs = 0;
    return {
      receiver,
      runs: () => runs,
      later(ms: number) {
        now += ms;
      },
      async send(body: string, id = DELIVERY) {
        const { headers } = await signWebhook({ scheme, secret: SECRET, body, id });
        return (await receiver.receive(headers, body, () => void runs++)).outcome;
      },
    };
  }

  it("a retry re-signed with a fresh webhookTimestamp is a duplicate: the handler runs once", async () => {
    const linearDeliveries = linearReceiver();
    const first = await linearDeliveries.send(at(NOW * 1000));
    linearDeliveries.later(60_000); // Linear retries a minute later, with the time of the retry
    const retry = await linearDeliveries.send(at(NOW * 1000 + 60_000));
    expect([first, retry, linearDeliveries.runs()]).toEqual(["processed", "duplicate", 1]);
  });

  it("a copy with any other change in the body is another delivery, whatever its webhookTimestamp", async () => {
    const T = NOW * 1000;
    const changed = [
      at(T + 1).replace('"title":"a"', '"title":"b"'), // another value
      at(T + 1).replace('"action":"update"', '"action": "update"'), // a byte outside the member
      at(T + 1).replace('"webhookId":"wh_1"', '"webhookId":"wh_2"'), // after the member
      `{"webhookTimestamp":${T + 1},${at(T + 1)
        .slice(1)
        .replace(`,"webhookTimestamp":${T + 1}`, "")}`, // the member moved
      at(T).replace('"data":{', `"data":{"webhookTimestamp":${T},`), // a nested member of that name is no timestamp
    ];
    for (const body of changed) {
      const linearDeliveries = linearReceiver();
      const outcomes = [await linearDeliveries.send(at(T)), await linearDeliveries.send(body)];
      expect(outcomes, body).toEqual(["processed", "processed"]);
    }
  });

  it("hashes the body's bytes with exactly the member's bytes cut out, never re-serialised JSON", async () => {
    const verifier = createWebhookReceiver({
      scheme: linear,
      secret: SECRET,
      store: new MemoryStore(),
      now: clockAt(NOW),
    }).verifier;
    const keyOf = async (body: string) => {
      const { headers } = await signWebhook({ scheme: linear, secret: SECRET, body, id: DELIVERY });
      return deliveryKey(await verifier.verify(headers, body));
    };
    const T = NOW * 1000;
    // Spacing, escapes and a string holding the member's text are kept as sent; only the member goes.
    const body = `{ "title" : "say \\"webhookTimestamp\\":1 {[" ,\n "webhookTimestamp" :\t${T} , "n":[{"a":"]"}] }`;
    const kept = `{ "title" : "say \\"webhookTimestamp\\":1 {[" ,\n  , "n":[{"a":"]"}] }`;
    expect(await keyOf(body)).toEqual({ key: `wh:linear:${DELIVERY}:${sha(kept)}`, fingerprint: sha(kept) });
    // The name escaped is the same member; the last member, and the only one.
    const escaped = `{"type":"Issue","webhook\\u0054imestamp":${T}}`;
    expect((await keyOf(escaped)).fingerprint).toBe(sha('{"type":"Issue",}'));
    expect((await keyOf(`{"webhookTimestamp":${T}}`)).fingerprint).toBe(sha("{}"));
    // Sent twice: which one a parser keeps is its choice, so the body is hashed whole.
    const twice = `{"webhookTimestamp":${T},"webhookTimestamp":${T}}`;
    expect((await keyOf(twice)).fingerprint).toBe(sha(twice));
  });

  it("a body without a numeric webhookTimestamp (requireTimestamp: false) is hashed whole, as any other scheme's", async () => {
    const linearDeliveries = linearReceiver(linearScheme({ requireTimestamp: false }));
    const outcomes = [
      await linearDeliveries.send('{"type":"Issue","webhookTimestamp":"1"}'),
      await linearDeliveries.send('{"type":"Issue","webhookTimestamp":"2"}'),
      await linearDeliveries.send('{"type":"Issue","webhookTimestamp":"2"}'),
    ];
    expect(outcomes).toEqual(["processed", "processed", "duplicate"]);
  });

  it("other schemes' keys are as recorded before: a delivery processed before an upgrade stays a duplicate", async () => {
    const body = '{"id":7,"webhookTimestamp":1}';
    const acme = hmacScheme({ name: "acme", idHeader: "x-delivery-id", timestampHeader: false });
    for (const scheme of [github, shopify, acme]) {
      const store = new MemoryStore();
      // What the previous version recorded: the id and the first 32 hex digits of the body's SHA-256.
      const key = `wh:${scheme.name}:d-1:${sha(body)}`;
      const claim = await store.claim(key, { fingerprint: sha(body), lockTtlMs: 60_000 });
      if (claim.state !== "claimed") throw new Error("not claimed");
      await store.complete(key, claim.token, { status: 200, headers: [], body: new Uint8Array() }, { ttlMs: 60_000 });
      const receiver = createWebhookReceiver({ scheme, secret: "s3cret", store });
      const { headers } = await signWebhook({ scheme, secret: "s3cret", body, id: "d-1" });
      expect((await receiver.receive(headers, body, () => undefined)).outcome, scheme.name).toBe("duplicate");
    }
  });
});

describe("a scheme of the app's own whose deliveryContent throws", () => {
  it("keys the delivery on its whole body, as a scheme without deliveryContent: processed, then a duplicate", async () => {
    const plain = hmacScheme({ name: "plain", idHeader: "x-delivery-id" });
    const throwing: typeof plain = {
      ...plain,
      deliveryContent: () => {
        throw new Error("a bug in the app's scheme");
      },
    };
    const receiver = createWebhookReceiver({
      scheme: throwing,
      secret: "s",
      store: new MemoryStore(),
      now: clockAt(NOW),
    });
    const signed = await signWebhook({ scheme: plain, secret: "s", body: BODY, id: "d-1", timestamp: NOW });
    const outcomes: string[] = [];
    for (let copy = 0; copy < 2; copy++)
      outcomes.push((await receiver.receive(signed.headers, BODY, () => {})).outcome);
    expect(outcomes).toEqual(["processed", "duplicate"]);
    const event = await receiver.verifier.verify(signed.headers, BODY);
    const asPlain = createWebhookReceiver({ scheme: plain, secret: "s", store: new MemoryStore(), now: clockAt(NOW) });
    const whole = await deliveryKey(await asPlain.verifier.verify(signed.headers, BODY));
    expect(await deliveryKey(event)).toEqual(whole);
  });
});

describe("an unsigned header id beside a payloadId: the signed payload's id names the delivery", () => {
  const acme = hmacScheme({
    name: "acme",
    idHeader: "x-delivery-id",
    payloadId: (payload) => (payload as { id?: string } | null)?.id,
  });
  const SECRET = "acme-secret";
  const EVENT = '{"id":"evt_42","type":"payment.succeeded"}';

  it("a captured delivery replayed under new header ids, or none, is a duplicate: the handler runs once", async () => {
    const receiver = createWebhookReceiver({
      scheme: acme,
      secret: SECRET,
      store: new MemoryStore(),
      now: clockAt(NOW),
    });
    const signed = await signWebhook({ scheme: acme, secret: SECRET, body: EVENT, id: "d-1", timestamp: NOW });
    const { "x-delivery-id": _, ...withoutId } = signed.headers;
    const runs: Array<[string | undefined, boolean]> = [];
    const outcomes: string[] = [];
    for (const headers of [signed.headers, { ...signed.headers, "x-delivery-id": "attacker-2" }, withoutId]) {
      const receipt = await receiver.receive(headers, EVENT, (event) => void runs.push([event.id, event.idCovered]));
      outcomes.push(receipt.outcome);
    }
    expect(outcomes).toEqual(["processed", "duplicate", "duplicate"]);
    expect(runs).toEqual([["evt_42", true]]);
    const event = await receiver.verifier.verify(signed.headers, EVENT);
    expect(await deliveryKey(event)).toEqual({ key: "wh:acme:evt_42", fingerprint: "" });
  });

  it("a payload that names no id: the header's, unsigned, bound to the body as before", async () => {
    const receiver = createWebhookReceiver({
      scheme: acme,
      secret: SECRET,
      store: new MemoryStore(),
      now: clockAt(NOW),
    });
    for (const body of ['{"type":"ping"}', "not json"]) {
      const signed = await signWebhook({ scheme: acme, secret: SECRET, body, id: "d-1", timestamp: NOW });
      const event = await receiver.verifier.verify(signed.headers, body);
      expect([event.id, event.idCovered]).toEqual(["d-1", false]);
      expect((await deliveryKey(event)).key).toBe(
        `wh:acme:d-1:${createHash("sha256").update(body).digest("hex").slice(0, 32)}`,
      );
    }
  });

  it("a header id in the template is signed: it stays the id, and the payload is not decoded for it", async () => {
    const signedId = hmacScheme({
      name: "acme",
      idHeader: "x-delivery-id",
      template: "{id}.{ts}.{body}",
      payloadId: () => {
        throw new Error("not read");
      },
    });
    const verifier = createWebhookReceiver({
      scheme: signedId,
      secret: SECRET,
      store: new MemoryStore(),
      now: clockAt(NOW),
    }).verifier;
    const signed = await signWebhook({ scheme: signedId, secret: SECRET, body: EVENT, id: "d-1", timestamp: NOW });
    const event = await verifier.verify(signed.headers, EVENT);
    expect([event.id, event.idCovered]).toEqual(["d-1", true]);
  });
});

describe("on the memory store, a system clock set back", () => {
  const DAY = 24 * 3_600_000;
  // Date and performance are faked, so the retention passes at once on both clocks (no timer is
  // faked: none is used); the receiver and its store are made after, as at start-up.
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["Date", "performance"], now: Date.now() });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("makes no processed delivery new again while its timestamp is accepted, however far past its retention", async () => {
    const receiver = createWebhookReceiver({ scheme: standardWebhooks, secret: SW_SECRET, store: new MemoryStore() });
    const signed = await signWebhook({ scheme: standardWebhooks, secret: SW_SECRET, body: BODY, id: "msg_step" });
    const runs: string[] = [];
    const handler = () => runs.push("ran");
    expect((await receiver.receive(signed.headers, signed.body, handler)).outcome).toBe("processed");
    vi.advanceTimersByTime(7 * DAY + 1); // the default retention, passed in real time
    vi.setSystemTime(Date.now() - (7 * DAY + 1)); // and the system clock set back by as much
    expect((await receiver.receive(signed.headers, signed.body, handler)).outcome).toBe("duplicate");
    expect(runs).toEqual(["ran"]);
  });

  it("while the handler runs: the delivery is remembered to the end of its window on the clock as set", async () => {
    const receiver = createWebhookReceiver({
      scheme: standardWebhooks,
      secret: SW_SECRET,
      store: new MemoryStore(),
      retentionMs: 601_001, // the least a 300 s tolerance allows: enough for a clock that is not set
    });
    const signed = await signWebhook({
      scheme: standardWebhooks,
      secret: SW_SECRET,
      body: BODY,
      id: "msg_mid",
      timestamp: Math.floor(Date.now() / 1000) + 299, // signed by a clock ahead of this one
    });
    const runs: string[] = [];
    const stepBack = () => {
      runs.push("ran");
      vi.setSystemTime(Date.now() - 5_000); // NTP stepping back a clock that ran 5 s fast
    };
    expect((await receiver.receive(signed.headers, signed.body, stepBack)).outcome).toBe("processed");
    // The retention passes on both clocks; the clock reads 596 s after the first copy, so 297 s
    // after its timestamp: a copy is still accepted, and must be known.
    vi.advanceTimersByTime(601_002);
    expect((await receiver.receive(signed.headers, signed.body, stepBack)).outcome).toBe("duplicate");
    expect(runs).toEqual(["ran"]);
  });
});
