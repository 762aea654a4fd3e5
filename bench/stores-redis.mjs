/**
 * Redis store benchmark: @interlock/redis against @node-idempotency/storage-adapter-redis (and
 * a bare ioredis floor) on the same throwaway redis-server, in one run.
 *
 *   node bench/stores-redis.mjs           about 45 s, writes results/stores-redis.md
 *   node bench/stores-redis.mjs --quick   short smoke run, writes nothing
 *
 * Two paths, each with 32 operations in flight on one connection per implementation:
 * - first request: claim a fresh key, then complete it with a stored response;
 * - duplicate: claim a key that is already completed, getting the stored response back.
 * @node-idempotency does what its core does with its adapter: `setIfNotExists` of an
 * IN_PROGRESS marker (then `get` when the key exists), and `set` of the COMPLETE payload.
 * Round trips are counted on the server (INFO commandstats): our scripts' own calls run inside
 * Redis and are not round trips, so for us only EVALSHA/EVAL count. Implementations are timed
 * in interleaved rounds so background load hits them alike.
 */

import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { redisStore } from "@interlock/redis";
import { RedisStorageAdapter } from "@node-idempotency/storage-adapter-redis";
import { Redis } from "ioredis";

const QUICK = process.argv.includes("--quick");
const ROUNDS = QUICK ? 2 : 5;
const ROUND_MS = QUICK ? 250 : 1_000; // per implementation per round: 5 s each in a full run
const CONCURRENCY = 32;
const DUPLICATE_KEYS = QUICK ? 2_000 : 20_000;
const TTL_MS = 24 * 60 * 60 * 1000;
const LOCK_TTL_MS = 60_000;

// ---------------------------------------------------------------------------------------
// A throwaway redis-server

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function startRedis() {
  const port = await freePort();
  const dir = mkdtempSync(join(os.tmpdir(), "interlock-bench-redis-"));
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no"];
  const child = spawn("redis-server", args, { stdio: "ignore" });
  process.once("exit", () => child.kill("SIGKILL")); // never leave a server behind, even on a crash
  child.on("error", (error) => {
    console.error(
      `cannot start redis-server (${error.message}): apt-get install -y redis-server or brew install redis`,
    );
    process.exit(1);
  });
  // Commands wait in ioredis' queue while it retries: the first PONG means the server is up.
  const admin = new Redis(port, "127.0.0.1", { retryStrategy: () => 20, maxRetriesPerRequest: null });
  admin.on("error", () => {});
  const timer = setTimeout(() => {
    console.error("redis-server did not start within 10 s");
    process.exit(1);
  }, 10_000);
  await admin.ping();
  clearTimeout(timer);
  const stop = () => {
    admin.disconnect();
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  };
  return { url: `redis://127.0.0.1:${port}`, port, admin, stop };
}

/** CPU the server has used, in µs. */
async function serverCpu(admin) {
  const info = await admin.info("cpu");
  const seconds = (name) => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)[1]);
  return (seconds("used_cpu_user") + seconds("used_cpu_sys")) * 1e6;
}

/** Calls per command since the last reset. */
async function commandCalls(admin) {
  const info = await admin.info("commandstats");
  return Object.fromEntries([...info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)].map((m) => [m[1], Number(m[2])]));
}

// ---------------------------------------------------------------------------------------
// The same work, three ways

const bodyText = JSON.stringify({
  id: "pay_1PbEnChXk2vP9qzLmN0aB1cD",
  amount: 1999,
  currency: "eur",
  pad: "x".repeat(180),
});
const bodyBytes = new TextEncoder().encode(bodyText);
const headers = [
  ["content-type", "application/json"],
  ["location", "/payments/pay_1PbEnChXk2vP9qzLmN0aB1cD"],
];
const fingerprint = "3f0a9d2c6e1b8a7f5d4c3b2a19081726";

function interlock(store, name = "@interlock/redis") {
  return {
    name,
    async first(key) {
      const claim = await store.claim(key, { fingerprint, lockTtlMs: LOCK_TTL_MS });
      if (claim.state !== "claimed") throw new Error(`interlock: ${key} not claimed`);
      const response = { status: 201, headers, body: bodyBytes };
      if (!(await store.complete(key, claim.token, response, { ttlMs: TTL_MS }))) throw new Error("not completed");
    },
    async duplicate(key) {
      const claim = await store.claim(key, { fingerprint, lockTtlMs: LOCK_TTL_MS });
      if (claim.state !== "completed") throw new Error(`interlock: ${key} is ${claim.state}`);
    },
  };
}

