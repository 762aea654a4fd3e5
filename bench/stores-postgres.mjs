/**
 * PostgreSQL store benchmark: claim + complete per second through @interlock/postgres, and
 * statements per operation counted by the server (pg_stat_statements). Target: exactly one.
 *
 *   pnpm --filter @interlock/postgres build && node bench/stores-postgres.mjs   (about 40 s)
 *   node bench/stores-postgres.mjs --quick                                      (smoke run, writes nothing)
 *
 * Starts its own throwaway PostgreSQL (initdb + postgres on a free 127.0.0.1 port, as the
 * `postgres` user when run as root; fsync off, as in the tests), or uses DATABASE_URL (which
 * must have pg_stat_statements preloaded). Runs the built package, as users get it.
 */

import { execFileSync, spawn } from "node:child_process";
import {
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import os from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const dist = here("../packages/postgres/dist/index.js");
if (!existsSync(dist)) {
  console.error("Build the package first: pnpm --filter @interlock/postgres build");
  process.exit(1);
}
const { migrate, postgresStore } = await import(dist);
const pg = createRequire(here("../packages/postgres/package.json"))("pg");

const QUICK = process.argv.includes("--quick");
const SECONDS = QUICK ? 1 : 5;
const ROUNDS = QUICK ? 2 : 10;
const REPLAY_KEYS = 2_000;
const CONCURRENCY = 16;
const BODY = new TextEncoder().encode(JSON.stringify({ id: "pay_123", status: "succeeded", amount: 4200 }));
const HEADERS = [
  ["content-type", "application/json"],
  ["location", "/payments/pay_123"],
];

// ---------------------------------------------------------------------------------------
// A throwaway server

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

function findBin() {
  const dirs = [];
  try {
    dirs.push(execFileSync("pg_config", ["--bindir"], { encoding: "utf8" }).trim());
  } catch {}
  if (existsSync("/usr/lib/postgresql")) {
    for (const v of readdirSync("/usr/lib/postgresql").sort((a, b) => Number(b) - Number(a))) {
      dirs.push(`/usr/lib/postgresql/${v}/bin`);
    }
  }
  dirs.push(...(process.env.PATH ?? "").split(":"));
  const dir = dirs.find((d) => d && existsSync(join(d, "initdb")) && existsSync(join(d, "postgres")));
  if (!dir) throw new Error("PostgreSQL server not found: apt-get install -y postgresql-15, or set DATABASE_URL");
  return dir;
}

const root = process.getuid?.() === 0;
const as = (cmd, args) => (root ? ["runuser", ["-u", "postgres", "--", cmd, ...args]] : [cmd, args]);

async function startPostgres() {
  const bin = findBin();
  const dir = mkdtempSync(join(os.tmpdir(), "interlock-bench-pg-"));
  const data = join(dir, "data");
  mkdirSync(data, { mode: 0o700 });
  if (root) {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }));
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }));
    chownSync(dir, uid, gid);
    chownSync(data, uid, gid);
  }
  execFileSync(...as(join(bin, "initdb"), ["-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"]), {
    stdio: "pipe",
  });
  const port = await freePort();
  const child = spawn(
    ...as(join(bin, "postgres"), [
      ...["-D", data, "-p", String(port), "-k", dir, "-h", "127.0.0.1"],
      ...["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
      ...["-c", "shared_preload_libraries=pg_stat_statements"],
    ]),
    { stdio: "ignore" },
  );
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  for (let i = 0; ; i++) {
    const probe = new pg.Client({ connectionString: url });
    try {
      await probe.connect();
      await probe.end();
      break;
    } catch {
      await probe.end().catch(() => {});
      if (i > 300) throw new Error("postgres did not start");
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const postmaster = Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0]);
  process.on("exit", () => {
    try {
      process.kill(postmaster, "SIGQUIT");
    } catch {}
  });
  const stop = async () => {
    const exited = new Promise((resolve) => child.once("exit", resolve));
    process.kill(postmaster, "SIGINT"); // fast shutdown
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  return { url, stop };
}

// ---------------------------------------------------------------------------------------
// Measurement

/**
 * One thing to measure: `op(i)` runs with CONCURRENCY in flight, in slices of `seconds`;
 * slices of every variant alternate, so drift in machine load hits them all alike.
 */
function variant(op) {
  const latencies = [];
  let elapsed = 0;
  let n = 0;
  return {
    get count() {
      return latencies.length;
    },
    /** Forgets what was measured so far (the warm-up); keys keep counting up. */
    reset() {
      latencies.length = 0;
      elapsed = 0;
    },
    async slice(seconds) {
      const started = performance.now();
      const end = started + seconds * 1000;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (performance.now() < end) {
            const t = performance.now();
            await op(n++);
            latencies.push(performance.now() - t);
          }
        }),
      );
      elapsed += (performance.now() - started) / 1000;
    },
    result() {
      const sorted = [...latencies].sort((a, b) => a - b);
      const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
      return { count: sorted.length, perSecond: sorted.length / elapsed, p50: at(0.5), p99: at(0.99) };
    },
  };
}

