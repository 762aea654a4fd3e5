/**
 * The options as the compiler holds them (checked by `tsc`; trivially true at run time: a
 * factory is only called on the first request, and none comes here).
 */
import { type InterlockError, MemoryStore, stripe } from "@interlock/core";
import { Hono } from "hono";
import { describe, expect, expectTypeOf, it } from "vitest";
import {
  type IdempotencyErrorDecision,
  idempotency,
  type WebhookEnv,
  type WebhookErrorDecision,
  webhook,
} from "../src/index.js";

type Bindings = { STRIPE_WEBHOOK_SECRET: string };
const store = new MemoryStore();

describe("options given as a function of the context", () => {
  it("compile as the object form does, the context and every callback typed", () => {
    new Hono<{ Bindings: Bindings } & WebhookEnv>().post(
      "/hook",
      webhook((c) => ({
        scheme: stripe,
        secret: (c.env as Bindings).STRIPE_WEBHOOK_SECRET,
        store,
        toleranceSeconds: 10,
        maxBodyBytes: 1024,
        onError: (decision, context) => {
          expectTypeOf(decision.outcome).toBeString();
          return context.text("no", 400);
        },
      })),
      (c) => c.json({ id: c.get("webhook").id }),
    );
    new Hono().use(
      "*",
      idempotency((c) => ({
        store,
        principal: (request) => request.context.req.header("x-api-key") ?? c.req.header("x-tenant"),
        route: (context) => context.req.path,
      })),
    );
  });

  it("refuse a misspelt option, as the object form does (which also throws where it is made)", () => {
    // @ts-expect-error `tolerance` is no option (`toleranceSeconds` is)
    expect(() => webhook({ scheme: stripe, secret: "whsec_x", store, tolerance: 10 })).toThrow('"tolerance"');
    // @ts-expect-error `tolerance` is no option (`toleranceSeconds` is)
    webhook((c) => ({ scheme: stripe, secret: c.req.header("x") ?? "", store, tolerance: 10 }));
    // @ts-expect-error `maxBodyByte` is no option (`maxBodyBytes` is)
    webhook(() => ({ scheme: stripe, secret: "whsec_x", store, maxBodyByte: 1 }));
    // @ts-expect-error `requierd` is no option (`required` is)
    expect(() => idempotency({ store, requierd: true })).toThrow('"requierd"');
    // @ts-expect-error `requierd` is no option (`required` is)
    idempotency(() => ({ store, requierd: true }));
    // @ts-expect-error `store` is missing
    idempotency(() => ({ principal: false }));
  });
});

describe("onError", () => {
  it("webhook(): an error decision, never a duplicate, so its error is always set", () => {
    webhook({
      scheme: stripe,
      secret: "whsec_x",
      store,
      onError: (decision, c) => {
        expectTypeOf(decision).toEqualTypeOf<WebhookErrorDecision>();
        expectTypeOf(decision.error).toEqualTypeOf<InterlockError>();
        // @ts-expect-error a duplicate never reaches onError: it always gets Interlock's 200
        if (decision.outcome === "duplicate") return undefined;
        return c.json({ code: decision.error.code }, 400);
      },
    });
  });

  it("idempotency(): an error decision, never a replay, so its error is always set", () => {
    idempotency({
      store,
      onError: (decision, c) => {
        expectTypeOf(decision).toEqualTypeOf<IdempotencyErrorDecision>();
        expectTypeOf(decision.error).toEqualTypeOf<InterlockError>();
        // @ts-expect-error a replay never reaches onError: it always goes out as stored
        if (decision.replayed === true) return undefined;
        return c.json({ code: decision.error.code }, 400);
      },
    });
  });
});
