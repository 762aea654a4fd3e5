/**
 * A virtual clock for the client's `now` and `sleep`, so every wait is exact and instant.
 *
 * Time moves only when a sleep fires. In `auto` mode the clock fires the earliest pending
 * sleep whenever no fetch is in flight (fetches made through `clock.track(fetch)`): network I/O
 * takes no virtual time, backoff waits pass at once, and a timeout can only fire while a
 * request hangs if the test calls `advance`. In manual mode only `advance` moves time.
 */

import type { Sleep } from "../../src/index.js";

interface Timer {
  at: number;
  ms: number;
  seq: number;
  resolve: () => void;
}

/** 2030-01-01T00:00:00Z: a whole second, so HTTP-dates convert exactly. */
export const EPOCH = Date.UTC(2030, 0, 1);

/** One turn of the event loop: what is ready to run (I/O callbacks among it) runs first. */
export const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

export class TestClock {
  #now: number;
  #auto: boolean;
  #timers: Timer[] = [];
  #seq = 0;
  #inFlight = 0;
  #scheduled = false;
  #sleepWaiters: Array<(ms: number) => void> = [];
  /** Every sleep that ran to its end, in ms, in order. */
  readonly slept: number[] = [];
  /** Every sleep requested (fired, cancelled or pending), in ms, in order. */
  readonly requested: number[] = [];

  constructor(options: { start?: number; auto?: boolean } = {}) {
    this.#now = options.start ?? EPOCH;
    this.#auto = options.auto ?? true;
  }

  readonly now = (): number => this.#now;

  readonly sleep: Sleep = (ms, signal) => {
    this.requested.push(ms);
    for (const waiter of this.#sleepWaiters.splice(0)) waiter(ms);
    return new Promise<void>((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason);
      const timer: Timer = { at: this.#now + ms, ms, seq: this.#seq++, resolve };
      this.#timers.push(timer);
      signal.addEventListener(
        "abort",
        () => {
          this.#timers = this.#timers.filter((t) => t !== timer);
          reject(signal.reason);
        },
        { once: true },
      );
      this.#schedule();
    });
  };

  /** Wraps a fetch so the clock knows when a request is in flight. */
  track<F extends (...args: never[]) => Promise<unknown>>(fetch: F): F {
    return (async (...args: Parameters<F>) => {
      this.#inFlight++;
      try {
        return await fetch(...args);
      } finally {
        this.#inFlight--;
        this.#schedule();
      }
    }) as F;
  }

  /** Sleeps pending now, as ms from now. */
  pending(): number[] {
    return this.#timers.map((t) => t.at - this.#now);
  }

  /** Resolves once a sleep of `ms` is requested (registered by the time the promise settles). */
  sleepRequested(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const waiter = (requested: number) => {
        if (requested === ms) resolve();
        else this.#sleepWaiters.push(waiter);
      };
      this.#sleepWaiters.push(waiter);
    });
  }

  /** Moves time forward by `ms`, firing the sleeps due on the way, in order, letting each one's work settle. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    for (;;) {
      const timer = this.#earliest();
      if (timer === undefined || timer.at > target) break;
      this.#fire(timer);
      await tick();
    }
    this.#now = Math.max(this.#now, target);
    await tick();
  }

  #earliest(): Timer | undefined {
    let earliest: Timer | undefined;
    for (const t of this.#timers)
      if (!earliest || t.at < earliest.at || (t.at === earliest.at && t.seq < earliest.seq)) earliest = t;
    return earliest;
  }

  #fire(timer: Timer): void {
    this.#timers = this.#timers.filter((t) => t !== timer);
    this.#now = Math.max(this.#now, timer.at);
    this.slept.push(timer.ms);
    timer.resolve();
  }

  #schedule(): void {
    if (!this.#auto || this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      if (this.#inFlight > 0) return;
      const timer = this.#earliest();
      if (timer === undefined) return;
      this.#fire(timer);
      this.#schedule();
    });
  }
}