/** Calls per statement kind on `table` since the last reset. */
async function statements(pool, table) {
  const { rows } = await pool.query("SELECT query, calls FROM pg_stat_statements WHERE query LIKE $1", [
    `%"${table}"%`,
  ]);
  const counts = { claim: 0, complete: 0, other: 0 };
  for (const { query, calls } of rows) {
    const kind = query.startsWith("WITH bounded") ? "claim" : query.startsWith("UPDATE") ? "complete" : "other";
    counts[kind] += Number(calls);
  }
  return counts;
}

/**
 * Claim + complete on new keys, and replays of completed keys, through one store configuration.
 * Each on its own table, so the server's statement counts of one never mix with the other's.
 */
async function storeVariants(pool, preparedStatements) {
  const base = `bench_${preparedStatements ? "prepared" : "plain"}_${Date.now().toString(36)}`;
  const response = { status: 201, headers: HEADERS, body: BODY };
  const open = async (table) => {
    await migrate(pool, { table });
    return postgresStore(pool, { table, preparedStatements });
  };
  const claimComplete = async (store, key) => {
    const claim = await store.claim(key, { fingerprint: "fp", lockTtlMs: 30_000 });
    if (claim.state !== "claimed") throw new Error(`${key}: ${claim.state}`);
    if (!(await store.complete(key, claim.token, response, { ttlMs: 3_600_000 }))) throw new Error("refused");
  };
  const pairStore = await open(`${base}_pairs`);
  const replayStore = await open(`${base}_replays`);
  for (let i = 0; i < REPLAY_KEYS; i += CONCURRENCY) {
    await Promise.all(Array.from({ length: CONCURRENCY }, (_, j) => claimComplete(replayStore, `k${i + j}`)));
  }
  return {
    tables: { pairs: `${base}_pairs`, replays: `${base}_replays` },
    pairs: variant((i) => claimComplete(pairStore, `k${i}`)),
    replays: variant(async (i) => {
      const claim = await replayStore.claim(`k${i % REPLAY_KEYS}`, { fingerprint: "fp", lockTtlMs: 30_000 });
      if (claim.state !== "completed") throw new Error(`replay saw ${claim.state}`);
    }),
  };
}

/**
 * The floor: the same work as plain statements on a bare table, as an app would write it
 * without a store (an INSERT, then an UPDATE storing the response; a SELECT to replay): no
 * conditions, no fencing, no expiry, no read-back.
 */
async function floorVariants(pool) {
  const table = `bench_floor_${Date.now().toString(36)}`;
  await pool.query(`CREATE TABLE "${table}" (k text PRIMARY KEY, status int, headers jsonb, body bytea)`);
  const headersJson = JSON.stringify(HEADERS);
  const pairs = variant(async (i) => {
    await pool.query(`INSERT INTO "${table}" (k) VALUES ($1)`, [`k${i}`]);
    await pool.query(`UPDATE "${table}" SET status = 201, headers = $2, body = $3 WHERE k = $1`, [
      `k${i}`,
      headersJson,
      BODY,
    ]);
  });
  const replays = variant((i) =>
    pool.query(`SELECT status, headers, body FROM "${table}" WHERE k = $1`, [`r${i % REPLAY_KEYS}`]),
  );
  await pool.query(
    `INSERT INTO "${table}" SELECT 'r' || i, 201, $1, $2 FROM generate_series(0, ${REPLAY_KEYS - 1}) AS i`,
    [headersJson, BODY],
  );
  return { pairs, replays };
}

