/**
 * A misspelt option is refused, by the store, its per-call options and the migration, with the
 * name it most likely meant: ignored, it would leave the default in force, or worse (a misspelt
 * `transaction` commits the record outside the caller's transaction). Nothing reaches a server:
 * the refusals come before any query, and the rest runs on a pool that answers no rows.
 */
import { InterlockConfigError } from "@interlock/core";
import { looseOptions as loose, asyncConfigRefusal as refusal } from "@interlock/test-harness/option-names";
import { describe, expect, it } from "vitest";
import {
  type MigrateOptions,
  migrate,
  migrationSql,
  type PgQueryable,
  type PostgresStoreOptions,
  postgresStore,
} from "../src/index.js";

/** A pool that answers every statement with no rows, and records what it was sent. */
function emptyPool(): PgQueryable & { sent: string[] } {
  const sent: string[] = [];
  return {
    sent,
    query: async (statement: { text: string }) => {
      sent.push(statement.text);
      return { rows: [], rowCount: 0 };
    },
  } as PgQueryable & { sent: string[] };
}

const response = { status: 200, headers: [] as Array<[string, string]>, body: new Uint8Array([1]) };

describe("postgresStore", () => {
  it("refuses a misspelt option, its own or a table option", () => {
    expect(() => postgresStore(emptyPool(), loose({ preparedStatement: true }))).toThrow(InterlockConfigError);
    expect(() => postgresStore(emptyPool(), loose({ preparedStatement: true }))).toThrow(
      'postgresStore() has no option "preparedStatement": did you mean "preparedStatements"?',
    );
    expect(() => postgresStore(emptyPool(), loose({ tableName: "records", schema: "app" }))).toThrow(
      'postgresStore() has no option "tableName"',
    );
    // pg's own option, which belongs on the pool.
    expect(() => postgresStore(emptyPool(), loose({ statement_timeout: 100 }))).toThrow(
      'postgresStore() has no option "statement_timeout"',
    );
  });

  it("takes every option it has", () => {
    const options: Required<PostgresStoreOptions> = {
      table: "records",
      schema: "app",
      operationTimeoutMs: 500,
      maxRecordBytes: 4096,
      preparedStatements: true,
    };
    expect(postgresStore(emptyPool(), options)).toMatchObject({ operationTimeoutMs: 500, maxRecordBytes: 4096 });
  });

  it("refuses a misspelt option of complete and purgeExpired before it sends anything", async () => {
    const pool = emptyPool();
    const store = postgresStore(pool);
    expect(await refusal(store.complete("k", "t", response, loose({ ttlMs: 1_000, transacton: pool })))).toBe(
      'complete() has no option "transacton": did you mean "transaction"?',
    );
    expect(await refusal(store.purgeExpired(loose({ batchsize: 10 })))).toBe(
      'purgeExpired() has no option "batchsize": did you mean "batchSize"?',
    );
    expect(pool.sent).toEqual([]);
    // The statements run, with what was asked: no row held this token, and none had expired.
    expect(await store.complete("k", "t", response, { ttlMs: 1_000, transaction: pool })).toBe(false);
    expect(await store.purgeExpired({ batchSize: 10 })).toBe(0);
    expect(pool.sent).toHaveLength(2);
  });
});

describe("migrate and migrationSql", () => {
  it("refuse a misspelt option", async () => {
    expect(() => migrationSql(loose({ schemas: "app" }))).toThrow(
      'migrationSql() has no option "schemas": did you mean "schema"?',
    );
    const pool = emptyPool();
    expect(await refusal(migrate(pool, loose({ timeout: 1_000 })))).toBe(
      'migrate() has no option "timeout": did you mean "timeoutMs"?',
    );
    // The store's per-operation bound is not the migration's.
    expect(await refusal(migrate(pool, loose({ operationTimeoutMs: 1_000 })))).toBe(
      'migrate() has no option "operationTimeoutMs"',
    );
    expect(pool.sent).toEqual([]);
  });

  it("take every option they have", async () => {
    const options: Required<MigrateOptions> = { table: "records", schema: "app", timeoutMs: 1_000 };
    const pool = emptyPool();
    await migrate(pool, options);
    const { timeoutMs: _, ...table } = options;
    expect(pool.sent.at(-1)).toBe(migrationSql(table));
    expect(migrationSql(table)).toContain('"app"."records"');
  });
});
