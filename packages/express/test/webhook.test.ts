/** `webhook()` specifics, over real HTTP on 127.0.0.1: raw bytes, limits, onError, outcomes. */

import { Agent, request as httpRequest } from "node:http";
import { PassThrough, Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import { type InterlockEvent, MemoryStore, standardWebhooks } from "@interlock/core";
import { rejectedTaggedThenUntagged } from "@interlock/test-harness/events";
import { leaveMidBody } from "@interlock/test-harness/web-requests";
import express, { type ErrorRequestHandler, type Express, type RequestHandler } from "express";
import { afterEach, describe, expect, it, vi } from "vitest";
import { captureRawBody, idempotency, releaseOnError, type WebhookMiddlewareOptions, webhook } from "../src/index.js";
import { asyncRoute, expressMajor } from "./framework.js";
import { keepRawBody, listen, type Running, readByEvents, SECRET, SlowStore, send, signed, sleep } from "./helpers.js";

const running: Running[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((app) => app.close()));
});

const onError: ErrorRequestHandler = (error, _req, res, _next) => {
  res.status(500).json({ error: (error as Error).message });
};

interface Setup {
  /** Middleware mounted on the app before the webhook route. */
  before?: (app: Express) => void;
  /** Error handlers mounted before the app's own. */
  errors?: ErrorRequestHandler[];
  options?: Partial<WebhookMiddlewareOptions>;
  /** Middleware mounted on the route between webhook() and the route (a parser). */
  after?: RequestHandler[];
  /** The route after webhook(); default echoes the verified bytes as base64. */
  route?: RequestHandler;
}

const echo: RequestHandler = (req, res) => {
  res.json({ id: req.webhook?.id, body: Buffer.from(req.webhook!.body).toString("base64") });
};

async function start(setup: Setup = {}) {
  const app = express();
  setup.before?.(app);
  const options = { scheme: standardWebhooks, secret: SECRET, store: new MemoryStore(), ...setup.options };
  app.post("/webhooks", webhook(options), ...(setup.after ?? []), setup.route ?? echo);
  for (const handler of setup.errors ?? []) app.use(handler);
  app.use(onError);
  const server = await listen(app);
  running.push(server);
  return `${server.url}/webhooks`;
}

// Formatting a JSON parser would not keep: key order, spacing, escapes, a trailing newline.
const AWKWARD_JSON = '{"z":1,  "a":"caf\\u00e9 é",\n "n":1.10e1}\n';

describe("webhook(): Interlock's own answers", () => {
  it("go to an app's wrapped res.end as a Buffer, as Node's own writes do (loggers call toString() on it)", async () => {
    const ended: unknown[] = [];
    const url = await start({
      before: (app) =>
        app.use((_req, res, next) => {
          const end = res.end;
          res.end = function (this: typeof res, ...args: unknown[]) {
            ended.push(args[0]);
            return Reflect.apply(end, this, args);
          } as typeof res.end;
          next();
        }),
    });
    const d = await signed('{"type":"x"}');
    const forged = await send(url, { headers: { ...d.headers, "webhook-signature": "v1,AAAA" }, body: d.body });
    await send(url, { headers: d.headers, body: d.body });
    const duplicate = await send(url, { headers: d.headers, body: d.body });
    expect([forged.status, duplicate.status]).toEqual([401, 200]);
    // The refusal and the duplicate's answer are Interlock's (the route's own answer comes between).
    const [refusal, , again] = ended;
    expect([Buffer.isBuffer(refusal), Buffer.isBuffer(again)]).toEqual([true, true]);
    expect(JSON.parse(String(refusal))).toMatchObject({ code: "no_matching_signature" });
    expect(JSON.parse(String(again))).toMatchObject({ duplicate: true });
  });
});

