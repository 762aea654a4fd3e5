/**
 * The rows every adapter passes on AWS Lambda behind API Gateway, with both payload formats
 * (REST API 1.0, HTTP API 2.0). An adapter's test supplies a `LambdaHost`, which builds the same
 * small app on its framework and wraps it the way that framework runs on Lambda:
 *
 * - `POST /webhooks`: `webhook(options.webhook)`, then a route that calls
 *   `work.webhook(<the verified bytes>)` and answers 200 `{"received": true}`;
 * - `POST /payments`: `idempotency({ ...options.idempotency, principal })` with a principal read
 *   from the `x-api-key` header, then a route that answers what `work.payment(body)` returns:
 *   its status with its JSON, or with its bytes as `BINARY_TYPE`;
 * - a thrown error from either route answered 500 (the framework's own way).
 *
 * The handler is invoked with the events API Gateway sends and its result read as API Gateway
 * reads it (see `api-gateway.ts`), so each row checks what a client would get.
 */
import { gzipSync } from "node:zlib";
import {
  type IdempotencyOptions,
  type MemoryStore,
  memoryStore,
  signWebhook,
  standardWebhooks,
  type WebhookReceiverOptions,
} from "@interlock/core";
import type { APIGatewayProxyEvent, APIGatewayProxyEventV2, Context } from "aws-lambda";
import { describe, expect, it } from "vitest";
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
} from "./api-gateway.js";
import { SUITE_SECRET } from "./suite-app.js";

/** The content type the binary rows send and answer with: a wrapper must list it as binary. */
export const BINARY_TYPE = "application/octet-stream";

/** How the payments route reads the request body, each the framework's usual way. */
export interface LambdaRouteBody {
  /** The body parsed as JSON (by the framework, `idempotency()` or the route), or a promise of it. */
  json(): unknown;
  /** The body's bytes, as the route gets them for a binary type. */
  bytes(): Uint8Array | Promise<Uint8Array>;
}

/** What the payments route answers: a status with JSON, or with bytes of `BINARY_TYPE`. */
export type LambdaPaymentAnswer = { status: number; json: unknown } | { status: number; bytes: Uint8Array };

/** The work behind the app's two routes, swapped by each row. */
export interface LambdaRouteWork {
  /** The webhook route's work, given the verified bytes. Throwing makes the app answer 500. */
  webhook(verifiedBody: Uint8Array): void;
  /** The payments route's work, given its body. Throwing makes the app answer 500. */
  payment(body: LambdaRouteBody): Promise<LambdaPaymentAnswer>;
}

/** What `LambdaHost.handler` builds the app with. */
export interface LambdaAppOptions {
  /** The adapter's webhook middleware options. */
  webhook: WebhookReceiverOptions;
  /** The adapter's idempotency middleware options, less `principal`, which reads `x-api-key`. */
  idempotency: Omit<IdempotencyOptions, "principal">;
  /** The routes' work. */
  work: LambdaRouteWork;
}

/** A Lambda handler as the wrappers type theirs, loosely: each declares its own result type. */
export type LambdaHandler = (
  event: APIGatewayProxyEvent | APIGatewayProxyEventV2,
  context: Context,
) => Promise<unknown>;

/** How an adapter runs on Lambda: builds the app (see the module's comment) and wraps it. */
export interface LambdaHost {
  /** The Lambda handler for a new app built with `options`. */
  handler(options: LambdaAppOptions): LambdaHandler | Promise<LambdaHandler>;
}

const VERSIONS = ["1.0", "2.0"] as const;
let sequence = 0;
const newId = (label: string) => `${label}_lambda_${Date.now().toString(36)}_${++sequence}`;

/** A Standard Webhooks delivery of `body`, signed now with the app's secret. */
async function signed(body: string | Uint8Array, contentType = "application/json") {
  const delivery = await signWebhook({ scheme: standardWebhooks, secret: SUITE_SECRET, body, id: newId("msg") });
  return { headers: { ...delivery.headers, "content-type": contentType }, body: Buffer.from(delivery.body) };
}

