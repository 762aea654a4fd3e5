/**
 * The server's clock, as seen from here: for stores whose commands can run on the server after
 * their caller stopped waiting (a driver that queues commands while it reconnects, or resends
 * them on a new connection). `boundedStoreCall` tells the caller "unavailable" after its timeout,
 * but cannot take back a command already handed to the driver. A write that carries a deadline
 * on the server's clock, and refuses to act past it, cannot change anything after its caller was
 * told it failed.
 *
 * Only the server's clock can judge that deadline, so it is estimated from replies. A command
 * sent at local time `t0` runs at server time `S` no earlier than `t0` on the server's clock:
 * with θ the true offset (server − local), `S ≥ t0 + θ`, so `S − t0` is a sound upper bound on
 * θ, and the smallest among recent samples is the tightest. A deadline built on an upper bound is
 * never early for a caller that waited in vain: a refusal means the caller had given up. A bound
 * that is too large only lets a late write through, as if there were no deadline.
 *
 * Local time is monotonic (`monotonicClock`), never `Date.now()`, which jumps when the system
 * clock is set.
 */

import { monotonicClock } from "../clock.js";
import { StoreUnavailableError } from "../errors.js";
import { boundedStoreCall, positiveMs } from "./validate.js";

/**
 * Added to every deadline: the server's time comes in whole ms (truncated), and a timer may
 * fire up to 1 ms before its delay on the caller's side. Without it a refusal could come a
 * millisecond or two before the caller gave up.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export const DEADLINE_MARGIN_MS = 2;

/**
 * After how long a `ServerClock` takes any fresh sample by default: 15 s.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export const DEFAULT_REFRESH_AFTER_MS = 15_000;

/** How a `ServerClock` measures time and how often it refreshes its bound. */
export interface ServerClockOptions {
  /** Local monotonic ms. Default the process's start plus `performance.now()`; tests inject their own. */
  now?: () => number;
  /**
   * After how long, in ms, any fresh sample replaces the bound, even a looser one, so drift and
   * a failover's new clock are picked up. Default 15,000. The bound itself never expires, so a
   * store that is called rarely still sends deadlines: a bound grown too small meanwhile (the
   * server's clock moved ahead) costs at most a wrong refusal, which corrects it (`refused`).
   */
  refreshAfterMs?: number;
}

/**
 * An estimate of one server's clock, built from its replies: the deadline, on that clock, past
 * which a write must change nothing because its caller already gave up. For store authors, who
 * mostly need only `deadlineStoreCall`; by hand:
 *
 * ```ts
 * const sentAt = clock.now();
 * const notAfter = clock.deadline(sentAt, operationTimeoutMs); // undefined: no sample yet
 * const reply = await boundedStoreCall(name, "set", operationTimeoutMs, () => send(notAfter));
 * if (reply.late) clock.refused(sentAt, reply.serverMs); // and throw StoreUnavailableError
 * else clock.observe(sentAt, reply.serverMs);
 * ```
 *
 * Take `sentAt` before calling `boundedStoreCall` (its timer starts there). A "late" answer must
 * reach the caller as `StoreUnavailableError`: never as success, never as "another writer won".
 * One clock per server: on several servers (Redis Cluster nodes) whose clocks disagree, a node
 * ahead of the one that gave the bound gets an occasional wrong refusal (see `refused`), and a
 * node behind it gets deadlines late by the difference (a few ms with NTP).
 */
export class ServerClock {
  readonly #now: () => number;
  readonly #refreshAfter: number;
  /** The upper bound on server − local in use, or undefined without a sample. */
  #bound: number | undefined;
  /** Local time the bound was last confirmed (by an equal or smaller sample). */
  #takenAt = 0;
  /** After a refusal, the bound is not lowered before this local time (see `refused`). */
  #heldUntil = Number.NEGATIVE_INFINITY;

  constructor(options: ServerClockOptions = {}) {
    this.#now = options.now ?? monotonicClock();
    this.#refreshAfter = positiveMs("refreshAfterMs", options.refreshAfterMs, DEFAULT_REFRESH_AFTER_MS);
  }

  /** Local monotonic time: stamp a command with it before sending it. */
  now(): number {
    return this.#now();
  }

  /** The upper bound on (server − local) in ms, or undefined before the first sample. */
  offsetBound(): number | undefined {
    return this.#bound;
  }

  /**
   * The last server time (whole ms since the epoch) at which a command sent at local `sentAt`
   * and waited on for `timeoutMs` may still act; undefined before the first sample (no deadline).
   */
  deadline(sentAt: number, timeoutMs: number): number | undefined {
    const bound = this.offsetBound();
    return bound === undefined ? undefined : Math.ceil(sentAt + timeoutMs + bound) + DEADLINE_MARGIN_MS;
  }

