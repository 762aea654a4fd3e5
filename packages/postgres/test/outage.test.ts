/**
 * The server goes away: operations fail with StoreUnavailableError within the timeout (never a
 * false win, never a hang), and succeed again once it is back, on the same pool.
 */

import { connect as connectTcp, createServer, type Server, type Socket } from "node:net";
import type { ClaimResult } from "@interlock/core";
import { freePort, type PostgresServer, startPostgres } from "@interlock/test-harness";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { migrate, type PostgresStore, postgresStore } from "../src/index.js";
import { endPool, errorResponse, response, sleep, uniqueTable } from "./helpers.js";

const TIMEOUT = 1_000;
const SLACK = 500;

type Outcome = { ok: true; state: string } | { ok: false; name: string; code: string };

/** Runs `operation`, timing it and recording how it ended. */
async function outcome<T>(operation: () => Promise<T>): Promise<{ outcome: Outcome; ms: number; value?: T }> {
  const started = Date.now();
  try {
    const value = await operation();
    const state = typeof value === "object" && value !== null ? String((value as ClaimResult).state) : String(value);
    return { outcome: { ok: true, state }, ms: Date.now() - started, value };
  } catch (error) {
    const e = error as { name: string; code: string };
    return { outcome: { ok: false, name: e.name, code: e.code }, ms: Date.now() - started };
  }
}

const unavailable = { ok: false, name: "StoreUnavailableError", code: "store_unavailable" };

describe("the server stops in the middle of a run", () => {
  // Its own server: stopping the shared one would fail the other test files.
  let server: PostgresServer;
  let pool: pg.Pool;
  let store: PostgresStore;

  beforeAll(async () => {
    server = await startPostgres({ throwaway: true });
    pool = new pg.Pool({ connectionString: server.url, max: 4 });
    pool.on("error", () => {}); // idle connections die with the server
    const table = uniqueTable("outage");
    await migrate(pool, { table });
    store = postgresStore(pool, { table, operationTimeoutMs: TIMEOUT });
  });
  afterAll(async () => {
    await pool?.end();
    await server?.stop();
  });

  it("fails with StoreUnavailableError within the timeout while down, and recovers when it is back", async () => {
    // Traffic before, during and after the outage, on fresh keys.
    const log: Array<{ outcome: Outcome; ms: number; at: number }> = [];
    let running = true;
    let n = 0;
    const traffic = (async () => {
      while (running) {
        const key = `traffic-${++n}`;
        const claim = await outcome(() => store.claim(key, { fingerprint: "fp", lockTtlMs: 30_000 }));
        log.push({ ...claim, at: Date.now() });
        const token = (claim.value as { token?: string } | undefined)?.token;
        if (token !== undefined) {
          const complete = await outcome(() => store.complete(key, token, response("ok"), { ttlMs: 60_000 }));
          log.push({ ...complete, at: Date.now() });
        }
        await sleep(5);
      }
    })();

    const before = await store.claim("before", { fingerprint: "fp", lockTtlMs: 30_000 });
    expect(before.state).toBe("claimed");
    await store.complete("before", (before as { token: string }).token, response("kept"), { ttlMs: 600_000 });
    await sleep(200);

    const down: Array<{ outcome: Outcome; ms: number }> = [];
    await server.restart({
      whileDown: async () => {
        const until = Date.now() + 1_500;
        while (Date.now() < until) {
          down.push(await outcome(() => store.claim(`down-${down.length}`, { fingerprint: "fp", lockTtlMs: 30_000 })));
          down.push(await outcome(() => store.complete("before", "t", response("x"), { ttlMs: 1_000 })));
          down.push(await outcome(() => store.release("before", "t")));
          down.push(await outcome(() => store.extend("before", "t", 1_000)));
        }
      },
    });

    // Back: the same pool reconnects. The first operations may still meet a connection the
    // server closed while down (then they fail as unavailable, quickly); soon they succeed.
    const backAt = Date.now();
    let recovered: ClaimResult | undefined;
    while (recovered === undefined && Date.now() - backAt < 10_000) {
      recovered = await store.claim("after", { fingerprint: "fp", lockTtlMs: 30_000 }).catch(() => undefined);
      if (recovered === undefined) await sleep(50);
    }
    running = false;
    await traffic;

    expect(down.length).toBeGreaterThanOrEqual(4);
    for (const entry of down) {
      expect(entry.outcome).toEqual(unavailable);
      expect(entry.ms).toBeLessThan(TIMEOUT + SLACK);
    }
    expect(recovered?.state).toBe("claimed");
    expect(Date.now() - backAt).toBeLessThan(5_000);
    // What was completed before the outage is still there.
    const kept = await store.claim("before", { fingerprint: "fp", lockTtlMs: 30_000 });
    expect(kept.state).toBe("completed");
    // The traffic saw wins or StoreUnavailableError, nothing else, and never waited past the timeout.
    for (const entry of log) {
      if (entry.outcome.ok) expect(["claimed", "true"]).toContain(entry.outcome.state);
      else expect(entry.outcome).toEqual(unavailable);
      expect(entry.ms).toBeLessThan(TIMEOUT + SLACK);
    }
    expect(log.some((e) => !e.outcome.ok)).toBe(true);
    expect(log.filter((e) => e.at > backAt + 1_000).every((e) => e.outcome.ok)).toBe(true);
  });
});

