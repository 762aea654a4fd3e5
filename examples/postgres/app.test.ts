// Boots the PostgreSQL example on 127.0.0.1:0 against a real PostgreSQL (a throwaway server,
// or DATABASE_URL) and drives it over real HTTP. The run gets a schema of its own, so a shared
// DATABASE_URL is left as it was. No PostgreSQL installed fails the test with install advice;
// it never skips.
import { randomBytes } from "node:crypto";
import { request as httpRequest } from "node:http";
import { gzipSync } from "node:zlib";
import { github, signWebhook } from "@interlock/core";
import { postgresStore } from "@interlock/postgres";
import { type PostgresServer, startPostgres } from "@interlock/test-harness";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from "vitest";
import { itAnswersEveryPaymentBody, notBearer } from "../payments-api.js";
import { createApp } from "./app.mjs";
import { start } from "./server.mjs";

const GITHUB_SECRET = "example-postgres-github-secret";
const API_KEY = "sk_test_shop_7";
const schema = `example_${randomBytes(6).toString("hex")}`;
const applicationName = `interlock-example-${schema}`;
let server: PostgresServer;
let db: pg.Client;
let app: { url: string; close(): Promise<void> };

/** The database URL with this run's schema first on the search path, and the app named. */
function forTheApp(url: string): string {
  const parsed = new URL(url);
  parsed.searchParams.set("options", `-c search_path=${schema}`);
  parsed.searchParams.set("application_name", applicationName);
  return parsed.href;
}

/**
 * pg's `pool.end()` resolves before its connections have closed: wait until the server has
 * seen them go, so stopping it does not kill a connection the test process still holds.
 */
