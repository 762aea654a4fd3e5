/**
 * HTTP benchmark of the framework adapters: requests/s of Express 5, Fastify 5, Koa 3 and
 * Hono 4 (on @hono/node-server) for the bare app, the app doing the unavoidable webhook work
 * by hand (raw body + createHmac + timingSafeEqual), the app with our webhook() middleware, and
 * with our idempotency() middleware (unique keys, and all replays), and idempotency by hand (in
 * the route, and on Fastify, Koa and Hono as a middleware too) as the floor; on Express also the
 * peers express-idempotency and @node-idempotency/core. See README.md for how to read the numbers.
 *
 *   node bench/http.mjs                    full run (about 26 min on 2 cores), writes results/http.md
 *   node bench/http.mjs --quick            ~1 min smoke run (1 round, 2 s runs), writes nothing
 *   node bench/http.mjs --only koa         one framework (or several, comma-separated), writes nothing
 *   node bench/http.mjs --rows bare,idem-unique   only these rows (see ROWS), writes nothing
 *   node bench/http.mjs --rate 2000 …      the client holds to 2,000 req/s: the CPU per request of a
 *                                          server that is not saturated (no wake-up feedback), writes nothing
 *   node bench/http.mjs --profile express:idem-unique [--duration 10] [--against hand-unique]
 *                                          one server under --cpu-prof; prints where its CPU time goes,
 *                                          and what it spends beyond its baseline row (or --against's)
 *   node bench/http.mjs --instructions [--only fastify] [--rows …]
 *                                          each server under valgrind's callgrind: the instructions it
 *                                          runs per request, which do not depend on what else the machine
 *                                          is doing (about 45 min for every row, two servers at a time);
 *                                          a full run writes results/http-instructions.md
 *
 * Each run starts one server in its own child process (fresh store, fresh JIT), so the load
 * generator, autocannon, never shares the server's event loop; the runs go one at a time. Every
 * run is warmed up, then measured; the rows of a framework are run in one order in even rounds
 * and in the reverse order in odd rounds, and each ratio is taken between runs of the same round.
 * The server reports its own CPU time over the measured window, so a row's cost per request is
 * known even when the client, or another process on this shared machine, held the CPU back.
 */

import { fork, spawn } from "node:child_process";
import { createHash, createHmac, hash, timingSafeEqual } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { IncomingMessage, ServerResponse } from "node:http";
import os from "node:os";
import path from "node:path";
import { constants, PerformanceObserver } from "node:perf_hooks";
import { Duplex, Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { args, flag, option } from "./args.mjs";
import { CALLGRIND_ARGS, dumpCounters, valgrindVersion, zeroCounters } from "./callgrind.mjs";
import { measuredCommit, writeResults } from "./provenance.mjs";
import { halfIqr, median } from "./stats.mjs";

const QUICK = flag("--quick");
const ONLY = option("--only", "").split(",").filter(Boolean);
const ONLY_ROWS = option("--rows", "").split(",").filter(Boolean);
const PROFILE = option("--profile", "");
const ROUNDS = Number(option("--rounds", QUICK ? 1 : 4));
const WARMUP_S = Number(option("--warmup", QUICK ? 1 : 1.5));
const DURATION_S = Number(option("--duration", QUICK ? 2 : PROFILE ? 10 : 6));
const CONNECTIONS = Number(option("--connections", 32));
/** Requests per in-process measurement (`--inproc N`, see inprocMain); 0: over HTTP. */
const INPROC = Number(option("--inproc", 0));
/** Requests per second the client holds to (autocannon's overallRate); 0: as fast as the server answers. */
const RATE = Number(option("--rate", 0));
/** `--instructions`: user-space instructions per request, each server under callgrind (see instructionsMain). */
const INSTRUCTIONS = flag("--instructions");
/** Requests before the first counted window (the JIT settles), then requests per counted window. */
const IR_WARMUP = Number(option("--warmup-requests", 4000));
const IR_REQUESTS = Number(option("--requests", 2000));
const IR_WINDOWS = 3;
/** Servers measured at once under callgrind (each needs a core of its own; the clients are light next to it). */
const IR_PARALLEL = Number(option("--parallel", 2));
/** Pre-signed unique deliveries per pool; more than any server here answers in warm-up + run. */
const POOL_SIZE = Number(option("--pool", QUICK ? 80_000 : 300_000));
const HOST = "127.0.0.1"; // loopback only
const BODY_BYTES = 512;
/** The `busy` row's work per request, in µs: a loop on the clock, as a layer that costs this much. */
const BUSY_US = 5;

// ---------------------------------------------------------------------------------------
// What is measured

/**
 * The rows. `kind` decides the requests the client sends: `pay` a payment body, `delivery` a
 * unique signed Standard Webhooks delivery per request, `unique` a payment body with a unique
 * Idempotency-Key per request, `replay` a payment body with one key (stored before the run).
 */
const ROWS = {
  bare: { label: "bare app", route: "/payments", kind: "pay" },
  hmac: { label: "raw body + hand-written HMAC", route: "/webhooks", kind: "delivery" },
  webhook: { label: "**ours** `webhook()`", route: "/webhooks", kind: "delivery", base: "hmac", target: 0.9 },
  "idem-unique": {
    label: "**ours** `idempotency()`, unique keys",
    route: "/payments",
    kind: "unique",
    base: "bare",
    target: (fw) => (fw === "express" ? 0.9 : 0.85),
  },
  "idem-replay": {
    label: "**ours** `idempotency()`, all replays",
    route: "/payments",
    kind: "replay",
    base: "bare",
    target: 1.0,
  },
  // The floor: what the environment allows any idempotency layer, not a peer (see HandIdempotency).
  "hand-unique": {
    label: "by hand in the route (a Map, no leases), unique keys",
    route: "/payments",
    kind: "unique",
    base: "bare",
  },
  "hand-replay": {
    label: "by hand in the route (a Map, no leases), all replays",
    route: "/payments",
    kind: "replay",
    base: "bare",
  },
  // The same floor, but as a layer around the route, as a middleware must be: it reads the raw
  // body before the route, and takes the route's answer afterwards (see the frameworks' `mw-` rows).
  "mw-unique": {
    label: "by hand as a middleware (a Map, no leases), unique keys",
    route: "/payments",
    kind: "unique",
    base: "bare",
  },
  "mw-replay": {
    label: "by hand as a middleware (a Map, no leases), all replays",
    route: "/payments",
    kind: "replay",
    base: "bare",
  },
  // A calibration, not a peer: what any layer that works BUSY_US per request costs on this machine.
  busy: {
    label: `bare app + ${BUSY_US} µs of busy work per request`,
    route: "/payments",
    kind: "pay",
    base: "bare",
  },
  "ei-unique": { label: "express-idempotency 1.0.6, unique keys", route: "/payments", kind: "unique", base: "bare" },
  "ei-replay": { label: "express-idempotency 1.0.6, all replays", route: "/payments", kind: "replay", base: "bare" },
  "ni-unique": {
    label: "@node-idempotency/core 1.0.11 (memory), unique keys",
    route: "/payments",
    kind: "unique",
    base: "bare",
  },
  "ni-replay": {
    label: "@node-idempotency/core 1.0.11 (memory), all replays",
    route: "/payments",
    kind: "replay",
    base: "bare",
  },
};
const OURS = ["bare", "hmac", "webhook", "idem-unique", "idem-replay", "hand-unique", "hand-replay", "busy"];
// Express meets its targets; the middleware floor is for the frameworks that do not.
const WITH_MIDDLEWARE_FLOOR = [...OURS.slice(0, -1), "mw-unique", "mw-replay", "busy"];
const FRAMEWORKS = {
  express: { label: "Express 5.3.0", rows: [...OURS, "ei-unique", "ei-replay", "ni-unique", "ni-replay"] },
  fastify: { label: "Fastify 5.12.8", rows: WITH_MIDDLEWARE_FLOOR },
  koa: { label: "Koa 3.3.0", rows: WITH_MIDDLEWARE_FLOOR },
  hono: { label: "Hono 4.13.19 (@hono/node-server 2.1.9)", rows: WITH_MIDDLEWARE_FLOOR },
};
/** A unique-keys run is "flat" when its last second is at least this share of its first two. */
const FLAT_TARGET = 0.9;

// ---------------------------------------------------------------------------------------
// Shared by client and servers

/** The Standard Webhooks signing key, and the secret as a provider hands it out. */
const KEY = createHash("sha256").update("interlock http bench").digest();
const SECRET = `whsec_${KEY.toString("base64")}`;
const TOLERANCE_S = 300;

/** A JSON text of exactly `BODY_BYTES` bytes: `head`, then padding, then `tail`. */
function padded(head, tail) {
  const pad = BODY_BYTES - Buffer.byteLength(head) - Buffer.byteLength(tail);
  if (pad < 0) throw new Error("body template too long");
  return `${head}${"x".repeat(pad)}${tail}`;
}

const PAYMENT_BODY = Buffer.from(
  padded('{"amount":1000,"currency":"eur","customer":"cus_Q1bench","description":"', '"}'),
);

/**
 * The hand-written Standard Webhooks check: what any receiver has to do at least. Headers
 * present, timestamp within the tolerance, HMAC-SHA256 over `{id}.{ts}.{body}`, and a
 * constant-time comparison with each `v1,` signature listed.
 */
function handVerify(id, ts, signatures, body) {
  if (typeof id !== "string" || typeof ts !== "string" || typeof signatures !== "string") return false;
  if (!(Math.abs(Date.now() / 1000 - Number(ts)) <= TOLERANCE_S)) return false;
  const mac = createHmac("sha256", KEY).update(`${id}.${ts}.`).update(body).digest();
  for (const candidate of signatures.split(" ")) {
    if (!candidate.startsWith("v1,")) continue;
    const signature = Buffer.from(candidate.slice(3), "base64");
    if (signature.length === mac.length && timingSafeEqual(signature, mac)) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------
// Servers (child processes)

/** What every payment route answers, from the parsed body: proves the body reached the route. */
/** Spins for `BUSY_US` µs (a request is served on one thread: this is CPU time). */
function busyWork() {
  const until = performance.now() + BUSY_US / 1000;
  while (performance.now() < until);
}

/** A route handler that first does `busyWork()`: the `busy` row. */
const afterBusyWork =
  (handler) =>
  (...args) => {
    busyWork();
    return handler(...args);
  };

function payment(body, n) {
  if (typeof body?.amount !== "number") throw new Error("payment body was not parsed");
  return { id: `pay_${n}`, status: "succeeded", amount: body.amount, currency: body.currency };
}

/** What every webhook route answers, from the parsed event: proves the route saw the payload. */
function received(event) {
  if (typeof event?.type !== "string") throw new Error("event was not parsed");
  return { received: true, type: event.type };
}

function readStream(stream) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    stream.on("data", (chunk) => chunks.push(chunk));
    stream.on("end", () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)));
    stream.on("error", reject);
  });
}

