/**
 * One token request at a time per key: within a process (callers share one promise) and across
 * processes that share a store (a lock entry, written only if none exists, that the winner deletes
 * when done and that expires by itself if the winner dies). Losers poll the store until the
 * winner's result is there.
 */

import { timerDelay } from "@interlock/core";
import { OAuthResponseError } from "../errors.js";
import type { TokenStore } from "./contract.js";

/** Callers of `run` with the same key while one is running share its promise. */
export class SingleFlight<T> {
  readonly #flights = new Map<string, Promise<T>>();

  run(key: string, work: () => Promise<T>): Promise<T> {
    const running = this.#flights.get(key);
    if (running !== undefined) return running;
    const flight = work().finally(() => this.#flights.delete(key));
    this.#flights.set(key, flight);
    return flight;
  }
}

export interface ExclusiveOptions<T> {
  store: TokenStore;
  lockKey: string;
  /** How long a lock holds if its owner never releases it (a crash): longer than one token request. */
  lockTtlMs: number;
  /** What the store holds now, if it is usable: then nothing needs producing. */
  ready(): Promise<T | undefined>;
  /** Makes and stores a new value (the token request). Runs under the lock, in one process at a time. */
  produce(lock: HeldLock): Promise<T>;
  /** Told when the value came from another process after waiting for its lock. */
  onShared?(waitedMs: number): void;
}

/** The lock `produce` runs under. */
export interface HeldLock {
  /** When its lease ends, on `performance.now()`'s clock: past it another process may take the lock. */
  readonly expiresAt: number;
  /**
   * Keeps the lock after `produce` has settled, until `work` settles (within the lease, which is
   * not renewed): for work on the value that goes on after the caller had its answer.
   */
  holdUntil(work: Promise<unknown>): void;
}

const FIRST_PAUSE_MS = 20;
const LONGEST_PAUSE_MS = 250;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, timerDelay(ms)));
const now = () => globalThis.performance.now();

/**
 * `ready()`, or else `produce()` in whichever process takes the lock, the others waiting for its
 * result. Gives up with `server_unavailable` after two lock leases without a result (a holder that
 * keeps failing), never waiting forever.
 */
export async function exclusive<T>(options: ExclusiveOptions<T>): Promise<T> {
  const { store, lockKey, lockTtlMs } = options;
  const started = now();
  const deadline = started + 2 * lockTtlMs;
  let pause = FIRST_PAUSE_MS;
  for (let attempt = 0; ; attempt++) {
    const current = await options.ready();
    if (current !== undefined) {
      if (attempt > 0) options.onShared?.(now() - started);
      return current;
    }
    const lockedAt = now();
    const lock = await store.set(lockKey, "locked", { ttlMs: lockTtlMs, expect: null });
    if (lock !== undefined) {
      // Only our own lock: if the lease ran out, someone else's may be there now. A failed
      // delete is harmless, the lease ends by itself.
      const release = () => store.delete(lockKey, lock).catch(() => false);
      let held: Promise<unknown> | undefined;
      const holder: HeldLock = {
        expiresAt: lockedAt + lockTtlMs,
        holdUntil: (work) => {
          held = work;
        },
      };
      try {
        // Another process may have finished between our read and our lock.
        return (await options.ready()) ?? (await options.produce(holder));
      } finally {
        if (held === undefined) await release();
        else void held.then(release, release);
      }
    }
    if (now() > deadline) {
      throw new OAuthResponseError(
        "server_unavailable",
        `no token after waiting ${2 * lockTtlMs} ms for the request another process is making`,
      );
    }
    await sleep(pause);
    pause = Math.min(pause * 2, LONGEST_PAUSE_MS);
  }
}
