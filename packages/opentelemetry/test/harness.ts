/**
 * What every test here shares: the OpenTelemetry SDK with in-memory exporters (a manual metric
 * reader, a span exporter), an Express app protected by Interlock's real middleware on
 * 127.0.0.1, and readers that turn the SDK's output into plain data to compare.
 */
import type { AddressInfo } from "node:net";
import {
  type EventHook,
  type InterlockEvent,
  type InterlockStore,
  MemoryStore,
  StoreUnavailableError,
  signWebhook,
  standardWebhooks,
} from "@interlock/core";
import { captureRawBody, idempotency, releaseOnError, webhook } from "@interlock/express";
import { type Attributes, context, propagation, SpanKind, type Tracer, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { hrTimeToMilliseconds, W3CTraceContextPropagator } from "@opentelemetry/core";
import {
  type DataPoint,
  type Histogram,
  MeterProvider,
  MetricReader,
  type ScopeMetrics,
} from "@opentelemetry/sdk-metrics";
import {
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
  type SpanProcessor,
  TracerProvider,
} from "@opentelemetry/sdk-trace";
import express from "express";

export const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/**
 * Registers what an app's OpenTelemetry setup registers globally: an AsyncLocalStorage context
 * manager (so a span stays active across awaits) and the W3C trace-context propagator.
 * Returns the undo.
 */
export function registerContext(): () => void {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  return () => {
    context.disable();
    propagation.disable();
  };
}

/** A reader that exports only when asked: `collect()` returns the cumulative state. */
class ManualReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

export interface Sdk {
  meterProvider: MeterProvider;
  tracerProvider: TracerProvider;
  /** The finished spans, in the order they ended. */
  spans(): Promise<ReadableSpan[]>;
  /** How many spans have ended so far, counted synchronously as each ends. */
  ended(): number;
  /** Every data point of every metric, by metric name. */
  metrics(): Promise<Record<string, Point[]>>;
  /** What the SDK collected, as it is. */
  collect(): Promise<ScopeMetrics[]>;
  shutdown(): Promise<void>;
}

/** A counter's value, or a histogram's count and sum, with its attributes. */
export type Point = { attributes: Attributes; value: number } | { attributes: Attributes; count: number; sum: number };

export function sdk(): Sdk {
  const reader = new ManualReader();
  const exporter = new InMemorySpanExporter();
  const meterProvider = new MeterProvider({ readers: [reader] });
  let ended = 0;
  const counter: SpanProcessor = {
    onStart: () => {},
    onEnd: () => void ended++,
    forceFlush: async () => {},
    shutdown: async () => {},
  };
  const tracerProvider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter }), counter] });
  return {
    meterProvider,
    tracerProvider,
    ended: () => ended,
    async spans() {
      await tracerProvider.forceFlush();
      return exporter.getFinishedSpans();
    },
    async collect() {
      const { resourceMetrics, errors } = await reader.collect();
      if (errors.length > 0) throw errors[0];
      return resourceMetrics.scopeMetrics;
    },
    async metrics() {
      const byName: Record<string, Point[]> = {};
      for (const metric of (await this.collect()).flatMap((scope) => scope.metrics)) {
        byName[metric.descriptor.name] = (metric.dataPoints as DataPoint<number | Histogram>[]).map(toPoint);
      }
      return byName;
    },
    async shutdown() {
      await Promise.all([meterProvider.shutdown(), tracerProvider.shutdown()]);
    },
  };
}

function toPoint(point: DataPoint<number | Histogram>): Point {
  const { attributes, value } = point;
  if (typeof value === "number") return { attributes, value };
  return { attributes, count: value.count, sum: value.sum ?? Number.NaN };
}

/** Data points in a stable order (by their attributes), to compare whole lists. */
export function sorted(points: Point[] | undefined): Point[] {
  const key = (point: Point) => JSON.stringify(Object.entries(point.attributes).sort());
  return [...(points ?? [])].sort((a, b) => key(a).localeCompare(key(b)));
}

/** A span as plain data: what the tests compare. */
export function describeSpan(span: ReadableSpan) {
  return {
    name: span.name,
    kind: span.kind,
    attributes: span.attributes,
    status: span.status.code,
    statusMessage: span.status.message,
    traceId: span.spanContext().traceId,
    parentSpanId: span.parentSpanContext?.spanId,
  };
}

