/**
 * Databases not in UTF8. pg always talks UTF-8 to the server (client_encoding), which converts
 * to the database's encoding: SQL_ASCII keeps the bytes as sent, so every text round-trips;
 * any other holds only its own characters, and text with others cannot be stored at all.
 */

import type pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { migrate, postgresStore } from "../src/index.js";
import { newPool, response } from "./helpers.js";

const admin = newPool({ max: 1 });
afterAll(() => admin.end());

/** A database of its own in `encoding` (and collation C, which any encoding takes), dropped after the file. */
function databaseIn(encoding: string) {
  const name = `enc_${encoding.toLowerCase()}_${process.pid}_${Date.now().toString(36)}`;
  let pool: pg.Pool;
  beforeAll(async () => {
    await admin.query(
      `CREATE DATABASE "${name}" ENCODING '${encoding}' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'`,
    );
    const url = new URL(inject("databaseUrl"));
    url.pathname = `/${name}`;
    pool = newPool({ connectionString: url.href, max: 2 });
    await migrate(pool);
  });
  afterAll(async () => {
    await pool?.end();
    await admin.query(`DROP DATABASE IF EXISTS "${name}"`);
  });
  return { store: () => postgresStore(pool) };
}

const LONG = 60_000;

/** Claims `key`, completes it with `header` and a body, and reads the record back. */
async function roundTrip(store: ReturnType<typeof postgresStore>, key: string, fingerprint: string, header: string) {
  const claim = await store.claim(key, { fingerprint, lockTtlMs: LONG });
  if (claim.state !== "claimed") throw new Error(`${key} was ${claim.state}`);
  expect(await store.complete(key, claim.token, response("corps é", [["x-name", header]]), { ttlMs: LONG })).toBe(true);
  const again = await store.claim(key, { fingerprint, lockTtlMs: LONG });
  if (again.state !== "completed") throw new Error(`${key} was ${again.state}`);
  return again.record;
}

describe("a SQL_ASCII database", () => {
  const db = databaseIn("SQL_ASCII");

  it("keeps the bytes as sent: keys, fingerprints and header values in any script round-trip", async () => {
    const store = db.store();
    for (const text of ["café", "鍵", "🔑", "\u0080"]) {
      const record = await roundTrip(store, `k:${text}`, `fp:${text}`, `v:${text}`);
      expect(record).toMatchObject({ fingerprint: `fp:${text}`, headers: [["x-name", `v:${text}`]] });
      expect(new TextDecoder().decode(record.body)).toBe("corps é");
    }
  });
});

describe("a LATIN1 database", () => {
  const db = databaseIn("LATIN1");

  it("holds what LATIN1 has", async () => {
    const record = await roundTrip(db.store(), "k:café", "fp:café", "v:café");
    expect(record).toMatchObject({ fingerprint: "fp:café", headers: [["x-name", "v:café"]] });
  });

  it("text it cannot hold is a configuration error naming the fix (a UTF8 database), not an error thrown as it is", async () => {
    const store = db.store();
    const refused = { name: "InterlockConfigError", message: expect.stringMatching(/UTF8/), cause: { code: "22P05" } };
    await expect(store.claim("k:鍵", { fingerprint: "fp", lockTtlMs: LONG })).rejects.toMatchObject(refused);
    await expect(store.claim("k", { fingerprint: "fp:€", lockTtlMs: LONG })).rejects.toMatchObject(refused);
    const claim = await store.claim("k:header", { fingerprint: "fp", lockTtlMs: LONG });
    if (claim.state !== "claimed") throw new Error(`k:header was ${claim.state}`);
    await expect(
      store.complete("k:header", claim.token, response("x", [["x-name", "🔑"]]), { ttlMs: LONG }),
    ).rejects.toMatchObject(refused);
    // Nothing was stored: the lock is still the claim's, to release.
    expect(await store.release("k:header", claim.token)).toBe(true);
  });
});
