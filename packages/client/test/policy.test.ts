/** The pure parts: backoff strategies, Retry-After, the budget's arithmetic, what counts as replayable. */
import { describe, expect, it } from "vitest";
import { OriginBudget } from "../src/budget.js";
import {
  backoffDelay,
  DEFAULT_RETRY_BUDGET,
  defaultIsFailure,
  defaultRetryOn,
  isReplayableBody,
  parseHttpDate,
  parseRetryAfter,
} from "../src/index.js";

const sequence = (...values: number[]) => {
  const list = [...values];
  return () => list.shift() as number;
};

describe("backoff", () => {
  const base = { baseMs: 100, capMs: 1000 };

  it("full jitter: random(0, min(cap, base·2^(n-1)))", () => {
    const full = { ...base, strategy: "full" as const };
    expect([1, 2, 3, 4, 5].map((n) => backoffDelay(full, n, 0, () => 0.999))).toEqual([100, 200, 400, 799, 999]);
    expect(backoffDelay(full, 3, 0, () => 0)).toBe(0);
    expect(backoffDelay(full, 3, 0, () => 0.25)).toBe(100);
  });

  it("equal jitter: half the ceiling plus a random share of the other half", () => {
    const equal = { ...base, strategy: "equal" as const };
    expect(backoffDelay(equal, 1, 0, () => 0)).toBe(50);
    expect(backoffDelay(equal, 3, 0, () => 0.5)).toBe(300);
    expect(backoffDelay(equal, 9, 0, () => 0)).toBe(500); // capped ceiling 1000
  });

  it("decorrelated jitter: min(cap, random(base, previous·3)), from base", () => {
    const decorrelated = { ...base, strategy: "decorrelated" as const };
    const random = sequence(0.5, 0.5, 0.5, 0.5);
    let previous = 0;
    const delays: number[] = [];
    for (let n = 1; n <= 4; n++) {
      previous = backoffDelay(decorrelated, n, previous, random);
      delays.push(previous);
    }
    // 100 + 0.5·(300-100) = 200; 100 + 0.5·(600-100) = 350; 100 + 0.5·(1050-100) = 575; then capped.
    expect(delays).toEqual([200, 350, 575, 913]);
    expect(backoffDelay(decorrelated, 5, 913, () => 0.99)).toBe(1000);
  });

  it("never overflows: a huge retry number stays at the cap", () => {
    expect(backoffDelay({ ...base, strategy: "full" }, 5000, 0, () => 0.5)).toBe(500);
  });

  it("with baseMs 0, every strategy waits 0 at any retry, never NaN (0 · 2^1024 is 0 · Infinity)", () => {
    for (const strategy of ["full", "equal", "decorrelated"] as const) {
      for (const retry of [1, 1024, 1025, 5000]) {
        expect(backoffDelay({ strategy, baseMs: 0, capMs: 1000 }, retry, 0, () => 0.5)).toBe(0);
      }
    }
  });
});

