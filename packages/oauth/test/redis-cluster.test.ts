/**
 * The Redis token store on a real 3-master Redis Cluster, through an ioredis `Cluster`: the whole
 * token-store contract, the store's own Redis checks, and proof that no operation crosses slots.
 *
 * A multi-key command or script whose keys hash to different slots is refused by the cluster
 * (CROSSSLOT, or a script's "non local key"), which the contract suite would surface. But Redis lets
 * a script without flags touch an undeclared key of another slot when that slot happens to live on
 * the same node, so a store could pass the suite by luck. Hence the slot test: it records every key
 * each operation writes, on every master (keyspace notifications), and requires them all to be in
 * the slot of the one key the operation names.
 */

import { randomBytes } from "node:crypto";
import { type RedisNode, refusedPort } from "@interlock/test-harness";
import { Cluster, Redis } from "ioredis";
import { afterAll, describe, expect, inject, it } from "vitest";
import { RedisTokenStore } from "../src/redis.js";
import { itChecksRedisStore } from "./redis-checks.js";
import { describeTokenStore } from "./token-store-suite.js";

const clients: Array<Redis | Cluster> = [];
afterAll(() => {
  for (const client of clients.splice(0)) client.disconnect();
});
function track<C extends Redis | Cluster>(client: C): C {
  clients.push(client);
  return client;
}
const clusterClient = () => track(new Cluster(inject("redisClusterNodes")));
const uniquePrefix = () => `test:oauth-cluster:${randomBytes(6).toString("hex")}:`;
const prefix = uniquePrefix();

describeTokenStore("redis cluster", {
  store: () => new RedisTokenStore(clusterClient(), { prefix }),
  elapse: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
});

describe("redis token store on a cluster", () => {
  itChecksRedisStore("the cluster", {
    client: clusterClient,
    unreachable: async () =>
      track(new Cluster([{ host: "127.0.0.1", port: await refusedPort() }], { lazyConnect: true })),
    prefix,
  });
});

/** A key written on one master, as a keyspace notification reported it. */
interface Write {
  master: number;
  event: string;
  key: string;
}

/**
 * Every key written on the cluster's masters, from keyspace notifications (enabled for the
 * observation, then restored), but other test files' keys. Notifications are per node, so there
 * is one subscriber per master.
 */
async function observeWrites(nodes: RedisNode[], ownPrefix: string) {
  const writes: Write[] = [];
  const marker = `interlock:test:marker:${randomBytes(6).toString("hex")}`;
  const waiting = new Map<string, () => void>();
  const masters = nodes.map(({ host, port }, master) => {
    const commands = track(new Redis({ host, port }));
    const subscriber = track(new Redis({ host, port }));
    subscriber.on("pmessage", (_pattern, channel, message) => {
      // The cluster forwards a PUBLISH to every node: only a marker's own master's copy counts.
      if (channel === marker) {
        if (message.startsWith(`${master}:`)) waiting.get(message)?.();
      } else if (!message.startsWith("test:") || message.startsWith(ownPrefix)) {
        // Other test files' keys (all under `test:`) are theirs; anything else is the store's.
        const event = channel.slice(channel.indexOf(":") + 1);
        // The server's own, not an operation's: a delete's trace of an earlier key running out
        // (traceTtlMs) while a later key's operations run, on a machine slow enough.
        if (event !== "expired") writes.push({ master, event, key: message });
      }
    });
    return { commands, subscriber };
  });
  const previous = await Promise.all(
    masters.map(async ({ commands, subscriber }) => {
      await subscriber.psubscribe("__keyevent@0__:*", marker);
      const [, setting] = (await commands.config("GET", "notify-keyspace-events")) as [string, string];
      await commands.config("SET", "notify-keyspace-events", "EA");
      return setting;
    }),
  );
  let sequence = 0;
  return {
    /**
     * The writes since the last call. A node sends its notifications and then the marker
     * published on it in order, so once each master's marker is back, its writes are all in.
     */
    async take(): Promise<Write[]> {
      await Promise.all(
        masters.map(({ commands }, master) => {
          const token = `${master}:${++sequence}`;
          const back = new Promise<void>((resolve) => waiting.set(token, resolve));
          return commands.publish(marker, token).then(() => back);
        }),
      );
      return writes.splice(0);
    },
    async stop(): Promise<void> {
      await Promise.all(
        masters.map(({ commands }, i) => commands.config("SET", "notify-keyspace-events", previous[i]!)),
      );
    },
  };
}

describe("redis token store on a cluster: slots", () => {
  // Keys that are hard on a hash tag (braces anywhere, alone or empty) and keys as the package
  // writes them (sessions, their locks, client-credentials tokens).
  const tricky = ["{a}", "a}b", "{", "}", "{}", "}{", "a{b}c", "🔑{", "%7B"];
  const named = Array.from({ length: 12 }, (_, i) =>
    i % 3 === 0 ? `oauth:session:s${i}` : i % 3 === 1 ? `oauth:lock:session:s${i}` : `oauth:cc:client-${i}`,
  );

  it("writes, in every operation, only keys in the slot of the key it names; keys spread over every master", async () => {
    const cluster = clusterClient();
    const store = new RedisTokenStore(cluster, { prefix: uniquePrefix() });
    const observer = await observeWrites(inject("redisClusterNodes"), store.prefix);
    const mastersWritten = new Set<number>();
    try {
      for (const key of [...tricky, ...named]) {
        const redisKey = store.prefix + key;
        const slot = await cluster.cluster("KEYSLOT", redisKey);
        const operations: Array<[string, () => Promise<unknown>]> = [
          ["create", () => store.set(key, "v1", { ttlMs: 60_000, expect: null })],
          ["overwrite", () => store.set(key, "v2", { ttlMs: 60_000 })],
          [
            "compare-and-set",
            async () => store.set(key, "v3", { ttlMs: 60_000, expect: (await store.get(key))!.version }),
          ],
          ["delete a version", async () => store.delete(key, (await store.get(key))!.version)],
          ["create again", () => store.set(key, "v4", { ttlMs: 60_000 })],
          ["delete", () => store.delete(key)],
        ];
        for (const [label, operation] of operations) {
          await operation();
          const writes = await observer.take();
          // Every operation above changes the key: no notification would mean no observation.
          expect(writes.length, `${label} ${key}`).toBeGreaterThan(0);
          for (const write of writes) {
            expect(await cluster.cluster("KEYSLOT", write.key), `${label} ${key} wrote ${write.key}`).toBe(slot);
            mastersWritten.add(write.master);
          }
          expect(new Set(writes.map((write) => write.key)), `${label} ${key}`).toEqual(new Set([redisKey]));
        }
      }
    } finally {
      await observer.stop();
    }
    expect(mastersWritten.size).toBe(3);
  });
});
