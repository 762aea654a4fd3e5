/** The types the plugin's augmentation of Fastify gives users (checked by `tsc`; trivially true at run time). */
import { MemoryStore, standardWebhooks, type VerifiedWebhook } from "@interlock/core";
import Fastify from "fastify";
import { describe, expectTypeOf, it } from "vitest";
import { webhook } from "../src/index.js";

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
