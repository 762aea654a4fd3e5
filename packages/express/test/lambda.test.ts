/**
 * AWS Lambda behind API Gateway: an Express app wrapped by `@codegenie/serverless-express` or
 * `serverless-http`, invoked with the events API Gateway sends (REST API payload 1.0, HTTP API
 * payload 2.0). Both turn an event into a request whose stream holds the event's body, and
 * also put those bytes on `req.body` as a Buffer before any parser runs.
 */
import serverlessExpress from "@codegenie/serverless-express";
import { MemoryStore, standardWebhooks } from "@interlock/core";
import {
  apiGatewayEvent,
  type GatewayAnswer,
  type GatewayRequest,
  gatewayAnswer,
  lambdaContext,
  type ProxyResult,
} from "@interlock/test-harness/api-gateway";
import express, { type ErrorRequestHandler, type RequestHandler } from "express";
import serverless from "serverless-http";
import { describe, expect, it } from "vitest";
import { captureRawBody, idempotency, releaseOnError, webhook } from "../src/index.js";
import { asyncRoute } from "./framework.js";
import { SECRET, SlowStore, signed } from "./helpers.js";

const answerError: ErrorRequestHandler = (error, _req, res, _next) => {
  res.status(500).json({ error: (error as Error).message });
};

type LambdaHandler = (event: unknown, context: ReturnType<typeof lambdaContext>) => Promise<unknown>;

/** The two common ways to make an Express app a Lambda handler. */
const wrappers: Record<string, (app: express.Express) => LambdaHandler> = {
  "@codegenie/serverless-express": (app) => {
    const handler = serverlessExpress({ app });
    return (event, context) => handler(event, context, () => {}) as Promise<unknown>;
  },
  "serverless-http": (app) => serverless(app) as LambdaHandler,
};

for (const [wrapper, wrap] of Object.entries(wrappers)) {
  for (const version of ["1.0", "2.0"] as const) {
    describe(`AWS Lambda, API Gateway payload ${version}, ${wrapper}`, () => {
      hostTests((app) => {
        const handler = wrap(app);
        return async (request: GatewayRequest): Promise<GatewayAnswer> => {
          const event = version === "1.0" ? apiGatewayEvent("1.0", request) : apiGatewayEvent("2.0", request);
          return gatewayAnswer((await handler(event, lambdaContext())) as ProxyResult);
        };
      });
    });
  }
}

// Formatting a JSON parser would not keep: key order, spacing, escapes, a trailing newline.
const AWKWARD_JSON = '{"z":1,  "a":"caf\\u00e9 é",\n "n":1.10e1}\n';
const NOT_UTF8 = Buffer.from([0xff, 0xfe, 0x00, 0x80, 0x61, 0x7b, 0x22, 0xc3]);

/** Headers every request carries: repeated ones (API Gateway's multi-value headers) among them. */
const CLIENT_HEADERS: Array<[string, string]> = [
  ["Host", "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com"],
  ["User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)"],
  ["Accept", "application/json"],
  ["Accept", "*/*"],
  ["X-Forwarded-For", "203.0.113.9"],
  ["X-Forwarded-For", "198.51.100.7"],
];

/** Header names cased as a client may send them: API Gateway 1.0 passes them on so. */
function recased(headers: Record<string, string>): Array<[string, string]> {
  return Object.entries(headers).map(([name, value], index) => [
    index % 2 === 0 ? name.toUpperCase() : name.replace(/(^|-)([a-z])/g, (_, dash, c) => dash + c.toUpperCase()),
    value,
  ]);
}

/** The bytes with one letter or digit changed: still well-formed, only the signature can tell. */
function tampered(body: Uint8Array): Buffer {
  const bytes = Buffer.from(body);
  const at = bytes.findIndex((byte) => /[0-9a-z]/i.test(String.fromCharCode(byte)));
  bytes[at] = (bytes[at] ?? 0) ^ 1;
  return bytes;
}

const bodies: Array<{ name: string; body: string | Buffer; contentType: string; base64: boolean }> = [
  { name: "awkwardly formatted JSON", body: AWKWARD_JSON, contentType: "application/json", base64: false },
  { name: "non-ASCII text", body: "naïve — ✓ ½", contentType: "text/plain; charset=utf-8", base64: false },
  { name: "base64-encoded bytes", body: NOT_UTF8, contentType: "application/octet-stream", base64: true },
];

/** The Lambda handler for an app, as a function of what API Gateway is asked. */
type Invoker = (app: express.Express) => (request: GatewayRequest) => Promise<GatewayAnswer>;

