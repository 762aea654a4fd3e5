// Stripe webhooks. By the time this controller runs, webhook() (applied in AppModule) has
// checked the Stripe-Signature over the raw bytes Nest kept (`rawBody: true`) and claimed the
// event id: a redelivery is answered 200 {"duplicate":true} without reaching it.
import type { VerifiedWebhook } from "@interlock/core";
import { Controller, createParamDecorator, type ExecutionContext, HttpCode, Inject, Post } from "@nestjs/common";
import type { Request } from "express";
import { SETTINGS, type Settings } from "./settings.js";

/** The delivery webhook() verified, as a handler parameter: `@VerifiedEvent() event`. */
export const VerifiedEvent = createParamDecorator(
  (_data: unknown, context: ExecutionContext) => context.switchToHttp().getRequest<Request>().webhook,
);

@Controller("webhooks/stripe")
export class WebhooksController {
  constructor(@Inject(SETTINGS) private readonly settings: Settings) {}

  @Post()
  @HttpCode(200)
  receive(@VerifiedEvent() event: VerifiedWebhook) {
    const { type } = event.payload as { type?: string };
    if (type === "checkout.session.completed") {
      this.settings.db.fulfilled.push(event.id as string); // fulfil the order
    }
    // A 2xx records the delivery as processed. Throw (Nest's filters answer 500), or answer
    // non-2xx, and it is released: Stripe's retry will run this handler again.
    return { received: event.id };
  }
}
