/** A misspelt option is refused where the middleware is made, with the name meant (the rows are the harness's). */
import { describeAdapterOptionNames, looseOptions } from "@interlock/test-harness/option-names";
import { idempotency, webhook } from "../src/index.js";

describeAdapterOptionNames("koa", {
  webhookName: "webhook()",
  webhook: (options) => webhook(looseOptions(options)),
  idempotencyName: "idempotency()",
  idempotency: (options) => idempotency(looseOptions(options)),
});
