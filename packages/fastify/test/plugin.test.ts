/** How the hook sets reach a route: the plugin's `config.interlock`, or spread into route options. */

import { MemoryStore, signWebhook, standardWebhooks } from "@interlock/core";
import Fastify, { type FastifyInstance } from "fastify";
import { describe, expect, it } from "vitest";
import { idempotency, interlock, webhook } from "../src/index.js";
import { closeAfterTest, SECRET, serve } from "./app.js";

async function delivery(id: string, extra: Record<string, string> = {}) {
  const body = '{"type":"invoice.paid"}';
  const signed = await signWebhook({
    scheme: standardWebhooks,
    secret: SECRET,
    body,
    id,
    timestamp: Date.now() / 1000,
  });
  return { method: "POST", headers: { ...signed.headers, "content-type": "application/json", ...extra }, body };
}

const webhookOptions = () => ({ scheme: standardWebhooks, secret: SECRET, store: new MemoryStore() });

/** A delivery with no signature: verified, it is a 400; on a route whose hooks never ran, anything. */
const FORGED = { method: "POST", headers: { "content-type": "application/json" }, body: '{"type":"forged"}' };

/** Sends `FORGED` to `route`, whose hooks were never attached: 500 invalid_configuration, naming the route and `why`. */
async function expectUnattached(url: string, route: string, why: string) {
  const response = await fetch(`${url}${route}`, FORGED);
  expect(response.status).toBe(500);
  expect(response.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  const problem = (await response.json()) as { code: string; detail: string };
  expect(problem.code).toBe("invalid_configuration");
  expect(problem.detail).toContain(`POST ${route}`);
  expect(problem.detail).toContain(why);
}
const idempotencyOptions = () => ({ store: new MemoryStore(), principal: false as const });

/** POST /pay with the key "k" and an empty JSON object. */
const payWithKey = (url: string) =>
  fetch(`${url}/pay`, {
    method: "POST",
    headers: { "idempotency-key": "k", "content-type": "application/json" },
    body: "{}",
  });

describe("the interlock plugin", () => {
  it("merges several sets with the route's own hooks: webhook before them, idempotency after", async () => {
    const order: string[] = [];
    const app = Fastify();
    await app.register(interlock); // before the routes: its onRoute hook only sees routes added after it
    app.post(
      "/hook",
      {
        preHandler: (request, _reply, done) => {
          order.push(`own:${request.webhook?.id}`);
          done();
        },
        config: {
          interlock: [
            webhook(webhookOptions()),
            idempotency({
              ...idempotencyOptions(),
              principal: (request) => {
                order.push("idempotency");
                return request.context.webhook!.id;
              },
            }),
          ],
        },
      },
      async (request) => ({ id: request.webhook!.id }),
    );
    const url = await serve(app);
    const response = await fetch(`${url}/hook`, await delivery("msg_1", { "idempotency-key": "k1" }));
    expect([response.status, await response.json()]).toEqual([200, { id: "msg_1" }]);
    expect(order).toEqual(["own:msg_1", "idempotency"]);
  });

  it("declares request.webhook (null where no webhook hooks run) and tolerates being registered twice", async () => {
    const app = Fastify();
    await app.register(interlock);
    await app.register(interlock);
    app.get("/plain", async (request) => ({ webhook: request.webhook }));
    const url = await serve(app);
    expect(await (await fetch(`${url}/plain`)).json()).toEqual({ webhook: null });
  });
  it.each<[string, (app: FastifyInstance, routes: (scope: FastifyInstance) => void) => Promise<void>]>([
    [
      "twice in one scope",
      async (app, routes) => {
        await app.register(interlock);
        await app.register(interlock);
        routes(app);
      },
    ],
    [
      "at the root and again in a child plugin that registers it itself",
      async (app, routes) => {
        await app.register(interlock);
        await app.register(async (child) => {
          await child.register(interlock);
          routes(child);
        });
      },
    ],
  ])(
    "registered %s, attaches each route's hooks once: the key runs once, the delivery is processed once",
    async (_name, setup) => {
      const ran: string[] = [];
      const store = new MemoryStore();
      const app = Fastify();
      await setup(app, (scope) => {
        scope.post(
          "/pay",
          { config: { interlock: idempotency({ store, principal: false }) } },
          async (_request, reply) => {
            ran.push("pay");
            return reply.code(201).send({ runs: ran.length });
          },
        );
        scope.post("/hook", { config: { interlock: webhook({ ...webhookOptions(), store }) } }, async (request) => {
          ran.push("hook");
          return { id: request.webhook!.id };
        });
      });
      const url = await serve(app);

      const pay = () => payWithKey(url);
      const first = await pay();
      expect([first.status, await first.json()]).toEqual([201, { runs: 1 }]);
      const retry = await pay();
      expect([retry.status, await retry.json(), retry.headers.get("idempotent-replayed")]).toEqual([
        201,
        { runs: 1 },
        "true",
      ]);

      const d = await delivery("msg_twice");
      const processed = await fetch(`${url}/hook`, d);
      expect([processed.status, await processed.json()]).toEqual([200, { id: "msg_twice" }]);
      const duplicate = await fetch(`${url}/hook`, d);
      expect([duplicate.status, await duplicate.json()]).toEqual([200, { duplicate: true, id: "msg_twice" }]);
      expect(ran).toEqual(["pay", "hook"]);
    },
  );

  it("attaches a set once to a route that also spreads it into its options", async () => {
    let calls = 0;
    const app = Fastify();
    await app.register(interlock);
    const hooks = idempotency(idempotencyOptions());
    app.post("/pay", { ...hooks, config: { interlock: hooks } }, async (_request, reply) =>
      reply.code(201).send({ calls: ++calls }),
    );
    const url = await serve(app);
    const pay = () => payWithKey(url);
    expect([(await pay()).status, (await pay()).headers.get("idempotent-replayed"), calls]).toEqual([201, "true", 1]);
  });

  it("reaches routes in child plugins and under prefixes; the key's scope is the full pattern", async () => {
    const app = Fastify();
    await app.register(interlock);
    const routes: string[] = [];
    const hooks = idempotency({ ...idempotencyOptions(), onEvent: (event) => routes.push(event.route ?? "none") });
    await app.register(
      async (child) => {
        child.post("/orders/:id/refunds", { config: { interlock: hooks } }, async () => ({ ok: true }));
      },
      { prefix: "/v1" },
    );
    const url = await serve(app);
    const response = await fetch(`${url}/v1/orders/42/refunds?x=1`, {
      method: "POST",
      headers: { "idempotency-key": "k", "content-type": "application/json" },
      body: "{}",
    });
    expect(response.status).toBe(200);
    expect(routes[0]).toBe("/v1/orders/:id/refunds");
  });
});

describe("routes declared before the plugin", () => {
  it("fail closed: a route naming Interlock hooks answers 500 invalid_configuration and never runs; others work", async () => {
    const ran: string[] = [];
    const app = Fastify({ logger: false });
    const hooks = webhook(webhookOptions());
    app.post("/early", { config: { interlock: hooks } }, async () => {
      ran.push("early");
      return { ok: true };
    });
    app.get("/plain", async () => ({ plain: true }));
    await app.register(interlock);
    app.post("/late", { config: { interlock: hooks } }, async (request) => {
      ran.push("late");
      return { id: request.webhook!.id };
    });
    const url = await serve(app);

    await expectUnattached(url, "/early", "before `await app.register(interlock)`");

    expect(await (await fetch(`${url}/plain`)).json()).toEqual({ plain: true });
    expect((await fetch(`${url}/late`, FORGED)).status).toBe(400); // no signature headers at all
    const good = await fetch(`${url}/late`, await delivery("msg_late"));
    expect([good.status, await good.json()]).toEqual([200, { id: "msg_late" }]);
    expect(ran).toEqual(["late"]);
  });
});

describe("an app that never registered the plugin, and near misses", () => {
  it("a route naming Interlock hooks in config.interlock fails closed: 500 invalid_configuration, the handler never runs", async () => {
    const ran: string[] = [];
    const app = Fastify({ logger: false });
    app.post("/hook", { config: { interlock: webhook(webhookOptions()) } }, async () => {
      ran.push("hook");
      return { ok: true };
    });
    app.get("/plain", async () => ({ plain: true }));
    const url = await serve(app);
    await expectUnattached(url, "/hook", "register the plugin at the root before declaring routes");
    expect(await (await fetch(`${url}/plain`)).json()).toEqual({ plain: true });
    expect(ran).toEqual([]);
  });

  it("config.interLock (a near miss of the key) is refused when the route is declared", async () => {
    const app = Fastify({ logger: false });
    closeAfterTest(app);
    await app.register(interlock);
    expect(() =>
      app.post("/hook", { config: { interLock: webhook(webhookOptions()) } as never }, async () => ({ ok: true })),
    ).toThrow(/config\.interLock is not read: name it config\.interlock/);
  });

  it("a spread set whose preHandler the route's own replaced is refused when the route is declared", async () => {
    const app = Fastify({ logger: false });
    closeAfterTest(app);
    const auth = async () => {};
    expect(() =>
      app.post("/hook", { ...webhook(webhookOptions()), preHandler: auth }, async () => ({ ok: true })),
    ).toThrow(/Interlock's preHandler is missing from the route's options/);
    // Given as a list, both run: the route is declared.
    const hooks = idempotency(idempotencyOptions());
    expect(() =>
      app.post("/pay", { ...hooks, preHandler: [hooks.preHandler, auth] }, async () => ({ ok: true })),
    ).not.toThrow();
  });
});

describe("routes the plugin's registration does not reach", () => {
  it.each<[string, (app: FastifyInstance, route: (scope: FastifyInstance) => void) => Promise<void>]>([
    [
      "in the root, declared after a child plugin that registered it",
      async (app, route) => {
        await app.register(async (api) => {
          await api.register(interlock);
        });
        route(app);
      },
    ],
    [
      "in a sibling plugin registered after the one that registered it",
      async (app, route) => {
        await app.register(async (api) => {
          await api.register(interlock);
        });
        await app.register(async (sibling) => route(sibling));
      },
    ],
    [
      "in a sibling plugin registered before the one that registered it",
      async (app, route) => {
        await app.register(async (sibling) => route(sibling));
        await app.register(async (api) => {
          await api.register(interlock);
        });
      },
    ],
    [
      "in the root, declared before a child plugin registered it",
      async (app, route) => {
        route(app);
        await app.register(async (api) => {
          await api.register(interlock);
        });
      },
    ],
    [
      "in a plugin between the root and the one that registered it",
      async (app, route) => {
        await app.register(async (parent) => {
          await parent.register(async (api) => {
            await api.register(interlock);
          });
          route(parent);
        });
      },
    ],
    [
      "in a child plugin declared before the root registered it",
      async (app, route) => {
        await app.register(async (child) => route(child));
        await app.register(interlock);
      },
    ],
  ])("fail closed %s: 500 invalid_configuration, the handler never runs", async (_name, setup) => {
    const ran: unknown[] = [];
    const app = Fastify({ logger: false });
    await setup(app, (scope) => {
      scope.post("/hook", { config: { interlock: webhook(webhookOptions()) } }, async (request) => {
        ran.push(request.webhook);
        return { ok: true };
      });
    });
    const url = await serve(app);
    await expectUnattached(url, "/hook", "register the plugin at the root before declaring routes");
    expect(ran).toEqual([]);
  });

  it("fail closed when they share their options object with a route it reached", async () => {
    const ran: string[] = [];
    const app = Fastify({ logger: false });
    const protectedRoute = { config: { interlock: webhook(webhookOptions()) } };
    await app.register(async (api) => {
      await api.register(interlock);
      api.post("/api/hook", protectedRoute, async (request) => ({ id: request.webhook!.id }));
    });
    app.post("/hook", protectedRoute, async () => {
      ran.push("/hook");
      return { ok: true };
    });
    const url = await serve(app);
    await expectUnattached(url, "/hook", "register the plugin at the root before declaring routes");
    expect((await fetch(`${url}/api/hook`, FORGED)).status).toBe(400); // verified: no signature headers
    expect(ran).toEqual([]);
  });

  it("the routes it does reach still work, in its own scope and in the scopes it makes", async () => {
    const app = Fastify({ logger: false });
    const hooks = webhook(webhookOptions());
    await app.register(async (api) => {
      await api.register(interlock);
      api.post("/api/hook", { config: { interlock: hooks } }, async (request) => ({ id: request.webhook!.id }));
      await api.register(async (nested) => {
        nested.post("/api/nested", { config: { interlock: hooks } }, async (request) => ({ id: request.webhook!.id }));
      });
    });
    app.get("/plain", async () => ({ plain: true }));
    const url = await serve(app);
    const own = await fetch(`${url}/api/hook`, await delivery("msg_own"));
    expect([own.status, await own.json()]).toEqual([200, { id: "msg_own" }]);
    const nested = await fetch(`${url}/api/nested`, await delivery("msg_nested"));
    expect([nested.status, await nested.json()]).toEqual([200, { id: "msg_nested" }]);
    expect(await (await fetch(`${url}/plain`)).json()).toEqual({ plain: true });
  });
});

describe("without the plugin", () => {
  it("the sets are plain route options: spread them into a route", async () => {
    const app = Fastify();
    let calls = 0;
    app.post("/hook", webhook(webhookOptions()), async (request) => ({ id: request.webhook!.id }));
    app.post("/pay", idempotency(idempotencyOptions()), async (_request, reply) =>
      reply.code(201).send({ calls: ++calls }),
    );
    const url = await serve(app);
    const d = await delivery("msg_2");
    expect(await (await fetch(`${url}/hook`, d)).json()).toEqual({ id: "msg_2" });
    expect(await (await fetch(`${url}/hook`, d)).json()).toEqual({ duplicate: true, id: "msg_2" });
    const pay = () =>
      fetch(`${url}/pay`, {
        method: "POST",
        headers: { "idempotency-key": "k", "content-type": "application/json" },
        body: "{}",
      });
    expect(await (await pay()).json()).toEqual({ calls: 1 });
    const replay = await pay();
    expect([replay.status, await replay.json(), replay.headers.get("idempotent-replayed")]).toEqual([
      201,
      { calls: 1 },
      "true",
    ]);
  });
});
