// The Hono reference app on PostgreSQL: GitHub webhooks verified and processed once, and a
// payments API whose stored idempotent response commits in the SAME transaction as the payment
// row. Either both exist or neither does: no payment without its replayable answer, no stored
// answer for a payment that rolled back.
import {
  BodyError,
  createIdempotency,
  DEFAULT_REQUEST_BODY_LIMIT,
  decodeContent,
  github,
  readStreamUpTo,
  WebhookPayloadError,
} from "@interlock/core";
import { webhook } from "@interlock/hono";
import { Hono } from "hono";
import { bearerToken } from "../shared/bearer.mjs";

/** The app's own tables (Interlock's is created by `migrate` from @interlock/postgres). */
export const APP_SCHEMA_SQL = `
  CREATE TABLE IF NOT EXISTS payments (
    id text PRIMARY KEY,
    account text NOT NULL,
    amount bigint NOT NULL CHECK (amount > 0),
    currency text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
  );
  CREATE TABLE IF NOT EXISTS github_pushes (
    delivery_id text PRIMARY KEY,
    head text,
    received_at timestamptz NOT NULL DEFAULT now()
  );
`;

/**
 * @param {object} options
 * @param {import("pg").Pool} options.pool           your pool: the app's tables and its transactions
 * @param {import("@interlock/postgres").PostgresStore} options.store  the PostgreSQL store, on that pool
 * @param {string | string[]} options.githubSecret  the webhook's secret (a list while rotating)
 * @param {Map<string, string>} options.apiKeys     API key → account id, for `Authorization: Bearer <api key>`
 */
