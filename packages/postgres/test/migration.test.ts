import { InterlockConfigError } from "@interlock/core";
import type pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { migrate, migrationSql, type PgQuery, type PgQueryable, postgresStore } from "../src/index.js";
import { endPool, newPool, newRole, uniqueTable } from "./helpers.js";

const pool = newPool();
afterAll(() => endPool(pool));

/** Runs queries on the pool and remembers their text. */
function recording(): PgQueryable & { texts: string[] } {
  const texts: string[] = [];
  return {
    texts,
    query: (query: PgQuery) => {
      texts.push(query.text);
      return pool.query(query as never);
    },
  };
}

async function works(store: ReturnType<typeof postgresStore>) {
  const claim = await store.claim("k", { fingerprint: "fp", lockTtlMs: 60_000 });
  expect(claim.state).toBe("claimed");
  expect(await store.release("k", (claim as { token: string }).token)).toBe(true);
}

async function columns(schema: string, table: string) {
  const { rows } = await pool.query(
    `SELECT column_name, data_type FROM information_schema.columns
     WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`,
    [schema, table],
  );
  return Object.fromEntries(rows.map((r) => [r.column_name, r.data_type]));
}

/** Waits until a statement of this database waits for an advisory lock (another migration's). */
async function waitForAdvisoryLock(): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const { rows } = await pool.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'advisory'",
    );
    if (rows[0].n > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error("no migration ever waited for the advisory lock");
}