describe("webhook(): the raw body, whatever parser the app uses", () => {
  const setups: Record<string, (app: Express) => void> = {
    "no body parser": () => {},
    "express.json({ verify: captureRawBody })": (app) => app.use(express.json({ verify: captureRawBody })),
    "express.raw({ type: '*/*' })": (app) => app.use(express.raw({ type: "*/*" })),
    "a host that keeps a Buffer req.rawBody (NestJS rawBody: true, Cloud Functions)": (app) =>
      app.use(express.json({ verify: keepRawBody })),
    "express.urlencoded() (another type)": (app) => app.use(express.urlencoded({ extended: false })),
    "a parser that sets req.body = {} without reading (Express 4 style)": (app) =>
      app.use((req, _res, next) => {
        req.body = {};
        next();
      }),
  };
  for (const [name, before] of Object.entries(setups)) {
    it(`${name}: verified on the exact bytes sent`, async () => {
      const url = await start({ before });
      const d = await signed(AWKWARD_JSON);
      const response = await send(url, d);
      expect(response.status).toBe(200);
      expect(Buffer.from((response.json() as { body: string }).body, "base64").toString("utf8")).toBe(AWKWARD_JSON);
    });
  }

  it("express.json() without the hook ran first → 500 body_not_raw with advice, route not run", async () => {
    let ran = false;
    const url = await start({
      before: (app) => app.use(express.json()),
      route: (_req, res) => {
        ran = true;
        res.end();
      },
    });
    const response = await send(url, await signed('{"type":"invoice.paid"}'));
    expect(response.status).toBe(500);
    expect(response.headers["content-type"]).toBe("application/problem+json");
    const problem = response.json() as { code: string; detail: string };
    expect(problem.code).toBe("body_not_raw");
    expect(problem.detail).toContain("captureRawBody");
    expect(problem.detail).toContain("rawBody: true");
    expect(ran).toBe(false);
  });

  it("a req.rawBody that is a string (decoded text) is not taken for the signed bytes → body_not_raw", async () => {
    const url = await start({
      before: (app) =>
        app.use(express.json({ verify: (req, _res, buf) => Object.assign(req, { rawBody: buf.toString() }) })),
    });
    const response = await send(url, await signed('{"type":"invoice.paid"}'));
    expect([response.status, (response.json() as { code: string }).code]).toEqual([500, "body_not_raw"]);
  });

  it("bytes a parser kept past bodyLimit → 413 body_too_large, as bytes read past it are; the route not run", async () => {
    let ran = false;
    const url = await start({
      before: (app) => app.use(express.json({ verify: captureRawBody })),
      options: { maxBodyBytes: Buffer.byteLength(AWKWARD_JSON) - 1 },
      route: (_req, res) => {
        ran = true;
        res.end();
      },
    });
    const response = await send(url, await signed(AWKWARD_JSON));
    expect([response.status, (response.json() as { code: string }).code]).toEqual([413, "body_too_large"]);
    expect(ran).toBe(false);
  });

  it("express.text({ type: '*/*' }) ran first → body_not_raw (decoded text is not the signed bytes)", async () => {
    const url = await start({ before: (app) => app.use(express.text({ type: "*/*" })) });
    const response = await send(url, await signed("hello"));
    expect([response.status, (response.json() as { code: string }).code]).toEqual([500, "body_not_raw"]);
  });

  it("binary, non-UTF-8 bodies are verified and kept byte for byte", async () => {
    const url = await start();
    const bytes = Uint8Array.from([0xff, 0xfe, 0x00, 0x80, 0xc3, 0x28, 0x0a, 0x0d, 0xe9]);
    const response = await send(url, await signed(bytes, "application/octet-stream"));
    expect(response.status).toBe(200);
    expect(Buffer.from((response.json() as { body: string }).body, "base64")).toEqual(Buffer.from(bytes));
  });

  it("a body sent in chunks (no Content-Length) is read whole", async () => {
    const url = await start();
    const d = await signed(AWKWARD_JSON);
    const body = Buffer.from(d.body);
    const response = await send(url, { headers: d.headers, body: [body.subarray(0, 5), body.subarray(5)] });
    expect(response.status).toBe(200);
  });

  it.each<[string, (app: Express) => void]>([
    ["no body parser (the bytes as sent)", () => {}],
    [
      "express.json({ verify: captureRawBody }) (the bytes it inflated)",
      (app) => app.use(express.json({ verify: captureRawBody })),
    ],
    ["express.raw({ type: '*/*' }) (the bytes it inflated)", (app) => app.use(express.raw({ type: "*/*" }))],
  ])(
    "a gzip-encoded delivery → 415 unsupported_content_encoding, whichever bytes were signed; %s",
    async (_name, before) => {
      let ran = 0;
      const url = await start({
        before,
        route: (_req, res) => {
          ran++;
          res.end();
        },
      });
      const payload = Buffer.from('{"type":"invoice.paid"}');
      const compressed = gzipSync(payload);
      for (const signedBytes of [payload, compressed]) {
        const d = await signed(signedBytes);
        const response = await send(url, { headers: { ...d.headers, "content-encoding": "gzip" }, body: compressed });
        expect(response.headers["content-type"]).toMatch(/^application\/problem\+json/);
        expect(response.json()).toMatchObject({ status: 415, code: "unsupported_content_encoding" });
        expect(response.headers["accept-encoding"]).toBe("identity");
        expect((response.json() as { detail: string }).detail).toMatch(/Content-Encoding: gzip/);
      }
      expect(ran).toBe(0);
    },
  );

  it("an empty body a parser read first is still the empty body signed, not body_not_raw (nothing was lost)", async () => {
    const url = await start({ before: (app) => app.use(express.json()) });
    const d = await signed("");
    const response = await send(url, { headers: d.headers, body: "" });
    expect(response.status).toBe(200);
    expect(response.json()).toEqual({ id: d.id, body: "" });
  });

  it("a delivery cut off mid-body (the client went away) is 400 body_incomplete, reported; the route never runs", async () => {
    const events: InterlockEvent[] = [];
    const errors: unknown[] = [];
    let runs = 0;
    const url = await start({
      options: { onEvent: (event) => void events.push(event) },
      route: (_req, res) => void res.json({ run: ++runs }),
      errors: [(error, _req, _res, next) => next(errors.push(error) && error)],
    });
    const d = await signed('{"type":"x"}');
    await leaveMidBody(url.replace(/\/webhooks$/, ""), "/webhooks", d.headers);
    await vi.waitFor(() => expect(events.map((e) => e.type)).toContain("webhook.rejected"));
    expect(events).toEqual([expect.objectContaining({ type: "webhook.rejected", code: "body_incomplete" })]);
    expect([runs, errors]).toEqual([0, []]);
    expect((await send(url, d)).json()).toEqual({ run: 1 });
  });

  it("a delivery without a body is refused by the verifier, not by the reader", async () => {
    const url = await start();
    const response = await send(url, { headers: (await signed("x")).headers });
    expect([response.status, (response.json() as { code: string }).code]).toEqual([401, "no_matching_signature"]);
  });
});

