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
import { Readable } from "node:stream";
import { memoryStore, stripe, type VerifiedWebhook } from "@interlock/core";
import { describeAdapterScenarios, type ScenarioAppOptions } from "@interlock/core/testing";
import { describeHostileClients } from "@interlock/test-harness/hostile-clients";
import {
  charge,
  describeNestStripeApp,
  type NestApp,
  type NestWork,
  type PaymentBody,
  pay,
  receiveStripeEvent,
  scenarioExceptionFilter,
} from "@interlock/test-harness/nestjs";
import { describeProtocolEdges } from "@interlock/test-harness/protocol-edges";
import {
  Body,
  Controller,
  createParamDecorator,
  type ExecutionContext,
  Get,
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
import { expect, it } from "vitest";
import { idempotency, interlock, webhook } from "../src/index.js";

/** The verified delivery the plugin put on the request, as a controller parameter. */
const VerifiedEvent = createParamDecorator(
  (_data: unknown, context: ExecutionContext) => context.switchToHttp().getRequest<FastifyRequest>().webhook,
);

/**
 * Creates the Nest app on Fastify, registers the plugin on its Fastify instance (awaited, before
 * `listen` declares Nest's routes), and serves it on an ephemeral port of 127.0.0.1.
 */
async function serve(
  module: Type<unknown>,
  options: NestApplicationOptions,
  setup: (app: NestFastifyApplication) => void = () => {},
): Promise<NestApp> {
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

  @Controller("exports")
  class ExportsController {
    // A stream sent through the reply, as a Nest route on Fastify streams one.
    @Post()
    @RouteConfig({ interlock: payments })
    create(@Body() body: unknown, @Res() reply: FastifyReply) {
      reply
        .code(200)
        .type("text/csv")
        .send(Readable.from(handlers.exportRows(body)));
    }
  }

  @Module({ controllers: [WebhooksController, PaymentsController, ExportsController] })
  class ScenarioModule {}

  return serve(ScenarioModule, {}, (app) => app.useGlobalFilters(scenarioExceptionFilter(app.getHttpAdapter())));
}

describeAdapterScenarios("nestjs on fastify (@RouteConfig)", scenarioApp);
describeHostileClients("nestjs on fastify", scenarioApp);
// A keyed payment declared past the limit meets Nest's JSON parser first, whose bodyLimit is
// Fastify's 1 MiB: its 413, as on any route (see the README).
describeProtocolEdges("nestjs on fastify", scenarioApp, { oversizedPayment: "framework" });

const STRIPE_SECRET = "whsec_nestjs_fastify";

/**
 * A Stripe receiver and a payments API the way a Nest app writes them: return values, Nest's
 * default status (201 for POST), its default exception filter.
 */
function stripeModule(work: NestWork) {
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
      return receiveStripeEvent(work, event);
    }
  }

  @Controller("payments")
  class PaymentsController {
    @Post()
    @RouteConfig({ interlock: payments })
    create(@Body() body: PaymentBody) {
      return charge(work, body);
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

for (const [name, options] of [
  ["with rawBody: true", { rawBody: true }],
  ["without rawBody: true", {}],
] as Array<[string, NestApplicationOptions]>) {
  describeNestStripeApp(
    `nestjs on fastify, created ${name}`,
    STRIPE_SECRET,
    (work) => serve(stripeModule(work), options),
    (app) => {
      it("keys are scoped by the account a Nest middleware put on the raw request", async () => {
        const key = crypto.randomUUID();
        const mine = await pay(app().url, key, { amount: 5 });
        const theirs = await fetch(`${app().url}/payments`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-api-key": "acct_2", "idempotency-key": key },
          body: JSON.stringify({ amount: 5 }),
        });
        expect([mine.status, theirs.status]).toEqual([201, 201]);
        expect(theirs.headers.get("idempotent-replayed")).toBeNull();
        const anonymous = await fetch(`${app().url}/payments`, { method: "POST", headers: { "idempotency-key": key } });
        expect(anonymous.status).toBe(401);
      });
    },
  );
}
