/**
 * The hook itself: composing with the app's own hook, never breaking a request when telemetry
 * fails, ignoring event types it does not know, and the instruments' names, units and buckets.
 */
import type { InterlockEvent } from "@interlock/core";
import { type DiagLogger, DiagLogLevel, diag, type MeterProvider } from "@opentelemetry/api";
import { DataPointType, type HistogramMetricData } from "@opentelemetry/sdk-metrics";
import { afterEach, describe, expect, it } from "vitest";
import { version } from "../package.json";
import { DURATION_BUCKETS, interlockTelemetry } from "../src/index.js";
import { type App, delivery, endMs, post, type Sdk, sdk, startApp, startMs, switchableStore } from "./harness.js";

let otel: Sdk | undefined;
let app: App | undefined;
afterEach(async () => {
  await app?.close();
  await otel?.shutdown();
  diag.disable();
  app = undefined;
  otel = undefined;
});

async function deliverTo(target: App, id: string, payload: unknown = {}) {
  const signed = await delivery(id, payload);
  return post(`${target.url}/webhooks`, signed.headers, signed.body);
}

describe("composing with the app's own hook", () => {
  it("the app's hook gets every event, in order, after telemetry recorded it", async () => {
    otel = sdk();
    const seen: Array<[string, number]> = [];
    const onEvent = interlockTelemetry({
      meterProvider: otel.meterProvider,
      tracerProvider: otel.tracerProvider,
      // How many spans had ended when the app's hook saw the event: telemetry ran first.
      onEvent: (event) => void seen.push([event.type, otel?.ended() ?? -1]),
    });
    app = await startApp({ onEvent, store: switchableStore().store });
    await deliverTo(app, "msg_1");
    await deliverTo(app, "msg_1");
    expect(seen).toEqual([
      ["webhook.verified", 1],
      ["webhook.processed", 3],
      ["webhook.verified", 4],
      ["webhook.duplicate", 5],
    ]);
  });

  it("a telemetry failure is reported to OpenTelemetry's diag logger and changes nothing else", async () => {
    const errors: unknown[][] = [];
    const logger: DiagLogger = {
      error: (...args) => void errors.push(args),
      warn: () => {},
      info: () => {},
      debug: () => {},
      verbose: () => {},
    };
    diag.setLogger(logger, DiagLogLevel.ERROR);
    const broken: MeterProvider = {
      getMeter: () => {
        throw new Error("meter provider is broken");
      },
    };
    const seen: string[] = [];
    const onEvent = interlockTelemetry({ meterProvider: broken, onEvent: (event) => void seen.push(event.type) });
    app = await startApp({ onEvent, store: switchableStore().store });
    const response = await deliverTo(app, "msg_2");
    expect([response.status, JSON.parse(response.body)]).toEqual([200, { received: "msg_2" }]);
    expect(seen).toEqual(["webhook.verified", "webhook.processed"]);
    expect(errors.map(([message, error]) => [message, (error as Error).message])).toEqual([
      ["@interlock/opentelemetry: could not record webhook.verified", "meter provider is broken"],
      ["@interlock/opentelemetry: could not record webhook.processed", "meter provider is broken"],
    ]);
  });

  it("an async app hook that rejects reaches the emitter's catch: no unhandled rejection, the request unchanged", async () => {
    const unhandled: unknown[] = [];
    const listener = (reason: unknown) => void unhandled.push(reason);
    process.on("unhandledRejection", listener);
    try {
      otel = sdk();
      const onEvent = interlockTelemetry({
        meterProvider: otel.meterProvider,
        tracerProvider: otel.tracerProvider,
        onEvent: async () => {
          throw new Error("log shipper down");
        },
      });
      app = await startApp({ onEvent, store: switchableStore().store });
      const response = await deliverTo(app, "msg_3");
      expect([response.status, JSON.parse(response.body)]).toEqual([200, { received: "msg_3" }]);
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(unhandled).toEqual([]);
      expect((await otel.spans()).length).toBe(3);
    } finally {
      process.off("unhandledRejection", listener);
    }
  });

  it("an event type it does not know (a newer package's) is passed on and records nothing", async () => {
    otel = sdk();
    const seen: unknown[] = [];
    const onEvent = interlockTelemetry({
      meterProvider: otel.meterProvider,
      tracerProvider: otel.tracerProvider,
      onEvent: (event) => void seen.push(event),
    });
    const future = { type: "queue.received", queue: "orders", attempt: 2 } as unknown as InterlockEvent;
    onEvent(future);
    expect(seen).toEqual([future]);
    expect(await otel.spans()).toEqual([]);
    expect(await otel.metrics()).toEqual({});
  });
});

