/**
 * Webhook deliveries through Express on 127.0.0.1, and the exact spans and metric points
 * they leave in the SDK's in-memory exporters.
 */
import { createWebhookReceiver, github, type InterlockEvent, MemoryStore, signWebhook } from "@interlock/core";
import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { interlockTelemetry } from "../src/index.js";
import {
  type App,
  delivery,
  describeSpan,
  durationMs,
  endMs,
  post,
  registerContext,
  type Sdk,
  sdk,
  sorted,
  startApp,
  startMs,
  switchableStore,
} from "./harness.js";

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const REMOTE_PARENT = "00f067aa0ba902b7";
const TRACEPARENT = `00-${TRACE_ID}-${REMOTE_PARENT}-01`;
const SCHEME = "standard-webhooks";

/** The deliveries counter's point for `value` deliveries whose handler failed and was released. */
const failedDeliveries = (value: number) => ({
  attributes: {
    "interlock.webhook.scheme": SCHEME,
    "interlock.webhook.outcome": "handler_failed",
    "interlock.webhook.released": true,
    "error.type": "handler_failed",
  },
  value,
});

let unregister: () => void;
beforeAll(() => {
  unregister = registerContext();
});
afterAll(() => unregister());

interface World {
  otel: Sdk;
  app: App;
  events: InterlockEvent[];
  store: ReturnType<typeof switchableStore>;
}
let world: World;

async function worldWith({ serverSpans = true } = {}): Promise<World> {
  const otel = sdk();
  const events: InterlockEvent[] = [];
  const store = switchableStore();
  const onEvent = interlockTelemetry<InterlockEvent>({
    meterProvider: otel.meterProvider,
    tracerProvider: otel.tracerProvider,
    onEvent: (event) => events.push(event),
  });
  const app = await startApp({
    onEvent,
    store: store.store,
    ...(serverSpans ? { serverSpans: otel.tracerProvider.getTracer("http-server") } : {}),
  });
  return { otel, app, events, store };
}

beforeEach(async () => {
  world = await worldWith();
});
afterEach(async () => {
  await world.app.close();
  await world.otel.shutdown();
});

const deliver = async (id: string, payload: unknown, headers: Record<string, string> = {}) => {
  const signed = await delivery(id, payload, headers);
  return post(`${world.app.url}/webhooks`, signed.headers, signed.body);
};

/** Interlock's spans (the server spans the test app makes are left out). */
async function interlockSpans() {
  return (await world.otel.spans()).filter((span) => span.instrumentationScope.name === "@interlock/opentelemetry");
}

function eventOf<T extends InterlockEvent["type"]>(type: T, index = 0): Extract<InterlockEvent, { type: T }> {
  const found = world.events.filter((event) => event.type === type)[index];
  if (found === undefined) throw new Error(`no ${type} event #${index}`);
  return found as Extract<InterlockEvent, { type: T }>;
}

