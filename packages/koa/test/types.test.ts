/** The types users get downstream of the middlewares (checked by `tsc`; trivially true at run time). */
import { type InterlockError, MemoryStore, standardWebhooks, type VerifiedWebhook } from "@interlock/core";
import Koa from "koa";
import { describe, expectTypeOf, it } from "vitest";
import { type IdempotencyErrorDecision, idempotency, type WebhookErrorDecision, webhook } from "../src/index.js";

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

describe("onError", () => {
  const store = new MemoryStore();

  it("webhook(): an error decision, never a duplicate, so its error is always set", () => {
    webhook({
      scheme: standardWebhooks,
      secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
      store,
      onError: (decision, ctx) => {
        expectTypeOf(decision).toEqualTypeOf<WebhookErrorDecision>();
        expectTypeOf(decision.error).toEqualTypeOf<InterlockError>();
        // @ts-expect-error a duplicate never reaches onError: it always gets Interlock's 200
        if (decision.outcome === "duplicate") return;
        ctx.status = decision.error.status;
        ctx.body = { code: decision.error.code };
      },
    });
  });

  it("idempotency(): an error decision, never a replay, so its error is always set", () => {
    idempotency({
      store,
      onError: (decision, ctx) => {
        expectTypeOf(decision).toEqualTypeOf<IdempotencyErrorDecision>();
        expectTypeOf(decision.error).toEqualTypeOf<InterlockError>();
        // @ts-expect-error a replay never reaches onError: it always goes out as stored
        if (decision.replayed === true) return;
        ctx.status = decision.error.status;
        ctx.body = { code: decision.error.code };
      },
    });
  });
});
