/**
 * The store conformance suite. One call registers the whole contract's tests with vitest for
 * any store factory, so a store author proves their store the way Interlock proves its own:
 *
 * ```ts
 * import { describeStoreConformance } from "@interlock/core/testing";
 * describeStoreConformance("my store", {
 *   create: () => new MyStore(new Client(url), { prefix: randomPrefix() }),
 *   // A second app process: another instance on the same keys, with a connection of its own.
 *   sibling: (store) => new MyStore(new Client(url), { prefix: store.prefix }),
 * });
 * ```
 */

import { afterAll, describe, expect, it } from "vitest";
import type { ClaimResult, InterlockStore, StoredRecord, StoredResponse } from "../store/contract.js";
import { MAX_KEY_LENGTH } from "../store/validate.js";

/** What a store whose keys live in one process only passes as `sibling`, and why. */
export interface SingleProcessStore {
  /** Why no second instance can share its keys (an in-memory store): shown as the two-instance tests' skip reason. */
  singleProcess: string;
}

/** Bytes whose `slice()` is a view of the same memory, as a Node `Buffer`'s is. */
class ViewSlicing extends Uint8Array {
  override slice(start?: number, end?: number): Uint8Array<ArrayBuffer> {
    return this.subarray(start, end) as Uint8Array<ArrayBuffer>;
  }
}

/** How to make the stores the conformance suite tests. */
export interface StoreConformanceOptions<S extends InterlockStore = InterlockStore> {
  /** A fresh store whose keys no other test sees (a unique prefix, table or database). */
  create: () => S | Promise<S>;
  /**
   * Another instance of the store over the same backend and keys as `store` (one `create`
   * made), as a second app process would make it: its own client, connection or pool, the
   * same server and prefix, table or database. With it the suite checks what only shows
   * across instances: one winner among concurrent claims spread over both, tokens the other
   * instance never hands out too, a stale owner fenced off after the other instance took over
   * its lapsed lease, records and releases seen alike by both. It must not return `store`
   * itself.
   *
   * Required for the cross-process guarantee: without it the suite registers a test that
   * fails, saying how to give one. A store whose keys live in one process only (an in-memory
   * store) passes `{ singleProcess: "why" }` instead, and the suite reports the two-instance
   * tests as skipped, with that reason.
   */
  sibling?: ((store: S) => InterlockStore | Promise<InterlockStore>) | SingleProcessStore;
  /**
   * A store of the same kind whose server cannot be reached (a closed port, a stopped
   * server). Every operation must fail with `StoreUnavailableError` within `unavailableWithinMs`.
   * Omit only for stores without a server (in-process stores).
   */
  createUnavailable?: () => InterlockStore | Promise<InterlockStore>;
  /** Bound for an operation against an unreachable server. Default 5,000 ms. */
  unavailableWithinMs?: number;
  /** Concurrent claims of one key in the race test. Default 50. */
  concurrency?: number;
  /** Lease and retention used by the expiry tests. Default 300 ms. */
  shortTtlMs?: number;
  /**
   * A fresh store of the same kind on the clock the suite passes (ms since the epoch), for
   * stores that take one (the memory store's `now`). With it the suite also checks, to the
   * millisecond, when a lease and a retention end and the times a record carries. Omit it for
   * a store on a server's clock: those are checked against real time, within a few ms.
   */
  createOnClock?: (now: () => number) => InterlockStore | Promise<InterlockStore>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const LONG = 60_000;
/**
 * How far a store's clock may seem to run from this process's over a test: timestamps are
 * whole ms on both sides, and a server's clock is another clock.
 */
const CLOCK_SLACK_MS = 20;

function response(body: Uint8Array, headers: Array<[string, string]> = [["content-type", "application/json"]]) {
  return { status: 201, headers, body } satisfies StoredResponse;
}

const allBytes = () => Uint8Array.from({ length: 512 }, (_, i) => i % 256);

async function mustClaim(store: InterlockStore, key: string, fingerprint = "fp", lockTtlMs = LONG): Promise<string> {
  const result = await store.claim(key, { fingerprint, lockTtlMs });
  expect(result.state, `claim of ${key}`).toBe("claimed");
  return (result as Extract<ClaimResult, { state: "claimed" }>).token;
}

/** The record a completed key answers with. */
async function recordOf(store: InterlockStore, key: string): Promise<StoredRecord> {
  const result = await store.claim(key, { fingerprint: "reader", lockTtlMs: LONG });
  expect(result.state, `claim of ${key}`).toBe("completed");
  return (result as Extract<ClaimResult, { state: "completed" }>).record;
}

/** The in-flight answer for a key another caller holds. */
async function inFlight(store: InterlockStore, key: string): Promise<Extract<ClaimResult, { state: "in_flight" }>> {
  const result = await store.claim(key, { fingerprint: "reader", lockTtlMs: LONG });
  expect(result.state, `claim of ${key}`).toBe("in_flight");
  return result as Extract<ClaimResult, { state: "in_flight" }>;
}

/** Runs `task` over `items`, `size` at a time: thousands of operations without flooding a pool. */
async function inBatches<T, R>(items: T[], size: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  for (let start = 0; start < items.length; start += size) {
    const batch = items.slice(start, start + size);
    results.push(...(await Promise.all(batch.map((item, i) => task(item, start + i)))));
  }
  return results;
}

/** `count` concurrent claims of `key`: exactly one must win, and the others see its lock. */
async function raceFor(store: InterlockStore, key: string, count: number, fingerprint: string): Promise<string> {
  const results = await Promise.all(
    Array.from({ length: count }, () => store.claim(key, { fingerprint, lockTtlMs: LONG })),
  );
  const winners = results.filter((r) => r.state === "claimed");
  expect(winners, `winners of ${key}`).toHaveLength(1);
  for (const r of results.filter((x) => x.state !== "claimed"))
    expect(r).toMatchObject({ state: "in_flight", fingerprint });
  return (winners[0] as Extract<ClaimResult, { state: "claimed" }>).token;
}

/**
 * `count` concurrent claims of `key`, spread in turn over `instances`: exactly one must win,
 * and the others see its lock. Returns the winner's token and the instance that won.
 */
async function raceAcross(
  instances: InterlockStore[],
  key: string,
  count: number,
  fingerprint: string,
): Promise<{ token: string; store: InterlockStore }> {
  const results = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      instances[i % instances.length]!.claim(key, { fingerprint, lockTtlMs: LONG }),
    ),
  );
  const won = results.flatMap((r, i) => (r.state === "claimed" ? [`instance ${i % instances.length}`] : []));
  expect(won, `winners of ${key}, by instance`).toHaveLength(1);
  for (const r of results.filter((x) => x.state !== "claimed"))
    expect(r).toMatchObject({ state: "in_flight", fingerprint });
  const winner = results.findIndex((r) => r.state === "claimed");
  const { token } = results[winner] as Extract<ClaimResult, { state: "claimed" }>;
  return { token, store: instances[winner % instances.length]! };
}

