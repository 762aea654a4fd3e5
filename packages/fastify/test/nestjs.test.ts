/**
 * NestJS on Fastify (`@nestjs/platform-fastify`), over real HTTP on 127.0.0.1: the `interlock`
 * plugin registered on Nest's Fastify instance, each route's hook sets named with Nest's
 * `@RouteConfig({ interlock: … })`, the verified event read in a controller, Nest's own exception
 * layer answering what a controller throws. First the shared adapter scenario table on a Nest app,
 * then what is Nest's own, with and without `rawBody: true`: its default exception filter's 500,
 * an `HttpException`'s 4xx.
 */
import "reflect-metadata";
import type { IncomingMessage, ServerResponse } from "node:http";
import { memoryStore, signWebhook, stripe, type VerifiedWebhook } from "@interlock/core";
import { describeAdapterScenarios, type ScenarioAppOptions } from "@interlock/core/testing";
import { describeHostileClients } from "@interlock/test-harness/hostile-clients";
import { describeProtocolEdges } from "@interlock/test-harness/protocol-edges";
import {
  type ArgumentsHost,
  BadRequestException,
  Body,
  Catch,
  Controller,
  createParamDecorator,
  type ExceptionFilter,
  type ExecutionContext,
  Get,
  HttpException,
  type MiddlewareConsumer,
  Module,
  type NestApplicationOptions,
  type NestModule,
  Post,
  Res,
  type Type,
} from "@nestjs/common";
import { NestFactory } from "@nestjs/core";
import { FastifyAdapter, type NestFastifyApplication, RouteConfig } from "@nestjs/platform-fastify";
import type { FastifyReply, FastifyRequest } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { idempotency, interlock, webhook } from "../src/index.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The verified delivery the plugin put on the request, as a controller parameter. */
const VerifiedEvent = createParamDecorator(
  (_data: unknown, context: ExecutionContext) => context.switchToHttp().getRequest<FastifyRequest>().webhook,
);

interface Running {
  url: string;
  close(): Promise<void>;
}

/**
 * Creates the Nest app on Fastify, registers the plugin on its Fastify instance (awaited, before
 * `listen` declares Nest's routes), and serves it on an ephemeral port of 127.0.0.1.
 */
async function serve(
  module: Type<unknown>,
  options: NestApplicationOptions,
  setup: (app: NestFastifyApplication) => void = () => {},
): Promise<Running> {
  const app = await NestFactory.create<NestFastifyApplication>(module, new FastifyAdapter(), {
    logger: false,
    ...options,
  });
  setup(app);
  await app.register(interlock);
  await app.listen(0, "127.0.0.1");
  return { url: await app.getUrl(), close: () => app.close() };
}

/** The contract app of `describeAdapterScenarios`, as a Nest app on Fastify. */
async function scenarioApp({ webhook: webhookOptions, idempotency: idempotencyOptions, handlers }: ScenarioAppOptions) {
  const deliveries = webhook(webhookOptions);
  const payments = idempotency({
    ...idempotencyOptions,
    principal: (request) => request.context.headers["x-api-key"] as string | undefined,
  });

  @Controller("webhooks")
  class WebhooksController {
    @Post()
    @RouteConfig({ interlock: deliveries })
    async receive(@VerifiedEvent() event: VerifiedWebhook, @Res() reply: FastifyReply) {
      await handlers.webhook(event);
      reply.code(200).send({ received: event.id });
    }
  }

  @Controller("payments")
  class PaymentsController {
    // The status varies per request: answered through the reply, as a Nest route does that.
    @Post()
    @RouteConfig({ interlock: payments })
    async create(@Body() body: unknown, @Res() reply: FastifyReply) {
      const result = await handlers.payment(body);
      reply
        .code(result.status)
        .headers(result.headers ?? {})
        .send(result.json);
    }

    @Get()
    @RouteConfig({ interlock: payments })
    list(@Body() body: unknown, @Res() reply: FastifyReply) {
      return this.create(body, reply);
    }
  }

  /** What the contract answers a throw with; an `HttpException` keeps its own answer. */
  @Catch()
  class HandlerFailed implements ExceptionFilter {
    catch(exception: unknown, host: ArgumentsHost) {
      const reply = host.switchToHttp().getResponse<FastifyReply>();
      if (exception instanceof HttpException) reply.code(exception.getStatus()).send(exception.getResponse());
      else reply.code(500).send({ error: "handler failed" });
    }
  }

  @Module({ controllers: [WebhooksController, PaymentsController] })
  class ScenarioModule {}

  return serve(ScenarioModule, {}, (app) => app.useGlobalFilters(new HandlerFailed()));
}

