/**
 * AWS Lambda behind API Gateway: a Koa app wrapped by `serverless-http`, invoked with the events
 * API Gateway sends (REST API payload 1.0, HTTP API payload 2.0). The wrapper makes a Node
 * request whose stream holds the event's body (decoded from base64 or encoded from its text),
 * and also puts those bytes on `ctx.req.body` as a Buffer, and hands it to `app.callback()`.
 */
import { MemoryStore, standardWebhooks } from "@interlock/core";
import {
  AWKWARD_JSON,
  apiGatewayEvent,
  CLIENT_HEADERS,
  GATEWAY_BODIES,
  type GatewayAnswer,
  type GatewayRequest,
  gatewayAnswer,
  LateCompletingStore,
  lambdaContext,
  NOT_UTF8,
  type ProxyResult,
  recased,
  tampered,
} from "@interlock/test-harness/api-gateway";
import Koa, { type DefaultState, type Middleware } from "koa";
import serverless from "serverless-http";
import { describe, expect, it } from "vitest";
import { idempotency, type RawBodyContext, type WebhookState, webhook } from "../src/index.js";
import { koaBodyParser } from "./parsers.js";
import { delivery, newId, route, SECRET } from "./support.js";

const BINARY = "application/octet-stream";

/** The parsers an app may run before `idempotency()`: none (Interlock reads the body), or the README's. */
const PARSERS: Record<string, Middleware[]> = {
  "no body parser": [],
  "@koa/bodyparser before it": [koaBodyParser()],
};

