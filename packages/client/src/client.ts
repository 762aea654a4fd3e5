/**
 * `createClient(options)`: a fetch that times out, retries what is safe to retry, waits as the
 * server asks, spends a per-origin retry budget, and fails fast while an origin's circuit is open.
 */

import { emit, monotonicNow } from "@interlock/core";
import { backoffDelay } from "./backoff.js";
import type { OriginBreaker, Probe } from "./breaker.js";
import type { OriginBudget } from "./budget.js";
import { AttemptDispatcher } from "./dispatch.js";
import {
  CircuitOpenError,
  type ClientErrorDetails,
  describeError,
  RetryAfterTooLongError,
  RetryLimitError,
  type RetryLimitReason,
  TimeoutError,
} from "./errors.js";
import type { AttemptOutcome, ClientEventBase, GiveUpReason } from "./events.js";
import { type ClientOptions, resolveOptions, type Settings } from "./options.js";
import { type BreakerRegistry, Breakers, type BudgetRegistry, Budgets, type OriginState, Origins } from "./origins.js";
import {
  type AttemptResult,
  defaultIsFailure,
  defaultRetryOn,
  failsOrigin,
  type RetryContext,
  retriesResponse,
  staleConnection,
} from "./policy.js";
import { type FetchInput, originOf, type PreparedRequest, prepareRequest } from "./request.js";
import { retryAfterOf } from "./retry-after.js";
import { type AttemptAbort, abortReason, after, attemptAbort, follow, unlinkLater, untilAborted } from "./signals.js";

/** A fetch: call it as you would `fetch(input, init)`. */
export interface Client {
  (input: FetchInput, init?: RequestInit): Promise<Response>;
  /** Each origin's circuit breaker: its state, and a snapshot to save and restore. */
  readonly breakers: BreakerRegistry;
  /** Each origin's retry budget. */
  readonly budgets: BudgetRegistry;
}

/** Makes a client: a `fetch` with timeouts, safe retries, a retry budget and a circuit breaker per origin. */
export function createClient(options: ClientOptions = {}): Client {
  const settings = resolveOptions(options);
  const origins = new Origins({
    breaker: settings.breaker,
    budget: settings.budget,
    maxOrigins: settings.maxOrigins,
    clocks: settings,
    onTransition: (origin, from, to) => emit(settings.onEvent, { type: "client.breaker", origin, from, to }),
  });
  const breakers = new Breakers(origins);
  emit(settings.onEvent, { type: "client.created", breakers });
  const client = (input: FetchInput, init?: RequestInit) => send(settings, origins, input, init);
  return Object.defineProperties(client, {
    breakers: { value: breakers, enumerable: true },
    budgets: { value: new Budgets(origins), enumerable: true },
  }) as Client;
}

/**
 * One call: everything up to the first fetch runs now, and what throws here rejects the
 * returned promise, as fetch's own errors do. One async function (`Call.run`) per call: each
 * async layer between fetch and the caller costs a promise and a resumption on every request.
 */
function send(settings: Settings, origins: Origins, input: FetchInput, init?: RequestInit): Promise<Response> {
  let call: Call;
  try {
    const request = prepareRequest(settings.request, input, init);
    if (request.caller?.aborted) throw abortReason(request.caller);
    call = new Call(settings, request, origins.use(request.origin));
    call.refuseIfOpen(); // the fail-fast path sets nothing up
    call.start();
  } catch (error) {
    return Promise.reject(error);
  }
  return call.run();
}

const noop = () => {};

/**
 * What the caller's signal reaches: the whole call while it runs, then only the body of the
 * response handed back (as with fetch). It holds neither the call nor the response afterwards,
 * so the response can be collected.
 */
interface CallerLink {
  /** Stops the call; cleared when the call is over. */
  stop: (() => void) | undefined;
  /** The last attempt's controller: its fetch streams the body. */
  attempt: AttemptAbort | undefined;
}