  /** Records a reply to a command sent at local `sentAt` that carried the server's time `serverMs`. */
  observe(sentAt: number, serverMs: number): void {
    if (!Number.isFinite(serverMs) || !Number.isFinite(sentAt)) return;
    const sample = serverMs - sentAt;
    const now = this.#now();
    const stale = now - this.#takenAt > this.#refreshAfter;
    const lower = this.#bound === undefined || (sample <= this.#bound && now >= this.#heldUntil);
    if (lower || stale) {
      this.#bound = sample;
      this.#takenAt = now;
    }
  }

  /**
   * Records a "late" refusal whose reply reached the caller in time: proof that the bound was
   * too small for this server (a failover to a server whose clock is ahead, or a Cluster node
   * ahead of the one that gave the bound). The bound becomes this reply's own sample and is not
   * lowered for `refreshAfterMs`, so a skewed node costs at most one wrong refusal per period,
   * not one per sample from the other nodes.
   */
  refused(sentAt: number, serverMs: number): void {
    if (!Number.isFinite(serverMs) || !Number.isFinite(sentAt)) return;
    const now = this.#now();
    this.#bound = Math.max(this.#bound ?? Number.NEGATIVE_INFINITY, serverMs - sentAt);
    this.#takenAt = now;
    this.#heldUntil = now + this.#refreshAfter;
  }
}

/** What `deadlineStoreCall` needs from a reply: the server's time, and whether it refused as late. */
export interface ServerTimedReply {
  /** The server's time when it ran the command, in whole ms since the epoch (truncated). */
  serverMs: number;
  /** Whether the server refused to act because the command's deadline had passed. */
  late: boolean;
}

/**
 * What `deadlineStoreCall` sends first while its clock has no sample, so that the command never
 * goes without a deadline: a read on the command's key (on a cluster, the node that will judge
 * the deadline) that tells the server's time.
 */
export type TimeProbe<T> = () => PromiseLike<ProbeReply<T>>;

/** What a `TimeProbe` learnt. */
export interface ProbeReply<T> {
  /** The server's time when it ran the probe, in whole ms since the epoch (truncated). */
  serverMs: number;
  /** The call's answer, when the probe settles it by itself (a claim finding the key taken): the command is then not sent. */
  answer?: T;
}

/**
 * `boundedStoreCall` for a command that carries a deadline on the server's clock. `send` gets
 * the deadline (whole ms since the epoch on the server's clock) and sends the command; `timed`
 * reads the server's time and the late refusal from its reply. The reply teaches `clock`, and a
 * late refusal becomes a `StoreUnavailableError`. For store and token-store implementations.
 *
 * Before `clock`'s first sample there is no deadline to give. With `probe`, it is sent first,
 * and the command follows with a deadline from its sample, both within the one `timeoutMs`.
 * Without it `send` gets `undefined`, and the command acts whenever it runs: one queued by the
 * driver while the server was down at start-up could then act long after its caller was told
 * it failed. A probe answered after its caller gave up sends nothing, and its sample (which
 * counts the wait) is not taken.
 */
export async function deadlineStoreCall<T>(
  clock: ServerClock,
  call: { store: string; operation: string; timeoutMs: number },
  send: (notAfter: number | undefined) => PromiseLike<T>,
  timed: (reply: T) => ServerTimedReply,
  probe?: TimeProbe<T>,
): Promise<T> {
  const { store, operation, timeoutMs } = call;
  // Before boundedStoreCall starts its timer: the deadline must not be earlier than the caller's.
  const sentAt = clock.now();
  const notAfter = clock.deadline(sentAt, timeoutMs);
  let over = false;
  // timed() inside the bound: a reply it cannot read fails as unavailable, like any bad reply.
  const [reply, { serverMs, late }, at] = await boundedStoreCall(store, operation, timeoutMs, async () => {
    if (notAfter === undefined && probe !== undefined) {
      const probed = await probe();
      if (over || clock.now() - sentAt >= timeoutMs)
        throw new StoreUnavailableError(store, "the time probe answered after its caller gave up"); // nobody sees it
      if (probed.answer !== undefined)
        return [probed.answer, { serverMs: probed.serverMs, late: false }, sentAt] as const;
      clock.observe(sentAt, probed.serverMs);
      // The deadline counts from before the probe: the caller's wait began then.
      const deadline = clock.deadline(sentAt, timeoutMs);
      // A probe whose time the clock could not take (not a finite number) leaves no deadline:
      // the command is not sent without one.
      if (deadline === undefined) throw new StoreUnavailableError(store, "the time probe told no usable time");
      const resentAt = clock.now();
      const answer = await send(deadline);
      return [answer, timed(answer), resentAt] as const;
    }
    const answer = await send(notAfter);
    return [answer, timed(answer), sentAt] as const;
  }).finally(() => {
    over = true;
  });
  if (!late) {
    clock.observe(at, serverMs);
    return reply;
  }
  clock.refused(at, serverMs);
  throw new StoreUnavailableError(store, `${operation} reached the server after its ${timeoutMs} ms deadline`);
}
