/**
 * The per-origin state: one circuit breaker and one retry budget for each origin called, kept
 * for the `maxOrigins` most recently used (a client that calls URLs it is handed, a webhook
 * sender for instance, must not grow without bound).
 */

import { InterlockConfigError } from "@interlock/core";
import {
  type BreakerClocks,
  type BreakerPolicy,
  type BreakerSnapshot,
  type BreakerState,
  type CircuitBreaker,
  OriginBreaker,
} from "./breaker.js";
import { OriginBudget, type RetryBudget, type RetryBudgetOptions } from "./budget.js";

/** An origin's breaker and budget as the client drives them (`client.breakers` and `budgets` hand out their views). */
export interface OriginState {
  breaker: OriginBreaker | undefined;
  budget: OriginBudget | undefined;
}

export interface OriginSettings {
  breaker: BreakerPolicy | undefined;
  budget: Required<RetryBudgetOptions> | undefined;
  maxOrigins: number;
  clocks: BreakerClocks;
  onTransition: (origin: string, from: BreakerState, to: BreakerState) => void;
}

/**
 * The origin of every URL whose origin is opaque (`data:`, `file:`, a custom scheme's), in the
 * URL standard's serialisation: one name for them all, and no server.
 */
const OPAQUE_ORIGIN = "null";

/**
 * An opaque origin's state: no breaker, no budget. Under the one name "null", a breaker would
 * let a custom scheme's failing handler fail every `data:` URL fast, and a budget would share
 * their retries; none of them is a server that load could bring down. Such a call still has its
 * timeouts, deadline and attempts.
 */
const NO_STATE: OriginState = Object.freeze({ breaker: undefined, budget: undefined });

export class Origins {
  readonly #settings: OriginSettings;
  readonly #states = new Map<string, OriginState>();
  #recent: string | undefined;
  #recentState: OriginState | undefined;

  constructor(settings: OriginSettings) {
    this.#settings = settings;
  }

  /** The origin's state, made on first use, and marked most recently used. */
  use(origin: string): OriginState {
    const states = this.#states;
    // The origin used last is already the most recent: no reordering, no look-up.
    if (origin === this.#recent && this.#recentState !== undefined) return this.#recentState;
    if (origin === OPAQUE_ORIGIN) return NO_STATE;
    let state = states.get(origin);
    if (state !== undefined) {
      states.delete(origin);
    } else {
      state = this.#create(origin);
      if (states.size >= this.#settings.maxOrigins) states.delete(states.keys().next().value as string);
    }
    states.set(origin, state);
    this.#recent = origin;
    this.#recentState = state;
    return state;
  }

  peek(origin: string): OriginState | undefined {
    return this.#states.get(origin);
  }

  entries(): IterableIterator<[string, OriginState]> {
    return this.#states.entries();
  }

  #create(origin: string): OriginState {
    const { breaker, budget, clocks, onTransition } = this.#settings;
    return {
      breaker: breaker && new OriginBreaker(origin, breaker, clocks, (from, to) => onTransition(origin, from, to)),
      budget: budget && new OriginBudget(budget),
    };
  }
}

/** Every breaker's state, as JSON to persist and hand to `restore`, in this process or another one. */
export interface BreakersSnapshot {
  /** The snapshot format: 1. */
  version: 1;
  /** Each origin's breaker. */
  breakers: Record<string, BreakerSnapshot>;
}

/** `client.breakers`: each origin's circuit breaker, to watch, save and restore. */
export interface BreakerRegistry extends Iterable<CircuitBreaker> {
  /** The breaker for a URL's origin, once that origin has been called (or restored); undefined with `breaker: false`. */
  get(url: string | URL): CircuitBreaker | undefined;
  /** Every breaker's state, as JSON. */
  snapshot(): BreakersSnapshot;
  /**
   * Takes on the states of a snapshot (from `snapshot()`, possibly of another process). Checked
   * whole before anything changes: a malformed snapshot throws `InterlockConfigError`.
   */
  restore(snapshot: BreakersSnapshot): void;
}

/** `client.budgets`: each origin's retry budget. */
export interface BudgetRegistry {
  /** The retry budget for a URL's origin, once that origin has been called; undefined with `budget: false`. */
  get(url: string | URL): RetryBudget | undefined;
}

export class Breakers implements BreakerRegistry {
  readonly #origins: Origins;

