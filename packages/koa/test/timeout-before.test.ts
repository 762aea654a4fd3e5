/**
 * A request-timeout middleware mounted before `idempotency()` or `webhook()` that answers the
 * client while the route still runs (its 503 set on `ctx`, which Koa sends once that middleware
 * returns, or written to `ctx.res` itself). Koa drops what the route sets from then on, so
 * `ctx.status` after `next()` is the timeout's 503; settled by it, the key or the delivery would
 * be released and the retry would run the work again. Settled instead by what the route
 * answered, as the Hono adapter does: a retry meanwhile is in flight (409), a retry after is
 * replayed what the route answered (a redelivery, a duplicate), and the route ran once. Over real
 * HTTP, on Koa 3 and Koa 2 (the "koa 2" project runs this file on Koa 2).
 */
import { ServerResponse } from "node:http";
import type { InterlockEvent } from "@interlock/core";
import { MemoryStore, standardWebhooks } from "@interlock/core";
import Koa, { type Context, type Middleware } from "koa";
import { afterEach, describe, expect, it, vi } from "vitest";
import { idempotency, webhook } from "../src/index.js";
import { type Served, serve } from "./serve.js";
import { delivery, newId, route, SECRET } from "./support.js";

let served: Served | undefined;
afterEach(async () => {
  await served?.close();
  served = undefined;
});

/** How the timeout answers: on `ctx`, for Koa to send, or on `ctx.res` itself. */
const timeouts: Record<string, (ctx: Context) => void> = {
  "sets ctx.status and ctx.body": (ctx) => {
    ctx.status = 503;
    ctx.body = { error: "timeout" };
  },
  "writes ctx.res itself": (ctx) => {
    ctx.res.writeHead(503, { "content-type": "application/json" });
    ctx.res.end('{"error":"timeout"}');
  },
};

/** A typical request timeout: answers after `ms` if the chain after it has not returned by then. */
function requestTimeout(ms: number, answer: (ctx: Context) => void): Middleware {
  return async (ctx, next) => {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        answer(ctx);
        resolve();
      }, ms);
    });
    await Promise.race([next(), timedOut]);
    clearTimeout(timer);
  };
}

interface World {
  events: InterlockEvent[];
  calls: number;
  /** What the route read back after it answered: Koa's view, as without Interlock. */
  seen: Array<{ headerSent: boolean; status: number }>;
  /** Lets the route finish its work and answer. */
  finish: () => void;
  /** Set once the route has answered (or thrown). */
  done: boolean;
}

/**
 * An app: the timeout (50 ms), then a route behind `guard`, whose handler waits until the test
 * calls `world.finish()`, then `answer`s.
 */
async function start(
  timeout: (ctx: Context) => void,
  // biome-ignore lint/suspicious/noExplicitAny: Interlock's middleware of either kind, on one route.
  guard: (world: World) => Middleware<any, any>,
  answer: (ctx: Context) => void,
): Promise<World> {
  let finish = () => {};
  const gate = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const world: World = { events: [], calls: 0, seen: [], finish, done: false };
  const app = new Koa();
  app.silent = true;
  app.use(requestTimeout(50, timeout));
  app.use(
    route("POST", "/work", guard(world), async (ctx: Context) => {
      world.calls++;
      await gate;
      try {
        answer(ctx);
        world.seen.push({ headerSent: ctx.headerSent, status: ctx.status });
      } finally {
        world.done = true;
      }
    }),
  );
  served = await serve(app);
  return world;
}

const keyed = (world: World) =>
  idempotency({ store: new MemoryStore(), principal: false, onEvent: (event) => world.events.push(event) });

const post = (headers: Record<string, string>, body: string | Uint8Array = "{}") =>
  fetch(`${served?.url}/work`, { method: "POST", headers, body: body as BodyInit });

const settled = (world: World, type: string) =>
  vi.waitFor(() => expect(world.events.map((event) => event.type)).toContain(type));