async function main() {
  const external = process.env.DATABASE_URL;
  const server = external ? { url: external, stop: async () => {} } : await startPostgres();
  const pool = new pg.Pool({ connectionString: server.url, max: CONCURRENCY });
  pool.on("error", () => {});
  try {
    await pool.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
    const version = (await pool.query("SHOW server_version")).rows[0].server_version;
    const floor = await floorVariants(pool);
    const plain = await storeVariants(pool, false);
    const prepared = await storeVariants(pool, true);
    const all = [floor, plain, prepared].flatMap((v) => [v.pairs, v.replays]);

    // Warm-up (connections, plans, caches), then count statements from here on.
    for (const v of all) {
      await v.slice(QUICK ? 0.1 : 0.5);
      v.reset();
    }
    await pool.query("SELECT pg_stat_statements_reset()");
    for (let round = 0; round < ROUNDS; round++) for (const v of all) await v.slice(SECONDS / ROUNDS);
    const tableCounts = async (v) => ({
      pairs: await statements(pool, v.tables.pairs),
      replays: await statements(pool, v.tables.replays),
    });
    const statementsOf = new Map([
      [plain, await tableCounts(plain)],
      [prepared, await tableCounts(prepared)],
    ]);

    const fmt = (n) => Math.round(n).toLocaleString("en-US");
    const ms = (n) => n.toFixed(2);
    const per = (calls, ops) => (calls / ops).toFixed(2);
    const row = (label, v, base, counts) => {
      const m = v.result();
      const ratio = (m.perSecond / base.result().perSecond).toFixed(2);
      return `| ${label} | ${fmt(m.perSecond)} | ${ms(m.p50)} | ${ms(m.p99)} | ${ratio} | ${counts} |`;
    };
    const pairCounts = (v) => {
      const s = statementsOf.get(v).pairs;
      const n = v.pairs.count;
      return `claim ${per(s.claim, n)}, complete ${per(s.complete, n)}, other ${s.other}`;
    };
    const replayCounts = (v) => {
      const s = statementsOf.get(v).replays;
      return `claim ${per(s.claim, v.replays.count)}, other ${s.other + s.complete}`;
    };
    const lines = [
      "# @interlock/postgres benchmark",
      "",
      `PostgreSQL ${version} on 127.0.0.1 (fsync off), Node ${process.version}, ` +
        `${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"} shared by the server, the benchmark and anything else running; ` +
        `${CONCURRENCY} operations in flight on a pool of ${CONCURRENCY}; ${SECONDS} s per row, in ${ROUNDS} interleaved slices. ` +
        "Statements counted on the server by pg_stat_statements.",
      "",
      "| operation | per second | p50 ms | p99 ms | vs floor | statements per operation (target 1) |",
      "|---|---:|---:|---:|---:|---|",
      row("claim + complete, new key", plain.pairs, floor.pairs, pairCounts(plain)),
      row("claim + complete, new key (`preparedStatements`)", prepared.pairs, floor.pairs, pairCounts(prepared)),
      row("floor: INSERT + UPDATE on a bare table", floor.pairs, floor.pairs, "1 + 1"),
      row("claim of a completed key (replay)", plain.replays, floor.replays, replayCounts(plain)),
      row("claim of a completed key (`preparedStatements`)", prepared.replays, floor.replays, replayCounts(prepared)),
      row("floor: SELECT of the row", floor.replays, floor.replays, "1"),
      "",
      'Claim + complete rows count pairs. "vs floor": throughput relative to the floor row of the same kind,',
      "measured in the same run (the floor uses unnamed statements, as `pg` does by default).",
      "",
    ];
    const markdown = lines.join("\n");
    console.log(markdown);
    if (!QUICK) {
      mkdirSync(here("./results"), { recursive: true });
      writeFileSync(here("./results/stores-postgres.md"), markdown);
      console.log("wrote bench/results/stores-postgres.md");
    }
  } finally {
    await pool.end();
    await server.stop();
  }
}

await main();
