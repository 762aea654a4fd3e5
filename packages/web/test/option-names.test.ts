/** A misspelt option is refused where the middleware is made, with the name meant (the rows are the harness's). */
import { describeAdapterOptionNames, looseOptions } from "@interlock/test-harness/option-names";
import { withIdempotency, withWebhook } from "../src/index.js";

describeAdapterOptionNames("web", {
  webhookName: "withWebhook()",
  webhook: (options) => withWebhook(looseOptions(options), () => new Response("ok")),
  idempotencyName: "withIdempotency()",
  idempotency: (options) => withIdempotency(looseOptions(options), () => new Response("ok")),
});
