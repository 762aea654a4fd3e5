/**
 * Google Cloud Functions: an Express app as the function (`functions.http(name, app)`), served by
 * the real functions-framework server on 127.0.0.1. The framework parses every body before the
 * function runs and keeps the bytes as a Buffer `req.rawBody`; the middlewares verify and
 * fingerprint those bytes.
 */
import type { AddressInfo } from "node:net";
import * as functions from "@google-cloud/functions-framework";
import { getTestServer } from "@google-cloud/functions-framework/testing";
import { MemoryStore, standardWebhooks } from "@interlock/core";
// `tampered` keeps the bytes well-formed, so functions-framework's own parser takes them (it
// answers malformed JSON 400 before the function runs) and only the signature can tell.
import { AWKWARD_JSON, NOT_UTF8, tampered } from "@interlock/test-harness/api-gateway";
import express, { type ErrorRequestHandler, type RequestHandler } from "express";
import { afterEach, describe, expect, it } from "vitest";
import { idempotency, releaseOnError, webhook } from "../src/index.js";
import { asyncRoute } from "./framework.js";
import { type Running, SECRET, send, signed } from "./helpers.js";

const running: Running[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.close()));
});

let functionCount = 0;

/** Registers `app` as an HTTP function and serves it with functions-framework's own server. */
async function serveFunction(app: express.Express): Promise<string> {
  const name = `fn${++functionCount}`;
  functions.http(name, app);
  const server = getTestServer(name);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const close = () =>
    new Promise<void>((done) => {
      server.closeAllConnections();
      server.close(() => done());
    });
  running.push({ url: "", close });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const answerError: ErrorRequestHandler = (error, _req, res, _next) => {
  res.status(500).json({ error: (error as Error).message });
};

interface Deliveries {
  url: string;
  /** The verified bytes each run of the route saw, in order. */
  seen: Buffer[];
}

/** A webhook function whose route records the verified bytes, and throws while `failing()` says so. */
async function webhookFunction(failing: () => boolean = () => false): Promise<Deliveries> {
  const seen: Buffer[] = [];
  const app = express();
  app.post(
    "/",
    webhook({ scheme: standardWebhooks, secret: SECRET, store: new MemoryStore() }),
    asyncRoute(async (req, res) => {
      seen.push(Buffer.from(req.webhook!.body));
      if (failing()) throw new Error("the database is down");
      res.json({ received: true });
    }),
  );
  app.use(releaseOnError);
  app.use(answerError);
  return { url: await serveFunction(app), seen };
}

describe("Google Cloud Functions (functions-framework): webhook()", () => {
  const bodies: Array<[string, string | Buffer, string]> = [
    ["awkwardly formatted JSON", AWKWARD_JSON, "application/json"],
    ["non-ASCII text/plain", "naïve — ✓ ½", "text/plain; charset=utf-8"],
    [
      "a form (Slack, GitHub's form payloads)",
      "payload=%7B%22a%22%3A1%7D&x=caf%C3%A9+%2B",
      "application/x-www-form-urlencoded",
    ],
    ["bytes that are not UTF-8", NOT_UTF8, "application/octet-stream"],
  ];
  for (const [name, body, contentType] of bodies) {
    it(`${name}: verified on the exact bytes; tampered → 401; the duplicate not run again`, async () => {
      const fn = await webhookFunction();
      const delivery = await signed(body, contentType);
      const first = await send(fn.url, delivery);
      expect([first.status, first.json()]).toEqual([200, { received: true }]);
      expect(fn.seen).toEqual([Buffer.from(body)]);

      expect((await send(fn.url, { headers: delivery.headers, body: tampered(delivery.body) })).status).toBe(401);

      expect((await send(fn.url, delivery)).status).toBe(200);
      expect(fn.seen).toHaveLength(1);
    });
  }

  it("a route that throws releases the delivery: the provider's redelivery runs again, then is a duplicate", async () => {
    let fail = true;
    const fn = await webhookFunction(() => fail);
    const delivery = await signed('{"type":"invoice.paid"}');
    expect((await send(fn.url, delivery)).status).toBe(500);
    fail = false;
    expect((await send(fn.url, delivery)).status).toBe(200);
    expect((await send(fn.url, delivery)).status).toBe(200);
    expect(fn.seen).toHaveLength(2);
  });
});

describe("Google Cloud Functions (functions-framework): idempotency()", () => {
  let sequence = 0;
  const newKey = () => `gcf-${Date.now().toString(36)}-${++sequence}`;

  async function paymentsFunction(route: RequestHandler) {
    let runs = 0;
    const app = express();
    app.post(
      "/payments",
      idempotency({ store: new MemoryStore(), principal: false }),
      asyncRoute(async (req, res, next) => {
        runs++;
        return route(req, res, next);
      }),
    );
    app.use(releaseOnError);
    app.use(answerError);
    return { url: `${await serveFunction(app)}/payments`, runs: () => runs };
  }

  const post = (url: string, key: string, body: string | Buffer, contentType = "application/json") =>
    send(url, { headers: { "content-type": contentType, "idempotency-key": key }, body });

  it("first runs with the parsed body; the retry replays; the key with other bytes → 422 (awkward JSON, non-JSON)", async () => {
    const fn = await paymentsFunction((req, res) => void res.status(201).json({ got: req.body }));
    for (const [body, contentType, other] of [
      [AWKWARD_JSON, "application/json", AWKWARD_JSON.replace("  ", " ")],
      [NOT_UTF8, "application/octet-stream", Buffer.concat([NOT_UTF8, Buffer.from([0])])],
    ] as const) {
      const key = newKey();
      const first = await post(fn.url, key, body, contentType);
      expect(first.status).toBe(201);
      const replay = await post(fn.url, key, body, contentType);
      expect([replay.status, replay.headers["idempotent-replayed"], replay.text]).toEqual([201, "true", first.text]);
      expect((await post(fn.url, key, other, contentType)).status).toBe(422);
    }
    expect(fn.runs()).toBe(2);
    const first = await post(fn.url, newKey(), AWKWARD_JSON);
    expect(first.json()).toEqual({ got: JSON.parse(AWKWARD_JSON) });
  });

  it("a route that throws releases the key: the client's retry runs again", async () => {
    let fail = true;
    const fn = await paymentsFunction((_req, res) => {
      if (fail) throw new Error("the database is down");
      res.status(201).json({ id: "pay_1" });
    });
    const key = newKey();
    expect((await post(fn.url, key, '{"amount":100}')).status).toBe(500);
    fail = false;
    expect((await post(fn.url, key, '{"amount":100}')).status).toBe(201);
    expect((await post(fn.url, key, '{"amount":100}')).headers["idempotent-replayed"]).toBe("true");
    expect(fn.runs()).toBe(2);
  });
});
