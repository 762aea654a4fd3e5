/** Behaviour specific to the postgres store, beyond the shared conformance suite. */

import type { ClaimResult } from "@interlock/core";
import { busyClientWarnings } from "@interlock/test-harness";
import pg from "pg";
import { afterAll, describe, expect, inject, it } from "vitest";
import { migrate, PostgresStore, postgresStore } from "../src/index.js";
import { endPool, freshStore, freshTable, newPool, response, uniqueTable } from "./helpers.js";

const pool = newPool();
afterAll(() => endPool(pool));

const LONG = 60_000;
const record = (result: ClaimResult) => {
  expect(result.state).toBe("completed");
  return (result as Extract<ClaimResult, { state: "completed" }>).record;
};

describe("keys", () => {
  it("accepts keys up to the contract's 1,024 characters, however many bytes they take", async () => {
    const store = await freshStore(pool, "keys");
    // 3 bytes per character in UTF-8: 3 KiB, more than a btree entry may hold (2,704 bytes).
    // The primary key is the key's sha256, so this fits.
    const wide = "鍵".repeat(1_024);
    const emoji = "🔑".repeat(512); // 1,024 UTF-16 units, 2 KiB
    for (const key of [wide, emoji, `${wide.slice(0, 1_023)}x`]) {
      const claim = await store.claim(key, { fingerprint: "fp", lockTtlMs: LONG });
      expect(claim.state).toBe("claimed");
      const token = (claim as { token: string }).token;
      expect(await store.complete(key, token, response(key.slice(0, 3)), { ttlMs: LONG })).toBe(true);
    }
    const again = record(await store.claim(wide, { fingerprint: "fp", lockTtlMs: LONG }));
    expect(new TextDecoder().decode(again.body)).toBe("鍵鍵鍵");
  });

  it("refuses what PostgreSQL text cannot hold (U+0000, unpaired surrogates) instead of merging keys", async () => {
    const store = await freshStore(pool, "badkeys");
    for (const key of ["a\0b", "a\ud800", "\udc00b"]) {
      await expect(store.claim(key, { fingerprint: "fp", lockTtlMs: LONG })).rejects.toMatchObject({
        code: "invalid_configuration",
      });
    }
    await expect(store.claim("k", { fingerprint: "f\0", lockTtlMs: LONG })).rejects.toMatchObject({
      code: "invalid_configuration",
    });
    // A token that cannot exist is simply not the current one.
    expect(await store.release("k", "t\0")).toBe(false);
  });
});