describe("a processed delivery", () => {
  it("verify, claim and handle spans, children of the request's server span, in its trace", async () => {
    const response = await deliver("msg_1", { type: "invoice.paid" }, { traceparent: TRACEPARENT });
    expect(response.status).toBe(200);
    const spans = await interlockSpans();
    // The server span ends when the response has been handed to the socket: wait for it.
    const serverSpan = await vi.waitFor(async () => {
      const found = (await world.otel.spans()).find((span) => span.kind === SpanKind.SERVER);
      if (found === undefined) throw new Error("the server span has not ended yet");
      return found;
    });
    expect(serverSpan.spanContext().spanId).toBe(response.spanId);
    // The server span continues the caller's trace, as HTTP instrumentation does.
    expect(describeSpan(serverSpan)).toMatchObject({ traceId: TRACE_ID, parentSpanId: REMOTE_PARENT });

    const child = {
      kind: SpanKind.INTERNAL,
      traceId: TRACE_ID,
      parentSpanId: response.spanId,
      status: SpanStatusCode.UNSET,
    };
    expect(spans.map(describeSpan)).toEqual([
      {
        ...child,
        name: "interlock.webhook.verify",
        statusMessage: undefined,
        attributes: {
          "interlock.webhook.scheme": SCHEME,
          "interlock.webhook.outcome": "verified",
          "interlock.webhook.id": "msg_1",
          "interlock.webhook.id_covered": true,
          "interlock.correlation_id": TRACE_ID,
        },
      },
      {
        ...child,
        name: "interlock.webhook.claim",
        statusMessage: undefined,
        attributes: {
          "interlock.webhook.scheme": SCHEME,
          "interlock.webhook.outcome": "claimed",
          "interlock.webhook.id": "msg_1",
          "interlock.correlation_id": TRACE_ID,
        },
      },
      {
        ...child,
        name: "interlock.webhook.handle",
        statusMessage: undefined,
        attributes: {
          "interlock.webhook.scheme": SCHEME,
          "interlock.webhook.outcome": "processed",
          "interlock.webhook.id": "msg_1",
          "interlock.webhook.recorded": true,
          "interlock.correlation_id": TRACE_ID,
        },
      },
    ]);
  });

  it("each span lasts what its event measured, the claim ending where the handler starts", async () => {
    await deliver("msg_1", { type: "invoice.paid" });
    const [verify, claim, handle] = await interlockSpans();
    const verified = eventOf("webhook.verified");
    const processed = eventOf("webhook.processed");
    expect(durationMs(verify!)).toBeCloseTo(verified.durationMs, 3);
    expect(durationMs(claim!)).toBeCloseTo(processed.claimMs, 3);
    expect(durationMs(handle!)).toBeCloseTo(processed.durationMs, 3);
    expect(endMs(claim!)).toBeCloseTo(startMs(handle!), 3);
    expect(endMs(verify!)).toBeLessThanOrEqual(startMs(claim!) + 1);
  });

  it("counts the verification and the delivery, and times verification, handler and store", async () => {
    await deliver("msg_1", { type: "invoice.paid" });
    const verified = eventOf("webhook.verified");
    const processed = eventOf("webhook.processed");
    const metrics = await world.otel.metrics();
    const verifiedAttributes = { "interlock.webhook.scheme": SCHEME, "interlock.webhook.outcome": "verified" };
    expect(metrics["interlock.webhook.verifications"]).toEqual([{ attributes: verifiedAttributes, value: 1 }]);
    expect(metrics["interlock.webhook.deliveries"]).toEqual([
      {
        attributes: {
          "interlock.webhook.scheme": SCHEME,
          "interlock.webhook.outcome": "processed",
          "interlock.webhook.recorded": true,
        },
        value: 1,
      },
    ]);
    expect(metrics["interlock.webhook.verification.duration"]).toEqual([
      { attributes: verifiedAttributes, count: 1, sum: expect.closeTo(verified.durationMs / 1000, 9) },
    ]);
    expect(metrics["interlock.webhook.handler.duration"]).toEqual([
      {
        attributes: { "interlock.webhook.scheme": SCHEME, "interlock.webhook.outcome": "processed" },
        count: 1,
        sum: expect.closeTo((processed.durationMs - processed.storeMs) / 1000, 9),
      },
    ]);
    expect(sorted(metrics["interlock.store.duration"])).toEqual([
      {
        attributes: { "interlock.component": "webhook", "interlock.store.operation": "claim" },
        count: 1,
        sum: expect.closeTo(processed.claimMs / 1000, 9),
      },
      {
        attributes: { "interlock.component": "webhook", "interlock.store.operation": "complete" },
        count: 1,
        sum: expect.closeTo(processed.storeMs / 1000, 9),
      },
    ]);
    expect(Object.keys(metrics).sort()).toEqual([
      "interlock.store.duration",
      "interlock.webhook.deliveries",
      "interlock.webhook.handler.duration",
      "interlock.webhook.verification.duration",
      "interlock.webhook.verifications",
    ]);
  });
});

