/**
 * Without providers in its options, the hook uses the global ones that the app's OpenTelemetry
 * setup registers, looked up at the first event: registering them after making the hook works.
 * (A file of its own: it changes OpenTelemetry's global state.)
 */
import { metrics, trace } from "@opentelemetry/api";
import { afterAll, expect, it } from "vitest";
import { interlockTelemetry } from "../src/index.js";
import { delivery, post, sdk, startApp, switchableStore } from "./harness.js";

const otel = sdk();
afterAll(async () => {
  metrics.disable();
  trace.disable();
  await otel.shutdown();
});

it("records to the global meter and tracer providers registered after the hook was made", async () => {
  const onEvent = interlockTelemetry();
  metrics.setGlobalMeterProvider(otel.meterProvider);
  trace.setGlobalTracerProvider(otel.tracerProvider);
  const app = await startApp({ onEvent, store: switchableStore().store });
  try {
    const signed = await delivery("msg_global", {});
    expect((await post(`${app.url}/webhooks`, signed.headers, signed.body)).status).toBe(200);
  } finally {
    await app.close();
  }
  expect((await otel.spans()).map((span) => span.name)).toEqual([
    "interlock.webhook.verify",
    "interlock.webhook.claim",
    "interlock.webhook.handle",
  ]);
  expect((await otel.metrics())["interlock.webhook.verifications"]).toEqual([
    {
      attributes: { "interlock.webhook.scheme": "standard-webhooks", "interlock.webhook.outcome": "verified" },
      value: 1,
    },
  ]);
});