describe("webhook(): what runs after it reads the stream gets the verified bytes", () => {
  const parsed: RequestHandler = (req, res) =>
    void res.json({ body: Buffer.isBuffer(req.body) ? `buffer:${req.body.toString()}` : req.body });

  it.each<[string, RequestHandler, string, string, unknown]>([
    ["express.json()", express.json(), "application/json", AWKWARD_JSON, JSON.parse(AWKWARD_JSON)],
    [
      "express.urlencoded()",
      express.urlencoded({ extended: false }),
      "application/x-www-form-urlencoded",
      "type=invoice.paid&n=1",
      { type: "invoice.paid", n: "1" },
    ],
    ["express.text()", express.text(), "text/plain", "invoice.paid", "invoice.paid"],
    ["express.raw()", express.raw(), "application/octet-stream", "invoice.paid", "buffer:invoice.paid"],
  ])(
    "%s mounted after webhook() parses the bytes verified; the delivery is recorded",
    async (_name, parser, type, body, expected) => {
      let runs = 0;
      const url = await start({
        after: [parser],
        route: (req, res, next) => {
          runs++;
          parsed(req, res, next);
        },
      });
      const d = await signed(body, type);
      const first = await send(url, d);
      expect([first.status, first.json()]).toEqual([200, { body: expected }]);
      expect((await send(url, d)).json()).toEqual({ duplicate: true, id: d.id });
      expect(runs).toBe(1);
    },
  );

  it("idempotency() after webhook() on a keyed delivery parses the bytes verified for the route, with its own parsers", async () => {
    const store = new MemoryStore();
    const url = await start({ options: { store }, after: [idempotency({ store, principal: false })], route: parsed });
    const d = await signed(AWKWARD_JSON);
    const response = await send(url, { headers: { ...d.headers, "idempotency-key": "k" }, body: d.body });
    expect([response.status, response.json()]).toEqual([200, { body: JSON.parse(AWKWARD_JSON) }]);
  });

  it("deliveries one after another on a keep-alive connection, to a route that reads nothing: each answered on it", async () => {
    const url = await start({ route: (req, res) => void res.json({ id: req.webhook?.id }) });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set<unknown>();
    const deliver = async () => {
      const d = await signed('{"type":"x"}');
      return new Promise<unknown>((resolve, reject) => {
        const req = httpRequest(url, { method: "POST", headers: d.headers, agent }, (res) => {
          sockets.add(res.socket);
          res.setEncoding("utf8").on("data", () => {});
          res.on("end", () => resolve(res.statusCode));
        });
        req.on("error", reject);
        req.end(Buffer.from(d.body));
      });
    };
    try {
      expect([await deliver(), await deliver(), await deliver()]).toEqual([200, 200, 200]);
      expect(sockets.size).toBe(1);
    } finally {
      agent.destroy();
    }
  });

  it("a route that reads nothing: its request closes once the answer is out, as an unread body's does without Interlock", async () => {
    let closed!: Promise<void>;
    const url = await start({
      route: (req, res) => {
        closed = new Promise((resolve) => req.once("close", () => resolve()));
        res.json({ id: req.webhook?.id });
      },
    });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const d = await signed('{"type":"x"}');
      const status = await new Promise<unknown>((resolve, reject) => {
        const req = httpRequest(url, { method: "POST", headers: d.headers, agent }, (res) => {
          res.resume().on("end", () => resolve(res.statusCode));
        });
        req.on("error", reject);
        req.end(Buffer.from(d.body));
      });
      expect(status).toBe(200);
      // The connection stays open (kept alive): only the drained request can close.
      const outcome = await Promise.race([closed.then(() => "closed"), sleep(1_000).then(() => "still open")]);
      expect(outcome).toBe("closed");
    } finally {
      agent.destroy();
    }
  });

  it.each<[string, (req: NodeJS.ReadableStream) => Promise<Buffer>]>([
    ["listens for data", (req) => readByEvents(req)],
    [
      "iterates it",
      async (req) => {
        const chunks: Buffer[] = [];
        for await (const chunk of req) chunks.push(chunk as Buffer);
        return Buffer.concat(chunks);
      },
    ],
    ["pipes it", (req) => readByEvents(req.pipe(new PassThrough()))],
    [
      "reads it with read()",
      (req) =>
        new Promise<Buffer>((resolve, reject) => {
          const chunks: Buffer[] = [];
          req.on("readable", () => {
            for (let chunk = req.read(); chunk !== null; chunk = req.read()) chunks.push(chunk as Buffer);
          });
          req.once("end", () => resolve(Buffer.concat(chunks)));
          req.once("error", reject);
        }),
    ],
  ])("a route that %s reads the whole body verified; the delivery is recorded", async (_how, read) => {
    let runs = 0;
    const url = await start({
      route: asyncRoute(async (req, res) => {
        runs++;
        res.json({ bytes: (await read(req)).toString("base64") });
      }),
    });
    const d = await signed(AWKWARD_JSON);
    const first = await send(url, d);
    expect([first.status, Buffer.from((first.json() as { bytes: string }).bytes, "base64").toString()]).toEqual([
      200,
      AWKWARD_JSON,
    ]);
    expect((await send(url, d)).json()).toEqual({ duplicate: true, id: d.id });
    expect(runs).toBe(1);
  });
});