describe("records", () => {
  it("reports times from the database clock, in ms, and lockExpiresAt for a live lock", async () => {
    const store = await freshStore(pool, "times");
    const before = Date.now();
    const claim = await store.claim("k", { fingerprint: "fp-1", lockTtlMs: 5_000 });
    const seen = await store.claim("k", { fingerprint: "fp-2", lockTtlMs: 5_000 });
    expect(seen).toMatchObject({ state: "in_flight", fingerprint: "fp-1" });
    const expiresAt = (seen as Extract<ClaimResult, { state: "in_flight" }>).lockExpiresAt!;
    expect(Number.isInteger(expiresAt)).toBe(true);
    expect(Math.abs(expiresAt - (before + 5_000))).toBeLessThan(1_000);
    await store.complete("k", (claim as { token: string }).token, response("x"), { ttlMs: LONG });
    const { createdAt, completedAt } = record(await store.claim("k", { fingerprint: "fp", lockTtlMs: LONG }));
    expect(Number.isInteger(createdAt) && Number.isInteger(completedAt)).toBe(true);
    expect(completedAt).toBeGreaterThanOrEqual(createdAt);
    expect(Math.abs(createdAt - before)).toBeLessThan(1_000);
  });

  it("stores bodies as bytea, headers as a JSON array of pairs, times as timestamptz", async () => {
    const table = await freshTable(pool, "columns");
    const store = postgresStore(pool, { table });
    const claim = await store.claim("k", { fingerprint: "fp", lockTtlMs: LONG });
    const headers: Array<[string, string]> = [
      ["set-cookie", "a=1"],
      ["set-cookie", "b=2"],
      ["x-unicode", "ключ ✓"],
    ];
    const body = Uint8Array.from([0, 255, 1, 254]);
    await store.complete("k", (claim as { token: string }).token, { status: 207, headers, body }, { ttlMs: LONG });
    const got = record(await store.claim("k", { fingerprint: "fp", lockTtlMs: LONG }));
    expect(got).toMatchObject({ status: 207, headers, fingerprint: "fp" });
    expect(got.body).toBeInstanceOf(Uint8Array);
    expect(Array.from(got.body)).toEqual([0, 255, 1, 254]);

    const row = await pool.query(
      `SELECT key, state, pg_typeof(body)::text AS body_type, encode(body, 'hex') AS hex, headers,
              pg_typeof(headers)::text AS headers_type, pg_typeof(expires_at)::text AS time_type,
              key_hash = sha256(convert_to(key, 'UTF8')) AS hashed
       FROM "${table}"`,
    );
    expect(row.rows).toEqual([
      {
        key: "k",
        state: "completed",
        body_type: "bytea",
        hex: "00ff01fe",
        headers,
        headers_type: "jsonb",
        time_type: "timestamp with time zone",
        hashed: true,
      },
    ]);
  });

  it("ignores the pool's own type parsers (a user's pg.types settings cannot change records)", async () => {
    const odd = newPool({ types: { getTypeParser: () => () => "parsed-by-user" } as never });
    try {
      const store = await freshStore(odd, "types");
      const claim = await store.claim("k", { fingerprint: "fp", lockTtlMs: LONG });
      await store.complete("k", (claim as { token: string }).token, response("body"), { ttlMs: LONG });
      const got = record(await store.claim("k", { fingerprint: "fp", lockTtlMs: LONG }));
      expect(new TextDecoder().decode(got.body)).toBe("body");
      expect(got.headers).toEqual([["content-type", "text/plain"]]);
    } finally {
      await odd.end();
    }
  });

  it("reads its rows on a pool whose pg returns binary results (pg's `binary` option)", async () => {
    const binary = newPool({ binary: true } as pg.PoolConfig); // a ClientConfig option @types/pg leaves out
    try {
      const store = await freshStore(binary, "binary");
      const before = Date.now();
      const claim = await store.claim("k", { fingerprint: "fp", lockTtlMs: LONG });
      expect(claim.state).toBe("claimed");
      const seen = await store.claim("k", { fingerprint: "other", lockTtlMs: LONG });
      expect(seen).toMatchObject({ state: "in_flight", fingerprint: "fp" });
      const { lockExpiresAt } = seen as Extract<ClaimResult, { state: "in_flight" }>;
      expect(Math.abs(lockExpiresAt! - (before + LONG))).toBeLessThan(1_000);
      const headers: Array<[string, string]> = [["x-unicode", "ключ ✓"]];
      const body = Uint8Array.from([0, 255, 1, 254]);
      const token = (claim as { token: string }).token;
      expect(await store.complete("k", token, { status: 207, headers, body }, { ttlMs: LONG })).toBe(true);
      const got = record(await store.claim("k", { fingerprint: "fp", lockTtlMs: LONG }));
      expect(got).toMatchObject({ status: 207, headers, fingerprint: "fp" });
      expect(Array.from(got.body)).toEqual([0, 255, 1, 254]);
      expect(Math.abs(got.createdAt - before)).toBeLessThan(1_000);
      expect(got.completedAt).toBeGreaterThanOrEqual(got.createdAt);
    } finally {
      await binary.end();
    }
  });

  it("refuses malformed header pairs", async () => {
    const store = await freshStore(pool, "badheaders");
    const claim = await store.claim("k", { fingerprint: "fp", lockTtlMs: LONG });
    const token = (claim as { token: string }).token;
    for (const headers of [[["a"]], [["a", 1]], [["a", "b\0"]]]) {
      await expect(
        store.complete("k", token, { status: 200, headers: headers as never, body: new Uint8Array() }, { ttlMs: LONG }),
      ).rejects.toMatchObject({ code: "invalid_configuration" });
    }
    expect(await store.release("k", token)).toBe(true);
  });
});

