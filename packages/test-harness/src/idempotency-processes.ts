/**
 * The idempotency engine and `runIdempotent` in several processes on one store's server, for
 * any store: each worker process has its own client, store and engine, and drives the engine as
 * an adapter does (./idempotency-workers.ts). The handler's side effect is counted where every
 * process sees it, so "ran once" is counted on the server, not believed from the replies.
 *
 * A store's test supplies only the mechanics: how its worker processes start, are asked and
 * are killed, how the side effects are counted, and a store of its own on the same key space.
 */

import { randomUUID } from "node:crypto";
import { DEFAULT_REPLAY_HEADERS, type InterlockStore, runIdempotent } from "@interlock/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BINARY,
  type EngineArgs,
  type EngineOutcome,
  type EngineReply,
  type HangArgs,
  type HangReply,
  RUN_FINGERPRINT,
  type RunArgs,
  type RunOutcome,
} from "./idempotency-workers.js";

/** One worker process, as the tests drive it. */
export interface IdempotencyWorker {
  engine(args: EngineArgs): Promise<EngineReply>;
  hang(args: HangArgs): Promise<HangReply>;
  run(args: RunArgs): Promise<RunOutcome[]>;
  /** SIGKILLs the process and waits for it to exit. */
  kill(): Promise<void>;
}

export interface IdempotencyProcessesOptions {
  /** Runs once before any worker starts (build the worker, create tables, …). */
  setup?: () => Promise<void>;
  /** Starts `count` workers on the tests' key space, ready for commands, named `${label}0`, `${label}1`, … */
  start(count: number, label: string): Promise<IdempotencyWorker[]>;
  /** Stops every worker started (and removes what `setup` made), after the tests. */
  stop(): Promise<void>;
  /** How many times a handler (or a run's work) started for `key`, counted where every process sees it. */
  effects(key: string): Promise<number>;
  /** A store in the test's own process on the workers' key space. */
  store(): InterlockStore | Promise<InterlockStore>;
}

const WORKERS = 4;
const REQUESTS = 50;
const HANDLER_MS = 80;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const newKey = () => `pay-${randomUUID()}`;
const bytes = (outcome: EngineOutcome) => new Uint8Array(Buffer.from(outcome.body, "base64"));
const response = (o: EngineOutcome) => ({ status: o.status, headers: o.headers, body: bytes(o) });

/** Sends requests `indices` of one key through `group`, request i from worker i mod n. */
async function sendAll(
  key: string,
  indices: number[],
  group: IdempotencyWorker[],
  options: Omit<EngineArgs, "key" | "indices">,
): Promise<EngineReply> {
  const replies = await Promise.all(
    group.map((worker, n) =>
      worker.engine({ key, indices: indices.filter((i) => i % group.length === n), ...options }),
    ),
  );
  const outcomes = replies.flatMap((r) => r.outcomes).sort((a, b) => a.index - b.index);
  expect(outcomes.filter((o) => o.error !== undefined)).toEqual([]);
  return { outcomes, events: replies.flatMap((r) => r.events) };
}

/** What every replay of `winner` must be: its status, its allow-listed headers and its body bytes, marked. */
function replayOf(winner: EngineOutcome) {
  const allowed = new Set(DEFAULT_REPLAY_HEADERS);
  const headers = winner.headers
    .map(([name, value]) => [name.toLowerCase(), value] as [string, string])
    .filter(([name]) => allowed.has(name));
  // The handler also sent Set-Cookie, X-Worker and Date: none of them is replayed.
  expect(headers.map(([name]) => name)).toEqual(["content-type", "location", "etag"]);
  return { status: 201, headers: [...headers, ["Idempotent-Replayed", "true"]], body: bytes(winner) };
}

/** A 409 for a request in flight, with Retry-After: 1 (ask again soon), whatever the lease. */
function expectInFlight(outcome: EngineOutcome) {
  expect(outcome).toMatchObject({ ran: false, replayed: false, status: 409 });
  expect(outcome.headers).toEqual([
    ["content-type", "application/problem+json"],
    ["retry-after", "1"],
  ]);
  expect(JSON.parse(new TextDecoder().decode(bytes(outcome)))).toMatchObject({
    code: "request_in_flight",
    status: 409,
  });
}