const UNAUTHORIZED = { error: "invalid signature" };

/**
 * Our memory store with room for every key of a run: its default bound (100,000 keys, each kept
 * an hour before a full store may evict it) is reached within a run once a framework answers
 * 13,000 requests a second, and a full store refuses new keys (503), which the run would measure
 * instead. A million keys and 1 GiB hold a 20 s run at 50,000 a second; the store grows as it
 * fills, so a row that keeps little pays for no more.
 */
const roomyStore = (memoryStore) => memoryStore({ maxEntries: 1_000_000, maxBytes: 2 ** 30 });

/**
 * The least an idempotency layer can do, written into the route by hand: the raw body's SHA-256
 * as the fingerprint, a Map from key to the answer the route stored itself. No key validation,
 * scope, lease, expiry, bound or events, and no response capture. Not a peer: the floor of what
 * idempotency costs on this machine, for reading the targets (the "by hand" rows).
 */
class HandIdempotency {
  #records = new Map();

  /** Undefined when the key is new (claimed: run the route, then `finish`); else what to answer. */
  begin(key, raw) {
    const fingerprint = hash("sha256", raw, "hex");
    const found = this.#records.get(key);
    if (found === undefined) {
      this.#records.set(key, { fingerprint, status: 0, body: "" });
      return undefined;
    }
    if (found.fingerprint !== fingerprint) return { status: 422, body: '{"error":"key reused"}', replayed: false };
    if (found.status === 0) return { status: 409, body: '{"error":"in flight"}', replayed: false };
    return { status: found.status, body: found.body, replayed: true };
  }

  /** Stores the route's answer (JSON text) under its key. */
  finish(key, status, body) {
    const record = this.#records.get(key);
    record.status = status;
    record.body = body;
  }
}

/** The payment route's answer through `HandIdempotency`: `send(status, jsonText, replayed)`. */
function handPayment(hand, key, raw, count, send) {
  const answer = hand.begin(key, raw);
  if (answer !== undefined) return send(answer.status, answer.body, answer.replayed);
  const body = JSON.stringify(payment(JSON.parse(raw), count()));
  hand.finish(key, 201, body);
  return send(201, body, false);
}

/**
 * `HandIdempotency` before the route (the `mw-` rows): undefined when the route is to run, else
 * sends the stored answer or the refusal through `send(status, jsonText, replayed)`.
 */
function handBefore(hand, key, raw, send) {
  const answer = hand.begin(key, raw);
  if (answer === undefined) return undefined;
  return send(answer.status, answer.body, answer.replayed);
}

