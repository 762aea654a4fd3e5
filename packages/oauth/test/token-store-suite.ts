/**
 * The token store contract, run against every store: values and versions, the compare-and-set,
 * expiry, and exactly one winner among concurrent writers on separate connections.
 */

import { InterlockConfigError } from "@interlock/core";
import { describe, expect, it } from "vitest";
import { MAX_TOKEN_KEY_LENGTH, type TokenStore } from "../src/index.js";

export interface TokenStoreHarness {
  /** A store on its own connection, sharing the key space of every other one this harness makes. */
  store(): TokenStore | Promise<TokenStore>;
  /** Lets `ms` pass for the store's expiry (the memory store's clock, or real time). */
  elapse(ms: number): Promise<void>;
  /** True when `elapse` moves the store's own clock: expiry is then checked to the millisecond. */
  exactClock?: boolean;
}

let counter = 0;
const uniqueKey = (label: string) => `${label}:${Date.now().toString(36)}:${++counter}`;

export function describeTokenStore(name: string, harness: TokenStoreHarness): void {
  describe(`token store contract: ${name}`, () => {
    it("gets what was set, with a new version on every write", async () => {
      const store = await harness.store();
      const key = uniqueKey("plain");
      expect(await store.get(key)).toBeUndefined();
      const first = await store.set(key, "one", { ttlMs: 60_000 });
      expect(first).toBeTypeOf("string");
      expect(await store.get(key)).toEqual({ value: "one", version: first });
      const second = await store.set(key, "two", { ttlMs: 60_000 });
      expect(second).not.toBe(first);
      expect(await store.get(key)).toEqual({ value: "two", version: second });
    });

    it("expect null writes only where there is no live value", async () => {
      const store = await harness.store();
      const key = uniqueKey("absent");
      const won = await store.set(key, "first", { ttlMs: 60_000, expect: null });
      expect(won).toBeTypeOf("string");
      expect(await store.set(key, "second", { ttlMs: 60_000, expect: null })).toBeUndefined();
      expect(await store.get(key)).toEqual({ value: "first", version: won });
    });

    it("expect a version writes only over that version", async () => {
      const store = await harness.store();
      const key = uniqueKey("cas");
      expect(await store.set(key, "x", { ttlMs: 60_000, expect: "no-such-version" })).toBeUndefined();
      expect(await store.get(key)).toBeUndefined();
      const v1 = (await store.set(key, "v1", { ttlMs: 60_000 }))!;
      const v2 = (await store.set(key, "v2", { ttlMs: 60_000, expect: v1 }))!;
      expect(v2).toBeTypeOf("string");
      // A writer that read v1 is too late now.
      expect(await store.set(key, "stale", { ttlMs: 60_000, expect: v1 })).toBeUndefined();
      expect(await store.get(key)).toEqual({ value: "v2", version: v2 });
    });

    it("deletes the live value, or only a given version of it", async () => {
      const store = await harness.store();
      const key = uniqueKey("delete");
      expect(await store.delete(key)).toBe(false);
      const v1 = (await store.set(key, "v1", { ttlMs: 60_000 }))!;
      const v2 = (await store.set(key, "v2", { ttlMs: 60_000 }))!;
      expect(await store.delete(key, v1)).toBe(false);
      expect(await store.get(key)).toEqual({ value: "v2", version: v2 });
      expect(await store.delete(key, v2)).toBe(true);
      expect(await store.get(key)).toBeUndefined();
      await store.set(key, "v3", { ttlMs: 60_000 });
      expect(await store.delete(key)).toBe(true);
      expect(await store.delete(key)).toBe(false);
    });

    it("expires values after their ttl: gone for get, delete and compare-and-set", async () => {
      const store = await harness.store();
      const key = uniqueKey("ttl");
      const version = (await store.set(key, "short", { ttlMs: 200 }))!;
      const kept = uniqueKey("ttl-kept");
      await store.set(kept, "long", { ttlMs: 60_000 });
      await harness.elapse(400);
      expect(await store.get(key)).toBeUndefined();
      expect(await store.get(kept)).toMatchObject({ value: "long" });
      expect(await store.set(key, "late", { ttlMs: 60_000, expect: version })).toBeUndefined();
      expect(await store.delete(key, version)).toBe(false);
      // Nothing live: an only-if-absent write succeeds over the expired value.
      expect(await store.set(key, "again", { ttlMs: 60_000, expect: null })).toBeTypeOf("string");
      expect(await store.get(key)).toMatchObject({ value: "again" });
    });

    it("keeps any key and any text value as given", async () => {
      const store = await harness.store();
      const longest = uniqueKey("longest").padEnd(MAX_TOKEN_KEY_LENGTH - 1, "k");
      const keys = [
        uniqueKey("{braces}"),
        uniqueKey("100% é 🔑 spaces"),
        `${uniqueKey("long")}${"k".repeat(400)}`,
        `${longest}a`,
        `${longest}b`,
      ];
      const value = `v1.k1.${"A".repeat(100_000)}.é🔑"'\\\n`;
      for (const [i, key] of keys.entries()) {
        const version = await store.set(key, `${value}${i}`, { ttlMs: 60_000 });
        expect(await store.get(key)).toEqual({ value: `${value}${i}`, version });
      }
      for (const [i, key] of keys.entries()) expect(await store.get(key)).toMatchObject({ value: `${value}${i}` });
      // The empty text is a value like any other, not an absent one.
      const empty = uniqueKey("empty");
      const version = await store.set(empty, "", { ttlMs: 60_000 });
      expect(await store.get(empty)).toEqual({ value: "", version });
      expect(await store.set(empty, "x", { ttlMs: 60_000, expect: null })).toBeUndefined();
      expect(await store.delete(empty, version)).toBe(true);
    });

    it("never reuses a version for a key, even when the same value is written again", async () => {
      const store = await harness.store();
      const key = uniqueKey("same-value");
      const v1 = (await store.set(key, "same", { ttlMs: 60_000 }))!;
      const v2 = (await store.set(key, "same", { ttlMs: 60_000 }))!;
      expect(v2).not.toBe(v1);
      // A writer that read v1 must not overwrite or delete the newer write of the same value.
      expect(await store.set(key, "stale", { ttlMs: 60_000, expect: v1 })).toBeUndefined();
      expect(await store.delete(key, v1)).toBe(false);
      expect(await store.get(key)).toEqual({ value: "same", version: v2 });
      expect(await store.delete(key, v2)).toBe(true);
      const v3 = await store.set(key, "same", { ttlMs: 60_000, expect: null });
      expect([v1, v2]).not.toContain(v3);
    });

    it("every write sets its own ttl, longer or shorter than the value it replaces", async () => {
      const store = await harness.store();
      const [longer, shorter, swapped] = [uniqueKey("ttl-longer"), uniqueKey("ttl-shorter"), uniqueKey("ttl-swapped")];
      await store.set(longer, "short", { ttlMs: 200 });
      await store.set(longer, "long", { ttlMs: 60_000 });
      await store.set(shorter, "long", { ttlMs: 60_000 });
      await store.set(shorter, "short", { ttlMs: 200 });
      const version = (await store.set(swapped, "short", { ttlMs: 200 }))!;
      await store.set(swapped, "long", { ttlMs: 60_000, expect: version });
      await harness.elapse(400);
      expect(await store.get(longer)).toMatchObject({ value: "long" });
      expect(await store.get(shorter)).toBeUndefined();
      expect(await store.get(swapped)).toMatchObject({ value: "long" });
    });

    if (harness.exactClock) {
      it("a value lives until the exact millisecond its ttl ends", async () => {
        const store = await harness.store();
        const key = uniqueKey("exact");
        const version = (await store.set(key, "v", { ttlMs: 1_000 }))!;
        await harness.elapse(999);
        expect(await store.get(key)).toEqual({ value: "v", version });
        await harness.elapse(1);
        expect(await store.get(key)).toBeUndefined();
        expect(await store.delete(key, version)).toBe(false);
        expect(await store.set(key, "next", { ttlMs: 1_000, expect: null })).toBeTypeOf("string");
      });
    }

    it("has exactly one winner among 40 concurrent writers on separate connections", async () => {
      const stores = await Promise.all([harness.store(), harness.store(), harness.store(), harness.store()]);
      const absent = uniqueKey("race-absent");
      const created = await Promise.all(
        Array.from({ length: 40 }, (_, i) => stores[i % 4]!.set(absent, `w${i}`, { ttlMs: 60_000, expect: null })),
      );
      const winners = created.filter((v) => v !== undefined);
      expect(winners).toHaveLength(1);
      expect((await stores[0]!.get(absent))?.version).toBe(winners[0]);

      const key = uniqueKey("race-cas");
      const base = (await stores[0]!.set(key, "base", { ttlMs: 60_000 }))!;
      const swapped = await Promise.all(
        Array.from({ length: 40 }, (_, i) => stores[i % 4]!.set(key, `w${i}`, { ttlMs: 60_000, expect: base })),
      );
      const casWinners = swapped.map((v, i) => ({ v, i })).filter(({ v }) => v !== undefined);
      expect(casWinners).toHaveLength(1);
      expect(await stores[1]!.get(key)).toEqual({ value: `w${casWinners[0]!.i}`, version: casWinners[0]!.v });

      // A lock's release: of 40 deletes of one version, one deletes it.
      const deleted = await Promise.all(
        Array.from({ length: 40 }, (_, i) => stores[i % 4]!.delete(key, casWinners[0]!.v)),
      );
      expect(deleted.filter(Boolean)).toHaveLength(1);
      expect(await stores[2]!.get(key)).toBeUndefined();
    });

    it("refuses bad arguments with a configuration error", async () => {
      const store = await harness.store();
      const calls = [
        () => store.get(""),
        () => store.get("k".repeat(513)),
        () => store.get("nul\u0000key"),
        () => store.set("k", "v", { ttlMs: 0 }),
        () => store.set("k", "v", { ttlMs: 1.5 }),
        () => store.set("k", "bad\u0000value", { ttlMs: 1000 }),
        () => store.set("k", 42 as unknown as string, { ttlMs: 1000 }),
        () => store.delete("\ud800"),
      ];
      for (const call of calls) await expect(call()).rejects.toBeInstanceOf(InterlockConfigError);
    });
  });
}
