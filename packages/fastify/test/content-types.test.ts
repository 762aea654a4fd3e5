/**
 * Deliveries of any content type over real HTTP: a signed delivery sent without Content-Type,
 * as `application/octet-stream` or as a vendor type Fastify has no parser for verifies on
 * webhook routes (as on Express, Koa, Hono and the web adapter), while the app's own routes
 * answer Fastify's 415 as they would without Interlock, and the app's own parsers still win.
 */

import { request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { MemoryStore, signWebhook, standardWebhooks } from "@interlock/core";
import Fastify, { type FastifyInstance } from "fastify";
import { afterEach, describe, expect, it } from "vitest";
import { idempotency, interlock, webhook } from "../src/index.js";
import { listen, type Running } from "./app.js";

const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const VENDOR = "application/vnd.x+json";
const OCTETS = "application/octet-stream";

let running: Running | undefined;
afterEach(async () => {
  await running?.close();
  running = undefined;
});

let sequence = 0;

interface Delivery {
  headers: Record<string, string>;
  body: Buffer;
}

/** A signed Standard Webhooks delivery, with `contentType` or (null) no Content-Type at all. */
async function delivery(contentType: string | null, event: object = { type: "invoice.paid" }): Promise<Delivery> {
  const body = Buffer.from(JSON.stringify({ ...event, n: ++sequence }));
  const signed = await signWebhook({ scheme: standardWebhooks, secret: SECRET, body });
  return { headers: contentType === null ? signed.headers : { ...signed.headers, "content-type": contentType }, body };
}

interface Answer {
  status: number;
  contentType: string | undefined;
  json: Record<string, unknown>;
}

/**
 * POSTs over node:http, which sends exactly the headers given (fetch adds a Content-Type of its
 * own to a text body), with a Content-Length.
 */
function post(url: string, d: Delivery): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      url,
      { method: "POST", headers: { ...d.headers, "content-length": String(d.body.length) }, agent: false },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          resolve({
            status: response.statusCode ?? 0,
            contentType: response.headers["content-type"],
            json: text === "" ? {} : JSON.parse(text),
          });
        });
        response.on("error", reject);
      },
    );
    request.on("error", reject);
    request.end(d.body);
  });
}

const tampered = (d: Delivery): Delivery => ({ ...d, body: Buffer.from(d.body.toString().replace("paid", "void")) });

/** A webhook route that counts its runs and echoes what it got, and an unprotected route beside it. */
function routes(app: FastifyInstance, runs: { count: number }) {
  app.post(
    "/hook",
    { config: { interlock: webhook({ scheme: standardWebhooks, secret: SECRET, store: new MemoryStore() }) } },
    async (request) => {
      runs.count++;
      const body = request.body;
      return {
        bodyKind: Buffer.isBuffer(body) ? "buffer" : typeof body,
        body: Buffer.isBuffer(body) ? body.toString("utf8") : body,
        verified: request.webhook!.text(),
        payload: request.webhook!.payload,
      };
    },
  );
  app.post("/contact", async (request) => ({ parsed: request.body }));
}

describe("webhook routes take a body of any type no parser of the app handles", () => {
  it.each<[string, string | null, string]>([
    ["no Content-Type", null, "buffer"],
    [OCTETS, OCTETS, "buffer"],
    [VENDOR, VENDOR, "string"],
  ])("a signed delivery with %s verifies and runs the handler once; the body is raw", async (_name, type, kind) => {
    const runs = { count: 0 };
    running = await listen((app) => routes(app, runs));
    const d = await delivery(type);
    const first = await post(`${running.url}/hook`, d);
    expect(first.status).toBe(200);
    expect(first.json).toMatchObject({ bodyKind: kind, body: d.body.toString(), verified: d.body.toString() });
    expect(first.json.payload).toEqual(JSON.parse(d.body.toString()));
    // The provider's retry of the same delivery is a duplicate: answered 200, not run again.
    expect((await post(`${running.url}/hook`, d)).status).toBe(200);
    expect(runs.count).toBe(1);
  });

  it.each<[string, string | null]>([
    ["no Content-Type", null],
    [OCTETS, OCTETS],
    [VENDOR, VENDOR],
  ])("a tampered delivery with %s is refused 401 problem+json and never runs the handler", async (_name, type) => {
    const runs = { count: 0 };
    running = await listen((app) => routes(app, runs));
    const response = await post(`${running.url}/hook`, tampered(await delivery(type)));
    expect(response.status).toBe(401);
    expect(response.contentType).toMatch(/^application\/problem\+json/);
    expect(response.json.code).toBe("no_matching_signature");
    expect(runs.count).toBe(0);
  });

  it("the fallback reaches webhook routes in a child scope too", async () => {
    const runs = { count: 0 };
    running = await listen(async (app) => {
      await app.register(async (child) => routes(child, runs), { prefix: "/child" });
    });
    expect((await post(`${running.url}/child/hook`, await delivery(OCTETS))).status).toBe(200);
    expect(runs.count).toBe(1);
  });
});

