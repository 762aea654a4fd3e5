/** Claiming a key, waiting for an in-flight holder when asked: shared by the HTTP engine and `runIdempotent`. */

import { timerDelay } from "../clock.js";
import { InterlockConfigError } from "../errors.js";
import { monotonicNow } from "../events.js";
import type { ClaimOptions, ClaimResult, InterlockStore } from "../store/contract.js";
import { storeCall } from "../store/validate.js";

/** How long to wait for a request in flight with the same key (`waitForInFlight`, `runIdempotent`'s `wait`). */
export interface WaitOptions {
  /** Longest wait for the first request to finish, in ms: finite, 0 or more. */
  timeoutMs: number;
  /** First poll interval in ms, more than 0; it doubles up to 1 s. Default 25. */
  pollMs?: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, timerDelay(ms)));

/**
 * Throws `InterlockConfigError` for a wait that is not a finite `timeoutMs` of 0 or more and
 * a positive finite `pollMs`. A NaN deadline never passes and `setTimeout(NaN)` fires after
 * 1 ms: such a wait would poll the store every millisecond for as long as the holder runs.
 */
export function checkWait(name: string, wait: WaitOptions | undefined): void {
  if (wait === undefined) return;
  const { timeoutMs, pollMs } = wait;
  if (typeof timeoutMs !== "number" || !Number.isFinite(timeoutMs) || timeoutMs < 0) {
    throw new InterlockConfigError(`${name}.timeoutMs must be a finite number of ms, 0 or more`);
  }
  if (pollMs !== undefined && (typeof pollMs !== "number" || !Number.isFinite(pollMs) || pollMs <= 0)) {
    throw new InterlockConfigError(`${name}.pollMs must be a positive finite number of ms`);
  }
}

/**
 * Claims `key`. While another caller holds it with the same fingerprint and `wait` is set,
 * polls until the holder completes (returns "completed"), gives up (the lease ran out: this
 * caller wins and returns "claimed"), or `timeoutMs` passes (returns "in_flight"). A store's
 * failure, thrown or rejected, rejects with the store's own error, for the caller to name
 * (`asUnavailable`): the engine reports it as an event, `runIdempotent` throws it, and neither
 * pays for a second promise on every claim to have it named here.
 */
export function claimKey(
  store: InterlockStore,
  key: string,
  options: ClaimOptions,
  wait: WaitOptions | undefined,
): Promise<ClaimResult> {
  // Without a wait (every request unless asked), the store's own answer: no async layer of ours.
  return wait ? claimWaiting(store, key, options, wait) : claimOnce(store, key, options);
}

function claimOnce(store: InterlockStore, key: string, options: ClaimOptions): Promise<ClaimResult> {
  return storeCall(() => store.claim(key, options));
}

async function claimWaiting(
  store: InterlockStore,
  key: string,
  options: ClaimOptions,
  wait: WaitOptions,
): Promise<ClaimResult> {
  // Monotonic: a system clock set back mid-wait must not stretch the wait by as much.
  const deadline = monotonicNow() + wait.timeoutMs;
  let interval = wait.pollMs ?? 25;
  for (;;) {
    const result = await claimOnce(store, key, options);
    if (result.state !== "in_flight" || result.fingerprint !== options.fingerprint) return result;
    const remaining = deadline - monotonicNow();
    if (remaining <= 0) return result;
    await sleep(Math.min(interval, remaining));
    interval = Math.min(interval * 2, 1_000);
  }
}