/** Builds the app for a row, listens on 127.0.0.1:0, resolves to its `http.Server`. */
const SERVERS = {
  async express(row, count) {
    const { default: express } = await import("express");
    const app = express();
    const pay = (req, res) => {
      res.status(201).json(payment(req.body, count()));
    };
    switch (row) {
      case "bare":
      case "busy":
        app.use(express.json());
        app.post("/payments", row === "busy" ? afterBusyWork(pay) : pay);
        break;
      case "hmac":
        app.post("/webhooks", express.raw({ type: "application/json" }), (req, res) => {
          const h = req.headers;
          if (!handVerify(h["webhook-id"], h["webhook-timestamp"], h["webhook-signature"], req.body)) {
            res.status(401).json(UNAUTHORIZED);
            return;
          }
          count();
          res.json(received(JSON.parse(req.body)));
        });
        break;
      case "webhook": {
        const [{ memoryStore, standardWebhooks }, { releaseOnError, webhook }] = await Promise.all([
          import("@interlock/core"),
          import("@interlock/express"),
        ]);
        const store = roomyStore(memoryStore);
        app.post("/webhooks", webhook({ scheme: standardWebhooks, secret: SECRET, store }), (req, res) => {
          count();
          res.json(received(req.webhook.payload));
        });
        app.use(releaseOnError); // as its README: after the routes, before the app's error handler
        break;
      }
      case "idem-unique":
      case "idem-replay": {
        const [{ memoryStore }, { captureRawBody, idempotency, releaseOnError }] = await Promise.all([
          import("@interlock/core"),
          import("@interlock/express"),
        ]);
        const store = roomyStore(memoryStore);
        // The README's setup: the app's own JSON parser, keeping the raw bytes for the fingerprint.
        app.use(express.json({ verify: captureRawBody }));
        app.post("/payments", idempotency({ store, principal: false }), pay);
        app.use(releaseOnError);
        break;
      }
      case "hand-unique":
      case "hand-replay": {
        const hand = new HandIdempotency();
        app.post("/payments", express.raw({ type: "application/json" }), (req, res) =>
          handPayment(hand, req.headers["idempotency-key"], req.body, count, (status, body, replayed) => {
            if (replayed) res.set("idempotent-replayed", "true");
            res.status(status).type("json").send(body);
          }),
        );
        break;
      }
      case "ei-unique":
      case "ei-replay": {
        const { idempotency, getSharedIdempotencyService } = (await import("express-idempotency")).default;
        app.use(express.json());
        app.post("/payments", idempotency(), (req, res) => {
          // Its README: the middleware answers a replay itself and still calls next().
          if (getSharedIdempotencyService().isHit(req)) return;
          pay(req, res);
        });
        break;
      }
      case "ni-unique":
      case "ni-replay": {
        app.use(express.json());
        app.post("/payments", await nodeIdempotencyExpress(), pay);
        break;
      }
      default:
        throw new Error(`no ${row} row on express`);
    }
    const server = app.listen(0, HOST);
    await new Promise((resolve, reject) => server.once("listening", resolve).once("error", reject));
    return server;
  },

  async fastify(row, count) {
    const { default: Fastify } = await import("fastify");
    const app = Fastify({ logger: false });
    const pay = async (request, reply) => {
      reply.code(201);
      return payment(request.body, count());
    };
    // How the by-hand rows answer: `send(status, jsonText, replayed)` for HandIdempotency.
    const sendJson = (reply) => (status, body, replayed) => {
      if (replayed) reply.header("idempotent-replayed", "true");
      return reply.code(status).type("application/json; charset=utf-8").send(body);
    };
    switch (row) {
      case "bare":
      case "busy":
        app.post("/payments", row === "busy" ? afterBusyWork(pay) : pay);
        break;
      case "hmac":
        // The raw bytes for this route only: a content-type parser in an encapsulated scope.
        await app.register(async (scope) => {
          scope.addContentTypeParser("application/json", { parseAs: "buffer" }, (_request, body, done) =>
            done(null, body),
          );
          scope.post("/webhooks", async (request, reply) => {
            const h = request.headers;
            if (!handVerify(h["webhook-id"], h["webhook-timestamp"], h["webhook-signature"], request.body)) {
              reply.code(401);
              return UNAUTHORIZED;
            }
            count();
            return received(JSON.parse(request.body));
          });
        });
        break;
      case "webhook": {
        const [{ memoryStore, standardWebhooks }, { interlock, webhook }] = await Promise.all([
          import("@interlock/core"),
          import("@interlock/fastify"),
        ]);
        const store = roomyStore(memoryStore);
        await app.register(interlock);
        const hooks = webhook({ scheme: standardWebhooks, secret: SECRET, store });
        // The body Fastify's own JSON parser made of the verified bytes, as a Fastify app reads it
        // (request.webhook.payload would parse the same bytes a second time).
        app.post("/webhooks", { config: { interlock: hooks } }, async (request) => {
          count();
          return received(request.body);
        });
        break;
      }
      case "idem-unique":
      case "idem-replay": {
        const [{ memoryStore }, { interlock, idempotency }] = await Promise.all([
          import("@interlock/core"),
          import("@interlock/fastify"),
        ]);
        const store = roomyStore(memoryStore);
        await app.register(interlock);
        const hooks = idempotency({ store, principal: false });
        app.post("/payments", { config: { interlock: hooks } }, pay);
        break;
      }
      case "hand-unique":
      case "hand-replay": {
        const hand = new HandIdempotency();
        await app.register(async (scope) => {
          scope.addContentTypeParser("application/json", { parseAs: "buffer" }, (_request, body, done) =>
            done(null, body),
          );
          scope.post("/payments", async (request, reply) =>
            handPayment(hand, request.headers["idempotency-key"], request.body, count, sendJson(reply)),
          );
        });
        break;
      }
      case "mw-unique":
      case "mw-replay": {
        // Route hooks, as a plugin would add them: the raw bytes kept in preParsing (and handed on
        // to Fastify's JSON parser), the key looked up in preHandler, the answer stored in onSend.
        const hand = new HandIdempotency();
        app.decorateRequest("rawBody", null);
        app.decorateRequest("claimedKey", null);
        const preParsing = (request, _reply, payload, done) => {
          readStream(payload).then((raw) => {
            request.rawBody = raw;
            const again = new Readable({ read() {} });
            again.push(raw);
            again.push(null);
            done(null, again);
          }, done);
        };
        const preHandler = (request, reply, done) => {
          const key = request.headers["idempotency-key"];
          if (handBefore(hand, key, request.rawBody, sendJson(reply)) !== undefined) return;
          request.claimedKey = key;
          done();
        };
        const onSend = (request, reply, payload, done) => {
          if (request.claimedKey !== null) hand.finish(request.claimedKey, reply.statusCode, payload);
          done(null, payload);
        };
        app.post("/payments", { preParsing, preHandler, onSend }, pay);
        break;
      }
      default:
        throw new Error(`no ${row} row on fastify`);
    }
    await app.listen({ port: 0, host: HOST });
    return app.server;
  },

  async koa(row, count) {
    const { default: Koa } = await import("koa");
    const app = new Koa();
    const route = (method, url, handler) => async (ctx, next) => {
      if (ctx.method === method && ctx.path === url) await handler(ctx);
      else await next();
    };
    // The payment route behind a layer that leaves the parsed JSON on ctx.request.body.
    const payBehind = (layer) =>
      route("POST", "/payments", (ctx) =>
        layer(ctx, async () => {
          ctx.status = 201;
          ctx.body = payment(ctx.request.body, count());
        }),
      );
    // How the by-hand rows answer: `send(status, jsonText, replayed)` for HandIdempotency.
    const sendJson = (ctx) => (status, body, replayed) => {
      if (replayed) ctx.set("idempotent-replayed", "true");
      ctx.status = status;
      ctx.type = "json";
      ctx.body = body;
      return true;
    };
    switch (row) {
      case "bare":
      case "busy":
        // Koa has no body parser of its own: the stream, read by hand, and JSON.parse.
        app.use(
          route("POST", "/payments", async (ctx) => {
            const body = JSON.parse(await readStream(ctx.req));
            if (row === "busy") busyWork();
            ctx.status = 201;
            ctx.body = payment(body, count());
          }),
        );
        break;
      case "hmac":
        app.use(
          route("POST", "/webhooks", async (ctx) => {
            const raw = await readStream(ctx.req);
            const h = ctx.headers;
            if (!handVerify(h["webhook-id"], h["webhook-timestamp"], h["webhook-signature"], raw)) {
              ctx.status = 401;
              ctx.body = UNAUTHORIZED;
              return;
            }
            count();
            ctx.body = received(JSON.parse(raw));
          }),
        );
        break;
      case "webhook": {
        const [{ memoryStore, standardWebhooks }, { webhook }] = await Promise.all([
          import("@interlock/core"),
          import("@interlock/koa"),
        ]);
        const store = roomyStore(memoryStore);
        // No router: the README's "behind your own ctx.path check".
        const verify = webhook({ scheme: standardWebhooks, secret: SECRET, store });
        app.use(
          route("POST", "/webhooks", (ctx) =>
            verify(ctx, async () => {
              count();
              ctx.body = received(ctx.state.webhook.payload);
            }),
          ),
        );
        break;
      }
      case "idem-unique":
      case "idem-replay": {
        const [{ memoryStore }, { idempotency }] = await Promise.all([
          import("@interlock/core"),
          import("@interlock/koa"),
        ]);
        const store = roomyStore(memoryStore);
        // Read before any parser, idempotency() leaves the parsed JSON on ctx.request.body.
        app.use(payBehind(idempotency({ store, principal: false })));
        break;
      }
      case "hand-unique":
      case "hand-replay": {
        const hand = new HandIdempotency();
        app.use(
          route("POST", "/payments", async (ctx) => {
            const raw = await readStream(ctx.req);
            handPayment(hand, ctx.headers["idempotency-key"], raw, count, sendJson(ctx));
          }),
        );
        break;
      }
      case "mw-unique":
      case "mw-replay": {
        // A middleware around the route: reads the stream, looks the key up, leaves the parsed
        // JSON on ctx.request.body, runs the route, and stores its answer as the JSON text sent.
        const hand = new HandIdempotency();
        const mw = async (ctx, next) => {
          const raw = await readStream(ctx.req);
          const key = ctx.headers["idempotency-key"];
          if (handBefore(hand, key, raw, sendJson(ctx)) !== undefined) return;
          ctx.request.body = JSON.parse(raw);
          await next();
          const body = JSON.stringify(ctx.body);
          ctx.type = "json";
          ctx.body = body;
          hand.finish(key, ctx.status, body);
        };
        app.use(payBehind(mw));
        break;
      }
      default:
        throw new Error(`no ${row} row on koa`);
    }
    const server = app.listen(0, HOST);
    await new Promise((resolve, reject) => server.once("listening", resolve).once("error", reject));
    return server;
  },

  async hono(row, count) {
    const [{ Hono }, { serve }] = await Promise.all([import("hono"), import("@hono/node-server")]);
    const app = new Hono();
    const pay = async (c) => c.json(payment(await c.req.json(), count()), 201);
    // How the by-hand rows answer: `send(status, jsonText, replayed)` for HandIdempotency.
    const sendJson = (c) => (status, body, replayed) => {
      if (replayed) c.header("idempotent-replayed", "true");
      c.header("content-type", "application/json");
      return c.body(body, status);
    };
    switch (row) {
      case "bare":
      case "busy":
        app.post("/payments", row === "busy" ? afterBusyWork(pay) : pay);
        break;
      case "hmac":
        app.post("/webhooks", async (c) => {
          const raw = Buffer.from(await c.req.arrayBuffer());
          const ok = handVerify(
            c.req.header("webhook-id"),
            c.req.header("webhook-timestamp"),
            c.req.header("webhook-signature"),
            raw,
          );
          if (!ok) return c.json(UNAUTHORIZED, 401);
          count();
          return c.json(received(JSON.parse(raw)));
        });
        break;
      case "webhook": {
        const [{ memoryStore, standardWebhooks }, { webhook }] = await Promise.all([
          import("@interlock/core"),
          import("@interlock/hono"),
        ]);
        const store = roomyStore(memoryStore);
        app.post("/webhooks", webhook({ scheme: standardWebhooks, secret: SECRET, store }), (c) => {
          count();
          return c.json(received(c.get("webhook").payload));
        });
        break;
      }
      case "idem-unique":
      case "idem-replay": {
        const [{ memoryStore }, { idempotency }] = await Promise.all([
          import("@interlock/core"),
          import("@interlock/hono"),
        ]);
        const store = roomyStore(memoryStore);
        app.post("/payments", idempotency({ store, principal: false }), pay);
        break;
      }
      case "hand-unique":
      case "hand-replay": {
        const hand = new HandIdempotency();
        app.post("/payments", async (c) => {
          const raw = Buffer.from(await c.req.arrayBuffer());
          return handPayment(hand, c.req.header("idempotency-key"), raw, count, sendJson(c));
        });
        break;
      }
      case "mw-unique":
      case "mw-replay": {
        // A middleware before the route: the body read once (Hono caches it for c.req.json()),
        // the key looked up, the route run, and its answer read back and sent as the text stored.
        const hand = new HandIdempotency();
        const mw = async (c, next) => {
          const raw = Buffer.from(await c.req.arrayBuffer());
          const key = c.req.header("idempotency-key");
          const sent = handBefore(hand, key, raw, sendJson(c));
          if (sent !== undefined) return sent;
          await next();
          const response = c.res;
          const body = await response.text();
          c.res = undefined;
          c.res = new Response(body, { status: response.status, headers: response.headers });
          hand.finish(key, response.status, body);
        };
        app.post("/payments", mw, pay);
        break;
      }
      default:
        throw new Error(`no ${row} row on hono`);
    }
    return new Promise((resolve, reject) => {
      const server = serve({ fetch: app.fetch, port: 0, hostname: HOST }, () => resolve(server));
      server.once("error", reject);
    });
  },
};

