/**
 * Idempotent requests through Express on 127.0.0.1 (`Idempotency-Key` required), and the exact
 * spans and metric points each outcome leaves in the SDK's in-memory exporters.
 */
import { createIdempotency, type InterlockEvent, type InterlockStore, MemoryStore } from "@interlock/core";
import { idempotency } from "@interlock/express";
import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import express from "express";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { interlockTelemetry } from "../src/index.js";
import {
  type App,
  describeSpan,
  durationMs,
  post,
  registerContext,
  type Sdk,
  sdk,
  serve,
  sorted,
  startApp,
  switchableStore,
} from "./harness.js";

const TRACE_ID = "0af7651916cd43dd8448eb211c80319c";
const TRACEPARENT = `00-${TRACE_ID}-b7ad6b7169203331-01`;
const ROUTE = { "http.request.method": "POST", "http.route": "/payments" };

let unregister: () => void;
beforeAll(() => {
  unregister = registerContext();
});
afterAll(() => unregister());

let otel: Sdk;
let app: App;
let events: InterlockEvent[];
let store: ReturnType<typeof switchableStore>;

beforeEach(async () => {
  otel = sdk();
  events = [];
  store = switchableStore();
  const onEvent = interlockTelemetry<InterlockEvent>({
    meterProvider: otel.meterProvider,
    tracerProvider: otel.tracerProvider,
    onEvent: (event) => events.push(event),
  });
  app = await startApp({ onEvent, store: store.store, serverSpans: otel.tracerProvider.getTracer("http-server") });
});
afterEach(async () => {
  await app.close();
  await otel.shutdown();
});

const pay = (key: string | undefined, order: object = {}, headers: Record<string, string> = {}) =>
  post(
    `${app.url}/payments`,
    { "content-type": "application/json", ...(key === undefined ? {} : { "idempotency-key": key }), ...headers },
    JSON.stringify(order),
  );

async function interlockSpans() {
  return (await otel.spans())
    .filter((span) => span.instrumentationScope.name === "@interlock/opentelemetry")
    .map((span) => ({ ...describeSpan(span), durationMs: durationMs(span) }));
}

function eventsOf<T extends InterlockEvent["type"]>(type: T): Array<Extract<InterlockEvent, { type: T }>> {
  return events.filter((event) => event.type === type) as Array<Extract<InterlockEvent, { type: T }>>;
}

describe("a request that runs", () => {
  it("a claim span and an execute span under the request's server span, timed by their events", async () => {
    const response = await pay("order-1", {}, { traceparent: TRACEPARENT });
    expect(response.status).toBe(201);
    const [first] = eventsOf("idempotency.first");
    const [completed] = eventsOf("idempotency.completed");
    const child = {
      kind: SpanKind.INTERNAL,
      traceId: TRACE_ID,
      parentSpanId: response.spanId,
      status: SpanStatusCode.UNSET,
      statusMessage: undefined,
    };
    expect(await interlockSpans()).toEqual([
      {
        ...child,
        name: "interlock.idempotency.claim",
        durationMs: expect.closeTo(first!.storeMs, 3),
        attributes: {
          ...ROUTE,
          "interlock.idempotency.outcome": "first",
          "interlock.idempotency.key": "order-1",
          "interlock.correlation_id": TRACE_ID,
        },
      },
      {
        ...child,
        name: "interlock.idempotency.execute",
        durationMs: expect.closeTo(completed!.durationMs, 3),
        attributes: {
          ...ROUTE,
          "interlock.idempotency.outcome": "completed",
          "http.response.status_code": 201,
          "interlock.idempotency.key": "order-1",
          "interlock.correlation_id": TRACE_ID,
        },
      },
    ]);

    const metrics = await otel.metrics();
    expect(sorted(metrics["interlock.idempotency.outcomes"])).toEqual(
      sorted([
        { attributes: { ...ROUTE, "interlock.idempotency.outcome": "first" }, value: 1 },
        {
          attributes: { ...ROUTE, "interlock.idempotency.outcome": "completed", "http.response.status_code": 201 },
          value: 1,
        },
      ]),
    );
    expect(metrics["interlock.idempotency.handler.duration"]).toEqual([
      {
        attributes: { ...ROUTE, "interlock.idempotency.outcome": "completed", "http.response.status_code": 201 },
        count: 1,
        sum: expect.closeTo((completed!.durationMs - completed!.storeMs) / 1000, 9),
      },
    ]);
    expect(sorted(metrics["interlock.store.duration"])).toEqual([
      {
        attributes: { "interlock.component": "idempotency", "interlock.store.operation": "claim" },
        count: 1,
        sum: expect.closeTo(first!.storeMs / 1000, 9),
      },
      {
        attributes: { "interlock.component": "idempotency", "interlock.store.operation": "complete" },
        count: 1,
        sum: expect.closeTo(completed!.storeMs / 1000, 9),
      },
    ]);
  });
});

