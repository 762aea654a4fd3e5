/**
 * Both builds of the package loaded in one process, as in an ESM app whose CommonJS dependency
 * requires `@interlock/fastify` (or the reverse): two copies of every module. The plugin of
 * either copy attaches the hook sets of either, and a route that names sets still fails closed
 * without the plugin. Runs against dist/: build first (`pnpm --filter @interlock/fastify run build`).
 */

import * as esmCore from "@interlock/core";
import { MemoryStore, signWebhook, standardWebhooks } from "@interlock/core";
import { type Build, bothBuildsBeforeAll } from "@interlock/test-harness/dual-builds";
import Fastify, { type RouteOptions } from "fastify";
import { describe, expect, it } from "vitest";
import { closeAfterTest, SECRET, serve } from "./app.js";

type Package = typeof import("../src/index.js");

const copies = bothBuildsBeforeAll<Package>("fastify", esmCore, (build) => build.interlock);

async function delivery(id: string, body: string, contentType: string, secret = SECRET) {
  const signed = await signWebhook({ scheme: standardWebhooks, secret, body, id, timestamp: Date.now() / 1000 });
  return { method: "POST", headers: { ...signed.headers, "content-type": contentType }, body };
}

const pay = (url: string) =>
  fetch(`${url}/pay`, {
    method: "POST",
    headers: { "idempotency-key": "k", "content-type": "application/json" },
    body: "{}",
  });

describe.each<[Build, Build]>([
  ["ESM", "CJS"],
  ["CJS", "ESM"],
  ["ESM", "ESM"],
  ["CJS", "CJS"],
])("both builds loaded, the plugin of the %s build and hook sets of the %s build", (pluginCopy, setsCopy) => {
  /** An app with a webhook route (whose own preHandler notes what it saw) and an idempotent one. */
  async function app(ran: string[]) {
    const { interlock } = copies[pluginCopy];
    const { idempotency, webhook } = copies[setsCopy];
    const app = Fastify({ logger: false });
    await app.register(interlock);
    const hooks = webhook({ scheme: standardWebhooks, secret: SECRET, store: new MemoryStore() });
    app.post(
      "/hook",
      {
        config: { interlock: hooks },
        // The route's own hook runs after the webhook set's: it only ever sees verified deliveries.
        preHandler: async (request) => void ran.push(request.webhook ? "own:verified" : "own:UNVERIFIED"),
      },
      async (request) => {
        ran.push("hook");
        return { id: request.webhook?.id, body: request.body };
      },
    );
    const payments = idempotency({ store: new MemoryStore(), principal: false });
    app.post("/pay", { config: { interlock: payments } }, async (_request, reply) => {
      ran.push("pay");
      return reply.code(201).send({ runs: ran.filter((step) => step === "pay").length });
    });
    return serve(app);
  }

  it("a forged delivery is refused 401, a valid one processed once, its duplicate answered 200", async () => {
    const ran: string[] = [];
    const url = await app(ran);
    const json = "application/json";

    const forged = await fetch(`${url}/hook`, await delivery("msg_forged", "{}", json, `${SECRET.slice(0, -4)}AAAA`));
    expect([forged.status, ((await forged.json()) as { code: string }).code]).toEqual([401, "no_matching_signature"]);

    const valid = await delivery("msg_valid", '{"type":"invoice.paid"}', json);
    const processed = await fetch(`${url}/hook`, valid);
    expect([processed.status, await processed.json()]).toEqual([
      200,
      { id: "msg_valid", body: { type: "invoice.paid" } },
    ]);
    const duplicate = await fetch(`${url}/hook`, valid);
    expect([duplicate.status, await duplicate.json()]).toEqual([200, { duplicate: true, id: "msg_valid" }]);
    expect(ran).toEqual(["own:verified", "hook"]);
  });

  it("a delivery of a type no parser takes reaches the set through the plugin's body fallback", async () => {
    const url = await app([]);
    const form = await fetch(`${url}/hook`, await delivery("msg_form", "a=1", "application/x-www-form-urlencoded"));
    expect([form.status, await form.json()]).toEqual([200, { id: "msg_form", body: "a=1" }]);
  });

  it("an attached route keeps no fail-closed check: it pays nothing for it", async () => {
    const app = Fastify({ logger: false });
    closeAfterTest(app);
    await app.register(copies[pluginCopy].interlock);
    const onRequest: unknown[][] = [];
    // Added after the plugin's: sees the route as the plugin left it.
    app.addHook("onRoute", (route: RouteOptions) => void onRequest.push([route.onRequest ?? []].flat()));
    const hooks = copies[setsCopy].webhook({ scheme: standardWebhooks, secret: SECRET, store: new MemoryStore() });
    app.post("/hook", { config: { interlock: hooks } }, async () => ({ ok: true }));
    expect(onRequest).toEqual([[]]);
  });

  it("a signed delivery whose payload cannot be decoded is 400 payload_not_decodable, whether the handler or Fastify's JSON parser finds it out", async () => {
    const app = Fastify({ logger: false });
    await app.register(copies[pluginCopy].interlock);
    app.setErrorHandler((_error, _request, reply) => reply.code(500).send({ error: "handler failed" }));
    const hooks = copies[setsCopy].webhook({ scheme: standardWebhooks, secret: SECRET, store: new MemoryStore() });
    app.post("/hook", { config: { interlock: hooks } }, async (request) => ({ payload: request.webhook?.payload }));
    const url = await serve(app);
    for (const type of ["text/plain", "application/json"]) {
      const response = await fetch(`${url}/hook`, await delivery(`msg_${type}`, "not json {", type));
      expect([type, response.status, ((await response.json()) as { code: string }).code]).toEqual([
        type,
        400,
        "payload_not_decodable",
      ]);
    }
  });

  it("a retried idempotent request is replayed, the handler run once", async () => {
    const ran: string[] = [];
    const url = await app(ran);
    const first = await pay(url);
    expect([first.status, await first.json()]).toEqual([201, { runs: 1 }]);
    const retry = await pay(url);
    expect([retry.status, await retry.json(), retry.headers.get("idempotent-replayed")]).toEqual([
      201,
      { runs: 1 },
      "true",
    ]);
    expect(ran).toEqual(["pay"]);
  });
});

