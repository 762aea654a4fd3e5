/**
 * Every error core throws on purpose is an `InterlockError`: a stable `code`, the HTTP
 * status a server should answer, and an RFC 9457 problem+json body that never contains a
 * secret or a full signature.
 */

/** RFC 9457 problem details, as Interlock answers them over HTTP. */
export interface ProblemDetails {
  /** A URI naming the problem: `urn:interlock:problem:<code>`. */
  type: string;
  /** A short summary of the problem type, the same for every occurrence. */
  title: string;
  /** The HTTP status answered. */
  status: number;
  /** What went wrong this time, in words (never a secret or a signature). */
  detail: string;
  /** The stable machine-readable reason, such as `no_matching_signature`. */
  code: string;
  /** Extensions: `scheme` for webhook refusals. */
  [extension: string]: unknown;
}

/**
 * Where each error class keeps its name for `instanceof` across copies: one key for every copy.
 * Core's alone: another package names its classes with `brandErrorClass`.
 */
const ERROR_CLASS: unique symbol = Symbol.for("@interlock/core.errorClass");

type Branded = { [ERROR_CLASS]?: unknown };

/**
 * Whether `value` is an error of class `target` (or of a subclass) made by another copy of the
 * package: a class on its prototype chain carries, as its own, the name `target` carries as its
 * own. A subclass without a name of its own (see `brandErrorClass`) matches only in its copy.
 */
function ofClassInAnotherCopy(target: object, value: unknown): boolean {
  // Every copy's errors are this realm's Errors. Anything else is answered at once: the adapters
  // ask `body instanceof BodyError` of every request's body, and a Buffer's four prototypes were
  // walked each time (two `hasOwn` and a runtime call for each).
  if (!(value instanceof Error) || !Object.hasOwn(target, ERROR_CLASS)) return false;
  const name = (target as Branded)[ERROR_CLASS];
  for (let proto = Object.getPrototypeOf(value); proto !== null; proto = Object.getPrototypeOf(proto)) {
    const made = Object.hasOwn(proto, "constructor") ? (proto.constructor as Branded) : undefined;
    if (typeof made === "function" && Object.hasOwn(made, ERROR_CLASS) && made[ERROR_CLASS] === name) return true;
  }
  return false;
}

/**
 * The names `brandErrorClass` takes: `<package>:<class>`, one colon. Core's own classes carry
 * their bare class name (`BodyError`), which no other package can take: a name of another
 * package always has its package's name before the colon, and package names are unique in the
 * registry, class names in their package. Two classes never share a name, so an error of one
 * is never taken, in another copy, for the other's.
 */
const PACKAGE_CLASS_NAME = /^[^\s:]+:[^\s:]+$/;

/**
 * Gives an error class of another package its name for `instanceof` across copies, as core's
 * own classes have theirs: an app that loads a package's ESM build and its CommonJS build has two
 * copies of each of its classes, and `err instanceof CircuitOpenError` is then true of an error
 * of either copy (and of a subclass's errors, when the subclass has a name of its own). Call it
 * in the class's static block, so the class never exists without it:
 *
 * ```ts
 * export class CircuitOpenError extends ClientError {
 *   static {
 *     brandErrorClass(CircuitOpenError, "@interlock/client:CircuitOpenError");
 *   }
 * }
 * ```
 *
 * Every exported error class needs its own call: a subclass without a name matches only its
 * parent's in another copy (and itself in its own copy). `name` is `<package>:<class>`, written
 * out rather than read from `errorClass.name`, which a minifier may change in one copy and not
 * the other. Throws a `TypeError` for a name without its package, for a class that is no
 * `InterlockError` or has a name already (each of core's classes has: it keeps it).
 */
export function brandErrorClass(errorClass: abstract new (...args: never) => InterlockError, name: string): void {
  if (typeof name !== "string" || !PACKAGE_CLASS_NAME.test(name)) {
    throw new TypeError(
      `brandErrorClass: the name must be "<package>:<class>", such as "@acme/payments:CardDeclinedError"`,
    );
  }
  if (typeof errorClass === "function" && Object.hasOwn(errorClass, ERROR_CLASS)) {
    throw new TypeError(`brandErrorClass: ${name}'s class has a name already`);
  }
  if (typeof errorClass !== "function" || !Object.prototype.isPrototypeOf.call(InterlockError, errorClass)) {
    throw new TypeError(`brandErrorClass: ${name} is not a subclass of InterlockError`);
  }
  // Not writable and not configurable: the name a copy's errors are known by does not change.
  Object.defineProperty(errorClass, ERROR_CLASS, { value: name });
}

