/**
 * A circuit breaker for one origin. Closed, calls pass and their outcomes are counted; past
 * the threshold it opens, and calls fail fast without touching the network; after
 * `halfOpenAfterMs` the next call goes through as a probe while the others wait for its
 * outcome: a success closes the circuit, a failure opens it again.
 */

import type { AttemptResult } from "./policy.js";

/** Closed: calls pass. Open: they fail fast. Half-open: one probe finds out whether the origin is back. */
export type BreakerState = "closed" | "open" | "half_open";

interface BreakerOptionsBase {
  /** How long an open circuit fails fast before it lets a probe through. Default 10 000 ms. */
  halfOpenAfterMs?: number;
  /** Which attempt results count as failures. Default: a network error, a timeout or a 5xx (`defaultIsFailure`). */
  isFailure?: (result: AttemptResult) => boolean;
}

/** Opens after `failures` failed attempts in a row. */
export interface ConsecutiveBreakerOptions extends BreakerOptionsBase {
  /** The default mode. */
  mode?: "consecutive";
  /** Default 5. */
  failures?: number;
}

/** Opens when, over the last `windowMs`, at least `minimumCalls` attempts were made and `threshold` of them failed. */
export interface RatioBreakerOptions extends BreakerOptionsBase {
  /** Counts a share of failures over a sliding window. */
  mode: "ratio";
  /** Share of failed attempts, in (0, 1]. Default 0.5. */
  threshold?: number;
  /** Default 10 000 ms. */
  windowMs?: number;
  /** Fewer attempts than this in the window never open the circuit. Default 10. */
  minimumCalls?: number;
}

/** The circuit breaker's options: consecutive failures (the default) or a failure ratio. */
export type BreakerOptions = ConsecutiveBreakerOptions | RatioBreakerOptions;

/** Breaker options with their defaults applied. */
export type BreakerPolicy = {
  /** How long an open circuit fails fast before a probe. */
  halfOpenAfterMs: number;
} & (
  | {
      /** Failures in a row. */
      mode: "consecutive";
      /** Failures in a row that open the circuit. */
      failures: number;
    }
  | {
      /** A share of failures over a window. */
      mode: "ratio";
      /** The share of failed attempts that opens the circuit. */
      threshold: number;
      /** The sliding window, in milliseconds. */
      windowMs: number;
      /** Fewer attempts in the window never open the circuit. */
      minimumCalls: number;
    }
);

/** A breaker's state as plain JSON, to persist and restore (`client.breakers.snapshot()`). */
export interface BreakerSnapshot {
  /** The breaker's state. */
  state: BreakerState;
  /** Failed attempts in a row. */
  consecutiveFailures: number;
  /** When the circuit last opened (the client's clock, ms since the epoch); null when it never did. */
  openedAt: number | null;
  /**
   * Milliseconds until the open circuit lets a probe through, as the breaker timed it when the
   * snapshot was taken (on its monotonic clock: no wall clock's error in it); 0 when a probe was
   * due, null when closed. What a restored circuit waits, at most `halfOpenAfterMs`. Absent from
   * the snapshots of versions before it: those are timed from `openedAt`.
   */
  halfOpenInMs?: number | null;
}

/** One origin's circuit breaker, as `client.breakers.get(url)` returns it: to read; the client drives it. */
export interface CircuitBreaker {
  /** The origin it guards. */
  readonly origin: string;
  /** `half_open` from the first call after `halfOpenAfterMs`, which becomes the probe. */
  readonly state: BreakerState;
  /** Failed attempts in a row. */
  readonly consecutiveFailures: number;
  /**
   * When the circuit last opened, on the client's wall clock (`now`) as it reads now: a step of
   * the system clock since (NTP, a VM resumed) moves it too. Undefined when it never opened.
   */
  readonly openedAt: number | undefined;
  /**
   * When an open circuit lets its next call through as a probe, on the wall clock: `openedAt`
   * plus `halfOpenAfterMs`, to the ms (the wait itself is timed on a monotonic clock, and this is
   * now plus what is left of it, rounded up). Undefined unless open.
   */
  readonly halfOpenAt: number | undefined;
  /** Attempts and failures counted in the current window (ratio mode; zeros in consecutive mode). */
  readonly window: {
    /** Attempts in the window. */
    calls: number;
    /** Failed attempts in the window. */
    failures: number;
  };
  /** The state as plain JSON (`client.breakers.snapshot()` holds every origin's). */
  snapshot(): BreakerSnapshot;
}

