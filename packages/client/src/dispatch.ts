/**
 * How an attempt on Node is aborted without handing fetch a signal.
 *
 * Node's fetch is undici's, and an AbortSignal costs every request there: undici links the
 * request to it with a WeakRef, a FinalizationRegistry entry and a listener, about 7% of a
 * request to a local server even when nothing ever aborts. Most attempts can only be aborted by
 * the client's own timer (the caller gave no signal), so they need no signal at all: they go
 * through an `AttemptDispatcher`, a dispatcher of their own (undici's `dispatcher` option)
 * that hands the request to undici's global dispatcher and keeps the abort function undici
 * gives each request as it starts. The timer aborts through that function.
 *
 * The attempt ends at once on abort, as fetch does with a signal: a request that has not
 * started yet (queued, or waiting for its connection) is aborted the moment it starts, which is
 * also all undici's own signal handling can do.
 *
 * Used only on undici (its global dispatcher in place), for the platform's fetch, without a
 * dispatcher of the caller's; and no longer once a request shows the platform's fetch does not
 * call it.
 *
 * undici has two handler interfaces. Up to Node 24 (undici 7), fetch's handler is told of the
 * start by `onConnect(abort)`, and fetch reads the global dispatcher kept under
 * `undici.globalDispatcher.1`. From Node 26 (undici 8), it is told by
 * `onRequestStart(controller)`, whose `controller.abort(reason)` aborts, and fetch reads the one
 * under `undici.globalDispatcher.2`; the `.1` one is then a wrapper for older undici copies,
 * which would also turn HTTP/2 off. Each request goes where fetch itself would have sent it.
 */

/** Where undici up to 7 keeps the global dispatcher (`setGlobalDispatcher`): the one legacy handlers go to. */
const GLOBAL_DISPATCHER = Symbol.for("undici.globalDispatcher.1");
/** Where undici 8 and later keep it: the one controller handlers go to. */
const GLOBAL_DISPATCHER_2 = Symbol.for("undici.globalDispatcher.2");

type AbortRequest = (reason?: unknown) => void;

/** The part of undici's legacy request handler this module touches; every other call is passed on. */
interface UndiciHandler {
  onConnect(abort: AbortRequest, context?: unknown): unknown;
  onHeaders(status: unknown, headers: unknown, resume: unknown, statusText: unknown): unknown;
  onData(chunk: unknown): unknown;
  onComplete(trailers: unknown): unknown;
  onError(error: unknown): unknown;
  onUpgrade?(status: unknown, headers: unknown, socket: unknown): unknown;
  onResponseStarted?(): unknown;
  onBodySent?(chunk: unknown, sent?: unknown, total?: unknown): unknown;
  onRequestSent?(): unknown;
}

/** What undici 8 hands a controller handler: `abort(reason)` ends the request. */
interface RequestController {
  abort(reason?: unknown): void;
}

/** undici 8's request handler (the controller interface); every call is passed on. */
interface ControllerHandler {
  onRequestStart(controller: RequestController, context?: unknown): unknown;
  onRequestUpgrade?(controller: RequestController, status: unknown, headers: unknown, socket: unknown): unknown;
  onResponseStart?(controller: RequestController, status: unknown, headers: unknown, statusText: unknown): unknown;
  onResponseData?(controller: RequestController, chunk: unknown): unknown;
  onResponseEnd?(controller: RequestController, trailers: unknown): unknown;
  onResponseError?(controller: RequestController, error: unknown): unknown;
  onResponseStarted?(): unknown;
  onBodySent?(chunk: unknown, sent?: unknown, total?: unknown): unknown;
  onRequestSent?(): unknown;
}

interface UndiciDispatcher {
  dispatch(options: unknown, handler: unknown): boolean;
}

function dispatcherAt(key: symbol): UndiciDispatcher | undefined {
  const dispatcher = (globalThis as Record<symbol, unknown>)[key] as UndiciDispatcher | undefined;
  return typeof dispatcher?.dispatch === "function" ? dispatcher : undefined;
}