describe("duplicates and refusals", () => {
  it("a redelivery is a duplicate and a tampered copy is rejected, each with its request's x-request-id", async () => {
    const signed = await delivery("msg_2", { type: "invoice.paid" });
    const url = `${world.app.url}/webhooks`;
    expect((await post(url, signed.headers, signed.body)).status).toBe(200);
    const again = await post(url, { ...signed.headers, "x-request-id": "req-again" }, signed.body);
    expect(again.status).toBe(200);
    const tampered = await post(
      url,
      { ...signed.headers, "x-request-id": "req-tampered" },
      signed.body.replace("paid", "void"),
    );
    expect(tampered.status).toBe(401);

    const spans = (await interlockSpans()).map(describeSpan);
    expect(spans.filter((span) => span.parentSpanId === again.spanId)).toEqual([
      expect.objectContaining({
        name: "interlock.webhook.verify",
        attributes: expect.objectContaining({ "interlock.correlation_id": "req-again" }),
      }),
      expect.objectContaining({
        name: "interlock.webhook.claim",
        status: SpanStatusCode.UNSET,
        attributes: {
          "interlock.webhook.scheme": SCHEME,
          "interlock.webhook.outcome": "duplicate",
          "interlock.webhook.id": "msg_2",
          "interlock.correlation_id": "req-again",
        },
      }),
    ]);
    expect(spans.filter((span) => span.parentSpanId === tampered.spanId)).toEqual([
      expect.objectContaining({
        name: "interlock.webhook.verify",
        status: SpanStatusCode.ERROR,
        statusMessage: "no_matching_signature",
        attributes: {
          "interlock.webhook.scheme": SCHEME,
          "interlock.webhook.outcome": "rejected",
          "error.type": "no_matching_signature",
          "interlock.correlation_id": "req-tampered",
        },
      }),
    ]);

    const metrics = await world.otel.metrics();
    const scheme = { "interlock.webhook.scheme": SCHEME };
    expect(sorted(metrics["interlock.webhook.verifications"])).toEqual(
      sorted([
        { attributes: { ...scheme, "interlock.webhook.outcome": "verified" }, value: 2 },
        {
          attributes: { ...scheme, "interlock.webhook.outcome": "rejected", "error.type": "no_matching_signature" },
          value: 1,
        },
      ]),
    );
    expect(sorted(metrics["interlock.webhook.deliveries"])).toEqual(
      sorted([
        {
          attributes: { ...scheme, "interlock.webhook.outcome": "processed", "interlock.webhook.recorded": true },
          value: 1,
        },
        { attributes: { ...scheme, "interlock.webhook.outcome": "duplicate" }, value: 1 },
        {
          attributes: { ...scheme, "interlock.webhook.outcome": "rejected", "error.type": "no_matching_signature" },
          value: 1,
        },
      ]),
    );
    const duplicate = eventOf("webhook.duplicate");
    const processed = eventOf("webhook.processed");
    expect(sorted(metrics["interlock.store.duration"])[0]).toEqual({
      attributes: { "interlock.component": "webhook", "interlock.store.operation": "claim" },
      count: 2,
      sum: expect.closeTo((processed.claimMs + duplicate.storeMs) / 1000, 9),
    });
    const rejected = eventOf("webhook.rejected");
    expect(sorted(metrics["interlock.webhook.verification.duration"])).toEqual(
      sorted([
        {
          attributes: { ...scheme, "interlock.webhook.outcome": "verified" },
          count: 2,
          sum: expect.closeTo(
            (eventOf("webhook.verified", 0).durationMs + eventOf("webhook.verified", 1).durationMs) / 1000,
            9,
          ),
        },
        {
          attributes: { ...scheme, "interlock.webhook.outcome": "rejected", "error.type": "no_matching_signature" },
          count: 1,
          sum: expect.closeTo(rejected.durationMs / 1000, 9),
        },
      ]),
    );
  });

  it("a stale delivery is counted by its own code", async () => {
    const signed = await delivery("msg_3", {});
    const stale = { ...signed.headers, "webhook-timestamp": String(Math.floor(Date.now() / 1000) - 3600) };
    expect((await post(`${world.app.url}/webhooks`, stale, signed.body)).status).toBe(401);
    const metrics = await world.otel.metrics();
    expect(metrics["interlock.webhook.verifications"]).toEqual([
      {
        attributes: {
          "interlock.webhook.scheme": SCHEME,
          "interlock.webhook.outcome": "rejected",
          "error.type": "timestamp_too_old",
        },
        value: 1,
      },
    ]);
  });
});