describe("both builds loaded, each registering its plugin in a scope of its own", () => {
  it("each scope's routes work: the check one copy adds to the root knows the routes the other attached", async () => {
    const app = Fastify({ logger: false });
    for (const copy of ["ESM", "CJS"] as const) {
      const { interlock, webhook } = copies[copy];
      // Registered in a child scope, the plugin guards the root (routes out of its reach), once per app.
      await app.register(async (scope) => {
        await scope.register(interlock);
        const hooks = webhook({ scheme: standardWebhooks, secret: SECRET, store: new MemoryStore() });
        scope.post(`/${copy}`, { config: { interlock: hooks } }, async (request) => ({ id: request.webhook?.id }));
      });
    }
    const url = await serve(app);
    for (const copy of ["ESM", "CJS"] as const) {
      const response = await fetch(`${url}/${copy}`, await delivery(`msg_${copy}`, "{}", "application/json"));
      expect([copy, response.status, await response.json()]).toEqual([copy, 200, { id: `msg_${copy}` }]);
    }
  });
});

describe("both builds loaded, without the plugin", () => {
  it.each<Build>(["ESM", "CJS"])(
    "a route naming sets of the %s build gets one fail-closed check, and answers 500 invalid_configuration",
    async (setsCopy) => {
      const checks: unknown[][] = [];
      const app = Fastify({ logger: false });
      // Runs after the checks both copies add to every app as it is made.
      app.addHook("onRoute", (route: RouteOptions) => void checks.push([route.onRequest ?? []].flat()));
      const hooks = copies[setsCopy].webhook({ scheme: standardWebhooks, secret: SECRET, store: new MemoryStore() });
      let ran = false;
      app.post("/hook", { config: { interlock: hooks } }, async () => {
        ran = true;
        return { ok: true };
      });
      const url = await serve(app);
      expect(checks.map((onRequest) => onRequest.length)).toEqual([1]);
      const response = await fetch(`${url}/hook`, await delivery("msg_1", "{}", "application/json"));
      expect([response.status, ((await response.json()) as { code: string }).code]).toEqual([
        500,
        "invalid_configuration",
      ]);
      expect(ran).toBe(false);
    },
  );
});