describeAdapterScenarios("nestjs on fastify (@RouteConfig)", scenarioApp);
describeHostileClients("nestjs on fastify", scenarioApp);
// A keyed payment declared past the limit meets Nest's JSON parser first, whose bodyLimit is
// Fastify's 1 MiB: its 413, as on any route (see the README).
describeProtocolEdges("nestjs on fastify", scenarioApp, { oversizedPayment: "framework" });

const STRIPE_SECRET = "whsec_nestjs_fastify";

/** What the Nest-specific app's controllers did, and how they behave next. */
interface Work {
  /** Stripe event ids processed. */
  fulfilled: string[];
  /** Payment bodies the controller ran for. */
  charged: unknown[];
  /** Held until released, for the in-flight row. */
  gate?: Promise<void> | undefined;
}

/**
 * A Stripe receiver and a payments API the way a Nest app writes them: return values, Nest's
 * default status (201 for POST), its default exception filter.
 */
function stripeModule(work: Work) {
  const store = memoryStore();
  const deliveries = webhook({ scheme: stripe, secret: STRIPE_SECRET, store });
  // The account, as an authentication middleware puts it on the raw request: Fastify runs Nest
  // middleware first, in onRequest, before the route's hooks.
  const payments = idempotency({
    store,
    principal: (request) => (request.context.raw as Authenticated).accountId,
    required: true,
  });

  @Controller("webhooks/stripe")
  class StripeController {
    @Post()
    @RouteConfig({ interlock: deliveries })
    receive(@VerifiedEvent() event: VerifiedWebhook) {
      const { type } = event.payload as { type: string };
      if (type === "invoice.payment_failed") throw new Error("the billing system is down");
      if (type === "customer.deleted") throw new BadRequestException("unknown customer");
      work.fulfilled.push(event.id as string);
      return { received: event.id };
    }
  }

  @Controller("payments")
  class PaymentsController {
    @Post()
    @RouteConfig({ interlock: payments })
    async create(@Body() body: { amount?: number; fail?: boolean; invalid?: boolean }) {
      work.charged.push(body);
      await work.gate;
      if (body.fail) throw new Error("the card network timed out");
      if (body.invalid) throw new BadRequestException("amount must be positive");
      return { id: `pay_${work.charged.length}`, amount: body.amount };
    }
  }

  @Module({ controllers: [StripeController, PaymentsController] })
  class StripeModule implements NestModule {
    configure(consumer: MiddlewareConsumer) {
      consumer.apply(authenticate).forRoutes(PaymentsController);
    }
  }
  return StripeModule;
}

type Authenticated = IncomingMessage & { accountId?: string };

/** Nest middleware on Fastify gets the raw request: the caller's account goes there, or 401. */
function authenticate(req: Authenticated, res: ServerResponse, next: () => void) {
  const apiKey = req.headers["x-api-key"];
  if (typeof apiKey !== "string") {
    res.writeHead(401, { "content-type": "application/problem+json" }).end('{"status":401,"code":"unauthenticated"}');
    return;
  }
  req.accountId = `acct_${apiKey}`;
  next();
}

/** A Stripe event of this type, signed now. */
async function stripeEvent(type: string, id = `evt_${crypto.randomUUID().slice(0, 8)}`) {
  const body = JSON.stringify({ id, object: "event", type });
  const signed = await signWebhook({ scheme: stripe, secret: STRIPE_SECRET, body });
  return { id, body, headers: { ...signed.headers, "content-type": "application/json" } };
}

const deliver = (url: string, event: { headers: Record<string, string>; body: string }) =>
  fetch(`${url}/webhooks/stripe`, { method: "POST", headers: event.headers, body: event.body });

const pay = (url: string, key: string, body: object) =>
  fetch(`${url}/payments`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": "acct_1", "idempotency-key": key },
    body: JSON.stringify(body),
  });

const NEST_500 = { statusCode: 500, message: "Internal server error" };