export function describeIdempotencyAcrossProcesses(name: string, options: IdempotencyProcessesOptions): void {
  let workers: IdempotencyWorker[] = [];

  beforeAll(async () => {
    await options.setup?.();
    workers = await options.start(WORKERS, "w");
  });
  afterAll(() => options.stop());

  describe(`idempotency engine in worker processes on ${name}`, () => {
    it(`${REQUESTS} requests with one key over ${WORKERS} processes: the handler runs once; the rest get 409 or the identical replay`, async () => {
      const key = newKey();
      // Request i starts i × 8 ms after the command: the first ones overlap the 80 ms handler
      // (409), the last ones come after it finished (replay).
      const { outcomes, events } = await sendAll(
        key,
        Array.from({ length: REQUESTS }, (_, i) => i),
        workers,
        { staggerMs: 8, handlerMs: HANDLER_MS, lockTtlMs: 10_000 },
      );
      expect(outcomes).toHaveLength(REQUESTS);
      const ran = outcomes.filter((o) => o.ran);
      expect(ran).toHaveLength(1);
      expect(await options.effects(key)).toBe(1);
      const winner = ran[0]!;
      expect(new TextDecoder().decode(bytes(winner).subarray(BINARY.length))).toBe(`paid by ${winner.worker}, run 1`);
      expect(events.filter((type) => type === "idempotency.completed")).toHaveLength(1);
      expect(events.filter((type) => type === "idempotency.not_recorded" || type === "idempotency.released")).toEqual(
        [],
      );

      const replay = replayOf(winner);
      const conflicts = outcomes.filter((o) => !o.ran && o.status === 409);
      const replays = outcomes.filter((o) => o.replayed);
      expect(conflicts.length + replays.length).toBe(REQUESTS - 1);
      for (const outcome of conflicts) expectInFlight(outcome);
      for (const outcome of replays) expect(response(outcome), `request ${outcome.index}`).toEqual(replay);
      // The overlap really crossed processes: another process's copy got the 409.
      expect(conflicts.filter((o) => o.worker !== winner.worker).length).toBeGreaterThan(0);

      // Later requests from every process get the same bytes again. (The wave above has replays
      // too when the handler ends before its last request, but a loaded machine may stretch the
      // handler past it: these show every process replaying whatever the timing.)
      const later = await sendAll(key, [0, 1, 2, 3], workers, { staggerMs: 0, handlerMs: 0, lockTtlMs: 10_000 });
      expect(new Set(later.outcomes.map((o) => o.worker)).size).toBe(WORKERS);
      for (const outcome of later.outcomes) expect(response(outcome)).toEqual(replay);
      expect(await options.effects(key)).toBe(1);
    });

    it("a worker SIGKILLed mid-handler: 409 for one lease, then a retry runs the handler exactly once", async () => {
      const key = newKey();
      const lockTtlMs = 1_000;
      const [doomed] = await options.start(1, "doomed");
      const sentAt = Date.now();
      expect(await doomed!.hang({ key, lockTtlMs })).toEqual({ action: "execute" });
      const begunAt = Date.now();
      await doomed!.kill();
      expect(await options.effects(key)).toBe(1);

      // The lease (from a claim made after `sentAt`) still holds: the key is in flight.
      const during = await sendAll(key, [0, 1, 2, 3], workers, { staggerMs: 0, handlerMs: 0, lockTtlMs });
      if (Date.now() < sentAt + lockTtlMs - 100) for (const outcome of during.outcomes) expectInFlight(outcome);

      // After it (the claim was made before `begunAt`), retries from every process at once.
      await sleep(Math.max(0, begunAt + lockTtlMs + 50 - Date.now()));
      const { outcomes } = await sendAll(
        key,
        Array.from({ length: 12 }, (_, i) => i),
        workers,
        { staggerMs: 0, handlerMs: HANDLER_MS, lockTtlMs },
      );
      const ran = outcomes.filter((o) => o.ran);
      expect(ran).toHaveLength(1);
      expect(await options.effects(key)).toBe(2); // the dead worker's start, and the one retry
      const replay = replayOf(ran[0]!);
      for (const outcome of outcomes.filter((o) => !o.ran)) {
        if (outcome.replayed) expect(response(outcome)).toEqual(replay);
        else expectInFlight(outcome);
      }
      const later = await sendAll(key, [0, 1, 2, 3], workers, { staggerMs: 0, handlerMs: 0, lockTtlMs });
      for (const outcome of later.outcomes) expect(response(outcome)).toEqual(replay);
      expect(await options.effects(key)).toBe(2);
    });
  });

  describe(`runIdempotent in worker processes on ${name}`, () => {
    const runAll = async (key: string, waitMs?: number) => {
      const args = {
        key,
        count: 3,
        workMs: HANDLER_MS,
        lockTtlMs: 10_000,
        ...(waitMs === undefined ? {} : { waitMs }),
      };
      return (await Promise.all(workers.map((worker) => worker.run(args)))).flat();
    };
    const ranNow = (outcomes: RunOutcome[]) => outcomes.filter((o) => "value" in o && !o.replayed);

    it(`${WORKERS} processes × 3 calls with one key: the work runs once; the others are refused as in flight`, async () => {
      const key = newKey();
      const outcomes = await runAll(key);
      const ran = ranNow(outcomes);
      expect(ran).toHaveLength(1);
      expect(ran[0]).toMatchObject({ recorded: true, value: { n: 1, text: "reçu 🔑" } });
      expect(await options.effects(key)).toBe(1);
      const value = (ran[0] as Extract<RunOutcome, { value: unknown }>).value;
      for (const outcome of outcomes.filter((o) => o !== ran[0])) {
        // All start together, so nearly all are refused; a straggler may already see the result.
        if ("error" in outcome) expect(outcome.error).toBe("request_in_flight");
        else expect(outcome).toMatchObject({ replayed: true, recorded: true, value });
      }
      expect(outcomes.filter((o) => "error" in o).length).toBeGreaterThan(0);
      // Any process, or this one, now gets the stored value without running the work.
      const store = await options.store();
      const again = await runIdempotent({ store, key, fingerprint: RUN_FINGERPRINT }, () => {
        throw new Error("must not run");
      });
      expect(again).toEqual({ value, replayed: true, recorded: true });
    });

    it("with `wait`, every other call gets the one run's value", async () => {
      const key = newKey();
      const outcomes = await runAll(key, 5_000);
      const ran = ranNow(outcomes);
      expect(ran).toHaveLength(1);
      expect(await options.effects(key)).toBe(1);
      const value = (ran[0] as Extract<RunOutcome, { value: unknown }>).value;
      expect(value).toMatchObject({ n: 1 });
      const others = outcomes.filter((o) => o !== ran[0]);
      expect(others).toHaveLength(WORKERS * 3 - 1);
      for (const outcome of others) expect(outcome).toMatchObject({ replayed: true, recorded: true, value });
    });
  });
}