describe.each(Object.keys(timeouts))("idempotency() behind a request timeout that %s", (name) => {
  const timeout = timeouts[name] as (ctx: Context) => void;

  it("the route's answer, which Koa dropped, is stored: a retry meanwhile is in flight, one after replayed; the route ran once", async () => {
    const world = await start(timeout, keyed, (ctx) => {
      ctx.status = 201;
      ctx.set("Location", "/payments/pay_1");
      ctx.body = { id: "pay_1" };
    });
    const headers = { "content-type": "application/json", "idempotency-key": newId("key") };
    const first = await post(headers);
    expect([first.status, await first.text()]).toEqual([503, '{"error":"timeout"}']);
    const meanwhile = await post(headers);
    expect([meanwhile.status, meanwhile.headers.get("content-type")]).toEqual([409, "application/problem+json"]);
    await meanwhile.body?.cancel();
    world.finish();
    await settled(world, "idempotency.completed");
    const after = await post(headers);
    expect({
      status: after.status,
      replayed: after.headers.get("idempotent-replayed"),
      type: after.headers.get("content-type"),
      location: after.headers.get("location"),
      body: await after.json(),
    }).toEqual({
      status: 201,
      replayed: "true",
      type: "application/json; charset=utf-8",
      location: "/payments/pay_1",
      body: { id: "pay_1" },
    });
    expect(world.calls).toBe(1);
    // The route sees what Koa shows without Interlock: its head went out, the timeout's status.
    expect(world.seen).toEqual([{ headerSent: true, status: 503 }]);
  });

  it("a body alone is answered 200 as Koa answers it, typed by Koa's rules", async () => {
    const world = await start(timeout, keyed, (ctx) => {
      ctx.body = "<p>paid</p>";
    });
    const headers = { "content-type": "application/json", "idempotency-key": newId("key") };
    expect((await post(headers)).status).toBe(503);
    world.finish();
    await settled(world, "idempotency.completed");
    const after = await post(headers);
    expect([after.status, after.headers.get("content-type"), await after.text()]).toEqual([
      200,
      "text/html; charset=utf-8",
      "<p>paid</p>",
    ]);
    expect(world.calls).toBe(1);
  });

  it("a status alone is answered with Koa's status text, not the timeout's body", async () => {
    const world = await start(timeout, keyed, (ctx) => {
      ctx.status = 202;
    });
    const headers = { "content-type": "application/json", "idempotency-key": newId("key") };
    expect((await post(headers)).status).toBe(503);
    world.finish();
    await settled(world, "idempotency.completed");
    const after = await post(headers);
    expect([after.status, after.headers.get("content-type"), await after.text()]).toEqual([
      202,
      "text/plain; charset=utf-8",
      "Accepted",
    ]);
  });

  it("an error status the route answers then releases the key, a 4xx too (it may be an error mapper's, after the fact): the retry runs again", async () => {
    const world = await start(timeout, keyed, (ctx) => {
      ctx.status = world.calls === 1 ? 422 : 201;
      ctx.body = { attempt: world.calls };
    });
    const headers = { "content-type": "application/json", "idempotency-key": newId("key") };
    expect((await post(headers)).status).toBe(503);
    world.finish();
    await settled(world, "idempotency.released");
    const retry = await post(headers);
    expect([retry.status, retry.headers.get("idempotent-replayed"), await retry.json()]).toEqual([
      201,
      null,
      { attempt: 2 },
    ]);
    expect(world.calls).toBe(2);
  });

  it("a route that throws then releases the key: the retry runs again", async () => {
    const world = await start(timeout, keyed, () => {
      throw new Error("payment failed");
    });
    const headers = { "content-type": "application/json", "idempotency-key": newId("key") };
    expect((await post(headers)).status).toBe(503);
    world.finish();
    await vi.waitFor(() =>
      expect(world.events).toContainEqual(expect.objectContaining({ type: "idempotency.released", reason: "error" })),
    );
    expect(world.done).toBe(true);
  });
});

describe.each(Object.keys(timeouts))("webhook() behind a request timeout that %s", (name) => {
  const timeout = timeouts[name] as (ctx: Context) => void;
  const receiving = (world: World) =>
    webhook({
      scheme: standardWebhooks,
      secret: SECRET,
      store: new MemoryStore(),
      onEvent: (e) => world.events.push(e),
    });

  it("the route's 2xx, which Koa dropped, records the delivery: a redelivery meanwhile is in flight, one after a duplicate", async () => {
    const world = await start(timeout, receiving, (ctx) => {
      ctx.body = { received: true };
    });
    const sent = await delivery('{"type":"payment.succeeded"}');
    const first = await post(sent.headers, sent.body);
    expect([first.status, await first.text()]).toEqual([503, '{"error":"timeout"}']);
    const meanwhile = await post(sent.headers, sent.body);
    expect(meanwhile.status).toBe(409);
    await meanwhile.body?.cancel();
    world.finish();
    await settled(world, "webhook.processed");
    const after = await post(sent.headers, sent.body);
    expect([after.status, await after.json()]).toEqual([200, { duplicate: true, id: sent.id }]);
    expect(world.calls).toBe(1);
    expect(world.events.map((event) => event.type)).not.toContain("webhook.handler_failed");
  });

  it("a non-2xx the route answers then releases the delivery: the redelivery runs again", async () => {
    const world = await start(timeout, receiving, (ctx) => {
      ctx.status = world.calls === 1 ? 500 : 204;
    });
    const sent = await delivery('{"type":"payment.succeeded"}');
    expect((await post(sent.headers, sent.body)).status).toBe(503);
    world.finish();
    await settled(world, "webhook.handler_failed");
    expect(world.events).toContainEqual(expect.objectContaining({ type: "webhook.handler_failed", status: 500 }));
    expect((await post(sent.headers, sent.body)).status).toBe(204);
    expect(world.calls).toBe(2);
  });
});

describe("the head watched while the route runs", () => {
  it("is watched through the same function on every response, and left to Node once the route has returned", async () => {
    const seen: unknown[] = [];
    const app = new Koa();
    app.silent = true;
    const store = new MemoryStore();
    app.use(async (ctx, next) => {
      await next();
      seen.push(ctx.res.writeHead); // after Interlock's middleware returned
    });
    app.use(
      route("POST", "/work", idempotency({ store, principal: false }), (ctx: Context) => {
        seen.push(ctx.res.writeHead);
        ctx.status = 201;
      }),
    );
    served = await serve(app);
    for (const key of ["k1", "k2"]) expect((await post({ "idempotency-key": key })).status).toBe(201);
    const [during1, after1, during2] = seen;
    expect(during1).not.toBe(ServerResponse.prototype.writeHead); // watched
    expect(during2).toBe(during1);
    expect(after1).toBe(ServerResponse.prototype.writeHead);
  });
});