describe("connections", () => {
  it("works on a single pg.Client as well as on a Pool, and never ends it", async () => {
    const table = uniqueTable("client");
    const client = new pg.Client({ connectionString: inject("databaseUrl") });
    await client.connect();
    try {
      await migrate(client, { table });
      const store = new PostgresStore(client, { table });
      // Concurrent operations take turns on the one connection: pg is never handed a second
      // query while one runs, so it warns of nothing.
      const warnings = await busyClientWarnings(async () => {
        const results = await Promise.all(
          Array.from({ length: 5 }, () => store.claim("k", { fingerprint: "fp", lockTtlMs: LONG })),
        );
        expect(results.filter((r) => r.state === "claimed")).toHaveLength(1);
        expect((await client.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
      });
      expect(warnings).toEqual([]);
    } finally {
      await client.end();
    }
  });

  it("on a single pg.Client, a statement whose time ran out while it waited its turn is never sent", async () => {
    const table = uniqueTable("client_turns");
    const client = new pg.Client({ connectionString: inject("databaseUrl") });
    await client.connect();
    try {
      await migrate(client, { table });
      const store = new PostgresStore(client, { table, operationTimeoutMs: 150 });
      const sent: string[] = [];
      const query = client.query.bind(client) as (config: { text: string }) => Promise<unknown>;
      // The first statement holds the connection for 400 ms (the server sleeps before answering).
      (client as unknown as { query: unknown }).query = (config: { text: string }) => {
        sent.push(config.text);
        if (sent.length === 1) return query({ text: "SELECT pg_sleep(0.4)" }).then(() => query(config));
        return query(config);
      };
      const [first, second] = await Promise.allSettled([
        store.claim("a", { fingerprint: "fp", lockTtlMs: LONG }),
        store.claim("b", { fingerprint: "fp", lockTtlMs: LONG }),
      ]);
      expect(first.status).toBe("rejected"); // its own 150 ms passed while the server slept
      expect(second).toMatchObject({ status: "rejected", reason: { name: "StoreUnavailableError" } });
      await new Promise((resolve) => setTimeout(resolve, 600)); // the first statement has long finished
      expect(sent).toHaveLength(1); // the second was never sent
    } finally {
      await client.end();
    }
  });

  it("on a single pg.Client, a connection lost while statements wait their turn fails each of them at once", async () => {
    const table = uniqueTable("client_lost");
    const client = new pg.Client({ connectionString: inject("databaseUrl") });
    client.on("error", () => {}); // the app's listener: the lost connection is reported there too
    await client.connect();
    try {
      await migrate(client, { table });
      const { pid } = (await client.query("SELECT pg_backend_pid() AS pid")).rows[0] as { pid: number };
      const store = new PostgresStore(client, { table, operationTimeoutMs: 10_000 });
      const query = client.query.bind(client) as (config: { text: string }) => Promise<unknown>;
      let sent = 0;
      // The first statement holds the connection (the server sleeps) until the backend is ended.
      (client as unknown as { query: unknown }).query = (config: { text: string }) =>
        ++sent === 1 ? query({ text: "SELECT pg_sleep(30)" }).then(() => query(config)) : query(config);
      const started = performance.now();
      const claims = Promise.allSettled(
        ["a", "b", "c"].map((key) => store.claim(key, { fingerprint: "fp", lockTtlMs: LONG })),
      );
      await new Promise((resolve) => setTimeout(resolve, 200));
      await pool.query("SELECT pg_terminate_backend($1)", [pid]);
      const results = await claims;
      expect(results.map((result) => result.status === "rejected" && (result.reason as Error).name)).toEqual([
        "StoreUnavailableError",
        "StoreUnavailableError",
        "StoreUnavailableError",
      ]);
      expect(performance.now() - started).toBeLessThan(5_000); // by the lost connection, not the 10 s timeout
    } finally {
      await client.end().catch(() => {});
    }
  });

  it("a missing table is a configuration error that says how to create it", async () => {
    const store = postgresStore(pool, { table: uniqueTable("missing") });
    await expect(store.claim("k", { fingerprint: "fp", lockTtlMs: LONG })).rejects.toMatchObject({
      name: "InterlockConfigError",
      message: expect.stringContaining("migrate()"),
    });
  });

  it("migrating into a missing schema is a configuration error that says to create it (migrate() creates only the table)", async () => {
    await expect(
      migrate(pool, { schema: `missing_${process.pid}`, table: uniqueTable("in_missing") }),
    ).rejects.toMatchObject({
      name: "InterlockConfigError",
      message: expect.stringContaining("CREATE SCHEMA"),
    });
  });

  it("validates its options", () => {
    for (const options of [
      { operationTimeoutMs: 0 },
      { operationTimeoutMs: 1.5 },
      // Past setTimeout's range (2^31 - 1 ms) a timer fires at once: every operation would time
      // out after 1 ms ("no answer within 9007199254740991 ms").
      { operationTimeoutMs: 2 ** 31 },
      { operationTimeoutMs: Number.MAX_SAFE_INTEGER },
      { maxRecordBytes: -1 },
      { table: 'x"; DROP TABLE y; --' },
      { table: "1abc" },
      { table: "t".repeat(49) },
      { schema: "a.b" },
    ]) {
      expect(() => postgresStore(pool, options), JSON.stringify(options)).toThrow(/must be/);
    }
    expect(() => postgresStore({} as never)).toThrow(/Pool or Client/);
    expect(postgresStore(pool).maxRecordBytes).toBe(1024 * 1024);
    expect(postgresStore(pool).operationTimeoutMs).toBe(2_000);
  });

  it("takes the longest timeout a timer can hold", async () => {
    const table = await freshTable(pool, "timer");
    const fresh = newPool(); // opening a connection takes longer than a misfired 1 ms timer
    try {
      const store = postgresStore(fresh, { operationTimeoutMs: 2 ** 31 - 1, table });
      expect((await store.claim("k", { fingerprint: "fp", lockTtlMs: LONG })).state).toBe("claimed");
    } finally {
      await fresh.end();
    }
  });
});
