/**
 * NestJS on its default platform, Express, over real HTTP on 127.0.0.1: `webhook()` and
 * `idempotency()` applied as Nest middleware (`MiddlewareConsumer`), the verified event read in
 * a controller, Nest's own exception layer answering what a controller throws. First the shared
 * adapter scenario table on a Nest app, then what is Nest's own: the bytes it keeps with
 * `rawBody: true`, its default exception filter's 500, an `HttpException`'s 4xx, and the
 * `body_not_raw` answer when the bytes are gone.
 *
 * Nest 12 runs on Express 5 (its own dependency), so the Express 4 project leaves this file out.
 */
import "reflect-metadata";
import { memoryStore, signWebhook, stripe } from "@interlock/core";
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
  type INestApplication,
  type MiddlewareConsumer,
  Module,
  type NestApplicationOptions,
  type NestModule,
  Post,
  RequestMethod,
  Res,
} from "@nestjs/common";
import { NestFactory } from "@nestjs/core";
import type { NestExpressApplication } from "@nestjs/platform-express";
import type { Request, Response } from "express";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { idempotency, webhook } from "../src/index.js";
import { sleep } from "./helpers.js";

/** The verified delivery `webhook()` put on the request, as a controller parameter. */
const VerifiedEvent = createParamDecorator(
  (_data: unknown, context: ExecutionContext) => context.switchToHttp().getRequest<Request>().webhook,
);

interface Running {
  url: string;
  close(): Promise<void>;
}

/** Serves a Nest app on an ephemeral port of 127.0.0.1. */
async function serve(app: INestApplication): Promise<Running> {
  await app.listen(0, "127.0.0.1");
  return { url: await app.getUrl(), close: () => app.close() };
}

/** The contract app of `describeAdapterScenarios`, as a Nest app created with these options. */
async function scenarioApp(
  { webhook: webhookOptions, idempotency: idempotencyOptions, handlers }: ScenarioAppOptions,
  nestOptions: NestApplicationOptions = { rawBody: true },
) {
  @Controller("webhooks")
  class WebhooksController {
    @Post()
    async receive(@VerifiedEvent() event: NonNullable<Request["webhook"]>, @Res() res: Response) {
      await handlers.webhook(event);
      res.status(200).json({ received: event.id });
    }
  }

  @Controller("payments")
  class PaymentsController {
    // The status varies per request: answered through the response, as a Nest route does that.
    @Post()
    async create(@Body() body: unknown, @Res() res: Response) {
      const result = await handlers.payment(body);
      res
        .status(result.status)
        .set(result.headers ?? {})
        .json(result.json);
    }

    @Get()
    list(@Body() body: unknown, @Res() res: Response) {
      return this.create(body, res);
    }
  }

  /** What the contract answers a throw with; an `HttpException` keeps its own answer. */
  @Catch()
  class HandlerFailed implements ExceptionFilter {
    catch(exception: unknown, host: ArgumentsHost) {
      const res = host.switchToHttp().getResponse<Response>();
      if (exception instanceof HttpException) res.status(exception.getStatus()).json(exception.getResponse());
      else res.status(500).json({ error: "handler failed" });
    }
  }

  @Module({ controllers: [WebhooksController, PaymentsController] })
  class ScenarioModule implements NestModule {
    configure(consumer: MiddlewareConsumer) {
      consumer.apply(webhook(webhookOptions)).forRoutes({ path: "webhooks", method: RequestMethod.POST });
      consumer
        .apply(idempotency({ ...idempotencyOptions, principal: (request) => request.context.get("x-api-key") }))
        .forRoutes(PaymentsController);
    }
  }

  const app = await NestFactory.create<NestExpressApplication>(ScenarioModule, { logger: false, ...nestOptions });
  app.useGlobalFilters(new HandlerFailed());
  return serve(app);
}

describeAdapterScenarios("nestjs on express (rawBody: true, MiddlewareConsumer)", (options) => scenarioApp(options));
describeHostileClients("nestjs on express (rawBody: true)", (options) => scenarioApp(options));
describeProtocolEdges("nestjs on express (bodyParser: false)", (options) =>
  scenarioApp(options, { bodyParser: false }),
);