async function untilAppDisconnected() {
  for (let attempt = 0; attempt < 100; attempt++) {
    const { rows } = await db.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1", [
      applicationName,
    ]);
    if (rows[0].n === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

beforeAll(async () => {
  server = await startPostgres();
  db = new pg.Client({ connectionString: server.url, options: `-c search_path=${schema}` });
  await db.connect();
  await db.query(`CREATE SCHEMA ${schema}`);
  app = await start({
    databaseUrl: forTheApp(server.url),
    port: 0,
    host: "127.0.0.1",
    githubSecret: GITHUB_SECRET,
    apiKeys: new Map([[API_KEY, "acct_shop_7"]]),
  });
}, 60_000);
afterAll(async () => {
  await app?.close();
  if (db) {
    await untilAppDisconnected();
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await db.end(); // a Client's end() resolves once its connection has closed
  }
  await server?.stop();
});

describe("GitHub webhooks", () => {
  const push = JSON.stringify({ ref: "refs/heads/main", after: "6dcb09b5b57875f334f61aebed695e2e4193db5e" });
  const deliver = (headers: Record<string, string>, body: string | Uint8Array) =>
    fetch(`${app.url}/webhooks/github`, { method: "POST", headers: { ...headers, "x-github-event": "push" }, body });

  it("processes a signed delivery once, answers its redelivery as a duplicate, refuses a tampered one", async () => {
    const id = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
    const signed = await signWebhook({ scheme: github, secret: GITHUB_SECRET, body: push, id });

    const first = await deliver(signed.headers, signed.body);
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({ received: id });

    const again = await deliver(signed.headers, signed.body);
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ duplicate: true, id });

    const tampered = await deliver(signed.headers, push.replace("main", "release"));
    expect(tampered.status).toBe(401);
    expect(tampered.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(await tampered.json()).toMatchObject({ status: 401, code: "no_matching_signature" });

    const { rows } = await db.query("SELECT delivery_id, head FROM github_pushes");
    expect(rows).toEqual([{ delivery_id: id, head: "6dcb09b5b57875f334f61aebed695e2e4193db5e" }]);
  });

  it("refuses a signed push whose head is no commit id (a NUL PostgreSQL text cannot hold): 422, stored nowhere, never acknowledged", async () => {
    const heads = [
      "6dcb09b5b57875f334f61aebed695e2e4193db5e\u0000",
      "6dcb09b5\u0000b57875f334f61aebed695e2e4193db5e",
      "main",
    ];
    for (const [i, after] of heads.entries()) {
      const id = `bad-head-${i}`;
      const body = JSON.stringify({ ref: "refs/heads/main", after });
      const signed = await signWebhook({ scheme: github, secret: GITHUB_SECRET, body, id });
      for (const attempt of ["first", "redelivery"]) {
        const response = await deliver(signed.headers, signed.body);
        const answer = { after, attempt, status: response.status, type: response.headers.get("content-type") };
        expect(answer).toEqual({ after, attempt, status: 422, type: "application/problem+json" });
        expect(await response.json()).toMatchObject({ status: 422, code: "invalid_push" });
      }
    }
    // A body the payload getter cannot read (JSON null: no object, no form) is no push either.
    const signedNull = await signWebhook({ scheme: github, secret: GITHUB_SECRET, body: "null", id: "bad-head-null" });
    expect((await deliver(signedNull.headers, signedNull.body)).status).toBe(422);
    const { rows } = await db.query("SELECT count(*)::int AS n FROM github_pushes WHERE delivery_id LIKE 'bad-head-%'");
    expect(rows[0].n).toBe(0);
  });

  it("refuses a signed push without an X-GitHub-Delivery, or one over 255 characters (past some 2.7 KB, an index PostgreSQL refuses): 422, stored nowhere", async () => {
    const longest = `long-id-${"a".repeat(247)}`; // 255 characters: accepted
    const accepted = await signWebhook({ scheme: github, secret: GITHUB_SECRET, body: push, id: longest });
    expect((await deliver(accepted.headers, accepted.body)).status).toBe(200);

    for (const id of [`long-id-${"b".repeat(248)}`, `long-id-${"c".repeat(6_000)}`]) {
      const signed = await signWebhook({ scheme: github, secret: GITHUB_SECRET, body: push, id });
      for (const attempt of ["first", "redelivery"]) {
        const response = await deliver(signed.headers, signed.body);
        const answer = {
          length: id.length,
          attempt,
          status: response.status,
          type: response.headers.get("content-type"),
        };
        expect(answer).toEqual({ length: id.length, attempt, status: 422, type: "application/problem+json" });
        expect(await response.json()).toMatchObject({
          code: "invalid_push",
          detail: "a push needs an X-GitHub-Delivery of at most 255 characters",
        });
      }
    }
    // Without one at all (the scheme takes a delivery without it: no signature covers it).
    const signed = await signWebhook({ scheme: github, secret: GITHUB_SECRET, body: push, id: "no-id-sent" });
    const headers = Object.fromEntries(
      Object.entries(signed.headers).filter(([name]) => name.toLowerCase() !== "x-github-delivery"),
    );
    const response = await deliver(headers, signed.body);
    expect(response.status).toBe(422);
    expect(await response.json()).toMatchObject({ code: "invalid_push" });
    const { rows } = await db.query(
      "SELECT length(delivery_id) AS length FROM github_pushes WHERE delivery_id LIKE 'long-id-%'",
    );
    expect(rows).toEqual([{ length: 255 }]);
  });
});