/**
 * @node-idempotency/core through a thin Express middleware. Its own Express plugin is not on
 * npm; this follows that plugin's source: onRequest() before the route, res.send wrapped to
 * hand the response to onResponse() (not awaited, as there), a replay answered with the stored
 * status, Content-Type and body plus `Idempotent-Replayed: true`, its errors mapped to 409/422/400.
 */
async function nodeIdempotencyExpress() {
  const [{ Idempotency, IdempotencyError, IdempotencyErrorCodes }, { MemoryStorageAdapter }] = await Promise.all([
    import("@node-idempotency/core"),
    import("@node-idempotency/storage-adapter-memory"),
  ]);
  const idempotency = new Idempotency(new MemoryStorageAdapter(), {});
  const statusOf = {
    [IdempotencyErrorCodes.REQUEST_IN_PROGRESS]: 409,
    [IdempotencyErrorCodes.IDEMPOTENCY_FINGERPRINT_MISSMATCH]: 422,
    [IdempotencyErrorCodes.IDEMPOTENCY_KEY_LEN_EXEEDED]: 400,
    [IdempotencyErrorCodes.IDEMPOTENCY_KEY_MISSING]: 400,
  };
  const store = (request, res, payload) => {
    const statusCode = res.statusCode;
    const additional = { statusCode };
    const contentType = res.getHeader("content-type");
    if (contentType) additional["Content-Type"] = contentType;
    let body = payload;
    if (typeof body === "string" && String(contentType).toLowerCase().includes("application/json")) {
      try {
        body = JSON.parse(body);
      } catch {}
    }
    return idempotency.onResponse(request, { additional, ...(statusCode < 400 ? { body } : { error: body }) });
  };
  return async (req, res, next) => {
    const request = { headers: req.headers, body: req.body, path: req.url, method: req.method };
    let stored;
    try {
      stored = await idempotency.onRequest(request);
    } catch (error) {
      if (!(error instanceof IdempotencyError)) return next(error);
      if (error.code === IdempotencyErrorCodes.REQUEST_IN_PROGRESS) res.setHeader("Retry-After", "1");
      res.status(statusOf[error.code] ?? 500).json({ error: error.message });
      return;
    }
    if (!stored) {
      const send = res.send.bind(res);
      res.send = (body) => {
        void store(request, res, body);
        return send(body);
      };
      next();
      return;
    }
    if (stored.additional?.statusCode) res.status(stored.additional.statusCode);
    if (stored.additional?.["Content-Type"]) res.setHeader("Content-Type", stored.additional["Content-Type"]);
    res.setHeader("Idempotent-Replayed", "true");
    if (stored.body) res.send(stored.body);
    else next(stored.error);
  };
}

async function serverMain(framework, row) {
  let handled = 0;
  const count = () => ++handled;
  const server = await SERVERS[framework](row, count);
  if (INPROC > 0) return inprocMain(server, row, () => handled);
  const port = server.address().port;
  process.on("message", (message) => {
    if (message.type === "mark") {
      process.send({
        type: "mark",
        cpu: process.cpuUsage(),
        handled,
        rss: process.memoryUsage().rss,
        // CLOCK_MONOTONIC in µs, the clock of V8's CPU profile: marks the measured window in it.
        monoUs: Number(process.hrtime.bigint() / 1000n),
      });
    } else if (message.type === "exit") {
      process.exit(0); // also writes the --cpu-prof profile
    }
  });
  process.on("disconnect", () => process.exit(0)); // the parent went away
  process.send({ type: "ready", port });
}

// ---------------------------------------------------------------------------------------
// Client

/**
 * A pool of unique signed Standard Webhooks deliveries (`webhook-id` unique, body naming the
 * same id), signed now with KEY. Both webhook rows of a framework get the same pool. Past its
 * end (never expected), deliveries are signed on the fly and the run says so.
 */
function deliveryPool(size) {
  const pool = { items: new Array(size), ts: "", overflow: 0, make: (i) => signedDelivery(i, pool.ts) };
  resignFrom(pool, 0);
  return pool;
}

/**
 * Signs the pool's deliveries from index `first` on again, with the time now: under callgrind a
 * row outlasts the 300 s tolerance, and a stale delivery would be refused (a cheaper 401 counted
 * in place of the work). The ids stay the same, so none is sent twice.
 */
function resignFrom(pool, first) {
  pool.ts = String(Math.floor(Date.now() / 1000));
  for (let i = first; i < pool.items.length; i++) pool.items[i] = pool.make(i);
}

function signedDelivery(i, ts) {
  const id = `msg_${String(i).padStart(10, "0")}`;
  const body = Buffer.from(padded(`{"type":"invoice.paid","id":"${id}","timestamp":"${ts}","data":{"note":"`, '"}}'));
  const signature = createHmac("sha256", KEY).update(`${id}.${ts}.`).update(body).digest("base64");
  return {
    body,
    headers: {
      "content-type": "application/json",
      "webhook-id": id,
      "webhook-timestamp": ts,
      "webhook-signature": `v1,${signature}`,
    },
  };
}

/**
 * The request (and autocannon's `setupRequest`) for a row. Every row builds its request in
 * `setupRequest`, even those that send the same bytes each time, so the client pays the same
 * per request whatever the row.
 */
function requestFor(row, pool, state) {
  const { route, kind } = ROWS[row];
  const payment = (key) => ({
    method: "POST",
    path: route,
    headers: key
      ? { "content-type": "application/json", "idempotency-key": key }
      : { "content-type": "application/json" },
    body: PAYMENT_BODY,
  });
  switch (kind) {
    case "pay":
      return { ...payment(), setupRequest: (req) => req };
    case "replay":
      return { ...payment("replayed-key"), setupRequest: (req) => req };
    case "unique": {
      const prefix = `k${Date.now().toString(36)}`;
      return {
        ...payment("x"),
        setupRequest: (req) => {
          req.headers["idempotency-key"] = `${prefix}-${state.next++}`;
          return req;
        },
      };
    }
    case "delivery":
      return {
        method: "POST",
        path: route,
        setupRequest: (req) => {
          const i = state.next++;
          let delivery = pool.items[i];
          if (delivery === undefined) {
            pool.overflow++;
            delivery = pool.items[i] = pool.make(i);
          }
          req.headers = { ...delivery.headers };
          req.body = delivery.body;
          return req;
        },
      };
    default:
      throw new Error(kind);
  }
}

/** One autocannon run; counts the responses per second itself (for "flat over the run"). */
async function load(autocannon, port, request, seconds) {
  const perSecond = new Array(Math.ceil(seconds) + 2).fill(0);
  let non2xx = 0;
  let total = 0;
  const t0 = performance.now();
  const result = await new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: `http://${HOST}:${port}`,
        connections: CONNECTIONS,
        ...(RATE > 0 ? { overallRate: RATE } : {}),
        duration: seconds,
        requests: [request],
        timeout: 10,
      },
      (error, res) => (error ? reject(error) : resolve(res)),
    );
    instance.on("response", (_client, statusCode) => {
      total++;
      if (statusCode < 200 || statusCode > 299) non2xx++;
      const s = Math.floor((performance.now() - t0) / 1000);
      if (s < perSecond.length) perSecond[s]++;
    });
  });
  const full = perSecond.slice(0, Math.floor(seconds));
  return {
    rps: full.reduce((a, b) => a + b, 0) / full.length,
    perSecond: full,
    total,
    non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    p50: result.latency.p50,
    p99: result.latency.p99,
  };
}

/**
 * Starts a row's server in a child process. `callgrindDir`: under valgrind's callgrind, its
 * profile dumps and log written there (instructionsOne reads them).
 */
function startServer(framework, row, execArgv = [], callgrindDir = undefined) {
  const self = fileURLToPath(import.meta.url);
  const serverArgs = ["--server", framework, row, ...(INPROC > 0 ? ["--inproc", String(INPROC)] : [])];
  const env = { ...process.env, NODE_ENV: "production" };
  const stdio = ["ignore", "inherit", "inherit", "ipc"];
  const child =
    callgrindDir === undefined
      ? fork(self, serverArgs, { execArgv, env, stdio })
      : spawn("valgrind", [...CALLGRIND_ARGS(callgrindDir), process.execPath, ...execArgv, self, ...serverArgs], {
          env,
          stdio,
        });
  const waiting = [];
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.on("message", (message) => waiting.shift()?.(message));
  const next = () =>
    new Promise((resolve, reject) => {
      waiting.push(resolve);
      exited.then((code) => reject(new Error(`${framework} ${row} server exited (${code})`)));
    });
  return {
    pid: child.pid,
    ready: next(),
    mark: () => {
      const reply = next();
      child.send({ type: "mark" });
      return reply;
    },
    stop: async () => {
      if (child.connected) child.send({ type: "exit" });
      await exited;
    },
  };
}