export const durationMs = (span: ReadableSpan) => hrTimeToMilliseconds(span.duration);
export const startMs = (span: ReadableSpan) => hrTimeToMilliseconds(span.startTime);
export const endMs = (span: ReadableSpan) => hrTimeToMilliseconds(span.endTime);

/** The memory store, with a switch that makes every claim fail as an unreachable server would. */
export function switchableStore(): { store: InterlockStore; down(value: boolean): void } {
  const store = new MemoryStore();
  const claim = store.claim.bind(store);
  let isDown = false;
  store.claim = (key, options) =>
    isDown ? Promise.reject(new StoreUnavailableError("memory", "connection refused")) : claim(key, options);
  return { store, down: (value) => (isDown = value) };
}

export interface AppOptions {
  onEvent: EventHook<InterlockEvent>;
  store: InterlockStore;
  /**
   * Give each request a server span, made from its `traceparent` (as HTTP instrumentation
   * does) and active while Interlock runs; its id is answered in `x-test-span-id`.
   */
  serverSpans?: Tracer;
}

/** What a payment request's body tells the handler to do. */
interface PaymentOrder {
  status?: number;
  /** Resolve once the handler started, and wait for `release` before answering. */
  hold?: boolean;
  fail?: boolean;
}

export interface App {
  url: string;
  /** Resolves when a held payment handler has started; call the function it gives to let it answer. */
  nextHold(): Promise<() => void>;
  close(): Promise<void>;
}

/**
 * `POST /webhooks` (Standard Webhooks, `{"fail":true}` makes the handler throw, `{"status":503}`
 * answer that status) and
 * `POST /payments` (Idempotency-Key required, `principal: false`), on real Express.
 */
export async function startApp(options: AppOptions): Promise<App> {
  const { onEvent, store, serverSpans } = options;
  const holds: Array<(release: () => void) => void> = [];
  const app = express();
  if (serverSpans) app.use(serverSpan(serverSpans));
  app.post("/webhooks", webhook({ scheme: standardWebhooks, secret: SECRET, store, onEvent }), (req, res) => {
    const event = req.webhook;
    const order = event?.payload as { fail?: boolean; status?: number } | undefined;
    if (order?.fail) throw new Error("handler failed");
    res.status(order?.status ?? 200).json({ received: event?.id });
  });
  app.use(express.json({ verify: captureRawBody }));
  app.post("/payments", idempotency({ store, principal: false, required: true, onEvent }), async (req, res) => {
    const order = req.body as PaymentOrder;
    const waiter = order.hold ? holds.shift() : undefined;
    if (waiter) await new Promise<void>((release) => waiter(release));
    if (order.fail) throw new Error("handler failed");
    res.status(order.status ?? 201).json({ paid: true });
  });
  app.use(releaseOnError);
  app.use((_error: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    res.status(500).json({ error: "handler failed" });
  });
  return { ...(await serve(app)), nextHold: () => new Promise((started) => holds.push(started)) };
}

/** Serves `app` on 127.0.0.1: its URL, and a close that ends the connections still open. */
export async function serve(app: express.Express): Promise<Omit<App, "nextHold">> {
  const server = await new Promise<ReturnType<typeof app.listen>>((resolve, reject) => {
    const listening = app.listen(0, "127.0.0.1", (error?: Error) => (error ? reject(error) : resolve(listening)));
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}

/** A server span per request, the way `@opentelemetry/instrumentation-http` makes one. */
function serverSpan(tracer: Tracer): express.RequestHandler {
  return (req, res, next) => {
    const parent = propagation.extract(context.active(), req.headers);
    const span = tracer.startSpan(`${req.method} ${req.path}`, { kind: SpanKind.SERVER }, parent);
    res.setHeader("x-test-span-id", span.spanContext().spanId);
    res.on("finish", () => span.end());
    context.with(trace.setSpan(parent, span), next);
  };
}

/** A Standard Webhooks delivery signed now, with extra request headers. */
export async function delivery(id: string, payload: unknown, headers: Record<string, string> = {}) {
  const body = JSON.stringify(payload);
  const signed = await signWebhook({ scheme: standardWebhooks, secret: SECRET, body, id });
  return { headers: { ...signed.headers, "content-type": "application/json", ...headers }, body };
}

export async function post(url: string, headers: Record<string, string>, body: string) {
  const response = await fetch(url, { method: "POST", headers, body });
  return { status: response.status, spanId: response.headers.get("x-test-span-id"), body: await response.text() };
}