/** The global dispatcher the platform's fetch reads: `.2` from undici 8 (Node 26), `.1` before. */
const FETCH_READS =
  Number.parseInt(globalThis.process?.versions?.undici ?? "", 10) >= 8 ? GLOBAL_DISPATCHER_2 : GLOBAL_DISPATCHER;

/** The global dispatcher of the newest undici in place. */
function globalDispatcher(): UndiciDispatcher | undefined {
  return dispatcherAt(GLOBAL_DISPATCHER_2) ?? dispatcherAt(GLOBAL_DISPATCHER);
}

const isControllerHandler = (handler: unknown): handler is ControllerHandler =>
  typeof (handler as ControllerHandler | undefined)?.onRequestStart === "function";
const isLegacyHandler = (handler: unknown): handler is UndiciHandler =>
  typeof (handler as UndiciHandler | undefined)?.onConnect === "function";

/** False once the platform's fetch ignored an `AttemptDispatcher` (a runtime without undici's `dispatcher` option). */
let honoured = true;
/**
 * True once undici's global dispatcher has been seen: undici puts one in place as it loads and
 * only ever replaces it (`setGlobalDispatcher`), so it is not looked up again on every attempt
 * (a symbol-keyed read off the global object, which V8 keeps as a dictionary). `dispatch`
 * still reads the one in place for each request.
 */
let dispatcherSeen = false;

/** Whether an attempt can go through an `AttemptDispatcher` here. */
export function dispatcherUsable(): boolean {
  if (!dispatcherSeen) dispatcherSeen = globalDispatcher() !== undefined;
  return honoured && dispatcherSeen;
}

/** What an abort without a reason rejects with, as `AbortController.abort()` does. */
export function abortError(): DOMException {
  return new DOMException("This operation was aborted", "AbortError");
}

/** One attempt's dispatcher, and its abort handle. */
export class AttemptDispatcher {
  aborted = false;
  reason: unknown = undefined;
  /** The abort function of the request undici started last (a redirect starts another). */
  #abortRequest: AbortRequest | undefined;
  #rejectAttempt: ((reason: unknown) => void) | undefined;
  #dispatched = false;

  /**
   * undici's fetch asks its dispatcher this, and hands a `MockAgent` the request body as given
   * (what its body matchers compare): the answer is that of the dispatcher fetch would have used,
   * so a test that mocks the global dispatcher sees the client's requests as it sees fetch's.
   */
  get isMockActive(): boolean {
    return (dispatcherAt(FETCH_READS) as { isMockActive?: unknown } | undefined)?.isMockActive === true;
  }

  /** undici's dispatcher interface: the request goes to the global dispatcher fetch reads, its start seen here. */
  dispatch(options: unknown, handler: unknown): boolean {
    this.#dispatched = true;
    if (isControllerHandler(handler))
      return target(GLOBAL_DISPATCHER_2).dispatch(options, new ControllerWatcher(this, handler));
    if (isLegacyHandler(handler)) return target(GLOBAL_DISPATCHER).dispatch(options, new StartWatcher(this, handler));
    // A handler of another shape (a later undici): passed on untouched, and signals from now on.
    honoured = false;
    return target(GLOBAL_DISPATCHER_2).dispatch(options, handler);
  }

  /** Called by the request's handler when undici starts it, with the function that aborts it. */
  started(abort: AbortRequest): void {
    this.#abortRequest = abort;
    if (this.aborted) abort(this.reason);
  }

  /** The attempt's fetch, ended with the abort reason the moment `abort` is called. */
  settle(pending: Promise<Response>): Promise<Response> {
    return new Promise((resolve, reject) => {
      if (this.aborted) reject(this.reason);
      this.#rejectAttempt = reject;
      pending.then((response) => {
        if (!this.#dispatched) honoured = false; // the platform's fetch never called dispatch
        resolve(response);
      }, reject);
    });
  }

  abort(reason: unknown = abortError()): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.#abortRequest?.(reason);
    this.#rejectAttempt?.(reason);
  }
}

