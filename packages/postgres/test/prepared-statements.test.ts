/**
 * `preparedStatements` behind a pooler that moves pg's statements to another server connection
 * than the one that prepared them (PgBouncer in transaction mode before 1.21, or without
 * max_prepared_statements): the server answers that a statement does not exist (26000), or
 * already exists (42P05), on every retry. That is a setup mistake, named as such, not an outage.
 *
 * No pooler here (none in CI): the server's own connection is put in the state a pooler leaves
 * it in, by deallocating what pg prepared, or preparing a name pg has not.
 */

import { configErrorOf } from "@interlock/test-harness";
import pg from "pg";
import { afterAll, describe, expect, inject, it } from "vitest";
import { postgresStore } from "../src/index.js";
import { endPool, freshTable, newPool } from "./helpers.js";

const admin = newPool();
afterAll(() => endPool(admin));

const LONG = 60_000;
const fix =
  /preparedStatements needs a direct connection or PgBouncer 1\.21\+ with max_prepared_statements; turn it off/;

/** A connection of its own, ended after the test. */
async function connection(run: (client: pg.Client) => Promise<void>) {
  const client = new pg.Client({ connectionString: inject("databaseUrl") });
  client.on("error", () => {});
  await client.connect();
  try {
    await run(client);
  } finally {
    await client.end();
  }
}

async function configError(operation: Promise<unknown>, code: string) {
  const error = await configErrorOf(operation, fix);
  expect((error.cause as { code?: string }).code).toBe(code);
}

describe("preparedStatements where the server does not keep pg's statements", () => {
  it("a statement pg prepared that the server no longer has (26000): turn it off", async () => {
    const table = await freshTable(admin, "prepared_gone");
    await connection(async (client) => {
      const store = postgresStore(client, { table, preparedStatements: true });
      expect((await store.claim("a", { fingerprint: "fp", lockTtlMs: LONG })).state).toBe("claimed");
      // What a pooler does: pg's next statement runs on a server connection that never prepared it.
      await client.query("DEALLOCATE ALL");
      await configError(store.claim("b", { fingerprint: "fp", lockTtlMs: LONG }), "26000");
    });
  });

  it("a statement the server has already, prepared by another client (42P05): turn it off", async () => {
    const table = await freshTable(admin, "prepared_twice");
    let names: string[] = [];
    await connection(async (first) => {
      await postgresStore(first, { table, preparedStatements: true }).claim("a", {
        fingerprint: "fp",
        lockTtlMs: LONG,
      });
      names = (await first.query("SELECT name FROM pg_prepared_statements")).rows.map((row) => row.name as string);
    });
    expect(names.some((name) => name.startsWith("interlock_claim_"))).toBe(true);
    await connection(async (second) => {
      // Another client's statements on the server connection this client's pg then gets.
      for (const name of names) await second.query(`PREPARE "${name}" AS SELECT 1`);
      const store = postgresStore(second, { table, preparedStatements: true });
      await configError(store.claim("b", { fingerprint: "fp", lockTtlMs: LONG }), "42P05");
    });
  });
});