describe("requests answered without running", () => {
  it("a replay and a mismatch: claim spans by outcome, counted with the replayed status", async () => {
    await pay("order-2", { status: 202 });
    const replay = await pay("order-2", { status: 202 }, { "x-request-id": "req-replay" });
    expect(replay.status).toBe(202);
    const other = await pay("order-2", { status: 200 }, { "x-request-id": "req-other" });
    expect(other.status).toBe(422);

    const spans = await interlockSpans();
    expect(spans.filter((span) => span.parentSpanId === replay.spanId)).toEqual([
      expect.objectContaining({
        name: "interlock.idempotency.claim",
        status: SpanStatusCode.UNSET,
        attributes: {
          ...ROUTE,
          "interlock.idempotency.outcome": "replayed",
          "http.response.status_code": 202,
          "interlock.idempotency.key": "order-2",
          "interlock.correlation_id": "req-replay",
        },
      }),
    ]);
    expect(spans.filter((span) => span.parentSpanId === other.spanId)).toEqual([
      expect.objectContaining({
        name: "interlock.idempotency.claim",
        status: SpanStatusCode.UNSET,
        attributes: {
          ...ROUTE,
          "interlock.idempotency.outcome": "mismatch",
          "interlock.idempotency.key": "order-2",
          "interlock.correlation_id": "req-other",
        },
      }),
    ]);

    const metrics = await otel.metrics();
    expect(sorted(metrics["interlock.idempotency.outcomes"])).toEqual(
      sorted([
        { attributes: { ...ROUTE, "interlock.idempotency.outcome": "first" }, value: 1 },
        {
          attributes: { ...ROUTE, "interlock.idempotency.outcome": "completed", "http.response.status_code": 202 },
          value: 1,
        },
        {
          attributes: { ...ROUTE, "interlock.idempotency.outcome": "replayed", "http.response.status_code": 202 },
          value: 1,
        },
        { attributes: { ...ROUTE, "interlock.idempotency.outcome": "mismatch" }, value: 1 },
      ]),
    );
    const claims = [
      ...eventsOf("idempotency.first"),
      ...eventsOf("idempotency.replayed"),
      ...eventsOf("idempotency.mismatch"),
    ];
    expect(sorted(metrics["interlock.store.duration"])[0]).toEqual({
      attributes: { "interlock.component": "idempotency", "interlock.store.operation": "claim" },
      count: 3,
      sum: expect.closeTo(claims.reduce((total, event) => total + event.storeMs, 0) / 1000, 9),
    });
  });

  it("a retry while the first is still running is in flight (409)", async () => {
    const held = app.nextHold();
    const running = pay("order-3", { hold: true });
    const release = await held;
    const retry = await pay("order-3", { hold: true }, { "x-request-id": "req-early" });
    expect(retry.status).toBe(409);
    release();
    expect((await running).status).toBe(201);

    const spans = await interlockSpans();
    expect(spans.filter((span) => span.parentSpanId === retry.spanId)).toEqual([
      expect.objectContaining({
        name: "interlock.idempotency.claim",
        attributes: {
          ...ROUTE,
          "interlock.idempotency.outcome": "in_flight",
          "interlock.idempotency.waited": false,
          "interlock.idempotency.key": "order-3",
          "interlock.correlation_id": "req-early",
        },
      }),
    ]);
    const metrics = await otel.metrics();
    expect(metrics["interlock.idempotency.outcomes"]).toContainEqual({
      attributes: { ...ROUTE, "interlock.idempotency.outcome": "in_flight", "interlock.idempotency.waited": false },
      value: 1,
    });
  });

  it("missing and malformed keys are rejected: zero-length reject spans in error, counted by code", async () => {
    const missing = await pay(undefined, {}, { traceparent: TRACEPARENT });
    expect(missing.status).toBe(400);
    const malformed = await pay("two words", {});
    expect(malformed.status).toBe(400);
    const spans = await interlockSpans();
    expect(spans).toEqual([
      {
        name: "interlock.idempotency.reject",
        kind: SpanKind.INTERNAL,
        traceId: TRACE_ID,
        parentSpanId: missing.spanId,
        status: SpanStatusCode.ERROR,
        statusMessage: "idempotency_key_missing",
        durationMs: 0,
        attributes: {
          ...ROUTE,
          "interlock.idempotency.outcome": "rejected",
          "error.type": "idempotency_key_missing",
          "interlock.correlation_id": TRACE_ID,
        },
      },
      expect.objectContaining({
        name: "interlock.idempotency.reject",
        parentSpanId: malformed.spanId,
        statusMessage: "idempotency_key_invalid",
        attributes: { ...ROUTE, "interlock.idempotency.outcome": "rejected", "error.type": "idempotency_key_invalid" },
      }),
    ]);
    const metrics = await otel.metrics();
    expect(sorted(metrics["interlock.idempotency.outcomes"])).toEqual(
      sorted([
        {
          attributes: {
            ...ROUTE,
            "interlock.idempotency.outcome": "rejected",
            "error.type": "idempotency_key_missing",
          },
          value: 1,
        },
        {
          attributes: {
            ...ROUTE,
            "interlock.idempotency.outcome": "rejected",
            "error.type": "idempotency_key_invalid",
          },
          value: 1,
        },
      ]),
    );
    expect(metrics["interlock.store.duration"]).toBeUndefined();
  });
});

