/** The types users get downstream of the middlewares (checked by `tsc`; trivially true at run time). */
import { MemoryStore, standardWebhooks, type VerifiedWebhook } from "@interlock/core";
import Koa from "koa";
import { describe, expectTypeOf, it } from "vitest";
import { idempotency, webhook } from "../src/index.js";

describe("types", () => {
  it("app.use(webhook<T>()) types ctx.state.webhook and ctx.request.rawBody downstream; idempotency() adds nothing", () => {
    const store = new MemoryStore();
    new Koa()
      .use(
        webhook<{ type: string }>({
          scheme: standardWebhooks,
          secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
          store,
        }),
      )
      .use(idempotency({ store, principal: (request) => request.context.state.user?.id }))
      .use((ctx) => {
        expectTypeOf(ctx.state.webhook).toEqualTypeOf<VerifiedWebhook<{ type: string }>>();
        expectTypeOf(ctx.state.webhook.payload.type).toBeString();
        expectTypeOf(ctx.request.rawBody).toEqualTypeOf<Buffer>();
        expectTypeOf(ctx.request.body).toBeUnknown();
      });
  });
});
