/**
 * Every decision core makes is an event. Users hook them for logs, metrics and traces;
 * events never carry a secret, a full signature or a body.
 */

import type { BodyErrorCode, WebhookErrorCode } from "./errors.js";

/**
 * What every event may carry about the request it reports: its correlation id, the trace-id of
 * a valid W3C `traceparent` header or else a valid `x-request-id` (1 to 200 visible ASCII
 * characters). Absent when the request sent neither, or when the event is not about a request.
 */
export interface CorrelatedEvent {
  /** The request's correlation id, when it sent one. */
  correlationId?: string;
}

/** A delivery whose signature matched. */
export interface WebhookVerifiedEvent extends CorrelatedEvent {
  /** What happened. */
  type: "webhook.verified";
  /** The scheme's name (`stripe`, `github`, …). */
  scheme: string;
  /**
   * The delivery's id, when the scheme carries one: as it is when the signature covers it. One
   * it does not cover (`idCovered: false`) is the sender's text, under which anyone holding one
   * signed body can send it again, so it is carried as a refused delivery's is: only when it is
   * 1 to 200 visible ASCII characters. Every event about the delivery carries this same id; the
   * handler's `VerifiedWebhook.id` is the id as sent.
   */
  id: string | undefined;
  /** Whether `id` is covered by the signature (false for GitHub, Shopify and Linear ids). */
  idCovered: boolean;
  /** Time spent verifying, in milliseconds. */
  durationMs: number;
}

/** A delivery refused: a bad signature, a stale timestamp, a malformed header, … */
export interface WebhookRejectedEvent extends CorrelatedEvent {
  /** What happened. */
  type: "webhook.rejected";
  /** The scheme's name. */
  scheme: string;
  /**
   * The id the delivery claimed (unverified), when it sent one in a header of 1 to 200 visible
   * ASCII characters: anything else is the sender's text, not an id, and is left out. Read from
   * the scheme's `idHeaders` when the refusal came before the rest of its headers were parsed
   * (a signature header missing, a body over the limit).
   */
  id: string | undefined;
  /** Why it was refused: the error's `code`. */
  code: WebhookErrorCode;
  /** Time spent before refusing, in milliseconds. */
  durationMs: number;
}

/** A verified delivery the store says was already processed, or is being processed now. */
export interface WebhookDuplicateEvent extends CorrelatedEvent {
  /** What happened. */
  type: "webhook.duplicate";
  /** The scheme's name. */
  scheme: string;
  /** The delivery's id, when it has one, as `webhook.verified` carries it (an unsigned one bounded). */
  id: string | undefined;
  /** "completed": processed before, the handler is not run; "in_flight": another worker has it. */
  state: "completed" | "in_flight";
  /** Time the store's `claim` took, in milliseconds. */
  storeMs: number;
}

/** The handler ran to completion for a delivery. */
export interface WebhookProcessedEvent extends CorrelatedEvent {
  /** What happened. */
  type: "webhook.processed";
  /** The scheme's name. */
  scheme: string;
  /** The delivery's id, when it has one, as `webhook.verified` carries it (an unsigned one bounded). */
  id: string | undefined;
  /** From the won claim to the recorded outcome, in milliseconds: the handler, then `storeMs`. */
  durationMs: number;
  /** False when the outcome could not be recorded (store down, lease lost): a redelivery may run again. */
  recorded: boolean;
  /** Time the store's `claim` of this delivery took, in milliseconds (before `durationMs`). */
  claimMs: number;
  /** Time the store's `complete` took, in milliseconds (the end of `durationMs`). */
  storeMs: number;
}

/**
 * The handler threw, or answered with a status outside 2xx: the claim is released so the
 * provider's redelivery is processed.
 */
export interface WebhookHandlerFailedEvent extends CorrelatedEvent {
  /** What happened. */
  type: "webhook.handler_failed";
  /** The scheme's name. */
  scheme: string;
  /** The delivery's id, when it has one, as `webhook.verified` carries it (an unsigned one bounded). */
  id: string | undefined;
  /** The status the handler answered, outside 2xx; absent when the handler threw. */
  status?: number;
  /** From the won claim to the release, in milliseconds: the handler, then `storeMs`. */
  durationMs: number;
  /** False when the release itself failed; the lease then expires on its own. */
  released: boolean;
  /** Time the store's `claim` of this delivery took, in milliseconds (before `durationMs`). */
  claimMs: number;
  /** Time the store's `release` took, in milliseconds (the end of `durationMs`). */
  storeMs: number;
}

/** A verified delivery could not be claimed: the store failed, so it is answered 503 and the provider retries. */
export interface WebhookStoreUnavailableEvent extends CorrelatedEvent {
  /** What happened. */
  type: "webhook.store_unavailable";
  /** The scheme's name. */
  scheme: string;
  /** The delivery's id, when it has one, as `webhook.verified` carries it (an unsigned one bounded). */
  id: string | undefined;
  /** The operation that failed. */
  operation: "claim";
  /** Time until the store failed, in milliseconds. */
  storeMs: number;
  /**
   * Why it failed: the `StoreUnavailableError`'s message, the driver's own included (it may name
   * hosts, ports or database users: for your logs; the 503 sent to the provider says none of it).
   */
  error: string;
}