describe("requests that leave nothing stored", () => {
  it("a 5xx answer is released by status; a throw is released as an error, its span in error", async () => {
    expect((await pay("order-4", { status: 503 })).status).toBe(503);
    const thrown = await pay("order-5", { fail: true }, { "x-request-id": "req-throws" });
    expect(thrown.status).toBe(500);

    const executes = (await interlockSpans()).filter((span) => span.name === "interlock.idempotency.execute");
    const released = eventsOf("idempotency.released");
    expect(executes).toEqual([
      expect.objectContaining({
        status: SpanStatusCode.UNSET,
        durationMs: expect.closeTo(released[0]!.durationMs, 3),
        attributes: {
          ...ROUTE,
          "interlock.idempotency.outcome": "released",
          "interlock.idempotency.reason": "status",
          "http.response.status_code": 503,
          "interlock.idempotency.key": "order-4",
        },
      }),
      expect.objectContaining({
        parentSpanId: thrown.spanId,
        status: SpanStatusCode.ERROR,
        statusMessage: "handler_failed",
        durationMs: expect.closeTo(released[1]!.durationMs, 3),
        attributes: {
          ...ROUTE,
          "interlock.idempotency.outcome": "released",
          "interlock.idempotency.reason": "error",
          "interlock.idempotency.key": "order-5",
          "error.type": "handler_failed",
          "interlock.correlation_id": "req-throws",
        },
      }),
    ]);

    const metrics = await otel.metrics();
    const statusReleased = {
      ...ROUTE,
      "interlock.idempotency.outcome": "released",
      "interlock.idempotency.reason": "status",
      "http.response.status_code": 503,
    };
    const errorReleased = {
      ...ROUTE,
      "interlock.idempotency.outcome": "released",
      "interlock.idempotency.reason": "error",
    };
    expect(sorted(metrics["interlock.idempotency.outcomes"])).toEqual(
      sorted([
        { attributes: { ...ROUTE, "interlock.idempotency.outcome": "first" }, value: 2 },
        { attributes: statusReleased, value: 1 },
        { attributes: errorReleased, value: 1 },
      ]),
    );
    expect(sorted(metrics["interlock.idempotency.handler.duration"])).toEqual(
      sorted([
        {
          attributes: statusReleased,
          count: 1,
          sum: expect.closeTo((released[0]!.durationMs - released[0]!.storeMs) / 1000, 9),
        },
        {
          attributes: errorReleased,
          count: 1,
          sum: expect.closeTo((released[1]!.durationMs - released[1]!.storeMs) / 1000, 9),
        },
      ]),
    );
    expect(sorted(metrics["interlock.store.duration"])[1]).toEqual({
      attributes: { "interlock.component": "idempotency", "interlock.store.operation": "release" },
      count: 2,
      sum: expect.closeTo((released[0]!.storeMs + released[1]!.storeMs) / 1000, 9),
    });
    // Both keys were released: their retries run again.
    expect((await pay("order-4", {})).status).toBe(201);
    expect((await pay("order-5", {})).status).toBe(201);
  });

  it("an unreachable store: 503, a claim span in error, store_unavailable counted and the failed claim timed", async () => {
    store.down(true);
    const response = await pay("order-6", {}, { traceparent: TRACEPARENT });
    expect(response.status).toBe(503);
    const [down] = eventsOf("idempotency.store_unavailable");
    const attributes = {
      ...ROUTE,
      "interlock.idempotency.outcome": "store_unavailable",
      "interlock.store.operation": "claim",
      "interlock.idempotency.fail_open": false,
      "error.type": "store_unavailable",
    };
    expect(await interlockSpans()).toEqual([
      {
        name: "interlock.idempotency.claim",
        kind: SpanKind.INTERNAL,
        traceId: TRACE_ID,
        parentSpanId: response.spanId,
        status: SpanStatusCode.ERROR,
        statusMessage: "store_unavailable",
        durationMs: expect.closeTo(down!.storeMs, 3),
        attributes: { ...attributes, "interlock.idempotency.key": "order-6", "interlock.correlation_id": TRACE_ID },
      },
    ]);
    const metrics = await otel.metrics();
    expect(metrics["interlock.idempotency.outcomes"]).toEqual([{ attributes, value: 1 }]);
    expect(metrics["interlock.store.duration"]).toEqual([
      {
        attributes: {
          "interlock.component": "idempotency",
          "interlock.store.operation": "claim",
          "error.type": "store_unavailable",
        },
        count: 1,
        sum: expect.closeTo(down!.storeMs / 1000, 9),
      },
    ]);
  });
});