/** The media type of RFC 9457 problem details: `application/problem+json`. */
export const PROBLEM_CONTENT_TYPE = "application/problem+json";

/**
 * The base of every error Interlock throws on purpose: a stable `code`, the HTTP `status` a
 * server should answer, and `toProblem()` for the response body.
 */
export abstract class InterlockError extends Error {
  /** The class's name for `instanceof` across copies of core (see `Symbol.hasInstance`). */
  static readonly [ERROR_CLASS]: string = "InterlockError";

  /**
   * `instanceof` that also knows this class's errors made by another copy of the package: an
   * app that loads core's ESM build and its CommonJS build (an ESM app with a CommonJS adapter,
   * or the reverse) has two copies of every class. Such an error is recognised by the class
   * name each class carries, the same in every copy.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    // biome-ignore lint/complexity/noThisInStatic: `this` is the class instanceof asks about, a subclass too.
    return Function.prototype[Symbol.hasInstance].call(this, value) || ofClassInAnotherCopy(this, value);
  }

  /** The stable, machine-readable reason, such as `no_matching_signature`; switch on it. */
  abstract readonly code: string;
  /** The HTTP status a server should answer with. */
  abstract readonly status: number;
  /** A short, human-readable summary of the problem type. */
  abstract readonly title: string;

  /** The problem+json body for this error. */
  toProblem(): ProblemDetails {
    return {
      type: `urn:interlock:problem:${this.code}`,
      title: this.title,
      status: this.status,
      detail: this.message,
      code: this.code,
    };
  }
}

/** Why a delivery was refused. */
export type WebhookErrorCode =
  | "missing_header"
  | "malformed_header"
  | "invalid_timestamp"
  | "timestamp_too_old"
  | "timestamp_in_future"
  | "no_matching_signature"
  | "body_too_large"
  | "body_incomplete"
  | "body_not_raw"
  | "unsupported_content_encoding"
  | "body_not_decodable"
  | "unsupported_version"
  | "invalid_secret";

const WEBHOOK_ERRORS: Record<WebhookErrorCode, { status: number; title: string }> = {
  missing_header: { status: 400, title: "A webhook signature header is missing" },
  malformed_header: { status: 400, title: "A webhook signature header is malformed" },
  invalid_timestamp: { status: 400, title: "The webhook timestamp is missing or not a number" },
  timestamp_too_old: { status: 401, title: "The webhook timestamp is too old" },
  timestamp_in_future: { status: 401, title: "The webhook timestamp is in the future" },
  no_matching_signature: { status: 401, title: "No webhook signature matched" },
  body_too_large: { status: 413, title: "The webhook body is too large" },
  // The sender went away mid-body: its mistake (or its network's), answered to nobody, never a 500 in the logs.
  body_incomplete: { status: 400, title: "The webhook body ended before it was complete" },
  // The app handed over a parsed body: the signed bytes are gone. A server bug, not the sender's.
  body_not_raw: { status: 500, title: "The webhook body is not the raw request bytes" },
  // Sent compressed: whether the signature covers the bytes before or after compressing is unknowable.
  unsupported_content_encoding: { status: 415, title: "The webhook body is content-encoded" },
  // A BodyError code, so every body refusal converts; never a delivery's (a compressed one is refused first).
  body_not_decodable: { status: 400, title: "The webhook body is not valid data of its content coding" },
  unsupported_version: { status: 400, title: "The webhook signature version is not supported" },
  // The configured secret cannot be used: the receiver's mistake, never the sender's.
  invalid_secret: { status: 500, title: "The webhook secret is invalid" },
};

/** Every reason a delivery can be refused, for exhaustive handling and tests. */
export const WEBHOOK_ERROR_CODES = Object.keys(WEBHOOK_ERRORS) as WebhookErrorCode[];

/** The HTTP status a server answers for a refusal code. */
export function webhookErrorStatus(code: WebhookErrorCode): number {
  return WEBHOOK_ERRORS[code].status;
}

type WithStackLimit = ErrorConstructor & { stackTraceLimit?: number };

