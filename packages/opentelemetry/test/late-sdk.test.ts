/**
 * The SDK started late: events that arrive before the global providers are registered (a
 * delivery during boot, a client's first call) must not leave the hook recording to the API's
 * no-op meter for good. (A file of its own: it changes OpenTelemetry's global state.)
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { CircuitOpenError, createClient, RetryLimitError } from "@interlock/client";
import { type MeterProvider, metrics, trace } from "@opentelemetry/api";
import { afterAll, expect, it } from "vitest";
import { interlockTelemetry, METRIC_CLIENT_BREAKERS, METRIC_WEBHOOK_DELIVERIES } from "../src/index.js";
import { type App, delivery, post, type Sdk, sdk, startApp, switchableStore } from "./harness.js";

const started: Sdk[] = [];
let app: App | undefined;
let server: Server | undefined;
afterAll(async () => {
  await app?.close();
  server?.closeAllConnections();
  server?.close();
  metrics.disable();
  trace.disable();
  await Promise.all(started.map((otel) => otel.shutdown()));
});

/** Registers an SDK's providers as the global ones, the meter provider counting its `getMeter` calls. */
function startSdk(): { otel: Sdk; meters: () => number } {
  const otel = sdk();
  started.push(otel);
  let meters = 0;
  const counting: MeterProvider = {
    getMeter: (...args) => {
      meters++;
      return otel.meterProvider.getMeter(...args);
    },
  };
  metrics.setGlobalMeterProvider(counting);
  trace.setGlobalTracerProvider(otel.tracerProvider);
  return { otel, meters: () => meters };
}

const PROCESSED = { "interlock.webhook.scheme": "standard-webhooks", "interlock.webhook.outcome": "processed" };

it("events before the global SDK is registered are lost, those after it are all recorded, the breakers gauge included", async () => {
  const onEvent = interlockTelemetry();
  app = await startApp({ onEvent, store: switchableStore().store });
  const deliver = async (id: string) => {
    const signed = await delivery(id, {});
    expect((await post(`${app?.url}/webhooks`, signed.headers, signed.body)).status).toBe(200);
  };
  server = createServer((req, res) => req.resume().on("end", () => res.writeHead(500).end()));
  await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  // Boot: a delivery, and a client whose breaker opens, before the SDK starts.
  await deliver("msg_boot");
  const client = createClient({ onEvent, maxAttempts: 1, breaker: { failures: 1, halfOpenAfterMs: 60_000 } });
  await expect(client(`${origin}/things`)).rejects.toBeInstanceOf(RetryLimitError);

  const first = startSdk();
  await deliver("msg_1");
  await deliver("msg_2");
  await expect(client(`${origin}/things`)).rejects.toBeInstanceOf(CircuitOpenError);
  const recorded = await first.otel.metrics();
  expect(recorded[METRIC_WEBHOOK_DELIVERIES]).toEqual([
    { attributes: { ...PROCESSED, "interlock.webhook.recorded": true }, value: 2 },
  ]);
  // The breaker opened before the SDK started: the gauge reads the registry, so it is there.
  expect(recorded[METRIC_CLIENT_BREAKERS]).toEqual([
    { attributes: { "interlock.client.origin": origin, "interlock.client.breaker.state": "open" }, value: 1 },
  ]);
  // The instruments (and the gauge's callback) are made once for the provider, not per event.
  expect(first.meters()).toBe(1);
  expect((await first.otel.spans()).map((span) => span.name)).toEqual([
    "interlock.webhook.verify",
    "interlock.webhook.claim",
    "interlock.webhook.handle",
    "interlock.webhook.verify",
    "interlock.webhook.claim",
    "interlock.webhook.handle",
  ]);

  // A provider replaced later (the SDK restarted) is followed too.
  metrics.disable();
  trace.disable();
  const second = startSdk();
  await deliver("msg_3");
  expect((await second.otel.metrics())[METRIC_WEBHOOK_DELIVERIES]).toEqual([
    { attributes: { ...PROCESSED, "interlock.webhook.recorded": true }, value: 1 },
  ]);
  expect((await second.otel.spans()).map((span) => span.name)).toEqual([
    "interlock.webhook.verify",
    "interlock.webhook.claim",
    "interlock.webhook.handle",
  ]);
  expect(second.meters()).toBe(1);
});