/** What the breaker says to a call about to be made. */
export type Admission =
  | {
      /** Closed: the call goes ahead. */
      kind: "pass";
    }
  | {
      /** Half-open: this call is the probe. */
      kind: "probe";
      /** What the call hands back with its outcome: only the breaker's current probe decides the circuit. */
      probe: Probe;
    }
  | {
      /** Half-open with a probe in flight: wait for its outcome. */
      kind: "wait";
      /** Settles when the probe's outcome is known. */
      settled: Promise<void>;
    }
  | {
      /** Open: fail fast. */
      kind: "reject";
      /** Milliseconds until a probe is allowed. */
      retryAfterMs: number;
    };

const PASS: Admission = Object.freeze({ kind: "pass" });

/** The breaker's two clocks: the wall clock for times others read, a monotonic one for its own waits. */
export interface BreakerClocks {
  /** Wall-clock ms since the epoch: `openedAt`, `halfOpenAt`, snapshots. */
  now: () => number;
  /** Monotonic ms: how long the circuit has been open, and the ratio window. */
  elapsed: () => number;
}

/** A half-open probe: the call it was handed to, and the calls waiting for its outcome, hold it. */
export interface Probe {
  /** Settles when the probe's outcome is known, or when it stops being the probe. */
  readonly settled: Promise<void>;
  readonly settle: () => void;
}

/**
 * One origin's breaker, as the client drives it. Users get its `view` alone: with this object
 * they could `record` failures of their own and open the circuit for every call.
 */
export class OriginBreaker {
  /** The origin it guards. */
  readonly origin: string;
  /** What `client.breakers` hands out: the read members alone. */
  readonly view: CircuitBreaker;
  readonly #policy: BreakerPolicy;
  readonly #clocks: BreakerClocks;
  readonly #onTransition: (from: BreakerState, to: BreakerState) => void;
  readonly #window: FailureWindow | undefined;
  #state: BreakerState = "closed";
  #consecutive = 0;
  #openedAt: number | undefined;
  /** When the circuit last opened, on the monotonic clock: what the wait for a probe is timed on. */
  #openedElapsed = 0;
  /** The probe in flight while half-open. */
  #probe: Probe | undefined;

  constructor(
    origin: string,
    policy: BreakerPolicy,
    clocks: BreakerClocks,
    onTransition: (from: BreakerState, to: BreakerState) => void,
  ) {
    this.origin = origin;
    this.view = new BreakerView(this);
    this.#policy = policy;
    this.#clocks = clocks;
    this.#onTransition = onTransition;
    this.#window = policy.mode === "ratio" ? new FailureWindow(policy.windowMs) : undefined;
  }

  /** See `CircuitBreaker.state`. */
  get state(): BreakerState {
    return this.#state;
  }

  /** See `CircuitBreaker.consecutiveFailures`. */
  get consecutiveFailures(): number {
    return this.#consecutive;
  }

  /** See `CircuitBreaker.openedAt`. */
  get openedAt(): number | undefined {
    return this.#openedAt === undefined ? undefined : this.#openedAt + this.#clockStep();
  }

  /** See `CircuitBreaker.halfOpenAt`. */
  get halfOpenAt(): number | undefined {
    return this.#state === "open" ? this.#clocks.now() + this.#untilProbe() : undefined;
  }

  /** See `CircuitBreaker.window`. */
  get window(): CircuitBreaker["window"] {
    return this.#window?.totals(this.#clocks.elapsed()) ?? { calls: 0, failures: 0 };
  }

  /** May a call go out now? Opens to half-open, and hands out the probe, as time allows. */
  admit(): Admission {
    switch (this.#state) {
      case "closed":
        return PASS;
      case "open": {
        const retryAfterMs = this.#untilProbe();
        if (retryAfterMs > 0) return { kind: "reject", retryAfterMs };
        this.#transition("half_open");
        return this.#startProbe();
      }
      case "half_open":
        return this.#probe ? { kind: "wait", settled: this.#probe.settled } : this.#startProbe();
    }
  }