describe("migration", () => {
  it("creates the table and index; running it again changes nothing", async () => {
    const table = uniqueTable("migrate");
    await migrate(pool, { table });
    await migrate(pool, { table });
    expect(await columns("public", table)).toEqual({
      key_hash: "bytea",
      key: "text",
      state: "text",
      token: "text",
      fingerprint: "text",
      created_at: "timestamp with time zone",
      expires_at: "timestamp with time zone",
      completed_at: "timestamp with time zone",
      status: "integer",
      headers: "jsonb",
      body: "bytea",
    });
    const { rows } = await pool.query("SELECT indexdef FROM pg_indexes WHERE tablename = $1 ORDER BY indexname", [
      table,
    ]);
    expect(rows.map((r) => r.indexdef)).toEqual([
      expect.stringContaining("(expires_at)"),
      expect.stringMatching(/UNIQUE INDEX .* \(key_hash\)/),
    ]);
    await works(postgresStore(pool, { table }));
  });

  it("runs exactly the SQL migrationSql() prints, and that SQL works on its own", async () => {
    const table = uniqueTable("printed");
    const db = recording();
    await migrate(db, { table });
    // A read-only check whether it is all there, then the SQL itself; once made, the check alone.
    expect(db.texts).toHaveLength(2);
    expect(db.texts[1]).toBe(migrationSql({ table }));
    await migrate(db, { table });
    expect(db.texts).toHaveLength(3);
    expect(db.texts[2]).toBe(db.texts[0]);
    // Users who run migrations themselves: the printed text, as psql or a migration tool would.
    const other = uniqueTable("printed");
    await pool.query(migrationSql({ table: other }));
    await pool.query(migrationSql({ table: other }));
    await works(postgresStore(pool, { table: other }));
  });

  it("uses a custom schema and table, quoted as identifiers (case kept)", async () => {
    const schema = uniqueTable("Schema");
    await pool.query(`CREATE SCHEMA "${schema}"`);
    await migrate(pool, { schema }); // the default table name
    await migrate(pool, { schema, table: "IdempotencyKeys" });
    expect(Object.keys(await columns(schema, "interlock_records"))).toContain("key_hash");
    expect(Object.keys(await columns(schema, "IdempotencyKeys"))).toContain("key_hash");
    expect(migrationSql({ schema, table: "IdempotencyKeys" })).toContain(`"${schema}"."IdempotencyKeys"`);
    await works(postgresStore(pool, { schema, table: "IdempotencyKeys" }));
    await works(postgresStore(pool, { schema }));
    // Nothing landed in the default schema.
    expect(await columns("public", "IdempotencyKeys")).toEqual({});
  });

  it("an app role that may only read and write the table: migrate() on every start passes once the owner made it", async () => {
    const role = await newRole(pool, "app");
    const app = role.pool({ max: 2 });
    try {
      const table = uniqueTable("owned");
      const schema = uniqueTable("owned");
      await pool.query(`CREATE SCHEMA "${schema}"`);
      await migrate(pool, { table });
      await migrate(pool, { schema });
      const grant = "SELECT, INSERT, UPDATE, DELETE";
      await pool.query(`GRANT ${grant} ON "${table}" TO "${role.name}"`);
      await pool.query(`GRANT USAGE ON SCHEMA "${schema}" TO "${role.name}"`);
      await pool.query(`GRANT ${grant} ON "${schema}"."interlock_records" TO "${role.name}"`);
      await migrate(app, { table });
      await migrate(app, { schema });
      await works(postgresStore(app, { table }));
      await works(postgresStore(app, { schema }));
      // Also on a pool whose pg returns binary results (a ClientConfig option @types/pg leaves out).
      const binary = role.pool({ max: 1, binary: true } as pg.PoolConfig);
      await migrate(binary, { table }).finally(() => binary.end());
    } finally {
      await app.end();
      await role.drop();
    }
  });

  it("an app role that may not create the table: a configuration error saying who should", async () => {
    const role = await newRole(pool, "app");
    const app = role.pool({ max: 2 });
    try {
      const error = await migrate(app, { table: uniqueTable("unowned") }).catch((e: Error) => e);
      expect(error).toBeInstanceOf(InterlockConfigError);
      expect((error as Error).message).toMatch(/run migrate\(\) as the schema owner, or apply migrationSql\(\)/);
      expect(((error as Error).cause as { code: string }).code).toBe("42501");
    } finally {
      await app.end();
      await role.drop();
    }
  });

  it("an app role's migrate() at start-up, while the owner's migration is under way: passes once the owner's commits", async () => {
    const role = await newRole(pool, "app");
    const app = role.pool({ max: 1 });
    const owner = await pool.connect();
    try {
      const table = uniqueTable("racing");
      // The owner's migration (a deploy's migration job), with its grant, not yet committed.
      await owner.query("BEGIN");
      await owner.query(migrationSql({ table }));
      await owner.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON "${table}" TO "${role.name}"`);
      // The app's check finds no table yet, so it migrates too, and waits for the owner's lock.
      const migrating = migrate(app, { table, timeoutMs: 10_000 }).then(
        () => "migrated",
        (error: Error) => error,
      );
      await waitForAdvisoryLock();
      await owner.query("COMMIT");
      // PostgreSQL checks CREATE on the schema before IF NOT EXISTS finds the owner's table.
      expect(await migrating).toBe("migrated");
      await works(postgresStore(app, { table }));
    } finally {
      owner.release();
      await app.end();
      await role.drop();
    }
  });

  it("instances migrating at the same start-up do not trip over each other", async () => {
    const table = uniqueTable("concurrent");
    const pools = Array.from({ length: 6 }, () => newPool({ max: 1 }));
    try {
      await Promise.all(pools.map((p) => migrate(p, { table })));
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
    await works(postgresStore(pool, { table }));
  });

  it("takes any timeout a timer can hold, and refuses others instead of failing at once", async () => {
    const table = uniqueTable("timeout");
    const fresh = newPool(); // opening a connection takes longer than a misfired 1 ms timer
    try {
      await migrate(fresh, { table, timeoutMs: 2 ** 31 - 1 });
    } finally {
      await fresh.end();
    }
    await works(postgresStore(pool, { table }));
    // Past setTimeout's range a timer fires at once: the migration would "time out" after 1 ms.
    for (const timeoutMs of [Number.POSITIVE_INFINITY, 2 ** 31, 0, -1, 1.5]) {
      await expect(migrate(pool, { table, timeoutMs }), String(timeoutMs)).rejects.toThrow(/timeoutMs must be/);
    }
  });

  it("refuses identifiers that are not plain names", () => {
    expect(() => migrationSql({ table: "a-b" })).toThrow(/table must be/);
    expect(() => migrationSql({ schema: 'x"y' })).toThrow(/schema must be/);
    expect(migrationSql()).toContain('CREATE TABLE IF NOT EXISTS "interlock_records"');
  });
});
