// Interlock's events as Prometheus metrics, with prom-client and no OpenTelemetry: the part to
// copy. `interlockMetrics(registry)` returns the hook to pass as `onEvent` to webhook() and
// idempotency(); it registers the metrics below in `registry`.
//
// Labels stay low-cardinality: never a delivery id, an Idempotency-Key or a correlation id
// (log those from your own hook instead). Durations are in seconds.
import { Counter, Histogram } from "prom-client";

/** 100 µs (a verification) to 60 s (a handler running into its lease). */
const BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

/** @param {import("prom-client").Registry} registry */
export function interlockMetrics(registry) {
  const registers = [registry];
  const verifications = new Counter({
    name: "interlock_webhook_verifications_total",
    help: "Webhook deliveries verified or rejected, by scheme, outcome and refusal code.",
    labelNames: ["scheme", "outcome", "code"],
    registers,
  });
  const verificationSeconds = new Histogram({
    name: "interlock_webhook_verification_duration_seconds",
    help: "Time spent verifying a webhook delivery's signature.",
    labelNames: ["scheme", "outcome"],
    buckets: BUCKETS,
    registers,
  });
  const deliveries = new Counter({
    name: "interlock_webhook_deliveries_total",
    help:
      "Webhook deliveries by what became of them: processed, duplicate, in_flight, rejected, store_unavailable, handler_failed; " +
      'recorded="false" on processed: not recorded, a redelivery may run again; released="false" on handler_failed: the lease ends on its own.',
    labelNames: ["scheme", "outcome", "recorded", "released"],
    registers,
  });
  const webhookHandlerSeconds = new Histogram({
    name: "interlock_webhook_handler_duration_seconds",
    help: "Time a webhook handler ran (store time excluded).",
    labelNames: ["scheme", "outcome"],
    buckets: BUCKETS,
    registers,
  });
  const idempotency = new Counter({
    name: "interlock_idempotency_outcomes_total",
    help:
      "Idempotency decisions by route and outcome: first, then completed, released or not_recorded; replayed, in_flight, mismatch, rejected; " +
      "store_unavailable for each failed store call (reason: claim, complete after a not_recorded, release after a released).",
    labelNames: ["method", "route", "outcome", "reason"],
    registers,
  });
  const idempotentHandlerSeconds = new Histogram({
    name: "interlock_idempotency_handler_duration_seconds",
    help: "Time an idempotent request's handler ran (store time excluded).",
    labelNames: ["method", "route", "outcome"],
    buckets: BUCKETS,
    registers,
  });
  const storeSeconds = new Histogram({
    name: "interlock_store_duration_seconds",
    help: "Time a store operation took, by component (webhook, idempotency) and operation (claim, complete, release).",
    labelNames: ["component", "operation", "failed"],
    buckets: BUCKETS,
    registers,
  });

  const seconds = (ms) => Math.max(0, ms) / 1000;
  const store = (component, operation, ms, failed = false) =>
    storeSeconds.observe({ component, operation, failed: String(failed) }, seconds(ms));

  /** @param {import("@interlock/core").InterlockEvent} event */
  return function onEvent(event) {
    switch (event.type) {
      case "webhook.verified":
      case "webhook.rejected": {
        const labels = { scheme: event.scheme, outcome: event.type === "webhook.verified" ? "verified" : "rejected" };
        verificationSeconds.observe(labels, seconds(event.durationMs));
        if (event.type === "webhook.verified") return verifications.inc(labels);
        verifications.inc({ ...labels, code: event.code });
        return deliveries.inc(labels);
      }
      case "webhook.duplicate":
        deliveries.inc({ scheme: event.scheme, outcome: event.state === "completed" ? "duplicate" : "in_flight" });
        return store("webhook", "claim", event.storeMs);
      case "webhook.store_unavailable":
        deliveries.inc({ scheme: event.scheme, outcome: "store_unavailable" });
        return store("webhook", event.operation, event.storeMs, true);
      case "webhook.processed":
      case "webhook.handler_failed": {
        const processed = event.type === "webhook.processed";
        const outcome = processed ? "processed" : "handler_failed";
        // Whether the store took the outcome: a processed delivery not recorded (the complete
        // failed, or the lease was lost) may run again on its redelivery; a release that failed
        // leaves the lease to end on its own. Either is timed as a failed store operation.
        const stored = processed ? event.recorded : event.released;
        deliveries.inc({ scheme: event.scheme, outcome, [processed ? "recorded" : "released"]: String(stored) });
        // durationMs runs from the won claim to the recorded outcome: the handler, then storeMs.
        webhookHandlerSeconds.observe({ scheme: event.scheme, outcome }, seconds(event.durationMs - event.storeMs));
        store("webhook", "claim", event.claimMs);
        return store("webhook", processed ? "complete" : "release", event.storeMs, !stored);
      }
      case "idempotency.rejected":
        return idempotency.inc({
          method: event.method,
          route: routeOf(event),
          outcome: "rejected",
          reason: event.code,
        });
      case "idempotency.first":
      case "idempotency.replayed":
      case "idempotency.in_flight":
      case "idempotency.mismatch":
        idempotency.inc({ method: event.method, route: routeOf(event), outcome: outcomeOf(event) });
        return store("idempotency", "claim", event.storeMs);
      case "idempotency.completed":
      case "idempotency.released":
      case "idempotency.not_recorded": {
        const { method } = event;
        const route = routeOf(event);
        const outcome = outcomeOf(event);
        idempotency.inc(
          "reason" in event ? { method, route, outcome, reason: event.reason } : { method, route, outcome },
        );
        // A release after a rollback corrects a `completed` already counted: its handler was timed then.
        if (!("reason" in event && event.reason === "rolled_back")) {
          idempotentHandlerSeconds.observe({ method, route, outcome }, seconds(event.durationMs - event.storeMs));
        }
        const operation = event.type === "idempotency.released" ? "release" : "complete";
        const failed =
          event.type === "idempotency.released"
            ? !event.released
            : event.type === "idempotency.not_recorded" && event.reason === "store_error";
        return store("idempotency", operation, event.storeMs, failed);
      }
      case "idempotency.store_unavailable":
        idempotency.inc({
          method: event.method,
          route: routeOf(event),
          outcome: "store_unavailable",
          reason: event.operation,
        });
        // A failed complete or release was timed by its not_recorded or released event.
        if (event.operation === "claim") store("idempotency", "claim", event.storeMs, true);
        return;
    }
  };
}

/**
 * The route label: the pattern, or empty (Prometheus' absent label) for an event that names no
 * route, as one from a middleware mounted before routing does until the route has matched.
 */
const routeOf = (event) => event.route ?? "";

/** "idempotency.first" → "first". */
const outcomeOf = (event) => event.type.slice("idempotency.".length);