describe("webhook(): body size limit (bodyLimit, default maxBodyBytes)", () => {
  it("over the limit → 413 body_too_large, declared by Content-Length or streamed; at the limit → verified", async () => {
    let runs = 0;
    const events: InterlockEvent[] = [];
    const url = await start({
      options: { maxBodyBytes: 64, onEvent: (event) => void events.push(event) },
      route: (_req, res) => {
        runs++;
        res.json({});
      },
    });
    const big = await signed("x".repeat(65));
    const declared = await send(url, big);
    expect(declared.status).toBe(413);
    expect(declared.headers["content-type"]).toBe("application/problem+json");
    expect(declared.json()).toMatchObject({ code: "body_too_large", status: 413, scheme: "standard-webhooks" });
    const bytes = Buffer.from(big.body);
    const streamed = await send(url, { headers: big.headers, body: [bytes.subarray(0, 40), bytes.subarray(40)] });
    expect([streamed.status, (streamed.json() as { code: string }).code]).toEqual([413, "body_too_large"]);
    expect((await send(url, await signed("x".repeat(64)))).status).toBe(200);
    expect(runs).toBe(1);
    // The adapter's own refusals are the receiver's: reported like every other.
    const rejected = events.filter((e) => e.type === "webhook.rejected");
    expect(rejected).toMatchObject([
      { scheme: "standard-webhooks", code: "body_too_large" },
      { scheme: "standard-webhooks", code: "body_too_large" },
    ]);
  });

  it("the adapter's own 413 carries the request's correlation id (x-request-id), as core's refusals do", async () => {
    const events: InterlockEvent[] = [];
    const url = await start({ options: { maxBodyBytes: 64, onEvent: (event) => void events.push(event) } });
    const big = await signed("x".repeat(65));
    const tagged = await send(url, { headers: { ...big.headers, "x-request-id": "req-413-express" }, body: big.body });
    expect(tagged.status).toBe(413);
    expect((await send(url, big)).status).toBe(413);
    expect(events.filter((e) => e.type === "webhook.rejected")).toEqual(
      rejectedTaggedThenUntagged("body_too_large", "req-413-express", big.headers),
    );
  });

  it("the limit defaults to the verifier's maxBodyBytes; a bad maxBodyBytes is refused when the middleware is made", async () => {
    const url = await start({ options: { maxBodyBytes: 32 } });
    const response = await send(url, await signed("x".repeat(33)));
    expect([response.status, (response.json() as { code: string }).code]).toEqual([413, "body_too_large"]);
    for (const maxBodyBytes of [0, -1, 1.5]) {
      expect(() =>
        webhook({ scheme: standardWebhooks, secret: SECRET, store: new MemoryStore(), maxBodyBytes }),
      ).toThrow(/maxBodyBytes/);
    }
  });

  it("a large body under the default limit is read", async () => {
    const url = await start();
    const payload = JSON.stringify({ data: "y".repeat(2 * 1024 * 1024) });
    expect((await send(url, await signed(payload))).status).toBe(200);
  });
});

