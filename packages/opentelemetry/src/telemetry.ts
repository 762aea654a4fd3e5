/**
 * `interlockTelemetry()`: an `onEvent` hook that turns core's events into OpenTelemetry spans
 * and metrics, through the API only. The app's SDK (or none: the API is then a no-op) decides
 * where they go.
 */

import { assertOptionNames, optionNames } from "@interlock/core";
import { diag, type MeterProvider, metrics, type TracerProvider, trace } from "@opentelemetry/api";
import { version } from "../package.json";
import { BreakerGauge } from "./breakers.js";
import { createInstruments } from "./instruments.js";
import { EVENT_TELEMETRY, type EventRow, type TelemetryEvent } from "./mapping.js";
import { EventRecorder, type Sinks } from "./recorder.js";

/** The instrumentation scope of every meter and tracer this package makes. */
export const INSTRUMENTATION_SCOPE = "@interlock/opentelemetry";

/** A hook for some of the events telemetry records: core's `onEvent`, the client's, OAuth's. */
export type TelemetryHook<E extends TelemetryEvent = TelemetryEvent> = (event: E) => void;

/** Where the telemetry goes, and your own hook. */
export interface InterlockTelemetryOptions<E extends TelemetryEvent = TelemetryEvent> {
  /**
   * Where metrics go. Default: the global one (`metrics.getMeterProvider()`), looked up at each
   * event, so an SDK registered after events have begun is used from then on.
   */
  meterProvider?: MeterProvider;
  /** Where spans go. Default: the global one (`trace.getTracerProvider()`), looked up at each event. */
  tracerProvider?: TracerProvider;
  /**
   * Your own hook, called with every event after telemetry has recorded it (for logs): pass
   * the returned hook as core's `onEvent` and keep yours here. Its errors (and its promise's
   * rejection, if it is async) are not caught here: the emitting package drops them.
   */
  onEvent?: TelemetryHook<E>;
}

const TELEMETRY_OPTION_NAMES = optionNames<InterlockTelemetryOptions>({
  meterProvider: true,
  tracerProvider: true,
  onEvent: true,
});

/**
 * Makes the hook to pass as `onEvent` to a webhook receiver, an idempotency engine, an
 * adapter's middleware, `createClient()` (`@interlock/client`) or `createOAuthClient()`
 * (`@interlock/oauth`, and its `retry.onEvent`). One hook can serve them all; make it once per app.
 */
export function interlockTelemetry<E extends TelemetryEvent = TelemetryEvent>(
  options: InterlockTelemetryOptions<E> = {},
): TelemetryHook<E> {
  assertOptionNames("interlockTelemetry()", options, TELEMETRY_OPTION_NAMES);
  const { meterProvider, tracerProvider, onEvent } = options;
  const breakers = new BreakerGauge();
  const sinks: Sinks = {
    breakers,
    instruments: perProvider(
      () => meterProvider ?? metrics.getMeterProvider(),
      (provider) => createInstruments(provider.getMeter(INSTRUMENTATION_SCOPE, version), breakers),
    ),
    // The global TracerProvider is a proxy that starts delegating to the SDK's once it is
    // registered; it is looked up at each event too, so that one replaced later (`trace.disable()`,
    // then another) is followed.
    tracer: perProvider(
      () => tracerProvider ?? trace.getTracerProvider(),
      (provider) => provider.getTracer(INSTRUMENTATION_SCOPE, version),
    ),
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

/**
 * What `make` builds for the provider `current()` returns, looked up at every call and built
 * once per provider. Why not once and for all: until the SDK registers its MeterProvider, the
 * global one is the API's no-op provider, and unlike tracing's there is no proxy that starts
 * delegating to the SDK's later. Instruments made before the SDK started (an event during boot)
 * would record nothing for the life of the process. Why once per provider: the instruments
 * include the breakers gauge, whose callback must not be registered twice on one provider.
 */
function perProvider<P extends object, T>(current: () => P, make: (provider: P) => T): () => T {
  const made = new WeakMap<P, T>();
  return () => {
    const provider = current();
    let value = made.get(provider);
    if (value === undefined) {
      value = make(provider);
      made.set(provider, value);
    }
    return value;
  };
}
