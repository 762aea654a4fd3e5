/**
 * The attempt dispatcher: on Node, an attempt only the client's timer can abort goes to fetch
 * without a signal, through a dispatcher of its own that keeps undici's abort function. These
 * tests hold it to what a signal gives: the attempt ends at once, and the request is really
 * cut off (the server sees its connection close), also after a redirect and when the request
 * had not started yet; and it stays out of the way of a caller's signal or dispatcher.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { AttemptDispatcher } from "../src/dispatch.js";
import { createClient, RetryLimitError, TimeoutError } from "../src/index.js";
import { AttemptSignal, attemptAbort } from "../src/signals.js";
import { REQUEST_TAKES_LIGHT_SIGNAL } from "./helpers/platform.js";
import { serve as serveScript, settled } from "./helpers/setup.js";

const GLOBAL_DISPATCHER = Symbol.for("undici.globalDispatcher.1");
type Dispatcher = { dispatch(options: unknown, handler: unknown): boolean };
const globals = globalThis as unknown as Record<symbol, Dispatcher | undefined>;

/** A server that answers `/ok`, redirects `/redirect` to `/hang`, and never answers anything else. */
const serve = () =>
  serveScript((_index, request) =>
    request.url === "/ok"
      ? { status: 200, body: "ok" }
      : request.url === "/redirect"
        ? { status: 302, headers: { location: "/hang" } }
        : { hang: true },
  );

describe("which abort handle an attempt gets on Node", () => {
  it("the dispatcher when only the client's timer can abort it; the light signal when the caller's signal can; a real one for the caller's fetch", async () => {
    // undici sets its global dispatcher up at the first fetch: until then, the light signal.
    const server = await serve();
    await (await fetch(`${server.origin}/ok`)).text();
    expect(attemptAbort(true, true)).toBeInstanceOf(AttemptDispatcher);
    expect(attemptAbort(true, false)).toBeInstanceOf(REQUEST_TAKES_LIGHT_SIGNAL ? AttemptSignal : AbortController);
    expect(attemptAbort(false, true)).toBeInstanceOf(AbortController);
  });
});

describe("AttemptDispatcher over real HTTP", () => {
  it("a hung attempt times out at once and its connection is closed", async () => {
    const server = await serve();
    const client = createClient({ timeoutMs: 100, maxAttempts: 1 });
    const started = Date.now();
    const { error } = await settled(client(`${server.origin}/hang`));
    expect(error).toBeInstanceOf(RetryLimitError);
    expect((error as RetryLimitError).cause).toBeInstanceOf(TimeoutError);
    expect(Date.now() - started).toBeLessThan(2_000);
    await server.hungUp(0); // the server sees the connection close
  });

  it("cuts off the request a redirect led to", async () => {
    const server = await serve();
    const client = createClient({ timeoutMs: 200, maxAttempts: 1 });
    const { error } = await settled(client(`${server.origin}/redirect`));
    expect((error as RetryLimitError).cause).toBeInstanceOf(TimeoutError);
    expect(server.received.map((request) => request.url)).toEqual(["/redirect", "/hang"]);
    await server.hungUp(1);
  });

  it("leaves the response alone once it is in: the body reads after the timeout would have fired", async () => {
    const server = await serve();
    const client = createClient({ timeoutMs: 50, maxAttempts: 1 });
    const response = await client(`${server.origin}/ok`);
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(await response.text()).toBe("ok");
  });

  it("a data: URL, which never reaches a dispatcher, leaves it in use for the next network call", async () => {
    const server = await serve();
    const client = createClient({ timeoutMs: 100, maxAttempts: 1 });
    expect(await (await client("data:text/plain,hello")).text()).toBe("hello");
    const { error } = await settled(client(`${server.origin}/hang`));
    expect((error as RetryLimitError).cause).toBeInstanceOf(TimeoutError);
    expect(attemptAbort(true, true)).toBeInstanceOf(AttemptDispatcher);
  });

  it("a caller's own dispatcher is used as given, the attempt following a signal instead", async () => {
    const server = await serve();
    const global = globals[GLOBAL_DISPATCHER] as Dispatcher;
    const own = {
      calls: 0,
      dispatch(options: unknown, handler: unknown) {
        own.calls++;
        return global.dispatch(options, handler);
      },
    };
    const client = createClient({ timeoutMs: 100, maxAttempts: 1 });
    const init = { dispatcher: own } as RequestInit;
    expect(await (await client(`${server.origin}/ok`, init)).text()).toBe("ok");
    expect(own.calls).toBe(1);
    const { error } = await settled(client(`${server.origin}/hang`, init));
    expect((error as RetryLimitError).cause).toBeInstanceOf(TimeoutError);
    await server.hungUp(1); // closed through the signal
  });
});