describe("webhook(): onError takes over the answer", () => {
  it("refusals go to onError with core's decision; the route does not run", async () => {
    const seen: string[] = [];
    const url = await start({
      options: {
        onError(decision, _req, res) {
          seen.push(`${decision.outcome}:${decision.error.code}:${decision.response.status}`);
          res.status(418).json({ mine: decision.outcome });
        },
      },
    });
    const d = await signed('{"type":"a"}');
    const tampered = await send(url, { ...d, body: '{"type":"b"}' });
    expect([tampered.status, tampered.json()]).toEqual([418, { mine: "rejected" }]);
    expect(seen).toEqual(["rejected:no_matching_signature:401"]);
  });

  it("a duplicate is not an error: it gets core's 200 and onError is not called", async () => {
    const outcomes: string[] = [];
    const url = await start({
      options: {
        onError(decision, _req, res) {
          outcomes.push(decision.outcome);
          res.status(418).json({ mine: true });
        },
      },
    });
    const d = await signed('{"type":"a"}');
    expect((await send(url, d)).status).toBe(200);
    const duplicate = await send(url, d);
    expect([duplicate.status, duplicate.json()]).toEqual([200, { duplicate: true, id: d.id }]);
    expect(outcomes).toEqual([]);
  });

  it("an onError that answers itself is the only answer: Express's error handling never hears of it", async () => {
    const errors: unknown[] = [];
    const url = await start({
      options: { onError: (_decision, _req, res) => void res.status(418).json({ mine: true }) },
      errors: [
        (error, _req, _res, next) => {
          errors.push(error);
          next(error);
        },
      ],
    });
    const tampered = await signed('{"type":"a"}');
    const response = await send(url, { ...tampered, body: '{"type":"b"}' });
    expect([response.status, response.json()]).toEqual([418, { mine: true }]);
    expect(errors).toEqual([]);
  });

  it("the adapter's own refusals (too large, not raw) go to onError too", async () => {
    const codes: string[] = [];
    const url = await start({
      options: { maxBodyBytes: 10, onError: (decision) => void codes.push(decision.error.code) },
    });
    const response = await send(url, await signed("x".repeat(11)));
    expect(response.status).toBe(413); // onError returned without answering: the default went out
    expect(codes).toEqual(["body_too_large"]);
  });

  it("an onError that throws hands the error to Express's error handling", async () => {
    const url = await start({
      options: {
        onError() {
          throw new Error("custom refusal");
        },
      },
    });
    const response = await send(url, { headers: { "content-type": "application/json" }, body: "{}" });
    expect([response.status, response.json()]).toEqual([500, { error: "custom refusal" }]);
  });
});

