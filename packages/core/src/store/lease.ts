/**
 * Renewal of a claim's lease while the work it guards runs, shared by the idempotency engine
 * and the webhook receiver (`extendLease`, on by default for both).
 */

import { timerDelay, timerOutlivesRequests } from "../clock.js";
import type { InterlockStore } from "./contract.js";
import { MAX_TIMEOUT_MS, positiveMs, storeCall } from "./validate.js";

/** How long `extendLease` keeps renewing a running request's lease. */
export interface LeaseRenewal {
  /** The longest hold renewed, from the claim, in ms. `true` for `extendLease` means `DEFAULT_IDEMPOTENCY_RENEWAL_MAX_MS`. */
  maxMs: number;
}

/**
 * The longest hold `extendLease: true` renews: 10 minutes, for idempotent requests and webhook
 * deliveries alike. Proxies, load balancers and webhook providers close a request's connection
 * long before, so a request still running then has lost its client.
 */
export const DEFAULT_IDEMPOTENCY_RENEWAL_MAX_MS = 10 * 60 * 1000;

/**
 * How many times `extendLease` renews a lease, every third of `lockTtlMs`, before the hold
 * reaches its `maxMs`: 0 when turned off. Not given, it is on (`true`), for the engine and the
 * receiver alike: a handler slower than its lease must not run twice. Throws
 * `InterlockConfigError` for a `maxMs` that is not a positive whole number of ms.
 */
export function renewalsOf(extendLease: boolean | LeaseRenewal | undefined, lockTtlMs: number): number {
  if (extendLease === undefined) return renewalsOf(true, lockTtlMs);
  if (!extendLease) return 0;
  const maxMs = extendLease === true ? undefined : extendLease.maxMs;
  return Math.floor(positiveMs("extendLease.maxMs", maxMs, DEFAULT_IDEMPOTENCY_RENEWAL_MAX_MS) / (lockTtlMs / 3));
}

/** A claim being renewed: its key, token and renewals left. */
export interface HeldLease {
  readonly key: string;
  readonly token: string;
  left: number;
  /** Where it sits in its keeper's list of held leases; -1 once let go, or with a timer of its own. */
  at: number;
  /** Its own timer, where timers are the request's (see LeaseKeeper); undefined on the shared one, and once let go. */
  timer: Timer | undefined;
}

type Timer = ReturnType<typeof setInterval>;

/** Keeps a timer from holding a Deno process open, as `unref` does Node's. */
function unrefOnDeno(timer: Timer): void {
  (globalThis as { Deno?: { unrefTimer?: (id: Timer) => void } }).Deno?.unrefTimer?.(timer);
}

/**
 * Renews the leases of the claims it holds, every third of `lockTtlMs`, each `renewals` times
 * at most: counted rather than timed, so the bound holds whatever the clock does. Where timers
 * are the process's (Node, Bun), one timer for all of them, not one per claim: a timer set and
 * cleared for every request costs more than the rest of a webhook delivery's bookkeeping, and
 * most claims settle long before the first renewal. Where a timer is the request's that set it
 * (Cloudflare Workers: it stops when that request ends) or cannot be unref'd (Deno, browsers),
 * each claim has a timer of its own, set when it is held and cleared when it is let go, so it
 * lives and dies with its request. A claim is first renewed within a third of `lockTtlMs` of
 * being held, then every third: never later than its lease needs. A renewal that fails is
 * ignored (the next one may succeed); a lease the store answers lost is renewed no more (it
 * shows when the claim is settled). No timer keeps a process alive (Node's and Bun's are
 * unref'd, Deno's too), and the shared one stops at a tick that finds nothing held; a process
 * that dies renews nothing, and its leases lapse within `lockTtlMs`.
 */
export class LeaseKeeper {
  /**
   * The leases held, in no order: one is let go by moving the last into its place. Not a `Set`:
   * a lease is held and let go once per request, and a `Set`'s add and delete of a new object
   * cost 50 to 110 ns against 10 to 20 ns here (Node 20).
   */
  readonly #held: HeldLease[] = [];
  /** The timer shared by the leases in `#held`, where timers are the process's. */
  #timer: Timer | undefined;
  /** Whether each lease has a timer of its own (and is not in `#held`): known from the first timer set. */
  #perLease: boolean | undefined;
  /**
   * The leases with a timer of their own this keeper holds: weakly, so one whose request ended
   * unsettled (a Worker's, cancelled) and took its timer with it is not kept for good.
   */
  #own: WeakSet<HeldLease> | undefined;
  /** At most a timer's longest wait: past it, Node fires every millisecond instead. */
  readonly #every: number;

