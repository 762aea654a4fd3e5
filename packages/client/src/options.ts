/** `createClient`'s options, their defaults, and the checks that report a bad one at start-up. */

import {
  assertOptionNames,
  choiceOption,
  HTTP_TOKEN,
  InterlockConfigError,
  monotonicNow,
  optionNames,
} from "@interlock/core";
import type { Backoff, BackoffStrategy } from "./backoff.js";
import type { BreakerOptions, BreakerPolicy } from "./breaker.js";
import { DEFAULT_RETRY_BUDGET, type RetryBudgetOptions } from "./budget.js";
import type { ClientEvent } from "./events.js";
import {
  type AttemptResult,
  defaultIsFailure,
  defaultRetryOn,
  IDEMPOTENT_METHODS,
  type RetryContext,
} from "./policy.js";
import { type FetchInput, type KeyRequest, normalizeMethod, type RequestSettings } from "./request.js";
import { platformSleep, type Sleep, TimeoutQueue } from "./signals.js";

/** A fetch to call underneath: the platform's, a mock, or another wrapper. */
export type FetchFunction = (input: FetchInput, init?: RequestInit) => Promise<Response>;

/** How the client adds an `Idempotency-Key` to unsafe methods. */
export interface IdempotencyKeyOptions {
  /** The header's name. Default `"Idempotency-Key"`. */
  headerName?: string;
  /**
   * Methods the client adds a key to when the caller has not. Default `["POST", "PATCH"]`.
   * Matched as fetch sends a method: in any case for DELETE, GET, HEAD, OPTIONS, POST and PUT,
   * exactly for any other (`"PATCH"` does not match a request's `"patch"`).
   */
  methods?: readonly string[];
  /**
   * Makes a key: called once per logical request, its value sent on every attempt. Default
   * `crypto.randomUUID()`. Return an RFC 9651 string (`"\"…\""`) for the IETF draft's form.
   */
  generate?: (request: KeyRequest) => string;
}

/** The wait before each retry. */
export interface BackoffOptions {
  /** Default `"full"` jitter. */
  strategy?: BackoffStrategy;
  /** Default 100 ms. */
  baseMs?: number;
  /** Default 10 000 ms. */
  capMs?: number;
}

/** `createClient`'s options; every one has a default. */
export interface ClientOptions {
  /** Default: the platform's `fetch` (looked up on each call). */
  fetch?: FetchFunction;
  /** Attempts per logical request, the first included. Default 3. */
  maxAttempts?: number;
  /** Longest wait for one attempt's response headers. Default 10 000 ms; `false` for none. */
  timeoutMs?: number | false;
  /** Longest time for the logical request, attempts and waits included, up to the response headers. Default 30 000 ms; `false` for none. */
  deadlineMs?: number | false;
  /**
   * Methods retried without an `Idempotency-Key`. Default `IDEMPOTENT_METHODS`: GET, HEAD,
   * OPTIONS, PUT, DELETE. Matched as `idempotencyKey.methods` are: exactly, but for fetch's six.
   */
  retryMethods?: readonly string[];
  /** Which outcomes are worth retrying. Default `defaultRetryOn`. Safety (method, key, body) is checked apart from it. */
  retryOn?: (context: RetryContext) => boolean;
  /** The wait before each retry: full jitter from 100 ms, capped at 10 s. */
  backoff?: BackoffOptions;
  /** A `Retry-After` asking for longer than this ends the request with `RetryAfterTooLongError`. Default 60 000 ms. */
  maxRetryAfterMs?: number;
  /** Adding an `Idempotency-Key` to unsafe methods, so they can be retried. `false`: never added (a caller's own key is still honoured). */
  idempotencyKey?: IdempotencyKeyOptions | false;
  /** The per-origin retry budget (token bucket). `false`: no budget. */
  budget?: RetryBudgetOptions | false;
  /** The per-origin circuit breaker. `false`: none. */
  breaker?: BreakerOptions | false;
  /** Origins whose breaker and budget are kept, the least recently used dropped first. Default 1000. */
  maxOrigins?: number;
  /** Told about every attempt, retry, give-up and breaker transition. */
  onEvent?: (event: ClientEvent) => void;
  /** Random numbers in [0, 1) for jitter. Default `Math.random`. */
  random?: () => number;
  /**
   * The wall clock in ms since the epoch, for what other clocks must agree on: `Retry-After`
   * HTTP-dates, and the breaker's `openedAt` (in its snapshots). Default `Date.now`. Durations
   * (the deadline, attempt times, the breaker's open time and window) run on a monotonic clock,
   * so a system clock set forward or back moves none of them; given `now`, the client times them
   * on it too (a test's virtual clock drives everything).
   */
  now?: () => number;
  /** Every wait: backoff, attempt timeouts, the deadline. Must reject with `signal.reason` when `signal` aborts. Default: `setTimeout`. */
  sleep?: Sleep;
}

