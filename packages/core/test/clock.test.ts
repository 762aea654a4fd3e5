/** timerDelay: what every package hands the platform's timers. */
import { describe, expect, it } from "vitest";
import { timerDelay } from "../src/index.js";

describe("timerDelay", () => {
  it("rounds a delay up to whole milliseconds, so a timer never fires early", () => {
    expect(timerDelay(30)).toBe(30);
    expect(timerDelay(29.85)).toBe(30);
    expect(timerDelay(0.2)).toBe(1);
    expect(timerDelay(0)).toBe(0);
    expect(timerDelay(9_999.000_1)).toBe(10_000);
  });

  it("passes infinite and NaN delays on as they are, for each caller to decide", () => {
    expect(timerDelay(Number.POSITIVE_INFINITY)).toBe(Number.POSITIVE_INFINITY);
    expect(timerDelay(Number.NaN)).toBeNaN();
  });

  it("keeps the delay Node stores on its Timeout an integer (a fractional one would make it a boxed number on every timer)", () => {
    const timer = setTimeout(() => {}, timerDelay(1_000.37)); // a deadline's remainder, say
    const stored = (timer as unknown as { _idleTimeout: number })._idleTimeout; // read before clearTimeout sets it to -1
    clearTimeout(timer);
    expect(stored).toBe(1_001);
  });
});
