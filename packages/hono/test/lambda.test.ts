/**
 * AWS Lambda behind API Gateway: a Hono app as the handler (`handle(app)` from
 * `hono/aws-lambda`), invoked with the events API Gateway sends (REST API payload 1.0, HTTP API
 * payload 2.0). `handle` makes a web `Request` from the event, its body decoded from base64 or
 * encoded from the event's text.
 */
import { MemoryStore, standardWebhooks } from "@interlock/core";
import {
  apiGatewayEvent,
  type GatewayAnswer,
  type GatewayRequest,
  gatewayAnswer,
  lambdaContext,
} from "@interlock/test-harness/api-gateway";
import { type Context, type Env, Hono } from "hono";
import { handle, type LambdaEvent } from "hono/aws-lambda";
import { describe, expect, it } from "vitest";
import { idempotency, type WebhookVariables, webhook } from "../src/index.js";
import { delivery, SECRET } from "./helpers.js";

// Formatting a JSON parser would not keep: key order, spacing, escapes, a trailing newline.
const AWKWARD_JSON = '{"z":1,  "a":"caf\\u00e9 é",\n "n":1.10e1}\n';
const NOT_UTF8 = new Uint8Array([0xff, 0xfe, 0x00, 0x80, 0x61, 0x7b, 0x22, 0xc3]);

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
function tampered(body: Uint8Array): Uint8Array {
  const bytes = body.slice();
  const at = bytes.findIndex((byte) => /[0-9a-z]/i.test(String.fromCharCode(byte)));
  bytes[at] = (bytes[at] ?? 0) ^ 1;
  return bytes;
}

const utf8 = new TextEncoder();

const bodies: Array<{ name: string; body: string | Uint8Array; contentType: string; base64: boolean }> = [
  { name: "awkwardly formatted JSON", body: AWKWARD_JSON, contentType: "application/json", base64: false },
  { name: "non-ASCII text", body: "naïve — ✓ ½", contentType: "text/plain; charset=utf-8", base64: false },
  { name: "base64-encoded bytes", body: NOT_UTF8, contentType: "application/octet-stream", base64: true },
];

/** Hono's own answer to a route that threw, as an app usually has one. */
const answerError = (error: Error, c: Context) => c.json({ error: error.message }, 500);