/** Every event a webhook receiver (or verifier) emits. */
export type WebhookEvent =
  | WebhookVerifiedEvent
  | WebhookRejectedEvent
  | WebhookDuplicateEvent
  | WebhookProcessedEvent
  | WebhookHandlerFailedEvent
  | WebhookStoreUnavailableEvent;

/**
 * Where an idempotent request stands; `key` is the client's key, never the principal.
 * `storeMs` is the time the store operation behind the event took, in milliseconds: the
 * `claim` (including any wait for an in-flight holder) for first, replayed, in_flight and
 * mismatch; the `complete` for completed and not_recorded; the `release` for released; the
 * failed operation for store_unavailable. `durationMs` runs from the won claim to the outcome, so
 * it ends with `storeMs`: the handler took `durationMs - storeMs`.
 */
export interface IdempotencyEventBase extends CorrelatedEvent {
  /** The request's method, upper case. */
  method: string;
  /**
   * The route pattern that matched (`/payments/:id`). Absent while it is not known: the
   * middleware runs before routing (Express `app.use`, Koa before its router) and no route has
   * matched yet, as for the events before the handler runs. Never the request's path.
   */
  route?: string;
  /** The client's `Idempotency-Key`. */
  key: string;
}

/** Every decision the idempotency engine makes about a request with a key. */
export type IdempotencyEvent = IdempotencyEventBase &
  (
    | {
        /** The first request with this key: the handler runs. */
        type: "idempotency.first";
        /** Time the `claim` took, in milliseconds. */
        storeMs: number;
      }
    | {
        /** A completed key: the stored response was replayed. */
        type: "idempotency.replayed";
        /** The replayed status. */
        status: number;
        /** Time the `claim` took, in milliseconds. */
        storeMs: number;
      }
    | {
        /** The key is held by a request still running: 409, or a wait that timed out. */
        type: "idempotency.in_flight";
        /** Whether the engine waited (`waitForInFlight`) before answering 409. */
        waited: boolean;
        /** Time the `claim` took, waiting included, in milliseconds. */
        storeMs: number;
      }
    | {
        /** The key was used for another request (another fingerprint): 422. */
        type: "idempotency.mismatch";
        /** Time the `claim` took, in milliseconds. */
        storeMs: number;
      }
    | {
        /** The handler's response was stored. */
        type: "idempotency.completed";
        /** The stored status. */
        status: number;
        /**
         * Present when the response was written inside the caller's transaction (`finish` with a
         * `transaction`): it is stored once the caller commits. If the caller rolls back and calls
         * `abort`, an `idempotency.released` with reason `rolled_back` follows, which corrects this
         * outcome (the request's one outcome is then that nothing was stored).
         */
        inTransaction?: true;
        /** From the won claim to the stored response, in milliseconds. */
        durationMs: number;
        /** Time the `complete` took, in milliseconds. */
        storeMs: number;
      }
    | {
        /** Nothing was stored and the key was released: a retry runs again. */
        type: "idempotency.released";
        /**
         * Why nothing was stored: the handler threw, its status is not cached, or the body could
         * not be kept; `rolled_back`, the caller rolled back the transaction the response was
         * written in, and called `abort`: this follows that request's `completed` (with
         * `inTransaction`), and corrects it rather than adding a second outcome.
         */
        reason: "error" | "status" | "streamed" | "too_large" | "rolled_back";
        /** The handler's status (with `rolled_back`, the one written, then rolled back); undefined when it threw. */
        status: number | undefined;
        /**
         * False when the `release` itself failed: the key stays in flight until its lease ends
         * (an `idempotency.store_unavailable` of the release follows).
         */
        released: boolean;
        /** From the won claim to the release, in milliseconds. */
        durationMs: number;
        /** Time the `release` took, in milliseconds. */
        storeMs: number;
      }
    | {
        /** `complete` found another owner (the lease ran out) or the store failed: a retry may run again. */
        type: "idempotency.not_recorded";
        /** `lease_lost`: another request holds the key now; `store_error`: the store failed. */
        reason: "lease_lost" | "store_error";
        /** From the won claim to the failed `complete`, in milliseconds. */
        durationMs: number;
        /** Time the `complete` took, in milliseconds. */
        storeMs: number;
      }
    | {
        /** The store could not be reached. */
        type: "idempotency.store_unavailable";
        /** The operation that failed. */
        operation: "claim" | "complete" | "release";
        /** Whether the request went on unprotected (`failOpen`) instead of 503. */
        failOpen: boolean;
        /** Time until the operation failed, in milliseconds. */
        storeMs: number;
        /**
         * Why it failed: the error's message, the driver's own included (it may name hosts, ports
         * or database users: for your logs; the 503 sent to the client says none of it).
         */
        error: string;
      }
  );

