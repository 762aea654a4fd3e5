/**
 * The store conformance suite. One call registers the whole contract's tests with vitest for
 * any store factory, so a store author proves their store the way Interlock proves its own:
 *
 * ```ts
 * import { describeStoreConformance } from "@interlock/core/testing";
 * describeStoreConformance("my store", { create: () => new MyStore(client, { prefix: randomPrefix() }) });
 * ```
 */

import { afterAll, describe, expect, it } from "vitest";
import type { ClaimResult, InterlockStore, StoredResponse } from "../store/contract.js";

/** How to make the stores the conformance suite tests. */
export interface StoreConformanceOptions {
  /** A fresh store whose keys no other test sees (a unique prefix, table or database). */
  create: () => InterlockStore | Promise<InterlockStore>;
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
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const LONG = 60_000;

function response(body: Uint8Array, headers: Array<[string, string]> = [["content-type", "application/json"]]) {
  return { status: 201, headers, body } satisfies StoredResponse;
}

const allBytes = () => Uint8Array.from({ length: 512 }, (_, i) => i % 256);

async function mustClaim(store: InterlockStore, key: string, fingerprint = "fp", lockTtlMs = LONG): Promise<string> {
  const result = await store.claim(key, { fingerprint, lockTtlMs });
  expect(result.state, `claim of ${key}`).toBe("claimed");
  return (result as Extract<ClaimResult, { state: "claimed" }>).token;
}

/**
 * Registers the store contract's tests with vitest: claim races, fencing, leases, retention,
 * record limits, copies, keys, and (with `createUnavailable`) failure with
 * `StoreUnavailableError` against an unreachable server.
 */
export function describeStoreConformance(name: string, options: StoreConformanceOptions): void {
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
        headers.push(["etag", '"abc"'], ["location", "/payments/1"]);
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

      it("refuses header pairs that are not two strings, and the lock stays with its owner", async () => {
        const store = await fresh();
        const k = key("bad-headers");
        const token = await mustClaim(store, k);
        for (const headers of [[["content-length", 5]], [["etag"]], [["a", "b", "c"]], ["a"], [null]]) {
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

      it("keeps its own copy of the body", async () => {
        const store = await fresh();
        const k = key("copy");
        const body = new Uint8Array([1, 2, 3]);
        const token = await mustClaim(store, k);
        await store.complete(k, token, response(body), { ttlMs: LONG });
        body[0] = 99;
        const result = await store.claim(k, { fingerprint: "fp", lockTtlMs: LONG });
        expect(Array.from((result as Extract<ClaimResult, { state: "completed" }>).record.body)).toEqual([1, 2, 3]);
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
        await mustClaim(store, k, "fp-next");
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
    });

    describe("expiry", () => {
      it("a lock whose lease ran out can be claimed by another caller", async () => {
        const store = await fresh();
        const k = key("lease");
        await mustClaim(store, k, "fp", shortTtl);
        expect((await store.claim(k, { fingerprint: "fp", lockTtlMs: LONG })).state).toBe("in_flight");
        await sleep(shortTtl + 150);
        await mustClaim(store, k, "fp-next");
      });

      it("extend keeps a lock past its first lease", async () => {
        const store = await fresh();
        const k = key("extend");
        const token = await mustClaim(store, k, "fp", shortTtl);
        expect(await store.extend(k, token, shortTtl * 4)).toBe(true);
        await sleep(shortTtl + 150);
        expect((await store.claim(k, { fingerprint: "fp", lockTtlMs: LONG })).state).toBe("in_flight");
        expect(await store.complete(k, token, response(new Uint8Array()), { ttlMs: LONG })).toBe(true);
      });

      it("a record expires after its retention", async () => {
        const store = await fresh();
        const k = key("retention");
        const token = await mustClaim(store, k);
        await store.complete(k, token, response(new Uint8Array([1])), { ttlMs: shortTtl });
        expect((await store.claim(k, { fingerprint: "fp", lockTtlMs: LONG })).state).toBe("completed");
        await sleep(shortTtl + 150);
        await mustClaim(store, k);
      });

      it("a released key can be claimed again at once", async () => {
        const store = await fresh();
        const k = key("release");
        const token = await mustClaim(store, k);
        expect(await store.release(k, token)).toBe(true);
        await mustClaim(store, k);
      });
    });

    describe("keys", () => {
      it("accepts unicode and 255-character keys, and keeps similar keys apart", async () => {
        const store = await fresh();
        const base = key("keys");
        const keys = [
          `${base}:${"k".repeat(255)}`,
          `${base}:ключ-🔑-鍵`,
          `${base}:é`, // precomposed
          `${base}:e\u0301`, // decomposed: a different key
          `${base}:A`,
          `${base}:a`,
          `${base}:{tag}:x`,
          `${base}:*?[]\\%_'"`,
        ];
        for (const k of keys) await mustClaim(store, k);
        for (const k of keys)
          expect((await store.claim(k, { fingerprint: "fp", lockTtlMs: LONG })).state).toBe("in_flight");
      });
    });

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
