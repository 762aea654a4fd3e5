/** How the hook sets reach a route: the plugin's `config.interlock`, or spread into route options. */

import type { AddressInfo } from "node:net";
import { MemoryStore, signWebhook, standardWebhooks } from "@interlock/core";
import Fastify from "fastify";
import { afterEach, describe, expect, it } from "vitest";
import { idempotency, interlock, webhook } from "../src/index.js";

const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const apps: Array<{ close(): Promise<unknown> }> = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

async function serve(app: ReturnType<typeof Fastify>) {
  apps.push(app);
  await app.listen({ port: 0, host: "127.0.0.1" });
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

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
const idempotencyOptions = () => ({ store: new MemoryStore(), principal: false as const });

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
                return request.context.webhook.id;
              },
            }),
          ],
        },
      },
      async (request) => ({ id: request.webhook.id }),
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
      return { id: request.webhook.id };
    });
    const url = await serve(app);

    const forged = { method: "POST", headers: { "content-type": "application/json" }, body: '{"type":"forged"}' };
    const early = await fetch(`${url}/early`, forged);
    expect(early.status).toBe(500);
    expect(early.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    const problem = (await early.json()) as { code: string; detail: string };
    expect(problem.code).toBe("invalid_configuration");
    expect(problem.detail).toContain("POST /early");
    expect(problem.detail).toContain("before `await app.register(interlock)`");

    expect(await (await fetch(`${url}/plain`)).json()).toEqual({ plain: true });
    expect((await fetch(`${url}/late`, forged)).status).toBe(400); // no signature headers at all
    const good = await fetch(`${url}/late`, await delivery("msg_late"));
    expect([good.status, await good.json()]).toEqual([200, { id: "msg_late" }]);
    expect(ran).toEqual(["late"]);
  });
});

describe("without the plugin", () => {
  it("the sets are plain route options: spread them into a route", async () => {
    const app = Fastify();
    let calls = 0;
    app.post("/hook", webhook(webhookOptions()), async (request) => ({ id: request.webhook.id }));
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
