/**
 * `createClient(options)`: a fetch that times out, retries what is safe to retry, waits as the
 * server asks, spends a per-origin retry budget, and fails fast while an origin's circuit is open.
 */

import { emit } from "@interlock/core";
import { backoffDelay } from "./backoff.js";
import type { CircuitBreaker } from "./breaker.js";
import type { RetryBudget } from "./budget.js";
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
import { BreakerRegistry, BudgetRegistry, type OriginState, Origins } from "./origins.js";
import type { AttemptResult } from "./policy.js";
import { type FetchInput, type PreparedRequest, prepareRequest } from "./request.js";
import { parseRetryAfter } from "./retry-after.js";
import { after, attemptSignal, onAbort, untilAborted } from "./signals.js";

/** A fetch: call it as you would `fetch(input, init)`. */
export interface Client {
  (input: FetchInput, init?: RequestInit): Promise<Response>;
  /** Each origin's circuit breaker: its state, and a snapshot to save and restore. */
  readonly breakers: BreakerRegistry;
  /** Each origin's retry budget. */
  readonly budgets: BudgetRegistry;
}

export function createClient(options: ClientOptions = {}): Client {
  const settings = resolveOptions(options);
  const origins = new Origins({
    breaker: settings.breaker,
    budget: settings.budget,
    maxOrigins: settings.maxOrigins,
    now: settings.now,
    onTransition: (origin, from, to) => emit(settings.onEvent, { type: "client.breaker", origin, from, to }),
  });
  const client = (input: FetchInput, init?: RequestInit) => send(settings, origins, input, init);
  return Object.defineProperties(client, {
    breakers: { value: new BreakerRegistry(origins), enumerable: true },
    budgets: { value: new BudgetRegistry(origins), enumerable: true },
  }) as Client;
}

async function send(settings: Settings, origins: Origins, input: FetchInput, init?: RequestInit): Promise<Response> {
  const request = prepareRequest(settings.request, input, init);
  if (request.caller?.aborted) throw request.caller.reason;
  const call = new Call(settings, request, origins.use(request.origin));
  try {
    return await call.run();
  } finally {
    call.end();
  }
}

const noop = () => {};

/** One logical request: its attempts, the waits between them, and its limits. */
class Call {
  readonly #s: Settings;
  readonly #request: PreparedRequest;
  readonly #breaker: CircuitBreaker | undefined;
  readonly #budget: RetryBudget | undefined;
  /** Aborted by the caller's signal or the deadline: ends the attempt in flight and any wait at once. */
  readonly #scope = new AbortController();
  #stoppedBy: "caller" | "deadline" | undefined;
  readonly #deadlineAt: number | undefined;
  readonly #unlinkCaller: () => void;
  readonly #cancelDeadline: () => void;
  #attempts = 0;
  /** The last attempt's result, for the error the call may end with. */
  #last: AttemptResult | undefined;
  #previousBackoffMs = 0;
  #eventBase: ClientEventBase | undefined;

  constructor(settings: Settings, request: PreparedRequest, origin: OriginState) {
    this.#s = settings;
    this.#request = request;
    this.#breaker = origin.breaker;
    this.#budget = origin.budget;
    this.#unlinkCaller = onAbort(request.caller, () => this.#stop("caller"));
    const { deadlineMs } = settings;
    if (deadlineMs === undefined) {
      this.#cancelDeadline = noop;
    } else {
      this.#deadlineAt = settings.now() + deadlineMs;
      this.#cancelDeadline = after(settings.sleep, deadlineMs, () => this.#stop("deadline"));
    }
  }

