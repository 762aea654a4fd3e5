/** Shared pieces of the postgres tests: pools that tests own, and a fresh table per store. */

import { refusedPort } from "@interlock/test-harness";
import pg from "pg";
import { afterAll, inject } from "vitest";
import { migrate, type PostgresStoreOptions, postgresStore } from "../src/index.js";

const names: string[] = [];
const unreachablePools: pg.Pool[] = [];

afterAll(async () => {
  await Promise.all(unreachablePools.splice(0).map((pool) => pool.end()));
});

/** A table (or schema) name no other test, or earlier run against the same DATABASE_URL, uses. */
export function uniqueTable(label: string): string {
  const name = `t_${label}_${process.pid}_${Date.now().toString(36)}_${names.length + 1}`;
  names.push(name);
  return name;
}

/** Drops what this test file created (it matters on a DATABASE_URL server), then ends the pool. */
export async function endPool(pool: pg.Pool): Promise<void> {
  for (const name of names.splice(0)) {
    await pool.query(`DROP TABLE IF EXISTS "${name}"; DROP SCHEMA IF EXISTS "${name}" CASCADE`);
  }
  await pool.end();
}

/** A pool on `url` (default: the run's test database). Idle connection errors (a stopped server) are expected. */
export function newPool(config: pg.PoolConfig = {}): pg.Pool {
  const pool = new pg.Pool({ connectionString: inject("databaseUrl"), max: 10, ...config });
  pool.on("error", () => {});
  return pool;
}

/** A freshly migrated table of its own. */
export async function freshTable(pool: pg.Pool, label: string) {
  const table = uniqueTable(label);
  await migrate(pool, { table });
  return table;
}

/** A store on its own freshly migrated table. */
export async function freshStore(pool: pg.Pool, label: string, options: PostgresStoreOptions = {}) {
  return postgresStore(pool, { ...options, table: await freshTable(pool, label) });
}

/**
 * A store whose server cannot be reached: nothing listens on the port refusedPort gives,
 * so connections are refused. Its pool is ended after the file.
 */
export async function unreachableStore(operationTimeoutMs = 1_000) {
  const down = newPool({ connectionString: `postgres://postgres@127.0.0.1:${await refusedPort()}/none` });
  unreachablePools.push(down);
  return postgresStore(down, { operationTimeoutMs });
}

/** A login role of its own on the test server, with no privileges until the test grants them. */
export async function newRole(admin: pg.Pool, label: string) {
  // Roles are the server's, not the database's: unique across files and runs as well.
  const name = `r_${label}_${process.pid}_${Date.now().toString(36)}`;
  await admin.query(`CREATE ROLE "${name}" LOGIN PASSWORD 'role-pw'`);
  const url = new URL(inject("databaseUrl"));
  url.username = name;
  url.password = "role-pw";
  return {
    name,
    /** A pool connecting as the role. */
    pool: (config: pg.PoolConfig = {}) => newPool({ connectionString: url.href, ...config }),
    /** Drops the role and every grant to it, once its pools are ended. */
    drop: () => admin.query(`DROP OWNED BY "${name}"; DROP ROLE "${name}"`),
  };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function response(text: string, headers: Array<[string, string]> = [["content-type", "text/plain"]]) {
  return { status: 200, headers, body: new TextEncoder().encode(text) };
}

/** An ErrorResponse message of the PostgreSQL protocol with `fields` (type letter, value), as a server or PgBouncer sends it. */
export function errorResponse(fields: ReadonlyArray<readonly [string, string]>): Buffer {
  const body = Buffer.concat([...fields.map(([type, value]) => Buffer.from(`${type}${value}\0`)), Buffer.from([0])]);
  const length = Buffer.alloc(4);
  length.writeInt32BE(body.length + 4);
  return Buffer.concat([Buffer.from("E"), length, body]);
}