/**
 * The caller's listener, made here rather than in a method: a closure shares its scope's V8
 * context with every other closure of that scope, and one capturing `this` there would keep the
 * call, and its response, alive as long as the caller's signal.
 */
function linkCaller(caller: AbortSignal, link: CallerLink): () => void {
  return follow(caller, () => {
    if (link.stop) link.stop();
    else link.attempt?.abort(abortReason(caller));
  });
}

/** One attempt in flight. */
interface Attempt {
  /** 1 for the first. */
  number: number;
  /** The breaker's half-open probe, when this attempt is it. */
  probe: Probe | undefined;
  started: number;
  /** Set by its timer: the attempt's own timeout fired (not the deadline). */
  timedOut: boolean;
  cancelTimeout: () => void;
  /** Its fetch (on the attempt dispatcher, ended at once by an abort). */
  pending: Promise<Response> | undefined;
}

/** One logical request: its attempts, the waits between them, and its limits. */
class Call {
  readonly #s: Settings;
  readonly #request: PreparedRequest;
  readonly #breaker: OriginBreaker | undefined;
  readonly #budget: OriginBudget | undefined;
  #stoppedBy: "caller" | "deadline" | undefined;
  #deadlineAt: number | undefined;
  #unlinkCaller = noop;
  #link: CallerLink | undefined;
  /** The attempt in flight, or the wait (backoff, a probe's outcome) in progress: what a stop aborts. */
  #inFlight: AttemptAbort | undefined;
  #waiting: AbortController | undefined;
  #attempts = 0;
  /**
   * What the last attempt got, for the error the call may end with: unset while an attempt is in
   * flight, and without its response once that response's body is cancelled for a retry (an
   * error never carries a body that can no longer be read).
   */
  #last: AttemptResult | undefined;
  /** The last attempt's status, for the give-up event: still true after its response is let go. */
  #lastStatus: number | undefined;
  #previousBackoffMs = 0;
  /**
   * The attempt whose failure was taken for a stale connection (see `staleConnection`): one per
   * call. Resent, it goes at once, unpaid by the budget, and the breaker is not told of it.
   */
  #staleAttempt: number | undefined;
  /**
   * Set while the breaker waits to hear of the stale attempt: a failure like any other unless
   * it is resent (a reset does not tell a reused connection from a new one, and an origin that
   * resets every connection must still open the circuit of calls that make one attempt).
   */
  #staleUntold: { result: AttemptResult; probe: Probe | undefined } | undefined;
  /**
   * The clock as `start` read it for the deadline, until the first attempt starts in the same
   * tick and takes it as its start: a reading of the monotonic clock is a good part of what a call
   * costs the client on Node. Dropped when anything is awaited before that attempt.
   */
  #clockRead: number | undefined;
  #eventBase: ClientEventBase | undefined;

  constructor(settings: Settings, request: PreparedRequest, origin: OriginState) {
    this.#s = settings;
    this.#request = request;
    this.#breaker = origin.breaker;
    this.#budget = origin.budget;
  }

  /** An open circuit refuses before anything is set up: no timer, no listener, no network. */
  refuseIfOpen(): void {
    const retryAfterMs = this.#breaker?.refusalMs();
    if (retryAfterMs !== undefined) this.#refuse(retryAfterMs);
  }

  /**
   * Links the caller's signal and sets the deadline. The deadline has no timer of its own: each
   * attempt's one timer fires at its timeout or the deadline, whichever is first, and each wait
   * arms one while it lasts.
   */
  start(): void {
    const { caller } = this.#request;
    if (caller !== undefined) {
      this.#link = { stop: () => this.#stop("caller"), attempt: undefined };
      this.#unlinkCaller = linkCaller(caller, this.#link);
    }
    const { deadlineMs } = this.#s;
    if (deadlineMs !== undefined) {
      this.#clockRead = this.#s.elapsed();
      this.#deadlineAt = this.#clockRead + deadlineMs;
    }
  }