describe.each([
  ["with rawBody: true", { rawBody: true }],
  ["without rawBody: true", {}],
])("nestjs on fastify, created %s", (_name, options: NestApplicationOptions) => {
  const work: Work = { fulfilled: [], charged: [] };
  let app: Running;
  beforeAll(async () => {
    app = await serve(stripeModule(work), options);
  });
  afterAll(() => app?.close());

  it("a Stripe delivery: verified on its raw bytes, processed once, a tampered copy refused", async () => {
    const event = await stripeEvent("checkout.session.completed");
    const first = await deliver(app.url, event);
    expect([first.status, await first.json()]).toEqual([201, { received: event.id }]);
    const again = await deliver(app.url, event);
    expect([again.status, await again.json()]).toEqual([200, { duplicate: true, id: event.id }]);
    const tampered = await deliver(app.url, { ...event, body: event.body.replace("completed", "expired") });
    expect(tampered.status).toBe(401);
    expect(tampered.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(await tampered.json()).toMatchObject({ code: "no_matching_signature" });
    expect(work.fulfilled.filter((id) => id === event.id)).toHaveLength(1);
  });

  it("a controller that throws: Nest's filter answers 500 and the delivery is released, its redelivery runs", async () => {
    const event = await stripeEvent("invoice.payment_failed");
    const failed = await deliver(app.url, event);
    expect([failed.status, await failed.json()]).toEqual([500, NEST_500]);
    const redelivered = await deliver(app.url, event);
    expect(redelivered.status).toBe(500); // ran again (a duplicate would be 200)
    expect(await redelivered.json()).toEqual(NEST_500);
  });

  it("an HttpException's 4xx releases the delivery too: the redelivery runs again", async () => {
    const event = await stripeEvent("customer.deleted");
    const refused = await deliver(app.url, event);
    expect(refused.status).toBe(400);
    expect(await refused.json()).toMatchObject({ statusCode: 400, message: "unknown customer" });
    expect((await deliver(app.url, event)).status).toBe(400);
  });

  it("an idempotent POST: first 201, retry replayed, another body 422", async () => {
    const key = crypto.randomUUID();
    const first = await pay(app.url, key, { amount: 4200 });
    expect(first.status).toBe(201);
    const created = await first.text();
    const retry = await pay(app.url, key, { amount: 4200 });
    expect(retry.status).toBe(201);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(await retry.text()).toBe(created);
    const other = await pay(app.url, key, { amount: 9900 });
    expect(other.status).toBe(422);
    expect(await other.json()).toMatchObject({ code: "idempotency_key_mismatch" });
    expect(work.charged.filter((body) => (body as { amount?: number }).amount === 4200)).toHaveLength(1);
  });

  it("a concurrent copy while the first runs: 409 request_in_flight with Retry-After", async () => {
    const key = crypto.randomUUID();
    let open = () => {};
    work.gate = new Promise((resolve) => {
      open = resolve;
    });
    const first = pay(app.url, key, { amount: 1 });
    await sleep(100);
    const copy = await pay(app.url, key, { amount: 1 });
    open();
    work.gate = undefined;
    expect(copy.status).toBe(409);
    expect(copy.headers.get("retry-after")).not.toBeNull();
    expect(await copy.json()).toMatchObject({ code: "request_in_flight" });
    expect((await first).status).toBe(201);
  });

  it("a controller that throws: Nest's 500 releases the key, the retry runs again", async () => {
    const key = crypto.randomUUID();
    const before = work.charged.length;
    const failed = await pay(app.url, key, { fail: true });
    expect([failed.status, await failed.json()]).toEqual([500, NEST_500]);
    const retry = await pay(app.url, key, { fail: true });
    expect(retry.status).toBe(500);
    expect(retry.headers.get("idempotent-replayed")).toBeNull();
    expect(work.charged.length).toBe(before + 2);
  });

  it("keys are scoped by the account a Nest middleware put on the raw request", async () => {
    const key = crypto.randomUUID();
    const mine = await pay(app.url, key, { amount: 5 });
    const theirs = await fetch(`${app.url}/payments`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": "acct_2", "idempotency-key": key },
      body: JSON.stringify({ amount: 5 }),
    });
    expect([mine.status, theirs.status]).toEqual([201, 201]);
    expect(theirs.headers.get("idempotent-replayed")).toBeNull();
    const anonymous = await fetch(`${app.url}/payments`, { method: "POST", headers: { "idempotency-key": key } });
    expect(anonymous.status).toBe(401);
  });

  it("an HttpException's 4xx is an answer: stored and replayed, the controller not run again", async () => {
    const key = crypto.randomUUID();
    const before = work.charged.length;
    const refused = await pay(app.url, key, { invalid: true });
    expect(refused.status).toBe(400);
    const body = await refused.text();
    const replay = await pay(app.url, key, { invalid: true });
    expect(replay.status).toBe(400);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(await replay.text()).toBe(body);
    expect(work.charged.length).toBe(before + 1);
  });
});
