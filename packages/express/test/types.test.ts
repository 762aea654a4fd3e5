/** The decisions `onError` gets (checked by `tsc`; trivially true at run time: no request comes here). */
import { type InterlockError, MemoryStore, standardWebhooks } from "@interlock/core";
import { describe, expectTypeOf, it } from "vitest";
import { type IdempotencyErrorDecision, idempotency, type WebhookErrorDecision, webhook } from "../src/index.js";

const store = new MemoryStore();

describe("onError", () => {
  it("webhook(): an error decision, never a duplicate, so its error is always set", () => {
    webhook({
      scheme: standardWebhooks,
      secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
      store,
      onError: (decision, _req, res) => {
        expectTypeOf(decision).toEqualTypeOf<WebhookErrorDecision>();
        expectTypeOf(decision.error).toEqualTypeOf<InterlockError>();
        // @ts-expect-error a duplicate never reaches onError: it always gets Interlock's 200
        if (decision.outcome === "duplicate") return;
        res.status(decision.error.status).json({ code: decision.error.code });
      },
    });
  });

  it("idempotency(): an error decision, never a replay, so its error is always set", () => {
    idempotency({
      store,
      onError: (decision, _req, res) => {
        expectTypeOf(decision).toEqualTypeOf<IdempotencyErrorDecision>();
        expectTypeOf(decision.error).toEqualTypeOf<InterlockError>();
        // @ts-expect-error a replay never reaches onError: it always goes out as stored
        if (decision.replayed === true) return;
        res.status(decision.error.status).json({ code: decision.error.code });
      },
    });
  });
});