describe("webhook(): the status the route answered decides", () => {
  async function counting(route: (n: number) => RequestHandler, options: Partial<WebhookMiddlewareOptions> = {}) {
    const store = new MemoryStore();
    const events: InterlockEvent[] = [];
    let runs = 0;
    const url = await start({
      options: { store, onEvent: (event) => void events.push(event), ...options },
      route: (req, res, next) => route(++runs)(req, res, next),
    });
    return { url, events, runs: () => runs };
  }

  it("with releaseOnError, a route that throws releases the delivery whatever the error handler answers", async () => {
    const store = new MemoryStore();
    const events: InterlockEvent[] = [];
    let runs = 0;
    const swallow: ErrorRequestHandler = (_error, _req, res, _next) => void res.status(200).json({ swallowed: true });
    const url = await start({
      options: { store, onEvent: (event) => void events.push(event) },
      route: (_req, res) => {
        if (++runs === 1) throw new Error("boom");
        res.json({ ok: runs });
      },
      errors: [releaseOnError, swallow],
    });
    const d = await signed('{"type":"x"}');
    // The app's error handler answers 200, which alone would record the delivery as processed.
    expect((await send(url, d)).json()).toEqual({ swallowed: true });
    expect((await send(url, d)).json()).toEqual({ ok: 2 });
    expect((await send(url, d)).json()).toEqual({ duplicate: true, id: d.id });
    expect(events.filter((e) => e.type === "webhook.handler_failed")).toHaveLength(1);
  });

  it("with releaseOnError, a payload its scheme cannot decode, read by the route → 400 payload_not_decodable problem+json before the app's error handler; released", async () => {
    const events: InterlockEvent[] = [];
    const reached: string[] = [];
    let runs = 0;
    const noting: ErrorRequestHandler = (error, _req, _res, next) => {
      reached.push((error as Error).name);
      next(error);
    };
    const url = await start({
      options: { onEvent: (event) => void events.push(event) },
      route: (req, res) => {
        runs++;
        res.json(req.webhook!.payload);
      },
      errors: [releaseOnError, noting],
    });
    const d = await signed("not json {");
    for (let attempt = 0; attempt < 2; attempt++) {
      const response = await send(url, d);
      expect([response.status, response.headers["content-type"]]).toEqual([400, "application/problem+json"]);
      expect(response.json()).toMatchObject({ code: "payload_not_decodable", scheme: "standard-webhooks" });
    }
    // Released: the redelivery ran the route again. The app's error handler never heard of it.
    expect([runs, reached]).toEqual([2, []]);
    expect(events.filter((e) => e.type === "webhook.handler_failed")).toHaveLength(2);
  });

  it("with releaseOnError, a payload error thrown once the route began its answer goes on to the app's error handler, as any throw", async () => {
    const reached: string[] = [];
    const ending: ErrorRequestHandler = (error, _req, res, _next) => {
      reached.push((error as Error).name);
      res.end();
    };
    const url = await start({
      route: (req, res) => {
        res.status(200).write("begun ");
        res.json(req.webhook!.payload);
      },
      errors: [releaseOnError, ending],
    });
    const response = await send(url, await signed("not json {"));
    expect([response.status, response.text]).toEqual([200, "begun "]);
    expect(reached).toEqual(["WebhookPayloadError"]);
  });

  it("without releaseOnError, a route that throws → the error handler's 500 releases the delivery; the redelivery runs, once", async () => {
    const fixed = await counting((n) => (_req, res) => {
      if (n === 1) throw new Error("boom");
      res.json({ ok: n });
    });
    const d = await signed('{"type":"x"}');
    expect((await send(fixed.url, d)).status).toBe(500);
    expect((await send(fixed.url, d)).status).toBe(200);
    expect((await send(fixed.url, d)).json()).toEqual({ duplicate: true, id: d.id });
    expect(fixed.runs()).toBe(2);
    expect(fixed.events.map((e) => e.type)).toContain("webhook.handler_failed");
  });

  const forwarding = expressMajor >= 5 ? "Express 5 forwards the rejection" : "on Express 4 the app passes it to next";
  it(`an async route that rejects is handled the same (${forwarding})`, async () => {
    const app = await counting((n) =>
      asyncRoute(async (_req, res) => {
        await new Promise((resolve) => setTimeout(resolve, 5));
        if (n === 1) throw new Error("later");
        res.sendStatus(204);
      }),
    );
    const d = await signed('{"type":"x"}');
    expect((await send(app.url, d)).status).toBe(500);
    expect((await send(app.url, d)).status).toBe(204);
    expect(app.runs()).toBe(2);
  });

  it("a non-2xx answer releases; a 2xx answer — even streamed — records before the client sees it", async () => {
    const app = await counting((n) => (_req, res) => {
      if (n === 1) return void res.status(503).send("busy");
      res.status(200);
      res.write("part one, ");
      res.end("part two");
    });
    const d = await signed('{"type":"x"}');
    expect((await send(app.url, d)).status).toBe(503);
    const ok = await send(app.url, d);
    expect([ok.status, ok.text]).toEqual([200, "part one, part two"]);
    expect((await send(app.url, d)).json()).toEqual({ duplicate: true, id: d.id });
    expect(app.runs()).toBe(2);
    const processed = app.events.find((e) => e.type === "webhook.processed");
    expect(processed).toMatchObject({ recorded: true });
  });

  it("a piped answer the provider closes before its end: in flight while the stream goes on, then released, never recorded as processed; the redelivery runs it", async () => {
    let fail = () => {};
    const app = await counting((n) => (_req, res) => {
      const out = new PassThrough();
      out.pipe(res);
      out.write("working\n");
      if (n === 1) fail = () => out.destroy(new Error("db down"));
      else out.end("done\n");
    });
    const d = await signed('{"type":"x"}');
    // The provider reads the first bytes, then gives up (its timeout) and closes the connection.
    await new Promise<void>((resolve) => {
      const req = httpRequest(app.url, { method: "POST", headers: d.headers, agent: false }, (res) => {
        res.once("data", () => {
          req.destroy();
          resolve();
        });
      });
      req.on("error", () => {});
      req.end(d.body);
    });
    await new Promise((resolve) => setTimeout(resolve, 50)); // the response has closed
    // The route still produces its answer: a redelivery meanwhile is in flight, not run beside it.
    expect((await send(app.url, d)).status).toBe(409);
    fail(); // the first run's work fails after all
    await vi.waitFor(() => expect(app.events.map((e) => e.type)).toContain("webhook.handler_failed"));
    expect(app.events.map((e) => e.type)).not.toContain("webhook.processed");
    const again = await send(app.url, d);
    expect([again.status, again.text]).toEqual([200, "working\ndone\n"]);
    expect((await send(app.url, d)).json()).toEqual({ duplicate: true, id: d.id });
    expect(app.runs()).toBe(2);
  });

  /** Posts the delivery `d` and closes the connection once the first bytes of the answer arrive (the provider's timeout). */
  const postAndLeave = (url: string, d: { headers: Record<string, string>; body: string | Uint8Array }) =>
    new Promise<void>((resolve) => {
      const req = httpRequest(url, { method: "POST", headers: d.headers, agent: false }, (res) => {
        res.once("data", () => {
          req.destroy();
          resolve();
        });
      });
      req.on("error", () => {});
      req.end(d.body);
    });

  // The lease is renewed every third of lockTtlMs while the route runs; a provider that leaves an
  // answer the route began stops that, settling nothing: the claim lapses from two thirds of lockTtlMs to
  // lockTtlMs after the close.
  const cutOffLease = { lockTtlMs: 1_000, extendLease: { maxMs: 60_000 } };

  it("an answer written with res.write() the provider closes before its end, the route ending it 2xx 100 ms later: recorded as processed, the redelivery a duplicate", async () => {
    const app = await counting(
      () => (_req, res) => {
        res.writeHead(200, { "content-type": "text/plain" });
        res.write("working\n");
        res.once("close", () => setTimeout(() => res.end("done\n"), 100));
      },
      cutOffLease,
    );
    const d = await signed('{"type":"x"}');
    await postAndLeave(app.url, d);
    await vi.waitFor(() => expect(app.events.map((e) => e.type)).toContain("webhook.processed"));
    expect((await send(app.url, d)).json()).toEqual({ duplicate: true, id: d.id });
    expect(app.runs()).toBe(1);
  });

  it("an answer written with res.write() the provider closes before its end, the route never ending it: a redelivery is in flight until the lease lapses (lockTtlMs, not extendLease's maxMs), then runs", async () => {
    const app = await counting(
      (n) => (_req, res) => {
        if (n > 1) return void res.json({ ok: n });
        res.writeHead(200, { "content-type": "text/plain" });
        res.write("working\n");
        // Never ended: the route stops writing when its client leaves, as a stream of events does.
        const timer = setInterval(() => res.write("still working\n"), 10);
        res.once("close", () => clearInterval(timer));
      },
      cutOffLease,
    );
    const d = await signed('{"type":"x"}');
    await postAndLeave(app.url, d);
    expect((await send(app.url, d)).status).toBe(409);
    await sleep(1_500);
    expect((await send(app.url, d)).json()).toEqual({ ok: 2 });
    expect((await send(app.url, d)).json()).toEqual({ duplicate: true, id: d.id });
    expect(app.runs()).toBe(2);
  });

  it("a route that writes part of its answer, then destroys the response: the delivery is released, never recorded as processed; the redelivery runs it", async () => {
    const app = await counting((n) => (_req, res) => {
      if (n > 1) return void res.json({ ok: n });
      res.write("partial");
      setTimeout(() => res.destroy(), 20);
    });
    const d = await signed('{"type":"x"}');
    await expect(send(app.url, d)).rejects.toThrow(); // the connection is reset
    await vi.waitFor(() => expect(app.events.map((e) => e.type)).toContain("webhook.handler_failed"));
    expect(app.events.map((e) => e.type)).not.toContain("webhook.processed");
    expect((await send(app.url, d)).json()).toEqual({ ok: 2 });
    expect((await send(app.url, d)).json()).toEqual({ duplicate: true, id: d.id });
    expect(app.runs()).toBe(2);
  });

  it("the store settles before the provider reads the answer: an immediate redelivery is a duplicate", async () => {
    let runs = 0;
    const url = await start({
      options: { store: new SlowStore(50) },
      route: (_req, res) => {
        runs++;
        res.json({ ok: true });
      },
    });
    const d = await signed('{"type":"x"}');
    expect((await send(url, d)).status).toBe(200);
    expect((await send(url, d)).json()).toEqual({ duplicate: true, id: d.id });
    expect(runs).toBe(1);
  });

  it("works on a Router mounted under a path, with req.webhook typed", async () => {
    const app = express();
    const router = express.Router();
    router.post(
      "/stripe-like",
      webhook({ scheme: standardWebhooks, secret: SECRET, store: new MemoryStore() }),
      (req, res) => {
        const payload = req.webhook?.payload as { type: string };
        res.json({ type: payload.type, scheme: req.webhook?.scheme });
      },
    );
    app.use("/hooks", router);
    const server = await listen(app);
    running.push(server);
    const response = await send(`${server.url}/hooks/stripe-like`, await signed('{"type":"invoice.paid"}'));
    expect(response.json()).toEqual({ type: "invoice.paid", scheme: "standard-webhooks" });
  });
});

