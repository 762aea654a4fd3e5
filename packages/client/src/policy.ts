/**
 * What is worth retrying and what is safe to retry: two separate questions. `retryOn` answers
 * the first (is this outcome transient?) and can be replaced; the second (can the request be
 * sent again without doing the work twice?) is the method, the Idempotency-Key and the body,
 * and no predicate overrides it.
 */

import { codedFailure } from "./errors.js";

/** An attempt's result: a response, or the error fetch rejected with (a network error, an attempt timeout). */
export type AttemptResult =
  | {
      /** The attempt's response. */
      response: Response;
      /** No error: the attempt got a response. */
      error: undefined;
    }
  | {
      /** No response: the attempt failed. */
      response: undefined;
      /** What fetch rejected with, or the attempt's timeout. */
      error: unknown;
    };

/** What `retryOn` is asked about. */
export type RetryContext = AttemptResult & {
  /** 1 for the first attempt. */
  attempt: number;
  /** As fetch sends it: DELETE, GET, HEAD, OPTIONS, POST and PUT upper-cased, any other method as given. */
  method: string;
  /** The request's `Idempotency-Key`, when it has one. */
  idempotencyKey: string | undefined;
};

/**
 * Statuses that say "try again": 408 Request Timeout, 425 Too Early, 429 Too Many Requests,
 * 500, 502 Bad Gateway, 503 Service Unavailable, 504 Gateway Timeout.
 */
export const RETRYABLE_STATUSES: readonly number[] = Object.freeze([408, 425, 429, 500, 502, 503, 504]);
const RETRYABLE = new Set(RETRYABLE_STATUSES);

/** Methods HTTP defines as idempotent (RFC 9110 §9.2.2), retried without a key. */
export const IDEMPOTENT_METHODS: readonly string[] = Object.freeze(["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]);

/**
 * The default `retryOn`: a network error or attempt timeout, a status of `RETRYABLE_STATUSES`,
 * or a 409 on a request carrying an `Idempotency-Key`: the answer an idempotency server gives
 * while the first copy of the request is still running (Interlock's `request_in_flight`,
 * Stripe's concurrent-key 409), which a later retry turns into the stored response. Never a
 * response marked `Idempotent-Replayed: true` (Interlock, Stripe): the answer the server stored
 * for the key, which it would give the same key again.
 */
export function defaultRetryOn(context: RetryContext): boolean {
  const { response } = context;
  return response === undefined || retriesResponse(response, response.status, context.idempotencyKey !== undefined);
}

/**
 * `defaultRetryOn` for a response whose status the client has read already (each read of a
 * Response's getters is a WebIDL brand check on undici).
 */
export function retriesResponse(response: Response, status: number, keyed: boolean): boolean {
  const retryable = RETRYABLE.has(status) || (status === 409 && keyed);
  // Read only for a status that would be retried: a header look-up costs every response.
  return retryable && response.headers.get("idempotent-replayed") !== "true";
}

/** The default breaker failure: a network error, a timeout, or a 5xx. A 4xx (429 included) says the origin is up. */
export function defaultIsFailure(result: AttemptResult): boolean {
  return failsOrigin(result.response?.status);
}

/** `defaultIsFailure` by the status read already: undefined for an attempt without a response. */
export function failsOrigin(status: number | undefined): boolean {
  return status === undefined || status >= 500;
}

/**
 * Whether a `RequestInit.body` can be sent again: everything fetch re-serialises from the
 * same value (string, bytes, Blob, FormData, URLSearchParams) can; a stream, which the first
 * attempt consumes, cannot.
 */
export function isReplayableBody(body: unknown): boolean {
  if (body === null || typeof body !== "object") return true;
  if (typeof ReadableStream !== "undefined" && body instanceof ReadableStream) return false;
  // Node's fetch also takes async iterables (a Node Readable, a generator): one-shot too.
  return !(Symbol.asyncIterator in body);
}

/**
 * Whether a failed attempt looks like a kept-alive connection the server closed as the request
 * went out on it: the server's idle timeout or a restart closing idle connections, racing the
 * client's reuse of one. The request never reached a live server, so the failure says nothing
 * of the origin's health (Go's net/http resends such a request at once and reports nothing).
 *
 * What fetch gives for it: on Node (undici), "other side closed" (`UND_ERR_SOCKET`) on a
 * connection that had read bytes (earlier answers; the same on a fresh plain-HTTP connection
 * reads none, and is the server going away mid-request), or a reset; on Bun, which resends
 * safe methods itself, a reset (`ECONNRESET`). A reset does not tell a reused connection from
 * a new one, so the client takes one such failure per call for stale, no more.
 */
export function staleConnection(error: unknown): boolean {
  const failure = codedFailure(error);
  switch (failure?.code) {
    case "ECONNRESET":
    case "EPIPE":
      return true;
    case "UND_ERR_SOCKET": {
      const bytesRead = failure.socket?.bytesRead;
      return typeof bytesRead !== "number" || bytesRead > 0;
    }
    default:
      return false;
  }
}