for (const version of ["1.0", "2.0"] as const) {
  /** `app` as a Lambda handler, and a way to invoke it as API Gateway would with `version`'s events. */
  function lambda(app: Koa) {
    // A binary answer must go back base64-encoded: the wrapper does so for the types listed here.
    const handler = serverless(app, { binary: [BINARY] });
    return async (request: GatewayRequest): Promise<GatewayAnswer> => {
      const event = version === "1.0" ? apiGatewayEvent("1.0", request) : apiGatewayEvent("2.0", request);
      return gatewayAnswer((await handler(event, lambdaContext())) as ProxyResult);
    };
  }

  describe(`AWS Lambda, API Gateway payload ${version}, serverless-http: webhook()`, () => {
    function webhookLambda(failing: () => boolean = () => false, store: MemoryStore = new MemoryStore()) {
      const seen: Buffer[] = [];
      const app = new Koa();
      app.silent = true; // the route's throw is expected: Koa answers it 500 without logging it
      const handle: Middleware<WebhookState> = async (ctx) => {
        seen.push(Buffer.from(ctx.state.webhook.body));
        if (failing()) throw new Error("the database is down");
        ctx.body = { received: true };
      };
      app.use(route("POST", "/webhooks", webhook({ scheme: standardWebhooks, secret: SECRET, store }), handle));
      return { invoke: lambda(app), seen };
    }

    for (const { name, body, contentType, base64 } of GATEWAY_BODIES) {
      it(`${name}: verified on the exact bytes; tampered → 401; the duplicate not run again`, async () => {
        const fn = webhookLambda();
        const signed = await delivery(body, contentType);
        const request = (bytes: Uint8Array): GatewayRequest => ({
          path: "/webhooks",
          headers: [...CLIENT_HEADERS, ...recased(signed.headers)],
          body: bytes,
          base64,
        });
        const first = await fn.invoke(request(signed.body));
        expect([first.status, first.json()]).toEqual([200, { received: true }]);
        expect(fn.seen).toEqual([Buffer.from(body)]);
        const forged = await fn.invoke(request(tampered(signed.body)));
        expect([forged.status, (forged.json() as { code: string }).code]).toEqual([401, "no_matching_signature"]);
        const again = await fn.invoke(request(signed.body));
        expect([again.status, (again.json() as { duplicate: boolean }).duplicate]).toEqual([200, true]);
        expect(fn.seen).toHaveLength(1);
      });
    }

    it("a route that throws releases the delivery: the redelivery runs again, then is a duplicate", async () => {
      let fail = true;
      const fn = webhookLambda(() => fail);
      const signed = await delivery('{"type":"invoice.paid"}');
      const request = { path: "/webhooks", headers: Object.entries(signed.headers), body: signed.body };
      expect((await fn.invoke(request)).status).toBe(500);
      fail = false;
      expect((await fn.invoke(request)).status).toBe(200);
      expect((await fn.invoke(request)).status).toBe(200);
      expect(fn.seen).toHaveLength(2);
    });

    it("the delivery is recorded before the invocation returns (Lambda may freeze the instance right after)", async () => {
      const fn = webhookLambda(undefined, new LateCompletingStore());
      const signed = await delivery('{"type":"invoice.paid"}');
      const request = { path: "/webhooks", headers: Object.entries(signed.headers), body: signed.body };
      expect((await fn.invoke(request)).json()).toEqual({ received: true });
      expect((await fn.invoke(request)).json()).toMatchObject({ duplicate: true });
      expect(fn.seen).toHaveLength(1);
    });
  });

  for (const [parsers, before] of Object.entries(PARSERS)) {
    describe(`AWS Lambda, API Gateway payload ${version}, serverless-http: idempotency(), ${parsers}`, () => {
      function paymentsLambda(
        handle: Middleware<DefaultState, RawBodyContext>,
        store: MemoryStore = new MemoryStore(),
      ) {
        let runs = 0;
        const app = new Koa();
        app.silent = true;
        for (const parser of before) app.use(parser);
        app.use(
          route(
            "POST",
            "/payments",
            idempotency({ store, principal: (request) => request.context.get("x-api-key") }),
            (ctx, next) => {
              runs++;
              return handle(ctx, next);
            },
          ),
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

      it("the route gets the parsed body; the retry replays; the key with other bytes → 422", async () => {
        const fn = paymentsLambda((ctx) => {
          ctx.status = 201;
          ctx.body = { got: ctx.request.body };
        });
        const key = newId("key");
        const first = await fn.post(key, AWKWARD_JSON);
        expect([first.status, first.json()]).toEqual([201, { got: JSON.parse(AWKWARD_JSON) }]);
        const replay = await fn.post(key, AWKWARD_JSON);
        expect([replay.status, replay.headers["idempotent-replayed"], replay.text]).toEqual([201, "true", first.text]);
        expect((await fn.post(key, AWKWARD_JSON.replace("  ", " "))).status).toBe(422);
        expect(fn.runs()).toBe(1);
      });

      it("base64-encoded bytes are fingerprinted as sent, and a binary answer is replayed byte for byte", async () => {
        const fn = paymentsLambda(async (ctx) => {
          ctx.status = 201;
          ctx.type = BINARY;
          ctx.body = Buffer.from(ctx.request.rawBody).reverse();
        });
        const key = newId("key");
        const first = await fn.post(key, NOT_UTF8, BINARY, true);
        expect([first.status, [...first.body]]).toEqual([201, [...NOT_UTF8].reverse()]);
        const replay = await fn.post(key, NOT_UTF8, BINARY, true);
        expect([replay.status, replay.headers["idempotent-replayed"], [...replay.body]]).toEqual([
          201,
          "true",
          [...first.body],
        ]);
        expect((await fn.post(key, tampered(NOT_UTF8), BINARY, true)).status).toBe(422);
        expect(fn.runs()).toBe(1);
      });

      it("a route that throws releases the key: the client's retry runs again", async () => {
        let fail = true;
        const fn = paymentsLambda((ctx) => {
          if (fail) throw new Error("the database is down");
          ctx.status = 201;
          ctx.body = { id: "pay_1" };
        });
        const key = newId("key");
        expect((await fn.post(key, '{"amount":100}')).status).toBe(500);
        fail = false;
        expect((await fn.post(key, '{"amount":100}')).status).toBe(201);
        expect((await fn.post(key, '{"amount":100}')).headers["idempotent-replayed"]).toBe("true");
        expect(fn.runs()).toBe(2);
      });

      it("the response is recorded before the invocation returns (Lambda may freeze the instance right after)", async () => {
        const fn = paymentsLambda((ctx) => {
          ctx.status = 201;
          ctx.body = { id: "pay_1" };
        }, new LateCompletingStore());
        const key = newId("key");
        expect((await fn.post(key, "{}")).status).toBe(201);
        expect((await fn.post(key, "{}")).headers["idempotent-replayed"]).toBe("true");
      });
    });
  }
}