/** The answer of `path` to `d`: its status and its body's code, or the body itself. */
async function outcome(url: string, path: string, d: Delivery) {
  const response = await post(`${url}${path}`, d);
  return [path, response.status, response.json.code ?? response.json];
}

const FASTIFY_415 = [415, "FST_ERR_CTP_INVALID_MEDIA_TYPE"];

describe("the app's own routes answer as they would without Interlock", () => {
  it("in the scope where the webhook route takes them, a plain route and an idempotency route answer Fastify's 415 to an unknown type and to a body without one", async () => {
    const runs = { count: 0 };
    running = await listen((app) => {
      routes(app, runs);
      app.post(
        "/orders",
        { config: { interlock: idempotency({ store: new MemoryStore(), principal: false }) } },
        async () => ({ handled: true }),
      );
    });
    for (const type of [VENDOR, OCTETS, null]) {
      const d = await delivery(type);
      expect([type, (await post(`${running.url}/hook`, d)).status]).toEqual([type, 200]);
      const keyed = { ...d, headers: { ...d.headers, "idempotency-key": `"k-${sequence}"` } };
      for (const path of ["/contact", "/orders"]) {
        expect([type, ...(await outcome(running.url, path, keyed))]).toEqual([type, path, ...FASTIFY_415]);
      }
      // A request no route matches is still Fastify's 404, whatever its type.
      expect([type, (await post(`${running.url}/nowhere`, d)).status]).toEqual([type, 404]);
    }
    expect(runs.count).toBe(3);
  });
});

/** The app's catch-all parser: the length of the body it read. */
const catchAll = (app: FastifyInstance) =>
  app.addContentTypeParser("*", { parseAs: "buffer" }, (_request, body, done) =>
    done(null, `catch-all:${(body as Buffer).length}`),
  );

/** A parser for vendor types, by RegExp. */
const vendorRegExp = (app: FastifyInstance) =>
  app.addContentTypeParser(/^application\/vnd\.[\w.-]+\+json$/, { parseAs: "string" }, (_request, _body, done) =>
    done(null, "by regexp"),
  );

/** `listen`, with `first` setting up the app before the plugin is registered. */
const listenAfter =
  (first: (app: FastifyInstance) => void) =>
  async (routes: (app: FastifyInstance) => void): Promise<Running> => {
    const app = Fastify();
    first(app);
    await app.register(interlock);
    routes(app);
    await app.listen({ port: 0, host: "127.0.0.1" });
    return { app, url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, close: () => app.close() };
  };

describe("the app's own parsers still win, on webhook routes too", () => {
  /** `d` verifies on the bytes sent, with the app's parse as `request.body`, and `/contact` gets that parse too. */
  async function expectParsedBy(url: string, d: Delivery, parsed: unknown) {
    const hooked = await post(`${url}/hook`, d);
    expect(hooked.status).toBe(200);
    expect(hooked.json).toMatchObject({ body: parsed, verified: d.body.toString() });
    expect((await post(`${url}/contact`, d)).json).toEqual({ parsed });
  }

  /** A type the app has no parser for still verifies on `/hook`, raw, and is 415 on `/contact`. */
  async function expectFallback(url: string) {
    const d = await delivery(OCTETS);
    const hooked = await post(`${url}/hook`, d);
    expect([hooked.status, hooked.json.bodyKind]).toEqual([200, "buffer"]);
    expect((await outcome(url, "/contact", d)).slice(1)).toEqual(FASTIFY_415);
  }

  it("a parser for the vendor type registered after the plugin wins on both routes; other types still fall back", async () => {
    const runs = { count: 0 };
    running = await listen((app) => {
      app.addContentTypeParser(VENDOR, { parseAs: "string" }, (_request, body, done) =>
        done(null, `vendor:${(body as string).length}`),
      );
      routes(app, runs);
    });
    const d = await delivery(VENDOR);
    await expectParsedBy(running.url, d, `vendor:${d.body.length}`);
    await expectFallback(running.url);
    expect(runs.count).toBe(2);
  });

  it.each([
    ["before the plugin", listenAfter(vendorRegExp)],
    ["after the plugin", listen],
  ])(
    "a RegExp parser matching the vendor type registered %s wins on both routes; other types still fall back",
    async (_name, start) => {
      const runs = { count: 0 };
      running = await start((app) => {
        if (start === listen) vendorRegExp(app);
        routes(app, runs);
      });
      await expectParsedBy(running.url, await delivery(VENDOR), "by regexp");
      await expectFallback(running.url);
      expect(runs.count).toBe(2);
    },
  );

  it.each([
    ["after the plugin", listen],
    ["before the plugin", listenAfter(catchAll)],
  ])(
    "the app's catch-all ('*') registered %s parses every other type on both routes, forms and a body without Content-Type included",
    async (_name, start) => {
      const runs = { count: 0 };
      running = await start((app) => {
        if (start === listen) catchAll(app);
        routes(app, runs);
      });
      for (const type of [OCTETS, VENDOR, "application/x-www-form-urlencoded", null]) {
        const d = await delivery(type);
        await expectParsedBy(running.url, d, `catch-all:${d.body.length}`);
      }
      expect(runs.count).toBe(4);
    },
  );
});