export function createApp({ pool, store, githubSecret, apiKeys }) {
  const app = new Hono();

  // 1. Webhooks: the Hono middleware, on the PostgreSQL store. A redelivery (same
  //    X-GitHub-Delivery) is answered 200 {"duplicate":true} without running the handler.
  app.post("/webhooks/github", webhook({ scheme: github, secret: githubSecret, store }), async (c) => {
    const delivery = c.get("webhook");
    if (c.req.header("x-github-event") === "push") {
      if (delivery.id === undefined || delivery.id.length > MAX_DELIVERY_ID_LENGTH) {
        // X-GitHub-Delivery is not signed: whoever sends it chooses it, or leaves it out. GitHub
        // sends a UUID; none, or one long enough (some 2.7 KB) that PostgreSQL's primary key
        // index refuses it, would be a 500 on every redelivery, so it is refused first, as a
        // push with no commit id is.
        return toResponse(
          problem(
            422,
            "invalid_push",
            `a push needs an X-GitHub-Delivery of at most ${MAX_DELIVERY_ID_LENGTH} characters`,
          ),
        );
      }
      const head = headOf(delivery);
      if (!isCommitId(head)) {
        // Verified, but no push this app can record: validated before the database sees it, so a
        // NUL (PostgreSQL text holds none) is not a 500 on every redelivery. Refused rather than
        // stored altered: a stripped or escaped id names no commit. A 4xx is no acknowledgement:
        // the delivery is released, and GitHub's delivery log shows it failed, with this answer.
        return toResponse(problem(422, "invalid_push", "after must be a commit id (40 or 64 hex digits)"));
      }
      // ON CONFLICT: should the receipt itself be lost (the store down after this commit), the
      // redelivery that then runs again changes nothing.
      await pool.query("INSERT INTO github_pushes (delivery_id, head) VALUES ($1, $2) ON CONFLICT DO NOTHING", [
        delivery.id,
        head,
      ]);
    }
    return c.json({ received: delivery.id }); // a throw or a non-2xx releases it for the redelivery
  });

  // 2. Payments. The adapters' idempotency() middleware stores the response after the route has
  //    answered, in its own statement: it has no way to join the route's transaction. So this
  //    route drives core's engine itself (begin → finish or abort), which is what the middleware
  //    does, and hands finish() its transaction client.
  const payments = createIdempotency({
    store,
    principal: (request) => request.context.get("accountId"), // keys are scoped per account
    required: true,
  });

  app.post("/payments", authenticate(apiKeys), async (c) => {
    // The bytes as sent, decoded as their Content-Encoding says (as the adapters' idempotency()
    // does): a compressed and a plain copy of one JSON are one request. Read once, for the
    // engine and the route alike, and never past the limit, as the adapters read it.
    let read;
    const body = () => (read ??= boundedBody(c.req.raw, DEFAULT_REQUEST_BODY_LIMIT));
    const decision = await payments.begin({
      method: "POST",
      route: "/payments",
      path: pathAndQuery(c.req.url),
      headers: c.req.raw.headers,
      body, // read only if the engine needs it; one that does not decode is answered 400/413/415
      context: c,
    });
    if (decision.action === "respond") return toResponse(decision.response); // a replay, or a 400/409/422/503
    const ticket = decision.action === "execute" ? decision.ticket : undefined; // "pass": not covered

    const payload = jsonObjectOf(await body());
    if (payload === undefined) {
      // No JSON object (bad JSON, none, null, an array): the client's mistake, refused without
      // storing it, so the key is released and the client's corrected retry runs.
      if (ticket) await payments.abort(ticket);
      return toResponse(
        problem(400, "bad_request", "send the payment as a JSON object, Content-Type: application/json"),
      );
    }
    const { amount, currency = "usd" } = payload;
    if (!Number.isSafeInteger(amount) || amount <= 0 || typeof currency !== "string" || !/^[a-z]{3}$/.test(currency)) {
      // Nothing written, so nothing to commit with: stored on its own, replayed to a retry.
      const refusal = problem(400, "invalid_payment", "amount must be a positive integer (cents), currency 3 letters");
      if (ticket) await payments.finish(ticket, refusal);
      return toResponse(refusal);
    }

    const client = await checkout(pool);
    try {
      await client.query("BEGIN");
      const id = `pay_${crypto.randomUUID().replaceAll("-", "")}`;
      const { rows } = await client.query(
        `INSERT INTO payments (id, account, amount, currency) VALUES ($1, $2, $3, $4)
         RETURNING ${PAYMENT_COLUMNS}`,
        [id, c.get("accountId"), amount, currency],
      );
      const created = json(201, paymentOf(rows[0]), [["location", `/payments/${id}`]]);
      if (ticket) {
        // The record is written by this transaction, just before COMMIT: it becomes visible
        // exactly when the payment does. Until then the key stays locked (a retry gets 409).
        // finish() says whether the record went in (a lease that ran out, or a store error,
        // writes nothing): never commit a payment without its stored response.
        const stored = await payments.finish(ticket, created, { transaction: client });
        if (!stored) throw new Error("the idempotency record was not written: rolling back");
      }
      await client.query("COMMIT");
      checkin(client);
      return toResponse(created);
    } catch (error) {
      await client.query("ROLLBACK").catch(() => {});
      // Back to the pool first: abort() takes a connection of the same pool, and routes that
      // held theirs while they waited for one would, as many at once as the pool has, wait on
      // each other until the store gives up, their keys locked for the lease.
      checkin(client, error);
      // Releases the key, before finish() or after a finish() inside this transaction that was
      // rolled back, so the client's retry runs again.
      if (ticket) await payments.abort(ticket);
      throw error; // app.onError answers 500
    }
  });

  app.get("/payments/:id", authenticate(apiKeys), async (c) => {
    const id = c.req.param("id");
    const notFound = () => toResponse(problem(404, "not_found", "no such payment"));
    if (id.includes("\u0000")) return notFound(); // PostgreSQL text holds no NUL: no payment has one
    const { rows } = await pool.query(`SELECT ${PAYMENT_COLUMNS} FROM payments WHERE id = $1 AND account = $2`, [
      id,
      c.get("accountId"),
    ]);
    return rows[0] ? c.json(paymentOf(rows[0])) : notFound();
  });

  app.notFound(() => toResponse(problem(404, "not_found", "no such route")));
  // Unexpected: the details go to the log, never to the client.
  app.onError((error) => {
    console.error(error);
    return toResponse(problem(500, "internal_error", ""));
  });
  return app;
}

/**
 * A pool connection with an 'error' listener from the moment pg hands it over. A checked-out
 * client has none of its own, and one the server ends (a restart, pg_terminate_backend) emits
 * 'error': unheard, that ends the process. The callback form, not `await pool.connect()`: pg
 * hands a new connection over while still reading its socket, and an error later in the same
 * read is emitted before an `await` could add the listener. The query then rejects instead.
 */
