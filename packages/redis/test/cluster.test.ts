/**
 * The store on a real 3-master Redis Cluster: the whole contract, and proof that every logical
 * key lives in exactly one Redis key whose hash tag spans the whole logical key, so no
 * operation can cross slots and keys still spread over every master.
 */

import { InterlockConfigError } from "@interlock/core";
import { describeStoreConformance } from "@interlock/core/testing";
import { refusedPort } from "@interlock/test-harness";
import { Cluster } from "ioredis";
import { describe, expect, inject, it } from "vitest";
import { clusterClient, storeOn, track, uniquePrefix } from "./helpers.js";

describeStoreConformance("redis cluster", {
  create: () => storeOn(clusterClient()),
  // A second app process: a Cluster client of its own on the same nodes, on the same prefix.
  sibling: (store) => storeOn(clusterClient(), { prefix: store.prefix }),
  createUnavailable: async () => {
    const client = track(new Cluster([{ host: "127.0.0.1", port: await refusedPort() }], { lazyConnect: true }));
    client.on("error", () => {});
    return storeOn(client, { operationTimeoutMs: 1_000 });
  },
  unavailableWithinMs: 1_000,
});

/** Every key under `prefix` on every master, by master. */
async function keysByMaster(cluster: Cluster, prefix: string): Promise<string[][]> {
  return Promise.all(
    cluster.nodes("master").map(async (node) => {
      const found: string[] = [];
      let cursor = "0";
      do {
        const [next, keys] = await node.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
        found.push(...keys);
        cursor = next;
      } while (cursor !== "0");
      return found;
    }),
  );
}

describe("redis cluster: slots", () => {
  // Keys that are hard on a hash tag: braces at either end, a brace alone, the escape
  // character, text that looks like an escape, astral characters.
  const tricky = ["{a}", "a}b", "a}c", "}", "{", "}{", "{}", "%", "%7B", "%7D", "a{b}c", "🔑{", "}🗝"];
  const logical = [...tricky, ...Array.from({ length: 300 }, (_, i) => `order:${i}:{user-${i % 7}}`)];

  it("runs every operation on keys spread over all three masters, one slot each", async () => {
    const cluster = clusterClient();
    const store = storeOn(cluster);
    const body = new Uint8Array([0, 255, 1]);
    await Promise.all(
      logical.map(async (key, i) => {
        const claim = await store.claim(key, { fingerprint: `fp-${i}`, lockTtlMs: 60_000 });
        if (claim.state !== "claimed") throw new Error(`${key}: ${claim.state}`);
        expect(await store.extend(key, claim.token, 60_000)).toBe(true);
        if (i % 3 === 0) {
          expect(await store.release(key, claim.token)).toBe(true);
          return;
        }
        expect(await store.complete(key, claim.token, { status: 200, headers: [], body }, { ttlMs: 60_000 })).toBe(
          true,
        );
        const replay = await store.claim(key, { fingerprint: "other", lockTtlMs: 60_000 });
        expect(replay).toMatchObject({ state: "completed", record: { fingerprint: `fp-${i}` } });
      }),
    );
    // Completed keys are one Redis key each, on all three masters. A released key is gone, or
    // holds for a moment a trace of its release (for a copy ioredis may resend), no lock.
    const byMaster = await keysByMaster(cluster, store.prefix);
    expect(byMaster).toHaveLength(3);
    for (const keys of byMaster) expect(keys.length).toBeGreaterThan(0);
    const stored = logical.filter((_, i) => i % 3 !== 0).map((key) => store.keyFor(key));
    const found = byMaster.flat();
    expect(found.filter((key) => stored.includes(key)).sort()).toEqual(stored.sort());
    const released = logical.filter((_, i) => i % 3 === 0).map((key) => store.keyFor(key));
    for (const key of found.filter((key) => !stored.includes(key))) {
      expect(released).toContain(key);
      expect(["released", null]).toContain(await cluster.hget(key, "state"));
    }
  });

  it("refuses a Cluster client whose keyPrefix has a hash tag: every key would be in one slot", () => {
    const tagged = track(
      new Cluster(inject("redisClusterNodes"), { lazyConnect: true, redisOptions: { keyPrefix: "{app}:" } }),
    );
    expect(() => storeOn(tagged)).toThrow(InterlockConfigError);
    expect(() => storeOn(tagged)).toThrow("keyPrefix");
  });

  it("names the key as redis-cli sees it, with the Cluster client's keyPrefix first", async () => {
    const keyPrefix = uniquePrefix("client");
    const prefixed = track(new Cluster(inject("redisClusterNodes"), { redisOptions: { keyPrefix } }));
    const store = storeOn(prefixed);
    expect(store.keyFor("k")).toBe(`${keyPrefix}${store.prefix}{k}`);
    await store.claim("k", { fingerprint: "fp", lockTtlMs: 60_000 });
    expect(await clusterClient().hget(store.keyFor("k"), "state")).toBe("lock");
  });

  it("hashes each Redis key by the whole logical key (its hash tag)", async () => {
    const cluster = clusterClient();
    const store = storeOn(cluster);
    const slots = new Set<number>();
    for (const key of logical) {
      const redisKey = store.keyFor(key);
      const tag = redisKey.slice(store.prefix.length + 1, -1);
      expect(tag, key).not.toMatch(/[{}]/);
      const slot = await cluster.cluster("KEYSLOT", redisKey);
      expect(slot, key).toBe(await cluster.cluster("KEYSLOT", tag));
      slots.add(slot);
    }
    // `a}b` and `a}c` would share the slot of `a` if the tag ended at the first `}`.
    expect(await cluster.cluster("KEYSLOT", store.keyFor("a}b"))).not.toBe(
      await cluster.cluster("KEYSLOT", store.keyFor("a}c")),
    );
    expect(slots.size).toBeGreaterThan(logical.length * 0.9);
  });
});