for (const version of ["1.0", "2.0"] as const) {
  /** `app` as a Lambda handler, and a way to invoke it as API Gateway would with `version`'s events. */
  function lambda<E extends Env>(app: Hono<E>) {
    const handler = handle(app);
    return async (request: GatewayRequest): Promise<GatewayAnswer> => {
      const event = version === "1.0" ? apiGatewayEvent("1.0", request) : apiGatewayEvent("2.0", request);
      // Hono types its events more narrowly than AWS's (no `null` query parameters, which a
      // REST API sends for a request without any); it reads them as sent.
      return gatewayAnswer(await handler(event as unknown as LambdaEvent, lambdaContext()));
    };
  }

  describe(`AWS Lambda, API Gateway payload ${version}, hono/aws-lambda: webhook()`, () => {
    function webhookLambda(failing: () => boolean = () => false) {
      const seen: Uint8Array[] = [];
      const app = new Hono<{ Variables: WebhookVariables }>();
      app.onError(answerError);
      app.post("/webhooks", webhook({ scheme: standardWebhooks, secret: SECRET, store: new MemoryStore() }), (c) => {
        seen.push(c.get("webhook").body);
        if (failing()) throw new Error("the database is down");
        return c.json({ received: true });
      });
      return { invoke: lambda(app), seen };
    }

    for (const { name, body, contentType, base64 } of bodies) {
      it(`${name}: verified on the exact bytes; tampered → 401; the duplicate not run again`, async () => {
        const fn = webhookLambda();
        const signed = await delivery(body);
        const request = (bytes: Uint8Array): GatewayRequest => ({
          path: "/webhooks",
          headers: [...CLIENT_HEADERS, ["Content-Type", contentType], ...recased(signed.headers)],
          body: bytes,
          base64,
        });
        const first = await fn.invoke(request(signed.body));
        expect([first.status, first.json()]).toEqual([200, { received: true }]);
        expect(fn.seen).toEqual([typeof body === "string" ? utf8.encode(body) : body]);
        expect((await fn.invoke(request(tampered(signed.body)))).status).toBe(401);
        expect((await fn.invoke(request(signed.body))).status).toBe(200);
        expect(fn.seen).toHaveLength(1);
      });
    }

    it("a route that throws releases the delivery: the redelivery runs again, then is a duplicate", async () => {
      let fail = true;
      const fn = webhookLambda(() => fail);
      const signed = await delivery('{"type":"invoice.paid"}');
      const request = {
        path: "/webhooks",
        headers: [["content-type", "application/json"], ...Object.entries(signed.headers)] as Array<[string, string]>,
        body: signed.body,
      };
      expect((await fn.invoke(request)).status).toBe(500);
      fail = false;
      expect((await fn.invoke(request)).status).toBe(200);
      expect((await fn.invoke(request)).status).toBe(200);
      expect(fn.seen).toHaveLength(2);
    });
  });

  describe(`AWS Lambda, API Gateway payload ${version}, hono/aws-lambda: idempotency()`, () => {
    let sequence = 0;
    const newKey = () => `lambda-${Date.now().toString(36)}-${++sequence}`;

    function paymentsLambda(route: (c: Context) => Response | Promise<Response>, store = new MemoryStore()) {
      let runs = 0;
      const app = new Hono();
      app.onError(answerError);
      app.post(
        "/payments",
        idempotency({ store, principal: (request) => request.context.req.header("x-api-key") }),
        async (c) => {
          runs++;
          return route(c);
        },
      );
      const invoke = lambda(app);
      const post = (key: string, body: string | Uint8Array, contentType = "application/json", base64 = false) =>
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

    it("the route reads the body; the retry replays; the key with other bytes → 422", async () => {
      const fn = paymentsLambda(async (c) => c.json({ got: await c.req.json() }, 201));
      const key = newKey();
      const first = await fn.post(key, AWKWARD_JSON);
      expect([first.status, first.json()]).toEqual([201, { got: JSON.parse(AWKWARD_JSON) }]);
      const replay = await fn.post(key, AWKWARD_JSON);
      expect([replay.status, replay.headers["idempotent-replayed"], replay.text]).toEqual([201, "true", first.text]);
      expect((await fn.post(key, AWKWARD_JSON.replace("  ", " "))).status).toBe(422);
      expect(fn.runs()).toBe(1);
    });

    it("base64-encoded bytes are fingerprinted as sent, and a binary answer is replayed byte for byte", async () => {
      const fn = paymentsLambda(async (c) =>
        c.body(new Uint8Array(await c.req.arrayBuffer()).reverse(), 201, {
          "content-type": "application/octet-stream",
        }),
      );
      const key = newKey();
      const first = await fn.post(key, NOT_UTF8, "application/octet-stream", true);
      expect([first.status, [...first.body]]).toEqual([201, [...NOT_UTF8].reverse()]);
      const replay = await fn.post(key, NOT_UTF8, "application/octet-stream", true);
      expect([replay.status, replay.headers["idempotent-replayed"], [...replay.body]]).toEqual([
        201,
        "true",
        [...first.body],
      ]);
      expect((await fn.post(key, tampered(NOT_UTF8), "application/octet-stream", true)).status).toBe(422);
      expect(fn.runs()).toBe(1);
    });

    it("a route that throws releases the key: the client's retry runs again", async () => {
      let fail = true;
      const fn = paymentsLambda((c) => {
        if (fail) throw new Error("the database is down");
        return c.json({ id: "pay_1" }, 201);
      });
      const key = newKey();
      expect((await fn.post(key, '{"amount":100}')).status).toBe(500);
      fail = false;
      expect((await fn.post(key, '{"amount":100}')).status).toBe(201);
      expect((await fn.post(key, '{"amount":100}')).headers["idempotent-replayed"]).toBe("true");
      expect(fn.runs()).toBe(2);
    });

    it("the response is recorded before the invocation returns (Lambda may freeze the instance right after)", async () => {
      const fn = paymentsLambda((c) => c.json({ id: "pay_1" }, 201), new SlowMemoryStore(50));
      const key = newKey();
      expect((await fn.post(key, "{}")).status).toBe(201);
      expect((await fn.post(key, "{}")).headers["idempotent-replayed"]).toBe("true");
    });
  });
}

/** A memory store whose `complete` answers late, like one across a network. */
class SlowMemoryStore extends MemoryStore {
  constructor(private readonly delayMs: number) {
    super();
  }
  override async complete(...args: Parameters<MemoryStore["complete"]>) {
    await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    return super.complete(...args);
  }
}
