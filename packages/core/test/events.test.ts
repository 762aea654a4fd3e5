/**
 * What events carry for observability: the request's correlation id, read from `traceparent`
 * or `x-request-id` and validated, and the time each store operation took (`storeMs`, and
 * `claimMs` for a delivery's won claim), told apart from the handler's time.
 */
import { describe, expect, it } from "vitest";
import { correlationIdOf } from "../src/correlation.js";
import { headerReader } from "../src/headers.js";
import {
  BodyError,
  type ClaimOptions,
  type CompleteOptions,
  createIdempotency,
  createWebhookReceiver,
  createWebhookVerifier,
  github,
  HOOK_FAILED_WARNING,
  type IdempotencyOptions,
  type InterlockEvent,
  type InterlockStore,
  MemoryStore,
  type StoredResponse,
  StoreUnavailableError,
  signWebhook,
  standardWebhooks,
  type WebhookEvent,
} from "../src/index.js";
import { clockAt } from "./helpers.js";

const NOW = 1_700_000_000;
const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const BODY = '{"type":"invoice.paid"}';
const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT = `00-${TRACE_ID}-00f067aa0ba902b7-01`;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const correlation = (headers: Record<string, string | string[]>) => correlationIdOf(headerReader(headers));

describe("correlation ids", () => {
  it("takes the trace-id of a valid traceparent, before any x-request-id", () => {
    expect(correlation({ traceparent: TRACEPARENT })).toBe(TRACE_ID);
    expect(correlation({ traceparent: TRACEPARENT, "x-request-id": "req-1" })).toBe(TRACE_ID);
    expect(correlation({ Traceparent: `00-${TRACE_ID}-00f067aa0ba902b7-00` })).toBe(TRACE_ID);
    expect(correlationIdOf(headerReader(new Headers({ traceparent: TRACEPARENT })))).toBe(TRACE_ID);
  });

  it.each([
    ["an all-zero trace-id", `00-${"0".repeat(32)}-00f067aa0ba902b7-01`],
    ["an all-zero parent-id", `00-${TRACE_ID}-${"0".repeat(16)}-01`],
    ["upper-case hex", `00-${TRACE_ID.toUpperCase()}-00f067aa0ba902b7-01`],
    ["another version", `01-${TRACE_ID}-00f067aa0ba902b7-01`],
    ["a short trace-id", `00-${TRACE_ID.slice(1)}-00f067aa0ba902b7-01`],
    ["a long parent-id", `00-${TRACE_ID}-00f067aa0ba902b7a-01`],
    ["one-digit flags", `00-${TRACE_ID}-00f067aa0ba902b7-1`],
    ["trailing fields", `${TRACEPARENT}-extra`],
    ["non-hex", `00-${TRACE_ID.slice(0, 31)}g-00f067aa0ba902b7-01`],
  ])("ignores a traceparent with %s, falling back to x-request-id", (_, traceparent) => {
    expect(correlation({ traceparent })).toBeUndefined();
    expect(correlation({ traceparent, "x-request-id": "req-7" })).toBe("req-7");
  });

  it("ignores a repeated traceparent", () => {
    expect(correlation({ traceparent: [TRACEPARENT, TRACEPARENT] })).toBeUndefined();
  });

  it("takes an x-request-id of 1 to 200 visible ASCII characters, and nothing else", () => {
    expect(correlation({ "x-request-id": "a" })).toBe("a");
    expect(correlation({ "X-Request-ID": "9f8e-7d6c:!~" })).toBe("9f8e-7d6c:!~");
    expect(correlation({ "x-request-id": "r".repeat(200) })).toBe("r".repeat(200));
    for (const bad of ["", "r".repeat(201), "with space", "tab\there", "é", "line\nbreak", "\x7f"]) {
      expect(correlation({ "x-request-id": bad })).toBeUndefined();
    }
    expect(correlation({ "x-request-id": ["a", "b"] })).toBeUndefined();
    expect(correlation({})).toBeUndefined();
  });
});

/**
 * The memory store with each operation slowed by `delays` (ms), timing every call from the
 * inside: an event's `storeMs` is timed from the outside, so it is never less.
 */