const received = { received: true };
/** The route work no row exercises: a webhook that only records, a payment that answers 201. */
const idle: LambdaRouteWork = {
  webhook: () => {},
  payment: async () => ({ status: 201, json: { id: "pay_1" } }),
};

/** An app built by `host` for one row, and a way to invoke it as API Gateway would with `version`'s events. */
async function lambda(
  host: LambdaHost,
  version: (typeof VERSIONS)[number],
  store: MemoryStore,
  work: LambdaRouteWork,
  idempotency: Omit<IdempotencyOptions, "principal" | "store"> = {},
) {
  const handler = await host.handler({
    webhook: { scheme: standardWebhooks, secret: SUITE_SECRET, store },
    idempotency: { ...idempotency, store },
    work,
  });
  return async (request: GatewayRequest): Promise<GatewayAnswer> => {
    const event = version === "1.0" ? apiGatewayEvent("1.0", request) : apiGatewayEvent("2.0", request);
    return gatewayAnswer((await handler(event, lambdaContext())) as ProxyResult);
  };
}

/** `webhook()` on Lambda, per payload format: exact bytes, tampered 401, duplicates, release, recorded in time. */
export function describeLambdaWebhookRows(wrapper: string, host: LambdaHost): void {
  for (const version of VERSIONS) {
    describe(`AWS Lambda, API Gateway payload ${version}, ${wrapper}: webhook()`, () => {
      async function webhookLambda(failing: () => boolean = () => false, store: MemoryStore = memoryStore()) {
        const seen: Buffer[] = [];
        const record = (bytes: Uint8Array) => {
          seen.push(Buffer.from(bytes));
          if (failing()) throw new Error("the database is down");
        };
        return { invoke: await lambda(host, version, store, { ...idle, webhook: record }), seen };
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
          expect([first.status, first.json()]).toEqual([200, received]);
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
        const delivery = await signed('{"type":"invoice.paid"}');
        const request = { path: "/webhooks", headers: Object.entries(delivery.headers), body: delivery.body };
        expect((await fn.invoke(request)).status).toBe(500);
        fail = false;
        expect((await fn.invoke(request)).status).toBe(200);
        expect((await fn.invoke(request)).status).toBe(200);
        expect(fn.seen).toHaveLength(2);
      });

      it("the delivery is recorded before the invocation returns (Lambda may freeze the instance right after)", async () => {
        const fn = await webhookLambda(undefined, new LateCompletingStore());
        const delivery = await signed('{"type":"invoice.paid"}');
        const request = { path: "/webhooks", headers: Object.entries(delivery.headers), body: delivery.body };
        expect((await fn.invoke(request)).json()).toEqual(received);
        expect((await fn.invoke(request)).json()).toMatchObject({ duplicate: true });
        expect(fn.seen).toHaveLength(1);
      });
    });
  }
}

