/**
 * Local time for leases, timeouts and waits: milliseconds on the epoch's scale that move only
 * forward. `Date.now()` steps when the system clock is set (NTP correcting a drift, a VM resumed
 * from a snapshot): a step forward would end every lease at once, letting a second copy of a
 * request run beside the first; a step back would hold keys, and waits, for as long as the step.
 * The process's start time plus the monotonic time since it does neither.
 */

const origin = globalThis.performance?.timeOrigin;

/**
 * Monotonic ms since the epoch (the process's start plus `performance.now()`). Where a runtime
 * gives no start time on the epoch's scale (workerd's `timeOrigin` is 0), `Date.now()`.
 */
export const monotonicEpochMs: () => number =
  typeof origin === "number" && origin > 1e12 && typeof globalThis.performance.now === "function"
    ? () => origin + globalThis.performance.now()
    : () => Date.now();