/** Why the suite cannot check a store across instances, told in the test it registers in their place. */
function missingSibling(name: string, given: unknown): string {
  const what =
    given === undefined
      ? "no `sibling` option was given"
      : `\`sibling\` is neither a function nor { singleProcess: "<a reason>" } (got ${JSON.stringify(given)})`;
  return (
    `describeStoreConformance("${name}"): ${what}, so nothing checked that two instances of this store on one ` +
    "backend (two app processes on one server, prefix or table) keep the contract: one winner per claim, " +
    "tokens no other instance hands out, a stale owner fenced off after a takeover, records read alike. " +
    "Pass `sibling: (store) => another instance over the same backend and keys as store, with its own " +
    "connection or pool` (e.g. `(store) => new MyStore(new Client(url), { prefix: store.prefix })`). " +
    'A store whose keys live in one process only passes `sibling: { singleProcess: "why" }` instead.'
  );
}

/**
 * Registers the store contract's tests with vitest: claim races, fencing, leases, retention,
 * a record's times, record limits, copies, many keys, unusual keys, (with `sibling`) the same
 * across two instances over one backend, (with `createOnClock`) the exact millisecond leases
 * and retention end, and (with `createUnavailable`) failure with `StoreUnavailableError`
 * against an unreachable server.
 */
