/**
 * `interlockTelemetry()`: an `onEvent` hook that turns core's events into OpenTelemetry spans
 * and metrics, through the API only. The app's SDK (or none: the API is then a no-op) decides
 * where they go.
 */

import { diag, type MeterProvider, metrics, type Tracer, type TracerProvider, trace } from "@opentelemetry/api";
import { version } from "../package.json";
import { BreakerGauge } from "./breakers.js";
import { createInstruments, type Instruments } from "./instruments.js";
import { EVENT_TELEMETRY, type EventRow, type TelemetryEvent } from "./mapping.js";
import { EventRecorder, type Sinks } from "./recorder.js";

/** The instrumentation scope of every meter and tracer this package makes. */
export const INSTRUMENTATION_SCOPE = "@interlock/opentelemetry";

/** A hook for some of the events telemetry records: core's `onEvent`, the client's, OAuth's. */
export type TelemetryHook<E extends TelemetryEvent = TelemetryEvent> = (event: E) => void;

/** Where the telemetry goes, and your own hook. */
export interface InterlockTelemetryOptions<E extends TelemetryEvent = TelemetryEvent> {
  /** Where metrics go. Default: the global one (`metrics.getMeter`), looked up at the first event. */
  meterProvider?: MeterProvider;
  /** Where spans go. Default: the global one (`trace.getTracer`). */
  tracerProvider?: TracerProvider;
  /**
   * Your own hook, called with every event after telemetry has recorded it (for logs): pass
   * the returned hook as core's `onEvent` and keep yours here. Its errors (and its promise's
   * rejection, if it is async) are not caught here: the emitting package drops them.
   */
  onEvent?: TelemetryHook<E>;
}

/**
 * Makes the hook to pass as `onEvent` to a webhook receiver, an idempotency engine, an
 * adapter's middleware, `createClient()` (`@interlock/client`) or `createOAuthClient()`
 * (`@interlock/oauth`, and its `retry.onEvent`). One hook can serve them all; make it once per app.
 */
export function interlockTelemetry<E extends TelemetryEvent = TelemetryEvent>(
  options: InterlockTelemetryOptions<E> = {},
): TelemetryHook<E> {
  const { meterProvider, tracerProvider, onEvent } = options;
  // Looked up when first needed, not now: a global MeterProvider registered after this call
  // (the SDK started later in the app's boot) is still the one used. A client's creation
  // needs neither, so a client made before the SDK starts does not pin the no-op meter.
  let instruments: Instruments | undefined;
  let tracer: Tracer | undefined;
  const breakers = new BreakerGauge();
  const sinks: Sinks = {
    breakers,
    instruments: () =>
      (instruments ??= createInstruments(
        meterProvider
          ? meterProvider.getMeter(INSTRUMENTATION_SCOPE, version)
          : metrics.getMeter(INSTRUMENTATION_SCOPE, version),
        breakers,
      )),
    tracer: () =>
      (tracer ??= tracerProvider
        ? tracerProvider.getTracer(INSTRUMENTATION_SCOPE, version)
        : trace.getTracer(INSTRUMENTATION_SCOPE, version)),
  };

  function record(event: TelemetryEvent): void {
    const row = (EVENT_TELEMETRY as Record<string, EventRow<TelemetryEvent> | undefined>)[event.type];
    if (row === undefined) return; // an event type this version does not know yet
    // Only core's events carry a correlation id (the incoming request's).
    const correlationId = "correlationId" in event ? event.correlationId : undefined;
    row(event, new EventRecorder(sinks, correlationId));
  }

  return (event) => {
    try {
      record(event);
    } catch (error) {
      // Telemetry never changes an outcome, and never keeps the app's own hook from running.
      diag.error(`${INSTRUMENTATION_SCOPE}: could not record ${event.type}`, error);
    }
    // Returned, so that an async hook's rejection reaches the emitter, which drops it.
    return onEvent?.(event);
  };
}
