/**
 * How long to wait before a retry, from "Exponential Backoff And Jitter" (AWS Architecture
 * Blog, 2015). Jitter spreads the retries of many clients that failed together, so they do not
 * come back together.
 */

export type BackoffStrategy = "full" | "equal" | "decorrelated";

export interface Backoff {
  /** Full, equal or decorrelated jitter. */
  strategy: BackoffStrategy;
  /** The first retry's ceiling, in milliseconds. */
  baseMs: number;
  /** No backoff is longer than this. */
  capMs: number;
}

/**
 * The backoff before retry number `retry` (1 for the first), in whole milliseconds, with
 * `random()` in [0, 1) and `previousMs` the backoff chosen before the previous retry (0 before
 * the first):
 *
 * - full: `random(0, min(cap, base·2^(retry-1)))`
 * - equal: half of that ceiling, plus a random share of the other half
 * - decorrelated: `min(cap, random(base, previous·3))`, starting from `base`
 */
export function backoffDelay(backoff: Backoff, retry: number, previousMs: number, random: () => number): number {
  const { baseMs, capMs } = backoff;
  switch (backoff.strategy) {
    case "full":
      return Math.round(random() * ceiling(backoff, retry));
    case "equal": {
      const half = ceiling(backoff, retry) / 2;
      return Math.round(half + random() * half);
    }
    case "decorrelated": {
      const upper = Math.max(baseMs, (previousMs > 0 ? previousMs : baseMs) * 3);
      return Math.round(Math.min(capMs, baseMs + random() * (upper - baseMs)));
    }
  }
}

/**
 * `min(cap, base·2^(retry-1))`, a finite number in [0, cap] at any retry. The exponent stops at
 * 1023, the largest whose power of two is finite: `2 ** 1024` is Infinity, and a base of 0 times
 * Infinity is NaN, which Math.min and Math.max pass on (a NaN wait would undo the Retry-After
 * floor and the deadline check). By then a base of 0 stays 0, and any other (from 2^-992 ms) has
 * reached the cap, which is under 2^31 ms.
 */
const MAX_EXPONENT = 1023;

function ceiling({ baseMs, capMs }: Backoff, retry: number): number {
  return Math.min(capMs, baseMs * 2 ** Math.min(retry - 1, MAX_EXPONENT));
}