export function describeStoreConformance<S extends InterlockStore>(
  name: string,
  options: StoreConformanceOptions<S>,
): void {
  const concurrency = options.concurrency ?? 50;
  const shortTtl = options.shortTtlMs ?? 300;
  const stores: InterlockStore[] = [];
  const fresh = async () => {
    const store = await options.create();
    stores.push(store);
    return store;
  };
  let unique = 0;
  const key = (label: string) => `conformance:${label}:${Date.now().toString(36)}:${++unique}`;

  describe(`store conformance: ${name}`, () => {
    afterAll(async () => {
      await Promise.all(stores.map((store) => store.close?.()));
    });

    describe("claim", () => {
      it(`exactly one of ${concurrency} concurrent claims wins; the others see it in flight`, async () => {
        const store = await fresh();
        const k = key("race");
        const results = await Promise.all(
          Array.from({ length: concurrency }, () => store.claim(k, { fingerprint: "fp-race", lockTtlMs: LONG })),
        );
        const winners = results.filter((r) => r.state === "claimed");
        expect(winners).toHaveLength(1);
        for (const r of results.filter((x) => x.state !== "claimed")) {
          expect(r).toMatchObject({ state: "in_flight", fingerprint: "fp-race" });
        }
      });

      it("many keys raced at once: one winner per key", async () => {
        const store = await fresh();
        const keys = Array.from({ length: 20 }, (_, i) => key(`multi-${i}`));
        const results = await Promise.all(
          keys.flatMap((k) => Array.from({ length: 5 }, () => store.claim(k, { fingerprint: "f", lockTtlMs: LONG }))),
        );
        for (let i = 0; i < keys.length; i++) {
          expect(results.slice(i * 5, i * 5 + 5).filter((r) => r.state === "claimed")).toHaveLength(1);
        }
      });

      it("tokens are unique per winning claim", async () => {
        const store = await fresh();
        const k = key("tokens");
        const first = await mustClaim(store, k);
        expect(await store.release(k, first)).toBe(true);
        const second = await mustClaim(store, k);
        expect(second).not.toBe(first);
      });
    });

    describe("complete and replay", () => {
      it("a completed key answers completed with the record, to every later claim", async () => {
        const store = await fresh();
        const k = key("complete");
        const token = await mustClaim(store, k, "fp-1");
        const before = Date.now();
        expect(await store.complete(k, token, response(allBytes()), { ttlMs: LONG })).toBe(true);
        for (const fingerprint of ["fp-1", "another"]) {
          const result = await store.claim(k, { fingerprint, lockTtlMs: LONG });
          expect(result.state).toBe("completed");
          const { record } = result as Extract<ClaimResult, { state: "completed" }>;
          expect(record.status).toBe(201);
          expect(record.fingerprint).toBe("fp-1");
          expect(Array.from(record.body)).toEqual(Array.from(allBytes()));
          expect(record.headers).toEqual([["content-type", "application/json"]]);
          expect(record.completedAt).toBeGreaterThanOrEqual(record.createdAt);
          expect(Math.abs(record.completedAt - before)).toBeLessThan(10_000);
        }
      });

      it("round-trips many headers, repeated names, order and empty bodies", async () => {
        const store = await fresh();
        const k = key("headers");
        const headers: Array<[string, string]> = Array.from({ length: 60 }, (_, i) => [`x-h-${i % 30}`, `v${i} ;=,"`]);
        headers.push(["etag", '"abc"'], ["location", "/payments/1"], ["X-Mixed-Case", "Ünïcödé ✓ 🔑"], ["x-empty", ""]);
        headers.push(["Content-Type", "text/plain"], ["content-type", "application/json"]);
        const token = await mustClaim(store, k);
        await store.complete(k, token, { status: 200, headers, body: new Uint8Array() }, { ttlMs: LONG });
        const result = await store.claim(k, { fingerprint: "fp", lockTtlMs: LONG });
        const { record } = result as Extract<ClaimResult, { state: "completed" }>;
        expect(record.headers).toEqual(headers);
        expect(record.body.length).toBe(0);
      });

      it("stores a record exactly at maxRecordBytes and refuses a larger one", async () => {
        const store = await fresh();
        const headers: Array<[string, string]> = [["a", "b"]];
        const fits = new Uint8Array(store.maxRecordBytes - 2).fill(7);
        const k1 = key("large-ok");
        const t1 = await mustClaim(store, k1);
        expect(await store.complete(k1, t1, { status: 200, headers, body: fits }, { ttlMs: LONG })).toBe(true);
        const result = await store.claim(k1, { fingerprint: "fp", lockTtlMs: LONG });
        expect((result as Extract<ClaimResult, { state: "completed" }>).record.body.length).toBe(fits.length);
        const k2 = key("large-refused");
        const t2 = await mustClaim(store, k2);
        const tooBig = new Uint8Array(store.maxRecordBytes - 1);
        await expect(
          store.complete(k2, t2, { status: 200, headers, body: tooBig }, { ttlMs: LONG }),
        ).rejects.toMatchObject({ name: "RecordTooLargeError", code: "record_too_large" });
        // The refused record left the lock in place: the owner can still release it.
        expect(await store.release(k2, t2)).toBe(true);
      });

      it("sizes header text in UTF-8 bytes: non-ASCII headers exactly at maxRecordBytes fit, one byte more does not", async () => {
        const store = await fresh();
        // Latin-1 letters (2 bytes each in UTF-8), a percent-encoded filename*, and an emoji (4
        // bytes, 2 UTF-16 code units): a store counting code units would take the record as smaller.
        const headers: Array<[string, string]> = [
          ["content-disposition", `attachment; filename="résumé déjà vu.pdf"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf`],
          ["content-language", "de-CH"],
          ["x-note", "Grüße aus Zürich 🔑"],
        ];
        const encoder = new TextEncoder();
        let headerBytes = 0;
        for (const [name, value] of headers) headerBytes += encoder.encode(name).length + encoder.encode(value).length;
        const fits = new Uint8Array(store.maxRecordBytes - headerBytes).fill(1);
        const k1 = key("utf8-at-limit");
        const t1 = await mustClaim(store, k1);
        expect(await store.complete(k1, t1, { status: 200, headers, body: fits }, { ttlMs: LONG })).toBe(true);
        const record = await recordOf(store, k1);
        expect([record.headers, record.body.length]).toEqual([headers, fits.length]);
        const k2 = key("utf8-over-limit");
        const t2 = await mustClaim(store, k2);
        const oneOver = new Uint8Array(fits.length + 1).fill(1);
        await expect(
          store.complete(k2, t2, { status: 200, headers, body: oneOver }, { ttlMs: LONG }),
        ).rejects.toMatchObject({ name: "RecordTooLargeError", code: "record_too_large" });
        expect(await store.release(k2, t2)).toBe(true);
      });

      it("refuses a lease, retention or fingerprint no store can keep, on every operation, and the lock stays with its owner", async () => {
        const store = await fresh();
        const k = key("bad-options");
        const refused = { name: "InterlockConfigError", code: "invalid_configuration" };
        // A NaN lease would end at once (no time is later than NaN); 1.5 ms is not a whole ms.
        const badMs = [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, "60000" as unknown as number];
        for (const ms of badMs) {
          await expect(
            store.claim(k, { fingerprint: "fp", lockTtlMs: ms }),
            `claim, lease ${ms}`,
          ).rejects.toMatchObject(refused);
        }
        // A lone surrogate has no UTF-8 form, and NUL no place in PostgreSQL text.
        for (const fingerprint of ["\uD800", "a\u0000b"]) {
          await expect(
            store.claim(k, { fingerprint, lockTtlMs: LONG }),
            JSON.stringify(fingerprint),
          ).rejects.toMatchObject(refused);
        }
        const token = await mustClaim(store, k, "fp");
        for (const ms of badMs) {
          await expect(store.extend(k, token, ms), `extend, lease ${ms}`).rejects.toMatchObject(refused);
          const completing = store.complete(k, token, response(new Uint8Array([1])), { ttlMs: ms });
          await expect(completing, `complete, retention ${ms}`).rejects.toMatchObject(refused);
        }
        expect(await inFlight(store, k)).toMatchObject({ fingerprint: "fp" });
        expect(await store.complete(k, token, response(new Uint8Array([2])), { ttlMs: LONG })).toBe(true);
        expect(Array.from((await recordOf(store, k)).body)).toEqual([2]);
      });

      it("refuses a status that is not three digits, and the lock stays with its owner", async () => {
        const store = await fresh();
        const k = key("bad-status");
        const token = await mustClaim(store, k);
        // 2^31 is past a 32-bit integer column; 99 and 1000 are no HTTP status (RFC 9110 §15).
        for (const status of [0, 99, 1000, 2 ** 31, 200.5, Number.NaN, "200" as unknown as number]) {
          await expect(
            store.complete(k, token, { status, headers: [], body: new Uint8Array() }, { ttlMs: LONG }),
            String(status),
          ).rejects.toMatchObject({ name: "InterlockConfigError", code: "invalid_configuration" });
        }
        expect(await store.claim(k, { fingerprint: "x", lockTtlMs: LONG })).toMatchObject({ state: "in_flight" });
        expect(await store.complete(k, token, response(new Uint8Array([1])), { ttlMs: LONG })).toBe(true);
      });

      it("refuses header pairs that are not two strings or hold text no store keeps, and the lock stays with its owner", async () => {
        const store = await fresh();
        const k = key("bad-headers");
        const token = await mustClaim(store, k);
        // NUL has no place in PostgreSQL text, a lone surrogate no UTF-8 form: refused by every store alike.
        const unstorable = [[["x-a", "a\u0000b"]], [["x-\uD800", "v"]], [["x-a", "v\uDC00"]]];
        for (const headers of [[["content-length", 5]], [["etag"]], [["a", "b", "c"]], ["a"], [null], ...unstorable]) {
          await expect(
            store.complete(
              k,
              token,
              { status: 200, headers: headers as never, body: new Uint8Array() },
              { ttlMs: LONG },
            ),
            JSON.stringify(headers),
          ).rejects.toMatchObject({ name: "InterlockConfigError", code: "invalid_configuration" });
        }
        expect(await store.claim(k, { fingerprint: "x", lockTtlMs: LONG })).toMatchObject({ state: "in_flight" });
        expect(await store.complete(k, token, response(new Uint8Array([1])), { ttlMs: LONG })).toBe(true);
      });

      it("keeps its own copies: of the body and headers it was given, and of those it hands out", async () => {
        const store = await fresh();
        // Also bytes whose `slice()` is a view, not a copy, as on Node's buffers (what most body
        // readers hand over): a store copying with `slice()` would keep the caller's memory.
        const kinds = ["Uint8Array", "a Uint8Array whose slice() is a view"] as const;
        for (const [size, kind] of [3, 1_000].flatMap((size) => kinds.map((kind) => [size, kind] as const))) {
          const k = key(`copy-${size}-${kind === "Uint8Array" ? "plain" : "view"}`);
          const bytes = Uint8Array.from({ length: size }, (_, i) => i % 251);
          const body = kind === "Uint8Array" ? bytes : new ViewSlicing(bytes);
          const headers: Array<[string, string]> = [["content-type", "application/json"]];
          const token = await mustClaim(store, k);
          await store.complete(k, token, response(body, headers), { ttlMs: LONG });
          body.fill(99);
          headers[0]![1] = "text/html";
          headers.push(["x-added", "later"]);
          const handedOut = await recordOf(store, k);
          handedOut.body.fill(98);
          (handedOut.headers as Array<[string, string]>)[0]![1] = "text/css";
          (handedOut.headers as Array<[string, string]>).push(["x-added", "by reader"]);
          const record = await recordOf(store, k);
          expect(Array.from(record.body), `${size} bytes, a ${kind}`).toEqual(
            Array.from({ length: size }, (_, i) => i % 251),
          );
          expect(record.headers).toEqual([["content-type", "application/json"]]);
        }
      });

      it("a record carries when it was claimed and completed, and a lease when it ends, on the store's clock", async () => {
        const store = await fresh();
        const k = key("times");
        const beforeClaim = Date.now();
        const token = await mustClaim(store, k);
        const claimed = Date.now();
        const first = await inFlight(store, k);
        await sleep(200);
        const beforeExtend = Date.now();
        expect(await store.extend(k, token, LONG)).toBe(true);
        const extended = Date.now();
        const second = await inFlight(store, k);
        const beforeComplete = Date.now();
        expect(await store.complete(k, token, response(new Uint8Array([1])), { ttlMs: LONG })).toBe(true);
        const completed = Date.now();
        const { createdAt, completedAt } = await recordOf(store, k);
        // The store's clock need not read as this process's does, but both see the same time pass.
        const elapsed = completedAt - createdAt;
        expect(elapsed, "completedAt - createdAt").toBeGreaterThanOrEqual(beforeComplete - claimed - CLOCK_SLACK_MS);
        expect(elapsed, "completedAt - createdAt").toBeLessThanOrEqual(completed - beforeClaim + CLOCK_SLACK_MS);
        // A store that reports when a lease ends: the claim's lease, then the extended one, from when it was extended.
        if (first.lockExpiresAt !== undefined) {
          expect(first.lockExpiresAt - createdAt, "lease after the claim").toBeGreaterThanOrEqual(
            LONG - CLOCK_SLACK_MS,
          );
          expect(first.lockExpiresAt - createdAt, "lease after the claim").toBeLessThanOrEqual(LONG + CLOCK_SLACK_MS);
        }
        if (second.lockExpiresAt !== undefined) {
          const lease = second.lockExpiresAt - createdAt;
          expect(lease, "lease after extend").toBeGreaterThanOrEqual(LONG + beforeExtend - claimed - CLOCK_SLACK_MS);
          expect(lease, "lease after extend").toBeLessThanOrEqual(LONG + extended - beforeClaim + CLOCK_SLACK_MS);
        }
      });

      it("holds many keys at once, each with its own lock or record", async () => {
        const store = await fresh();
        const base = key("many");
        const keys = Array.from({ length: 1_200 }, (_, i) => `${base}:${i}`);
        // Every third key is released, every third completed, every third left locked, interleaved.
        const sizes = [0, 1, 127, 128, 129, 300, 4_096];
        const bodyOf = (i: number) => Uint8Array.from({ length: sizes[i % sizes.length]! }, (_, j) => (i + j) % 256);
        // Same names, values of the same length: nothing but the value tells one record's headers from another's.
        const headersOf = (i: number): Array<[string, string]> =>
          i % 9 === 1
            ? []
            : [
                ["content-type", "text/plain"],
                ["x-n", String(i).padStart(5, "0")],
              ];
        await inBatches(keys, concurrency, async (k, i) => {
          const token = await mustClaim(store, k, `fp-${i}`);
          if (i % 3 === 0) expect(await store.release(k, token)).toBe(true);
          else if (i % 3 === 1) {
            const stored = { status: 200 + (i % 100), headers: headersOf(i), body: bodyOf(i) };
            expect(await store.complete(k, token, stored, { ttlMs: LONG })).toBe(true);
          }
        });
        const answers = await inBatches(keys, concurrency, (k) =>
          store.claim(k, { fingerprint: "reader", lockTtlMs: LONG }),
        );
        const wrong: string[] = [];
        answers.forEach((answer, i) => {
          const expected =
            i % 3 === 0
              ? { state: "claimed" }
              : i % 3 === 1
                ? {
                    state: "completed",
                    status: 200 + (i % 100),
                    fingerprint: `fp-${i}`,
                    headers: headersOf(i),
                    body: Array.from(bodyOf(i)),
                  }
                : { state: "in_flight", fingerprint: `fp-${i}` };
          const actual =
            answer.state === "completed"
              ? {
                  state: answer.state,
                  status: answer.record.status,
                  fingerprint: answer.record.fingerprint,
                  headers: answer.record.headers,
                  body: Array.from(answer.record.body),
                }
              : answer.state === "in_flight"
                ? { state: answer.state, fingerprint: answer.fingerprint }
                : { state: answer.state };
          if (JSON.stringify(actual) !== JSON.stringify(expected)) {
            wrong.push(
              `key ${i}: expected ${JSON.stringify(expected).slice(0, 200)}, got ${JSON.stringify(actual).slice(0, 200)}`,
            );
          }
        });
        expect(wrong.slice(0, 5), `${wrong.length} keys answered wrongly`).toEqual([]);
      });
    });

    describe("fencing", () => {
      it("a stale token can neither complete, release nor extend", async () => {
        const store = await fresh();
        const k = key("fencing");
        const stale = await mustClaim(store, k, "fp", shortTtl);
        await sleep(shortTtl + 150);
        const current = await mustClaim(store, k, "fp-2");
        expect(await store.complete(k, stale, response(new Uint8Array([1])), { ttlMs: LONG })).toBe(false);
        expect(await store.release(k, stale)).toBe(false);
        expect(await store.extend(k, stale, LONG)).toBe(false);
        expect(await store.claim(k, { fingerprint: "x", lockTtlMs: LONG })).toMatchObject({
          state: "in_flight",
          fingerprint: "fp-2",
        });
        expect(await store.complete(k, current, response(new Uint8Array([2])), { ttlMs: LONG })).toBe(true);
        const result = await store.claim(k, { fingerprint: "x", lockTtlMs: LONG });
        expect(Array.from((result as Extract<ClaimResult, { state: "completed" }>).record.body)).toEqual([2]);
      });

      it("a token whose lease ended cannot complete, release or extend, even if nobody re-claimed", async () => {
        const store = await fresh();
        const k = key("lapsed");
        const token = await mustClaim(store, k, "fp", shortTtl);
        await sleep(shortTtl + 150);
        expect(await store.extend(k, token, LONG)).toBe(false);
        expect(await store.release(k, token)).toBe(false);
        expect(await store.complete(k, token, response(new Uint8Array([1])), { ttlMs: LONG })).toBe(false);
        // The key taken over is the new claim's alone: its fingerprint, its times.
        const beforeClaim = Date.now();
        const next = await mustClaim(store, k, "fp-next");
        expect(await store.claim(k, { fingerprint: "x", lockTtlMs: LONG })).toMatchObject({
          state: "in_flight",
          fingerprint: "fp-next",
        });
        expect(await store.complete(k, next, response(new Uint8Array([2])), { ttlMs: LONG })).toBe(true);
        const completed = Date.now();
        const record = await recordOf(store, k);
        expect(record.fingerprint).toBe("fp-next");
        expect(record.completedAt - record.createdAt, "createdAt is the new claim's").toBeLessThanOrEqual(
          completed - beforeClaim + CLOCK_SLACK_MS,
        );
      });

      it("a token holds its own key only", async () => {
        const store = await fresh();
        const [a, b] = [key("own-a"), key("own-b")];
        const tokenA = await mustClaim(store, a, "fp-a");
        const tokenB = await mustClaim(store, b, "fp-b");
        expect(await store.complete(b, tokenA, response(new Uint8Array([1])), { ttlMs: LONG })).toBe(false);
        expect(await store.extend(b, tokenA, LONG)).toBe(false);
        expect(await store.release(b, tokenA)).toBe(false);
        expect(await store.release(a, tokenB)).toBe(false);
        expect(await inFlight(store, a)).toMatchObject({ fingerprint: "fp-a" });
        expect(await inFlight(store, b)).toMatchObject({ fingerprint: "fp-b" });
        expect(await store.complete(a, tokenA, response(new Uint8Array([1])), { ttlMs: LONG })).toBe(true);
        expect(await inFlight(store, b)).toMatchObject({ fingerprint: "fp-b" });
        expect(await store.complete(b, tokenB, response(new Uint8Array([2])), { ttlMs: LONG })).toBe(true);
        expect(Array.from((await recordOf(store, a)).body)).toEqual([1]);
        expect(Array.from((await recordOf(store, b)).body)).toEqual([2]);
      });

      it("of concurrent completes and releases with one token, exactly one succeeds", async () => {
        const store = await fresh();
        for (const round of [0, 1, 2]) {
          const k = key(`settle-${round}`);
          const token = await mustClaim(store, k);
          const settled = await Promise.all(
            Array.from({ length: 20 }, (_, i) =>
              i % 2 === round % 2
                ? store.complete(k, token, response(new Uint8Array([i])), { ttlMs: LONG })
                : store.release(k, token),
            ),
          );
          expect(settled.filter(Boolean), `round ${round}`).toHaveLength(1);
          const winner = settled.indexOf(true);
          const after = await store.claim(k, { fingerprint: "next", lockTtlMs: LONG });
          if (winner % 2 === round % 2) {
            expect(after.state).toBe("completed");
            expect(Array.from((after as Extract<ClaimResult, { state: "completed" }>).record.body)).toEqual([winner]);
          } else {
            expect(after.state).toBe("claimed");
          }
        }
      });

      it("an unknown token or key is refused, and a completed key cannot be released", async () => {
        const store = await fresh();
        const k = key("unknown");
        expect(await store.complete(k, "no-such-token", response(new Uint8Array()), { ttlMs: LONG })).toBe(false);
        expect(await store.release(k, "no-such-token")).toBe(false);
        const token = await mustClaim(store, k);
        expect(await store.release(k, `${token}x`)).toBe(false);
        expect(await store.complete(k, token, response(new Uint8Array()), { ttlMs: LONG })).toBe(true);
        expect(await store.release(k, token)).toBe(false);
        expect(await store.complete(k, token, response(new Uint8Array([9])), { ttlMs: LONG })).toBe(false);
      });

      it("a completed key is settled: neither its own token nor an empty one can extend, release or complete it", async () => {
        const store = await fresh();
        const k = key("settled");
        const token = await mustClaim(store, k);
        expect(await store.complete(k, token, response(new Uint8Array([1])), { ttlMs: shortTtl })).toBe(true);
        // A store may keep the winning token beside the record, or blank it: neither may act.
        for (const spent of [token, ""]) {
          const label = spent === "" ? "empty token" : "its token";
          expect(await store.extend(k, spent, LONG), `extend with ${label}`).toBe(false);
          expect(await store.release(k, spent), `release with ${label}`).toBe(false);
          const again = response(new Uint8Array([2]));
          expect(await store.complete(k, spent, again, { ttlMs: LONG }), `complete with ${label}`).toBe(false);
        }
        expect(Array.from((await recordOf(store, k)).body)).toEqual([1]);
        // Still the retention it completed with: no extend took hold of the record.
        await sleep(shortTtl + 150);
        await mustClaim(store, k, "fp-next");
      });
    });

    describe("expiry", () => {
      it("a lock whose lease ran out can be claimed by another caller", async () => {
        const store = await fresh();
        const k = key("lease");
        await mustClaim(store, k, "fp", shortTtl);
        expect((await store.claim(k, { fingerprint: "fp", lockTtlMs: LONG })).state).toBe("in_flight");
        await sleep(shortTtl + 150);
        await raceFor(store, k, concurrency, "fp-next");
      });

      it("extend keeps a lock past its first lease, until the extended one ends", async () => {
        const store = await fresh();
        const [k, lapsing] = [key("extend"), key("extend-lapsing")];
        const token = await mustClaim(store, k, "fp", shortTtl);
        const other = await mustClaim(store, lapsing, "fp", shortTtl);
        // Each extended well past the first lease, so a loaded machine that stalls the checks
        // below still makes them inside it: `k` for long, `lapsing` by a few leases (it lapses).
        expect(await store.extend(k, token, shortTtl * 10)).toBe(true);
        expect(await store.extend(lapsing, other, shortTtl * 4)).toBe(true);
        await sleep(shortTtl + 150);
        expect((await store.claim(k, { fingerprint: "fp", lockTtlMs: LONG })).state).toBe("in_flight");
        expect((await store.claim(lapsing, { fingerprint: "fp", lockTtlMs: LONG })).state).toBe("in_flight");
        expect(await store.complete(k, token, response(new Uint8Array()), { ttlMs: LONG })).toBe(true);
        await sleep(shortTtl * 3);
        expect(await store.complete(lapsing, other, response(new Uint8Array()), { ttlMs: LONG })).toBe(false);
        await mustClaim(store, lapsing, "fp-next");
      });

      it("a record expires after its retention", async () => {
        const store = await fresh();
        const k = key("retention");
        const token = await mustClaim(store, k);
        await store.complete(k, token, response(new Uint8Array([1])), { ttlMs: shortTtl });
        expect((await store.claim(k, { fingerprint: "fp", lockTtlMs: LONG })).state).toBe("completed");
        await sleep(shortTtl + 150);
        await raceFor(store, k, concurrency, "fp-next");
      });

      it("keeps leases and records longer than a timer or a 32-bit count can hold", async () => {
        const store = await fresh();
        // 2^31 ms is the first delay a timer cannot hold (Node fires it after 1 ms); 2^32 is 0 in 32 bits.
        const [lease, kept] = [key("long-lease"), key("long-record")];
        const leaseToken = await mustClaim(store, lease, "fp", 2 ** 31);
        expect(await store.extend(lease, leaseToken, 2 ** 32)).toBe(true);
        const keptToken = await mustClaim(store, kept, "fp", 2 ** 32);
        expect(await store.complete(kept, keptToken, response(new Uint8Array([1])), { ttlMs: 2 ** 32 })).toBe(true);
        await sleep(50);
        expect(await inFlight(store, lease)).toMatchObject({ fingerprint: "fp" });
        expect(Array.from((await recordOf(store, kept)).body)).toEqual([1]);
        expect(await store.release(lease, leaseToken)).toBe(true);
      });

      it("a released key can be claimed again at once, and the released token is spent", async () => {
        const store = await fresh();
        const k = key("release");
        const token = await mustClaim(store, k);
        expect(await store.release(k, token)).toBe(true);
        expect(await store.release(k, token)).toBe(false);
        expect(await store.extend(k, token, LONG)).toBe(false);
        expect(await store.complete(k, token, response(new Uint8Array([1])), { ttlMs: LONG })).toBe(false);
        const next = await raceFor(store, k, concurrency, "fp-next");
        expect(next).not.toBe(token);
        expect(await store.complete(k, token, response(new Uint8Array([1])), { ttlMs: LONG })).toBe(false);
      });
    });

    describe("keys", () => {
      it(`accepts unicode keys and keys of ${MAX_KEY_LENGTH} characters, and keeps similar keys apart`, async () => {
        const store = await fresh();
        const base = key("keys");
        const longest = `${base}:`.padEnd(MAX_KEY_LENGTH - 1, "k");
        const keys = [
          `${base}:${"k".repeat(255)}`,
          `${longest}a`, // the longest keys, apart by their last character
          `${longest}b`,
          // 4 bytes of UTF-8 for every 2 characters (a pair of surrogates is never cut).
          `${base}:${"🔑".repeat((MAX_KEY_LENGTH - base.length - 1) >> 1)}`.padEnd(MAX_KEY_LENGTH, "k"),
          `${base}:{tag}:y`,
          `${base}:%7Btag%7D:y`, // what an escaped brace might look like
          `${base}:ключ-🔑-鍵`,
          `${base}:é`, // precomposed
          `${base}:e\u0301`, // decomposed: a different key
          `${base}:A`,
          `${base}:a`,
          `${base}:{tag}:x`,
          `${base}:*?[]\\%_'"`,
        ];
        for (const [i, k] of keys.entries()) await mustClaim(store, k, `fp ${i} ✓ ü`);
        for (const [i, k] of keys.entries())
          expect(await inFlight(store, k), k).toMatchObject({ fingerprint: `fp ${i} ✓ ü` });
      });
    });

    describe("two instances on one backend", () => {
      const sibling: unknown = options.sibling;
      if (typeof sibling !== "function") {
        const reason = (sibling as { singleProcess?: unknown } | null | undefined)?.singleProcess;
        if (typeof sibling === "object" && typeof reason === "string" && reason.trim() !== "") {
          it.skip(`not run: a single-process store (${reason})`, () => {});
        } else {
          it("needs `sibling`: another instance on the same backend, or { singleProcess: reason }", () => {
            throw new Error(missingSibling(name, sibling));
          });
        }
        return;
      }
      const makeSibling = sibling as (store: S) => InterlockStore | Promise<InterlockStore>;
      /** A fresh store, and another instance on its backend: two app processes. */
      const twoInstances = async (): Promise<[InterlockStore, InterlockStore]> => {
        const a = await fresh();
        const b = await makeSibling(a);
        if (b !== a) stores.push(b);
        expect(
          b === a,
          "sibling(store) returned the store itself: give another instance (its own connection or pool), " +
            'or { singleProcess: "why" } for a store whose keys live in one process',
        ).toBe(false);
        return [a, b];
      };

      it(`exactly one of ${concurrency} concurrent claims spread over both instances wins, for a new key and a released one`, async () => {
        const [a, b] = await twoInstances();
        const k = key("cross-race");
        const first = await raceAcross([a, b], k, concurrency, "fp-race");
        expect(await first.store.release(k, first.token)).toBe(true);
        const second = await raceAcross([b, a], k, concurrency, "fp-again");
        expect(second.token, "the second winner's token").not.toBe(first.token);
      });

      it("many keys raced over both instances at once: one winner per key", async () => {
        const [a, b] = await twoInstances();
        const keys = Array.from({ length: 20 }, (_, i) => key(`cross-multi-${i}`));
        await Promise.all(keys.map((k) => raceAcross([a, b], k, 6, "f")));
      });

      it("the two instances never hand out the same token: one key claimed in turn, many keys at once", async () => {
        const [a, b] = await twoInstances();
        const tokens: Array<{ token: string; from: string }> = [];
        // One key, claimed and released in turn on each instance: a token repeated here would let
        // an earlier owner act on a later one's lock.
        const k = key("cross-tokens");
        for (let round = 0; round < 10; round++) {
          const [store, from] = round % 2 === 0 ? [a, "A"] : [b, "B"];
          const token = await mustClaim(store, k);
          tokens.push({ token, from: `${from}, ${k} round ${round}` });
          expect(await store.release(k, token)).toBe(true);
        }
        const keys = Array.from({ length: 40 }, (_, i) => key(`cross-tokens-${i}`));
        const many = await inBatches(keys, concurrency, (each, i) => mustClaim(i % 2 === 0 ? a : b, each));
        many.forEach((token, i) => {
          tokens.push({ token, from: `${i % 2 === 0 ? "A" : "B"}, ${keys[i]}` });
        });
        const seen = new Map<string, string>();
        const repeated: string[] = [];
        for (const { token, from } of tokens) {
          const before = seen.get(token);
          if (before !== undefined) repeated.push(`token ${JSON.stringify(token)}: ${before}, and again ${from}`);
          else seen.set(token, from);
        }
        expect(repeated.slice(0, 5), `${repeated.length} tokens handed out twice`).toEqual([]);
      });

      it("after A's lease ran out and B took the key, A's token can neither complete, release nor extend, on either instance", async () => {
        const [a, b] = await twoInstances();
        const k = key("cross-fencing");
        const stale = await mustClaim(a, k, "fp-a", shortTtl);
        expect(await inFlight(b, k)).toMatchObject({ fingerprint: "fp-a" });
        await sleep(shortTtl + 150);
        const current = await mustClaim(b, k, "fp-b");
        expect(current, "B's token, which must not be A's stale one").not.toBe(stale);
        for (const [label, store] of [
          ["on A", a],
          ["on B", b],
        ] as const) {
          const late = response(new Uint8Array([1]));
          expect(await store.complete(k, stale, late, { ttlMs: LONG }), `A's late complete ${label}`).toBe(false);
          expect(await store.release(k, stale), `A's late release ${label}`).toBe(false);
          expect(await store.extend(k, stale, LONG), `A's late extend ${label}`).toBe(false);
        }
        // B's lock is intact: both instances see it, and it completes with B's record.
        expect(await inFlight(a, k)).toMatchObject({ fingerprint: "fp-b" });
        expect(await inFlight(b, k)).toMatchObject({ fingerprint: "fp-b" });
        expect(await b.complete(k, current, response(new Uint8Array([2])), { ttlMs: LONG })).toBe(true);
        for (const store of [a, b]) {
          const record = await recordOf(store, k);
          expect([record.fingerprint, Array.from(record.body)]).toEqual(["fp-b", [2]]);
        }
        expect(await a.complete(k, stale, response(new Uint8Array([3])), { ttlMs: LONG })).toBe(false);
      });

      it("a record completed on one instance is read as completed, the same, on the other", async () => {
        const [a, b] = await twoInstances();
        const headers: Array<[string, string]> = [
          ["content-type", "application/json"],
          ["x-n", "1"],
          ["X-N", "2 ✓"],
        ];
        for (const [writer, reader, label] of [
          [a, b, "A to B"],
          [b, a, "B to A"],
        ] as const) {
          const k = key(`cross-record-${label}`);
          const token = await mustClaim(writer, k, `fp ${label}`);
          expect(await inFlight(reader, k), `${label}: in flight`).toMatchObject({ fingerprint: `fp ${label}` });
          expect(await writer.complete(k, token, response(allBytes(), headers), { ttlMs: LONG })).toBe(true);
          const there = await recordOf(reader, k);
          const here = await recordOf(writer, k);
          expect(there.status, label).toBe(201);
          expect(there.fingerprint, label).toBe(`fp ${label}`);
          expect(Array.from(there.body), label).toEqual(Array.from(allBytes()));
          expect(there.headers, label).toEqual(headers);
          expect([there.createdAt, there.completedAt], label).toEqual([here.createdAt, here.completedAt]);
        }
      });

      it("a key released on one instance can be claimed on the other at once", async () => {
        const [a, b] = await twoInstances();
        const k = key("cross-release");
        const token = await mustClaim(a, k, "fp-a");
        expect(await inFlight(b, k)).toMatchObject({ fingerprint: "fp-a" });
        expect(await a.release(k, token)).toBe(true);
        const next = await mustClaim(b, k, "fp-b");
        expect(next, "B's token, which must not be the one A released").not.toBe(token);
        expect(await inFlight(a, k)).toMatchObject({ fingerprint: "fp-b" });
        expect(await a.complete(k, token, response(new Uint8Array([1])), { ttlMs: LONG })).toBe(false);
      });
    });

    if (options.createOnClock) {
      const createOnClock = options.createOnClock;
      describe("on the suite's clock", () => {
        let now = Date.UTC(2030, 0, 1);
        const onClock = async () => {
          const store = await createOnClock(() => now);
          stores.push(store);
          return store;
        };

        it("a lease ends at its exact millisecond: the token holds until then, a new claim wins from then", async () => {
          const store = await onClock();
          const [held, lapsed] = [key("exact-held"), key("exact-lapsed")];
          const start = now;
          const heldToken = await mustClaim(store, held, "fp", 1_000);
          const lapsedToken = await mustClaim(store, lapsed, "fp", 1_000);
          now = start + 999;
          expect((await inFlight(store, held)).lockExpiresAt).toBeOneOf([undefined, start + 1_000]);
          expect(await store.extend(held, heldToken, 1_000)).toBe(true);
          expect((await inFlight(store, held)).lockExpiresAt).toBeOneOf([undefined, start + 1_999]);
          now = start + 1_000;
          expect(await store.complete(lapsed, lapsedToken, response(new Uint8Array([1])), { ttlMs: LONG })).toBe(false);
          expect(await store.release(lapsed, lapsedToken)).toBe(false);
          expect(await store.extend(lapsed, lapsedToken, LONG)).toBe(false);
          const next = await mustClaim(store, lapsed, "fp-next", 1_000);
          expect(await store.complete(lapsed, lapsedToken, response(new Uint8Array([1])), { ttlMs: LONG })).toBe(false);
          now = start + 1_998;
          await inFlight(store, held);
          expect(await store.complete(held, heldToken, response(new Uint8Array([2])), { ttlMs: LONG })).toBe(true);
          expect(await recordOf(store, held)).toMatchObject({ createdAt: start, completedAt: start + 1_998 });
          now = start + 1_999;
          expect(await store.complete(lapsed, next, response(new Uint8Array([3])), { ttlMs: LONG })).toBe(true);
          expect(await recordOf(store, lapsed)).toMatchObject({
            fingerprint: "fp-next",
            createdAt: start + 1_000,
            completedAt: start + 1_999,
          });
        });

        it("a record is kept until the exact millisecond its retention ends", async () => {
          const store = await onClock();
          const k = key("exact-retention");
          const start = now;
          const token = await mustClaim(store, k, "fp", 100);
          now = start + 50;
          expect(await store.complete(k, token, response(new Uint8Array([1])), { ttlMs: 1_000 })).toBe(true);
          now = start + 1_049;
          expect(await recordOf(store, k)).toMatchObject({ createdAt: start, completedAt: start + 50 });
          now = start + 1_050;
          await mustClaim(store, k, "fp-next");
        });
      });
    }

    if (options.createUnavailable) {
      const createUnavailable = options.createUnavailable;
      const within = options.unavailableWithinMs ?? 5_000;
      describe("unreachable server", () => {
        it(`every operation fails with StoreUnavailableError within ${within} ms, never a false win`, async () => {
          const store = await createUnavailable();
          stores.push(store);
          const k = key("down");
          const operations: Array<[string, () => Promise<unknown>]> = [
            ["claim", () => store.claim(k, { fingerprint: "fp", lockTtlMs: LONG })],
            ["complete", () => store.complete(k, "t", response(new Uint8Array()), { ttlMs: LONG })],
            ["release", () => store.release(k, "t")],
            ["extend", () => store.extend(k, "t", LONG)],
          ];
          for (const [label, operation] of operations) {
            const started = Date.now();
            const outcome = await operation().then(
              (value) => ({ value }),
              (error: unknown) => ({ error }),
            );
            expect(outcome, label).toHaveProperty("error");
            // Checked by name and code, not instanceof: the store may load another copy of core.
            expect((outcome as { error: unknown }).error, label).toMatchObject({
              name: "StoreUnavailableError",
              code: "store_unavailable",
            });
            expect(Date.now() - started, label).toBeLessThan(within + 1_000);
          }
        });
      });
    }
  });
}
