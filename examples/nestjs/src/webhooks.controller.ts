// Stripe webhooks. By the time this controller runs, webhook() (applied in AppModule) has
// checked the Stripe-Signature over the raw bytes Nest kept (`rawBody: true`) and claimed the
// event id: a redelivery is answered 200 {"duplicate":true} without reaching it.
import type { VerifiedWebhook } from "@interlock/core";
import { Controller, createParamDecorator, type ExecutionContext, HttpCode, Inject, Post } from "@nestjs/common";
import type { Request } from "express";
import { INVALID_PAYLOAD_DETAIL, payloadObject } from "../../shared/payload.mjs";
import { Problem } from "./problem.js";
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
    // Signed, but no event: JSON null, a number, a form body… is a 422 problem, not a 500 on
    // every redelivery (a 4xx releases it too: Stripe's dashboard shows why it failed).
    const payload = payloadObject(event);
    if (payload === undefined) throw new Problem(422, "invalid_payload", INVALID_PAYLOAD_DETAIL);
    if (payload.type === "checkout.session.completed") {
      this.settings.db.fulfilled.push(event.id as string); // fulfil the order
    }
    // A 2xx records the delivery as processed. Throw (Nest's filters answer 500), or answer
    // non-2xx, and it is released: Stripe's retry will run this handler again.
    return { received: event.id };
  }
}