/** Before any timing: the row answers as it should (status, replay header, refusal of a forgery). */
async function check(port, row, pool) {
  const { route, kind } = ROWS[row];
  const url = `http://${HOST}:${port}${route}`;
  const post = (headers, body) => fetch(url, { method: "POST", headers, body });
  const expect = async (response, status, what) => {
    const text = await response.text();
    if (response.status !== status)
      throw new Error(`${row}: ${what} answered ${response.status}, not ${status}: ${text}`);
    return response;
  };
  if (kind === "delivery") {
    const good = pool.make(-1);
    const forged = { ...good.headers, "webhook-signature": `v1,${"A".repeat(43)}=` };
    await expect(await post(forged, good.body), 401, "a forged delivery");
    await expect(await post(good.headers, good.body), 200, "a good delivery");
  } else if (kind === "replay") {
    const headers = { "content-type": "application/json", "idempotency-key": "replayed-key" };
    await expect(await post(headers, PAYMENT_BODY), 201, "the first request");
    const replay = await expect(await post(headers, PAYMENT_BODY), 201, "the replay");
    if (!row.startsWith("ei-") && replay.headers.get("idempotent-replayed") !== "true") {
      throw new Error(`${row}: the second request was not a replay`);
    }
  } else if (kind === "pay") {
    await expect(await post({ "content-type": "application/json" }, PAYMENT_BODY), 201, "a payment");
  }
}

/**
 * Starts the row's server. A server that dies before listening is started once more after a
 * pause: on a machine where the packages are being rebuilt, a child can start while a `dist/`
 * is briefly missing.
 */
async function startReady(framework, row, execArgv, callgrindDir) {
  for (let attempt = 1; ; attempt++) {
    const server = startServer(framework, row, execArgv, callgrindDir);
    try {
      const { port } = await server.ready;
      return { server, port };
    } catch (error) {
      await server.stop();
      if (attempt === 2) throw error;
      process.stderr.write(`(${error.message}; starting it again) `);
      await new Promise((resolve) => setTimeout(resolve, 3000));
    }
  }
}

async function runOne(autocannon, framework, row, pool) {
  const { server, port } = await startReady(framework, row);
  try {
    await check(port, row, pool);
    const state = { next: 0 };
    const request = requestFor(row, pool, state);
    await load(autocannon, port, request, WARMUP_S);
    const before = await server.mark();
    const w0 = performance.now();
    const run = await load(autocannon, port, request, DURATION_S);
    const wallS = (performance.now() - w0) / 1000;
    const after = await server.mark();
    const cpuS = (after.cpu.user + after.cpu.system - before.cpu.user - before.cpu.system) / 1e6;
    const sysS = (after.cpu.system - before.cpu.system) / 1e6;
    const flat =
      run.perSecond.length >= 3 ? run.perSecond.at(-1) / ((run.perSecond[0] + run.perSecond[1]) / 2) : Number.NaN;
    return {
      ...run,
      cpuUsPerReq: (cpuS * 1e6) / run.total,
      sysShare: sysS / cpuS,
      perCpuS: run.total / cpuS,
      busy: cpuS / wallS,
      handled: after.handled - before.handled,
      rssMiB: after.rss / 2 ** 20,
      flat,
    };
  } finally {
    await server.stop();
  }
}

// ---------------------------------------------------------------------------------------
// Report

const fmtInt = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "—");
const fmt2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : "—");
const fmt1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : "—");
/** Judged on the two decimals shown, so a cell never reads "0.90 ❌" against a 0.90 target. */
const atLeast = (x, target) => Number(fmt2(x)) >= target;

/** Per framework and row: the runs of every round, and the ratios taken within each round. */
function summarise(runs) {
  const out = {};
  for (const [framework, rows] of Object.entries(runs)) {
    out[framework] = {};
    for (const [row, list] of Object.entries(rows)) {
      const base = ROWS[row].base;
      const baseList = base ? rows[base] : undefined;
      const rps = list.map((r) => r.rps);
      const m = median(rps);
      out[framework][row] = {
        rps: m,
        rounds: rps,
        spread: rps.length > 1 ? (Math.max(...rps) - Math.min(...rps)) / 2 / m : Number.NaN,
        cpuUsPerReq: median(list.map((r) => r.cpuUsPerReq)),
        busy: median(list.map((r) => r.busy)),
        p99: median(list.map((r) => r.p99)),
        flat: ROWS[row].kind === "unique" ? median(list.map((r) => r.flat)) : Number.NaN,
        ratio: baseList ? median(list.map((r, i) => r.rps / baseList[i].rps)) : Number.NaN,
        ratioSpread: baseList ? halfIqr(list.map((r, i) => r.rps / baseList[i].rps)) : Number.NaN,
        cpuRatio: baseList ? median(list.map((r, i) => r.perCpuS / baseList[i].perCpuS)) : Number.NaN,
        non2xx: list.reduce((a, r) => a + r.non2xx + r.errors + r.timeouts, 0),
        handled: list.map((r) => r.handled),
        total: list.map((r) => r.total),
        perSecond: list.map((r) => r.perSecond),
        rssMiB: median(list.map((r) => r.rssMiB)),
        overflow: list.reduce((a, r) => a + (r.overflow ?? 0), 0),
      };
    }
  }
  return out;
}

function targets(summary) {
  const checks = [];
  for (const [framework, rows] of Object.entries(summary)) {
    const name = FRAMEWORKS[framework].label.split(" ")[0];
    for (const [row, s] of Object.entries(rows)) {
      const spec = ROWS[row];
      if (spec.target === undefined) continue;
      const target = typeof spec.target === "function" ? spec.target(framework) : spec.target;
      checks.push({
        what: `${name}: ${spec.label.replace(/\*\*/g, "")} ≥ ${target.toFixed(2)} of the ${ROWS[spec.base].label}`,
        value: fmt2(s.ratio),
        ok: atLeast(s.ratio, target),
      });
      if (spec.kind === "unique") {
        checks.push({
          what: `${name}: ${spec.label.replace(/\*\*/g, "")} flat over the run (last second ≥ ${FLAT_TARGET} of the first two)`,
          value: fmt2(s.flat),
          ok: atLeast(s.flat, FLAT_TARGET),
        });
      }
    }
  }
  const express = summary.express;
  if (express?.["ei-unique"] && express["ni-unique"]) {
    for (const kind of ["unique", "replay"]) {
      const ours = express[`idem-${kind}`];
      for (const peer of ["ei", "ni"]) {
        const theirs = express[`${peer}-${kind}`];
        // Ours over theirs within each round, as every ratio here is taken: the medians of the
        // two rows' req/s come from different rounds, and could say "ahead" beside ratios that say behind.
        const head = median(ours.rounds.map((rps, i) => rps / theirs.rounds[i]));
        checks.push({
          what: `Express: ours ahead of ${ROWS[`${peer}-${kind}`].label}`,
          value: `${fmt2(ours.ratio)} vs ${fmt2(theirs.ratio)} of the bare app; ours ÷ theirs ${fmt2(head)}`,
          ok: Number(fmt2(head)) > 1,
        });
      }
    }
  }
  return checks;
}