/** Options with defaults applied, checked. */
export interface Settings {
  fetch: FetchFunction;
  /** No `fetch` option: the client calls the platform's fetch. */
  platformFetch: boolean;
  maxAttempts: number;
  timeoutMs: number | undefined;
  deadlineMs: number | undefined;
  request: RequestSettings;
  retryOn: (context: RetryContext) => boolean;
  backoff: Backoff;
  maxRetryAfterMs: number;
  budget: Required<RetryBudgetOptions> | undefined;
  breaker: BreakerPolicy | undefined;
  isFailure: (result: AttemptResult) => boolean;
  maxOrigins: number;
  onEvent: ((event: ClientEvent) => void) | undefined;
  random: () => number;
  /** The wall clock (HTTP-dates, `openedAt`). */
  now: () => number;
  /** Time for durations: monotonic ms, on no particular origin (the caller's `now` when given). */
  elapsed: () => number;
  sleep: Sleep;
  /** The attempts' timeouts, on one platform timer where timers are the process's: with the platform's sleep and a `timeoutMs`. */
  attemptTimers: TimeoutQueue | undefined;
}

/** setTimeout's largest delay (2^31 - 1 ms, about 24.8 days); past it, timers fire at once. */
export const MAX_DELAY_MS = 2_147_483_647;

const STRATEGIES: readonly BackoffStrategy[] = ["full", "equal", "decorrelated"];

const platformFetch: FetchFunction = (input, init) => globalThis.fetch(input, init);

/**
 * Every option `createClient` takes. A misspelt one is refused rather than ignored, its default
 * silently in force; exported for packages that hand on their users' client options (OAuth's `retry`).
 */
export const CLIENT_OPTION_NAMES = optionNames<ClientOptions>({
  fetch: true,
  maxAttempts: true,
  timeoutMs: true,
  deadlineMs: true,
  retryMethods: true,
  retryOn: true,
  backoff: true,
  maxRetryAfterMs: true,
  idempotencyKey: true,
  budget: true,
  breaker: true,
  maxOrigins: true,
  onEvent: true,
  random: true,
  now: true,
  sleep: true,
});

const IDEMPOTENCY_KEY_OPTION_NAMES = optionNames<IdempotencyKeyOptions>({
  headerName: true,
  methods: true,
  generate: true,
});
const BACKOFF_OPTION_NAMES = optionNames<BackoffOptions>({ strategy: true, baseMs: true, capMs: true });
const BUDGET_OPTION_NAMES = optionNames<RetryBudgetOptions>({ capacity: true, retryCost: true, successRefund: true });
/** Both modes' fields: the other mode's are refused apart, with why (`refuseOtherModeFields`). */
const BREAKER_OPTION_NAMES = optionNames<BreakerOptions>({
  mode: true,
  halfOpenAfterMs: true,
  isFailure: true,
  failures: true,
  threshold: true,
  windowMs: true,
  minimumCalls: true,
});

