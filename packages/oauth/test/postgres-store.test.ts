import { type AddressInfo, createServer, type Socket } from "node:net";
import { InterlockConfigError, StoreUnavailableError } from "@interlock/core";
import { busyClientWarnings, refusedPort } from "@interlock/test-harness";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { migrate, migrationSql, PostgresTokenStore } from "../src/postgres.js";
import { describeTokenStore } from "./token-store-suite.js";

const table = `oauth_tokens_${process.pid}_${Date.now().toString(36)}`;
const pools: pg.Pool[] = [];
const pool = (connectionString = inject("databaseUrl"), max = 4, options?: string) => {
  const made = new pg.Pool({ connectionString, max, options });
  made.on("error", () => {});
  pools.push(made);
  return made;
};
let admin: pg.Pool;

beforeAll(async () => {
  admin = pool();
  await migrate(admin, { table });
  await migrate(admin, { table }); // idempotent
});
afterAll(async () => {
  await admin.query(`DROP TABLE IF EXISTS "${table}"`);
  await Promise.all(pools.map((p) => p.end()));
});

describeTokenStore("postgres", {
  store: () => new PostgresTokenStore(pool(), { table }),
  elapse: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
});

// The contract again on connections whose default isolation is SERIALIZABLE: a write that loses
// to a concurrent commit is then a serialization failure, which the store reruns.
describeTokenStore("postgres, SERIALIZABLE by default", {
  store: () =>
    new PostgresTokenStore(pool(inject("databaseUrl"), 4, "-c default_transaction_isolation=serializable"), { table }),
  elapse: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
});