describe("durations below zero", () => {
  it("are recorded as 0 and drawn as zero-length spans, not dropped or ending before they start", async () => {
    otel = sdk();
    const onEvent = interlockTelemetry<InterlockEvent>({
      meterProvider: otel.meterProvider,
      tracerProvider: otel.tracerProvider,
    });
    // Core never measures these (its clock is monotonic), but an emitter of another version might.
    onEvent({ type: "webhook.verified", scheme: "stripe", id: "evt_1", idCovered: true, durationMs: -50 });
    const recordedBy = Date.now();
    onEvent({ type: "idempotency.completed", method: "POST", key: "k", status: 201, durationMs: 1, storeMs: 3 });

    const metrics = await otel.metrics();
    for (const name of ["interlock.webhook.verification.duration", "interlock.idempotency.handler.duration"]) {
      expect(metrics[name]).toMatchObject([{ count: 1, sum: 0 }]);
    }
    const [verify] = await otel.spans();
    expect(verify && startMs(verify)).toBe(verify && endMs(verify));
    expect(verify && endMs(verify)).toBeLessThanOrEqual(recordedBy); // the span ended when recorded, not after
  });
});

describe("instruments", () => {
  it("are named, described and scoped as documented, durations in seconds with the advised buckets", async () => {
    otel = sdk();
    const onEvent = interlockTelemetry({ meterProvider: otel.meterProvider, tracerProvider: otel.tracerProvider });
    const store = switchableStore();
    app = await startApp({ onEvent, store: store.store });
    await deliverTo(app, "msg_3");
    await post(`${app.url}/payments`, { "content-type": "application/json", "idempotency-key": "k" }, "{}");

    const [scope, ...others] = await otel.collect();
    expect(others).toEqual([]);
    expect(scope?.scope).toMatchObject({ name: "@interlock/opentelemetry", version });
    const descriptors = scope?.metrics.map(({ descriptor }) => [descriptor.name, descriptor.unit]);
    expect(descriptors?.sort()).toEqual([
      ["interlock.idempotency.handler.duration", "s"],
      ["interlock.idempotency.outcomes", "{outcome}"],
      ["interlock.store.duration", "s"],
      ["interlock.webhook.deliveries", "{delivery}"],
      ["interlock.webhook.handler.duration", "s"],
      ["interlock.webhook.verification.duration", "s"],
      ["interlock.webhook.verifications", "{verification}"],
    ]);
    for (const metric of scope?.metrics ?? []) {
      expect(metric.descriptor.description).not.toBe("");
      if (metric.dataPointType !== DataPointType.HISTOGRAM) continue;
      for (const point of (metric as HistogramMetricData).dataPoints) {
        expect(point.value.buckets.boundaries).toEqual(DURATION_BUCKETS);
      }
    }
    const spans = await otel.spans();
    expect(new Set(spans.map((span) => span.instrumentationScope.name))).toEqual(new Set(["@interlock/opentelemetry"]));
    expect(spans[0]?.instrumentationScope.version).toBe(version);
  });

  it("are made once per hook, and the tracer looked up once, however many events it records", async () => {
    otel = sdk();
    const { meterProvider, tracerProvider } = otel;
    const lookups = { meters: 0, tracers: 0 };
    const onEvent = interlockTelemetry({
      meterProvider: {
        getMeter(...args) {
          lookups.meters++;
          return meterProvider.getMeter(...args);
        },
      },
      tracerProvider: {
        getTracer(...args) {
          lookups.tracers++;
          return tracerProvider.getTracer(...args);
        },
      },
    });
    app = await startApp({ onEvent, store: switchableStore().store });
    await deliverTo(app, "msg_4");
    await deliverTo(app, "msg_4");
    expect(otel.ended()).toBe(5);
    expect(lookups).toEqual({ meters: 1, tracers: 1 });
  });
});