export function resolveOptions(options: ClientOptions): Settings {
  if (typeof options !== "object" || options === null) fail("options must be an object");
  assertOptionNames("createClient()", options, CLIENT_OPTION_NAMES);
  const now = optionalFunction(options.now, "now");
  const key = groupOrFalse(options.idempotencyKey, "idempotencyKey", IDEMPOTENCY_KEY_OPTION_NAMES);
  const backoff = group(options.backoff, "backoff", BACKOFF_OPTION_NAMES);
  const budgetOptions = groupOrFalse(options.budget, "budget", BUDGET_OPTION_NAMES);
  const breaker = groupOrFalse(options.breaker, "breaker", BREAKER_OPTION_NAMES);
  const settings: Settings = {
    fetch: optionalFunction(options.fetch, "fetch") ?? platformFetch,
    platformFetch: options.fetch === undefined,
    maxAttempts: wholeNumber(options.maxAttempts, "maxAttempts", 3, 1),
    timeoutMs: delayOrFalse(options.timeoutMs, "timeoutMs", 10_000),
    deadlineMs: delayOrFalse(options.deadlineMs, "deadlineMs", 30_000),
    request: {
      idempotentMethods: methods(options.retryMethods, "retryMethods", IDEMPOTENT_METHODS),
      keyHeader: headerName(key?.headerName, "idempotencyKey.headerName", "Idempotency-Key"),
      keyMethods: key ? methods(key.methods, "idempotencyKey.methods", ["POST", "PATCH"]) : new Set(),
      generateKey: optionalFunction(key?.generate, "idempotencyKey.generate"),
    },
    retryOn: optionalFunction(options.retryOn, "retryOn") ?? defaultRetryOn,
    backoff: {
      strategy: oneOf("backoff.strategy", backoff.strategy, STRATEGIES, "full"),
      baseMs: delay(backoff.baseMs, "backoff.baseMs", 100),
      capMs: delay(backoff.capMs, "backoff.capMs", 10_000),
    },
    maxRetryAfterMs: delay(options.maxRetryAfterMs, "maxRetryAfterMs", 60_000),
    budget: budgetOptions && budget(budgetOptions),
    breaker: breaker && breakerPolicy(breaker),
    isFailure: optionalFunction(breaker?.isFailure, "breaker.isFailure") ?? defaultIsFailure,
    maxOrigins: wholeNumber(options.maxOrigins, "maxOrigins", 1000, 1),
    onEvent: optionalFunction(options.onEvent, "onEvent"),
    random: optionalFunction(options.random, "random") ?? Math.random,
    now: now ?? Date.now,
    // Durations on core's monotonic clock: `Date.now()` steps when the system clock is set (NTP, a
    // resumed VM), which would end a deadline at once or stretch it, and hold a circuit open.
    elapsed: now ?? monotonicNow,
    sleep: optionalFunction(options.sleep, "sleep") ?? platformSleep,
    attemptTimers: undefined,
  };
  if (settings.sleep === platformSleep && settings.timeoutMs !== undefined) {
    settings.attemptTimers = new TimeoutQueue(settings.timeoutMs);
  }
  if (settings.backoff.capMs < settings.backoff.baseMs) fail("backoff.capMs must be at least backoff.baseMs");
  return settings;
}

function budget(options: RetryBudgetOptions): Required<RetryBudgetOptions> {
  const capacity = positive(options.capacity, "budget.capacity", DEFAULT_RETRY_BUDGET.capacity);
  const retryCost = positive(options.retryCost, "budget.retryCost", DEFAULT_RETRY_BUDGET.retryCost);
  const successRefund = positive(options.successRefund, "budget.successRefund", DEFAULT_RETRY_BUDGET.successRefund);
  // Tokens are kept in thousandths: a smaller amount would round to nothing.
  for (const [name, value] of Object.entries({ capacity, retryCost, successRefund })) {
    if (value < 0.001) fail(`budget.${name} must be at least 0.001`);
  }
  if (retryCost > capacity) fail("budget.retryCost must not exceed budget.capacity: no retry could ever be paid for");
  return { capacity, retryCost, successRefund };
}

/** The fields only one breaker mode reads. */
const MODE_FIELDS = {
  consecutive: ["failures"],
  ratio: ["threshold", "windowMs", "minimumCalls"],
} as const;

function breakerPolicy(options: BreakerOptions): BreakerPolicy {
  const halfOpenAfterMs = delay(options.halfOpenAfterMs, "breaker.halfOpenAfterMs", 10_000);
  const mode = oneOf("breaker.mode", options.mode, ["consecutive", "ratio"] as const, "consecutive");
  refuseOtherModeFields(options, mode);
  if (mode === "consecutive") {
    const { failures } = options as { failures?: number };
    return { mode, halfOpenAfterMs, failures: wholeNumber(failures, "breaker.failures", 5, 1) };
  }
  const ratio = options as { threshold?: number; windowMs?: number; minimumCalls?: number };
  const threshold = positive(ratio.threshold, "breaker.threshold", 0.5);
  if (threshold > 1) fail("breaker.threshold must be a share of attempts in (0, 1]");
  return {
    mode,
    halfOpenAfterMs,
    threshold,
    windowMs: wholeNumber(ratio.windowMs, "breaker.windowMs", 10_000, 10),
    minimumCalls: wholeNumber(ratio.minimumCalls, "breaker.minimumCalls", 10, 1),
  };
}