/** What @node-idempotency/core does with its storage adapter on a request and its response. */
function nodeIdempotency(adapter) {
  const inProgress = JSON.stringify({ status: "IN_PROGRESS", fingerPrint: fingerprint });
  const complete = JSON.stringify({
    status: "COMPLETE",
    fingerPrint: fingerprint,
    response: { statusCode: 201, headers: Object.fromEntries(headers), body: bodyText },
  });
  return {
    name: "@node-idempotency/storage-adapter-redis",
    async first(key) {
      if (!(await adapter.setIfNotExists(key, inProgress, { ttl: TTL_MS }))) throw new Error(`${key} not new`);
      await adapter.set(key, complete, { ttl: TTL_MS });
    },
    async duplicate(key) {
      if (await adapter.setIfNotExists(key, inProgress, { ttl: TTL_MS })) throw new Error(`${key} was new`);
      const data = JSON.parse(await adapter.get(key));
      if (data.status !== "COMPLETE") throw new Error(`${key} is ${data.status}`);
    },
  };
}

/** Bare ioredis: the same commands as the adapter, without its client or any safety. */
function floor(client) {
  const complete = JSON.stringify({ status: 201, headers, body: bodyText });
  return {
    name: "floor: bare ioredis (SET NX + SET; duplicate: GET)",
    async first(key) {
      if ((await client.set(key, "1", "PX", LOCK_TTL_MS, "NX")) !== "OK") throw new Error(`${key} not new`);
      await client.set(key, complete, "PX", TTL_MS);
    },
    async duplicate(key) {
      if ((await client.get(key)) === null) throw new Error(`${key} missing`);
    },
  };
}

// ---------------------------------------------------------------------------------------
// Timing

/** Runs `work` once per key, CONCURRENCY at a time. */
async function each(keys, work) {
  let next = 0;
  const lane = async () => {
    while (next < keys.length) await work(keys[next++]);
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, lane));
}

/** Runs `work(key)` with CONCURRENCY in flight for `ms`; returns how many completed. */
async function drive(work, ms, next) {
  const end = performance.now() + ms;
  let done = 0;
  const lane = async () => {
    while (performance.now() < end) {
      await work(next());
      done++;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, lane));
  return done;
}

/** Commands that reached the server as round trips (not the calls our scripts make inside Redis). */
function roundTrips(before, after, scripted) {
  let total = 0;
  for (const [command, calls] of Object.entries(after)) {
    if (command === "info") continue;
    if (scripted && command !== "evalsha" && command !== "eval") continue;
    total += calls - (before[command] ?? 0);
  }
  return total;
}

async function scenario(label, impls, admin, keyOf) {
  const totals = impls.map(() => ({ iterations: 0, ms: 0, trips: 0, clientCpu: 0, serverCpu: 0 }));
  let counter = 0;
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, impl] of impls.entries()) {
      const [before, serverBefore] = [await commandCalls(admin), await serverCpu(admin)];
      const clientBefore = process.cpuUsage();
      const started = performance.now();
      const iterations = await drive(
        (key) => impl.run(key),
        ROUND_MS,
        () => keyOf(impl, counter++),
      );
      const ms = performance.now() - started;
      const client = process.cpuUsage(clientBefore);
      const [after, serverAfter] = [await commandCalls(admin), await serverCpu(admin)];
      totals[i].iterations += iterations;
      totals[i].ms += ms;
      totals[i].trips += roundTrips(before, after, impl.scripted);
      totals[i].clientCpu += client.user + client.system;
      totals[i].serverCpu += serverAfter - serverBefore;
    }
  }
  return impls.map((impl, i) => ({
    scenario: label,
    name: impl.name,
    perSecond: (totals[i].iterations / totals[i].ms) * 1000,
    tripsPerIteration: totals[i].trips / totals[i].iterations,
    clientCpu: totals[i].clientCpu / totals[i].iterations,
    serverCpu: totals[i].serverCpu / totals[i].iterations,
    operations: impl.operations,
  }));
}

const NOTES = `Round trips are commands counted by the server (INFO commandstats) divided by the paths run; a
claim + complete is two store operations, a duplicate claim one. CPU is the benchmark process
(all of the client library's work) and the redis-server process, per path. What each row buys:

- **@interlock/redis** (on ioredis): one Lua script per operation. The claim returns the stored
  response in the same round trip; the lock has its own lease (60 s here) separate from the
  retention; \`complete\` only succeeds for the claim's fencing token; timestamps and leases
  use the server's clock; every call is bounded by a timeout.
- **@node-idempotency/storage-adapter-redis** (on node-redis 4): \`SET NX\` of an IN_PROGRESS
  marker that lives for the whole retention (24 h by default: a crashed request blocks its key
  for a day), a second round trip (\`GET\`) whenever the key exists, and an unconditional
  \`SET\` to complete (a worker whose lease was taken over can overwrite the newer result).
- **floor**: the adapter's commands through bare ioredis, with no payload handling and no
  safety: what ioredis and Redis cost for the same round trips, not a usable store.

Where the time goes: node-redis writes all commands queued in one tick with one socket write,
while ioredis writes each command on its own; that costs both the client and Redis (which then
reads and answers one command per syscall), as the floor shows against node-idempotency for the
very same commands. ioredis' \`enableAutoPipelining\` batches the writes, which saves Redis CPU
but adds client work of its own. On top of that, a Lua script costs
Redis a few µs more than a plain \`SET\` (it runs four commands: HMGET, TIME, HSET, PEXPIRE),
and the store adds about 2 µs of client work per operation (validation, token, key escaping,
timeout timer).`;

