/**
 * Waiting and cancelling with `AbortSignal` and timers only, so the client runs wherever
 * fetch does (Node, Bun, Deno, Workers, browsers).
 *
 * On the path every call takes, the client avoids what `AbortSignal` costs on Node 20 (a first
 * listener on a fresh signal ~4 µs, `abort()` ~5 µs, `AbortSignal.any` ~15 µs): timers are plain
 * `setTimeout`s (an attempt's timeout a place on its client's `TimeoutQueue`), and signals are
 * only listened to and aborted when something actually fires.
 * On undici, an attempt only the client's timer can abort takes no signal at all (dispatch.ts).
 */

import { monotonicNow, timerDelay, timerOutlivesRequests } from "@interlock/core";
import { AttemptDispatcher, abortError, dispatcherUsable } from "./dispatch.js";

/** Resolves after `ms`, or rejects with `signal.reason` the moment `signal` aborts. */
export type Sleep = (ms: number, signal: AbortSignal) => Promise<void>;

/** The default `sleep`: `setTimeout`, rejecting with `signal.reason` on abort. */
export const platformSleep: Sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, timerDelay(ms));
    signal.addEventListener("abort", onAbort, { once: true });
  });

const noop = () => {};

/** What aborts one attempt's fetch: an `AbortController`, the lighter `AttemptSignal`, or an `AttemptDispatcher`. */
export type AttemptAbort = AbortController | AttemptSignal | AttemptDispatcher;

/** Sets what makes the attempt's fetch follow `abort` in its `init`: a signal, or the dispatcher. */
export function followIn(init: RequestInit, abort: AttemptAbort): void {
  if (abort instanceof AttemptDispatcher) (init as { dispatcher?: unknown }).dispatcher = abort;
  else init.signal = abort.signal;
}

type AbortListener = ((this: unknown, event: Event) => void) | { handleEvent(event: Event): void };

/**
 * One attempt's abort signal, and its controller, in a plain object, for attempts the caller's
 * signal can abort (the others take no signal on Node: dispatch.ts). On Node a real
 * `AbortSignal` costs fetch about 10 µs a request (an EventTarget to build, then undici's
 * listener on it). Node's fetch takes any object shaped like an AbortSignal (undici checks
 * `aborted` and `addEventListener`, for polyfills: Node 20 and 22), so this one is used where a
 * probe shows the platform's `Request` follows it, and only for the platform's own fetch: a
 * fetch of the caller's may need the real thing. Node 24's fetch (undici 7) refuses it, and
 * gets an AbortController.
 */
export class AttemptSignal {
  aborted = false;
  reason: unknown = undefined;
  onabort: ((event: Event) => void) | null = null;
  #listeners: AbortListener[] = [];

  get signal(): AbortSignal {
    return this as unknown as AbortSignal;
  }