  async run(): Promise<Response> {
    for (;;) {
      if (this.#stoppedBy) throw this.#stopError();
      const probe = await this.#admit();
      const result = await this.#attempt(probe);
      const next = this.#decide(result);
      if (typeof next !== "number") return next;
      await this.#wait(next);
    }
  }

  /** The call is over: nothing of it may fire any more (the caller's signal still reaches the body). */
  end(): void {
    this.#unlinkCaller();
    this.#cancelDeadline();
  }

  #stop(by: "caller" | "deadline"): void {
    if (this.#stoppedBy) return;
    this.#stoppedBy = by;
    this.#scope.abort();
  }

  /** What a stopped call throws: the caller's abort reason (as fetch does), or the deadline's TimeoutError. */
  #stopError(): unknown {
    if (this.#stoppedBy === "caller") return this.#request.caller?.reason;
    this.#emitGiveUp("deadline");
    return new TimeoutError("deadline", this.#s.deadlineMs as number, this.#details());
  }

  /** Whether this attempt is the breaker's probe. Waits while another call probes; throws when the circuit is open. */
  async #admit(): Promise<boolean> {
    const breaker = this.#breaker;
    if (breaker === undefined) return false;
    for (;;) {
      const admission = breaker.admit();
      switch (admission.kind) {
        case "pass":
          return false;
        case "probe":
          return true;
        case "reject":
          this.#emitGiveUp("circuit_open");
          throw new CircuitOpenError(admission.retryAfterMs, this.#details());
        case "wait":
          try {
            await untilAborted(admission.settled, this.#scope.signal);
          } catch {
            throw this.#stopError();
          }
      }
    }
  }

  async #attempt(probe: boolean): Promise<AttemptResult> {
    const s = this.#s;
    const request = this.#request;
    const attempt = ++this.#attempts;
    const controller = new AbortController();
    const unlink = onAbort(this.#scope.signal, () => controller.abort());
    let timedOut = false;
    const cancelTimeout =
      s.timeoutMs === undefined
        ? noop
        : after(s.sleep, s.timeoutMs, () => {
            timedOut = true;
            controller.abort();
          });
    const started = s.now();
    let result: AttemptResult;
    try {
      const more = request.notReplayable === undefined && attempt < s.maxAttempts;
      const [input, init] = request.attempt(attemptSignal(controller.signal, request.caller), more);
      result = { response: await s.fetch(input, init), error: undefined };
    } catch (error) {
      const timeout = timedOut && !this.#stoppedBy;
      result = {
        response: undefined,
        error: timeout ? new TimeoutError("attempt", s.timeoutMs as number, this.#details(undefined)) : error,
      };
    } finally {
      cancelTimeout();
      unlink();
    }

    const outcome: AttemptOutcome = result.response
      ? "response"
      : this.#stoppedBy === "caller"
        ? "aborted"
        : timedOut || this.#stoppedBy === "deadline"
          ? "timeout"
          : "network_error";
    this.#record(result, outcome, probe);
    if (s.onEvent) {
      emit(s.onEvent, {
        type: "client.attempt",
        ...this.#base(),
        attempt,
        outcome,
        status: result.response?.status,
        error: outcome === "network_error" ? describeError(result.error) : undefined,
        probe,
        durationMs: s.now() - started,
      });
    }
    if (result.response === undefined && this.#stoppedBy) throw this.#stopError();
    return result;
  }

  /** Tells the breaker. A caller's abort says nothing about the origin; the deadline counts as a timeout. */
  #record(result: AttemptResult, outcome: AttemptOutcome, probe: boolean): void {
    const breaker = this.#breaker;
    if (breaker === undefined) return;
    if (outcome === "aborted") {
      breaker.release(probe);
      return;
    }
    let failed: boolean;
    try {
      failed = outcome === "timeout" || this.#s.isFailure(result);
    } catch (error) {
      breaker.release(probe);
      throw error;
    }
    breaker.record(failed, probe);
  }

  /** The response to hand back, or the delay before the next attempt; throws when the call ends in an error. */
  #decide(result: AttemptResult): Response | number {
    const s = this.#s;
    const request = this.#request;
    const attempt = this.#attempts;
    this.#last = result;
    const wanted = s.retryOn({ ...result, attempt, method: request.method, idempotencyKey: request.key });
    if (!wanted) {
      if (result.response) this.#budget?.refund();
      return settle(result);
    }
    if (request.notReplayable) {
      this.#emitGiveUp(request.notReplayable);
      return settle(result);
    }
    // A response that arrived as the caller aborted or the deadline passed is not retried.
    if (this.#stoppedBy) throw this.#stopError();
    if (attempt >= s.maxAttempts) throw this.#limit("attempts");

    const now = s.now();
    const retryAfterMs = result.response && parseRetryAfter(result.response.headers.get("retry-after"), now);
    if (retryAfterMs !== undefined && retryAfterMs > s.maxRetryAfterMs) {
      this.#emitGiveUp("retry_after_too_long");
      throw new RetryAfterTooLongError(retryAfterMs, s.maxRetryAfterMs, this.#details());
    }
    const backoffMs = backoffDelay(s.backoff, attempt, this.#previousBackoffMs, s.random);
    this.#previousBackoffMs = backoffMs;
    // Retry-After is a floor: the server knows when it will be ready; jitter only ever adds to it.
    const delayMs = Math.max(backoffMs, retryAfterMs ?? 0);
    const resumeAt = now + delayMs;
    if (this.#deadlineAt !== undefined && resumeAt >= this.#deadlineAt) throw this.#limit("deadline");
    const breaker = this.#breaker;
    if (breaker?.refusesAt(resumeAt)) {
      this.#emitGiveUp("circuit_open");
      throw new CircuitOpenError((breaker.halfOpenAt as number) - now, this.#details());
    }
    if (this.#budget && !this.#budget.trySpend()) throw this.#limit("budget");

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
      });
    }
    discard(result.response);
    return delayMs;
  }

  async #wait(delayMs: number): Promise<void> {
    try {
      await this.#s.sleep(delayMs, this.#scope.signal);
    } catch (error) {
      if (this.#stoppedBy) throw this.#stopError();
      throw error;
    }
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
      response: last?.response,
      cause: last?.error,
    };
  }

  #emitGiveUp(reason: GiveUpReason): void {
    const { onEvent } = this.#s;
    if (!onEvent) return;
    const status = this.#last?.response?.status;
    emit(onEvent, { type: "client.give_up", ...this.#base(), reason, attempts: this.#attempts, status });
  }

  #base(): ClientEventBase {
    const { origin, method, key } = this.#request;
    this.#eventBase ??= { origin, method, key };
    return this.#eventBase;
  }
}

/** The outcome as plain fetch would give it: the response, or the error (an attempt timeout as `TimeoutError`). */
function settle(result: AttemptResult): Response {
  if (result.response) return result.response;
  throw result.error;
}

/** Frees the connection a response we will not read holds. */
function discard(response: Response | undefined): void {
  try {
    response?.body?.cancel().catch(noop);
  } catch {
    // A body someone else locked: theirs to release.
  }
}
