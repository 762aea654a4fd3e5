/**
 * What the client throws when it stops on its own account. Each error says how many attempts
 * were made and carries what the last one got: its `response` (body unread, yours to read or
 * cancel) or its `cause`. A response whose body the client cancelled to retry is never carried.
 * A server relaying the failure can answer `toProblem()` as it is: the message names neither
 * the URL nor anything sent. A logged error shows the origin, never the path or query: the
 * `response`, whose `url` has them, is not one of the properties a logger prints.
 */

import { brandErrorClass, InterlockError } from "@interlock/core";

/** The `code` of each error the client throws on its own account. */
export type ClientErrorCode = "timeout" | "retry_limit" | "circuit_open" | "retry_after_too_long";

/** Where the logical request stood when the client stopped. */
export interface ClientErrorDetails {
  /** The origin called (`https://api.example.com`): the breaker and budget key. Never the path or query. */
  origin: string;
  /** The request's method as fetch sends it (DELETE, GET, HEAD, OPTIONS, POST and PUT upper-cased). */
  method: string;
  /** Attempts that reached the network (0 when refused before the first one). */
  attempts: number;
  /** The request's `Idempotency-Key`, the client's or yours; undefined when it carried none. */
  idempotencyKey?: string | undefined;
  /** The response the call ended on, unread; never one whose body was cancelled for a retry. */
  response?: Response | undefined;
  /** The last attempt's error (a network error, an attempt timeout), when it got no response. */
  cause?: unknown;
}

/**
 * What every error of the client carries: the origin, the method, the attempts made and what
 * the last one got. A core `InterlockError`: stable `code`, `status`, `toProblem()`.
 */
export abstract class ClientError extends InterlockError {
  static {
    brandErrorClass(ClientError, "@interlock/client:ClientError");
  }
  abstract override readonly code: ClientErrorCode;
  /** The origin called (`https://api.example.com`), never the path or query. */
  readonly origin: string;
  /** The request's method as fetch sends it (DELETE, GET, HEAD, OPTIONS, POST and PUT upper-cased). */
  readonly method: string;
  /** Attempts that reached the network (0 when refused before the first one). */
  readonly attempts: number;
  /**
   * The request's `Idempotency-Key` (the one the client made, or yours), undefined when it
   * carried none. An attempt may have reached a handler that goes on to complete after the client
   * stopped (a payment slower than the deadline): a later call with this key gets the stored
   * response instead of running it again.
   */
  readonly idempotencyKey: string | undefined;
  /**
   * The response the call ended on, body unread: read or cancel it, or it keeps its connection.
   * Undefined when the last attempt got none, and when the error came after the client moved on
   * to a retry (the deadline passing, the circuit opening meanwhile): that response's body was
   * cancelled before the wait. Not enumerable: a logged error (`console.error`, `JSON.stringify`)
   * would print the response's `url`, path and query (an `access_token`) included.
   */
  declare readonly response: Response | undefined;

  constructor(message: string, details: ClientErrorDetails) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.origin = details.origin;
    this.method = details.method;
    this.attempts = details.attempts;
    this.idempotencyKey = details.idempotencyKey;
    Object.defineProperty(this, "response", { value: details.response, enumerable: false });
  }
}

/** An attempt took longer than `timeoutMs`, or the whole request longer than `deadlineMs`. */
export class TimeoutError extends ClientError {
  static {
    brandErrorClass(TimeoutError, "@interlock/client:TimeoutError");
  }
  /** The class name, the same in every copy of the package. */
  override readonly name = "TimeoutError";
  readonly code = "timeout";
  readonly status = 504;
  readonly title = "The upstream request timed out";
  /** "attempt": one attempt passed `timeoutMs`; "deadline": the request as a whole passed `deadlineMs`. */
  readonly scope: "attempt" | "deadline";
  /** The limit that passed: `timeoutMs` or `deadlineMs`, in milliseconds. */
  readonly timeoutMs: number;

  constructor(scope: "attempt" | "deadline", timeoutMs: number, details: ClientErrorDetails) {
    super(
      scope === "attempt"
        ? `attempt ${details.attempts} got no response within ${timeoutMs} ms`
        : `no response within the ${timeoutMs} ms deadline (${details.attempts} attempts)`,
      details,
    );
    this.scope = scope;
    this.timeoutMs = timeoutMs;
  }
}