  /**
   * How long an open circuit still refuses calls, in whole milliseconds; undefined when a call
   * now may go out (closed, half-open, or open with its probe due). No clock is read unless open.
   */
  refusalMs(): number | undefined {
    if (this.#state !== "open") return undefined;
    const ms = this.#untilProbe();
    return ms > 0 ? ms : undefined;
  }

  /** True when a call at time `at` (the wall clock's) would be refused without a network call. */
  refusesAt(at: number): boolean {
    return this.#state === "open" && this.#untilProbe() > at - this.#clocks.now();
  }

  /** Whole milliseconds until an open circuit lets a probe through (0 or less: the next call probes). */
  #untilProbe(): number {
    return Math.ceil(this.#openedElapsed + this.#policy.halfOpenAfterMs - this.#clocks.elapsed());
  }

  /**
   * An admitted attempt's outcome. The probe decides the circuit; other attempts count only while
   * it is closed (one admitted before the circuit opened and answering late changes nothing). A
   * probe that is no longer the breaker's (a restored closed snapshot ended it) is one of those.
   */
  record(failed: boolean, probe: Probe | undefined): void {
    if (probe !== undefined && probe === this.#probe) {
      if (failed) this.#open();
      else this.#close();
      this.#endProbe();
      return;
    }
    if (this.#state !== "closed") return;
    this.#window?.add(this.#clocks.elapsed(), failed);
    if (!failed) {
      this.#consecutive = 0;
      return;
    }
    this.#consecutive++;
    if (this.#shouldOpen()) this.#open();
  }

  /** An admitted attempt that ended without a verdict (the caller aborted): a probe's turn passes to the next call. */
  release(probe: Probe | undefined): void {
    if (probe !== undefined && probe === this.#probe) this.#endProbe();
  }

  /** The state as plain JSON, for `restore`. */
  snapshot(): BreakerSnapshot {
    return {
      state: this.#state,
      consecutiveFailures: this.#consecutive,
      openedAt: this.openedAt ?? null,
      halfOpenInMs: this.#state === "closed" ? null : Math.max(0, this.#untilProbe()),
    };
  }

  /**
   * Takes on a saved state. A half-open snapshot comes back open (its probe belonged to the
   * process that saved it), its probe due as the snapshot says: at once, from this version's.
   *
   * While a probe of this breaker's is out, a snapshot that is not closed leaves the circuit
   * half-open with that probe, whose outcome decides it: it is newer news of the origin than the
   * snapshot, and a call waiting for it let go now would be a second probe on an origin thought
   * down. A closed snapshot ends it: the waiting calls go at once, and when it lands it counts as
   * any attempt does.
   */
  restore(snapshot: BreakerSnapshot): void {
    this.#consecutive = snapshot.consecutiveFailures;
    if (snapshot.openedAt === null) this.#openedAt = undefined;
    else this.#openedSince(this.#restoredAge(snapshot));
    this.#window?.clear();
    if (snapshot.state === "closed") {
      this.#endProbe();
      this.#transition("closed");
    } else if (this.#probe === undefined) {
      this.#transition("open");
    }
  }

  /**
   * How long ago a restored circuit opened, as this breaker times it: so that it waits what the
   * snapshot's `halfOpenInMs` says was left, at most `halfOpenAfterMs`. Not `openedAt` read on
   * this clock: a process whose clock runs minutes ahead of the one that saved it would take the
   * circuit for long due and probe at once. (The time the snapshot spent stored is not taken
   * off: only the two wall clocks could tell it.) A snapshot without `halfOpenInMs`, from an
   * older version, is timed from `openedAt`, an `openedAt` ahead of this clock taken as now.
   */
  #restoredAge({ openedAt, halfOpenInMs }: BreakerSnapshot): number {
    const { halfOpenAfterMs } = this.#policy;
    if (typeof halfOpenInMs === "number") return halfOpenAfterMs - Math.min(halfOpenInMs, halfOpenAfterMs);
    return Math.max(0, this.#clocks.now() - (openedAt as number));
  }

  #shouldOpen(): boolean {
    const policy = this.#policy;
    if (policy.mode === "consecutive") return this.#consecutive >= policy.failures;
    const { calls, failures } = (this.#window as FailureWindow).totals(this.#clocks.elapsed());
    // A share compared as a quotient: `threshold * calls` can round up past a whole count of
    // failures (0.28 × 25 is 7.000000000000001), and 7 of 25 would never open at 0.28.
    return calls >= policy.minimumCalls && failures / calls >= policy.threshold;
  }

  #open(): void {
    this.#openedSince(0);
    this.#transition("open");
  }

  /**
   * How far the wall clock was set since the circuit opened: its time since then less the
   * monotonic clock's, in whole ms toward 0 (the two tick apart by less than 1 ms).
   */
  #clockStep(): number {
    const wall = this.#clocks.now() - (this.#openedAt as number);
    return Math.trunc(wall - (this.#clocks.elapsed() - this.#openedElapsed));
  }

  /** Marks the circuit opened `ms` ago, on both clocks. */
  #openedSince(ms: number): void {
    this.#openedAt = this.#clocks.now() - ms;
    this.#openedElapsed = this.#clocks.elapsed() - ms;
  }

  #close(): void {
    this.#consecutive = 0;
    this.#window?.clear();
    this.#transition("closed");
  }

  #startProbe(): Admission {
    let settle = () => {};
    const settled = new Promise<void>((resolve) => {
      settle = resolve;
    });
    const probe: Probe = { settled, settle };
    this.#probe = probe;
    return { kind: "probe", probe };
  }

  #endProbe(): void {
    const probe = this.#probe;
    this.#probe = undefined;
    probe?.settle();
  }