  addEventListener(type: string, listener: AbortListener | null): void {
    if (type === "abort" && listener && !this.aborted && !this.#listeners.includes(listener))
      this.#listeners.push(listener);
  }

  removeEventListener(type: string, listener: AbortListener | null): void {
    const at = type === "abort" && listener ? this.#listeners.indexOf(listener) : -1;
    if (at >= 0) this.#listeners.splice(at, 1);
  }

  /**
   * Node's `events.getMaxListeners`, which undici asks before listening, reads these: above
   * the default of 10, so undici does not try to raise it (which would throw for a plain object).
   */
  getMaxListeners(): number {
    return LISTENER_LIMIT;
  }
  get _maxListeners(): number {
    return LISTENER_LIMIT;
  }
  listeners(): AbortListener[] {
    return [...this.#listeners];
  }

  throwIfAborted(): void {
    if (this.aborted) throw this.reason;
  }

  abort(reason: unknown = abortError()): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const listeners = this.#listeners;
    this.#listeners = [];
    const event = { type: "abort", target: this, currentTarget: this } as unknown as Event;
    if (this.onabort) listeners.unshift(this.onabort);
    for (const listener of listeners) {
      try {
        if (typeof listener === "function") listener.call(this, event);
        else listener.handleEvent(event);
      } catch (error) {
        // As an EventTarget does: a listener's error is reported, and the others still run.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}

const LISTENER_LIMIT = 1500;

/** The platform's fetch when this module loaded: `AttemptSignal` is only for it, not for a replacement (a test's mock). */
const startupFetch = globalThis.fetch;
let attemptSignalAccepted: boolean | undefined;

/** Whether the platform's `Request` takes an `AttemptSignal` and aborts when it does. */
function acceptsAttemptSignal(): boolean {
  try {
    const signal = new AttemptSignal();
    const request = new Request("http://127.0.0.1/", { signal: signal.signal });
    const reason = new Error("probe");
    signal.abort(reason);
    return request.signal.aborted && request.signal.reason === reason;
  } catch {
    return false;
  }
}

/**
 * An attempt's abort handle. `platformFetch` says the client calls the platform's fetch (no
 * `fetch` option); then, if nothing but the client's own timer can abort the attempt (no caller
 * signal, no dispatcher of the caller's, a network URL: `data:` and `blob:` never reach a
 * dispatcher) and the fetch is undici's, an `AttemptDispatcher`; else, if that fetch takes it,
 * the light `AttemptSignal`.
 */
export function attemptAbort(platformFetch: boolean, timerOnly: boolean): AttemptAbort {
  if (platformFetch && globalThis.fetch === startupFetch) {
    if (timerOnly && dispatcherUsable()) return new AttemptDispatcher();
    attemptSignalAccepted ??= acceptsAttemptSignal();
    if (attemptSignalAccepted) return new AttemptSignal();
  }
  return new AbortController();
}

/**
 * Runs `fire` after `ms` unless the returned cancel function is called first: a plain timer
 * with the platform's sleep, the injected `sleep` otherwise (tests' virtual clocks). The flag,
 * not only the signal, guards `fire`: an injected `sleep` that ignores its signal must not abort
 * an attempt whose response is already in the caller's hands.
 */
export function after(sleep: Sleep, ms: number, fire: () => void): () => void {
  if (sleep === platformSleep) {
    const timer = setTimeout(fire, timerDelay(ms));
    return () => clearTimeout(timer);
  }
  const cancel = new AbortController();
  let cancelled = false;
  sleep(ms, cancel.signal).then(() => {
    if (!cancelled) fire();
  }, noop);
  return () => {
    cancelled = true;
    cancel.abort();
  };
}

/** `timersOutliveCalls()`, asked once: when the first timer is added to a queue. */
let timersShared: boolean | undefined;

/**
 * Whether a timer may outlive the call that sets it, so one may time the attempts of every call
 * (core's `timerOutlivesRequests`: not on Cloudflare Workers, nor where a timer cannot be
 * unref'd). Asked of a timer set in a call: Workers refuse timers at start-up, in the global
 * scope where a client is made.
 */
function timersOutliveCalls(): boolean {
  const probe = setTimeout(noop, 0);
  clearTimeout(probe);
  return timerOutlivesRequests(probe);
}

/** One timer of a `TimeoutQueue`: due at `due` (on the stamps' clock), linked in the order they were armed. */
interface QueuedTimer {
  readonly due: number;
  readonly fire: () => void;
  previous: QueuedTimer | undefined;
  next: QueuedTimer | undefined;
  /** False once fired or cancelled. */
  queued: boolean;
}

/**
 * Timers that all last `ms`, on one platform timer: a client's attempt timeouts. Attempts start
 * one after another and each times out `ms` after its start, so they fall due in the order they
 * were armed: a list in that order, with the platform timer armed for the oldest. Cancelling (an
 * attempt answered, the path nearly every call takes) unlinks a timer and touches no platform
 * timer; when the platform timer fires, it fires every timer due by then and is armed again for
 * the next. This spares each attempt what a `setTimeout` and its `clearTimeout` cost on Node (a
 * `Timeout` object, its place in the timer lists, a read of the event loop's clock).
 *
 * Only where timers are the process's (see `timersOutliveCalls`): on Cloudflare Workers a timer
 * is the request's that set it, and stops when that request ends, so one shared by calls would
 * die with the first call's request and leave every call queued behind it without a timeout.
 * There, and where a timer cannot be unref'd (Deno, browsers), each timer is a platform timer of
 * its own, set by the call that adds it and cleared only by that call.
 *
 * Due times come from the stamps the timers were armed with: fake timers that move `setTimeout`
 * alone still fire each timer after its `ms`. A platform timer that fires late (an event loop
 * held up by a long task or a collection) moves the queue's time on by the delay, measured on
 * `clock` (the stamps' clock), so every timer due by then fires at once and the next is armed
 * from the real time: carried over, one stall would make every later timeout late by as much, for
 * as long as attempts keep the queue from emptying. The platform timer is unref'd while no timer
 * is queued: an idle client does not hold the process open.
 */
export class TimeoutQueue {
  readonly #ms: number;
  #oldest: QueuedTimer | undefined;
  #newest: QueuedTimer | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** When the timer the platform timer was armed for falls due (still so once that one is cancelled). */
  #armedFor = 0;
  /** `clock` when the platform timer was armed, and the delay it was armed with. */
  #armedAt = 0;
  #armedDelay = 0;
  readonly #clock: () => number;

  /** `clock`: the clock the stamps are read on (monotonic ms). */
  constructor(ms: number, clock: () => number = monotonicNow) {
    this.#ms = ms;
    this.#clock = clock;
  }

  /** Runs `fire` `ms` after `stamp` (monotonic ms, the moment of arming) unless the returned function is called first. */
  add(fire: () => void, stamp: number): () => void {
    timersShared ??= timersOutliveCalls();
    if (!timersShared) return after(platformSleep, this.#ms, fire);
    const timer: QueuedTimer = { due: stamp + this.#ms, fire, previous: this.#newest, next: undefined, queued: true };
    if (this.#newest === undefined) this.#oldest = timer;
    else this.#newest.next = timer;
    this.#newest = timer;
    if (this.#timer === undefined) this.#arm(this.#ms, timer.due);
    else if (this.#oldest === timer) this.#timer.ref?.();
    return () => this.#cancel(timer);
  }

  #cancel(timer: QueuedTimer): void {
    if (!timer.queued) return;
    this.#unlink(timer);
    if (this.#oldest === undefined) this.#idle();
  }

  /** Nothing queued: the platform timer no longer holds the process open. */
  #idle(): void {
    this.#timer?.unref();
  }

  #unlink(timer: QueuedTimer): void {
    timer.queued = false;
    if (timer.previous === undefined) this.#oldest = timer.next;
    else timer.previous.next = timer.next;
    if (timer.next === undefined) this.#newest = timer.previous;
    else timer.next.previous = timer.previous;
  }

  #arm(delay: number, due: number): void {
    this.#armedFor = due;
    this.#armedAt = this.#clock();
    this.#armedDelay = timerDelay(delay);
    this.#timer = setTimeout(this.#fireDue, this.#armedDelay);
  }

  readonly #fireDue = (): void => {
    this.#timer = undefined;
    const late = Math.max(0, this.#clock() - this.#armedAt - this.#armedDelay);
    const now = this.#armedFor + late;
    for (let timer = this.#oldest; timer !== undefined && timer.due <= now; timer = this.#oldest) {
      this.#unlink(timer);
      try {
        timer.fire();
      } catch (error) {
        // Reported as a throwing timer's would be, after the other timers due have fired.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
    const next = this.#oldest;
    if (next !== undefined) this.#arm(next.due - now, next.due);
  };
}

/**
 * What an aborted caller's signal rejects with: its reason, or the AbortError fetch gives when it
 * has none (a polyfill's signal, `abort-controller`'s: `aborted` and an "abort" event only). A
 * reason of `null` is one: `abort(null)` keeps it, and fetch rejects with it.
 */
export function abortReason(signal: AbortSignal): unknown {
  return signal.reason === undefined ? abortError() : signal.reason;
}

/** Waits for `promise`, or rejects with `signal.reason` as soon as `signal` aborts. */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

/** Each caller signal's one abort listener, and what it reaches: the calls and responses following it. */
const followers = new WeakMap<AbortSignal, Set<() => void>>();

/**
 * Calls `onAbort` when `signal` aborts, until the returned function is called. However many
 * calls share one long-lived signal, it gets a single listener (no MaxListeners warning, no
 * listener per call to add and remove); the set of followers lives as long as the signal.
 */
export function follow(signal: AbortSignal, onAbort: () => void): () => void {
  let set = followers.get(signal);
  if (set === undefined) {
    const created = new Set<() => void>();
    set = created;
    followers.set(signal, created);
    signal.addEventListener(
      "abort",
      () => {
        followers.delete(signal);
        for (const follower of created) follower();
      },
      { once: true },
    );
  }
  const own = set;
  own.add(onAbort);
  return () => {
    own.delete(onAbort);
  };
}

/**
 * Stops following the caller's signal once `response` is garbage-collected, as Node's own
 * fetch does: until then the caller's signal can still abort the response's body.
 */
const unlinkWhenCollected =
  typeof FinalizationRegistry === "function" ? new FinalizationRegistry<() => void>((unlink) => unlink()) : undefined;

/**
 * The call is over with `response` handed back. The caller's signal keeps reaching its body
 * (fetch's contract) until the caller aborts or the response is collected; `unlink` must not
 * hold the response, or it never would be. Without FinalizationRegistry, the link ends now.
 */
export function unlinkLater(response: Response, unlink: () => void): void {
  if (unlinkWhenCollected) unlinkWhenCollected.register(response, unlink);
  else unlink();
}