/** Why the client stopped retrying an outcome it would otherwise retry. */
export type RetryLimitReason = "attempts" | "budget" | "deadline";

const LIMIT_WORDING: Record<RetryLimitReason, string> = {
  attempts: "no attempts left",
  budget: "the origin's retry budget is spent",
  deadline: "the next attempt could not start before the deadline",
};

/**
 * The last attempt failed in a way worth retrying, but a limit says stop: `maxAttempts`
 * reached, the origin's retry budget empty, or the wait would pass the deadline.
 */
export class RetryLimitError extends ClientError {
  static {
    brandErrorClass(RetryLimitError, "@interlock/client:RetryLimitError");
  }
  /** The class name, the same in every copy of the package. */
  override readonly name = "RetryLimitError";
  readonly code = "retry_limit";
  readonly status = 502;
  readonly title = "The upstream request kept failing";
  /** Which limit stopped the retries. */
  readonly reason: RetryLimitReason;

  constructor(reason: RetryLimitReason, details: ClientErrorDetails) {
    super(`gave up after ${details.attempts} attempts (${LIMIT_WORDING[reason]}): ${lastOutcome(details)}`, details);
    this.reason = reason;
  }
}

/** The origin's circuit is open: no network call was made for this attempt. */
export class CircuitOpenError extends ClientError {
  static {
    brandErrorClass(CircuitOpenError, "@interlock/client:CircuitOpenError");
  }
  /** The class name, the same in every copy of the package. */
  override readonly name = "CircuitOpenError";
  readonly code = "circuit_open";
  readonly status = 503;
  readonly title = "The upstream is failing and calls to it are suspended";
  /** Milliseconds until the circuit lets a probe through. */
  readonly retryAfterMs: number;

  constructor(retryAfterMs: number, details: ClientErrorDetails) {
    super(`the circuit for this origin is open; a probe is allowed in ${retryAfterMs} ms`, details);
    this.retryAfterMs = retryAfterMs;
  }
}

/** The server's `Retry-After` asks for a longer wait than `maxRetryAfterMs`: the client does not sleep that long. */
export class RetryAfterTooLongError extends ClientError {
  static {
    brandErrorClass(RetryAfterTooLongError, "@interlock/client:RetryAfterTooLongError");
  }
  /** The class name, the same in every copy of the package. */
  override readonly name = "RetryAfterTooLongError";
  readonly code = "retry_after_too_long";
  readonly status = 503;
  readonly title = "The upstream asked for a longer wait than allowed";
  /** The wait the server asked for, in milliseconds. */
  readonly retryAfterMs: number;
  /** The longest wait the client honours (`maxRetryAfterMs`). */
  readonly maxRetryAfterMs: number;

  constructor(retryAfterMs: number, maxRetryAfterMs: number, details: ClientErrorDetails) {
    super(`the server asked to retry in ${retryAfterMs} ms, more than the ${maxRetryAfterMs} ms allowed`, details);
    this.retryAfterMs = retryAfterMs;
    this.maxRetryAfterMs = maxRetryAfterMs;
  }
}

function lastOutcome({ response, cause }: ClientErrorDetails): string {
  if (response !== undefined) return `the last answer was ${response.status}`;
  return `the last attempt failed (${describeError(cause)})`;
}

/**
 * A short, secret-free name for a failed attempt: the system error code where the platform
 * gives one (`ECONNRESET`, `UND_ERR_SOCKET`), else the error's name. Never its message, which
 * some runtimes fill with the URL.
 */
export function describeError(error: unknown): string {
  const coded = codedFailure(error);
  if (coded !== undefined) return coded.code;
  return error instanceof Error ? error.name : typeof error;
}

/** A failure that carries the platform's code, and whatever else it tells (undici's `socket`). */
export interface CodedFailure {
  code: string;
  socket?: { bytesRead?: unknown };
}

/**
 * What carries the platform's code of a failed attempt: the error itself (Bun's, Node's system
 * errors), else its cause (Node's fetch rejects with a `TypeError` whose cause is undici's).
 */
export function codedFailure(error: unknown): CodedFailure | undefined {
  if (hasCode(error)) return error;
  const cause = (error as { cause?: unknown } | null | undefined)?.cause;
  return hasCode(cause) ? cause : undefined;
}

const hasCode = (value: unknown): value is CodedFailure =>
  typeof (value as { code?: unknown } | null | undefined)?.code === "string";
