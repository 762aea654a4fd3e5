/**
 * A webhook provider's retries, and nothing more: an attempt that is not acknowledged (a
 * non-2xx answer, or no answer at all) is made again after a delay that doubles each time, up to
 * a cap, for a bounded number of attempts. There is no jitter, so a run is reproducible; a
 * real provider spreads its retries over hours, this loop over seconds.
 */

import { setTimeout as wait } from "node:timers/promises";
import { CliError, usageError } from "./errors.js";

/** How a provider retries: attempts, and an exponential delay between them. */
export interface RetryPolicy {
  /** Attempts in all, the first included. */
  maxAttempts: number;
  /** The delay before the second attempt, in ms; each next delay is twice the last. */
  initialDelayMs: number;
  /** The longest delay between two attempts, in ms. */
  maxDelayMs: number;
}

/** One attempt, no retries. */
export const NO_RETRIES: RetryPolicy = { maxAttempts: 1, initialDelayMs: 0, maxDelayMs: 0 };

/** Refuses a policy that could not run: fewer than one attempt, or a delay that is not a number of ms. */
export function checkRetryPolicy(policy: RetryPolicy): RetryPolicy {
  const { maxAttempts, initialDelayMs, maxDelayMs } = policy;
  if (!Number.isSafeInteger(maxAttempts) || maxAttempts < 1) {
    throw usageError("retry.maxAttempts must be a whole number of at least 1");
  }
  for (const [name, value] of [
    ["initialDelayMs", initialDelayMs],
    ["maxDelayMs", maxDelayMs],
  ] as const) {
    if (!Number.isFinite(value) || value < 0) throw usageError(`retry.${name} must be a number of ms, 0 or more`);
  }
  return policy;
}

/** The delay after failed attempt number `attempt` (1 for the first one). */
export function backoffDelay(policy: RetryPolicy, attempt: number): number {
  return Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** (attempt - 1));
}

/** An attempt's result, or the network failure that left it without one. */
export type AttemptOutcome<T> =
  | {
      /** The attempt's result. */
      result: T;
      /** Absent: the attempt succeeded. */
      error?: undefined;
    }
  | {
      /** Absent: the attempt failed. */
      result?: undefined;
      /** Why no answer came (`unreachable`, `timeout`). */
      error: CliError;
    };

/** No answer came: worth another attempt. Any other error is a bug or bad input, and is thrown. */
const isNetworkFailure = (error: unknown): error is CliError =>
  error instanceof CliError && (error.code === "unreachable" || error.code === "timeout");

/**
 * Runs `attempt` until `acknowledged` accepts its result or `policy.maxAttempts` have been made.
 * `onAttempt` hears every outcome, with the delay before the next attempt (undefined after the
 * last one). Resolves with the last outcome.
 */
export async function withRetries<T>(
  policy: RetryPolicy,
  attempt: (attempt: number) => Promise<T>,
  acknowledged: (result: T) => boolean,
  onAttempt: (outcome: AttemptOutcome<T>, attempt: number, retryInMs: number | undefined) => void,
  sleep: (ms: number) => Promise<unknown> = wait,
): Promise<AttemptOutcome<T>> {
  for (let number = 1; ; number++) {
    const outcome = await attempt(number).then(
      (result): AttemptOutcome<T> => ({ result }),
      (error: unknown): AttemptOutcome<T> => {
        if (isNetworkFailure(error)) return { error };
        throw error;
      },
    );
    const done = outcome.error === undefined && acknowledged(outcome.result);
    const retryInMs = done || number >= policy.maxAttempts ? undefined : backoffDelay(policy, number);
    onAttempt(outcome, number, retryInMs);
    if (retryInMs === undefined) return outcome;
    await sleep(retryInMs);
  }
}