function checkout(pool) {
  return new Promise((resolve, reject) => {
    pool.connect((error, client) => {
      if (error) return reject(error);
      client.on("error", lost);
      resolve(client);
    });
  });
}

function lost() {} // the query in flight rejects with the same error

/**
 * Hands a `checkout()` connection back; with the transaction's error, pg discards it: the
 * connection may be broken, or still in the transaction (a ROLLBACK that failed).
 */
function checkin(client, error) {
  client.removeListener("error", lost);
  client.release(error);
}

/**
 * The push's `after`, or undefined when the payload names none, or cannot be read at all: the
 * payload getter throws WebhookPayloadError for a body that is neither a JSON object nor GitHub's form.
 */
function headOf(delivery) {
  try {
    return delivery.payload?.after;
  } catch (error) {
    if (error instanceof WebhookPayloadError) return undefined;
    throw error;
  }
}

/**
 * The request's body decoded as its Content-Encoding says, or core's `BodyError`, which the engine
 * answers as the adapters do: past `limit` bytes, 413 `body_too_large` (a declared Content-Length
 * over it refused unread; a chunked body read no further than the limit); data that does not
 * decode, 400; a coding not decoded, 415. Read from the request's stream, not `c.req.arrayBuffer()`,
 * which reads a body of any size whole.
 */
async function boundedBody(request, limit) {
  if (Number(request.headers.get("content-length")) > limit) return BodyError.tooLarge(limit);
  const bytes = request.body === null ? new Uint8Array(0) : await readStreamUpTo(request.body, limit);
  if (bytes instanceof BodyError) return bytes;
  return decodeContent(bytes, request.headers.get("content-encoding"), limit);
}

/** Decoded body bytes as a JSON object, or undefined: not JSON, not an object, or a BodyError. */
function jsonObjectOf(bytes) {
  if (!(bytes instanceof Uint8Array)) return undefined;
  try {
    const value = JSON.parse(new TextDecoder().decode(bytes));
    return typeof value === "object" && value !== null && !Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** A git commit id as a push's `after` gives it: SHA-1 (40 hex digits), or SHA-256 (64). */
function isCommitId(value) {
  return typeof value === "string" && /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/.test(value);
}

/** GitHub's delivery ids are UUIDs (36 characters): this leaves room, and stays far below PostgreSQL's index limit. */
const MAX_DELIVERY_ID_LENGTH = 255;

const PAYMENT_COLUMNS = "id, amount, currency, account, created_at";

/** A row as the API shows it (pg returns bigint as a string, timestamptz as a Date). */
function paymentOf(row) {
  const { id, amount, currency, account, created_at } = row;
  return { id, amount: Number(amount), currency, account, created: created_at.toISOString() };
}

/** `Authorization: Bearer <api key>` (strictly: see bearerToken) → `c.get("accountId")`, or 401. */
function authenticate(apiKeys) {
  return async (c, next) => {
    const accountId = apiKeys.get(bearerToken(c.req.header("authorization")));
    if (accountId === undefined) {
      const refusal = problem(401, "unauthenticated", "send Authorization: Bearer <api key>");
      refusal.headers.push(["www-authenticate", "Bearer"]);
      return toResponse(refusal);
    }
    c.set("accountId", accountId);
    await next();
  };
}

/** A response as plain data: what the engine stores, and what goes out (byte for byte the same). */
function json(status, value, headers = []) {
  return { status, headers: [["content-type", "application/json"], ...headers], body: JSON.stringify(value) };
}

function problem(status, code, detail) {
  const body = { type: `urn:example:problem:${code}`, title: code.replaceAll("_", " "), status, detail, code };
  return { status, headers: [["content-type", "application/problem+json"]], body: JSON.stringify(body) };
}

function toResponse({ status, headers, body }) {
  return new Response(body.length === 0 ? null : body, { status, headers });
}

/** `/payments?x=1` from `http://host/payments?x=1`: part of the request's fingerprint. */
function pathAndQuery(url) {
  const { pathname, search } = new URL(url);
  return pathname + search;
}