describe("a server that never answers, or no free connection", () => {
  let silent: Server;
  const sockets: Socket[] = [];
  let port: number;

  beforeAll(async () => {
    port = await freePort();
    silent = createServer((socket) => sockets.push(socket)); // accepts, then says nothing
    await new Promise<void>((resolve) => silent.listen(port, "127.0.0.1", resolve));
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));
  });

  it("a silent server: every operation fails with StoreUnavailableError within operationTimeoutMs", async () => {
    const pool = new pg.Pool({ connectionString: `postgres://postgres@127.0.0.1:${port}/x`, max: 2 });
    pool.on("error", () => {});
    const store = postgresStore(pool, { operationTimeoutMs: 500 });
    const operations: Array<() => Promise<unknown>> = [
      () => store.claim("k", { fingerprint: "fp", lockTtlMs: 1_000 }),
      () => store.complete("k", "t", response("x"), { ttlMs: 1_000 }),
      () => store.release("k", "t"),
      () => store.extend("k", "t", 1_000),
      () => store.purgeExpired(),
    ];
    for (const operation of operations) {
      const result = await outcome(operation);
      expect(result.outcome).toEqual(unavailable);
      expect(result.ms).toBeGreaterThanOrEqual(450);
      expect(result.ms).toBeLessThan(500 + SLACK);
    }
    for (const socket of sockets) socket.destroy();
    await pool.end();
  });

  it("no free pool connection: fails within operationTimeoutMs, and the statement never runs late", async () => {
    const pool = new pg.Pool({ connectionString: inject("databaseUrl"), max: 1 });
    pool.on("error", () => {});
    const table = uniqueTable("exhausted");
    await migrate(pool, { table });
    const store = postgresStore(pool, { table, operationTimeoutMs: 300 });
    const busy = await pool.connect(); // the only connection, held elsewhere
    const result = await outcome(() => store.claim("k", { fingerprint: "late", lockTtlMs: 60_000 }));
    expect(result.outcome).toEqual(unavailable);
    expect(result.ms).toBeLessThan(300 + SLACK);
    busy.release();
    await sleep(50); // the pool hands the connection to the abandoned claim, which gives it back unused
    expect((await store.claim("k", { fingerprint: "fp", lockTtlMs: 60_000 })).state).toBe("claimed");
    await endPool(pool);
  });

  /**
   * A store with a 4 s budget, whose key "k" has an expired row another transaction holds (a
   * purge, or a `complete` in a transaction left open): a claim takes the row over once it has
   * its lock. 4 s: the largest margin (1 s) for the statement's trip to the server; at 300 ms it
   * was 75 ms, which a loaded CI machine overran (the statement reached the server late, still
   * waited when the client gave up, and landed once the lock went).
   */
  async function rowLocked(label: string, max: number) {
    const pool = new pg.Pool({ connectionString: inject("databaseUrl"), max });
    pool.on("error", () => {});
    const table = uniqueTable(label);
    await migrate(pool, { table });
    const store = postgresStore(pool, { table, operationTimeoutMs: 4_000 });
    expect((await store.claim("k", { fingerprint: "first", lockTtlMs: 50 })).state).toBe("claimed");
    await sleep(100); // the first lease is over
    const blocker = await pool.connect();
    await blocker.query("BEGIN");
    await blocker.query(`UPDATE "${table}" SET expires_at = expires_at`);
    return { pool, store, blocker };
  }

  /** The lock goes (the row as it was: expired); the refused claim took nothing, so a retry claims the key. */
  async function claimedOnceUnlocked(pool: pg.Pool, store: ReturnType<typeof postgresStore>, blocker: pg.PoolClient) {
    await blocker.query("ROLLBACK");
    blocker.release();
    await sleep(100);
    // Not in flight for a minute with nobody on it.
    expect((await store.claim("k", { fingerprint: "retry", lockTtlMs: 60_000 })).state).toBe("claimed");
    await endPool(pool);
  }

  it("a claim that waits on its key's row lock past operationTimeoutMs gives up at the server too: it never lands once the lock goes", async () => {
    const { pool, store, blocker } = await rowLocked("row_locked", 3);
    const result = await outcome(() => store.claim("k", { fingerprint: "late", lockTtlMs: 60_000 }));
    expect(result.outcome).toEqual(unavailable);
    expect(result.ms).toBeLessThan(4_000 + SLACK);
    await claimedOnceUnlocked(pool, store, blocker);
  });

  it("a claim that first waited for a pool connection still gives up on its key's row lock before its caller does", async () => {
    // 4 s: a row-lock wait of 3 s (the budget less a 1 s margin) if counted from the claim's start.
    const { pool, store, blocker } = await rowLocked("late_connection", 2);
    // The pool's other connection is busy for 2.5 s of the claim's 4: it reaches the server with 1.5 s left.
    const busy = await pool.connect();
    setTimeout(() => busy.release(), 2_500);
    const result = await outcome(() => store.claim("k", { fingerprint: "late", lockTtlMs: 60_000 }));
    expect(result.outcome).toEqual(unavailable);
    await sleep(300); // the caller was told "unavailable"; the statement must not still be waiting
    await claimedOnceUnlocked(pool, store, blocker);
  });

  /**
   * A store with a 1 s budget whose table another session holds in ACCESS EXCLUSIVE mode (as a
   * VACUUM FULL or ALTER TABLE does): a claim waits for the table's lock as it is parsed, before
   * its own lock_timeout is set. Returns how the claim ended and a check that, once the lock
   * goes, the key is free (the refused claim never landed).
   */
  async function claimBehindTableLock(label: string) {
    const pool = new pg.Pool({ connectionString: inject("databaseUrl"), max: 2 });
    pool.on("error", () => {});
    const table = uniqueTable(label);
    await migrate(pool, { table });
    const store = postgresStore(pool, { table, operationTimeoutMs: TIMEOUT });
    const locker = new pg.Client({ connectionString: inject("databaseUrl") });
    await locker.connect();
    await locker.query("BEGIN");
    await locker.query(`LOCK TABLE "${table}" IN ACCESS EXCLUSIVE MODE`);
    const result = await outcome(() => store.claim("k", { fingerprint: "late", lockTtlMs: 60_000 }));
    await locker.query("COMMIT");
    await locker.end();
    await sleep(300); // a claim still queued at the server lands now
    const retry = await store.claim("k", { fingerprint: "retry", lockTtlMs: 60_000 });
    await endPool(pool);
    return { result, retry };
  }

  it("a claim waiting for its table's lock (LOCK TABLE, VACUUM FULL) is cancelled at the server when its caller's time is up: it never lands once the lock goes", async () => {
    const { result, retry } = await claimBehindTableLock("table_locked");
    expect(result.outcome).toEqual(unavailable);
    expect(result.ms).toBeGreaterThanOrEqual(TIMEOUT * 0.75 - 50);
    expect(result.ms).toBeLessThan(TIMEOUT + SLACK);
    expect(retry.state).toBe("claimed"); // not 409 for a minute's lease with nobody on it
  });

  it("every connection held for long: the waits refused operations leave in pg-pool's queue stay bounded, and serve again once one frees", async () => {
    const pool = new pg.Pool({ connectionString: inject("databaseUrl"), max: 1 }); // no connectionTimeoutMillis
    pool.on("error", () => {});
    const table = uniqueTable("abandoned");
    await migrate(pool, { table });
    const store = postgresStore(pool, { table, operationTimeoutMs: 20 });
    const busy = await pool.connect();
    const claim = (key: string) => outcome(() => store.claim(key, { fingerprint: "fp", lockTtlMs: 60_000 }));
    for (let batch = 0; batch < 15; batch++) {
      const results = await Promise.all(Array.from({ length: 100 }, (_, i) => claim(`k${batch}:${i}`)));
      for (const result of results) expect(result.outcome).toEqual(unavailable);
    }
    // 1,000 waits given up on are still queued (pg-pool cannot take one back); the last 500
    // claims were refused without adding theirs.
    expect(pool.waitingCount).toBe(1_000);
    busy.release();
    await expect.poll(() => pool.waitingCount).toBe(0); // each handed back unused, at once
    // The pool is no longer refused (the count is the pool's): a store on it with time for a
    // statement on a loaded machine, which 20 ms is not, claims again.
    const roomy = postgresStore(pool, { table, operationTimeoutMs: TIMEOUT });
    expect((await roomy.claim("after", { fingerprint: "fp", lockTtlMs: 60_000 })).state).toBe("claimed");
    await endPool(pool);
  });
});

