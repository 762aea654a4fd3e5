/**
 * Waiting and cancelling with `AbortSignal` and timers only, so the client runs wherever
 * fetch does (Node, Bun, Deno, Workers, browsers).
 *
 * On the path every call takes, the client avoids what `AbortSignal` costs on Node 20 (a first
 * listener on a fresh signal ~4 µs, `abort()` ~5 µs, `AbortSignal.any` ~15 µs): timers are plain
 * `setTimeout`s, and signals are only listened to and aborted when something actually fires.
 */

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
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });

const noop = () => {};

/**
 * Runs `fire` after `ms` unless the returned cancel function is called first: a plain timer
 * with the platform's sleep, the injected `sleep` otherwise (tests' virtual clocks). The flag,
 * not only the signal, guards `fire`: an injected `sleep` that ignores its signal must not abort
 * an attempt whose response is already in the caller's hands.
 */
export function after(sleep: Sleep, ms: number, fire: () => void): () => void {
  if (sleep === platformSleep) {
    const timer = setTimeout(fire, ms);
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