/** Sets V8's `Error.stackTraceLimit` to 0 where it exists and is writable; returns the old value. */
function suspendStackTraces(): number | undefined {
  const limit = (Error as WithStackLimit).stackTraceLimit;
  if (typeof limit !== "number" || limit === 0) return undefined;
  try {
    (Error as WithStackLimit).stackTraceLimit = 0;
    return limit;
  } catch {
    return undefined; // frozen intrinsics
  }
}

function resumeStackTraces(limit: number | undefined): void {
  if (limit !== undefined) (Error as WithStackLimit).stackTraceLimit = limit;
}

/**
 * A webhook delivery refused: the one error `verify` ever rejects with, whatever the input.
 * `code` names the reason; `status` is 400, 401, 413, 415 or 500 (see `WEBHOOK_ERROR_CODES`).
 */
export class WebhookVerificationError extends InterlockError {
  /** The class name, the same in every copy of core: match on it (or `code`) across copies. */
  override readonly name = "WebhookVerificationError";
  static override readonly [ERROR_CLASS]: string = "WebhookVerificationError";
  /** Why the delivery was refused. */
  readonly code: WebhookErrorCode;
  /** 400 for a malformed delivery, 401 for a bad signature or time, 413 too large, 500 the receiver's setup. */
  readonly status: number;
  readonly title: string;
  /** The scheme that refused the delivery, when known. */
  readonly scheme: string | undefined;

  constructor(code: WebhookErrorCode, message: string, scheme?: string) {
    // A refusal is the sender's input, not a bug here: its stack says nothing, and capturing
    // one costs more than the HMAC it follows (forged deliveries arrive in bulk).
    const limit = suspendStackTraces();
    super(message);
    resumeStackTraces(limit);
    const { status, title } = WEBHOOK_ERRORS[code];
    this.code = code;
    this.status = status;
    this.title = title;
    this.scheme = scheme;
  }

  override toProblem(): ProblemDetails {
    const problem = super.toProblem();
    if (this.scheme !== undefined) problem.scheme = this.scheme;
    return problem;
  }
}

/**
 * A verified delivery whose body is not what its scheme decodes (JSON, by default), thrown by its
 * `payload` when read: the signature matched, the content is the sender's mistake. Every adapter
 * answers a route that lets it through 400 problem+json, the delivery released, never a 500 that
 * a provider retries as a failure of the server's.
 */
export class WebhookPayloadError extends InterlockError {
  /** The class name, the same in every copy of core: match on it (or `code`) across copies. */
  override readonly name = "WebhookPayloadError";
  static override readonly [ERROR_CLASS]: string = "WebhookPayloadError";
  /** Always `payload_not_decodable`. */
  readonly code = "payload_not_decodable";
  /** Always 400: the sender's content, not the server's doing. */
  readonly status = 400;
  readonly title = "The webhook payload cannot be decoded";
  /** The scheme whose decoding the body failed. */
  readonly scheme: string;

  /** `cause`: what the decoding threw (a `SyntaxError` for JSON), kept out of the problem's detail. */
  constructor(scheme: string, message: string, options?: ErrorOptions) {
    // The sender's input, as a refusal is: its stack says nothing of a bug here.
    const limit = suspendStackTraces();
    super(message, options);
    resumeStackTraces(limit);
    this.scheme = scheme;
  }

  override toProblem(): ProblemDetails {
    return { ...super.toProblem(), scheme: this.scheme };
  }
}

/** A programming or configuration mistake (a bad option), reported when it is made. */
export class InterlockConfigError extends InterlockError {
  /** The class name, the same in every copy of core: match on it (or `code`) across copies. */
  override readonly name = "InterlockConfigError";
  static override readonly [ERROR_CLASS]: string = "InterlockConfigError";
  /** Always `invalid_configuration`. */
  readonly code = "invalid_configuration";
  /** Always 500: the server's mistake, never the client's. */
  readonly status = 500;
  readonly title = "Interlock is misconfigured";
}

