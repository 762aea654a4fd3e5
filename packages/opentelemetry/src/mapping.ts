/**
 * The table: each core event type, and the instruments and spans it feeds. One row per event
 * type, checked exhaustive by the compiler, so a new event (the outbound client's attempts,
 * backoff and breaker state) is added here by name, next to its siblings.
 */

import type { IdempotencyEventBase, InterlockEvent } from "@interlock/core";
import type { Attributes } from "@opentelemetry/api";
import {
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_IDEMPOTENCY_FAIL_OPEN,
  ATTR_IDEMPOTENCY_KEY,
  ATTR_IDEMPOTENCY_OUTCOME,
  ATTR_IDEMPOTENCY_REASON,
  ATTR_IDEMPOTENCY_WAITED,
  ATTR_STORE_OPERATION,
  ATTR_WEBHOOK_ID,
  ATTR_WEBHOOK_ID_COVERED,
  ATTR_WEBHOOK_OUTCOME,
  ATTR_WEBHOOK_RECORDED,
  ATTR_WEBHOOK_RELEASED,
  ATTR_WEBHOOK_SCHEME,
} from "./attributes.js";
import {
  METRIC_IDEMPOTENCY_HANDLER_DURATION,
  METRIC_IDEMPOTENCY_OUTCOMES,
  METRIC_WEBHOOK_DELIVERIES,
  METRIC_WEBHOOK_HANDLER_DURATION,
  METRIC_WEBHOOK_VERIFICATION_DURATION,
  METRIC_WEBHOOK_VERIFICATIONS,
} from "./instruments.js";
import type { EventRecorder } from "./recorder.js";

/** Span: a delivery's verification, verified or rejected. */
export const SPAN_WEBHOOK_VERIFY = "interlock.webhook.verify";
/** Span: a verified delivery's claim in the store (first, duplicate, in flight, or store down). */
export const SPAN_WEBHOOK_CLAIM = "interlock.webhook.claim";
/** Span: a webhook handler's run, processed or failed. */
export const SPAN_WEBHOOK_HANDLE = "interlock.webhook.handle";
/** Span: a request refused before any key was claimed. */
export const SPAN_IDEMPOTENCY_REJECT = "interlock.idempotency.reject";
/** Span: a key's claim in the store (first, replayed, in flight, mismatch, or store down). */
export const SPAN_IDEMPOTENCY_CLAIM = "interlock.idempotency.claim";
/** Span: an idempotent request's handler run, until its response was stored or released. */
export const SPAN_IDEMPOTENCY_EXECUTE = "interlock.idempotency.execute";

/** The `error.type` of a failure Interlock reports by outcome rather than by code. */
const STORE_UNAVAILABLE = "store_unavailable";
const HANDLER_FAILED = "handler_failed";

export type EventType = InterlockEvent["type"];
export type EventOf<T extends EventType> = Extract<InterlockEvent, { type: T }>;
/** What one event type feeds. */
export type EventRow<E> = (event: E, record: EventRecorder) => void;

/** A verified delivery's id, for its spans: a rejected one's claimed id is the sender's word. */
const webhookId = (id: string | undefined): Attributes => (id === undefined ? {} : { [ATTR_WEBHOOK_ID]: id });

const idempotency = (event: Omit<IdempotencyEventBase, "key">, outcome: string): Attributes => ({
  [ATTR_HTTP_REQUEST_METHOD]: event.method,
  [ATTR_HTTP_ROUTE]: event.route,
  [ATTR_IDEMPOTENCY_OUTCOME]: outcome,
});

const status = (code: number | undefined): Attributes =>
  code === undefined ? {} : { [ATTR_HTTP_RESPONSE_STATUS_CODE]: code };

/** The handler's own time: the outcome's duration less the store write that ends it. */
const handlerMs = (event: { durationMs: number; storeMs: number }) => event.durationMs - event.storeMs;