  #transition(to: BreakerState): void {
    const from = this.#state;
    this.#state = to;
    if (from !== to) this.#onTransition(from, to);
  }
}

/** The read members of a breaker, and nothing that drives it. */
class BreakerView implements CircuitBreaker {
  readonly origin: string;
  readonly #breaker: OriginBreaker;

  constructor(breaker: OriginBreaker) {
    this.origin = breaker.origin;
    this.#breaker = breaker;
  }

  get state(): BreakerState {
    return this.#breaker.state;
  }

  get consecutiveFailures(): number {
    return this.#breaker.consecutiveFailures;
  }

  get openedAt(): number | undefined {
    return this.#breaker.openedAt;
  }

  get halfOpenAt(): number | undefined {
    return this.#breaker.halfOpenAt;
  }

  get window(): CircuitBreaker["window"] {
    return this.#breaker.window;
  }

  snapshot(): BreakerSnapshot {
    return this.#breaker.snapshot();
  }
}

const BUCKETS = 10;
/** A slot with no counts: below every bucket number, whatever the clock. */
const EMPTY = Number.NEGATIVE_INFINITY;

/**
 * Attempts and failures over a sliding window, kept in ten buckets of `windowMs / 10`: memory
 * stays fixed however many calls are made, and the window slides one bucket at a time.
 */
class FailureWindow {
  readonly #bucketMs: number;
  /**
   * The bucket number (time / bucketMs) each slot holds counts for; `EMPTY` for none. Not -1 or
   * any number: the monotonic clock starts near 0 with the process, so the window's oldest
   * buckets are below 0 early on, and a cleared slot's old counts would be read as theirs.
   */
  readonly #epochs = new Array<number>(BUCKETS).fill(EMPTY);
  readonly #calls = new Array<number>(BUCKETS).fill(0);
  readonly #failures = new Array<number>(BUCKETS).fill(0);

  constructor(windowMs: number) {
    this.#bucketMs = windowMs / BUCKETS;
  }

  add(now: number, failed: boolean): void {
    const epoch = Math.floor(now / this.#bucketMs);
    const slot = ((epoch % BUCKETS) + BUCKETS) % BUCKETS; // a clock may start below 0
    if (this.#epochs[slot] !== epoch) {
      this.#epochs[slot] = epoch;
      this.#calls[slot] = 0;
      this.#failures[slot] = 0;
    }
    (this.#calls[slot] as number)++;
    if (failed) (this.#failures[slot] as number)++;
  }

  totals(now: number): { calls: number; failures: number } {
    const oldest = Math.floor(now / this.#bucketMs) - BUCKETS + 1;
    let calls = 0;
    let failures = 0;
    for (let slot = 0; slot < BUCKETS; slot++) {
      if ((this.#epochs[slot] as number) < oldest) continue;
      calls += this.#calls[slot] as number;
      failures += this.#failures[slot] as number;
    }
    return { calls, failures };
  }

  clear(): void {
    this.#epochs.fill(EMPTY);
  }
}
