/** The types the plugin's augmentation of Fastify gives users (checked by `tsc`; trivially true at run time). */
import { type InterlockError, MemoryStore, standardWebhooks, type VerifiedWebhook } from "@interlock/core";
import Fastify from "fastify";
import { describe, expectTypeOf, it } from "vitest";
import { type IdempotencyErrorDecision, idempotency, type WebhookErrorDecision, webhook } from "../src/index.js";

describe("types", () => {
  it("request.webhook may be null (it is, on a route without webhook hooks): reading it needs a check or `!`", () => {
    const app = Fastify();
    app.get("/plain", async (request) => {
      expectTypeOf(request.webhook).toEqualTypeOf<VerifiedWebhook | null>();
      // @ts-expect-error null here, at run time: the compiler must say so, not the 500.
      return { id: request.webhook.id };
    });
    const hooks = webhook({
      scheme: standardWebhooks,
      secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
      store: new MemoryStore(),
    });
    app.post("/hook", { config: { interlock: hooks } }, async (request) => {
      expectTypeOf(request.webhook!).toEqualTypeOf<VerifiedWebhook>();
      return { id: request.webhook?.id };
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
      onError: (decision, _request, reply) => {
        expectTypeOf(decision).toEqualTypeOf<WebhookErrorDecision>();
        expectTypeOf(decision.error).toEqualTypeOf<InterlockError>();
        // @ts-expect-error a duplicate never reaches onError: it always gets Interlock's 200
        if (decision.outcome === "duplicate") return undefined;
        return reply.code(decision.error.status).send({ code: decision.error.code });
      },
    });
  });

  it("idempotency(): an error decision, never a replay, so its error is always set", () => {
    idempotency({
      store,
      onError: (decision, _request, reply) => {
        expectTypeOf(decision).toEqualTypeOf<IdempotencyErrorDecision>();
        expectTypeOf(decision.error).toEqualTypeOf<InterlockError>();
        // @ts-expect-error a replay never reaches onError: it always goes out as stored
        if (decision.replayed === true) return undefined;
        return reply.code(decision.error.status).send({ code: decision.error.code });
      },
    });
  });
});
