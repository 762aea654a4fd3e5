/**
 * AWS Lambda behind API Gateway: a Fastify app wrapped by `@fastify/aws-lambda`, invoked with
 * the events API Gateway sends (REST API payload 1.0, HTTP API payload 2.0). The wrapper replays
 * each event through `app.inject()`: the payload is the event's body, decoded from base64 or
 * encoded from its text, and Fastify reads it as the stream of any request.
 */
import awsLambdaFastify from "@fastify/aws-lambda";
import { type MemoryStore, memoryStore, signWebhook, standardWebhooks } from "@interlock/core";
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
  recased,
  tampered,
} from "@interlock/test-harness/api-gateway";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { describe, expect, it } from "vitest";
import { idempotency, interlock, webhook } from "../src/index.js";

const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const BINARY = "application/octet-stream";
let sequence = 0;
const newId = (label: string) => `${label}_${Date.now().toString(36)}_${++sequence}`;

async function signed(body: string | Uint8Array, contentType: string) {
  const delivery = await signWebhook({ scheme: standardWebhooks, secret: SECRET, body, id: newId("msg") });
  return { headers: { ...delivery.headers, "content-type": contentType }, body: Buffer.from(delivery.body) };
}

/** An app as the README sets one up: the plugin registered, and awaited, before the routes. */
async function newApp(routes: (app: FastifyInstance) => void): Promise<FastifyInstance> {
  const app = Fastify();
  await app.register(interlock);
  // Fastify parses JSON and text; binary bodies need a parser of the app's own, as on a server.
  app.addContentTypeParser(BINARY, { parseAs: "buffer" }, (_request, body, done) => done(null, body));
  routes(app);
  return app;
}

for (const version of ["1.0", "2.0"] as const) {
  /** `app` as a Lambda handler, and a way to invoke it as API Gateway would with `version`'s events. */
  function lambda(app: FastifyInstance) {
    // A binary answer must go back base64-encoded: the wrapper does so for the types listed here.
    const handler = awsLambdaFastify(app, { binaryMimeTypes: [BINARY] });
    return async (request: GatewayRequest): Promise<GatewayAnswer> => {
      const event = version === "1.0" ? apiGatewayEvent("1.0", request) : apiGatewayEvent("2.0", request);
      return gatewayAnswer(await handler(event, lambdaContext()));
    };
  }

  describe(`AWS Lambda, API Gateway payload ${version}, @fastify/aws-lambda: webhook()`, () => {
    async function webhookLambda(failing: () => boolean = () => false, store: MemoryStore = memoryStore()) {
      const seen: Buffer[] = [];
      const app = await newApp((app) => {
        const hooks = webhook({ scheme: standardWebhooks, secret: SECRET, store });
        app.post("/webhooks", { config: { interlock: hooks } }, async (request) => {
          seen.push(Buffer.from(request.webhook.body));
          if (failing()) throw new Error("the database is down");
          return { received: true };
        });
      });
      return { invoke: lambda(app), seen };
    }

    for (const { name, body, contentType, base64 } of GATEWAY_BODIES) {
      it(`${name}: verified on the exact bytes; tampered → 401; the duplicate not run again`, async () => {
        const fn = await webhookLambda();
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
        const forged = await fn.invoke(request(tampered(delivery.body)));
        expect([forged.status, (forged.json() as { code: string }).code]).toEqual([401, "no_matching_signature"]);
        const again = await fn.invoke(request(delivery.body));
        expect([again.status, (again.json() as { duplicate: boolean }).duplicate]).toEqual([200, true]);
        expect(fn.seen).toHaveLength(1);
      });
    }

    it("a route that throws releases the delivery: the redelivery runs again, then is a duplicate", async () => {
      let fail = true;
      const fn = await webhookLambda(() => fail);
      const delivery = await signed('{"type":"invoice.paid"}', "application/json");
      const request = { path: "/webhooks", headers: Object.entries(delivery.headers), body: delivery.body };
      expect((await fn.invoke(request)).status).toBe(500);
      fail = false;
      expect((await fn.invoke(request)).status).toBe(200);
      expect((await fn.invoke(request)).status).toBe(200);
      expect(fn.seen).toHaveLength(2);
    });

    it("the delivery is recorded before the invocation returns (Lambda may freeze the instance right after)", async () => {
      const fn = await webhookLambda(undefined, new LateCompletingStore());
      const delivery = await signed('{"type":"invoice.paid"}', "application/json");
      const request = { path: "/webhooks", headers: Object.entries(delivery.headers), body: delivery.body };
      expect((await fn.invoke(request)).json()).toEqual({ received: true });
      expect((await fn.invoke(request)).json()).toMatchObject({ duplicate: true });
      expect(fn.seen).toHaveLength(1);
    });
  });

  describe(`AWS Lambda, API Gateway payload ${version}, @fastify/aws-lambda: idempotency()`, () => {
    type Route = (request: FastifyRequest, reply: FastifyReply) => unknown;

    async function paymentsLambda(route: Route, store: MemoryStore = memoryStore()) {
      let runs = 0;
      const app = await newApp((app) => {
        const payments = idempotency({
          store,
          principal: (request) => request.context.headers["x-api-key"] as string | undefined,
        });
        app.post("/payments", { config: { interlock: payments } }, async (request, reply) => {
          runs++;
          return route(request, reply);
        });
      });
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
      const fn = await paymentsLambda((request, reply) => reply.code(201).send({ got: request.body }));
      const key = newId("key");
      const first = await fn.post(key, AWKWARD_JSON);
      expect([first.status, first.json()]).toEqual([201, { got: JSON.parse(AWKWARD_JSON) }]);
      const replay = await fn.post(key, AWKWARD_JSON);
      expect([replay.status, replay.headers["idempotent-replayed"], replay.text]).toEqual([201, "true", first.text]);
      expect((await fn.post(key, AWKWARD_JSON.replace("  ", " "))).status).toBe(422);
      expect(fn.runs()).toBe(1);
    });

    it("base64-encoded bytes are fingerprinted as sent, and a binary answer is replayed byte for byte", async () => {
      const fn = await paymentsLambda((request, reply) =>
        reply
          .code(201)
          .type(BINARY)
          .send(Buffer.from(request.body as Buffer).reverse()),
      );
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
      const fn = await paymentsLambda((_request, reply) => {
        if (fail) throw new Error("the database is down");
        return reply.code(201).send({ id: "pay_1" });
      });
      const key = newId("key");
      expect((await fn.post(key, '{"amount":100}')).status).toBe(500);
      fail = false;
      expect((await fn.post(key, '{"amount":100}')).status).toBe(201);
      expect((await fn.post(key, '{"amount":100}')).headers["idempotent-replayed"]).toBe("true");
      expect(fn.runs()).toBe(2);
    });

    it("the response is recorded before the invocation returns (Lambda may freeze the instance right after)", async () => {
      const fn = await paymentsLambda(
        (_request, reply) => reply.code(201).send({ id: "pay_1" }),
        new LateCompletingStore(),
      );
      const key = newId("key");
      expect((await fn.post(key, "{}")).status).toBe(201);
      expect((await fn.post(key, "{}")).headers["idempotent-replayed"]).toBe("true");
    });
  });
}