export const EVENT_TELEMETRY: { readonly [T in EventType]: EventRow<EventOf<T>> } = {
  "webhook.verified"(event, record) {
    const attributes = { [ATTR_WEBHOOK_SCHEME]: event.scheme, [ATTR_WEBHOOK_OUTCOME]: "verified" };
    record.count(METRIC_WEBHOOK_VERIFICATIONS, attributes);
    record.time(METRIC_WEBHOOK_VERIFICATION_DURATION, event.durationMs, attributes);
    record.span(SPAN_WEBHOOK_VERIFY, event, {
      ...attributes,
      ...webhookId(event.id),
      [ATTR_WEBHOOK_ID_COVERED]: event.idCovered,
    });
  },
  "webhook.rejected"(event, record) {
    const attributes = {
      [ATTR_WEBHOOK_SCHEME]: event.scheme,
      [ATTR_WEBHOOK_OUTCOME]: "rejected",
      [ATTR_ERROR_TYPE]: event.code,
    };
    record.count(METRIC_WEBHOOK_VERIFICATIONS, attributes);
    record.count(METRIC_WEBHOOK_DELIVERIES, attributes);
    record.time(METRIC_WEBHOOK_VERIFICATION_DURATION, event.durationMs, attributes);
    record.span(SPAN_WEBHOOK_VERIFY, event, attributes, event.code);
  },
  "webhook.duplicate"(event, record) {
    const outcome = event.state === "completed" ? "duplicate" : "in_flight";
    const attributes = { [ATTR_WEBHOOK_SCHEME]: event.scheme, [ATTR_WEBHOOK_OUTCOME]: outcome };
    record.count(METRIC_WEBHOOK_DELIVERIES, attributes);
    record.store("webhook", "claim", event.storeMs);
    record.span(SPAN_WEBHOOK_CLAIM, { durationMs: event.storeMs }, { ...attributes, ...webhookId(event.id) });
  },
  "webhook.store_down"(event, record) {
    const attributes = { [ATTR_WEBHOOK_SCHEME]: event.scheme, [ATTR_WEBHOOK_OUTCOME]: STORE_UNAVAILABLE };
    record.count(METRIC_WEBHOOK_DELIVERIES, { ...attributes, [ATTR_ERROR_TYPE]: STORE_UNAVAILABLE });
    record.store("webhook", event.operation, event.storeMs, STORE_UNAVAILABLE);
    record.span(
      SPAN_WEBHOOK_CLAIM,
      { durationMs: event.storeMs },
      { ...attributes, ...webhookId(event.id) },
      STORE_UNAVAILABLE,
    );
  },
  "webhook.processed"(event, record) {
    const attributes = { [ATTR_WEBHOOK_SCHEME]: event.scheme, [ATTR_WEBHOOK_OUTCOME]: "processed" };
    record.count(METRIC_WEBHOOK_DELIVERIES, { ...attributes, [ATTR_WEBHOOK_RECORDED]: event.recorded });
    record.time(METRIC_WEBHOOK_HANDLER_DURATION, handlerMs(event), attributes);
    record.store("webhook", "claim", event.claimMs);
    record.store("webhook", "complete", event.storeMs);
    const id = webhookId(event.id);
    record.span(
      SPAN_WEBHOOK_CLAIM,
      { durationMs: event.claimMs, endedMsAgo: event.durationMs },
      { [ATTR_WEBHOOK_SCHEME]: event.scheme, [ATTR_WEBHOOK_OUTCOME]: "claimed", ...id },
    );
    record.span(SPAN_WEBHOOK_HANDLE, event, { ...attributes, ...id, [ATTR_WEBHOOK_RECORDED]: event.recorded });
  },
  "webhook.handler_failed"(event, record) {
    const attributes = { [ATTR_WEBHOOK_SCHEME]: event.scheme, [ATTR_WEBHOOK_OUTCOME]: HANDLER_FAILED };
    record.count(METRIC_WEBHOOK_DELIVERIES, {
      ...attributes,
      [ATTR_WEBHOOK_RELEASED]: event.released,
      [ATTR_ERROR_TYPE]: HANDLER_FAILED,
    });
    record.time(METRIC_WEBHOOK_HANDLER_DURATION, handlerMs(event), attributes);
    record.store("webhook", "claim", event.claimMs);
    record.store("webhook", "release", event.storeMs);
    const id = webhookId(event.id);
    record.span(
      SPAN_WEBHOOK_CLAIM,
      { durationMs: event.claimMs, endedMsAgo: event.durationMs },
      { [ATTR_WEBHOOK_SCHEME]: event.scheme, [ATTR_WEBHOOK_OUTCOME]: "claimed", ...id },
    );
    record.span(
      SPAN_WEBHOOK_HANDLE,
      event,
      { ...attributes, ...id, [ATTR_WEBHOOK_RELEASED]: event.released },
      HANDLER_FAILED,
    );
  },

  "idempotency.rejected"(event, record) {
    const attributes = { ...idempotency(event, "rejected"), [ATTR_ERROR_TYPE]: event.code };
    record.count(METRIC_IDEMPOTENCY_OUTCOMES, attributes);
    record.span(SPAN_IDEMPOTENCY_REJECT, { durationMs: 0 }, attributes, event.code);
  },
  "idempotency.first"(event, record) {
    const attributes = idempotency(event, "first");
    record.count(METRIC_IDEMPOTENCY_OUTCOMES, attributes);
    record.store("idempotency", "claim", event.storeMs);
    record.span(
      SPAN_IDEMPOTENCY_CLAIM,
      { durationMs: event.storeMs },
      { ...attributes, [ATTR_IDEMPOTENCY_KEY]: event.key },
    );
  },
  "idempotency.replayed"(event, record) {
    const attributes = { ...idempotency(event, "replayed"), ...status(event.status) };
    record.count(METRIC_IDEMPOTENCY_OUTCOMES, attributes);
    record.store("idempotency", "claim", event.storeMs);
    record.span(
      SPAN_IDEMPOTENCY_CLAIM,
      { durationMs: event.storeMs },
      { ...attributes, [ATTR_IDEMPOTENCY_KEY]: event.key },
    );
  },
  "idempotency.in_flight"(event, record) {
    const attributes = { ...idempotency(event, "in_flight"), [ATTR_IDEMPOTENCY_WAITED]: event.waited };
    record.count(METRIC_IDEMPOTENCY_OUTCOMES, attributes);
    record.store("idempotency", "claim", event.storeMs);
    record.span(
      SPAN_IDEMPOTENCY_CLAIM,
      { durationMs: event.storeMs },
      { ...attributes, [ATTR_IDEMPOTENCY_KEY]: event.key },
    );
  },
  "idempotency.mismatch"(event, record) {
    const attributes = idempotency(event, "mismatch");
    record.count(METRIC_IDEMPOTENCY_OUTCOMES, attributes);
    record.store("idempotency", "claim", event.storeMs);
    record.span(
      SPAN_IDEMPOTENCY_CLAIM,
      { durationMs: event.storeMs },
      { ...attributes, [ATTR_IDEMPOTENCY_KEY]: event.key },
    );
  },
  "idempotency.completed"(event, record) {
    const attributes = { ...idempotency(event, "completed"), ...status(event.status) };
    record.count(METRIC_IDEMPOTENCY_OUTCOMES, attributes);
    record.time(METRIC_IDEMPOTENCY_HANDLER_DURATION, handlerMs(event), attributes);
    record.store("idempotency", "complete", event.storeMs);
    record.span(SPAN_IDEMPOTENCY_EXECUTE, event, { ...attributes, [ATTR_IDEMPOTENCY_KEY]: event.key });
  },
  "idempotency.released"(event, record) {
    const attributes = {
      ...idempotency(event, "released"),
      [ATTR_IDEMPOTENCY_REASON]: event.reason,
      ...status(event.status),
    };
    record.count(METRIC_IDEMPOTENCY_OUTCOMES, attributes);
    record.time(METRIC_IDEMPOTENCY_HANDLER_DURATION, handlerMs(event), attributes);
    record.store("idempotency", "release", event.storeMs);
    const failed = event.reason === "error" ? HANDLER_FAILED : undefined;
    record.span(SPAN_IDEMPOTENCY_EXECUTE, event, { ...attributes, [ATTR_IDEMPOTENCY_KEY]: event.key }, failed);
  },
  "idempotency.not_recorded"(event, record) {
    const attributes = { ...idempotency(event, "not_recorded"), [ATTR_ERROR_TYPE]: event.reason };
    record.count(METRIC_IDEMPOTENCY_OUTCOMES, attributes);
    record.time(METRIC_IDEMPOTENCY_HANDLER_DURATION, handlerMs(event), attributes);
    record.store(
      "idempotency",
      "complete",
      event.storeMs,
      event.reason === "store_error" ? STORE_UNAVAILABLE : undefined,
    );
    record.span(SPAN_IDEMPOTENCY_EXECUTE, event, { ...attributes, [ATTR_IDEMPOTENCY_KEY]: event.key }, event.reason);
  },
  "idempotency.store_down"(event, record) {
    const attributes = {
      ...idempotency(event, "store_down"),
      [ATTR_STORE_OPERATION]: event.operation,
      [ATTR_IDEMPOTENCY_FAIL_OPEN]: event.failOpen,
      [ATTR_ERROR_TYPE]: STORE_UNAVAILABLE,
    };
    record.count(METRIC_IDEMPOTENCY_OUTCOMES, attributes);
    // A failed complete or release is timed by the not_recorded or released event before it.
    if (event.operation !== "claim") return;
    record.store("idempotency", "claim", event.storeMs, STORE_UNAVAILABLE);
    record.span(
      SPAN_IDEMPOTENCY_CLAIM,
      { durationMs: event.storeMs },
      { ...attributes, [ATTR_IDEMPOTENCY_KEY]: event.key },
      STORE_UNAVAILABLE,
    );
  },
};