describe("POST /payments", () => {
  const pay = (body: unknown, key = "order-1042") =>
    fetch(`${app.url}/payments`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json", "idempotency-key": key },
      body: JSON.stringify(body),
    });

  it("creates a payment once: the retry is replayed byte for byte, another body with the key is 422", async () => {
    const first = await pay({ amount: 4200, currency: "eur" });
    expect(first.status).toBe(201);
    expect(first.headers.get("idempotent-replayed")).toBeNull();
    const created = await first.text();
    const payment = JSON.parse(created);
    expect(payment).toMatchObject({ amount: 4200, currency: "eur", account: "acct_shop_7" });
    expect(first.headers.get("location")).toBe(`/payments/${payment.id}`);

    const retry = await pay({ amount: 4200, currency: "eur" });
    expect(retry.status).toBe(201);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(retry.headers.get("location")).toBe(`/payments/${payment.id}`);
    expect(await retry.text()).toBe(created);

    const other = await pay({ amount: 9900, currency: "eur" });
    expect(other.status).toBe(422);
    expect(other.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(await other.json()).toMatchObject({ code: "idempotency_key_mismatch" });

    const read = await fetch(`${app.url}/payments/${payment.id}`, { headers: { authorization: `Bearer ${API_KEY}` } });
    expect(await read.json()).toEqual(payment);
    // An id PostgreSQL text cannot hold (a NUL) is no payment: 404, not the database's error as a 500.
    const odd = await fetch(`${app.url}/payments/pay%00x`, { headers: { authorization: `Bearer ${API_KEY}` } });
    expect(odd.status).toBe(404);
    expect(await odd.json()).toMatchObject({ code: "not_found" });
  });

  it("reads Authorization strictly: `Bearer <api key>` with the scheme in any case, one space, nothing after", async () => {
    const read = (authorization: string) =>
      fetch(`${app.url}/payments/pay_none`, { headers: { authorization } }).then((response) => response.status);
    expect(await read(`bearer ${API_KEY}`)).toBe(404); // authenticated: there is no such payment
    for (const authorization of notBearer(API_KEY)) {
      expect({ authorization, status: await read(authorization) }).toEqual({ authorization, status: 401 });
    }
  });

  it("commits the payment row and its stored response together", async () => {
    const response = await pay({ amount: 700 }, "order-2001");
    const payment = await response.json();
    const { rows } = await db.query(
      `SELECT p.id, r.state, r.status, convert_from(r.body, 'UTF8') AS body
       FROM payments p, interlock_records r
       WHERE p.id = $1 AND r.key LIKE '%:order-2001' AND p.created_at <= r.completed_at`,
      [payment.id],
    );
    expect(rows).toEqual([{ id: payment.id, state: "completed", status: 201, body: JSON.stringify(payment) }]);
    // Same transaction, same xmin: the two rows were written by one commit.
    const { rows: writers } = await db.query(
      `SELECT (SELECT xmin::text FROM payments WHERE id = $1) AS payment,
              (SELECT xmin::text FROM interlock_records WHERE key LIKE '%:order-2001') AS record`,
      [payment.id],
    );
    expect(writers[0].payment).toBe(writers[0].record);
  });

  it("refuses a currency that is no string, though its only element is one: 400 invalid_payment", async () => {
    const refused = await pay({ amount: 4200, currency: ["eur"] }, "order-currency-array");
    expect(refused.status).toBe(400);
    expect(await refused.json()).toMatchObject({ code: "invalid_payment" });
    const { rows } = await db.query("SELECT count(*)::int AS n FROM payments WHERE currency NOT SIMILAR TO '[a-z]{3}'");
    expect(rows[0].n).toBe(0);
  });

  it("stores a refusal too, and requires a key", async () => {
    const invalid = await pay({ amount: -5 }, "order-bad");
    expect(invalid.status).toBe(400);
    const retried = await pay({ amount: -5 }, "order-bad");
    expect(retried.status).toBe(400);
    expect(retried.headers.get("idempotent-replayed")).toBe("true");
    const notAnObject = await pay(null, "order-null"); // JSON null: no payment, not a 500
    expect(notAnObject.status).toBe(400);
    expect(await notAnObject.json()).toMatchObject({ code: "bad_request" });

    const keyless = await fetch(`${app.url}/payments`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ amount: 100 }),
    });
    expect(keyless.status).toBe(400);
    expect(await keyless.json()).toMatchObject({ code: "idempotency_key_missing" });
    const { rows } = await db.query("SELECT count(*)::int AS n FROM payments");
    expect(rows[0].n).toBe(2);
  });
});