/**
 * The other mode's fields would be ignored: `{ threshold: 0.3 }` without `mode: "ratio"` would
 * build a consecutive breaker, and the caller would believe their ratio was in force.
 */
function refuseOtherModeFields(options: BreakerOptions, mode: keyof typeof MODE_FIELDS): void {
  const other = mode === "consecutive" ? "ratio" : "consecutive";
  const given = MODE_FIELDS[other].filter((field) => (options as Record<string, unknown>)[field] !== undefined);
  if (given.length === 0) return;
  const names = given.map((field) => `breaker.${field}`).join(", ");
  const current = options.mode === undefined ? `"${mode}" (the default)` : `"${mode}"`;
  fail(
    `${names}: only breaker.mode "${other}" reads ${given.length === 1 ? "it" : "them"}, and breaker.mode is ${current}`,
  );
}

/**
 * A group of options (`backoff`): an object of them, none but `names`, `{}` when not given.
 * Without the check a JavaScript caller's `5` or `true` would read as `{}`, and a misspelt
 * field as absent: every setting in it silently its default.
 */
function group<T extends object>(value: T | undefined, name: string, names: readonly string[], orFalse = ""): T {
  if (value === undefined) return {} as T;
  if (!isOptionsObject(value)) fail(`${name} must be an object of options${orFalse}, got ${String(value)}`);
  assertOptionNames(`createClient() ${name}`, value, names);
  return value;
}

/** A group of options that `false` turns off (`budget`, `breaker`, `idempotencyKey`): undefined when off. */
function groupOrFalse<T extends object>(
  value: T | false | undefined,
  name: string,
  names: readonly string[],
): T | undefined {
  return value === false ? undefined : group(value, name, names, " or false");
}

/** An object of named settings: not a primitive, an array or a function (and from any realm). */
function isOptionsObject(value: unknown): boolean {
  return Object.prototype.toString.call(value) === "[object Object]";
}

function fail(message: string): never {
  throw new InterlockConfigError(`createClient: ${message}`);
}

function optionalFunction<F>(value: F | undefined, name: string): F | undefined {
  if (value !== undefined && typeof value !== "function") fail(`${name} must be a function`);
  return value;
}

function wholeNumber(value: number | undefined, name: string, fallback: number, min: number): number {
  const n = value ?? fallback;
  if (!Number.isSafeInteger(n) || n < min) fail(`${name} must be a whole number ≥ ${min}, got ${String(value)}`);
  return n;
}

function positive(value: number | undefined, name: string, fallback: number): number {
  const n = value ?? fallback;
  if (typeof n !== "number" || !Number.isFinite(n) || n <= 0)
    fail(`${name} must be a number > 0, got ${String(value)}`);
  return n;
}

/** A delay in ms: 0 to `MAX_DELAY_MS`. */
function delay(value: number | undefined, name: string, fallback: number): number {
  const n = value ?? fallback;
  if (typeof n !== "number" || !Number.isFinite(n) || n < 0 || n > MAX_DELAY_MS) {
    fail(`${name} must be a number of milliseconds from 0 to ${MAX_DELAY_MS}, got ${String(value)}`);
  }
  return n;
}

/** A timeout: a delay above 0, or `false` for none. */
function delayOrFalse(value: number | false | undefined, name: string, fallback: number): number | undefined {
  if (value === false) return undefined;
  const n = delay(value, name, fallback);
  if (n === 0) fail(`${name} must be above 0 (use false for no limit)`);
  return n;
}

/** core's choice check, its message under this factory's name like every other option's. */
function oneOf<T extends string>(name: string, value: T | undefined, allowed: readonly T[], fallback: T): T {
  return choiceOption(`createClient: ${name}`, value, allowed, fallback);
}

function methods(value: readonly string[] | undefined, name: string, fallback: readonly string[]): Set<string> {
  const list = value ?? fallback;
  if (!Array.isArray(list) || !list.every((m) => typeof m === "string" && HTTP_TOKEN.test(m))) {
    fail(`${name} must be a list of HTTP method names`);
  }
  // Compared with the request's method as fetch sends it: "get" is GET, but "patch" only ever "patch".
  return new Set(list.map(normalizeMethod));
}

function headerName(value: string | undefined, name: string, fallback: string): string {
  const header = value ?? fallback;
  if (typeof header !== "string" || !HTTP_TOKEN.test(header)) fail(`${name} must be a header name`);
  return header;
}
