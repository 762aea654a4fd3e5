/**
 * What one event is turned into: counter increments, durations, and spans. Core reports each
 * step once it is over, with how long it took, so a span is drawn after the fact: it ends when
 * the event arrives (or `endedMsAgo` before) and starts `durationMs` earlier, under whatever
 * span is active then (the request's server span, with HTTP instrumentation).
 */

import { type Attributes, SpanKind, SpanStatusCode, type Tracer } from "@opentelemetry/api";
import { ATTR_COMPONENT, ATTR_CORRELATION_ID, ATTR_ERROR_TYPE, ATTR_STORE_OPERATION } from "./attributes.js";
import type { BreakerGauge } from "./breakers.js";
import { type CounterName, type HistogramName, type Instruments, METRIC_STORE_DURATION } from "./instruments.js";
import type { BreakerStates } from "./outbound-events.js";

/** Where an event's data goes: one per hook. */
export interface Sinks {
  /** The current meter provider's instruments, made on its first use (see `interlockTelemetry`). */
  instruments(): Instruments;
  /** The current tracer provider's tracer. */
  tracer(): Tracer;
  /** The clients' breaker registries, read by the breakers gauge. */
  breakers: BreakerGauge;
}

export interface SpanTiming {
  durationMs: number;
  /** How long before the event the step ended. Default 0: it ended as the event was emitted. */
  endedMsAgo?: number;
}

export class EventRecorder {
  readonly #sinks: Sinks;
  /** Wall-clock time of the event, in ms since the epoch (a span's times are wall-clock). */
  readonly #now: number;
  readonly #correlationId: string | undefined;

  constructor(sinks: Sinks, correlationId: string | undefined) {
    this.#sinks = sinks;
    this.#now = Date.now();
    this.#correlationId = correlationId;
  }

  count(name: CounterName, attributes: Attributes): void {
    this.#sinks.instruments().counters[name].add(1, attributes);
  }

  /** Hands a client's breaker registry to the breakers gauge, which reads it at each collection. */
  watchBreakers(registry: BreakerStates): void {
    this.#sinks.breakers.watch(registry);
  }

  /** Records a duration given in milliseconds, in seconds. */
  time(name: HistogramName, ms: number, attributes: Attributes): void {
    this.#sinks.instruments().histograms[name].record(Math.max(0, ms) / 1000, attributes);
  }

  /** One store operation's latency; `errorType` when it failed. */
  store(component: string, operation: string, ms: number, errorType?: string): void {
    const attributes: Attributes = { [ATTR_COMPONENT]: component, [ATTR_STORE_OPERATION]: operation };
    if (errorType !== undefined) attributes[ATTR_ERROR_TYPE] = errorType;
    this.time(METRIC_STORE_DURATION, ms, attributes);
  }

  /**
   * A finished span; `errorType` sets `error.type` and an error status, whose message is
   * `errorType` too, or `message`: the code a bounded `error.type` (`_OTHER`) stands for.
   */
  span(name: string, timing: SpanTiming, attributes: Attributes, errorType?: string, message?: string): void {
    const end = this.#now - (timing.endedMsAgo ?? 0);
    const spanAttributes: Attributes = { ...attributes };
    if (this.#correlationId !== undefined) spanAttributes[ATTR_CORRELATION_ID] = this.#correlationId;
    if (errorType !== undefined) spanAttributes[ATTR_ERROR_TYPE] = errorType;
    const span = this.#sinks.tracer().startSpan(name, {
      kind: SpanKind.INTERNAL,
      startTime: end - Math.max(0, timing.durationMs),
      attributes: spanAttributes,
    });
    if (errorType !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: message ?? errorType });
    span.end(end);
  }
}