describe("webhook() and idempotency() on one request", () => {
  it("the same webhook() mounted app-wide and again on the route: processed once, recorded, then a duplicate", async () => {
    const events: InterlockEvent[] = [];
    const hook = webhook({
      scheme: standardWebhooks,
      secret: SECRET,
      store: new MemoryStore(),
      onEvent: (event) => void events.push(event),
    });
    let runs = 0;
    const app = express();
    app.use("/webhooks", hook);
    app.post("/webhooks", hook, (_req, res) => void res.json({ run: ++runs }));
    app.use(onError);
    const server = await listen(app);
    running.push(server);
    const d = await signed('{"type":"x"}');
    const first = await send(`${server.url}/webhooks`, d);
    expect([first.status, first.json()]).toEqual([200, { run: 1 }]);
    expect((await send(`${server.url}/webhooks`, d)).json()).toEqual({ duplicate: true, id: d.id });
    expect(runs).toBe(1);
    expect(events.map((e) => e.type)).toEqual([
      "webhook.verified",
      "webhook.processed",
      "webhook.verified",
      "webhook.duplicate",
    ]);
  });

  // Each holds the response's end until its store has settled: the holds stack, each passing
  // the answer on to the one before it, then to Node.
  it.each([
    ["idempotency() app-wide, webhook() on the route", "app"],
    ["webhook() then idempotency() on the route", "route"],
    ["idempotency() then webhook() on the route", "route-reversed"],
  ])("%s: answered once, the delivery recorded and the answer stored", async (_name, layout) => {
    const store = new MemoryStore();
    const events: InterlockEvent[] = [];
    const onEvent = (event: InterlockEvent) => void events.push(event);
    const hook = webhook({ scheme: standardWebhooks, secret: SECRET, store, onEvent });
    const idem = idempotency({ store, principal: false, onEvent });
    let runs = 0;
    const route: RequestHandler = (_req, res) => void res.status(200).json({ run: ++runs });
    const app = express();
    if (layout === "app") app.use(idem);
    if (layout === "app") app.post("/webhooks", hook, route);
    if (layout === "route") app.post("/webhooks", hook, idem, route);
    if (layout === "route-reversed") app.post("/webhooks", idem, hook, route);
    app.use(onError);
    const server = await listen(app);
    running.push(server);
    const url = `${server.url}/webhooks`;
    const d = await signed('{"type":"x"}');
    const keyed = { headers: { ...d.headers, "idempotency-key": "delivery-1" }, body: d.body };

    const first = await send(url, keyed);
    expect([first.status, first.json()]).toEqual([200, { run: 1 }]);
    expect(events.map((e) => e.type)).toEqual(expect.arrayContaining(["webhook.processed", "idempotency.completed"]));
    // The same request again: replayed by idempotency() when it comes first, else a duplicate delivery.
    const again = await send(url, keyed);
    expect(again.status).toBe(200);
    expect(again.json()).toEqual(layout === "route" ? { duplicate: true, id: d.id } : { run: 1 });
    // The delivery without the key: a duplicate.
    expect((await send(url, d)).json()).toEqual({ duplicate: true, id: d.id });
    expect(runs).toBe(1);
  });

  it.each([
    ["webhook() alone", false],
    ["webhook() then idempotency()", true],
  ])("%s: a route that answers, then calls res.end() again, answers as without Interlock", async (_name, both) => {
    const store = new MemoryStore();
    const app = express();
    const hook = webhook({ scheme: standardWebhooks, secret: SECRET, store });
    const route: RequestHandler = (req, res) => {
      res.json({ received: req.webhook?.id });
      res.end(); // a "make sure it is ended" helper
    };
    if (both) app.post("/webhooks", hook, idempotency({ store, principal: false }), route);
    else app.post("/webhooks", hook, route);
    const server = await listen(app);
    running.push(server);
    const d = await signed('{"type":"x"}');
    const delivery = { headers: { ...d.headers, "idempotency-key": "k" }, body: d.body };
    const first = await send(`${server.url}/webhooks`, delivery);
    expect([first.status, first.json()]).toEqual([200, { received: d.id }]);
    // Recorded as processed: the same delivery again is a duplicate.
    expect((await send(`${server.url}/webhooks`, delivery)).json()).toEqual({ duplicate: true, id: d.id });
  });

  it("a route that destroys its response through both holds releases both: the delivery and the key, each once", async () => {
    const store = new MemoryStore();
    const events: InterlockEvent[] = [];
    const onEvent = (event: InterlockEvent) => void events.push(event);
    let runs = 0;
    const app = express();
    app.post(
      "/webhooks",
      webhook({ scheme: standardWebhooks, secret: SECRET, store, onEvent }),
      idempotency({ store, principal: false, onEvent }),
      (_req, res) => {
        if (++runs > 1) return void res.json({ run: runs });
        res.write("partial");
        setTimeout(() => res.destroy(), 20);
      },
    );
    const server = await listen(app);
    running.push(server);
    const d = await signed('{"type":"x"}');
    const delivery = { headers: { ...d.headers, "idempotency-key": "k" }, body: d.body };
    await expect(send(`${server.url}/webhooks`, delivery)).rejects.toThrow();
    await vi.waitFor(() =>
      expect(events.map((e) => e.type)).toEqual(
        expect.arrayContaining(["webhook.handler_failed", "idempotency.released"]),
      ),
    );
    expect((await send(`${server.url}/webhooks`, delivery)).json()).toEqual({ run: 2 });
    expect(events.filter((e) => e.type === "webhook.handler_failed")).toHaveLength(1);
    expect(events.filter((e) => e.type === "idempotency.released")).toMatchObject([{ reason: "error" }]);
  });

  it("a route that destroys its response after its end (held until stored): passed on as it is, the delivery settled by that end", async () => {
    const events: InterlockEvent[] = [];
    let runs = 0;
    const url = await start({
      options: { store: new SlowStore(50), onEvent: (event) => void events.push(event) },
      route: (_req, res) => {
        runs++;
        res.json({ ok: true });
        res.destroy();
      },
    });
    const d = await signed('{"type":"x"}');
    await send(url, d).catch(() => {}); // destroyed before the held end went out
    await vi.waitFor(() => expect(events.map((e) => e.type)).toContain("webhook.processed"));
    expect((await send(url, d)).json()).toEqual({ duplicate: true, id: d.id });
    expect(runs).toBe(1);
  });

  it("a piped answer through both holds goes out whole, uncached, and settles both", async () => {
    const store = new MemoryStore();
    const events: InterlockEvent[] = [];
    const onEvent = (event: InterlockEvent) => void events.push(event);
    const app = express();
    app.post(
      "/webhooks",
      webhook({ scheme: standardWebhooks, secret: SECRET, store, onEvent }),
      idempotency({ store, principal: false, onEvent }),
      (_req, res) => {
        res.status(200).type("text/plain");
        Readable.from(["streamed ", "answer"]).pipe(res);
      },
    );
    const server = await listen(app);
    running.push(server);
    const d = await signed('{"type":"x"}');
    const answer = await send(`${server.url}/webhooks`, {
      headers: { ...d.headers, "idempotency-key": "k" },
      body: d.body,
    });
    expect([answer.status, answer.text]).toEqual([200, "streamed answer"]);
    expect(events.map((e) => e.type)).toEqual(expect.arrayContaining(["webhook.processed", "idempotency.released"]));
  });
});
