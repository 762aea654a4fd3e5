/**
 * The README's "Use it" app, as written there (its payments route behind the real
 * @koa/bodyparser; @koa/router's route is the tests' stand-in, and the functions the README
 * declares as "yours" are stubs), over real HTTP: a body the parser cannot decode is the
 * client's mistake, a 400, never Koa's 500, and loses nothing (no key is claimed, so the
 * corrected retry runs).
 */
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { MemoryStore } from "@interlock/core";
import Koa from "koa";
import { afterEach, describe, expect, it } from "vitest";
import { idempotency } from "../src/index.js";
import { koaBodyParser as bodyParser } from "./parsers.js";
import { type Served, serve } from "./serve.js";
import { newId, route } from "./support.js";

const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
const flat = (code: string) => code.replace(/\s+/g, " ").trim();

let served: Served | undefined;
afterEach(async () => {
  await served?.close();
  served = undefined;
});

/** The README's body parser and its error handling, copied: the first test checks the README still shows them. */
const PARSER = `
app.use(authenticate); // sets ctx.state.user

// Your usual parser: it keeps ctx.request.rawBody, which idempotency() fingerprints.
const parseBody = bodyParser();
app.use(async (ctx, next) => {
  try {
    await parseBody(ctx, async () => {});
  } catch (error) {
    // Its own refusals have a status (bad JSON 400, 413, 415); a body that does not decode (corrupt
    // gzip) fails in zlib with none, which Koa answers 500: it is the client's mistake, a 400.
    if ((error as { status?: number }).status !== undefined) throw error;
    ctx.status = 400;
    ctx.body = { title: "Bad Request", status: 400, detail: "the request body does not decode as its Content-Encoding says" };
    ctx.type = "application/problem+json"; // after the body: Koa 2 makes an object body application/json
    return;
  }
  await next();
});
`;

async function startReadmeApp() {
  const created: unknown[] = [];
  const authenticate = async (ctx: Koa.Context, next: Koa.Next) => {
    ctx.state.user = { id: ctx.get("authorization") };
    await next();
  };
  const createPayment = async (body: unknown) => {
    created.push(body);
    return { id: `pay_${created.length}` };
  };

  const store = new MemoryStore();
  const app = new Koa();
  app.silent = true; // not the README's: keeps Koa from logging the parser's own 400s to the test output

  app.use(authenticate); // sets ctx.state.user

  // Your usual parser: it keeps ctx.request.rawBody, which idempotency() fingerprints.
  const parseBody = bodyParser();
  app.use(async (ctx, next) => {
    try {
      await parseBody(ctx, async () => {});
    } catch (error) {
      // Its own refusals have a status (bad JSON 400, 413, 415); a body that does not decode (corrupt
      // gzip) fails in zlib with none, which Koa answers 500: it is the client's mistake, a 400.
      if ((error as { status?: number }).status !== undefined) throw error;
      ctx.status = 400;
      ctx.body = {
        title: "Bad Request",
        status: 400,
        detail: "the request body does not decode as its Content-Encoding says",
      };
      ctx.type = "application/problem+json"; // after the body: Koa 2 makes an object body application/json
      return;
    }
    await next();
  });

  app.use(
    route(
      "POST",
      "/payments",
      idempotency({ store, principal: (request) => request.context.state.user?.id }),
      // @koa/bodyparser's types add `ctx.request.body`; the tests load it without them (see parsers.ts).
      async (ctx: Koa.Context & { request: { body?: unknown } }) => {
        const payment = await createPayment(ctx.request.body);
        ctx.status = 201;
        ctx.set("location", `/payments/${payment.id}`);
        ctx.body = payment;
      },
    ),
  );

  served = await serve(app);
  return { url: served.url, created };
}

const post = (url: string, key: string, body: string | Uint8Array, headers: Record<string, string> = {}) =>
  fetch(`${url}/payments`, {
    method: "POST",
    headers: { authorization: "key_a", "idempotency-key": key, "content-type": "application/json", ...headers },
    body: body as BodyInit,
  });

/** Bodies that do not decode as their `Content-Encoding` says: zlib (and brotli) errors, with no status. */
const CORRUPT: Array<[string, string, Uint8Array]> = [
  ["not gzip at all", "gzip", new TextEncoder().encode('{"amount":100}')],
  [
    "gzip with its data damaged",
    "gzip",
    (() => {
      const bytes = gzipSync('{"amount":100,"currency":"eur"}');
      bytes.fill(0xff, 10, bytes.length - 8);
      return bytes;
    })(),
  ],
  ["gzip cut short", "gzip", gzipSync('{"amount":100}').subarray(0, 12)],
  ["not deflate", "deflate", new TextEncoder().encode("xx")],
  ["not br", "br", new TextEncoder().encode("xxxxx")],
];

describe("README 'Use it': the payments route behind @koa/bodyparser", () => {
  it("is the app the README shows", () => {
    expect(flat(readme)).toContain(flat(PARSER));
  });

  it.each(CORRUPT)(
    "answers a body that is %s (Content-Encoding: %s) 400 problem+json, and the corrected retry with the same key runs",
    async (_, coding, body) => {
      const { url, created } = await startReadmeApp();
      const key = newId("readme");

      const refused = await post(url, key, body, { "content-encoding": coding });
      expect(refused.status).toBe(400);
      expect(refused.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(await refused.json()).toMatchObject({ status: 400 });
      expect(created).toEqual([]);

      const retried = await post(url, key, gzipSync('{"amount":100}'), { "content-encoding": "gzip" });
      expect(retried.status).toBe(201);
      expect(await retried.json()).toEqual({ id: "pay_1" });
      expect(created).toEqual([{ amount: 100 }]);
    },
  );

  it("answers JSON cut short 400 (the parser's own), and the corrected retry with the same key runs", async () => {
    const { url, created } = await startReadmeApp();
    const key = newId("readme");
    expect((await post(url, key, '{"a":')).status).toBe(400);
    const retried = await post(url, key, '{"amount":100}');
    expect(retried.status).toBe(201);
    expect(created).toEqual([{ amount: 100 }]);
  });
});