describe("Retry-After", () => {
  const now = Date.UTC(2030, 0, 1, 12, 0, 0);

  it("delay-seconds", () => {
    expect(parseRetryAfter("2", now)).toBe(2000);
    expect(parseRetryAfter(" 0 ", now)).toBe(0);
    expect(parseRetryAfter("86400", now)).toBe(86_400_000);
    // Too many digits for a number: the largest safe one, never Infinity (it prints and serialises badly).
    expect(parseRetryAfter("9".repeat(400), now)).toBe(Number.MAX_SAFE_INTEGER);
  });

  it("spaces and tabs around a value are not part of it; other whitespace is, and makes it malformed", () => {
    expect(parseRetryAfter("\t2 ", now)).toBe(2000);
    for (const space of ["\u00a0", "\u2003", "\v", "\f"]) expect(parseRetryAfter(`2${space}`, now)).toBeUndefined();
    expect(parseRetryAfter(" Tue, 01 Jan 2030 12:00:30 GMT\t", now)).toBe(30_000);
  });

  it("a field sent more than once, as fetch joins it: the longest delay-seconds, or the one value its copies repeat", () => {
    expect(parseRetryAfter("120, 120", now)).toBe(120_000);
    expect(parseRetryAfter("1, 3, 2", now)).toBe(3000);
    expect(parseRetryAfter("1,3", now)).toBe(3000);
    const date = "Tue, 01 Jan 2030 12:00:30 GMT";
    expect(parseRetryAfter(`${date}, ${date}`, now)).toBe(30_000);
    expect(parseRetryAfter(`${date}, ${date}, ${date}`, now)).toBe(30_000);
    expect(parseRetryAfter("Tue Jan  1 12:00:05 2030, Tue Jan  1 12:00:05 2030", now)).toBe(5000);
    for (const mixed of [
      "2, soon",
      "2, ",
      ", 2",
      `${date}, Tue, 01 Jan 2030 12:00:31 GMT`,
      `2, ${date}`,
      `${date},${date}`,
      "soon, soon",
    ]) {
      expect(parseRetryAfter(mixed, now)).toBeUndefined();
    }
  });

  it("the three HTTP-date forms of RFC 9110", () => {
    expect(parseRetryAfter("Tue, 01 Jan 2030 12:00:30 GMT", now)).toBe(30_000);
    expect(parseRetryAfter("Tuesday, 01-Jan-30 12:01:00 GMT", now)).toBe(60_000);
    expect(parseRetryAfter("Tue Jan  1 12:00:05 2030", now)).toBe(5000);
    expect(parseRetryAfter("Tue Jan 15 12:00:00 2030", now)).toBe(14 * 86_400_000);
  });

  it("a date in the past asks for no wait", () => {
    expect(parseRetryAfter("Mon, 31 Dec 2029 12:00:00 GMT", now)).toBe(0);
  });

  it("a two-digit year more than 50 years ahead is in the past century", () => {
    expect(parseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT", now)).toBe(Date.UTC(1994, 10, 6, 8, 49, 37));
    // In 2030: "80" is 2080 (50 years ahead, not more), "81" is 1981.
    expect(parseHttpDate("Monday, 01-Jan-80 00:00:00 GMT", now)).toBe(Date.UTC(2080, 0, 1));
    expect(parseHttpDate("Thursday, 01-Jan-81 00:00:00 GMT", now)).toBe(Date.UTC(1981, 0, 1));
    expect(parseHttpDate("Monday, 01-Jan-52 00:00:00 GMT", now)).toBe(Date.UTC(2052, 0, 1));
  });

  it("judges 'more than 50 years ahead' by the whole timestamp, not the year alone", () => {
    // 2030-01-01T12:00Z: 2080-12-31 is more than 50 years ahead, so "80" here is 1980, a past date.
    expect(parseHttpDate("Tuesday, 31-Dec-80 23:59:59 GMT", now)).toBe(Date.UTC(1980, 11, 31, 23, 59, 59));
    expect(parseRetryAfter("Tuesday, 31-Dec-80 23:59:59 GMT", now)).toBe(0);
    // Noon of 01-Jan-80 is 50 years ahead to the minute, not more: 2080; a minute later, 1980.
    expect(parseHttpDate("Monday, 01-Jan-80 12:00:00 GMT", now)).toBe(Date.UTC(2080, 0, 1, 12));
    expect(parseHttpDate("Monday, 01-Jan-80 12:01:00 GMT", now)).toBe(Date.UTC(1980, 0, 1, 12, 1));
    // A day that exists in one century only is placed by its roll-over, then refused or kept as is.
    expect(parseHttpDate("Tuesday, 29-Feb-00 00:00:00 GMT", now)).toBe(Date.UTC(2000, 1, 29));
    expect(parseHttpDate("Sunday, 29-Feb-01 00:00:00 GMT", now)).toBeUndefined();
  });

  it.each([
    ["absent", null],
    ["negative", "-1"],
    ["fractional", "1.5"],
    ["a word", "soon"],
    ["empty", ""],
    ["a date in another zone", "Tue, 01 Jan 2030 12:00:30 +0100"],
    ["a date that does not exist", "Thu, 31 Feb 2030 12:00:00 GMT"],
    ["an hour out of range", "Tue, 01 Jan 2030 25:00:00 GMT"],
    ["hour 24 (the day's end is 23:59:60, not 24:00:00)", "Tue, 01 Jan 2030 24:00:00 GMT"],
    ["a minute out of range", "Tue, 01 Jan 2030 12:60:00 GMT"],
    ["a second past a leap second", "Tue, 01 Jan 2030 12:00:61 GMT"],
    ["ISO 8601", "2030-01-01T12:00:30Z"],
  ])("ignores %s", (_, value) => {
    expect(parseRetryAfter(value, now)).toBeUndefined();
  });

  it("a leap second (second 60, which RFC 9110's time-of-day allows) is read as second 59 of its minute", () => {
    expect(parseRetryAfter("Tue, 01 Jan 2030 12:00:60 GMT", now)).toBe(59_000);
    expect(parseHttpDate("Tuesday, 01-Jan-30 23:59:60 GMT", now)).toBe(Date.UTC(2030, 0, 1, 23, 59, 59));
  });

  it("a date in year 0050 is not read as 1950", () => {
    expect(parseHttpDate("Sat, 01 Jan 0050 00:00:00 GMT", now)).toBe(new Date("0050-01-01T00:00:00Z").getTime());
  });
});

describe("retry budget", () => {
  it("defaults: 10 tokens, a retry costs 1, a success puts back 0.1", () => {
    expect(DEFAULT_RETRY_BUDGET).toEqual({ capacity: 10, retryCost: 1, successRefund: 0.1 });
    const budget = new OriginBudget(DEFAULT_RETRY_BUDGET);
    for (let i = 0; i < 10; i++) expect(budget.trySpend()).toBe(true);
    expect(budget.trySpend()).toBe(false);
    expect(budget.tokens).toBe(0);
    for (let i = 0; i < 9; i++) budget.refund();
    expect(budget.trySpend()).toBe(false); // 0.9 tokens
    budget.refund();
    expect(budget.tokens).toBe(1); // exactly: counted in thousandths, 10 × 0.1 is 1
    expect(budget.trySpend()).toBe(true);
  });

  it("never holds more than its capacity", () => {
    const budget = new OriginBudget({ capacity: 2, retryCost: 1, successRefund: 0.5 });
    for (let i = 0; i < 10; i++) budget.refund();
    expect(budget.tokens).toBe(2);
  });
});

describe("what is retried", () => {
  const response = (status: number) => new Response(null, { status });
  const context = (status: number | undefined, idempotencyKey?: string) =>
    status === undefined
      ? { response: undefined, error: new TypeError("fetch failed"), attempt: 1, method: "GET", idempotencyKey }
      : { response: response(status), error: undefined, attempt: 1, method: "GET", idempotencyKey };

  it.each([408, 425, 429, 500, 502, 503, 504])("%i is retried", (status) => {
    expect(defaultRetryOn(context(status))).toBe(true);
  });

  it.each([200, 201, 301, 400, 401, 403, 404, 409, 422, 501, 505])("%i is not", (status) => {
    expect(defaultRetryOn(context(status))).toBe(false);
  });

  it("a network error or timeout is retried; 409 only with an Idempotency-Key", () => {
    expect(defaultRetryOn(context(undefined))).toBe(true);
    expect(defaultRetryOn(context(409, "k"))).toBe(true);
  });

  it("breaker failures: errors and 5xx; 4xx say the origin is up", () => {
    expect(defaultIsFailure({ response: undefined, error: new TypeError() })).toBe(true);
    expect(defaultIsFailure({ response: response(503), error: undefined })).toBe(true);
    expect(defaultIsFailure({ response: response(429), error: undefined })).toBe(false);
  });

  it("bodies: streams and async iterables are one-shot; values fetch re-serialises are not", () => {
    async function* chunks() {
      yield new Uint8Array([1]);
    }
    expect(isReplayableBody(new ReadableStream())).toBe(false);
    expect(isReplayableBody(chunks())).toBe(false);
    for (const body of [null, undefined, "s", new Uint8Array(1), new ArrayBuffer(1), new Blob([]), new FormData()]) {
      expect(isReplayableBody(body)).toBe(true);
    }
    expect(isReplayableBody(new URLSearchParams("a=1"))).toBe(true);
  });

  it("a ReadableStream is one-shot on a runtime where it is not async-iterable (Safari) too", () => {
    const proto = ReadableStream.prototype as unknown as Record<symbol, unknown>;
    const iterator = Object.getOwnPropertyDescriptor(proto, Symbol.asyncIterator);
    delete proto[Symbol.asyncIterator];
    try {
      const stream = new ReadableStream();
      expect(Symbol.asyncIterator in stream).toBe(false);
      expect(isReplayableBody(stream)).toBe(false);
    } finally {
      if (iterator) Object.defineProperty(proto, Symbol.asyncIterator, iterator);
    }
  });
});