function hostTests(lambda: Invoker) {
  describe("webhook()", () => {
    function webhookLambda(failing: () => boolean = () => false) {
      const seen: Buffer[] = [];
      const app = express();
      app.post(
        "/webhooks",
        webhook({ scheme: standardWebhooks, secret: SECRET, store: new MemoryStore() }),
        asyncRoute(async (req, res) => {
          seen.push(Buffer.from(req.webhook!.body));
          if (failing()) throw new Error("the database is down");
          res.json({ received: true });
        }),
      );
      app.use(releaseOnError);
      app.use(answerError);
      return { invoke: lambda(app), seen };
    }

    for (const { name, body, contentType, base64 } of bodies) {
      it(`${name}: verified on the exact bytes; tampered → 401; the duplicate not run again`, async () => {
        const fn = webhookLambda();
        const delivery = await signed(body, contentType);
        const request = (bytes: Uint8Array): GatewayRequest => ({
          path: "/webhooks",
          headers: [...CLIENT_HEADERS, ...recased(delivery.headers)],
          body: bytes,
          base64,
        });
        const first = await fn.invoke(request(delivery.body));
        expect([first.status, first.json()]).toEqual([200, { received: true }]);
        expect(fn.seen).toEqual([Buffer.from(body)]);
        expect((await fn.invoke(request(tampered(delivery.body)))).status).toBe(401);
        expect((await fn.invoke(request(delivery.body))).status).toBe(200);
        expect(fn.seen).toHaveLength(1);
      });
    }

    it("a route that throws releases the delivery: the redelivery runs again, then is a duplicate", async () => {
      let fail = true;
      const fn = webhookLambda(() => fail);
      const delivery = await signed('{"type":"invoice.paid"}');
      const request = { path: "/webhooks", headers: Object.entries(delivery.headers), body: delivery.body };
      expect((await fn.invoke(request)).status).toBe(500);
      fail = false;
      expect((await fn.invoke(request)).status).toBe(200);
      expect((await fn.invoke(request)).status).toBe(200);
      expect(fn.seen).toHaveLength(2);
    });
  });

  describe("idempotency()", () => {
    let sequence = 0;
    const newKey = () => `lambda-${Date.now().toString(36)}-${++sequence}`;

    function paymentsLambda(route: RequestHandler, store = new MemoryStore()) {
      let runs = 0;
      const app = express();
      app.post(
        "/payments",
        idempotency({ store, principal: (request) => request.context.get("x-api-key") }),
        asyncRoute(async (req, res, next) => {
          runs++;
          return route(req, res, next);
        }),
      );
      app.use(releaseOnError);
      app.use(answerError);
      const invoke = lambda(app);
      const post = (key: string, body: string | Buffer, contentType = "application/json", base64 = false) =>
        invoke({
          path: "/payments",
          headers: [
            ...CLIENT_HEADERS,
            ["Content-Type", contentType],
            ["X-Api-Key", "client-a"],
            ["IDEMPOTENCY-KEY", key],
          ],
          body,
          base64,
        });
      return { post, runs: () => runs };
    }

    it("the route gets the parsed body; the retry replays; the key with other bytes → 422", async () => {
      const fn = paymentsLambda((req, res) => void res.status(201).json({ got: req.body }));
      const key = newKey();
      const first = await fn.post(key, AWKWARD_JSON);
      expect([first.status, first.json()]).toEqual([201, { got: JSON.parse(AWKWARD_JSON) }]);
      const replay = await fn.post(key, AWKWARD_JSON);
      expect([replay.status, replay.headers["idempotent-replayed"], replay.text]).toEqual([201, "true", first.text]);
      expect((await fn.post(key, AWKWARD_JSON.replace("  ", " "))).status).toBe(422);
      expect(fn.runs()).toBe(1);
    });

    it("base64-encoded bytes are fingerprinted as sent: replayed, and 422 for other bytes", async () => {
      const fn = paymentsLambda((req, res) => void res.status(201).json({ bytes: (req.body as Buffer).length }));
      const key = newKey();
      const first = await fn.post(key, NOT_UTF8, "application/octet-stream", true);
      expect([first.status, first.json()]).toEqual([201, { bytes: NOT_UTF8.length }]);
      const replay = await fn.post(key, NOT_UTF8, "application/octet-stream", true);
      expect([replay.status, replay.headers["idempotent-replayed"]]).toEqual([201, "true"]);
      expect((await fn.post(key, tampered(NOT_UTF8), "application/octet-stream", true)).status).toBe(422);
      expect(fn.runs()).toBe(1);
    });

    it("a route that throws releases the key: the client's retry runs again", async () => {
      let fail = true;
      const fn = paymentsLambda((_req, res) => {
        if (fail) throw new Error("the database is down");
        res.status(201).json({ id: "pay_1" });
      });
      const key = newKey();
      expect((await fn.post(key, '{"amount":100}')).status).toBe(500);
      fail = false;
      expect((await fn.post(key, '{"amount":100}')).status).toBe(201);
      expect((await fn.post(key, '{"amount":100}')).headers["idempotent-replayed"]).toBe("true");
      expect(fn.runs()).toBe(2);
    });

    it("after a middleware that awaits: the route still gets the parsed body; a malformed one is the parser's 400", async () => {
      // serverless-express marks the request stream unreadable once the app's first synchronous
      // pass returns: the parsers read the bytes it put on req.body instead.
      const lookUp = () => new Promise((resolve) => setImmediate(resolve)); // an authentication lookup, say
      const app = express();
      app.post(
        "/payments",
        asyncRoute(async (_req, _res, next) => {
          await lookUp();
          next();
        }),
        idempotency({ store: new MemoryStore(), principal: false }),
        (req, res) => void res.status(201).json({ got: req.body }),
      );
      app.use(((error, _req, res, _next) => {
        res.status(error.status ?? 500).json({ type: error.type });
      }) as ErrorRequestHandler);
      const invoke = lambda(app);
      const post = (key: string, body: string, contentType: string) =>
        invoke({
          path: "/payments",
          headers: [
            ["Content-Type", contentType],
            ["Idempotency-Key", key],
          ],
          body,
        });
      for (const [body, contentType, parsed] of [
        [AWKWARD_JSON, "application/json", JSON.parse(AWKWARD_JSON)],
        ["amount=4200&currency=eur", "application/x-www-form-urlencoded", { amount: "4200", currency: "eur" }],
        ["naïve — ✓ ½", "text/plain; charset=utf-8", "naïve — ✓ ½"],
      ] as const) {
        const key = newKey();
        const first = await post(key, body, contentType);
        expect([first.status, first.json()]).toEqual([201, { got: parsed }]);
        expect((await post(key, body, contentType)).headers["idempotent-replayed"]).toBe("true");
        expect((await post(key, `${body} `, contentType)).status).toBe(422);
      }
      const malformed = await post(newKey(), '{"amount":', "application/json");
      expect([malformed.status, malformed.json()]).toEqual([400, { type: "entity.parse.failed" }]);
    });

    it("the guide's app (a parser with captureRawBody first): parsed bodies with a key or without, deliveries verified", async () => {
      const app = express();
      app.use(express.json({ verify: captureRawBody }));
      app.post(
        "/webhooks",
        webhook({ scheme: standardWebhooks, secret: SECRET, store: new MemoryStore() }),
        (req, res) => void res.json({ received: req.webhook!.body.length, parsed: req.body }),
      );
      app.post(
        "/payments",
        asyncRoute(async (_req, _res, next) => {
          await new Promise((resolve) => setImmediate(resolve));
          next();
        }),
        idempotency({ store: new MemoryStore(), principal: false }),
        (req, res) => void res.status(201).json({ got: req.body }),
      );
      const invoke = lambda(app);
      for (const headers of [[], [["Idempotency-Key", newKey()]]] as Array<Array<[string, string]>>) {
        const answer = await invoke({
          path: "/payments",
          headers: [["Content-Type", "application/json"], ...headers],
          body: AWKWARD_JSON,
        });
        expect([answer.status, answer.json()]).toEqual([201, { got: JSON.parse(AWKWARD_JSON) }]);
      }
      const delivery = await signed(AWKWARD_JSON);
      const received = await invoke({
        path: "/webhooks",
        headers: Object.entries(delivery.headers),
        body: delivery.body,
      });
      expect([received.status, received.json()]).toEqual([
        200,
        { received: Buffer.byteLength(AWKWARD_JSON), parsed: JSON.parse(AWKWARD_JSON) },
      ]);
    });

    it("the response is recorded before the invocation returns (Lambda may freeze the instance right after)", async () => {
      const fn = paymentsLambda((_req, res) => void res.status(201).json({ id: "pay_1" }), new SlowStore(50));
      const key = newKey();
      expect((await fn.post(key, "{}")).status).toBe(201);
      expect((await fn.post(key, "{}")).headers["idempotent-replayed"]).toBe("true");
    });
  });
}
