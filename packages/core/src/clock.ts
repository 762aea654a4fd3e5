/**
 * Local time for leases, timeouts and waits: milliseconds on the epoch's scale that move only
 * forward. `Date.now()` steps when the system clock is set (NTP correcting a drift, a VM resumed
 * from a snapshot): a step forward would end every lease at once, letting a second copy of a
 * request run beside the first; a step back would hold keys, and waits, for as long as the step.
 * The process's start time plus the monotonic time since it does neither.
 */

import { InterlockConfigError } from "./errors.js";
import { typeName } from "./store/validate.js";

/**
 * A clock of monotonic ms since the epoch (the process's start plus `performance.now()`), bound
 * to the `performance` in place when it is made: a store made while a test fakes time keeps the
 * fake clock, as one made with `Date.now` did, and the hot path reads no global. Where a runtime
 * gives no start time on the epoch's scale (workerd's `timeOrigin` is 0), `Date.now`.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function monotonicClock(): () => number {
  const performance = globalThis.performance;
  const origin = performance?.timeOrigin;
  if (typeof origin === "number" && origin > 1e12 && typeof performance.now === "function") {
    return () => origin + performance.now();
  }
  return Date.now;
}

/**
 * The clock an option names (`now`, for tests), read through a check, or undefined when none is
 * given. Throws `InterlockConfigError` for one that is not a function; a reading that is not a
 * finite number throws it too, when read: a `now` that answers `undefined` or `NaN` (an unbound
 * method, a fake not yet set) would otherwise pass every comparison it takes part in, accepting a
 * delivery signed years ago or letting two claims on one key both win. Failed closed instead: the
 * operation is refused with the error naming the option.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function checkedClock(name: string, now: unknown): (() => number) | undefined {
  if (now === undefined) return undefined;
  if (typeof now !== "function") {
    throw new InterlockConfigError(`${name} must be a function returning the time in ms since the epoch`);
  }
  return () => {
    const at: unknown = now();
    if (typeof at !== "number" || !Number.isFinite(at)) {
      const given = typeof at === "number" ? String(at) : typeName(at); // NaN, Infinity
      throw new InterlockConfigError(`${name}() returned ${given}, not a finite number of ms since the epoch`);
    }
    return at;
  };
}

/**
 * A delay to hand the platform's `setTimeout` or `setInterval`: whole milliseconds, rounded up,
 * so a timer never fires before its time. A deadline's remainder on `performance.now()` is
 * fractional, and Node keeps each timer's delay in a field of its `Timeout` that V8 takes for a
 * small integer: the first fractional delay in a process deoptimizes Node's timer code
 * (`setTimeout`, `clearTimeout`, `unref`, its timer lists) and makes that field a boxed number on
 * every timer from then on, the app's own and its sockets' alike. Infinite and NaN delays are
 * passed on as they are (each caller decides what those mean).
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function timerDelay(ms: number): number {
  return Math.ceil(ms);
}

/**
 * Whether `timer`, a handle the platform's `setTimeout` or `setInterval` returned, is the
 * process's, so one timer may serve the requests (or calls) of many: a handle that can be
 * unref'd (Node's, Bun's), outside Cloudflare Workers. There a timer fires only while the request
 * that set it runs (workerd cancels it when that request ends), even when `nodejs_compat` gives
 * it Node's shape; a timer that is a number (Deno's, a browser's, Workers' without
 * `nodejs_compat`) cannot be unref'd. Workers are told by `WebSocketPair`, a global of theirs
 * alone (Node, Bun and Deno have none), as well as by `navigator.userAgent`: the
 * `no_global_navigator` compatibility flag takes `navigator` away. Ask of a timer set in a
 * request: Workers refuse timers at start-up, in the global scope.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function timerOutlivesRequests(timer: unknown): boolean {
  if (typeof (timer as { unref?: unknown } | undefined)?.unref !== "function") return false;
  const global = globalThis as { navigator?: { userAgent?: unknown }; WebSocketPair?: unknown };
  return global.navigator?.userAgent !== "Cloudflare-Workers" && typeof global.WebSocketPair !== "function";
}
