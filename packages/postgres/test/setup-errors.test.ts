/**
 * A store set up wrong (no grants, wrong password, no such database, a foreign table, a broken
 * connection string, SSL the server lacks, a certificate the pool does not trust) fails every time the same way: an InterlockConfigError
 * naming the fix, so it reaches the app's error handling and never passes as an outage under
 * failOpen. Real outages stay StoreUnavailableError.
 */

import net from "node:net";
import tls from "node:tls";
import { createIdempotency, InterlockConfigError } from "@interlock/core";
import { configErrorOf, type PostgresServer, startPostgres } from "@interlock/test-harness";
import { selfSignedCertificate } from "@interlock/test-harness/tls";
import pg from "pg";
import { afterAll, describe, expect, inject, it } from "vitest";
import { type PgQueryable, postgresStore } from "../src/index.js";
import { endPool, errorResponse, freshTable, newPool, newRole, sleep, uniqueTable } from "./helpers.js";

const admin = newPool();
afterAll(() => endPool(admin));

const LONG = 60_000;
const claim = (store: ReturnType<typeof postgresStore>) => store.claim("k", { fingerprint: "fp", lockTtlMs: LONG });

/** The test database's URL, changed by `edit`. */
function urlWith(edit: (url: URL) => void): string {
  const url = new URL(inject("databaseUrl"));
  edit(url);
  return url.href;
}

/** Runs `operation` with a pool of `config`, ended afterwards. */
async function withPool<T>(config: pg.PoolConfig, operation: (pool: pg.Pool) => Promise<T>): Promise<T> {
  const pool = newPool({ max: 2, ...config });
  try {
    return await operation(pool);
  } finally {
    await pool.end().catch(() => {});
  }
}

/**
 * A server that says yes to pg's SSL request, then shows a self-signed certificate for
 * "db.example": what the pool then thinks of the certificate is all there is to see, so
 * nothing after the handshake is needed.
 */