function report(summary, meta) {
  const out = [];
  out.push("# HTTP adapters benchmark", "");
  out.push(
    `Node ${meta.node} · ${meta.platform} · ${meta.cpu} · nproc ${meta.nproc} · ${meta.date} · commit ${meta.commit}`,
    "",
    `Load average (1, 5, 15 min) before the run: ${meta.loadBefore}; after: ${meta.loadAfter}. ` +
      `The run took ${meta.minutes} min.`,
    "",
    `Settings: autocannon ${meta.autocannon} on ${HOST}, ${CONNECTIONS} connections, ${WARMUP_S} s warm-up then ` +
      `${DURATION_S} s measured per run, ${ROUNDS} round${ROUNDS > 1 ? "s" : ""} (rows in reverse order in odd rounds); ` +
      `each run a fresh server in its own child process (\`NODE_ENV=production\`), one at a time. Every request has a ` +
      `${BODY_BYTES}-byte JSON body; webhook rows get a unique signed Standard Webhooks delivery per request (the same ` +
      "pre-signed deliveries for the hand-written check and for ours), unique-key rows a unique `Idempotency-Key`. " +
      "Stores: our `memoryStore()` with room for every key of a run (a million keys, 1 GiB); the peers' own in-memory stores.",
    "",
    "**req/s**: responses per second over the measured seconds, median of the rounds (± half the range). " +
      "**ratio**: the row's req/s over its baseline's in the same round (median of rounds; ± half their interquartile " +
      "range). **ratio, CPU**: the same " +
      "with each run's requests per second of *server CPU time* (robust when the client or another process held the " +
      "server back). **server busy**: server CPU time over wall time (1.00 = the server had a whole core and used it). " +
      `**flat**: a unique-keys run's last second over the mean of its first two (target ≥ ${FLAT_TARGET}).`,
    "",
    "| framework | app | req/s | ± | server CPU µs/req | server busy | p99 ms | compared with | ratio | ± | ratio, CPU | flat |",
    "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
  );
  for (const [framework, rows] of Object.entries(summary)) {
    for (const [row, s] of Object.entries(rows)) {
      const spec = ROWS[row];
      out.push(
        `| ${FRAMEWORKS[framework].label} | ${spec.label} | ${fmtInt(s.rps)} | ${Number.isFinite(s.spread) ? `${(s.spread * 100).toFixed(1)}%` : "—"} | ` +
          `${fmt1(s.cpuUsPerReq)} | ${fmt2(s.busy)} | ${fmt1(s.p99)} | ${spec.base ? ROWS[spec.base].label : "—"} | ` +
          `${fmt2(s.ratio)} | ${fmt2(s.ratioSpread)} | ${fmt2(s.cpuRatio)} | ${fmt2(s.flat)} |`,
      );
    }
  }
  const checks = targets(summary);
  out.push("", "## Targets", "", "| target | value | |", "|---|---:|---|");
  for (const c of checks) out.push(`| ${c.what} | ${c.value} | ${c.ok ? "✅" : "❌"} |`);
  out.push("", `${checks.filter((c) => c.ok).length} of ${checks.length} targets met.`, "");

  const unique = [];
  for (const [framework, rows] of Object.entries(summary)) {
    for (const [row, s] of Object.entries(rows)) {
      if (ROWS[row].kind !== "unique") continue;
      unique.push(
        `| ${FRAMEWORKS[framework].label} | ${ROWS[row].label} | ${s.perSecond.map((p) => p.map(fmtInt).join(" → ")).join("<br>")} |`,
      );
    }
  }
  out.push("## Unique keys, second by second", "", "| framework | app | responses per second, one line per round |");
  out.push("|---|---|---|", ...unique, "");

  const problems = [];
  for (const [framework, rows] of Object.entries(summary)) {
    for (const [row, s] of Object.entries(rows)) {
      if (s.non2xx > 0) problems.push(`${framework} ${row}: ${s.non2xx} non-2xx answers, errors or time-outs`);
      if (s.overflow > 0) problems.push(`${framework} ${row}: ${s.overflow} deliveries signed during the run`);
      const kind = ROWS[row].kind;
      s.handled.forEach((h, i) => {
        const expected = kind === "replay" ? 0 : s.total[i];
        // Responses counted by the client and routes run on the server may straddle the window by a few.
        if (Math.abs(h - expected) > CONNECTIONS * 2) {
          problems.push(`${framework} ${row}: the route ran ${h} times for ${s.total[i]} responses`);
        }
      });
    }
  }
  out.push(
    "## Checks",
    "",
    "Before each run the server is checked: a payment answers 201; a replay answers 201 with `Idempotent-Replayed: true` " +
      "(express-idempotency sets no such header); a forged delivery 401 and a good one 200. During each run, every answer " +
      "must be 2xx and the route must run once per response (never for replays).",
    "",
    problems.length ? problems.map((p) => `- ${p}`).join("\n") : "All runs passed.",
    "",
  );
  return { markdown: out.join("\n"), checks, problems };
}

// ---------------------------------------------------------------------------------------
// In process (--inproc)

/**
 * A socket that swallows what is written to it: responses go nowhere, at no cost. It counts the
 * writes that would each have been a system call on a real socket.
 */
class SinkSocket extends Duplex {
  static writes = 0;
  _read() {}
  _write(_chunk, _encoding, done) {
    SinkSocket.writes++;
    done();
  }
  _writev(_chunks, done) {
    SinkSocket.writes++;
    done();
  }
}

/**
 * Hands one request of the row (as `requestFor` builds it for autocannon) to the server's
 * "request" listeners, on a sink socket; resolves to the status once the response finished.
 */
function inject(server, request, socket) {
  const r = request.setupRequest({ ...request, headers: { ...request.headers } });
  return new Promise((resolve, reject) => {
    const req = new IncomingMessage(socket);
    req.method = r.method;
    req.url = r.path;
    req.httpVersion = "1.1";
    req.httpVersionMajor = 1;
    req.httpVersionMinor = 1;
    req.headers = { host: HOST, "content-length": String(r.body.length), ...r.headers };
    req.rawHeaders = Object.entries(req.headers).flat();
    const res = new ServerResponse(req);
    res.assignSocket(socket);
    res.once("finish", () => {
      res.detachSocket(socket);
      resolve(res.statusCode);
    });
    res.once("error", reject);
    server.emit("request", req, res);
    req.complete = true; // as the HTTP parser leaves a request whose body has been read
    req.push(r.body);
    req.push(null);
  });
}

/**
 * The child's side of `--inproc N`: the row's server (no longer listening) handles N requests
 * that never touch the network, sixteen in flight at a time on sixteen kept sockets, and the
 * process reports its own CPU time per request over five slices, with the garbage collector's
 * pauses (young and old generation) and the socket writes per request. No kernel, HTTP parser
 * or load generator shares the measurement: the framework and the layer alone, to about ±2 µs,
 * for taking a row's cost apart. A hot loop: over HTTP the same code costs two to three times
 * as much (cold caches, the client's wake-ups), so these numbers never stand in for the ratios.
 */
async function inprocMain(server, row, handled) {
  server.close();
  const { kind } = ROWS[row];
  const pool = deliveryPool(kind === "delivery" ? Math.ceil(INPROC * 1.5) + 16 : 1);
  const request = requestFor(row, pool, { next: 0 });
  const sockets = Array.from({ length: 16 }, () => new SinkSocket());
  if (kind === "replay") await inject(server, request, sockets[0]); // stores the answer every request replays
  const cpu = () => {
    const u = process.cpuUsage();
    return u.user + u.system;
  };
  let requests = 0;
  const drive = async (n) => {
    const from = cpu();
    for (let i = 0; i < n; i += 16) {
      const statuses = await Promise.all(sockets.map((socket) => inject(server, request, socket)));
      const wrong = statuses.find((status) => status < 200 || status > 299);
      if (wrong !== undefined) throw new Error(`${row}: a request answered ${wrong}`);
      requests += 16;
    }
    return (cpu() - from) / (Math.ceil(n / 16) * 16);
  };
  await drive(INPROC / 2); // warm-up
  const before = { handled: handled(), writes: SinkSocket.writes, requests };
  const gc = { minor: 0, major: 0, majors: 0 };
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      if (entry.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
        gc.major += entry.duration;
        gc.majors++;
      } else gc.minor += entry.duration;
    }
  });
  observer.observe({ entryTypes: ["gc"] });
  const slices = [];
  for (let i = 0; i < 5; i++) slices.push(await drive(INPROC / 5));
  await new Promise((resolve) => setTimeout(resolve, 50)); // the entries queued meanwhile reach the observer
  observer.disconnect();
  const measured = requests - before.requests;
  const result = {
    type: "inproc",
    slices,
    writes: (SinkSocket.writes - before.writes) / measured,
    gcMinorUs: (gc.minor * 1000) / measured,
    gcMajorUs: (gc.major * 1000) / measured,
    majors: gc.majors,
    handled: handled() - before.handled,
  };
  // Run by hand (no parent; e.g. under --cpu-prof): the result on stdout.
  if (process.send === undefined) process.stdout.write(`${JSON.stringify(result)}\n`);
  else process.send(result, () => process.exit(0));
}

/** `--inproc N`: each row of each framework in its own child, rounds in alternating order. */
async function inprocParentMain() {
  for (const framework of chosenFrameworks()) {
    const runs = Object.fromEntries(rowsOf(framework).map((row) => [row, []]));
    for (let round = 0; round < ROUNDS; round++) {
      const rows = rowsInRound(framework, round);
      for (const row of rows) {
        const server = startServer(framework, row);
        runs[row].push(await server.ready);
        await server.stop();
      }
    }
    process.stdout.write(
      `\n${FRAMEWORKS[framework].label}, in process, ${INPROC} requests a run, µs per request ` +
        "(CPU: median of each run's slices, then of the runs; GC: main-thread pauses)\n" +
        `  ${"row".padEnd(12)} ${"CPU".padStart(6)}  ${"over base".padStart(14)}  ${"runs".padEnd(14)} ` +
        `${"GC young".padStart(8)} ${"GC old".padStart(7)}  writes\n`,
    );
    const cpuOf = (row) => median(runs[row].map((run) => median(run.slices)));
    for (const [row, list] of Object.entries(runs)) {
      const base = ROWS[row].base;
      const over = runs[base] ? `${(cpuOf(row) - cpuOf(base)).toFixed(1).padStart(5)} over ${base}` : "";
      const each = list.map((run) => fmt1(median(run.slices))).join(", ");
      process.stdout.write(
        `  ${row.padEnd(12)} ${fmt1(cpuOf(row)).padStart(6)}  ${over.padStart(14)}  ${`[${each}]`.padEnd(14)} ` +
          `${fmt2(median(list.map((r) => r.gcMinorUs))).padStart(8)} ${fmt2(median(list.map((r) => r.gcMajorUs))).padStart(7)}  ` +
          `${fmt2(median(list.map((r) => r.writes)))}\n`,
      );
    }
  }
}