/**
 * What is kept of a database driver's error as a `cause`: its name, message, code, stack and,
 * likewise, its own cause. Not the rest: ioredis attaches the failed command with its
 * arguments (store keys, which can hold a session id, and stored bodies), pg a row's values in
 * `detail`; an app that logs the error (or a `cause` chain printed by `console.error`) would
 * write them out. Interlock's own errors are kept as they are.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function driverErrorSummary(error: unknown, depth = 0): unknown {
  if (error instanceof InterlockError || !(error instanceof Error)) return error;
  const { code, cause } = error as { code?: unknown; cause?: unknown };
  const summary = new Error(error.message);
  summary.name = error.name;
  if (error.stack !== undefined) summary.stack = error.stack;
  if (typeof code === "string" || typeof code === "number") Object.assign(summary, { code });
  if (cause !== undefined && depth < 4) summary.cause = driverErrorSummary(cause, depth + 1);
  return summary;
}

/** `Retry-After` of the 503 for a store that cannot be reached: see `StoreUnavailableError.retryAfterSeconds`. */
const STORE_DOWN_RETRY_AFTER_SECONDS = 2;

/**
 * The store could not be reached or did not answer in time. Never a false win: the caller
 * must treat the operation as not done (503, fail closed), and retrying later is safe. The
 * outcome on the server is unknown: a claim sent before a connection failed may still hold
 * a lock that nobody owns, until its lease ends.
 */
export class StoreUnavailableError extends InterlockError {
  /** The class name, the same in every copy of core: match on it (or `code`) across copies. */
  override readonly name = "StoreUnavailableError";
  static override readonly [ERROR_CLASS]: string = "StoreUnavailableError";
  /** Always `store_unavailable`. */
  readonly code = "store_unavailable";
  /** Always 503: the client or provider should retry later. */
  readonly status = 503;
  readonly title = "The store is unavailable";
  /** The store's `name` ("redis", "postgres", …). */
  readonly store: string;
  /**
   * Seconds to put in the 503's `Retry-After` (RFC 9110 §10.2.3, §15.6.4). For a store that
   * cannot be reached, 2: no key is held for the client, so not the lease: the outages a retry
   * outlives are a reconnect or a failover, seconds long. Two rather than one so that every
   * client of a busy API does not come back within the same second the store reconnects in;
   * short, so a blip costs a retry little. A store that knows when it can take a new key again
   * (the memory store, full) says that instead.
   */
  readonly retryAfterSeconds: number;

  /** The `cause` is kept as `driverErrorSummary` of it: see there. */
  constructor(store: string, message: string, options?: { cause?: unknown; retryAfterSeconds?: number }) {
    super(
      `${store} store: ${message}`,
      options && "cause" in options ? { cause: driverErrorSummary(options.cause) } : undefined,
    );
    this.store = store;
    this.retryAfterSeconds = options?.retryAfterSeconds ?? STORE_DOWN_RETRY_AFTER_SECONDS;
  }

  /**
   * The answer says to retry, and nothing of the failure: a driver's message can name hosts,
   * ports, database users and tables, and the answer goes to whoever sent the request. The
   * message stays on the error (and its event), for logs.
   */
  override toProblem(): ProblemDetails {
    return { ...super.toProblem(), detail: "the store Interlock keeps its records in did not answer: retry later" };
  }
}

/** A record larger than the store's `maxRecordBytes`: it is not stored. */
export class RecordTooLargeError extends InterlockError {
  /** The class name, the same in every copy of core: match on it (or `code`) across copies. */
  override readonly name = "RecordTooLargeError";
  static override readonly [ERROR_CLASS]: string = "RecordTooLargeError";
  /** Always `record_too_large`. */
  readonly code = "record_too_large";
  /** Always 500. */
  readonly status = 500;
  readonly title = "The record is too large to store";
}

/** Why the idempotency engine refused a request. */
export type IdempotencyErrorCode =
  | "idempotency_key_missing"
  | "idempotency_key_invalid"
  | "idempotency_key_mismatch"
  | "request_in_flight";

const IDEMPOTENCY_ERRORS: Record<IdempotencyErrorCode, { status: number; title: string }> = {
  idempotency_key_missing: { status: 400, title: "An Idempotency-Key header is required" },
  idempotency_key_invalid: { status: 400, title: "The Idempotency-Key header is malformed" },
  idempotency_key_mismatch: { status: 422, title: "The Idempotency-Key was used for a different request" },
  request_in_flight: { status: 409, title: "A request with this Idempotency-Key is still being processed" },
};