/**
 * After a complete or release that failed, the claim was timed once (by the first event, not
 * again by store_unavailable's) and the spans are that claim's and the execute span: no claim span in error.
 */
async function expectOnlyTheWonClaim(metrics: Awaited<ReturnType<Sdk["metrics"]>>) {
  expect(
    metrics["interlock.store.duration"]
      ?.filter((point) => point.attributes["interlock.store.operation"] === "claim")
      .map((point) => [point.attributes, "count" in point && point.count]),
  ).toEqual([[{ "interlock.component": "idempotency", "interlock.store.operation": "claim" }, 1]]);
  const spans = await interlockSpans();
  expect(spans.map((span) => [span.name, span.attributes["interlock.idempotency.outcome"]])).toEqual([
    ["interlock.idempotency.claim", "first"],
    ["interlock.idempotency.execute", expect.stringMatching(/^(not_recorded|released)$/)],
  ]);
}

describe("a response the store could not keep", () => {
  it("a complete that fails: not_recorded and store_unavailable(complete) counted, the failed complete timed once", async () => {
    store.store.complete = () => Promise.reject(new Error("connection reset"));
    const response = await pay("order-7");
    expect(response.status).toBe(201);
    expect(events.map((event) => event.type)).toEqual([
      "idempotency.first",
      "idempotency.not_recorded",
      "idempotency.store_unavailable",
    ]);
    const metrics = await otel.metrics();
    expect(sorted(metrics["interlock.idempotency.outcomes"])).toEqual(
      sorted([
        { attributes: { ...ROUTE, "interlock.idempotency.outcome": "first" }, value: 1 },
        {
          attributes: { ...ROUTE, "interlock.idempotency.outcome": "not_recorded", "error.type": "store_error" },
          value: 1,
        },
        {
          attributes: {
            ...ROUTE,
            "interlock.idempotency.outcome": "store_unavailable",
            "interlock.store.operation": "complete",
            "interlock.idempotency.fail_open": false,
            "error.type": "store_unavailable",
          },
          value: 1,
        },
      ]),
    );
    const complete = { "interlock.component": "idempotency", "interlock.store.operation": "complete" };
    expect(
      metrics["interlock.store.duration"]
        ?.filter((point) => point.attributes["interlock.store.operation"] === "complete")
        .map((point) => [point.attributes, "count" in point && point.count]),
    ).toEqual([[{ ...complete, "error.type": "store_unavailable" }, 1]]);
    await expectOnlyTheWonClaim(metrics);
  });
});

describe("a release the store could not make", () => {
  it("a release that fails: released: false, store_unavailable(release) counted, the failed release timed once", async () => {
    store.store.release = () => Promise.reject(new Error("connection reset"));
    expect((await pay("order-8", { status: 503 })).status).toBe(503);
    expect(events.map((event) => event.type)).toEqual([
      "idempotency.first",
      "idempotency.released",
      "idempotency.store_unavailable",
    ]);
    expect(eventsOf("idempotency.released")[0]).toMatchObject({ reason: "status", released: false });
    const metrics = await otel.metrics();
    expect(
      metrics["interlock.store.duration"]
        ?.filter((point) => point.attributes["interlock.store.operation"] === "release")
        .map((point) => [point.attributes, "count" in point && point.count]),
    ).toEqual([
      [
        {
          "interlock.component": "idempotency",
          "interlock.store.operation": "release",
          "error.type": "store_unavailable",
        },
        1,
      ],
    ]);
    await expectOnlyTheWonClaim(metrics);
  });
});

