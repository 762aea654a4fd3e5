// Stripe webhooks, verified on the raw bytes and processed once. withWebhook reads the request's
// bytes itself (what Stripe signed), lets the receiver decide, and runs the handler only for the
// first valid copy: a refusal (401 problem), a redelivery (200 {"duplicate":true}), one still
// being processed elsewhere (409 with Retry-After) or the store down (503) is answered without
// it. A 2xx records the delivery before it is sent; a throw releases it for Stripe's retry, and
// Next answers 500.
import { withWebhook } from "@interlock/web";
import { interlock, processStripeEvent } from "../../../../lib/interlock";

// The options are made on the first request (withWebhook calls the function once): the secret
// and the store come from the environment, which next build, loading this module, does not have.
export const POST = withWebhook(
  () => interlock().stripeWebhooks,
  async (event) => {
    // event: verified, id, payload (decoded on first use), body. A refusal (422, no event) releases it.
    const refusal = await processStripeEvent(event, interlock().db);
    return refusal ?? Response.json({ received: event.id });
  },
);
