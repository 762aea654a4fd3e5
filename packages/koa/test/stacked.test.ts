/**
 * Two `idempotency()` on one route (an app-wide one, and the route's own, each with its key
 * header): each records what the app writes to `ctx.res` itself through the same shared
 * functions, and each must reach its own recording once, the inner one first. Found each other's,
 * an end called itself until the stack overflowed: a 500, or (a timeout's answer, which Koa sends
 * while the route still runs) a RangeError out of Koa's error handler, and the process down. Over
 * real HTTP, on Koa 3 and Koa 2 (the "koa 2" project runs this file on Koa 2).
 */
import type { InterlockEvent } from "@interlock/core";
import { MemoryStore } from "@interlock/core";
import Koa, { type Context, type Middleware } from "koa";
import { afterEach, describe, expect, it, vi } from "vitest";
import { idempotency } from "../src/index.js";
import { type Served, serve } from "./serve.js";
import { newId, route } from "./support.js";

let served: Served | undefined;
afterEach(async () => {
  await served?.close();
  served = undefined;
});

/** How the route answers through `ctx.res` itself. */
const answers: Record<string, (ctx: Context) => void> = {
  "ends ctx.res": (ctx) => {
    ctx.status = 201;
    ctx.res.end("paid");
  },
  "writes, then ends ctx.res": (ctx) => {
    ctx.status = 201;
    ctx.res.write("pa");
    ctx.res.end("id");
  },
  "answers with ctx.respond = false": (ctx) => {
    ctx.respond = false;
    ctx.res.writeHead(201, { "content-type": "text/plain" });
    ctx.res.write("pa");
    ctx.res.end("id");
  },
};

interface World {
  outer: InterlockEvent[];
  inner: InterlockEvent[];
  calls: number;
}

/** An app: `before` (if any), the outer idempotency(), then the route with its own, which answers after `wait`. */
async function start(answer: (ctx: Context) => void, wait: Promise<void>, before?: Middleware): Promise<World> {
  const world: World = { outer: [], inner: [], calls: 0 };
  const app = new Koa();
  app.silent = true;
  if (before) app.use(before);
  app.use(idempotency({ store: new MemoryStore(), principal: false, onEvent: (event) => world.outer.push(event) }));
  const inner = idempotency({
    store: new MemoryStore(),
    principal: false,
    headerName: "x-route-key",
    onEvent: (event) => world.inner.push(event),
  });
  app.use(
    route("POST", "/work", inner, async (ctx: Context) => {
      world.calls++;
      await wait;
      answer(ctx);
    }),
  );
  app.use((ctx) => {
    ctx.body = "alive";
  });
  served = await serve(app);
  return world;
}

const post = (headers: Record<string, string>) =>
  fetch(`${served?.url}/work`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: "{}",
  });

const read = async (response: Response) => ({
  status: response.status,
  replayed: response.headers.get("idempotent-replayed"),
  body: await response.text(),
});

const completed = (events: InterlockEvent[]) => events.filter((event) => event.type === "idempotency.completed");

describe.each(Object.keys(answers))("two idempotency() on a route that %s", (name) => {
  const answer = answers[name] as (ctx: Context) => void;

  it("each records the answer once: a retry with either key is replayed, the route ran once", async () => {
    const world = await start(answer, Promise.resolve());
    const keys = { "idempotency-key": newId("outer"), "x-route-key": newId("inner") };
    expect(await read(await post(keys))).toEqual({ status: 201, replayed: null, body: "paid" });
    await vi.waitFor(() => expect(completed(world.outer)).toHaveLength(1));
    expect(completed(world.inner)).toEqual([expect.objectContaining({ status: 201 })]);
    expect(completed(world.outer)).toEqual([expect.objectContaining({ status: 201 })]);
    // The outer key is replayed by the outer one, the route's key alone by the route's own.
    expect(await read(await post(keys))).toEqual({ status: 201, replayed: "true", body: "paid" });
    expect(await read(await post({ "x-route-key": keys["x-route-key"] }))).toEqual({
      status: 201,
      replayed: "true",
      body: "paid",
    });
    expect(world.calls).toBe(1);
  });
});

describe("two idempotency() on a route that destroys ctx.res before its end", () => {
  it("each releases its key, as for a throw: a retry runs again", async () => {
    const world = await start((ctx) => {
      if (world.calls === 1) ctx.res.destroy();
      else ctx.body = "paid";
    }, Promise.resolve());
    const keys = { "idempotency-key": newId("outer"), "x-route-key": newId("inner") };
    await expect(post(keys)).rejects.toThrow();
    const released = (events: InterlockEvent[]) => events.filter((event) => event.type === "idempotency.released");
    await vi.waitFor(() => expect(released(world.outer)).toEqual([expect.objectContaining({ reason: "error" })]));
    await vi.waitFor(() => expect(released(world.inner)).toEqual([expect.objectContaining({ reason: "error" })]));
    expect(completed(world.outer)).toEqual([]);
    expect(await read(await post(keys))).toEqual({ status: 200, replayed: null, body: "paid" });
    expect(world.calls).toBe(2);
  });
});

describe("two idempotency() behind a request timeout", () => {
  it("the timeout's 503 goes out, the process keeps serving, and both store the route's answer", async () => {
    let finish = () => {};
    const gate = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const timeout: Middleware = async (ctx, next) => {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, 50);
      });
      const done = await Promise.race([next().then(() => true), timedOut.then(() => false)]);
      clearTimeout(timer);
      if (!done) {
        ctx.status = 503;
        ctx.body = "timeout";
      }
    };
    const world = await start(
      (ctx) => {
        ctx.status = 201;
        ctx.body = "paid";
      },
      gate,
      timeout,
    );
    const keys = { "idempotency-key": newId("outer"), "x-route-key": newId("inner") };
    expect(await read(await post(keys))).toEqual({ status: 503, replayed: null, body: "timeout" });
    expect(await (await fetch(`${served?.url}/other`)).text()).toBe("alive");
    finish();
    await vi.waitFor(() => expect(completed(world.outer)).toHaveLength(1));
    await vi.waitFor(() => expect(completed(world.inner)).toHaveLength(1));
    expect(await read(await post(keys))).toEqual({ status: 201, replayed: "true", body: "paid" });
    expect(await read(await post({ "x-route-key": keys["x-route-key"] }))).toEqual({
      status: 201,
      replayed: "true",
      body: "paid",
    });
    expect(world.calls).toBe(1);
  });
});