describe("a middleware mounted for the whole app", () => {
  it("never puts a path in http.route: claims name no route, the outcomes after it ran its pattern", async () => {
    const onEvent = interlockTelemetry<InterlockEvent>({
      meterProvider: otel.meterProvider,
      tracerProvider: otel.tracerProvider,
    });
    const wide = express();
    wide.use(idempotency({ store: new MemoryStore(), principal: false, onEvent }));
    wide.post("/orders/:id", (_req, res) => void res.status(201).json({}));
    const served = await serve(wide);
    try {
      for (const id of [1, 2, 3]) {
        expect((await post(`${served.url}/orders/${id}`, { "idempotency-key": `order-${id}` }, "{}")).status).toBe(201);
      }
    } finally {
      await served.close();
    }
    const method = { "http.request.method": "POST" };
    const metrics = await otel.metrics();
    expect(sorted(metrics["interlock.idempotency.outcomes"])).toEqual(
      sorted([
        { attributes: { ...method, "interlock.idempotency.outcome": "first" }, value: 3 },
        {
          attributes: {
            ...method,
            "http.route": "/orders/:id",
            "interlock.idempotency.outcome": "completed",
            "http.response.status_code": 201,
          },
          value: 3,
        },
      ]),
    );
  });
});

describe("a response written in the caller's transaction, then rolled back", () => {
  it("one execute span, not a handler failure; released(rolled_back) counted beside completed, timed as a release only", async () => {
    const inner = new MemoryStore();
    // The memory store cannot join a transaction: stand in for one that writes inside it.
    const transactional: InterlockStore = {
      name: "transactional",
      maxRecordBytes: inner.maxRecordBytes,
      claim: (key, options) => inner.claim(key, options),
      complete: (key, token, record, options) => inner.complete(key, token, record, { ttlMs: options.ttlMs }),
      release: (key, token) => inner.release(key, token),
      extend: (key, token, ttl) => inner.extend(key, token, ttl),
    };
    const onEvent = interlockTelemetry<InterlockEvent>({
      meterProvider: otel.meterProvider,
      tracerProvider: otel.tracerProvider,
      onEvent: (event) => events.push(event),
    });
    const engine = createIdempotency({ store: transactional, principal: false, onEvent });
    const decision = await engine.begin({
      method: "POST",
      route: "/payments",
      path: "/payments",
      headers: { "idempotency-key": "order-tx" },
      body: "{}",
    });
    if (decision.action !== "execute") throw new Error(decision.action);
    await engine.finish(decision.ticket, { status: 201, headers: {}, body: new Uint8Array() }, { transaction: {} });
    await engine.abort(decision.ticket); // after ROLLBACK, as documented
    const [completed] = eventsOf("idempotency.completed");
    const [released] = eventsOf("idempotency.released");

    const spans = await interlockSpans();
    expect(spans.map((span) => [span.name, span.attributes["interlock.idempotency.outcome"], span.status])).toEqual([
      ["interlock.idempotency.claim", "first", SpanStatusCode.UNSET],
      ["interlock.idempotency.execute", "completed", SpanStatusCode.UNSET],
    ]);
    expect(spans[1]?.attributes["error.type"]).toBeUndefined();

    const metrics = await otel.metrics();
    const stored = { ...ROUTE, "http.response.status_code": 201 };
    expect(sorted(metrics["interlock.idempotency.outcomes"])).toEqual(
      sorted([
        { attributes: { ...ROUTE, "interlock.idempotency.outcome": "first" }, value: 1 },
        { attributes: { ...stored, "interlock.idempotency.outcome": "completed" }, value: 1 },
        {
          attributes: {
            ...stored,
            "interlock.idempotency.outcome": "released",
            "interlock.idempotency.reason": "rolled_back",
          },
          value: 1,
        },
      ]),
    );
    // The handler ran once: its time is the completed outcome's alone.
    expect(metrics["interlock.idempotency.handler.duration"]).toEqual([
      {
        attributes: { ...stored, "interlock.idempotency.outcome": "completed" },
        count: 1,
        sum: expect.closeTo((completed!.durationMs - completed!.storeMs) / 1000, 9),
      },
    ]);
    const operation = (name: string) => ({ "interlock.component": "idempotency", "interlock.store.operation": name });
    expect(
      sorted(metrics["interlock.store.duration"]).map((point) => [point.attributes, "count" in point && point.count]),
    ).toEqual([
      [operation("claim"), 1],
      [operation("complete"), 1],
      [operation("release"), 1],
    ]);
    expect(
      metrics["interlock.store.duration"]?.find((p) => p.attributes["interlock.store.operation"] === "release"),
    ).toMatchObject({ sum: expect.closeTo(released!.storeMs / 1000, 9) });
  });
});
