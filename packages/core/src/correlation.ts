/**
 * The correlation id events carry, so a log line or a metric exemplar can be joined to the
 * request's trace or its gateway's request id. Read from request headers and validated: a
 * header is the sender's input, and events must not carry whatever it puts there.
 */

import type { CorrelatedEvent } from "./events.js";
import { type HeaderReader, type HeadersInput, headerReader } from "./headers.js";

/**
 * W3C Trace Context `traceparent`, version 00: version, trace-id, parent-id, flags, in lower-case
 * hex. An all-zero trace-id or parent-id is invalid, and so is a repeated header.
 */
const TRACEPARENT = /^00-(?!0{32}-)([0-9a-f]{32})-(?!0{16}-)[0-9a-f]{16}-[0-9a-f]{2}$/;

/** An `x-request-id` is kept as it is when it is 1 to 200 visible ASCII characters. */
const REQUEST_ID = /^[\x21-\x7e]{1,200}$/;

/**
 * The request's correlation id: the trace-id of a valid `traceparent`, else a valid
 * `x-request-id`, else undefined.
 */
export function correlationIdOf(read: HeaderReader): string | undefined {
  const traceparent = read("traceparent");
  if (typeof traceparent === "string") {
    const traceId = TRACEPARENT.exec(traceparent)?.[1];
    if (traceId !== undefined) return traceId;
  }
  return loggable(read("x-request-id"));
}

/**
 * A header value events may carry as it is (an `x-request-id`, an unverified delivery id): 1 to
 * 200 visible ASCII characters, else undefined. A sender's header can hold kilobytes, tabs and
 * text made to look like a log line of its own.
 */
export function loggable(value: unknown): string | undefined {
  return typeof value === "string" && REQUEST_ID.test(value) ? value : undefined;
}

/**
 * The correlation id of a request whose headers an adapter may or may not have passed (its
 * own refusals, made before core sees the request): undefined without headers.
 */
export function correlationIdOfHeaders(headers: HeadersInput | undefined): string | undefined {
  return headers === undefined ? undefined : correlationIdOf(headerReader(headers));
}

/** `event` with its `correlationId` when there is one: an absent id leaves no key behind. */
export function correlated<E extends CorrelatedEvent>(event: E, correlationId: string | undefined): E {
  if (correlationId !== undefined) event.correlationId = correlationId;
  return event;
}