  constructor(
    readonly store: InterlockStore,
    readonly lockTtlMs: number,
    readonly renewals: number,
  ) {
    this.#every = timerDelay(Math.min(lockTtlMs / 3, MAX_TIMEOUT_MS));
  }

  /** Starts renewing the claim on `key` held with `token`; undefined when nothing is renewed. */
  hold(key: string, token: string): HeldLease | undefined {
    if (this.renewals <= 0) return undefined;
    const held: HeldLease = { key, token, left: this.renewals, at: this.#held.length, timer: undefined };
    if (this.#timer === undefined && !this.#shareTimer()) return this.#ownTimer(held);
    this.#held.push(held);
    return held;
  }

  /**
   * Starts the shared timer: false, and none, where timers are the request's. The first timer
   * set tells, once for the keeper.
   */
  #shareTimer(): boolean {
    if (this.#perLease) return false;
    const timer = setInterval(() => this.#renew(), this.#every);
    this.#perLease ??= !timerOutlivesRequests(timer);
    if (this.#perLease) {
      clearInterval(timer);
      return false;
    }
    (timer as { unref(): void }).unref();
    this.#timer = timer;
    return true;
  }

  /** Gives `held` a timer of its own, set in the request that holds it and cleared when it is let go. */
  #ownTimer(held: HeldLease): HeldLease {
    held.at = -1;
    held.timer = setInterval(() => this.#extend(held), this.#every);
    unrefOnDeno(held.timer);
    this.#own ??= new WeakSet();
    this.#own.add(held);
    return held;
  }

  /** Stops renewing a claim (settled); nothing for one already let go. */
  release(held: HeldLease | undefined): void {
    if (held !== undefined) this.#letGo(held);
  }

  /**
   * Takes `held` out of the list, if in it: the last lease moves into its place; or clears its
   * own timer, if it has one. One this keeper does not hold (let go already, or another keeper's:
   * a ticket settled by another engine) is left as it is.
   */
  #letGo(held: HeldLease): void {
    if (held.timer !== undefined) {
      this.#clearOwn(held);
      return;
    }
    const at = held.at;
    if (this.#held[at] !== held) return;
    held.at = -1;
    const last = this.#held.pop() as HeldLease;
    if (last === held) return;
    this.#held[at] = last;
    last.at = at;
  }

  /** Clears the timer of a lease with its own, if this keeper holds it. */
  #clearOwn(held: HeldLease): void {
    if (!this.#own?.delete(held)) return;
    clearInterval(held.timer);
    held.timer = undefined;
  }

  /**
   * Stops the shared timer at once when nothing is held, rather than at its next tick. For a
   * keeper that guards one piece of work (`runIdempotent`'s): its timer would outlive the work by
   * up to a third of the lease, one per run. A keeper shared by many requests leaves it to the
   * tick. A lease's own timer is cleared when it is let go.
   */
  stopIfIdle(): void {
    if (this.#held.length > 0 || this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /**
   * A lease the store answered lost (`extend` false) is another claim's now: renewing it again
   * could only be refused too, so it is let go. The shared timer stops at its next tick if nothing
   * else is held. The loss itself shows when the claim is settled (`complete` refuses the stale
   * token).
   */
  #forgetIfLost(held: HeldLease, extended: boolean): void {
    if (!extended) this.#letGo(held);
  }

  /** Renews one lease, and lets it go once out of renewals. */
  #extend(held: HeldLease): void {
    const { store, lockTtlMs } = this;
    void storeCall(() => store.extend(held.key, held.token, lockTtlMs)).then(
      (extended) => this.#forgetIfLost(held, extended),
      () => {},
    );
    if (--held.left === 0) this.#letGo(held);
  }

  /** The shared timer's tick: renews every lease held, and stops when none is left. */
  #renew(): void {
    // From the end: a lease let go here takes the last one's place, which was renewed already.
    for (let at = this.#held.length - 1; at >= 0; at--) this.#extend(this.#held[at] as HeldLease);
    if (this.#held.length === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}