async function selfSignedSslServer(): Promise<{ port: number; certificate: string; close(): void }> {
  const context = selfSignedCertificate("db.example");
  const server = net.createServer((socket) => {
    socket.once("data", () => {
      // The 8-byte SSLRequest: answer "S", then the TLS handshake on the same socket.
      socket.write("S");
      new tls.TLSSocket(socket, { isServer: true, ...context }).on("error", () => socket.destroy());
    });
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return { port, certificate: context.cert, close: () => server.close() };
}

/** Expects `operation` to reject with a configuration error naming `fix`, whose cause carries `code`. */
async function configError(operation: Promise<unknown>, code: string | undefined, fix: RegExp) {
  const error = await configErrorOf(operation, fix);
  expect((error.cause as { code?: string }).code).toBe(code);
  return error;
}

describe("a store set up wrong is a configuration error naming the fix", () => {
  it("a role without grants on the table: GRANT, for every operation", async () => {
    const table = await freshTable(admin, "nogrant");
    const role = await newRole(admin, "nogrant");
    const pool = role.pool();
    try {
      const store = postgresStore(pool, { table });
      const grant = new RegExp(`GRANT SELECT, INSERT, UPDATE, DELETE ON "${table}"`);
      await configError(claim(store), "42501", grant);
      await configError(
        store.complete("k", "t", { status: 200, headers: [], body: new Uint8Array() }, { ttlMs: LONG }),
        "42501",
        grant,
      );
      await configError(store.release("k", "t"), "42501", grant);
      await configError(store.extend("k", "t", LONG), "42501", grant);
      await configError(store.purgeExpired(), "42501", grant);

      // Through the idempotency engine: the error as it is, even under failOpen (no pass, so the
      // handler never runs unprotected).
      const engine = createIdempotency({ store, principal: false, failOpen: true });
      const request = { method: "POST", route: "/pay", path: "/pay", headers: { "idempotency-key": "k" }, body: "{}" };
      await expect(engine.begin(request)).rejects.toBeInstanceOf(InterlockConfigError);
    } finally {
      await pool.end();
      await role.drop();
    }
  });

  it("a wrong password, or none (an unset environment variable): check the connection settings", async () => {
    // The test servers trust every local connection: one of its own that asks for passwords.
    const server = await startPostgres({ throwaway: true });
    try {
      const url = await passwordServer(server);
      const wrong = new URL(url);
      wrong.password = "wrong";
      await withPool({ connectionString: wrong.href }, async (pool) => {
        await configError(claim(postgresStore(pool)), "28P01", /user or password/);
      });
      // pg refuses to answer the server's SCRAM challenge without a password, before the server has a say.
      const { hostname, port, pathname, username } = new URL(url);
      const unset = {
        connectionString: undefined,
        host: hostname,
        port: Number(port),
        database: pathname.slice(1),
        user: username,
      };
      for (const password of [undefined, ""]) {
        await withPool({ ...unset, password }, async (pool) => {
          await configError(claim(postgresStore(pool)), undefined, /user or password/);
        });
      }
    } finally {
      await server.stop();
    }
  });

  it("a role that does not exist: check the connection settings", async () => {
    const connectionString = urlWith((url) => {
      url.username = `ghost_${process.pid}`;
    });
    await withPool({ connectionString }, async (pool) => {
      await configError(claim(postgresStore(pool)), "28000", /user or password/);
    });
  });

  it("a database that does not exist: create it, or fix its name", async () => {
    const connectionString = urlWith((url) => {
      url.pathname = `/missing_${process.pid}`;
    });
    await withPool({ connectionString }, async (pool) => {
      await configError(claim(postgresStore(pool)), "3D000", /database does not exist/);
    });
  });

  it("a table of that name not made by migrate(): says so", async () => {
    const table = uniqueTable("foreign");
    await admin.query(`CREATE TABLE "${table}" (key_hash bytea PRIMARY KEY, payload text)`);
    await configError(claim(postgresStore(admin, { table })), "42703", /not made by migrate\(\)/);
  });

  it("a connection string that does not parse: says so, without repeating it (it may hold a password)", async () => {
    await withPool({ connectionString: "postgres://app:s3cr@t@:::/x y" }, async (pool) => {
      const error = await configError(claim(postgresStore(pool)), "ERR_INVALID_URL", /not a valid URL/);
      expect(error.message).not.toContain("s3cr");
    });
  });

  it("a server certificate the pool does not trust, or issued to another host: give the pool its CA", async () => {
    const server = await selfSignedSslServer();
    try {
      const url = `postgres://app@127.0.0.1:${server.port}/app`;
      await withPool({ connectionString: url, ssl: true }, async (pool) => {
        await configError(claim(postgresStore(pool)), "DEPTH_ZERO_SELF_SIGNED_CERT", /not trusted.*ssl: \{ ca \}/);
      });
      // Trusted, but issued to another name than the one connected to.
      await withPool({ connectionString: url, ssl: { ca: server.certificate } }, async (pool) => {
        await configError(claim(postgresStore(pool)), "ERR_TLS_CERT_ALTNAME_INVALID", /names another host/);
      });
    } finally {
      server.close();
    }
  });

  it("SSL asked of a server without it: turn one of them around", async () => {
    await withPool({ connectionString: inject("databaseUrl"), ssl: true }, async (pool) => {
      const error = await configError(claim(postgresStore(pool)), undefined, /SSL/);
      expect((error.cause as Error).message).toBe("The server does not support SSL connections");
    });
  });
});

/**
 * A stand-in for PgBouncer refusing every connection as it does (send_pooler_error: an
 * ErrorResponse of severity FATAL, SQLSTATE 08P01 and its words, nothing else), then closing it.
 */
async function pgbouncerRefusing() {
  let words = "";
  const server = net.createServer((socket) => {
    socket.on("error", () => {});
    socket.once("data", () => {
      socket.end(
        errorResponse([
          ["S", "FATAL"],
          ["C", "08P01"],
          ["M", words],
        ]),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `postgres://app@127.0.0.1:${port}/app`,
    /** PgBouncer's words for every connection from now on. */
    refuseWith: (text: string) => {
      words = text;
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

describe("PgBouncer's refusals, all SQLSTATE 08P01: its setup mistakes told from its outages by its words", () => {
  // PgBouncer's own texts (src/client.c, objects.c, janitor.c, across versions), each with what its fix names.
  const mistakes: Array<[string, RegExp]> = [
    ["unsupported startup parameter: statement_timeout", /ALTER ROLE/],
    ["unsupported startup parameter in options: search_path", /ALTER ROLE/],
    ["unsupported options startup parameter: only '-c config=val' is allowed", /ALTER ROLE/],
    ["no such database: app", /PgBouncer's \[databases\]/],
    ["No such database: app", /PgBouncer's \[databases\]/],
    ["password authentication failed", /user or password/],
    ["SASL authentication failed", /user or password/],
    ['"trust" authentication failed', /user or password/],
    ["no such user", /user or password/],
    ["SSL required", /turn SSL on/],
    ["PQexec disallowed", /migrationSql\(\)/],
    ["bouncer config error", /PgBouncer's own configuration/],
    ["server login failed: wrong password type", /PgBouncer's own configuration/],
    [
      'server login has been failing, cached error: password authentication failed for user "app" (server_login_retry)',
      /refuses PgBouncer's login/,
    ],
    [
      'server login has been failing, cached error: database "app" does not exist (server_login_retry)',
      /refuses PgBouncer's login/,
    ],
  ];
  const outages = [
    "query_wait_timeout",
    "no more connections allowed (max_client_conn)",
    "server conn crashed?",
    "client_login_timeout (server down)",
    "pgbouncer cannot connect to server",
    "server login has been failing, cached error: connect failed (server_login_retry)",
    "server login has been failing, cached error: sorry, too many clients already (server_login_retry)",
    'database "app" is disabled',
    "server shutting down",
    "query_timeout",
    "prepared statement did not exist",
  ];

  it("a setup mistake is a configuration error naming the fix; anything else PgBouncer says is an outage", async () => {
    const bouncer = await pgbouncerRefusing();
    try {
      for (const [words, fix] of mistakes) {
        bouncer.refuseWith(words);
        await withPool({ connectionString: bouncer.url }, async (pool) => {
          const error = await configError(claim(postgresStore(pool)), "08P01", fix);
          expect(error.message).toContain(words);
        });
      }
      for (const words of outages) {
        bouncer.refuseWith(words);
        await withPool({ connectionString: bouncer.url }, async (pool) => {
          await expect(claim(postgresStore(pool)), words).rejects.toMatchObject({
            name: "StoreUnavailableError",
            cause: { code: "08P01", message: words },
          });
        });
      }
    } finally {
      await bouncer.close();
    }
  });
});

describe("an outage is still an outage", () => {
  /** A queryable whose every query fails with `error`. */
  const failing = (error: unknown): PgQueryable => ({ query: () => Promise.reject(error) });
  const serverError = (code: string) => Object.assign(new Error(`server says ${code}`), { code, severity: "FATAL" });

  it("a server shutting down, starting up, out of connections or lost, or a session it ended: StoreUnavailableError", async () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" });
    for (const error of [
      serverError("57P01"),
      serverError("57P03"),
      serverError("53300"),
      serverError("08006"),
      serverError("25P03"), // idle_in_transaction_session_timeout ends the session
      serverError("25P04"), // transaction_timeout (PostgreSQL 17)
      refused,
    ]) {
      await expect(claim(postgresStore(failing(error))), String(error)).rejects.toMatchObject({
        name: "StoreUnavailableError",
        // The driver's error as core keeps it: name, message and code, not the rest (`severity` here).
        cause: { name: "Error", message: (error as Error).message, code: (error as { code: string }).code },
      });
    }
  });

  it("an error that ends no session and means no outage is thrown as it is: a bug to see", async () => {
    const bug = Object.assign(new Error("invalid input syntax"), { code: "22P02", severity: "ERROR" });
    await expect(claim(postgresStore(failing(bug)))).rejects.toBe(bug);
  });

  it("a timeout names whole milliseconds", async () => {
    const silent: PgQueryable = { query: () => new Promise(() => {}) };
    const error = await claim(postgresStore(silent, { operationTimeoutMs: 50 })).catch((e: Error) => e);
    expect(error).toMatchObject({ name: "StoreUnavailableError" });
    expect((error as Error).message).toMatch(/within \d+ ms/);
  });
});

/**
 * Makes `server` ask for passwords (scram-sha-256) from every role but postgres, and returns
 * the URL of a role whose password is "right". pg_hba.conf is rewritten through the server
 * itself (COPY … TO as superuser), then reloaded.
 */
async function passwordServer(server: PostgresServer): Promise<string> {
  const pool = new pg.Pool({ connectionString: server.url, max: 1 });
  try {
    const file = (await pool.query("SHOW hba_file")).rows[0].hba_file as string;
    const rules = ["host all postgres 127.0.0.1/32 trust", "host all all 127.0.0.1/32 scram-sha-256"];
    const values = rules.map((rule) => `('${rule}')`).join(", ");
    await pool.query(`COPY (VALUES ${values}) TO '${file.replaceAll("'", "''")}'`);
    await pool.query("CREATE ROLE app LOGIN PASSWORD 'right'; SELECT pg_reload_conf()");
  } finally {
    await pool.end();
  }
  const url = new URL(server.url);
  url.username = "app";
  url.password = "right";
  // The reload reaches the postmaster asynchronously: wait until a wrong password is refused.
  const wrong = new URL(url);
  wrong.password = "wrong";
  for (let tries = 0; tries < 50; tries++) {
    const client = new pg.Client({ connectionString: wrong.href });
    const refused = await client.connect().then(
      () => false,
      () => true,
    );
    await client.end().catch(() => {});
    if (refused) return url.href;
    await sleep(100);
  }
  throw new Error("the server never started asking for passwords");
}