// ---------------------------------------------------------------------------------------
// Profiling

/** Where a frame's code is: `package/file` for a dependency, a repository path for ours. */
function where(cf) {
  const url = cf.url.replace(/^file:\/\//, "");
  if (url === "") return "(native)";
  const dep = url.match(/node_modules\/\.pnpm\/[^/]+\/node_modules\/((?:@[^/]+\/)?[^/]+)\/(.*)$/);
  if (dep) return `${dep[1]}/${dep[2]}`;
  const rel = path.relative(fileURLToPath(new URL("..", import.meta.url)), url);
  return rel.startsWith("..") ? url : rel;
}
const frameName = (cf) => `${cf.functionName || "(anonymous)"} ${where(cf)}:${cf.lineNumber + 1}`;

/**
 * A V8 CPU profile (as `--cpu-prof` writes it), restricted to the samples taken in the measured
 * window [fromUs, toUs]: self time by function, and time charged to the nearest package frame
 * on the stack (Node's internals, undici, streams, crypto, are charged to the line of the
 * framework, adapter or core that called them). Each sample counts once: on a shared machine
 * the gap before a sample can include time the thread was not running at all, which weighting
 * by the gaps would charge to whatever ran next (typically a `writev`). Shares of the busy
 * samples are turned into µs per request with `cpuUsPerRequest`, measured by the process itself.
 */
function readProfile(file, fromUs, toUs, cpuUsPerRequest) {
  const profile = JSON.parse(readFileSync(file, "utf8"));
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const chargedTo = new Map();
  const charge = (id) => {
    let key = chargedTo.get(id);
    if (key !== undefined) return key;
    for (let at = id; at !== undefined && key === undefined; at = parent.get(at)) {
      const cf = nodes.get(at).callFrame;
      if (cf.url !== "" && !cf.url.startsWith("node:")) key = frameName(cf);
    }
    key ??= `${nodes.get(id).callFrame.functionName || "(anonymous)"} (Node internals only)`;
    chargedTo.set(id, key);
    return key;
  };
  const self = new Map();
  const charged = new Map();
  const add = (map, key) => map.set(key, (map.get(key) ?? 0) + 1);
  let t = profile.startTime;
  let busy = 0;
  let idle = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i];
    if (t < fromUs || t > toUs) continue;
    const node = nodes.get(profile.samples[i]);
    if (node.callFrame.functionName === "(idle)") {
      idle++;
      continue;
    }
    busy++;
    add(self, frameName(node.callFrame));
    add(charged, charge(node.id));
  }
  if (busy === 0) throw new Error(`no busy sample of ${file} falls in the measured window`);
  const perRequest = (map) => new Map([...map].map(([k, v]) => [k, (v / busy) * cpuUsPerRequest]));
  return { samples: busy, idleShare: idle / (busy + idle), self: perRequest(self), charged: perRequest(charged) };
}

async function profileOne(autocannon, framework, row, pool) {
  const dir = mkdtempSync(path.join(os.tmpdir(), `interlock-http-${framework}-${row}-`));
  const { server, port } = await startReady(framework, row, [
    "--cpu-prof",
    "--cpu-prof-interval",
    "250",
    "--cpu-prof-dir",
    dir,
  ]);
  let run;
  let before;
  let after;
  try {
    await check(port, row, pool);
    const request = requestFor(row, pool, { next: 0 });
    await load(autocannon, port, request, WARMUP_S);
    before = await server.mark();
    run = await load(autocannon, port, request, DURATION_S);
    after = await server.mark();
  } finally {
    await server.stop();
  }
  const file = path.join(
    dir,
    readdirSync(dir).find((f) => f.endsWith(".cpuprofile")),
  );
  const cpuUs = after.cpu.user + after.cpu.system - before.cpu.user - before.cpu.system;
  const cpuUsPerReq = cpuUs / run.total;
  return { file, run, cpuUsPerReq, ...readProfile(file, before.monoUs, after.monoUs, cpuUsPerReq) };
}

async function profileMain() {
  const [framework, row] = PROFILE.split(":");
  if (!FRAMEWORKS[framework]?.rows.includes(row)) {
    throw new Error(`--profile takes framework:row, e.g. express:idem-unique (rows: ${Object.keys(ROWS).join(", ")})`);
  }
  const { default: autocannon } = await import("autocannon");
  const base = option("--against", ROWS[row].base);
  const pool = deliveryPool(POOL_SIZE);
  const profiles = [];
  for (const r of base ? [row, base] : [row]) {
    const p = await profileOne(autocannon, framework, r, pool);
    profiles.push(p);
    process.stdout.write(
      `${framework} ${r}: ${fmtInt(p.run.rps)} req/s under the profiler, ${fmt1(p.cpuUsPerReq)} µs of CPU per request ` +
        `(${p.samples} busy samples, main thread idle ${(p.idleShare * 100).toFixed(0)}%). Profile: ${p.file}\n`,
    );
  }
  const list = (map, n, sign = "") =>
    [...map.entries()]
      .sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]))
      .slice(0, n)
      .map(([k, v]) => `  ${`${v > 0 ? sign : ""}${v.toFixed(2)}`.padStart(8)}  ${k}`)
      .join("\n");
  const [p] = profiles;
  process.stdout.write(`\n${framework} ${row}: self time, µs per request\n${list(p.self, 30)}\n`);
  process.stdout.write(
    `\n${framework} ${row}: time charged to the nearest package frame, µs per request\n${list(p.charged, 30)}\n`,
  );
  if (profiles[1]) {
    const q = profiles[1];
    const diff = new Map();
    for (const k of new Set([...p.charged.keys(), ...q.charged.keys()])) {
      diff.set(k, (p.charged.get(k) ?? 0) - (q.charged.get(k) ?? 0));
    }
    process.stdout.write(
      `\n${framework}: ${row} minus ${base}, ${(p.cpuUsPerReq - q.cpuUsPerReq).toFixed(1)} µs of CPU per request in all; ` +
        `by nearest package frame\n${list(diff, 40, "+")}\n`,
    );
  }
}

// ---------------------------------------------------------------------------------------
// Main

/** A framework's rows, or those `--rows` names. */
const rowsOf = (framework) =>
  FRAMEWORKS[framework].rows.filter((row) => ONLY_ROWS.length === 0 || ONLY_ROWS.includes(row));

// ---------------------------------------------------------------------------------------
// Instructions per request (--instructions)

/*
 * Each server runs under valgrind's callgrind (callgrind.mjs): a request's socket work (one read,
 * one writev, the same for every row) is kernel work, left out of both sides of a ratio, so these
 * ratios read lower than the req/s ones. Everything runs about 50 times slower, so the server is
 * always the bottleneck, as it is in the req/s runs.
 */

/**
 * Rows left out. `busy` spins on the clock: slowed down 50 times, its few µs buy a fraction of
 * the work they buy natively. The Express peers: their targets (ours ahead of both) are met in
 * req/s by a wide margin, and each would take as long as three rows of ours.
 */
const NOT_COUNTED = new Set(["busy", "ei-unique", "ei-replay", "ni-unique", "ni-replay"]);

/**
 * Sends exactly `count` requests and waits for every answer. A request that errs or times out
 * is counted with the answers not 2xx (the row is then marked, not the whole run lost).
 */
function loadCount(autocannon, port, request, count) {
  return new Promise((resolve, reject) => {
    let answered = 0;
    let non2xx = 0;
    const instance = autocannon(
      { url: `http://${HOST}:${port}`, connections: CONNECTIONS, amount: count, requests: [request], timeout: 120 },
      (error, result) => (error ? reject(error) : resolve({ answered, non2xx: non2xx + result.errors })),
    );
    instance.on("response", (_client, statusCode) => {
      answered++;
      if (statusCode < 200 || statusCode > 299) non2xx++;
    });
  });
}