/** A request refused before any key was claimed (missing or malformed key, unusable body). */
export interface IdempotencyRejectedEvent extends CorrelatedEvent {
  /** What happened. */
  type: "idempotency.rejected";
  /** The request's method, upper case. */
  method: string;
  /** The route pattern that matched, when it is known (see `IdempotencyEventBase`). */
  route?: string;
  /** Why it was refused: the error's `code`. */
  code: "idempotency_key_missing" | "idempotency_key_invalid" | BodyErrorCode;
}

/** Every event Interlock emits; tell them apart by `type`. */
export type InterlockEvent = WebhookEvent | IdempotencyEvent | IdempotencyRejectedEvent;

/**
 * An `onEvent` option: called synchronously with each event. A hook that throws does not change
 * the outcome; its first failure is reported once as a process warning (see `emit`).
 */
export type EventHook<E extends InterlockEvent = InterlockEvent> = (event: E) => void;

/**
 * Calls the user's hook. A hook that throws must not change the outcome it is told about
 * (a verified delivery refused because a logger failed), so its error goes no further. Neither
 * does the rejection of an async hook's promise: left unhandled, it would end a Node process.
 * A failing hook is not silent though: a logger that fails on every event would leave no trace
 * at all, so each hook's first failure is reported (`reportHookFailure`). Any package's event
 * union can go through it (`@interlock/client` has its own).
 */
export function emit<
  E extends {
    /** The event's name, such as `webhook.verified`. */
    type: string;
  },
>(hook: ((event: E) => void) | undefined, event: E): void {
  if (hook === undefined) return;
  try {
    const result = hook(event) as PromiseLike<unknown> | null | undefined;
    if (typeof result?.then === "function") result.then(undefined, (error) => reportHookFailure(hook, event, error));
  } catch (error) {
    reportHookFailure(hook, event, error);
  }
}

/** The hooks whose failure was reported: once each, not once per event (a broken logger fails on all). */
const reportedHooks = new WeakSet<object>();

/** The warning's `code`, for `process.on("warning")` listeners and `--disable-warning`. */
export const HOOK_FAILED_WARNING = "INTERLOCK_HOOK_FAILED";
/** The `code` of the warning that two webhook receivers with different secrets share one store's de-duplication keys. */
export const SHARED_DELIVERY_KEYS_WARNING = "INTERLOCK_SHARED_DELIVERY_KEYS";
/** The `code` of the warning that a `principal` function put a request in the shared anonymous scope. */
export const ANONYMOUS_SCOPE_WARNING = "INTERLOCK_ANONYMOUS_SCOPE";
/** The code of the warning that an idempotency middleware was made without a `principal`: keys shared by every client. */
export const NO_PRINCIPAL_WARNING = "INTERLOCK_NO_PRINCIPAL";

/**
 * Reports a hook's first failure (`INTERLOCK_HOOK_FAILED`, with the error's stack). Never
 * throws: the outcome still goes on.
 */
function reportHookFailure(hook: object, event: { type: string }, error: unknown): void {
  if (reportedHooks.has(hook)) return;
  reportedHooks.add(hook);
  const message =
    `an onEvent hook failed (event ${event.type}): ${failureText(error)}. ` +
    "The outcome it was told of is unchanged; later failures of this hook are not reported.";
  processWarning(HOOK_FAILED_WARNING, message, error);
}

/**
 * Reports a misuse Interlock can only notice as it runs, once where the caller keeps track of
 * that: as a process warning where there is a process (Node, Bun, Deno print it on stderr;
 * `process.on("warning")` receives it as an `InterlockWarning` with `code`), else with
 * `console.warn` (Workers, browsers). `cause`, an error, adds its stack as the detail. Never
 * throws: whatever it is reported from goes on.
 */
export function processWarning(code: string, message: string, cause?: unknown): void {
  try {
    const warn = (globalThis as { process?: { emitWarning?: unknown } }).process?.emitWarning;
    if (typeof warn === "function") {
      const detail = cause instanceof Error && cause.stack ? cause.stack : undefined;
      warn.call(globalThis.process, message, { type: "InterlockWarning", code, detail });
    } else if (cause === undefined) console.warn(`InterlockWarning [${code}]: ${message}`);
    else console.warn(`InterlockWarning [${code}]: ${message}`, cause);
  } catch {
    // A process with warnings made to throw (--throw-deprecation does not; a patched one might).
  }
}

function failureText(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  try {
    return String(error);
  } catch {
    return typeof error;
  }
}

/** A monotonic clock in milliseconds, where the runtime has one. */
export const monotonicNow: () => number =
  typeof globalThis.performance?.now === "function" ? () => globalThis.performance.now() : () => Date.now();