/** A request the idempotency engine refuses: the client's mistake or a retry that came too soon. */
export class IdempotencyError extends InterlockError {
  /** The class name, the same in every copy of core: match on it (or `code`) across copies. */
  override readonly name = "IdempotencyError";
  static override readonly [ERROR_CLASS]: string = "IdempotencyError";
  /** Why the request was refused. */
  readonly code: IdempotencyErrorCode;
  /** 400 (missing or malformed key), 409 (in flight) or 422 (`mismatchStatus`, for a reused key). */
  readonly status: number;
  readonly title: string;
  /** Seconds the client should wait before retrying, for `request_in_flight`. */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    code: IdempotencyErrorCode,
    message: string,
    options: { status?: number; retryAfterSeconds?: number; title?: string } = {},
  ) {
    super(message);
    this.code = code;
    this.status = options.status ?? IDEMPOTENCY_ERRORS[code].status;
    this.title = options.title ?? IDEMPOTENCY_ERRORS[code].title;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

/**
 * Why a request body cannot be used: too large to read, cut off mid-body, already consumed by a
 * parser, or (for idempotency, which decodes it) sent with a content coding not decoded, or with
 * data that is not what its coding says.
 */
export type BodyErrorCode =
  | "body_too_large"
  | "body_incomplete"
  | "body_not_raw"
  | "unsupported_content_encoding"
  | "body_not_decodable";

const BODY_ERRORS: Record<BodyErrorCode, { status: number; title: string }> = {
  body_too_large: { status: 413, title: "The request body is too large" },
  // The client went away (or its stream failed) before the body was whole: its doing, not the server's.
  body_incomplete: { status: 400, title: "The request body ended before it was complete" },
  // A body parser consumed the stream first: a server setup mistake, not the client's.
  body_not_raw: { status: 500, title: "The request body is not available as raw bytes" },
  unsupported_content_encoding: { status: 415, title: "The request body's content coding is not supported" },
  body_not_decodable: { status: 400, title: "The request body is not valid data of its content coding" },
};

/** A request body Interlock cannot use: too large to read, cut off mid-body, already consumed by a parser, or not decodable. */
export class BodyError extends InterlockError {
  /** The class name, the same in every copy of core: match on it (or `code`) across copies. */
  override readonly name = "BodyError";
  static override readonly [ERROR_CLASS]: string = "BodyError";
  /** Why the body cannot be used. */
  readonly code: BodyErrorCode;
  /**
   * 413 for `body_too_large`, 400 for `body_incomplete` and `body_not_decodable`, 415 for
   * `unsupported_content_encoding`, 500 for `body_not_raw` (a server setup mistake).
   */
  readonly status: number;
  readonly title: string;
  /** For `unsupported_content_encoding`: the codings that are decoded, answered as `Accept-Encoding`. */
  readonly acceptEncoding: string | undefined;

  constructor(code: BodyErrorCode, message: string, options?: ErrorOptions & { acceptEncoding?: string }) {
    super(message, options);
    this.code = code;
    this.status = BODY_ERRORS[code].status;
    this.title = BODY_ERRORS[code].title;
    this.acceptEncoding = options?.acceptEncoding;
  }

  /** `body_too_large` for a body past `limit` bytes, worded the same by every adapter. */
  static tooLarge(limit: number): BodyError {
    return new BodyError("body_too_large", `the request body exceeds ${limit} bytes`);
  }

  /**
   * `body_incomplete` for a body whose stream failed before its end (the client went away),
   * worded the same by every adapter; `cause` is the stream's error, when there was one.
   */
  static incomplete(cause?: unknown): BodyError {
    return new BodyError(
      "body_incomplete",
      "the request body ended before it was complete: the client went away while sending it",
      cause === undefined ? undefined : { cause },
    );
  }
}

/**
 * Node's TLS codes for a certificate the caller does not trust, or one issued to another host:
 * the caller's own settings decide these, so every attempt fails alike and no retry mends them.
 * An expired certificate is the server's incident (it is renewed there), so it is not here.
 */
const UNTRUSTED_CERTIFICATE = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "CERT_SIGNATURE_FAILURE",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/**
 * Whether `error`, or an error it wraps as its `cause` (fetch's "fetch failed", a driver's
 * wrapper), is a TLS certificate the caller does not trust or that names another host: a
 * mistake in the caller's TLS settings (the CA, the host name connected to), not an outage.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function untrustedCertificate(error: unknown): boolean {
  for (let e = error, depth = 0; e !== null && typeof e === "object" && depth < 4; depth++) {
    const { code } = e as { code?: unknown };
    if (typeof code === "string" && UNTRUSTED_CERTIFICATE.has(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}