  async run(): Promise<Response> {
    let response: Response | undefined;
    try {
      for (;;) {
        if (this.#stoppedBy) throw this.#stopError();
        const admitted = this.#admit();
        if (admitted instanceof Promise) this.#clockRead = undefined; // time passes while it waits
        const probe = admitted instanceof Promise ? await admitted : admitted;
        // Stopped in the ticks between the probe's outcome and this line: nothing was in flight to abort.
        if (this.#stoppedBy) {
          this.#breaker?.release(probe);
          throw this.#stopError();
        }
        const attempt = this.#launch(probe);
        let fetched: Response | undefined;
        let failure: unknown;
        try {
          fetched = await attempt.pending;
        } catch (error) {
          failure = error;
        }
        let next: Response | number;
        try {
          next = this.#decide(this.#land(attempt, fetched, failure));
        } catch (error) {
          discardUnlessCarried(fetched, error);
          throw error;
        }
        if (typeof next !== "number") {
          response = next;
          return next;
        }
        await this.#pause(next);
      }
    } finally {
      this.#end(response);
    }
  }

  /** The call is over: the caller's signal reaches only the response's body. (No timer outlives an attempt or a wait.) */
  #end(response: Response | undefined): void {
    this.#request.finish();
    const link = this.#link;
    if (link === undefined) return;
    link.stop = undefined;
    if (response === undefined) this.#unlinkCaller();
    else unlinkLater(response, this.#unlinkCaller);
  }

  #stop(by: "caller" | "deadline"): void {
    if (this.#stoppedBy) return;
    this.#stoppedBy = by;
    this.#inFlight?.abort();
    this.#waiting?.abort();
  }

  /** What a stopped call throws: the caller's abort reason (as fetch does), or the deadline's TimeoutError. */
  #stopError(): unknown {
    if (this.#stoppedBy === "caller") return abortReason(this.#request.caller as AbortSignal);
    this.#emitGiveUp("deadline");
    return new TimeoutError("deadline", this.#s.deadlineMs as number, this.#details());
  }

  #refuse(retryAfterMs: number): never {
    this.#emitGiveUp("circuit_open");
    throw new CircuitOpenError(retryAfterMs, this.#details());
  }

  /** Runs `wait` with a signal a stop (the caller, the deadline) aborts; a stop ends it with the stop's error. */
  async #waitFor(wait: (signal: AbortSignal) => Promise<void>): Promise<void> {
    if (this.#stoppedBy) throw this.#stopError(); // stopped before the wait began (by an event hook)
    const controller = new AbortController();
    this.#waiting = controller;
    const cancelDeadline = this.#armDeadline();
    try {
      await wait(controller.signal);
    } catch (error) {
      if (this.#stoppedBy) throw this.#stopError();
      throw error;
    } finally {
      cancelDeadline();
      this.#waiting = undefined;
    }
    if (this.#stoppedBy) throw this.#stopError(); // an injected sleep that ignored its signal
  }

  /** A timer that stops the call at the deadline, if there is one. */
  #armDeadline(): () => void {
    if (this.#deadlineAt === undefined) return noop;
    return after(this.#s.sleep, Math.max(0, this.#deadlineAt - this.#s.elapsed()), () => this.#stop("deadline"));
  }

  /**
   * The breaker's probe when this attempt is it, else undefined; throws when the circuit is open.
   * Answers at once (no promise, no await) unless another call is probing: then it waits for
   * that outcome.
   */
  #admit(): Probe | undefined | Promise<Probe | undefined> {
    const admission = this.#breaker?.admit();
    switch (admission?.kind) {
      case undefined:
      case "pass":
        return undefined;
      case "probe":
        return admission.probe;
      case "reject":
        return this.#refuse(admission.retryAfterMs);
      case "wait":
        return this.#waitFor((signal) => untilAborted(admission.settled, signal)).then(() => this.#admit());
    }
  }

  /** Starts an attempt: its one timer armed, its fetch called. A fetch that throws at once is a failed attempt. */
  #launch(probe: Probe | undefined): Attempt {
    const s = this.#s;
    const request = this.#request;
    const number = ++this.#attempts;
    const started = this.#clockRead ?? s.elapsed();
    this.#clockRead = undefined;
    // From here the last attempt is this one: what an earlier one got no longer describes the call.
    this.#last = undefined;
    this.#lastStatus = undefined;
    // One timer: the attempt's timeout or the call's deadline, whichever comes first.
    const untilDeadline = this.#deadlineAt === undefined ? Number.POSITIVE_INFINITY : this.#deadlineAt - started;
    const deadlineFirst = s.timeoutMs === undefined || untilDeadline <= s.timeoutMs;
    const limitMs = deadlineFirst ? untilDeadline : (s.timeoutMs as number);
    // A signal costs fetch something on every request: none when nothing could abort this attempt.
    const controller =
      limitMs === Number.POSITIVE_INFINITY && !this.#link
        ? undefined
        : attemptAbort(s.platformFetch, !this.#link && !request.ownDispatcher && request.origin !== "null");
    this.#inFlight = controller;
    if (this.#link) this.#link.attempt = controller;
    const attempt: Attempt = { number, probe, started, timedOut: false, cancelTimeout: noop, pending: undefined };
    if (controller !== undefined && limitMs !== Number.POSITIVE_INFINITY) {
      const fire = () => {
        if (deadlineFirst) return this.#stop("deadline");
        attempt.timedOut = true;
        controller.abort();
      };
      // The attempt's own timeout, the same for every attempt: on the client's queue of them.
      const queue = deadlineFirst ? undefined : s.attemptTimers;
      attempt.cancelTimeout = queue
        ? queue.add(fire, s.elapsed === monotonicNow ? started : monotonicNow())
        : after(s.sleep, Math.max(0, limitMs), fire);
    }
    try {
      const more = request.notReplayable === undefined && number < s.maxAttempts;
      const [input, init] = request.attempt(controller, more);
      const pending = s.fetch(input, init);
      attempt.pending = controller instanceof AttemptDispatcher ? controller.settle(pending) : pending;
    } catch (error) {
      attempt.pending = Promise.reject(error);
    }
    return attempt;
  }

  /**
   * Ends an attempt with what its fetch gave: the timer cleared, a timeout named as one, the
   * breaker told, the event emitted. Throws when the call was stopped meanwhile, or when fetch
   * refused the arguments.
   */
  #land(attempt: Attempt, response: Response | undefined, failure: unknown): AttemptResult {
    const s = this.#s;
    attempt.cancelTimeout();
    this.#inFlight = undefined;
    // Read once: each of a Response's getters is a WebIDL brand check on undici.
    this.#lastStatus = response?.status;
    const timeout = attempt.timedOut && !this.#stoppedBy;
    const result: AttemptResult = response
      ? { response, error: undefined }
      : {
          response: undefined,
          error: timeout ? new TimeoutError("attempt", s.timeoutMs as number, this.#details(undefined)) : failure,
        };
    const outcome: AttemptOutcome = result.response
      ? "response"
      : this.#stoppedBy === "caller"
        ? "aborted"
        : attempt.timedOut || this.#stoppedBy === "deadline"
          ? "timeout"
          : "network_error";
    // fetch refusing the caller's own arguments, or a failure every attempt meets alike (a
    // refused redirect, an untrusted certificate), says nothing about the origin's health.
    const refused = outcome === "network_error" && this.#request.refusedWith(failure);
    const stale =
      outcome === "network_error" && !refused && this.#staleAttempt === undefined && staleConnection(failure);
    if (refused) this.#breaker?.release(attempt.probe);
    else if (stale) {
      this.#staleAttempt = attempt.number;
      this.#staleUntold = { result, probe: attempt.probe };
    } else this.#record(result, outcome, attempt.probe);
    if (s.onEvent) {
      emit(s.onEvent, {
        type: "client.attempt",
        ...this.#base(),
        attempt: attempt.number,
        outcome,
        status: this.#lastStatus,
        error: outcome === "network_error" ? describeError(result.error) : undefined,
        probe: attempt.probe !== undefined,
        durationMs: s.elapsed() - attempt.started,
      });
    }
    if (result.response === undefined && this.#stoppedBy) {
      this.#tellStale(false);
      throw this.#stopError();
    }
    if (refused) throw failure; // fetch's own error, as fetch gives it
    return result;
  }

  /** Tells the breaker of the stale attempt, once: nothing when it is resent, else a failure. */
  #tellStale(resent: boolean): void {
    const untold = this.#staleUntold;
    if (untold === undefined) return;
    this.#staleUntold = undefined;
    if (resent) this.#breaker?.release(untold.probe);
    else this.#record(untold.result, "network_error", untold.probe);
  }

  /**
   * Tells the breaker. A caller's abort says nothing about the origin; the deadline counts as a
   * timeout. An answer from another origin, reached by a redirect, is a success: this origin
   * answered, with the redirect. A timeout or a network error counts against this origin even
   * after a redirect: fetch does not say which origin failed.
   */
  #record(result: AttemptResult, outcome: AttemptOutcome, probe: Probe | undefined): void {
    const breaker = this.#breaker;
    if (breaker === undefined) return;
    if (outcome === "aborted") {
      breaker.release(probe);
      return;
    }
    let failed: boolean;
    try {
      const { isFailure } = this.#s;
      failed =
        outcome === "timeout" ||
        (!this.#answeredElsewhere(result.response) &&
          (isFailure === defaultIsFailure ? failsOrigin(this.#lastStatus) : isFailure(result)));
    } catch (error) {
      breaker.release(probe);
      throw error;
    }
    breaker.record(failed, probe);
  }

  /**
   * Whether `response` came from another origin, reached by a redirect: its status tells of that
   * origin's health, not of the one this request's breaker guards.
   */
  #answeredElsewhere(response: Response | undefined): boolean {
    return response?.redirected === true && originOf(response.url) !== this.#request.origin;
  }

  /**
   * The response to hand back, or the delay before the next attempt; throws when the call ends
   * in an error. A stale attempt's failure is told the breaker once that is known.
   */
  #decide(result: AttemptResult): Response | number {
    if (this.#staleUntold === undefined) return this.#retryOrSettle(result);
    let next: Response | number | undefined;
    try {
      next = this.#retryOrSettle(result);
      return next;
    } finally {
      this.#tellStale(typeof next === "number");
    }
  }

  #retryOrSettle(result: AttemptResult): Response | number {
    const s = this.#s;
    const request = this.#request;
    const attempt = this.#attempts;
    this.#last = result;
    const { response, error } = result;
    const wanted =
      s.retryOn === defaultRetryOn
        ? response === undefined || retriesResponse(response, this.#lastStatus as number, request.key !== undefined)
        : s.retryOn({ response, error, attempt, method: request.method, idempotencyKey: request.key } as RetryContext);
    if (!wanted) {
      if (result.response) this.#budget?.refund();
      return settle(result);
    }
    const unsafe = request.notReplayable ?? (answeredThroughRedirect(request, response) ? "redirected" : undefined);
    if (unsafe) {
      this.#emitGiveUp(unsafe);
      return settle(result);
    }
    // A response that arrived as the caller aborted or the deadline passed is not retried.
    if (this.#stoppedBy) throw this.#stopError();
    if (attempt >= s.maxAttempts) throw this.#limit("attempts");

    const now = s.now();
    const retryAfterMs = result.response && retryAfterOf(result.response.headers, now);
    if (retryAfterMs !== undefined && retryAfterMs > s.maxRetryAfterMs) {
      this.#emitGiveUp("retry_after_too_long");
      throw new RetryAfterTooLongError(retryAfterMs, s.maxRetryAfterMs, this.#details());
    }
    // A stale connection is resent at once, on the next turn of the event loop: by then undici
    // has read the closes already on the wire of other connections the server dropped with it,
    // and taken those out of its pool.
    const stale = this.#staleAttempt === attempt;
    const backoffMs = stale ? 0 : this.#backoff(attempt);
    // Retry-After is a floor: the server knows when it will be ready; jitter only ever adds to it.
    const delayMs = Math.max(backoffMs, retryAfterMs ?? 0);
    if (this.#deadlineAt !== undefined && s.elapsed() + delayMs >= this.#deadlineAt) throw this.#limit("deadline");
    const breaker = this.#breaker;
    if (breaker?.refusesAt(now + delayMs)) {
      this.#emitGiveUp("circuit_open");
      throw new CircuitOpenError((breaker.halfOpenAt as number) - now, this.#details());
    }
    if (this.#budget && !stale && !this.#budget.trySpend()) throw this.#limit("budget");

    if (s.onEvent) {
      emit(s.onEvent, {
        type: "client.retry",
        ...this.#base(),
        attempt,
        delayMs,
        backoffMs,
        retryAfterMs,
        status: result.response?.status,
        budgetTokens: this.#budget?.tokens,
        staleConnection: stale,
      });
    }
    if (result.response) {
      discard(result.response);
      // Its body is gone: an error raised later (the deadline, the circuit opening meanwhile) must not hand it out.
      this.#last = undefined;
    }
    return delayMs;
  }

  /** The backoff before retrying `attempt`: its exponent counts the failures, not a stale connection's. */
  #backoff(attempt: number): number {
    const failures = this.#staleAttempt === undefined ? attempt : attempt - 1;
    const backoffMs = backoffDelay(this.#s.backoff, failures, this.#previousBackoffMs, this.#s.random);
    this.#previousBackoffMs = backoffMs;
    return backoffMs;
  }

  #pause(delayMs: number): Promise<void> {
    return this.#waitFor((signal) => this.#s.sleep(delayMs, signal));
  }

  #limit(reason: RetryLimitReason): RetryLimitError {
    this.#emitGiveUp(reason);
    return new RetryLimitError(reason, this.#details());
  }

  #details(last = this.#last): ClientErrorDetails {
    return {
      origin: this.#request.origin,
      method: this.#request.method,
      attempts: this.#attempts,
      idempotencyKey: this.#request.key,
      response: last?.response,
      cause: last?.error,
    };
  }

  #emitGiveUp(reason: GiveUpReason): void {
    const { onEvent } = this.#s;
    if (!onEvent) return;
    emit(onEvent, {
      type: "client.give_up",
      ...this.#base(),
      reason,
      attempts: this.#attempts,
      status: this.#lastStatus,
    });
  }

  #base(): ClientEventBase {
    const { origin, method, key } = this.#request;
    this.#eventBase ??= { origin, method, key };
    return this.#eventBase;
  }
}

/**
 * Whether a request that only its key makes safe to send again (a POST, a PATCH) got `response`
 * through a redirect. The server answered the request itself: a 303, 302 or 301 says it was
 * processed, and what the redirect led to failing does not undo that. fetch does not tell those
 * from a 307 or 308, which repeats the request: none is sent again. An idempotent method is.
 */
function answeredThroughRedirect(request: PreparedRequest, response: Response | undefined): boolean {
  return !request.idempotentMethod && response?.redirected === true;
}

/** The outcome as plain fetch would give it: the response, or the error (an attempt timeout as `TimeoutError`). */
function settle(result: AttemptResult): Response {
  if (result.response) return result.response;
  throw result.error;
}

/**
 * Frees `response` when the call ends in `error` without handing it out: only a ClientError that
 * carries it (`error.response`) does. The caller's abort reason, or a hook's own error
 * (`retryOn`, `isFailure`), would leave its body holding the connection, with nobody to read it.
 */
function discardUnlessCarried(response: Response | undefined, error: unknown): void {
  if (response !== undefined && (error as { response?: unknown } | null | undefined)?.response !== response) {
    discard(response);
  }
}

/** Frees the connection a response we will not read holds. */
function discard(response: Response | undefined): void {
  try {
    response?.body?.cancel().catch(noop);
  } catch {
    // A body someone else locked: theirs to release.
  }
}
