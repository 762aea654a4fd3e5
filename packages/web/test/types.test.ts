/**
 * The options as the compiler holds them (checked by `tsc`; trivially true at run time: a
 * factory is only called on the first request, and none comes here).
 */
import {
  type IdempotencyErrorDecision,
  type InterlockError,
  MemoryStore,
  stripe,
  type WebhookErrorDecision,
} from "@interlock/core";
import { describe, expect, expectTypeOf, it } from "vitest";
import { withIdempotency, withWebhook } from "../src/index.js";

interface Env {
  STRIPE_WEBHOOK_SECRET: string;
}
class HostRequest extends Request {
  tenant = "t1";
}
const store = new MemoryStore();
const answered = async () => new Response(null, { status: 204 });
const onEnv = async (_event: unknown, _request: Request, _env: Env) => answered();

describe("options given as a function of the request", () => {
  it("compile as the object form does, the request, the host's arguments and every callback typed", () => {
    const handle = withWebhook(
      (_request: HostRequest, env: Env) => ({
        scheme: stripe,
        secret: env.STRIPE_WEBHOOK_SECRET,
        store,
        toleranceSeconds: 10,
        onError: (_decision, request) => {
          expectTypeOf(request).toEqualTypeOf<HostRequest>();
          return undefined;
        },
      }),
      async (_event, _request: HostRequest, env: Env) => Response.json({ length: env.STRIPE_WEBHOOK_SECRET.length }),
    );
    expectTypeOf(handle).parameters.toEqualTypeOf<[HostRequest, Env]>();
    const pay = withIdempotency(
      (_request: HostRequest) => ({
        store,
        principal: (request) => request.context.tenant,
        route: (request) => `/tenants/${request.tenant}/payments`,
      }),
      answered,
    );
    expectTypeOf(pay).parameters.toEqualTypeOf<[HostRequest]>();
  });

  it("refuse a misspelt option, as the object form does (which also throws where it is made)", () => {
    // @ts-expect-error `tolerance` is no option (`toleranceSeconds` is)
    expect(() => withWebhook({ scheme: stripe, secret: "whsec_x", store, tolerance: 10 }, answered)).toThrow(
      '"tolerance"',
    );
    const secret = (env: Env) => env.STRIPE_WEBHOOK_SECRET;
    // @ts-expect-error `tolerance` is no option (`toleranceSeconds` is)
    withWebhook((_request, env: Env) => ({ scheme: stripe, secret: secret(env), store, tolerance: 10 }), onEnv);
    // @ts-expect-error `maxBodyByte` is no option (`maxBodyBytes` is)
    withWebhook(() => ({ scheme: stripe, secret: "whsec_x", store, maxBodyByte: 1 }), answered);
    // @ts-expect-error `requierd` is no option (`required` is)
    expect(() => withIdempotency({ store, requierd: true }, answered)).toThrow('"requierd"');
    // @ts-expect-error `requierd` is no option (`required` is)
    withIdempotency(() => ({ store, requierd: true }), answered);
  });
});

describe("onError", () => {
  it("withWebhook(): an error decision, never a duplicate, so its error is always set", () => {
    withWebhook(
      {
        scheme: stripe,
        secret: "whsec_x",
        store,
        onError: (decision) => {
          expectTypeOf(decision).toEqualTypeOf<WebhookErrorDecision>();
          expectTypeOf(decision.error).toEqualTypeOf<InterlockError>();
          // @ts-expect-error a duplicate never reaches onError: it always gets Interlock's 200
          if (decision.outcome === "duplicate") return undefined;
          return Response.json({ code: decision.error.code }, { status: decision.error.status });
        },
      },
      answered,
    );
  });

  it("withIdempotency(): an error decision, never a replay, so its error is always set", () => {
    withIdempotency(
      {
        store,
        onError: (decision) => {
          expectTypeOf(decision).toEqualTypeOf<IdempotencyErrorDecision>();
          expectTypeOf(decision.error).toEqualTypeOf<InterlockError>();
          // @ts-expect-error a replay never reaches onError: it always goes out as stored
          if (decision.replayed === true) return undefined;
          return Response.json({ code: decision.error.code }, { status: decision.error.status });
        },
      },
      answered,
    );
  });
});
