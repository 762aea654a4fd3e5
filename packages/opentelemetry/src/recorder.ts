/**
 * What one event is turned into: counter increments, durations, and spans. Core reports each
 * step once it is over, with how long it took, so a span is drawn after the fact: it ends when
 * the event arrives (or `endedMsAgo` before) and starts `durationMs` earlier, under whatever
 * span is active then (the request's server span, with HTTP instrumentation).
 */

import { type Attributes, SpanKind, SpanStatusCode, type Tracer } from "@opentelemetry/api";
import { ATTR_COMPONENT, ATTR_CORRELATION_ID, ATTR_ERROR_TYPE, ATTR_STORE_OPERATION } from "./attributes.js";
import {
  type CounterName,
  type HistogramName,
  type Instruments,
  METRIC_STORE_DURATION,
  type UpDownCounterName,
} from "./instruments.js";

export interface SpanTiming {
  durationMs: number;
  /** How long before the event the step ended. Default 0: it ended as the event was emitted. */
  endedMsAgo?: number;
}

export class EventRecorder {
  readonly #instruments: Instruments;
  readonly #tracer: Tracer;
  /** Wall-clock time of the event, in ms since the epoch (a span's times are wall-clock). */
  readonly #now: number;
  readonly #correlationId: string | undefined;

  constructor(instruments: Instruments, tracer: Tracer, correlationId: string | undefined) {
    this.#instruments = instruments;
    this.#tracer = tracer;
    this.#now = Date.now();
    this.#correlationId = correlationId;
  }

  count(name: CounterName, attributes: Attributes): void {
    this.#instruments.counters[name].add(1, attributes);
  }

  /** Moves an up-down counter (a gauge kept from transitions) by `delta`. */
  add(name: UpDownCounterName, delta: number, attributes: Attributes): void {
    this.#instruments.upDownCounters[name].add(delta, attributes);
  }

  /** Records a duration given in milliseconds, in seconds. */
  time(name: HistogramName, ms: number, attributes: Attributes): void {
    this.#instruments.histograms[name].record(Math.max(0, ms) / 1000, attributes);
  }

  /** One store operation's latency; `errorType` when it failed. */
  store(component: string, operation: string, ms: number, errorType?: string): void {
    const attributes: Attributes = { [ATTR_COMPONENT]: component, [ATTR_STORE_OPERATION]: operation };
    if (errorType !== undefined) attributes[ATTR_ERROR_TYPE] = errorType;
    this.time(METRIC_STORE_DURATION, ms, attributes);
  }

  /** A finished span; `errorType` sets `error.type` and an error status. */
  span(name: string, timing: SpanTiming, attributes: Attributes, errorType?: string): void {
    const end = this.#now - (timing.endedMsAgo ?? 0);
    const spanAttributes: Attributes = { ...attributes };
    if (this.#correlationId !== undefined) spanAttributes[ATTR_CORRELATION_ID] = this.#correlationId;
    if (errorType !== undefined) spanAttributes[ATTR_ERROR_TYPE] = errorType;
    const span = this.#tracer.startSpan(name, {
      kind: SpanKind.INTERNAL,
      startTime: end - Math.max(0, timing.durationMs),
      attributes: spanAttributes,
    });
    if (errorType !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: errorType });
    span.end(end);
  }
}