  constructor(origins: Origins) {
    this.#origins = origins;
  }

  get(url: string | URL): CircuitBreaker | undefined {
    return this.#origins.peek(originOf(url, "breakers.get"))?.breaker?.view;
  }

  *[Symbol.iterator](): IterableIterator<CircuitBreaker> {
    for (const [, state] of this.#origins.entries()) if (state.breaker) yield state.breaker.view;
  }

  snapshot(): BreakersSnapshot {
    const breakers: Record<string, BreakerSnapshot> = {};
    for (const breaker of this) breakers[breaker.origin] = breaker.snapshot();
    return { version: 1, breakers };
  }

  restore(snapshot: BreakersSnapshot): void {
    const entries = checkSnapshot(snapshot);
    for (const [origin, saved] of entries) this.#origins.use(origin).breaker?.restore(saved);
  }
}

export class Budgets implements BudgetRegistry {
  readonly #origins: Origins;

  constructor(origins: Origins) {
    this.#origins = origins;
  }

  get(url: string | URL): RetryBudget | undefined {
    return this.#origins.peek(originOf(url, "budgets.get"))?.budget?.view;
  }
}

function originOf(url: string | URL, where: string): string {
  try {
    return new URL(url).origin;
  } catch {
    throw new InterlockConfigError(`${where}: ${JSON.stringify(String(url))} is not an absolute URL or origin`);
  }
}

const STATES: readonly BreakerState[] = ["closed", "open", "half_open"];

function checkSnapshot(snapshot: unknown): Array<[string, BreakerSnapshot]> {
  const fail = (why: string): never => {
    throw new InterlockConfigError(`breakers.restore: ${why}`);
  };
  if (typeof snapshot !== "object" || snapshot === null) return fail("the snapshot is not an object");
  const { version, breakers } = snapshot as Partial<BreakersSnapshot>;
  if (version !== 1) return fail(`unknown snapshot version ${JSON.stringify(version)} (expected 1)`);
  if (typeof breakers !== "object" || breakers === null) return fail("`breakers` is not an object");
  return Object.entries(breakers).map(([key, saved]): [string, BreakerSnapshot] => {
    // An earlier version kept a breaker for opaque origins: its entry is checked, and restores nothing.
    const origin = key === OPAQUE_ORIGIN ? key : originOf(key, "breakers.restore");
    if (origin !== key) fail(`${JSON.stringify(key)} is not an origin (expected ${JSON.stringify(origin)})`);
    const { state, consecutiveFailures, openedAt, halfOpenInMs } = (saved ?? {}) as Partial<BreakerSnapshot>;
    if (!STATES.includes(state as BreakerState)) fail(`${key}: state must be one of ${STATES.join(", ")}`);
    if (!Number.isSafeInteger(consecutiveFailures) || (consecutiveFailures as number) < 0) {
      fail(`${key}: consecutiveFailures must be a whole number ≥ 0`);
    }
    if (openedAt !== null && !Number.isFinite(openedAt)) fail(`${key}: openedAt must be a number or null`);
    if (state !== "closed" && openedAt === null) fail(`${key}: an ${state} breaker needs openedAt`);
    // Absent from an older version's snapshot: then the wait is timed from openedAt.
    if (halfOpenInMs === undefined) return [key, { state, consecutiveFailures, openedAt } as BreakerSnapshot];
    if (halfOpenInMs !== null && !(Number.isFinite(halfOpenInMs) && halfOpenInMs >= 0)) {
      fail(`${key}: halfOpenInMs must be a number ≥ 0 or null`);
    }
    if (state !== "closed" && halfOpenInMs === null) fail(`${key}: an ${state} breaker needs halfOpenInMs`);
    return [key, { state, consecutiveFailures, openedAt, halfOpenInMs } as BreakerSnapshot];
  });
}