/** A FATAL ErrorResponse, as PostgreSQL sends it when it ends a connection (57P01: pg_terminate_backend, a fast shutdown). */
const fatalMessage = () =>
  errorResponse([
    ["S", "FATAL"],
    ["V", "FATAL"],
    ["C", "57P01"],
    ["M", "terminating connection due to administrator command"],
  ]);

describe("a connection the server ends in the read that completes its start-up", () => {
  let proxy: Server;
  let port: number;

  beforeAll(async () => {
    // Between pg and the server: the ReadyForQuery that ends the start-up ('Z', length 5) goes
    // out with the server's FATAL right behind it, in one write, and the connection closes.
    const target = new URL(inject("databaseUrl"));
    proxy = createServer((client) => {
      const server = connectTcp(Number(target.port), target.hostname);
      let ended = false;
      client.on("data", (chunk) => server.write(chunk)).on("error", () => {});
      server.on("error", () => {});
      server.on("data", (chunk: Buffer) => {
        if (ended) return;
        if (!chunk.includes(Buffer.from([0x5a, 0, 0, 0, 5]))) return void client.write(chunk);
        ended = true;
        client.end(Buffer.concat([chunk, fatalMessage()]));
        server.destroy();
      });
    });
    port = await freePort();
    await new Promise<void>((resolve) => proxy.listen(port, "127.0.0.1", resolve));
  });
  afterAll(async () => {
    await new Promise((resolve) => proxy.close(resolve));
  });

  it("fails with StoreUnavailableError, the error heard: never an unhandled 'error' event, which ends the process", async () => {
    const target = new URL(inject("databaseUrl"));
    target.host = `127.0.0.1:${port}`;
    const pool = new pg.Pool({ connectionString: target.href, max: 2 });
    pool.on("error", () => {}); // as the README asks: idle connections may die
    // An 'error' a connection emits with no listener is recorded here instead of thrown.
    const unheard: unknown[] = [];
    pool.on("connect", (client) => {
      const emit = client.emit.bind(client);
      client.emit = (event: string | symbol, ...args: unknown[]) => {
        if (event !== "error" || client.listenerCount("error") > 0) return emit(event, ...args);
        unheard.push(args[0]);
        return false;
      };
    });
    const store = postgresStore(pool, { operationTimeoutMs: TIMEOUT });
    for (let i = 0; i < 3; i++) {
      const result = await outcome(() => store.claim(`k${i}`, { fingerprint: "fp", lockTtlMs: 5_000 }));
      expect(result.outcome).toEqual(unavailable);
    }
    expect(unheard).toEqual([]);
    await pool.end().catch(() => {});
  });
});

