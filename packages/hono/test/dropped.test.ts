/**
 * A middleware mounted before `idempotency()` that replaces `c.res` after `next()`: one that
 * drops the route's answer unread (an error page made anew) must not leave the key in flight
 * until its lease expires, and one that reads the answer (re-wrapping it) must not make it
 * recorded twice. Over real HTTP on 127.0.0.1, with the route's answer a `Response` it built
 * itself, which is recorded as it goes out.
 */
import { type IdempotencyEvent, type InterlockEvent, MemoryStore } from "@interlock/core";
import { type Context, Hono, type MiddlewareHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type IdempotencyMiddlewareOptions, idempotency } from "../src/index.js";
import { start, uniqueId } from "./helpers.js";

/** An error mapper: the route's status, with a page of its own; the route's body is never read. */
const customPage: MiddlewareHandler = async (c, next) => {
  await next();
  c.res = new Response("custom page", { status: c.res.status });
};

/** Upper-cases the route's answer: reads it whole, then re-wraps it. */
const shouting: MiddlewareHandler = async (c, next) => {
  await next();
  const text = await c.res.text();
  c.res = new Response(text.toUpperCase(), c.res);
};

const encoder = new TextEncoder();

/** A body of these pieces, each written when the reader asks for it. */
function piecewise(pieces: string[]): ReadableStream<Uint8Array> {
  const rest = [...pieces];
  return new ReadableStream({
    pull(controller) {
      const piece = rest.shift();
      if (piece === undefined) controller.close();
      else controller.enqueue(encoder.encode(piece));
    },
  });
}

/** An answer whose body has its first part ready, then does what `pull` does (nothing: it never ends). */
function firstPartThen(
  first: string,
  pull?: (controller: ReadableStreamDefaultController<Uint8Array>) => void,
): Response {
  return new Response(
    new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(encoder.encode(first));
      },
      ...(pull ? { pull } : {}),
    }),
  );
}

interface World {
  url: string;
  calls: number;
  events: InterlockEvent[];
  store: MemoryStore;
  clock: { ms: number };
}

/** `outer`, then `idempotency()`, then a route answering `answer(c)`; counts its runs. */
async function serve(
  outer: MiddlewareHandler,
  answer: (c: Context) => Response,
  extra: Partial<IdempotencyMiddlewareOptions> & { maxRecordBytes?: number } = {},
): Promise<World> {
  const { maxRecordBytes, ...engine } = extra;
  const clock = { ms: Date.now() };
  const store = new MemoryStore({ now: () => clock.ms, ...(maxRecordBytes ? { maxRecordBytes } : {}) });
  const world = { url: "", calls: 0, events: [] as InterlockEvent[], store, clock };
  const app = new Hono();
  app.use(outer);
  app.use(idempotency({ store, principal: false, onEvent: (event) => world.events.push(event), ...engine }));
  app.post("/", (c) => {
    world.calls++;
    return answer(c);
  });
  world.url = await start(app);
  return world;
}

const send = (url: string, key: string) =>
  fetch(url, { method: "POST", headers: { "idempotency-key": key }, body: "{}" });

const types = (events: InterlockEvent[]) => events.map((event) => event.type);

const released = (events: InterlockEvent[]) =>
  events.flatMap((e) =>
    e.type === "idempotency.released" ? [(e as Extract<IdempotencyEvent, { reason: unknown }>).reason] : [],
  );

// Settling a dropped answer happens in the background: whatever fails there must be caught.
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => void unhandled.push(reason);
beforeEach(() => {
  unhandled.length = 0;
  process.on("unhandledRejection", onUnhandled);
});
afterEach(async () => {
  // A macrotask later: a rejection nobody handled has been reported by then.
  await new Promise((resolve) => setTimeout(resolve, 0));
  process.off("unhandledRejection", onUnhandled);
  expect(unhandled).toEqual([]);
});

/**
 * `outer` around a route answering 201 "paid in full" piece by piece: the client gets `status`
 * and `seen`, the retry is a replay that gets them again, and the route ran once.
 */
async function expectRecordedOnce(outer: MiddlewareHandler, status: number, seen: string): Promise<void> {
  const world = await serve(
    outer,
    () => new Response(piecewise(["paid ", "in full"]), { status: 201, headers: { "content-type": "text/plain" } }),
  );
  const key = uniqueId("key");
  const first = await send(world.url, key);
  expect([first.status, await first.text()]).toEqual([status, seen]);
  const retry = await send(world.url, key);
  expect([retry.status, await retry.text()]).toEqual([status, seen]);
  expect(retry.headers.get("idempotent-replayed")).toBe("true");
  expect(world.calls).toBe(1);
  expect(types(world.events)).toEqual(["idempotency.first", "idempotency.completed", "idempotency.replayed"]);
}