describe("AttemptDispatcher with a request that has not started", () => {
  let real: Dispatcher | undefined;
  beforeEach(() => {
    real = globals[GLOBAL_DISPATCHER];
  });
  afterEach(() => {
    globals[GLOBAL_DISPATCHER] = real;
  });

  it("ends the attempt at once, and aborts the request the moment undici starts it", async () => {
    // A global dispatcher that holds every request, as a pool with no free connection does.
    const held: Array<{ onConnect(abort: (reason?: unknown) => void): void; onError(error: unknown): void }> = [];
    globals[GLOBAL_DISPATCHER] = {
      dispatch(_options, handler) {
        held.push(handler as (typeof held)[number]);
        return true;
      },
    };
    const client = createClient({ timeoutMs: 50, maxAttempts: 1 });
    const started = Date.now();
    const { error } = await settled(client("http://127.0.0.1:40000/queued"));
    expect((error as RetryLimitError).cause).toBeInstanceOf(TimeoutError);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(held).toHaveLength(1);

    const handler = held[0] as (typeof held)[number];
    const abort = vi.fn((reason?: unknown) => handler.onError(reason));
    handler.onConnect(abort); // undici starts it now: it must be aborted there and then
    // (fetch's own handler calls it again as it tears down: undici's abort is idempotent.)
    expect(abort).toHaveBeenCalled();
    expect(abort.mock.calls[0]?.[0]).toMatchObject({ name: "AbortError" });
  });
});

describe("AttemptDispatcher where it cannot work", () => {
  let real: Dispatcher | undefined;
  beforeEach(() => {
    real = globals[GLOBAL_DISPATCHER];
    vi.resetModules(); // each test imports a module of its own: what it turns off stays off there
  });
  afterEach(() => {
    globals[GLOBAL_DISPATCHER] = real;
    vi.resetModules();
  });

  it("a handler of another shape is passed on untouched, and later attempts use signals", async () => {
    const { AttemptDispatcher: Fresh, dispatcherUsable } = await import("../src/dispatch.js");
    const passed: unknown[] = [];
    globals[GLOBAL_DISPATCHER] = {
      dispatch(_options, handler) {
        passed.push(handler);
        return true;
      },
    };
    const handler = { onRequestStart() {} };
    expect(dispatcherUsable()).toBe(true);
    new Fresh().dispatch({}, handler as never);
    expect(passed).toEqual([handler]);
    expect(dispatcherUsable()).toBe(false);
  });

  it("a fetch that answered without calling the dispatcher turns it off", async () => {
    const { AttemptDispatcher: Fresh, dispatcherUsable } = await import("../src/dispatch.js");
    await new Fresh().settle(Promise.resolve(new Response("ok")));
    expect(dispatcherUsable()).toBe(false);
  });

  it("without undici's global dispatcher (Bun, Deno, Workers) it is not used", async () => {
    const { dispatcherUsable } = await import("../src/dispatch.js");
    globals[GLOBAL_DISPATCHER] = undefined;
    expect(dispatcherUsable()).toBe(false);
  });
});