describe("postgres token store", () => {
  it("on a single pg.Client, concurrent operations take turns: all done, and pg warns of nothing", async () => {
    const client = new pg.Client({ connectionString: inject("databaseUrl") });
    await client.connect();
    try {
      const store = new PostgresTokenStore(client, { table });
      const keys = Array.from({ length: 8 }, (_, i) => `one-client:${i}`);
      const warnings = await busyClientWarnings(async () => {
        await Promise.all(keys.map((key) => store.set(key, `value of ${key}`, { ttlMs: 60_000 })));
        const read = await Promise.all(keys.map((key) => store.get(key)));
        expect(read.map((entry) => entry?.value)).toEqual(keys.map((key) => `value of ${key}`));
      });
      expect(warnings).toEqual([]);
    } finally {
      await client.end();
    }
  });

  it("on a single pg.Client, a statement whose time ran out while it waited its turn is never sent", async () => {
    const client = new pg.Client({ connectionString: inject("databaseUrl") });
    await client.connect();
    try {
      const store = new PostgresTokenStore(client, { table, operationTimeoutMs: 150 });
      const query = client.query.bind(client) as (config: { text: string }) => Promise<unknown>;
      const sent: string[] = [];
      // The first statement holds the connection for 400 ms (the server sleeps before answering).
      (client as unknown as { query: unknown }).query = (config: { text: string }) => {
        sent.push(config.text);
        if (sent.length === 1) return query({ text: "SELECT pg_sleep(0.4)" }).then(() => query(config));
        return query(config);
      };
      const [first, second] = await Promise.allSettled([
        store.set("queued:a", "a", { ttlMs: 60_000 }),
        store.set("queued:b", "b", { ttlMs: 60_000 }),
      ]);
      expect(first).toMatchObject({ status: "rejected", reason: { name: "StoreUnavailableError" } });
      expect(second).toMatchObject({ status: "rejected", reason: { name: "StoreUnavailableError" } });
      await new Promise((resolve) => setTimeout(resolve, 600)); // the first statement has long finished
      expect(sent).toHaveLength(1); // the second was never sent
    } finally {
      await client.end();
    }
  });

  it("on a pool with no free connection, a write given up on never runs once one frees", async () => {
    const exhausted = pool(inject("databaseUrl"), 1);
    const store = new PostgresTokenStore(exhausted, { table, operationTimeoutMs: 150 });
    const held = await exhausted.connect(); // the pool's only connection, busy elsewhere
    try {
      await expect(store.set("late:a", "a", { ttlMs: 60_000 })).rejects.toBeInstanceOf(StoreUnavailableError);
    } finally {
      held.release();
    }
    await expect.poll(() => exhausted.waitingCount).toBe(0); // the wait was served: handed back unused
    expect(await store.get("late:a")).toBeUndefined();
    // And the pool serves the store as before.
    expect(await store.set("late:a", "b", { ttlMs: 60_000 })).toEqual(expect.any(String));
    expect((await store.get("late:a"))?.value).toBe("b");
  });

  it("creates its table and expiry index with a migration you can also print", async () => {
    expect(migrationSql({ table: "tokens", schema: "auth" })).toContain('CREATE TABLE IF NOT EXISTS "auth"."tokens"');
    const { rows } = await admin.query("SELECT indexname FROM pg_indexes WHERE tablename = $1 ORDER BY indexname", [
      table,
    ]);
    expect(rows.map((r) => r.indexname)).toEqual([`${table}_expires_idx`, `${table}_pkey`]);
  });

  it("instances migrating at the same start-up do not trip over each other", async () => {
    for (let round = 1; round <= 3; round++) {
      const fresh = `${table}_m${round}`;
      const instances = Array.from({ length: 6 }, () => pool(inject("databaseUrl"), 1));
      try {
        await Promise.all(instances.map((p) => migrate(p, { table: fresh })));
        const store = new PostgresTokenStore(admin, { table: fresh });
        expect(await store.set("k", "v", { ttlMs: 60_000 })).toBeTypeOf("string");
      } finally {
        await admin.query(`DROP TABLE IF EXISTS "${fresh}"`);
      }
    }
  });

  it("a compare-and-set that loses to a concurrent commit returns undefined under SERIALIZABLE too", async () => {
    // A default isolation above READ COMMITTED turns losing to a row committed after the
    // statement's snapshot into a serialization failure: that is a lost race, not an outage.
    const store = new PostgresTokenStore(
      pool(inject("databaseUrl"), 4, "-c default_transaction_isolation=serializable"),
      { table },
    );
    const key = `serializable:${Date.now().toString(36)}`;
    const holder = await admin.connect();
    try {
      for (const [write, expect_] of [
        [`INSERT INTO "${table}" VALUES ($1, 'theirs', 'v1', now() + interval '1 minute')`, null],
        [`UPDATE "${table}" SET value = 'theirs', version = 'v2' WHERE key = $1`, "v1"],
      ] as const) {
        await holder.query("BEGIN");
        await holder.query(write, [key]);
        const ours = store.set(key, "ours", { ttlMs: 60_000, expect: expect_ });
        await new Promise((resolve) => setTimeout(resolve, 100)); // ours waits for the row
        await holder.query("COMMIT");
        expect(await ours).toBeUndefined();
      }
    } finally {
      holder.release();
    }
    expect(await store.get(key)).toEqual({ value: "theirs", version: "v2" });
    expect(await store.delete(key, "v2")).toBe(true);
  });

  it("purges expired rows and only those", async () => {
    const store = new PostgresTokenStore(admin, { table });
    for (let i = 0; i < 5; i++) await store.set(`purge:short:${i}`, "x", { ttlMs: 50 });
    await store.set("purge:long", "x", { ttlMs: 60_000 });
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(await store.purgeExpired({ batchSize: 2 })).toBeGreaterThanOrEqual(5);
    const { rows } = await admin.query(`SELECT key FROM "${table}" WHERE key LIKE 'purge:%'`);
    expect(rows).toEqual([{ key: "purge:long" }]);
  });

  it("a purge racing a write over an expired row leaves the new live value alone", async () => {
    const store = new PostgresTokenStore(admin, { table });
    const key = `race:purge:${Date.now().toString(36)}`;
    await store.set(key, "old", { ttlMs: 50 });
    await new Promise((resolve) => setTimeout(resolve, 150));
    // A write taking over the expired row (as set does), not committed yet when the purge reads.
    const writer = await admin.connect();
    try {
      await writer.query("BEGIN");
      await writer.query(
        `UPDATE "${table}" SET value = 'new', version = 'v-new', expires_at = now() + interval '1 minute' WHERE key = $1`,
        [key],
      );
      const purging = store.purgeExpired();
      await new Promise((resolve) => setTimeout(resolve, 100));
      await writer.query("COMMIT");
      await purging;
    } finally {
      writer.release();
    }
    expect(await store.get(key)).toEqual({ value: "new", version: "v-new" });
  });

  it("fails with StoreUnavailableError, in bounded time, when PostgreSQL cannot be reached", async () => {
    const store = new PostgresTokenStore(pool(`postgres://postgres@127.0.0.1:${await refusedPort()}/none`), {
      table,
      operationTimeoutMs: 500,
    });
    await expect(store.get("k")).rejects.toBeInstanceOf(StoreUnavailableError);
    // Named by the method called, not by the statement behind it (set runs one of three).
    for (const expect_ of [undefined, null, "v1"]) {
      const options = expect_ === undefined ? { ttlMs: 1_000 } : { ttlMs: 1_000, expect: expect_ };
      const failed = await store.set("k", "v", options).catch((thrown: Error) => thrown);
      expect(failed).toMatchObject({
        name: "StoreUnavailableError",
        message: expect.stringMatching(/^postgres store: set failed/),
      });
    }
    await expect(store.purgeExpired()).rejects.toThrow(/^postgres store: purgeExpired failed/);
  });

  it("names the fix, as a configuration error, when its table was never created", async () => {
    const missing = new PostgresTokenStore(admin, { table: `${table}_never_migrated` });
    const error = await missing.get("k").catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(InterlockConfigError);
    expect((error as Error).message).toMatch(/does not exist; run migrate\(\)/);
    const noSchema = new PostgresTokenStore(admin, { table, schema: `no_schema_${process.pid}` });
    await expect(noSchema.set("k", "v", { ttlMs: 1_000 })).rejects.toBeInstanceOf(InterlockConfigError);
  });

  it("migrate gives up with StoreUnavailableError after its timeout when PostgreSQL does not answer", async () => {
    // A port that accepts connections and never says a word: pg waits for it without end.
    const silentSockets = new Set<Socket>();
    const silent = createServer((socket) => silentSockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = silent.address() as AddressInfo;
      const started = Date.now();
      const stuck = pool(`postgres://postgres@127.0.0.1:${port}/none`);
      await expect(migrate(stuck, { table, timeoutMs: 300 })).rejects.toBeInstanceOf(StoreUnavailableError);
      expect(Date.now() - started).toBeLessThan(5_000);
      const refused = pool(`postgres://postgres@127.0.0.1:${await refusedPort()}/none`);
      await expect(migrate(refused, { table })).rejects.toBeInstanceOf(StoreUnavailableError);
    } finally {
      silent.close();
      for (const socket of [...silentSockets]) socket.destroy();
    }
  });

  it("gives tables with long names that share a beginning an index each", async () => {
    const stem = `t${process.pid}_${"x".repeat(55)}`.slice(0, 56);
    const [first, second] = [`${stem}_1`, `${stem}_2`];
    try {
      await migrate(admin, { table: first });
      await migrate(admin, { table: second });
      const { rows } = await admin.query(
        "SELECT tablename FROM pg_indexes WHERE tablename = ANY($1) AND indexname LIKE '%expires_idx'",
        [[first, second]],
      );
      expect(rows.map((r) => r.tablename).sort()).toEqual([first, second]);
      expect(migrationSql({ table: "tokens" })).toContain('"tokens_expires_idx"'); // short names keep theirs
    } finally {
      await admin.query(`DROP TABLE IF EXISTS "${first}"; DROP TABLE IF EXISTS "${second}"`);
    }
  });

  it("refuses unsafe table names and what is not a pool", () => {
    expect(() => new PostgresTokenStore(admin, { table: 'x"; DROP TABLE y; --' })).toThrow(InterlockConfigError);
    expect(() => new PostgresTokenStore(admin, { schema: "a.b" })).toThrow(InterlockConfigError);
    expect(() => new PostgresTokenStore({} as never)).toThrow(InterlockConfigError);
    // Past setTimeout's range (2^31 - 1 ms) a timer fires at once: every operation would time out.
    expect(() => new PostgresTokenStore(admin, { operationTimeoutMs: Number.MAX_SAFE_INTEGER })).toThrow(
      InterlockConfigError,
    );
    expect(new PostgresTokenStore(admin, { operationTimeoutMs: 2 ** 31 - 1 }).operationTimeoutMs).toBe(2 ** 31 - 1);
  });
});