describe("an outer middleware that replaces the answer without reading it", () => {
  it("the client gets the outer answer, and a retry is a replay that goes through the outer middleware again", async () => {
    await expectRecordedOnce(customPage, 201, "custom page");
  });

  it("what is stored is the route's own answer, read to its end", async () => {
    const answer = () =>
      new Response(piecewise(["paid ", "in full"]), { status: 201, headers: { "content-type": "text/plain" } });
    const world = await serve(customPage, answer);
    // The same route on the same store, without the outer middleware, replays what is stored.
    const bare = new Hono();
    bare.use(idempotency({ store: world.store, principal: false }));
    bare.post("/", answer);
    const bareUrl = await start(bare);
    const key = uniqueId("key");
    await (await send(world.url, key)).text();
    const replay = await send(bareUrl, key);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect([replay.status, replay.headers.get("content-type"), await replay.text()]).toEqual([
      201,
      "text/plain",
      "paid in full",
    ]);
  });

  it("an outer middleware that throws after next(): Hono's error answer replaces ours, and the retry is a replay", async () => {
    const failing: MiddlewareHandler = async (_c, next) => {
      await next();
      throw new HTTPException(502, { message: "audit log unavailable" });
    };
    await expectRecordedOnce(failing, 502, "audit log unavailable");
  });

  it("an answer past the store's maxRecordBytes: the key is released (reason too_large), the retry runs the route again", async () => {
    const world = await serve(
      customPage,
      () => new Response(piecewise(["x".repeat(600), "y".repeat(600), "z".repeat(600)]), { status: 200 }),
      { maxRecordBytes: 1024 },
    );
    const key = uniqueId("key");
    const first = await send(world.url, key);
    expect(await first.text()).toBe("custom page");
    const retry = await send(world.url, key);
    expect([retry.status, await retry.text()]).toEqual([200, "custom page"]);
    expect(retry.headers.get("idempotent-replayed")).toBeNull();
    expect(world.calls).toBe(2);
    expect(released(world.events)).toEqual(["too_large", "too_large"]);
  });

  it("an answer whose stream fails once dropped: the key is released, nothing unhandled", async () => {
    const world = await serve(
      customPage,
      // Asked for more only once the first part is taken: by a reader, which nobody is.
      () => firstPartThen("the first part, ", (controller) => controller.error(new Error("upstream went away"))),
    );
    const key = uniqueId("key");
    expect(await (await send(world.url, key)).text()).toBe("custom page");
    const retry = await send(world.url, key);
    expect(retry.headers.get("idempotent-replayed")).toBeNull();
    expect(world.calls).toBe(2);
    expect(released(world.events)[0]).toBe("streamed");
  });

  it("a stream that never ends is not settled early: the key stays in flight until its lease expires", async () => {
    const world = await serve(customPage, () => firstPartThen("the first part, then nothing more"), {
      lockTtlMs: 10_000,
    });
    const key = uniqueId("key");
    expect(await (await send(world.url, key)).text()).toBe("custom page");
    const retry = await send(world.url, key);
    expect(retry.status).toBe(409); // the outer middleware kept the status of the refusal
    expect(world.events.map((event) => event.type)).not.toContain("idempotency.completed");
    expect(released(world.events)).toEqual([]);
    // The lease is the bound: once it has expired, the retry runs the route again.
    world.clock.ms += 10_001;
    const late = await send(world.url, key);
    expect(late.headers.get("idempotent-replayed")).toBeNull();
    expect(world.calls).toBe(2);
  });
});

describe("an outer middleware that reads the answer and re-wraps it", () => {
  it("the answer is recorded once, and the replay of the route's own bytes is re-wrapped again", async () => {
    await expectRecordedOnce(shouting, 201, "PAID IN FULL");
  });

  it("one that passes the body on as it is (a new status): the client reads it whole, and it is recorded once", async () => {
    const restatus: MiddlewareHandler = async (c, next) => {
      await next();
      c.res = new Response(c.res.body, { status: 202, headers: c.res.headers });
    };
    await expectRecordedOnce(restatus, 202, "paid in full");
  });
});

describe("an outer middleware that reads the answer only once its own is read", () => {
  /** Sets its own `c.res` first, and takes ours only when the client reads that one. */
  const lazy: MiddlewareHandler = async (c, next) => {
    await next();
    const ours = c.res;
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    c.res = new Response(
      new ReadableStream<Uint8Array>({
        async pull(controller) {
          reader ??= (ours.body as ReadableStream<Uint8Array>).getReader();
          const next = await reader.read();
          if (next.done) controller.close();
          else controller.enqueue(next.value);
        },
      }),
      ours,
    );
  };
  const pieces = ["x".repeat(600), "y".repeat(600), "z".repeat(600)];

  it("within maxRecordBytes: the client gets every byte, and the answer is recorded once", async () => {
    const world = await serve(lazy, () => new Response(piecewise(pieces), { status: 201 }));
    const key = uniqueId("key");
    const first = await send(world.url, key);
    expect([first.status, await first.text()]).toEqual([201, pieces.join("")]);
    const retry = await send(world.url, key);
    expect([retry.status, await retry.text()]).toEqual([201, pieces.join("")]);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(types(world.events)).toEqual(["idempotency.first", "idempotency.completed", "idempotency.replayed"]);
  });

  it("past maxRecordBytes: the client still gets every byte in order, and the key is released as too_large", async () => {
    const world = await serve(lazy, () => new Response(piecewise(pieces), { status: 201 }), {
      maxRecordBytes: 1024,
    });
    const key = uniqueId("key");
    expect(await (await send(world.url, key)).text()).toBe(pieces.join(""));
    const retry = await send(world.url, key);
    expect(await retry.text()).toBe(pieces.join(""));
    expect(retry.headers.get("idempotent-replayed")).toBeNull();
    expect(world.calls).toBe(2);
    expect(released(world.events)).toEqual(["too_large", "too_large"]);
  });
});