function timedStore(delays: Partial<Record<"claim" | "complete" | "release", number>> = {}) {
  const inner = new MemoryStore();
  const took = { claim: [] as number[], complete: [] as number[], release: [] as number[] };
  async function timed<T>(operation: keyof typeof took, run: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      await sleep(delays[operation] ?? 0);
      return await run();
    } finally {
      took[operation].push(performance.now() - started);
    }
  }
  const store: InterlockStore = {
    name: "timed",
    maxRecordBytes: inner.maxRecordBytes,
    claim: (key: string, options: ClaimOptions) => timed("claim", () => inner.claim(key, options)),
    complete: (key: string, token: string, record: StoredResponse, options: CompleteOptions) =>
      timed("complete", () => inner.complete(key, token, record, options)),
    release: (key: string, token: string) => timed("release", () => inner.release(key, token)),
    extend: (key: string, token: string, ttl: number) => inner.extend(key, token, ttl),
  };
  return { store, took };
}

describe("webhook events", () => {
  const delivery = (id = "msg_1") =>
    signWebhook({ scheme: standardWebhooks, secret: SECRET, body: BODY, id, timestamp: NOW });

  function receiverOn(store: InterlockStore) {
    const events: WebhookEvent[] = [];
    const receiver = createWebhookReceiver({
      scheme: standardWebhooks,
      secret: SECRET,
      store,
      now: clockAt(NOW),
      onEvent: (event) => events.push(event),
    });
    return { receiver, events };
  }

  it("carry the request's correlation id from verification to the outcome", async () => {
    const { receiver, events } = receiverOn(new MemoryStore());
    const { headers } = await delivery();
    await receiver.receive({ ...headers, traceparent: TRACEPARENT }, BODY, () => "ok");
    await receiver.receive({ ...headers, "x-request-id": "req-2" }, BODY, () => "ok");
    await receiver.receive({ ...headers, "x-request-id": "bad id" }, BODY, () => "ok");
    await receiver.receive((await delivery("msg_2")).headers, "tampered", () => "ok").catch(() => {});
    expect(events.map((e) => [e.type, e.correlationId])).toEqual([
      ["webhook.verified", TRACE_ID],
      ["webhook.processed", TRACE_ID],
      ["webhook.verified", "req-2"],
      ["webhook.duplicate", "req-2"],
      ["webhook.verified", undefined],
      ["webhook.duplicate", undefined],
      ["webhook.rejected", undefined],
    ]);
    // No id, no key: the event is what it was before correlation ids existed.
    expect(events.slice(4).every((event) => !("correlationId" in event))).toBe(true);
  });

  function verifierNoting() {
    const events: InterlockEvent[] = [];
    const verifier = createWebhookVerifier({
      scheme: standardWebhooks,
      secret: SECRET,
      now: clockAt(NOW),
      onEvent: (event) => events.push(event),
    });
    return { verifier, events };
  }

  it("a verifier alone reports the correlation id too", async () => {
    const { verifier, events } = verifierNoting();
    const { headers } = await delivery();
    await verifier.verify({ ...headers, "x-request-id": "req-3" }, BODY);
    await verifier.verify({ ...headers, "x-request-id": "req-4" }, "tampered").catch(() => {});
    expect(events).toMatchObject([
      { type: "webhook.verified", correlationId: "req-3" },
      { type: "webhook.rejected", code: "no_matching_signature", correlationId: "req-4" },
    ]);
  });

  it("a refused delivery's unverified id is carried only when it is a plain short id", async () => {
    const { verifier, events } = verifierNoting();
    const { headers } = await delivery();
    const forged = '\t{"level":"error","msg":"forged"}';
    for (const id of ["msg_ok", `msg_${"x".repeat(200)}`, `msg${forged}`, "msg ok"]) {
      await verifier.verify({ ...headers, "webhook-id": id }, "tampered").catch(() => {});
    }
    expect(events.map((event) => (event as { id?: string }).id)).toEqual(["msg_ok", undefined, undefined, undefined]);
  });

  it("a refused delivery carries the id it sent whatever came first: a missing signature header, a body over the limit", async () => {
    const events: WebhookEvent[] = [];
    const receiver = createWebhookReceiver({
      scheme: standardWebhooks,
      secret: SECRET,
      store: new MemoryStore(),
      now: clockAt(NOW),
      maxBodyBytes: BODY.length,
      onEvent: (event) => events.push(event),
    });
    const { headers } = await delivery("msg_1");
    const { "webhook-signature": _, ...unsigned } = headers;
    await receiver.begin(unsigned, BODY); // the signature header missing
    expect(receiver.checkHeaders(unsigned)).toBeDefined(); // the same, from the headers alone
    await receiver.begin(headers, "tampered"); // a bad signature
    await receiver.begin(headers, `${BODY} `); // a body over maxBodyBytes, found by the verifier
    await receiver.begin(headers, () => new BodyError("body_too_large", "too large")); // by a body reader
    receiver.refuse("body_too_large", "too large", headers); // by an adapter, before begin
    await receiver.begin({ "svix-id": "msg_2", "svix-timestamp": String(NOW) }, BODY); // Svix's name for the id
    await receiver.begin({ ...unsigned, "webhook-id": "msg 3" }, BODY); // not a plain short id: left out
    expect(events.map((event) => [event.type, "code" in event ? event.code : "", event.id])).toEqual([
      ["webhook.rejected", "missing_header", "msg_1"],
      ["webhook.rejected", "missing_header", "msg_1"],
      ["webhook.rejected", "no_matching_signature", "msg_1"],
      ["webhook.rejected", "body_too_large", "msg_1"],
      ["webhook.rejected", "body_too_large", "msg_1"],
      ["webhook.rejected", "body_too_large", "msg_1"],
      ["webhook.rejected", "missing_header", "msg_2"],
      ["webhook.rejected", "missing_header", undefined],
    ]);
  });

  it("a delivery id the signature does not cover is carried as a refused one's is: only a plain short id; the handler gets it as sent", async () => {
    const events: WebhookEvent[] = [];
    const secret = "github-secret";
    const receiver = createWebhookReceiver({
      scheme: github,
      secret,
      store: new MemoryStore(),
      onEvent: (event) => events.push(event),
    });
    const body = '{"action":"opened"}';
    const { headers } = await signWebhook({ scheme: github, secret, body, id: "72d3162e-cc78-11e3-81ab-4c9367dc0958" });
    // Anyone holding one signed body can send it again under any id.
    const forged = `x\t${"A".repeat(5000)} level=error msg="fake"`;
    const resent = { ...headers, "x-github-delivery": forged };
    const seen: Array<string | undefined> = [];
    const receipt = await receiver.receive(resent, body, (event) => void seen.push(event.id));
    expect(receipt.outcome).toBe("processed");
    expect((await receiver.receive(resent, body, () => "not run")).outcome).toBe("duplicate");
    const other = '{"action":"closed"}';
    const signedOther = await signWebhook({ scheme: github, secret, body: other });
    const failing = { ...signedOther.headers, "x-github-delivery": forged };
    await expect(receiver.receive(failing, other, () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    await receiver.receive(headers, body, (event) => void seen.push(event.id));
    expect(seen).toEqual([forged, "72d3162e-cc78-11e3-81ab-4c9367dc0958"]);
    expect(events.map((event) => [event.type, event.id])).toEqual([
      ["webhook.verified", undefined],
      ["webhook.processed", undefined],
      ["webhook.verified", undefined],
      ["webhook.duplicate", undefined],
      ["webhook.verified", undefined],
      ["webhook.handler_failed", undefined],
      ["webhook.verified", "72d3162e-cc78-11e3-81ab-4c9367dc0958"],
      ["webhook.processed", "72d3162e-cc78-11e3-81ab-4c9367dc0958"],
    ]);
    expect(events[0]).toMatchObject({ idCovered: false });
    // A store that cannot claim: its event carries the id bounded too.
    const down = new MemoryStore();
    down.claim = () => Promise.reject(new StoreUnavailableError("memory", "connection refused"));
    const downEvents: WebhookEvent[] = [];
    const onDown = createWebhookReceiver({ scheme: github, secret, store: down, onEvent: (e) => downEvents.push(e) });
    expect(await onDown.begin(resent, body)).toMatchObject({ outcome: "store_unavailable" });
    expect(downEvents.map((event) => [event.type, event.id])).toEqual([
      ["webhook.verified", undefined],
      ["webhook.store_unavailable", undefined],
    ]);
  });

  it("time the claim, the complete and the handler apart", async () => {
    const { store, took } = timedStore({ claim: 50 });
    const { receiver, events } = receiverOn(store);
    const { headers } = await delivery();
    let handlerMs = 0;
    await receiver.receive(headers, BODY, async () => {
      const started = performance.now();
      await sleep(10);
      handlerMs = performance.now() - started;
    });
    await receiver.receive(headers, BODY, () => "not run");
    const [processed, duplicate] = [events[1], events[3]];
    if (processed?.type !== "webhook.processed" || duplicate?.type !== "webhook.duplicate") throw new Error("order");
    expect(processed.claimMs).toBeGreaterThanOrEqual(took.claim[0] as number);
    expect(processed.storeMs).toBeGreaterThanOrEqual(took.complete[0] as number);
    // The 50 ms claim is not in the handler's time, which ends with the complete.
    expect(processed.storeMs).toBeLessThan(took.claim[0] as number);
    expect(processed.durationMs - processed.storeMs).toBeGreaterThanOrEqual(handlerMs);
    expect(duplicate).toMatchObject({ state: "completed" });
    expect(duplicate.storeMs).toBeGreaterThanOrEqual(took.claim[1] as number);
  });

  it("time the release after a failed handler", async () => {
    const { store, took } = timedStore({ release: 20 });
    const { receiver, events } = receiverOn(store);
    const { headers } = await delivery();
    await receiver
      .receive({ ...headers, "x-request-id": "req-5" }, BODY, () => Promise.reject(new Error("boom")))
      .catch(() => {});
    const failed = events.at(-1);
    if (failed?.type !== "webhook.handler_failed") throw new Error(`unexpected ${failed?.type}`);
    expect(failed).toMatchObject({ released: true, correlationId: "req-5" });
    expect(failed.storeMs).toBeGreaterThanOrEqual(took.release[0] as number);
    expect(failed.claimMs).toBeGreaterThanOrEqual(took.claim[0] as number);
    expect(failed.claimMs).toBeLessThan(took.release[0] as number);
    expect(failed.durationMs).toBeGreaterThanOrEqual(failed.storeMs);
  });

  it("tell a handler that answered outside 2xx from one that threw, by its status", async () => {
    const { receiver, events } = receiverOn(new MemoryStore());
    const decision = await receiver.begin((await delivery("msg_422")).headers, BODY);
    if (decision.action !== "process") throw new Error(`unexpected ${decision.action}`);
    await receiver.finish(decision.ticket, { status: 422 });
    await receiver
      .receive((await delivery("msg_throw")).headers, BODY, () => Promise.reject(new Error("boom")))
      .catch(() => {});
    const failed = events.filter((event) => event.type === "webhook.handler_failed");
    expect(failed.map((event) => [event.id, "status" in event ? event.status : "none"])).toEqual([
      ["msg_422", 422],
      ["msg_throw", "none"],
    ]);
  });

  it("report a claim the store could not make, with its time and why (the driver's message, for logs)", async () => {
    const store = new MemoryStore();
    store.claim = async () => {
      await sleep(15);
      throw new StoreUnavailableError("memory", "WRONGPASS invalid username-password pair");
    };
    const { receiver, events } = receiverOn(store);
    const { headers } = await delivery();
    const decision = await receiver.begin({ ...headers, traceparent: TRACEPARENT }, BODY);
    expect(decision).toMatchObject({ outcome: "store_unavailable" });
    expect(events.map((e) => e.type)).toEqual(["webhook.verified", "webhook.store_unavailable"]);
    expect(events[1]).toMatchObject({
      scheme: "standard-webhooks",
      id: "msg_1",
      operation: "claim",
      error: expect.stringContaining("WRONGPASS invalid username-password pair"),
      correlationId: TRACE_ID,
    });
    expect((events[1] as { storeMs: number }).storeMs).toBeGreaterThan(0);
  });
});

describe("idempotency events", () => {
  function engineOn(store: InterlockStore, options: Partial<IdempotencyOptions> = {}) {
    const events: InterlockEvent[] = [];
    const engine = createIdempotency({ store, principal: false, ...options, onEvent: (event) => events.push(event) });
    return { engine, events };
  }
  const request = (headers: Record<string, string>, body = '{"amount":1}') => ({
    method: "POST",
    route: "/payments",
    path: "/payments",
    headers,
    body,
  });
  const response = (status: number) => ({ status, headers: [], body: new Uint8Array([1]) });

  it("carry the correlation id through every outcome of a key", async () => {
    const { engine, events } = engineOn(new MemoryStore());
    const traced = { "idempotency-key": "k1", traceparent: TRACEPARENT };
    const first = await engine.begin(request(traced));
    if (first.action !== "execute") throw new Error("not first");
    await engine.begin(request({ "idempotency-key": "k1", "x-request-id": "req-in-flight" }));
    await engine.finish(first.ticket, response(201));
    await engine.begin(request({ "idempotency-key": "k1", "x-request-id": "req-replay" }));
    await engine.begin(request({ "idempotency-key": "k1", "x-request-id": "req-other" }, '{"amount":2}'));
    const failing = await engine.begin(request({ "idempotency-key": "k2", "x-request-id": "req-fails" }));
    if (failing.action !== "execute") throw new Error("not first");
    await engine.abort(failing.ticket);
    await engine.begin(request({ "idempotency-key": "", "x-request-id": "req-bad-key" }));
    await engine.begin(request({ "idempotency-key": "k3" }));
    expect(events.map((e) => [e.type, e.correlationId])).toEqual([
      ["idempotency.first", TRACE_ID],
      ["idempotency.in_flight", "req-in-flight"],
      ["idempotency.completed", TRACE_ID],
      ["idempotency.replayed", "req-replay"],
      ["idempotency.mismatch", "req-other"],
      ["idempotency.first", "req-fails"],
      ["idempotency.released", "req-fails"],
      ["idempotency.rejected", "req-bad-key"],
      ["idempotency.first", undefined],
    ]);
    expect("correlationId" in (events.at(-1) as object)).toBe(false);
  });

  it("report a missing key with the correlation id when a key is required", async () => {
    const { engine, events } = engineOn(new MemoryStore(), { required: true });
    await engine.begin(request({ "x-request-id": "req-no-key" }));
    expect(events).toEqual([
      {
        type: "idempotency.rejected",
        method: "POST",
        route: "/payments",
        code: "idempotency_key_missing",
        correlationId: "req-no-key",
      },
    ]);
  });

  it("report an adapter's refusal with the correlation id of the headers it passes, and none without", async () => {
    const { engine, events } = engineOn(new MemoryStore());
    const refused = (headers?: Record<string, string>) =>
      engine.refuse({ method: "post", route: "/payments", ...(headers && { headers }) }, BodyError.tooLarge(16));
    refused({ traceparent: TRACEPARENT, "x-request-id": "r" });
    refused({ "x-request-id": "req-too-large" });
    refused({ "x-request-id": "not valid: spaces" });
    refused();
    expect(events.map((e) => [e.type, e.correlationId])).toEqual([
      ["idempotency.rejected", TRACE_ID],
      ["idempotency.rejected", "req-too-large"],
      ["idempotency.rejected", undefined],
      ["idempotency.rejected", undefined],
    ]);
    expect(events.slice(2).every((event) => !("correlationId" in event))).toBe(true);
  });

  it("time the claim, the complete and the release; the handler's time is durationMs - storeMs", async () => {
    const { store, took } = timedStore({ claim: 25, release: 15 });
    const { engine, events } = engineOn(store);
    const first = await engine.begin(request({ "idempotency-key": "k1" }));
    if (first.action !== "execute") throw new Error("not first");
    const handlerStarted = performance.now();
    await sleep(10);
    const handlerMs = performance.now() - handlerStarted;
    await engine.finish(first.ticket, response(201));
    await engine.begin(request({ "idempotency-key": "k1" }));
    const second = await engine.begin(request({ "idempotency-key": "k2" }));
    if (second.action !== "execute") throw new Error("not first");
    await engine.finish(second.ticket, response(503));
    const [firstEvent, completed, replayed, , released] = events as Array<InterlockEvent & { storeMs: number }>;
    expect(events.map((e) => e.type)).toEqual([
      "idempotency.first",
      "idempotency.completed",
      "idempotency.replayed",
      "idempotency.first",
      "idempotency.released",
    ]);
    expect(firstEvent?.storeMs).toBeGreaterThanOrEqual(took.claim[0] as number);
    expect(completed?.storeMs).toBeGreaterThanOrEqual(took.complete[0] as number);
    // Not the claim's time as well: less than both together (a stall of the loop during the
    // complete, on a loaded machine, may make the complete alone outlast the claim).
    expect(completed?.storeMs).toBeLessThan((took.claim[0] as number) + (took.complete[0] as number));
    const { durationMs } = completed as unknown as { durationMs: number };
    expect(durationMs - (completed?.storeMs as number)).toBeGreaterThanOrEqual(handlerMs);
    expect(replayed?.storeMs).toBeGreaterThanOrEqual(took.claim[1] as number);
    expect(released).toMatchObject({ reason: "status", status: 503 });
    expect(released?.storeMs).toBeGreaterThanOrEqual(took.release[0] as number);
    for (const settled of [completed, released] as Array<{ durationMs: number; storeMs: number }>) {
      expect(settled.durationMs).toBeGreaterThanOrEqual(settled.storeMs);
    }
  });

  it("report a failed release after its released event, with the same store time", async () => {
    const store = new MemoryStore();
    store.release = () => Promise.reject(new Error("connect ECONNREFUSED 10.0.0.7:6379"));
    const { engine, events } = engineOn(store);
    const first = await engine.begin(request({ "idempotency-key": "k1", "x-request-id": "req-9" }));
    if (first.action !== "execute") throw new Error("not first");
    await engine.abort(first.ticket);
    expect(events.map((e) => e.type)).toEqual([
      "idempotency.first",
      "idempotency.released",
      "idempotency.store_unavailable",
    ]);
    const [, released, down] = events as Array<InterlockEvent & { storeMs: number }>;
    expect(down).toMatchObject({
      operation: "release",
      failOpen: false,
      correlationId: "req-9",
      error: "connect ECONNREFUSED 10.0.0.7:6379",
    });
    expect(down?.storeMs).toBe(released?.storeMs);
  });

  it("report a failed complete after its not_recorded event, with the same store time, as a failed release is", async () => {
    const store = new MemoryStore();
    store.complete = () =>
      Promise.reject(new StoreUnavailableError("memory", 'password authentication failed for user "app"'));
    const { engine, events } = engineOn(store);
    const first = await engine.begin(request({ "idempotency-key": "k1", "x-request-id": "req-10" }));
    if (first.action !== "execute") throw new Error("not first");
    expect(await engine.finish(first.ticket, response(201))).toBe(false);
    expect(events.map((e) => e.type)).toEqual([
      "idempotency.first",
      "idempotency.not_recorded",
      "idempotency.store_unavailable",
    ]);
    const [, notRecorded, down] = events as Array<InterlockEvent & { storeMs: number }>;
    expect(notRecorded).toMatchObject({ reason: "store_error" });
    expect(down).toMatchObject({ operation: "complete", failOpen: false, key: "k1", correlationId: "req-10" });
    expect((down as { error?: string }).error).toContain('password authentication failed for user "app"');
    expect(down?.storeMs).toBe(notRecorded?.storeMs);
  });

  it("a lost lease is not recorded, and no store_unavailable event: the store answered", async () => {
    const store = new MemoryStore();
    store.complete = async () => false;
    const { engine, events } = engineOn(store);
    const first = await engine.begin(request({ "idempotency-key": "k1" }));
    if (first.action !== "execute") throw new Error("not first");
    expect(await engine.finish(first.ticket, response(201))).toBe(false);
    expect(events.map((e) => [e.type, "reason" in e ? e.reason : undefined])).toEqual([
      ["idempotency.first", undefined],
      ["idempotency.not_recorded", "lease_lost"],
    ]);
  });

  /**
   * The memory store, standing in for one that writes inside the caller's transaction (it cannot
   * join one): its `complete` writes nothing, as a write the caller then rolls back leaves nothing.
   */
  function transactionalStore(): InterlockStore {
    const inner = new MemoryStore();
    return {
      name: "transactional",
      maxRecordBytes: inner.maxRecordBytes,
      claim: (key, options) => inner.claim(key, options),
      complete: async () => true,
      release: (key, token) => inner.release(key, token),
      extend: (key, token, ttl) => inner.extend(key, token, ttl),
    };
  }

  it("a response written in the caller's transaction, rolled back: completed says so, and the abort's released(rolled_back) corrects it", async () => {
    const { engine, events } = engineOn(transactionalStore());
    const first = await engine.begin(request({ "idempotency-key": "k1", "x-request-id": "req-tx" }));
    if (first.action !== "execute") throw new Error("not first");
    expect(await engine.finish(first.ticket, response(201), { transaction: {} })).toBe(true);
    await engine.abort(first.ticket); // after ROLLBACK, as documented
    await engine.abort(first.ticket); // once released, nothing more
    expect(events.map((e) => [e.type, "reason" in e ? e.reason : undefined])).toEqual([
      ["idempotency.first", undefined],
      ["idempotency.completed", undefined],
      ["idempotency.released", "rolled_back"],
    ]);
    const [, completed, released] = events;
    expect(completed).toMatchObject({ status: 201, inTransaction: true });
    expect(released).toMatchObject({ key: "k1", status: 201, released: true, correlationId: "req-tx" });
    const { durationMs, storeMs } = released as { durationMs: number; storeMs: number };
    expect(durationMs).toBeGreaterThanOrEqual(storeMs);
    expect((await engine.begin(request({ "idempotency-key": "k1" }))).action).toBe("execute");
    // Outside a transaction the field is absent, and an abort after the finish does nothing.
    const second = await engine.begin(request({ "idempotency-key": "k2" }));
    if (second.action !== "execute") throw new Error("not first");
    await engine.finish(second.ticket, response(201));
    await engine.abort(second.ticket);
    expect(events.slice(4).map((e) => e.type)).toEqual(["idempotency.first", "idempotency.completed"]);
    expect(events[5]).not.toHaveProperty("inTransaction");
  });

  it("a complete that failed in the caller's transaction: not_recorded is the outcome, the abort after the rollback frees the key and adds none", async () => {
    const store = transactionalStore();
    store.complete = () => Promise.reject(new StoreUnavailableError("transactional", "connection reset"));
    const { engine, events } = engineOn(store);
    const first = await engine.begin(request({ "idempotency-key": "k1" }));
    if (first.action !== "execute") throw new Error("not first");
    expect(await engine.finish(first.ticket, response(201), { transaction: {} })).toBe(false);
    await engine.abort(first.ticket);
    expect(events.map((e) => e.type)).toEqual([
      "idempotency.first",
      "idempotency.not_recorded",
      "idempotency.store_unavailable",
    ]);
    expect((await engine.begin(request({ "idempotency-key": "k1" }))).action).toBe("execute");
  });

  it("a store that cannot join the transaction throws, and the abort after it reports the request's one outcome: released(error)", async () => {
    const { engine, events } = engineOn(new MemoryStore());
    const first = await engine.begin(request({ "idempotency-key": "k1" }));
    if (first.action !== "execute") throw new Error("not first");
    await expect(engine.finish(first.ticket, response(201), { transaction: {} })).rejects.toThrow();
    await engine.abort(first.ticket);
    expect(events.map((e) => [e.type, "reason" in e ? e.reason : undefined])).toEqual([
      ["idempotency.first", undefined],
      ["idempotency.released", "error"],
    ]);
    expect((await engine.begin(request({ "idempotency-key": "k1" }))).action).toBe("execute");
  });

  it("report an unreachable store's claim with its time", async () => {
    const store = new MemoryStore();
    store.claim = async () => {
      await sleep(15);
      throw new Error("getaddrinfo ENOTFOUND db.internal");
    };
    const { engine, events } = engineOn(store, { failOpen: true });
    expect(await engine.begin(request({ "idempotency-key": "k1", traceparent: TRACEPARENT }))).toEqual({
      action: "pass",
    });
    expect(events).toMatchObject([
      {
        type: "idempotency.store_unavailable",
        operation: "claim",
        failOpen: true,
        key: "k1",
        correlationId: TRACE_ID,
        error: expect.stringContaining("getaddrinfo ENOTFOUND db.internal"),
      },
    ]);
    expect((events[0] as { storeMs: number }).storeMs).toBeGreaterThan(0);
  });
});

describe("a hook that fails", () => {
  it("is reported once, as a process warning with its code; the outcomes stay as they were", async () => {
    const warnings: Error[] = [];
    const listener = (warning: Error) => warnings.push(warning);
    process.on("warning", listener);
    try {
      let calls = 0;
      const onEvent = () => {
        calls++;
        throw new TypeError("log sink closed");
      };
      const engine = createIdempotency({ store: new MemoryStore(), principal: false, onEvent });
      for (const key of ["k1", "k2", "k3"]) {
        const request = { method: "POST", route: "/p", path: "/p", headers: { "idempotency-key": key }, body: "{}" };
        expect(await engine.begin(request)).toMatchObject({ action: "execute" });
      }
      await sleep(20); // warnings are emitted on the next tick
      expect(calls).toBe(3);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatchObject({ name: "InterlockWarning", code: HOOK_FAILED_WARNING });
      expect(warnings[0]?.message).toContain("hook failed (event idempotency.first): TypeError: log sink closed");
    } finally {
      process.off("warning", listener);
    }
  });

  it("an async hook's rejection is reported the same way, once per hook", async () => {
    const warnings: Error[] = [];
    const listener = (warning: Error) => warnings.push(warning);
    process.on("warning", listener);
    try {
      const failing = async () => {
        throw new Error("logger down");
      };
      const other = async () => Promise.reject("no error object");
      for (const onEvent of [failing, failing, other]) {
        const engine = createIdempotency({ store: new MemoryStore(), principal: false, onEvent });
        const request = { method: "POST", route: "/p", path: "/p", headers: { "idempotency-key": "k" }, body: "{}" };
        await engine.begin(request);
      }
      await sleep(20);
      expect(warnings.map((w) => w.message.split(". ")[0])).toEqual([
        "an onEvent hook failed (event idempotency.first): Error: logger down",
        "an onEvent hook failed (event idempotency.first): no error object",
      ]);
    } finally {
      process.off("warning", listener);
    }
  });
});

describe("a hook that rejects", () => {
  it("an async hook's rejection is dropped like a throw: no unhandled rejection, outcomes unchanged", async () => {
    const unhandled: unknown[] = [];
    const listener = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", listener);
    try {
      // An async logger that fails: `(event) => void` accepts it, and its promise is dropped.
      const onEvent = async () => {
        throw new Error("logger down");
      };
      const receiver = createWebhookReceiver({
        scheme: standardWebhooks,
        secret: SECRET,
        store: new MemoryStore(),
        now: clockAt(NOW),
        onEvent,
      });
      const signed = await signWebhook({
        scheme: standardWebhooks,
        secret: SECRET,
        body: BODY,
        id: "m",
        timestamp: NOW,
      });
      await expect(receiver.receive(signed.headers, BODY, () => "done")).resolves.toMatchObject({
        outcome: "processed",
      });
      const engine = createIdempotency({ store: new MemoryStore(), principal: false, onEvent });
      const request = { method: "POST", route: "/p", path: "/p", headers: { "idempotency-key": "k" }, body: "{}" };
      expect(await engine.begin(request)).toMatchObject({ action: "execute" });
      await sleep(20);
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", listener);
    }
  });
});