/** The global dispatcher under `key`, else the newest in place (undici's `.2` one wraps for `.1` handlers too). */
function target(key: symbol): UndiciDispatcher {
  const dispatcher = dispatcherAt(key) ?? globalDispatcher();
  if (dispatcher === undefined) throw new TypeError("undici's global dispatcher is gone");
  return dispatcher;
}

/** undici 8's handler for one request, with its start reported to the attempt; the rest passed on as is. */
class ControllerWatcher implements ControllerHandler {
  readonly #attempt: AttemptDispatcher;
  readonly #handler: ControllerHandler;

  constructor(attempt: AttemptDispatcher, handler: ControllerHandler) {
    this.#attempt = attempt;
    this.#handler = handler;
  }

  onRequestStart(controller: RequestController, context?: unknown): unknown {
    const result = this.#handler.onRequestStart(controller, context);
    this.#attempt.started((reason) => controller.abort(reason));
    return result;
  }
  onRequestUpgrade(controller: RequestController, status: unknown, headers: unknown, socket: unknown): unknown {
    return this.#handler.onRequestUpgrade?.(controller, status, headers, socket);
  }
  onResponseStart(controller: RequestController, status: unknown, headers: unknown, statusText: unknown): unknown {
    return this.#handler.onResponseStart?.(controller, status, headers, statusText);
  }
  onResponseData(controller: RequestController, chunk: unknown): unknown {
    return this.#handler.onResponseData?.(controller, chunk);
  }
  onResponseEnd(controller: RequestController, trailers: unknown): unknown {
    return this.#handler.onResponseEnd?.(controller, trailers);
  }
  onResponseError(controller: RequestController, error: unknown): unknown {
    // undici throws an error no handler takes, as it does for a legacy handler without onError.
    if (this.#handler.onResponseError === undefined) throw error;
    return this.#handler.onResponseError(controller, error);
  }
  onResponseStarted(): unknown {
    return this.#handler.onResponseStarted?.();
  }
  onBodySent(chunk: unknown, sent?: unknown, total?: unknown): unknown {
    return this.#handler.onBodySent?.(chunk, sent, total);
  }
  onRequestSent(): unknown {
    return this.#handler.onRequestSent?.();
  }
}

/** undici's legacy handler for one request, with its start reported to the attempt; the rest passed on as is. */
class StartWatcher implements UndiciHandler {
  readonly #attempt: AttemptDispatcher;
  readonly #handler: UndiciHandler;

  constructor(attempt: AttemptDispatcher, handler: UndiciHandler) {
    this.#attempt = attempt;
    this.#handler = handler;
  }

  onConnect(abort: AbortRequest, context?: unknown): unknown {
    const result = this.#handler.onConnect(abort, context);
    this.#attempt.started(abort);
    return result;
  }
  onHeaders(status: unknown, headers: unknown, resume: unknown, statusText: unknown): unknown {
    return this.#handler.onHeaders(status, headers, resume, statusText);
  }
  onData(chunk: unknown): unknown {
    return this.#handler.onData(chunk);
  }
  onComplete(trailers: unknown): unknown {
    return this.#handler.onComplete(trailers);
  }
  onError(error: unknown): unknown {
    return this.#handler.onError(error);
  }
  onUpgrade(status: unknown, headers: unknown, socket: unknown): unknown {
    return this.#handler.onUpgrade?.(status, headers, socket);
  }
  onResponseStarted(): unknown {
    return this.#handler.onResponseStarted?.();
  }
  onBodySent(chunk: unknown, sent?: unknown, total?: unknown): unknown {
    return this.#handler.onBodySent?.(chunk, sent, total);
  }
  onRequestSent(): unknown {
    return this.#handler.onRequestSent?.();
  }
}