/** `idempotency()` on Lambda, per payload format: replay (JSON and binary), 422, release, recorded in time. */
export function describeLambdaIdempotencyRows(wrapper: string, host: LambdaHost): void {
  for (const version of VERSIONS) {
    describe(`AWS Lambda, API Gateway payload ${version}, ${wrapper}: idempotency()`, () => {
      async function paymentsLambda(
        payment: LambdaRouteWork["payment"],
        store: MemoryStore = memoryStore(),
        idempotency: Omit<IdempotencyOptions, "principal" | "store"> = {},
      ) {
        let runs = 0;
        const counted: LambdaRouteWork["payment"] = (body) => {
          runs++;
          return payment(body);
        };
        const invoke = await lambda(host, version, store, { ...idle, payment: counted }, idempotency);
        const post = (
          key: string,
          body: string | Uint8Array,
          contentType = "application/json",
          base64 = false,
          extra: Array<[string, string]> = [],
        ) =>
          invoke({
            path: "/payments",
            headers: [
              ...CLIENT_HEADERS,
              ["Content-Type", contentType],
              ["X-Api-Key", "client-a"],
              ["IDEMPOTENCY-KEY", key],
              ...extra,
            ],
            body,
            base64,
          });
        return { post, runs: () => runs };
      }

      it("the route gets the parsed body; the retry replays; the key with other bytes → 422", async () => {
        const fn = await paymentsLambda(async (body) => ({ status: 201, json: { got: await body.json() } }));
        const key = newId("key");
        const first = await fn.post(key, AWKWARD_JSON);
        expect([first.status, first.json()]).toEqual([201, { got: JSON.parse(AWKWARD_JSON) }]);
        const replay = await fn.post(key, AWKWARD_JSON);
        expect([replay.status, replay.headers["idempotent-replayed"], replay.text]).toEqual([201, "true", first.text]);
        expect((await fn.post(key, AWKWARD_JSON.replace("  ", " "))).status).toBe(422);
        expect(fn.runs()).toBe(1);
      });

      it("base64-encoded bytes are fingerprinted as sent, and a binary answer is replayed byte for byte", async () => {
        const fn = await paymentsLambda(async (body) => ({
          status: 201,
          bytes: Buffer.from(await body.bytes()).reverse(),
        }));
        const key = newId("key");
        const first = await fn.post(key, NOT_UTF8, BINARY_TYPE, true);
        expect([first.status, [...first.body]]).toEqual([201, [...NOT_UTF8].reverse()]);
        const replay = await fn.post(key, NOT_UTF8, BINARY_TYPE, true);
        expect([replay.status, replay.headers["idempotent-replayed"], [...replay.body]]).toEqual([
          201,
          "true",
          [...first.body],
        ]);
        expect((await fn.post(key, tampered(NOT_UTF8), BINARY_TYPE, true)).status).toBe(422);
        expect(fn.runs()).toBe(1);
      });

      it("a gzip body (base64, Content-Encoding: gzip) is decoded: the route gets the payload, and the same JSON sent plain replays it", async () => {
        const fn = await paymentsLambda(async (body) => ({ status: 201, json: { got: await body.json() } }));
        const key = newId("key");
        const json = JSON.stringify({ amount: 48 });
        const first = await fn.post(key, gzipSync(json), "application/json", true, [["Content-Encoding", "gzip"]]);
        expect([first.status, first.json()]).toEqual([201, { got: { amount: 48 } }]);
        const plain = await fn.post(key, json);
        expect([plain.status, plain.headers["idempotent-replayed"], plain.text]).toEqual([201, "true", first.text]);
        expect(fn.runs()).toBe(1);
      });

      it("a route that throws releases the key: the client's retry runs again", async () => {
        let fail = true;
        // Every answer stored, the 500 included: only the throw itself can release the key, not
        // the 500 the framework answers it with (which the default policy releases on its own).
        const fn = await paymentsLambda(
          async () => {
            if (fail) throw new Error("the database is down");
            return { status: 201, json: { id: "pay_1" } };
          },
          memoryStore(),
          { cache: "all" },
        );
        const key = newId("key");
        expect((await fn.post(key, '{"amount":100}')).status).toBe(500);
        fail = false;
        expect((await fn.post(key, '{"amount":100}')).status).toBe(201);
        expect((await fn.post(key, '{"amount":100}')).headers["idempotent-replayed"]).toBe("true");
        expect(fn.runs()).toBe(2);
      });

      it("the response is recorded before the invocation returns (Lambda may freeze the instance right after)", async () => {
        const fn = await paymentsLambda(idle.payment, new LateCompletingStore());
        const key = newId("key");
        expect((await fn.post(key, "{}")).status).toBe(201);
        expect((await fn.post(key, "{}")).headers["idempotent-replayed"]).toBe("true");
      });
    });
  }
}

/** Both tables, on one host. */
export function describeLambdaRows(wrapper: string, host: LambdaHost): void {
  describeLambdaWebhookRows(wrapper, host);
  describeLambdaIdempotencyRows(wrapper, host);
}