describe("failures", () => {
  it("a handler that throws: the handle span is an error, the release is timed, handler_failed is counted", async () => {
    const response = await deliver("msg_4", { fail: true }, { "x-request-id": "req-fails" });
    expect(response.status).toBe(500);
    const spans = (await interlockSpans()).map(describeSpan);
    expect(spans.map((span) => span.name)).toEqual([
      "interlock.webhook.verify",
      "interlock.webhook.claim",
      "interlock.webhook.handle",
    ]);
    expect(spans[2]).toMatchObject({
      status: SpanStatusCode.ERROR,
      statusMessage: "handler_failed",
      attributes: {
        "interlock.webhook.scheme": SCHEME,
        "interlock.webhook.outcome": "handler_failed",
        "interlock.webhook.id": "msg_4",
        "interlock.webhook.released": true,
        "error.type": "handler_failed",
        "interlock.correlation_id": "req-fails",
      },
    });
    const failed = eventOf("webhook.handler_failed");
    const metrics = await world.otel.metrics();
    expect(metrics["interlock.webhook.deliveries"]).toEqual([failedDeliveries(1)]);
    expect(metrics["interlock.webhook.handler.duration"]).toEqual([
      {
        attributes: { "interlock.webhook.scheme": SCHEME, "interlock.webhook.outcome": "handler_failed" },
        count: 1,
        sum: expect.closeTo((failed.durationMs - failed.storeMs) / 1000, 9),
      },
    ]);
    expect(sorted(metrics["interlock.store.duration"])[1]).toEqual({
      attributes: { "interlock.component": "webhook", "interlock.store.operation": "release" },
      count: 1,
      sum: expect.closeTo(failed.storeMs / 1000, 9),
    });
    // Released, so the provider's retry runs the handler and is processed.
    expect((await deliver("msg_4", { fail: false })).status).toBe(200);
  });

  it("a handler that answers outside 2xx: handler_failed, its status on the handle span; a thrown one has none", async () => {
    expect((await deliver("msg_status", { status: 503 })).status).toBe(503);
    expect((await deliver("msg_throws", { fail: true })).status).toBe(500);
    expect(eventOf("webhook.handler_failed").status).toBe(503);
    const handles = (await interlockSpans()).filter((span) => span.name === "interlock.webhook.handle");
    expect(handles.map(describeSpan)).toMatchObject([
      {
        status: SpanStatusCode.ERROR,
        statusMessage: "handler_failed",
        attributes: {
          "interlock.webhook.id": "msg_status",
          "interlock.webhook.outcome": "handler_failed",
          "http.response.status_code": 503,
          "error.type": "handler_failed",
        },
      },
      { attributes: { "interlock.webhook.id": "msg_throws", "interlock.webhook.outcome": "handler_failed" } },
    ]);
    expect(handles[1]?.attributes).not.toHaveProperty("http.response.status_code");
    // The counter is unchanged: the status goes on the span only.
    const metrics = await world.otel.metrics();
    expect(metrics["interlock.webhook.deliveries"]).toEqual([failedDeliveries(2)]);
  });

  it("a handler that throws and a release that fails: released false, the release timed as failed", async () => {
    world.store.store.release = () => Promise.reject(new Error("connection reset"));
    expect((await deliver("msg_6", { fail: true })).status).toBe(500);
    const failed = eventOf("webhook.handler_failed");
    expect(failed.released).toBe(false);
    const metrics = await world.otel.metrics();
    expect(
      metrics["interlock.store.duration"]?.filter(
        (point) => point.attributes["interlock.store.operation"] === "release",
      ),
    ).toEqual([
      {
        attributes: {
          "interlock.component": "webhook",
          "interlock.store.operation": "release",
          "error.type": "store_unavailable",
        },
        count: 1,
        sum: expect.closeTo(failed.storeMs / 1000, 9),
      },
    ]);
  });

  it("a processed delivery whose complete fails: counted recorded false, the complete timed as not_recorded", async () => {
    world.store.store.complete = () => Promise.reject(new Error("connection reset"));
    expect((await deliver("msg_8", { type: "invoice.paid" })).status).toBe(200);
    const processed = eventOf("webhook.processed");
    expect(processed.recorded).toBe(false);
    const metrics = await world.otel.metrics();
    expect(metrics["interlock.webhook.deliveries"]).toEqual([
      {
        attributes: {
          "interlock.webhook.scheme": SCHEME,
          "interlock.webhook.outcome": "processed",
          "interlock.webhook.recorded": false,
        },
        value: 1,
      },
    ]);
    expect(sorted(metrics["interlock.store.duration"])).toEqual([
      {
        attributes: {
          "interlock.component": "webhook",
          "interlock.store.operation": "complete",
          "error.type": "not_recorded",
        },
        count: 1,
        sum: expect.closeTo(processed.storeMs / 1000, 9),
      },
      {
        attributes: { "interlock.component": "webhook", "interlock.store.operation": "claim" },
        count: 1,
        sum: expect.closeTo(processed.claimMs / 1000, 9),
      },
    ]);
  });

  it("a handler that outlives its lease and throws: the store answered the release, so it is not timed as failed", async () => {
    // A real lease loss on the memory store: the claim's lease is 1 ms and the release waits past it.
    const { store } = world.store;
    const claim = store.claim.bind(store);
    const release = store.release.bind(store);
    store.claim = (key, options) => claim(key, { ...options, lockTtlMs: 1 });
    store.release = async (key, token) => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      return release(key, token);
    };
    expect((await deliver("msg_7", { fail: true })).status).toBe(500);
    const failed = eventOf("webhook.handler_failed");
    const metrics = await world.otel.metrics();
    expect(
      metrics["interlock.store.duration"]?.filter(
        (point) => point.attributes["interlock.store.operation"] === "release",
      ),
    ).toEqual([
      {
        attributes: { "interlock.component": "webhook", "interlock.store.operation": "release" },
        count: 1,
        sum: expect.closeTo(failed.storeMs / 1000, 9),
      },
    ]);
    // The lease is gone: the provider's retry is processed, as after a release.
    expect(failed.released).toBe(true);
    store.claim = claim;
    expect((await deliver("msg_7", { fail: false })).status).toBe(200);
  });

  it("an unreachable store: 503, a claim span in error, store_unavailable counted and its time recorded", async () => {
    world.store.down(true);
    const response = await deliver("msg_5", {}, { traceparent: TRACEPARENT });
    expect(response.status).toBe(503);
    const spans = (await interlockSpans()).map(describeSpan);
    expect(spans[1]).toEqual({
      name: "interlock.webhook.claim",
      kind: SpanKind.INTERNAL,
      status: SpanStatusCode.ERROR,
      statusMessage: "store_unavailable",
      traceId: TRACE_ID,
      parentSpanId: response.spanId,
      attributes: {
        "interlock.webhook.scheme": SCHEME,
        "interlock.webhook.outcome": "store_unavailable",
        "interlock.webhook.id": "msg_5",
        "error.type": "store_unavailable",
        "interlock.correlation_id": TRACE_ID,
      },
    });
    const down = eventOf("webhook.store_unavailable");
    const metrics = await world.otel.metrics();
    expect(metrics["interlock.webhook.deliveries"]).toEqual([
      {
        attributes: {
          "interlock.webhook.scheme": SCHEME,
          "interlock.webhook.outcome": "store_unavailable",
          "error.type": "store_unavailable",
        },
        value: 1,
      },
    ]);
    expect(metrics["interlock.store.duration"]).toEqual([
      {
        attributes: {
          "interlock.component": "webhook",
          "interlock.store.operation": "claim",
          "error.type": "store_unavailable",
        },
        count: 1,
        sum: expect.closeTo(down.storeMs / 1000, 9),
      },
    ]);
  });
});

