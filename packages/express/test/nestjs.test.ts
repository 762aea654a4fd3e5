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
import { Readable } from "node:stream";
import { memoryStore, signWebhook, stripe } from "@interlock/core";
import { describeAdapterScenarios, type ScenarioAppOptions } from "@interlock/core/testing";
import { describeHostileClients } from "@interlock/test-harness/hostile-clients";
import {
  charge,
  deliver,
  describeNestStripeApp,
  type NestApp,
  type NestWork,
  type PaymentBody,
  pay,
  receiveStripeEvent,
  scenarioExceptionFilter,
  stripeEvent,
} from "@interlock/test-harness/nestjs";
import { describeProtocolEdges } from "@interlock/test-harness/protocol-edges";
import {
  Body,
  Controller,
  createParamDecorator,
  type ExecutionContext,
  Get,
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

/** The verified delivery `webhook()` put on the request, as a controller parameter. */
const VerifiedEvent = createParamDecorator(
  (_data: unknown, context: ExecutionContext) => context.switchToHttp().getRequest<Request>().webhook,
);

/** Serves a Nest app on an ephemeral port of 127.0.0.1. */
async function serve(app: INestApplication): Promise<NestApp> {
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

  @Controller("exports")
  class ExportsController {
    // A stream piped into the response, as a Nest route on Express streams one.
    @Post()
    create(@Body() body: unknown, @Res() res: Response) {
      res.status(200).type("text/csv");
      Readable.from(handlers.exportRows(body)).pipe(res);
    }
  }

  @Module({ controllers: [WebhooksController, PaymentsController, ExportsController] })
  class ScenarioModule implements NestModule {
    configure(consumer: MiddlewareConsumer) {
      consumer.apply(webhook(webhookOptions)).forRoutes({ path: "webhooks", method: RequestMethod.POST });
      consumer
        .apply(idempotency({ ...idempotencyOptions, principal: (request) => request.context.get("x-api-key") }))
        .forRoutes(PaymentsController, ExportsController);
    }
  }

  const app = await NestFactory.create<NestExpressApplication>(ScenarioModule, { logger: false, ...nestOptions });
  app.useGlobalFilters(scenarioExceptionFilter(app.getHttpAdapter()));
  return serve(app);
}

describeAdapterScenarios("nestjs on express (rawBody: true, MiddlewareConsumer)", async (options) => ({
  ...(await scenarioApp(options)),
  parsesBodiesFirst:
    "Nest's body parsers run before its middleware: they decode a compressed body, or refuse it themselves",
}));
describeHostileClients("nestjs on express (rawBody: true)", (options) => scenarioApp(options));
describeProtocolEdges("nestjs on express (bodyParser: false)", (options) =>
  scenarioApp(options, { bodyParser: false }),
);

const STRIPE_SECRET = "whsec_nestjs_express";

/**
 * A Stripe receiver and a payments API the way a Nest app writes them: return values, Nest's
 * default status (201 for POST), its default exception filter.
 */
function stripeModule(work: NestWork) {
  const store = memoryStore();

  @Controller("webhooks/stripe")
  class StripeController {
    @Post()
    receive(@VerifiedEvent() event: NonNullable<Request["webhook"]>) {
      return receiveStripeEvent(work, event);
    }
  }

  @Controller("payments")
  class PaymentsController {
    @Post()
    create(@Body() body: PaymentBody) {
      return charge(work, body);
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
  work: NestWork,
  options: NestApplicationOptions,
  setup: (app: NestExpressApplication) => void = () => {},
): Promise<NestApp> {
  const app = await NestFactory.create<NestExpressApplication>(stripeModule(work), { logger: false, ...options });
  setup(app);
  return serve(app);
}

describeNestStripeApp("nestjs on express, created with rawBody: true", STRIPE_SECRET, (work) =>
  stripeApp(work, { rawBody: true }),
);

describe("nestjs on express, created without rawBody: true", () => {
  const work: NestWork = { fulfilled: [], charged: [] };
  let app: NestApp;
  beforeAll(async () => {
    app = await stripeApp(work, {});
  });
  afterAll(() => app?.close());

  it("answers 500 body_not_raw, naming Nest's switch, for a delivery and for a keyed request", async () => {
    const delivery = await deliver(app.url, await stripeEvent(STRIPE_SECRET, "checkout.session.completed"));
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
  const work: NestWork = { fulfilled: [], charged: [] };
  let app: NestApp;
  beforeAll(async () => {
    app = await stripeApp(work, { bodyParser: false });
  });
  afterAll(() => app?.close());

  it("the middlewares read the body themselves; the controller's @Body() is the parsed JSON", async () => {
    const event = await stripeEvent(STRIPE_SECRET, "checkout.session.completed");
    expect((await deliver(app.url, event)).status).toBe(201);
    expect(work.fulfilled).toEqual([event.id]);
    const key = crypto.randomUUID();
    expect((await pay(app.url, key, { amount: 7 })).status).toBe(201);
    expect(work.charged).toEqual([{ amount: 7 }]);
  });
});

describe("nestjs on express: a delivery larger than Nest's JSON parser takes (100 kB)", () => {
  const bigEvent = async () => {
    const event = await stripeEvent(STRIPE_SECRET, "checkout.session.completed");
    const body = JSON.stringify({ ...JSON.parse(event.body), padding: "x".repeat(200_000) });
    const signed = await signWebhook({ scheme: stripe, secret: STRIPE_SECRET, body });
    return { id: event.id, body, headers: { ...signed.headers, "content-type": "application/json" } };
  };

  it("is refused 413 by Nest's parser, before webhook() runs", async () => {
    const work: NestWork = { fulfilled: [], charged: [] };
    const app = await stripeApp(work, { rawBody: true });
    try {
      expect((await deliver(app.url, await bigEvent())).status).toBe(413);
    } finally {
      await app.close();
    }
  });

  it("verifies with app.useBodyParser('json', { limit }): the larger parser keeps the bytes too", async () => {
    const work: NestWork = { fulfilled: [], charged: [] };
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