// ---------------------------------------------------------------------------------------

const LOAD = os.loadavg()[0];
const server = await startRedis();
const ours = new Redis(server.url);
const oursPipelined = new Redis(server.url, { enableAutoPipelining: true });
const bare = new Redis(server.url);
const adapter = new RedisStorageAdapter({ url: server.url });
await adapter.connect();
const implementations = [
  { ...interlock(redisStore(ours, { prefix: "il:" })), scripted: true },
  {
    ...interlock(redisStore(oursPipelined, { prefix: "ilp:" }), "@interlock/redis, ioredis enableAutoPipelining"),
    scripted: true,
  },
  { ...nodeIdempotency(adapter), scripted: false },
  { ...floor(bare), scripted: false },
];
const version = (await server.admin.info("server")).match(/redis_version:(\S+)/)[1];

try {
  // Warm every path (JIT, script cache) before anything is timed.
  for (const impl of implementations) {
    await each(
      Array.from({ length: QUICK ? 2_000 : 10_000 }, (_, n) => `warm:${impl.name}:${n}`),
      impl.first,
    );
  }
  await server.admin.flushall();

  const first = await scenario(
    "first request: claim + complete",
    implementations.map((impl) => ({ ...impl, run: impl.first, operations: 2 })),
    server.admin,
    (impl, n) => `first:${impl.name}:${n}`,
  );
  await server.admin.flushall();

  // Keys completed up front by each implementation, then claimed again at random.
  for (const impl of implementations) {
    await each(
      Array.from({ length: DUPLICATE_KEYS }, (_, n) => `dup:${impl.name}:${n}`),
      impl.first,
    );
  }
  const duplicate = await scenario(
    "duplicate: claim of a completed key",
    implementations.map((impl) => ({ ...impl, run: impl.duplicate, operations: 1 })),
    server.admin,
    (impl) => `dup:${impl.name}:${Math.floor(Math.random() * DUPLICATE_KEYS)}`,
  );

  const rows = [...first, ...duplicate];
  const table = render(rows);
  console.log(table);
  if (!QUICK) {
    const header =
      `Redis stores, one run on one redis-server ${version} (127.0.0.1, no persistence); ` +
      `Node ${process.version}, ${os.cpus()[0]?.model.trim() ?? "CPU"} × ${os.cpus().length}; ` +
      `${CONCURRENCY} operations in flight on one connection each; ${ROUNDS} interleaved rounds of ${ROUND_MS} ms per implementation; ` +
      `load average at the start ${LOAD.toFixed(2)} (client, Redis and anything else share the CPUs).`;
    const out = fileURLToPath(new URL("./results/stores-redis.md", import.meta.url));
    mkdirSync(fileURLToPath(new URL("./results/", import.meta.url)), { recursive: true });
    writeFileSync(out, `${header}\n\n${table}\n\n${NOTES}\n`);
    console.log(`\nwrote ${out}`);
  }
} finally {
  ours.disconnect();
  oursPipelined.disconnect();
  bare.disconnect();
  await adapter.disconnect();
  server.stop();
}

function render(rows) {
  const lines = [
    "| path | implementation | per second | vs @interlock/redis | round trips per path | round trips per store operation | client CPU µs per path | Redis CPU µs per path |",
    "|---|---|---:|---:|---:|---:|---:|---:|",
  ];
  for (const row of rows) {
    const ours = rows.find((r) => r.scenario === row.scenario && r.name === "@interlock/redis");
    lines.push(
      `| ${row.scenario} | ${row.name} | ${Math.round(row.perSecond).toLocaleString("en-US")} | ` +
        `${(row.perSecond / ours.perSecond).toFixed(2)}× | ${row.tripsPerIteration.toFixed(2)} | ` +
        `${(row.tripsPerIteration / row.operations).toFixed(2)} | ${row.clientCpu.toFixed(1)} | ${row.serverCpu.toFixed(1)} |`,
    );
  }
  return lines.join("\n");
}