describe("without an active span", () => {
  it("spans are roots of their own traces, and still carry the request's correlation id", async () => {
    await world.app.close();
    await world.otel.shutdown();
    world = await worldWith({ serverSpans: false });
    const response = await deliver("msg_6", {}, { "x-request-id": "gateway-7f3a" });
    expect(response).toMatchObject({ status: 200, spanId: null });
    const spans = await world.otel.spans();
    expect(spans.map((span) => span.name)).toEqual([
      "interlock.webhook.verify",
      "interlock.webhook.claim",
      "interlock.webhook.handle",
    ]);
    for (const span of spans) {
      expect(span.parentSpanContext).toBeUndefined();
      expect(span.attributes["interlock.correlation_id"]).toBe("gateway-7f3a");
    }
  });
});

describe("a delivery id the signature does not cover", () => {
  it("is on the spans as core's events carry it: a plain short id as it is, the sender's other text not at all", async () => {
    const { otel } = world;
    const onEvent = interlockTelemetry<InterlockEvent>({
      meterProvider: otel.meterProvider,
      tracerProvider: otel.tracerProvider,
    });
    const secret = "github-secret";
    const receiver = createWebhookReceiver({ scheme: github, secret, store: new MemoryStore(), onEvent });
    const body = '{"action":"opened"}';
    const plain = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
    const { headers } = await signWebhook({ scheme: github, secret, body, id: plain });
    const forged = `x\t${"A".repeat(5000)} level=error msg="fake"`;
    await receiver.receive({ ...headers, "x-github-delivery": forged }, body, () => "ok");
    await receiver.receive(headers, body, () => "ok");
    const spans = (await otel.spans()).filter((span) => span.name.startsWith("interlock.webhook."));
    expect(spans.map((span) => [span.name, span.attributes["interlock.webhook.id"]])).toEqual([
      ["interlock.webhook.verify", undefined],
      ["interlock.webhook.claim", undefined],
      ["interlock.webhook.handle", undefined],
      ["interlock.webhook.verify", plain],
      ["interlock.webhook.claim", plain],
      ["interlock.webhook.handle", plain],
    ]);
    expect(spans[0]?.attributes["interlock.webhook.id_covered"]).toBe(false);
  });
});