describe("POST /payments, a body that is no JSON object or does not decode", () => {
  const send = (key: string, body: BodyInit | null, headers: Record<string, string> = {}) =>
    fetch(`${app.url}/payments`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${API_KEY}`,
        "content-type": "application/json",
        "idempotency-key": key,
        ...headers,
      },
      body,
    });
  const payments = async () => (await db.query("SELECT count(*)::int AS n FROM payments")).rows[0].n;

  // The table every example is held to: the same body, the same status and problem code.
  itAnswersEveryPaymentBody(() => ({ url: app.url, headers: { authorization: `Bearer ${API_KEY}` }, payments }));

  // The adapters' limit (DEFAULT_REQUEST_BODY_LIMIT): read whole, a body of any size was accepted.
  const limit = 1024 * 1024;
  const padded = (size: number) => {
    const start = '{"amount":700,"currency":"eur","pad":"';
    return `${start}${"a".repeat(size - start.length - 2)}"}`;
  };
  /**
   * POSTs `text` on a connection of its own (the server closes one whose body it refused unread,
   * which a pooled connection would meet on the next request): with its Content-Length, or
   * chunked in 64 KiB pieces, no length said. Resolves with the answer, whatever the upload does.
   */
  const postAlone = (key: string, text: string, framing: "declared" | "chunked") =>
    new Promise<{ status: number; type: string | undefined; body: string }>((resolve, reject) => {
      const bytes = Buffer.from(text);
      const headers = {
        authorization: `Bearer ${API_KEY}`,
        "content-type": "application/json",
        "idempotency-key": key,
        ...(framing === "declared" ? { "content-length": String(bytes.length) } : {}),
      };
      const request = httpRequest(`${app.url}/payments`, { method: "POST", headers, agent: false }, (response) => {
        let body = "";
        response.setEncoding("utf8").on("data", (chunk: string) => {
          body += chunk;
        });
        response.on("end", () =>
          resolve({ status: response.statusCode!, type: response.headers["content-type"], body }),
        );
      });
      request.on("error", reject); // once answered, an upload cut short changes nothing: resolved already
      for (let at = 0; at < bytes.length; at += 64 * 1024) request.write(bytes.subarray(at, at + 64 * 1024));
      request.end();
    });

  it.each([
    ["declared", limit + 1],
    ["chunked", 2 * limit],
  ] as const)(
    "refuses a payment body past 1 MiB (%s) 413 body_too_large, before the route runs",
    async (framing, size) => {
      const before = await payments();
      const key = `order-too-large-${framing}`;
      const refused = await postAlone(key, padded(size), framing);
      expect({ status: refused.status, type: refused.type }).toEqual({ status: 413, type: "application/problem+json" });
      expect(JSON.parse(refused.body)).toMatchObject({ status: 413, code: "body_too_large" });
      expect(await payments()).toBe(before);
      // The key was never used: the payment that fits runs.
      expect((await send(key, padded(limit))).status).toBe(201);
    },
  );

  it("reads a gzip-compressed payment decoded: 201, and its plain retry is the same request", async () => {
    const json = JSON.stringify({ amount: 1250, currency: "eur" });
    const first = await send("order-gzip", new Uint8Array(gzipSync(json)), { "content-encoding": "gzip" });
    expect(first.status).toBe(201);
    const created = await first.text();
    expect(JSON.parse(created)).toMatchObject({ amount: 1250, currency: "eur" });
    const retry = await send("order-gzip", json);
    expect(retry.status).toBe(201);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(await retry.text()).toBe(created);
  });
});

