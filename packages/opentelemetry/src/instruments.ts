/**
 * The metric instruments, named and described once. Durations are histograms in seconds, as
 * the semantic conventions ask, with buckets fine enough for a 50 µs verification and wide
 * enough for a handler that runs into its lease.
 */

import type { Counter, Histogram, Meter } from "@opentelemetry/api";

/** Counter: webhook deliveries verified or rejected, by scheme, outcome and rejection code. */
export const METRIC_WEBHOOK_VERIFICATIONS = "interlock.webhook.verifications";
/** Histogram (seconds): time spent verifying a delivery's signature. */
export const METRIC_WEBHOOK_VERIFICATION_DURATION = "interlock.webhook.verification.duration";
/** Counter: webhook deliveries by what became of them (processed, duplicate, in flight, …). */
export const METRIC_WEBHOOK_DELIVERIES = "interlock.webhook.deliveries";
/** Histogram (seconds): time a webhook handler ran, store time excluded. */
export const METRIC_WEBHOOK_HANDLER_DURATION = "interlock.webhook.handler.duration";
/** Counter: idempotency engine decisions, by method, route and outcome. */
export const METRIC_IDEMPOTENCY_OUTCOMES = "interlock.idempotency.outcomes";
/** Histogram (seconds): time an idempotent request's handler ran, store time excluded. */
export const METRIC_IDEMPOTENCY_HANDLER_DURATION = "interlock.idempotency.handler.duration";
/** Histogram (seconds): time a store operation (claim, complete, release) took. */
export const METRIC_STORE_DURATION = "interlock.store.duration";

/** Bucket boundaries (seconds) every duration histogram advises. */
export const DURATION_BUCKETS: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

const COUNTERS = {
  [METRIC_WEBHOOK_VERIFICATIONS]: {
    unit: "{verification}",
    description: "Webhook deliveries verified or rejected, by scheme, outcome and rejection code (error.type).",
  },
  [METRIC_WEBHOOK_DELIVERIES]: {
    unit: "{delivery}",
    description:
      "Webhook deliveries by what became of them: rejected, duplicate, in_flight, store_unavailable, processed or handler_failed.",
  },
  [METRIC_IDEMPOTENCY_OUTCOMES]: {
    unit: "{outcome}",
    description:
      "Idempotency engine decisions, by method, route and outcome (a request that runs is first, then completed, released or not_recorded).",
  },
} as const;

const HISTOGRAMS = {
  [METRIC_WEBHOOK_VERIFICATION_DURATION]: { description: "Time spent verifying a webhook delivery's signature." },
  [METRIC_WEBHOOK_HANDLER_DURATION]: {
    description: "Time a webhook handler ran, from the won claim to the handler's outcome (store time excluded).",
  },
  [METRIC_IDEMPOTENCY_HANDLER_DURATION]: {
    description: "Time an idempotent request's handler ran, from the won claim to its response (store time excluded).",
  },
  [METRIC_STORE_DURATION]: {
    description: "Time a store operation (claim, complete, release) took, by component and operation.",
  },
} as const;

export type CounterName = keyof typeof COUNTERS;
export type HistogramName = keyof typeof HISTOGRAMS;

export interface Instruments {
  counters: Record<CounterName, Counter>;
  histograms: Record<HistogramName, Histogram>;
}

export function createInstruments(meter: Meter): Instruments {
  const counters = {} as Record<CounterName, Counter>;
  for (const [name, options] of Object.entries(COUNTERS) as Array<[CounterName, (typeof COUNTERS)[CounterName]]>) {
    counters[name] = meter.createCounter(name, options);
  }
  const histograms = {} as Record<HistogramName, Histogram>;
  for (const [name, { description }] of Object.entries(HISTOGRAMS) as Array<[HistogramName, { description: string }]>) {
    histograms[name] = meter.createHistogram(name, {
      unit: "s",
      description,
      advice: { explicitBucketBoundaries: [...DURATION_BUCKETS] },
    });
  }
  return { counters, histograms };
}
