/**
 * A slot moving from one master to another while claims and completions run on its keys: the
 * source answers ASK for keys it no longer holds, and MOVED once the slot is gone. A cluster of
 * its own, so the slots of the shared one stay where the other tests expect them.
 */

import type { ClaimResult } from "@interlock/core";
import { type RedisCluster, startRedisCluster } from "@interlock/test-harness";
import { Cluster, type Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { storeOn } from "./helpers.js";

const LONG = 60_000;
const response = { status: 200, headers: [] as Array<[string, string]>, body: new Uint8Array([7]) };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Redis Cluster's key hash: CRC16 (XMODEM) of the hash tag, modulo 16384. */
function slotOfTag(tag: string): number {
  let crc = 0;
  for (const byte of new TextEncoder().encode(tag)) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

/** The slot holding the most of `candidates` logical keys (their hash tag is the whole key), and those keys. */
function crowdedSlot(candidates: string[]): { slot: number; keys: string[] } {
  const bySlot = new Map<number, string[]>();
  for (const key of candidates) {
    const slot = slotOfTag(key);
    bySlot.set(slot, [...(bySlot.get(slot) ?? []), key]);
  }
  const [slot, keys] = [...bySlot].sort((a, b) => b[1].length - a[1].length)[0]!;
  return { slot, keys };
}

let cluster: RedisCluster | undefined;
/** This file's clients, closed before its cluster stops: left open, each would keep refreshing its slots from nodes gone, logging under every later file of the worker. */
const clients: Cluster[] = [];
beforeAll(async () => {
  cluster = await startRedisCluster();
});
afterAll(async () => {
  for (const client of clients.splice(0)) client.disconnect();
  await cluster?.stop();
});

/** Moves `slot` to the next master, a few keys at a time, as `redis-cli --cluster reshard` does. */
async function moveSlot(client: Cluster, slot: number): Promise<void> {
  const masters = client.nodes("master");
  const ids = await Promise.all(masters.map((node) => node.cluster("MYID") as Promise<string>));
  const owner = (await client.cluster("SLOTS")).find(([from, to]) => slot >= from && slot <= to)!;
  const sourceAt = masters.findIndex((node) => node.options.port === owner[2]![1]);
  const targetAt = (sourceAt + 1) % masters.length;
  const [source, target] = [masters[sourceAt]!, masters[targetAt]!] as [Redis, Redis];
  await target.cluster("SETSLOT", slot, "IMPORTING", ids[sourceAt]!);
  await source.cluster("SETSLOT", slot, "MIGRATING", ids[targetAt]!);
  for (;;) {
    const keys = (await source.cluster("GETKEYSINSLOT", slot, 3)) as string[];
    if (keys.length === 0) break;
    await source.call("MIGRATE", "127.0.0.1", target.options.port!, "", 0, 5_000, "KEYS", ...keys);
    await sleep(30); // claims run between the batches, some keys here and some there
  }
  for (const node of masters) await node.cluster("SETSLOT", slot, "NODE", ids[targetAt]!);
}

describe("redis cluster: resharding", () => {
  // With autopipelining, ioredis follows a redirection only when every command of a batch got
  // the same one: a batch that meets the slot half moved fails (fail closed, as unavailable).
  it.each([
    { autoPipelining: false, label: "every operation answers" },
    { autoPipelining: true, label: "some fail as unavailable (autopipelining)" },
  ])(
    "a slot moving while its keys are claimed and completed: one winner per key, every lock kept; $label",
    async ({ autoPipelining }) => {
      const client = new Cluster(cluster!.nodes, { enableAutoPipelining: autoPipelining });
      clients.push(client);
      const store = storeOn(client, { operationTimeoutMs: 5_000 });
      // Each run moves a slot of its own.
      const { slot, keys } = crowdedSlot(Array.from({ length: 300_000 }, (_, i) => `order:${autoPipelining}:${i}`));
      expect(await client.cluster("KEYSLOT", store.keyFor(keys[0]!))).toBe(slot);
      expect(keys.length).toBeGreaterThanOrEqual(20);

      // Half the keys are locked before the move; their owners complete them during it.
      const held = new Map<string, string>();
      for (const key of keys.slice(0, Math.floor(keys.length / 2))) {
        const claim = await store.claim(key, { fingerprint: "before", lockTtlMs: LONG });
        if (claim.state === "claimed") held.set(key, claim.token);
      }
      expect(held.size).toBe(Math.floor(keys.length / 2));

      const outcomes: Array<{ key: string; result: ClaimResult | boolean | Error }> = [];
      let moving = true;
      const traffic = async (offset: number) => {
        for (let i = offset; moving; i++) {
          const key = keys[i % keys.length]!;
          const token = held.get(key);
          const operation =
            token && i % 4 === 0
              ? store.complete(key, token, response, { ttlMs: LONG })
              : store.claim(key, { fingerprint: `during:${offset}`, lockTtlMs: LONG });
          outcomes.push({ key, result: await operation.catch((error: Error) => error) });
        }
      };
      const running = Array.from({ length: 6 }, (_, i) => traffic(i * 7));
      await moveSlot(client, slot);
      await sleep(100);
      moving = false;
      await Promise.all(running);

      const failed = outcomes.filter(({ result }) => result instanceof Error);
      if (!autoPipelining) expect(failed).toEqual([]);
      for (const { result } of failed) expect(result).toMatchObject({ name: "StoreUnavailableError" });
      // A key locked before the move was never claimed again; every other key was won once.
      const winners = outcomes
        .filter(({ result }) => (result as ClaimResult).state === "claimed")
        .map(({ key }) => key);
      expect(winners.filter((key) => held.has(key))).toEqual([]);
      expect(new Set(winners).size).toBe(winners.length);
      if (!autoPipelining) expect(winners.sort()).toEqual(keys.filter((key) => !held.has(key)).sort());
      console.info(`${outcomes.length} operations while slot ${slot} moved, ${failed.length} failed`);

      // Everything now lives on the new owner, and the locks taken before the move complete there.
      for (const [key, token] of held) {
        await store.complete(key, token, response, { ttlMs: LONG });
        expect(await store.claim(key, { fingerprint: "after", lockTtlMs: LONG })).toMatchObject({
          state: "completed",
          record: { fingerprint: "before", body: new Uint8Array([7]) },
        });
      }
    },
  );
});