describe("when the response cannot be recorded", () => {
  it("rolls the payment back instead of committing it without its stored response", async () => {
    // In process (Hono's app.request), with a store whose lease has run out: complete() writes nothing.
    const pool = new pg.Pool({ connectionString: forTheApp(server.url) });
    try {
      const real = postgresStore(pool);
      const leaseLost = new Proxy(real, {
        get(target, name) {
          if (name === "complete") return async () => false;
          const value = Reflect.get(target, name, target);
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
      const app = createApp({
        pool,
        store: leaseLost,
        githubSecret: GITHUB_SECRET,
        apiKeys: new Map([[API_KEY, "acct_x"]]),
      });
      const pay = () =>
        app.request("/payments", {
          method: "POST",
          headers: {
            authorization: `Bearer ${API_KEY}`,
            "content-type": "application/json",
            "idempotency-key": "lost",
          },
          body: JSON.stringify({ amount: 500 }),
        });

      const logged = vi.spyOn(console, "error").mockImplementation(() => {});
      onTestFinished(() => logged.mockRestore());
      const first = await pay();
      expect(first.status).toBe(500);
      expect(await first.json()).toMatchObject({ code: "internal_error", detail: "" }); // nothing said to the client
      // …and the reason logged, for whoever runs the app.
      expect(logged).toHaveBeenCalledWith(
        expect.objectContaining({ message: "the idempotency record was not written: rolling back" }),
      );
      const { rows } = await pool.query("SELECT count(*)::int AS n FROM payments WHERE account = 'acct_x'");
      expect(rows[0].n).toBe(0);
      // The route rolled back and called abort(): the key is released, so the retry runs
      // again (and, with this store, is rolled back again) instead of waiting out the lease.
      const retry = await pay();
      expect(retry.status).toBe(500);
      const again = await pool.query("SELECT count(*)::int AS n FROM payments WHERE account = 'acct_x'");
      expect(again.rows[0].n).toBe(0);
    } finally {
      await pool.end();
    }
  });

  it("as many failing payments at once as the pool has connections: each key is released, so every retry runs", async () => {
    // Every route holds its connection when its payment fails (complete() waits until all of
    // them do), then releases its key: abort() needs a connection of that same pool.
    const size = 4;
    const pool = new pg.Pool({ connectionString: forTheApp(server.url), max: size });
    try {
      const real = postgresStore(pool, { operationTimeoutMs: 1_000 });
      let holding = 0;
      let allHolding: () => void = () => {};
      const everyRouteHolds = new Promise<void>((resolve) => {
        allHolding = resolve;
      });
      const leaseLost = new Proxy(real, {
        get(target, name) {
          if (name === "complete") {
            return async () => {
              if (++holding === size) allHolding();
              await everyRouteHolds;
              return false;
            };
          }
          const value = Reflect.get(target, name, target);
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
      const app = createApp({
        pool,
        store: leaseLost,
        githubSecret: GITHUB_SECRET,
        apiKeys: new Map([[API_KEY, "acct_full"]]),
      });
      const pay = (key: string) =>
        app.request("/payments", {
          method: "POST",
          headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json", "idempotency-key": key },
          body: JSON.stringify({ amount: 500 }),
        });
      const keys = Array.from({ length: size }, (_, i) => `full-pool-${i}`);

      vi.spyOn(console, "error").mockImplementation(() => {}); // each 500 logs its error
      onTestFinished(() => vi.restoreAllMocks());
      const first = await Promise.all(keys.map((key) => pay(key)));
      expect(first.map((response) => response.status)).toEqual(keys.map(() => 500));
      // Released, not left locked for the lease: the retry runs the payment again (and, with
      // this store, is rolled back again) rather than getting 409.
      const retries = await Promise.all(keys.map((key) => pay(key)));
      expect(retries.map((response) => response.status)).toEqual(keys.map(() => 500));
      const { rows } = await pool.query("SELECT count(*)::int AS n FROM payments WHERE account = 'acct_full'");
      expect(rows[0].n).toBe(0);
    } finally {
      await pool.end();
    }
  });
});
