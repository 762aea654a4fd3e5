/**
 * Waiting and cancelling with `AbortSignal` and timers only, so the client runs wherever
 * fetch does (Node, Bun, Deno, Workers, browsers).
 */

/** Resolves after `ms`, or rejects with `signal.reason` the moment `signal` aborts. */
export type Sleep = (ms: number, signal: AbortSignal) => Promise<void>;

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
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });

const noop = () => {};

/**
 * Runs `fire` after `ms` on the client's clock unless the returned cancel function is called
 * first. The flag, not only the signal, guards `fire`: an injected `sleep` that ignores its
 * signal must not abort an attempt whose response is already in the caller's hands.
 */
export function after(sleep: Sleep, ms: number, fire: () => void): () => void {
  const timer = new AbortController();
  let cancelled = false;
  sleep(ms, timer.signal).then(() => {
    if (!cancelled) fire();
  }, noop);
  return () => {
    cancelled = true;
    timer.abort();
  };
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

/** Calls `onAbort` when `signal` aborts, until the returned function removes the listener. */
export function onAbort(signal: AbortSignal | undefined, listener: () => void): () => void {
  if (signal === undefined) return noop;
  signal.addEventListener("abort", listener, { once: true });
  return () => signal.removeEventListener("abort", listener);
}

type AnySignal = (signals: AbortSignal[]) => AbortSignal;
const anySignal = (AbortSignal as unknown as { any?: AnySignal }).any?.bind(AbortSignal);

/**
 * The signal an attempt's fetch gets: the attempt's own (timeouts, deadline) joined with the
 * caller's through `AbortSignal.any` where the platform has it (Node 20.3+, Bun, Deno,
 * Workers), so the caller's signal still aborts the body after the response is handed over,
 * as with plain fetch. Without it, the caller reaches the attempt through the call's own
 * listener, which covers everything up to the response.
 */
export function attemptSignal(own: AbortSignal, caller: AbortSignal | undefined): AbortSignal {
  return caller === undefined || anySignal === undefined ? own : anySignal([caller, own]);
}