/** One row: warmed up, then IR_WINDOWS counted windows of IR_REQUESTS requests, the counters zeroed before each. */
async function instructionsOne(autocannon, framework, row) {
  const dir = mkdtempSync(path.join(os.tmpdir(), `interlock-ir-${framework}-${row}-`));
  // Signed now: a pool made for a whole framework would be stale by its last row at this speed.
  const pool = deliveryPool(IR_WARMUP + (IR_WINDOWS + 1) * IR_REQUESTS + 100);
  const { server, port } = await startReady(framework, row, [], dir);
  try {
    await check(port, row, pool);
    const state = { next: 0 };
    const request = requestFor(row, pool, state);
    await loadCount(autocannon, port, request, IR_WARMUP);
    const windows = [];
    let non2xx = 0;
    // Window 0 is not counted: the first after the warm-up always counts more (up to 2.5 times
    // the next ones, even after 10,000 requests of warm-up), the later ones agree.
    for (let n = 0; n <= IR_WINDOWS; n++) {
      resignFrom(pool, state.next);
      await zeroCounters(server.pid);
      const counted = await loadCount(autocannon, port, request, IR_REQUESTS);
      const total = await dumpCounters(dir, server.pid, n + 1);
      if (n > 0) windows.push(total / counted.answered);
      non2xx += counted.non2xx;
    }
    return { windows, perRequest: median(windows), non2xx };
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The row a row of ours is read against besides its baseline: the by-hand floor. */
function floorOf(framework, row) {
  const kind = { "idem-unique": "unique", "idem-replay": "replay" }[row];
  if (kind === undefined) return undefined;
  return FRAMEWORKS[framework].rows.includes(`mw-${kind}`) ? `mw-${kind}` : `hand-${kind}`;
}

async function instructionsMain() {
  const { default: autocannon } = await import("autocannon");
  const valgrind = await valgrindVersion("--instructions");
  const started = performance.now();
  const jobs = chosenFrameworks().flatMap((framework) =>
    rowsOf(framework)
      .filter((row) => !NOT_COUNTED.has(row))
      .map((row) => ({ framework, row })),
  );
  const results = {};
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const { framework, row } = jobs[next++];
      const result = await instructionsOne(autocannon, framework, row);
      results[framework] ??= {};
      results[framework][row] = result;
      process.stderr.write(
        `bench:http --instructions ${framework} ${row}: ${fmtInt(result.perRequest)} a request ` +
          `(windows ${result.windows.map(fmtInt).join(", ")})${result.non2xx ? `, ${result.non2xx} non-2xx` : ""}\n`,
      );
    }
  };
  await Promise.all(Array.from({ length: IR_PARALLEL }, worker));
  const { markdown, refused } = instructionsReport(results, {
    valgrind,
    minutes: ((performance.now() - started) / 60_000).toFixed(1),
  });
  process.stdout.write(`${markdown}\n`);
  writeResults("http", "http-instructions", markdown, ONLY.length > 0 || ONLY_ROWS.length > 0 ? "partial" : "");
  if (refused.length > 0) process.exitCode = 1;
}

function instructionsReport(results, meta) {
  const cpu = os.cpus()[0]?.model.trim() ?? "unknown CPU";
  const lines = [
    "# HTTP adapters: instructions per request",
    "",
    `Node ${process.version} · ${meta.valgrind} (callgrind) · ${os.platform()} ${os.arch()} · ${cpu} · ` +
      `${new Date().toISOString().replace(/\.\d+Z$/, "Z")} · commit ${measuredCommit()}. The run took ${meta.minutes} min.`,
    "",
    "`node bench/http.mjs --instructions`: the rows of [http.md](http.md), each server under valgrind's callgrind, " +
      `counting the instructions it runs in user space (every thread: JIT compiler and garbage collector included; ` +
      `not the kernel's socket work, about the same for every row). ${IR_WARMUP.toLocaleString("en-US")} requests to warm ` +
      `up and one window more, then ${IR_WINDOWS} windows of ${IR_REQUESTS.toLocaleString("en-US")}, the counters zeroed before each; ` +
      "**a request** is the median window's count over its requests. Same requests, 32 connections, same stores as http.md. " +
      "**ratio**: the baseline's count over the row's (read like a req/s ratio: 0.80 is 25% more work); " +
      "**added**: the row's count less the baseline's. Repeatable within a few percent (the windows), unlike req/s here; " +
      "not the targets' measure (req/s, kernel included), which they read lower than.",
    "",
    "| framework | app | a request | windows | compared with | ratio | added | by-hand floor | ratio to floor |",
    "|---|---|---:|---|---|---:|---:|---|---:|",
  ];
  const refused = [];
  for (const [framework, rows] of Object.entries(results)) {
    for (const row of FRAMEWORKS[framework].rows) {
      const result = rows[row];
      if (result === undefined) continue;
      if (result.non2xx > 0)
        refused.push(`${FRAMEWORKS[framework].label}, ${ROWS[row].label}: ${fmtInt(result.non2xx)}`);
      const base = rows[ROWS[row].base];
      const floorRow = floorOf(framework, row);
      const floor = floorRow === undefined ? undefined : rows[floorRow];
      lines.push(
        `| ${FRAMEWORKS[framework].label} | ${ROWS[row].label} | ${fmtInt(result.perRequest)} | ` +
          `${result.windows.map((w) => fmtInt(w)).join(" · ")} | ${base ? ROWS[ROWS[row].base].label : "—"} | ` +
          `${base ? fmt2(base.perRequest / result.perRequest) : "—"} | ` +
          `${base ? signedInt(result.perRequest - base.perRequest) : "—"} | ` +
          `${floor ? ROWS[floorRow].label : "—"} | ${floor ? fmt2(floor.perRequest / result.perRequest) : "—"} |`,
      );
    }
  }
  lines.push(
    "",
    refused.length === 0
      ? "Every answer of every window was 2xx. ✅"
      : `❌ Answers not 2xx, errors or time-outs (cheaper than the work, so these rows read low): ${refused.join("; ")}.`,
  );
  return { markdown: lines.join("\n"), refused };
}

/** A count with its sign: +12,432 or -3,226. */
function signedInt(n) {
  return `${n < 0 ? "-" : "+"}${fmtInt(Math.abs(n))}`;
}

/** A framework's rows in a round's order: as listed in even rounds, reversed in odd ones. */
const rowsInRound = (framework, round) => (round % 2 === 0 ? rowsOf(framework) : [...rowsOf(framework)].reverse());

/** The frameworks `--only` names (all by default). */
function chosenFrameworks() {
  const frameworks = Object.keys(FRAMEWORKS).filter((f) => ONLY.length === 0 || ONLY.includes(f));
  if (frameworks.length === 0) throw new Error(`--only takes ${Object.keys(FRAMEWORKS).join(", ")}`);
  return frameworks;
}

async function main() {
  const { default: autocannon } = await import("autocannon");
  const started = performance.now();
  const loadBefore = os.loadavg();
  const frameworks = chosenFrameworks();
  const runs = Object.fromEntries(frameworks.map((f) => [f, Object.fromEntries(rowsOf(f).map((r) => [r, []]))]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const framework of frameworks) {
      const rows = rowsInRound(framework, round);
      // Fresh deliveries for this framework's two webhook rows: signed now, well inside the 300 s tolerance.
      const pool = deliveryPool(POOL_SIZE);
      for (const row of rows) {
        process.stderr.write(`bench:http round ${round + 1}/${ROUNDS} ${framework} ${row}… `);
        const overflowBefore = pool.overflow;
        const result = await runOne(autocannon, framework, row, pool);
        result.overflow = pool.overflow - overflowBefore;
        runs[framework][row].push(result);
        process.stderr.write(
          `${fmtInt(result.rps)} req/s, ${fmt1(result.cpuUsPerReq)} µs CPU/req (${(result.sysShare * 100).toFixed(0)}% system), ` +
            `busy ${fmt2(result.busy)}` +
            `${result.non2xx ? `, ${result.non2xx} non-2xx` : ""}\n`,
        );
      }
    }
  }
  const summary = summarise(runs);
  const cpus = os.cpus();
  const autocannonVersion = JSON.parse(
    readFileSync(fileURLToPath(new URL("./node_modules/autocannon/package.json", import.meta.url)), "utf8"),
  ).version;
  const meta = {
    node: process.version,
    platform: `${os.platform()} ${os.arch()}`,
    cpu: cpus[0]?.model.trim() ?? "unknown CPU",
    nproc: os.availableParallelism(),
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    commit: measuredCommit(),
    loadBefore: loadBefore.map((x) => x.toFixed(2)).join(", "),
    loadAfter: os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(", "),
    minutes: ((performance.now() - started) / 60_000).toFixed(1),
    autocannon: autocannonVersion,
  };
  const { markdown, problems } = report(summary, meta);
  process.stdout.write(`${markdown}\n`);
  const partial = QUICK || ONLY.length > 0 || ONLY_ROWS.length > 0 || RATE > 0;
  writeResults("http", "http", markdown, partial ? "partial" : "");
  if (problems.length > 0) process.exitCode = 1;
}

if (args[0] === "--server") await serverMain(args[1], args[2]);
else if (INSTRUCTIONS) await instructionsMain();
else if (INPROC > 0) await inprocParentMain();
else if (PROFILE) await profileMain();
else await main();