const STRIPE_SECRET = "whsec_nestjs_express";

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

  @Controller("webhooks/stripe")
  class StripeController {
    @Post()
    receive(@VerifiedEvent() event: NonNullable<Request["webhook"]>) {
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
      consumer.apply(webhook({ scheme: stripe, secret: STRIPE_SECRET, store })).forRoutes(StripeController);
      consumer
        .apply(idempotency({ store, principal: (request) => request.context.get("x-api-key"), required: true }))
        .forRoutes(PaymentsController);
    }
  }
  return StripeModule;
}

/** Starts the Stripe app with these NestFactory options, and what `setup` does before it listens. */
async function stripeApp(
  work: Work,
  options: NestApplicationOptions,
  setup: (app: NestExpressApplication) => void = () => {},
): Promise<Running> {
  const app = await NestFactory.create<NestExpressApplication>(stripeModule(work), { logger: false, ...options });
  setup(app);
  return serve(app);
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

describe("nestjs on express, created with rawBody: true", () => {
  const work: Work = { fulfilled: [], charged: [] };
  let app: Running;
  beforeAll(async () => {
    app = await stripeApp(work, { rawBody: true });
  });
  afterAll(() => app?.close());

  it("a Stripe delivery: verified on the bytes Nest kept, processed once, a tampered copy refused", async () => {
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

describe("nestjs on express, created without rawBody: true", () => {
  const work: Work = { fulfilled: [], charged: [] };
  let app: Running;
  beforeAll(async () => {
    app = await stripeApp(work, {});
  });
  afterAll(() => app?.close());

  it("answers 500 body_not_raw, naming Nest's switch, for a delivery and for a keyed request", async () => {
    const delivery = await deliver(app.url, await stripeEvent("checkout.session.completed"));
    expect(delivery.status).toBe(500);
    expect(delivery.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    const problem = (await delivery.json()) as { code: string; detail: string };
    expect(problem.code).toBe("body_not_raw");
    expect(problem.detail).toContain("NestFactory.create(AppModule, { rawBody: true })");

    const keyed = await pay(app.url, crypto.randomUUID(), { amount: 1 });
    expect(keyed.status).toBe(500);
    const keyedProblem = (await keyed.json()) as { code: string; detail: string };
    expect(keyedProblem.code).toBe("body_not_raw");
    expect(keyedProblem.detail).toContain("NestFactory.create(AppModule, { rawBody: true })");
    expect([work.fulfilled, work.charged]).toEqual([[], []]);
  });
});

describe("nestjs on express, created with bodyParser: false", () => {
  const work: Work = { fulfilled: [], charged: [] };
  let app: Running;
  beforeAll(async () => {
    app = await stripeApp(work, { bodyParser: false });
  });
  afterAll(() => app?.close());

  it("the middlewares read the body themselves; the controller's @Body() is the parsed JSON", async () => {
    const event = await stripeEvent("checkout.session.completed");
    expect((await deliver(app.url, event)).status).toBe(201);
    expect(work.fulfilled).toEqual([event.id]);
    const key = crypto.randomUUID();
    expect((await pay(app.url, key, { amount: 7 })).status).toBe(201);
    expect(work.charged).toEqual([{ amount: 7 }]);
  });
});

describe("nestjs on express: a delivery larger than Nest's JSON parser takes (100 kB)", () => {
  const bigEvent = async () => {
    const event = await stripeEvent("checkout.session.completed");
    const body = JSON.stringify({ ...JSON.parse(event.body), padding: "x".repeat(200_000) });
    const signed = await signWebhook({ scheme: stripe, secret: STRIPE_SECRET, body });
    return { id: event.id, body, headers: { ...signed.headers, "content-type": "application/json" } };
  };

  it("is refused 413 by Nest's parser, before webhook() runs", async () => {
    const work: Work = { fulfilled: [], charged: [] };
    const app = await stripeApp(work, { rawBody: true });
    try {
      expect((await deliver(app.url, await bigEvent())).status).toBe(413);
    } finally {
      await app.close();
    }
  });

  it("verifies with app.useBodyParser('json', { limit }): the larger parser keeps the bytes too", async () => {
    const work: Work = { fulfilled: [], charged: [] };
    const app = await stripeApp(work, { rawBody: true }, (nest) => nest.useBodyParser("json", { limit: "1mb" }));
    try {
      const event = await bigEvent();
      expect((await deliver(app.url, event)).status).toBe(201);
      expect(work.fulfilled).toEqual([event.id]);
    } finally {
      await app.close();
    }
  });
});
