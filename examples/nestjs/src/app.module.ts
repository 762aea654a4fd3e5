// The module: the controllers, the settings they share, and Interlock applied as Nest middleware.
import { stripe } from "@interlock/core";
import { idempotency, webhook } from "@interlock/express";
import { type DynamicModule, Inject, type MiddlewareConsumer, Module, type NestModule } from "@nestjs/common";
import { authenticate, jsonObjectBody, PaymentsController } from "./payments.controller.js";
import { SETTINGS, type Settings } from "./settings.js";
import { WebhooksController } from "./webhooks.controller.js";

@Module({})
export class AppModule implements NestModule {
  static forRoot(settings: Settings): DynamicModule {
    return {
      module: AppModule,
      controllers: [WebhooksController, PaymentsController],
      providers: [{ provide: SETTINGS, useValue: settings }],
    };
  }

  constructor(@Inject(SETTINGS) private readonly settings: Settings) {}

  configure(consumer: MiddlewareConsumer): void {
    const { stripeSecret, apiKeys, store } = this.settings;
    // Nest has parsed the JSON before any middleware runs; created with `rawBody: true` it keeps
    // the bytes as req.rawBody, which is what webhook() verifies and idempotency() fingerprints.
    consumer.apply(webhook({ scheme: stripe, secret: stripeSecret, store })).forRoutes(WebhooksController);
    consumer
      .apply(
        authenticate(apiKeys),
        jsonObjectBody,
        idempotency({ store, principal: (request) => request.context.res?.locals.accountId, required: true }),
      )
      .forRoutes(PaymentsController);
  }
}