describe("a connection the server ends while the store's statement runs on it", () => {
  it("is discarded, not pooled: the next operation gets a live connection, and the pool reports no idle connection lost", async () => {
    // One connection: the operation queued behind the ended one is handed whatever it leaves.
    const pool = new pg.Pool({ connectionString: inject("databaseUrl"), max: 1 });
    const poolErrors: Error[] = [];
    pool.on("error", (error) => poolErrors.push(error));
    const table = uniqueTable("ended_mid_statement");
    await migrate(pool, { table });
    const store = postgresStore(pool, { table, operationTimeoutMs: 10_000 });
    expect((await store.claim("k", { fingerprint: "first", lockTtlMs: 50 })).state).toBe("claimed");
    await sleep(100); // the lease is over: a claim takes the row over once it has its lock
    const admin = new pg.Client({ connectionString: inject("databaseUrl") });
    await admin.connect();
    try {
      await admin.query("BEGIN");
      await admin.query(`UPDATE "${table}" SET expires_at = expires_at`); // holds the row's lock
      const ended = outcome(() => store.claim("k", { fingerprint: "ended", lockTtlMs: 60_000 }));
      const queued = outcome(() => store.claim("other", { fingerprint: "fp", lockTtlMs: 60_000 }));
      let pid: number | undefined;
      await expect
        .poll(async () => {
          const { rows } = await admin.query(
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1 AND pid <> pg_backend_pid()",
            [`%"${table}"%`],
          );
          pid = rows[0]?.pid;
          return pid;
        })
        .toBeDefined();
      // FATAL 57P01 to the waiting claim, then the server closes its connection.
      await admin.query("SELECT pg_terminate_backend($1)", [pid]);
      expect((await ended).outcome).toEqual(unavailable);
      expect((await queued).outcome).toEqual({ ok: true, state: "claimed" });
      await admin.query("ROLLBACK");
      expect((await store.claim("k", { fingerprint: "retry", lockTtlMs: 60_000 })).state).toBe("claimed");
      expect(poolErrors).toEqual([]);
    } finally {
      await admin.end();
      await endPool(pool);
    }
  });
});
