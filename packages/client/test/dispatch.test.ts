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

/** Where undici keeps its global dispatcher: `.1` up to undici 7 (Node 24), `.2` from undici 8 (Node 26). */
const GLOBAL_DISPATCHERS = [Symbol.for("undici.globalDispatcher.1"), Symbol.for("undici.globalDispatcher.2")] as const;
const [GLOBAL_DISPATCHER, GLOBAL_DISPATCHER_2] = GLOBAL_DISPATCHERS;
type Dispatcher = { dispatch(options: unknown, handler: unknown): boolean };
const globals = globalThis as unknown as Record<symbol, Dispatcher | undefined>;

/** The dispatcher fetch itself uses on this Node. */
const platformDispatcher = () => (globals[GLOBAL_DISPATCHER_2] ?? globals[GLOBAL_DISPATCHER]) as Dispatcher;

/** Puts `dispatcher` in place of both global dispatchers for one test; returns the undo. */
function replaceGlobalDispatchers(dispatcher: Dispatcher | undefined): () => void {
  const saved = GLOBAL_DISPATCHERS.map((key) => [key, Object.hasOwn(globalThis, key), globals[key]] as const);
  for (const key of GLOBAL_DISPATCHERS) globals[key] = dispatcher;
  return () => {
    for (const [key, had, value] of saved) {
      if (had) globals[key] = value;
      else delete globals[key];
    }
  };
}

/** A request handler of either undici interface, as fetch hands it to a dispatcher. */
type AnyHandler = {
  onConnect?(abort: (reason?: unknown) => void): void;
  onRequestStart?(controller: { abort(reason?: unknown): void }): void;
  onError?(error: unknown): void;
  onResponseError?(controller: unknown, error: unknown): void;
};

/** Starts a held request as undici would, with `abort` as the way to end it. */
function start(handler: AnyHandler, abort: (reason?: unknown) => void): void {
  if (handler.onRequestStart) handler.onRequestStart({ abort });
  else handler.onConnect?.(abort);
}

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
    // A timeout the response beats even on a loaded machine; the wait outlasts it.
    const client = createClient({ timeoutMs: 300, maxAttempts: 1 });
    const response = await client(`${server.origin}/ok`);
    await new Promise((resolve) => setTimeout(resolve, 350));
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

  it("a blob: URL, which fetch answers itself, leaves the dispatcher in use for the next network call", async () => {
    const server = await serve();
    const client = createClient({ timeoutMs: 100, maxAttempts: 1 });
    const url = URL.createObjectURL(new Blob(["hello"]));
    try {
      expect(await (await client(url)).text()).toBe("hello");
    } finally {
      URL.revokeObjectURL(url);
    }
    expect(attemptAbort(true, true)).toBeInstanceOf(AttemptDispatcher);
    const { error } = await settled(client(`${server.origin}/hang`));
    expect((error as RetryLimitError).cause).toBeInstanceOf(TimeoutError);
    await server.hungUp(0);
  });

  it("a caller's own dispatcher is used as given, the attempt following a signal instead", async () => {
    const server = await serve();
    const global = platformDispatcher();
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

describe("AttemptDispatcher under a mocked global dispatcher (undici's MockAgent)", () => {
  let restore = () => {};
  afterEach(() => restore());

  /** A global dispatcher that records the body it is handed, then fails the request. */
  function recording(isMockActive: boolean) {
    const bodies: string[] = [];
    restore = replaceGlobalDispatchers({
      isMockActive,
      dispatch(options, handler) {
        bodies.push(typeof (options as { body?: unknown }).body);
        const any = handler as AnyHandler;
        const error = new Error("mocked away");
        if (any.onResponseError) any.onResponseError({}, error);
        else any.onError?.(error);
        return true;
      },
    } as Dispatcher);
    return bodies;
  }

  for (const isMockActive of [true, false]) {
    it(`hands it the body as fetch itself does (isMockActive: ${isMockActive})`, async () => {
      const bodies = recording(isMockActive);
      const init = { method: "POST", body: '{"amount":1}', headers: { "content-type": "application/json" } };
      await settled(fetch("http://127.0.0.1:40001/mocked", init));
      const client = createClient({ timeoutMs: 1000, maxAttempts: 1, breaker: false });
      await settled(client("http://127.0.0.1:40001/mocked", init));
      expect(bodies).toHaveLength(2);
      expect(bodies[1]).toBe(bodies[0]); // "string" under a MockAgent: its body matchers see the text
      if (isMockActive) expect(bodies[0]).toBe("string");
    });
  }
});

describe("AttemptDispatcher with a request that has not started", () => {
  let restore = () => {};
  afterEach(() => restore());

  it("ends the attempt at once, and aborts the request the moment undici starts it", async () => {
    // A global dispatcher that holds every request, as a pool with no free connection does.
    const held: AnyHandler[] = [];
    restore = replaceGlobalDispatchers({
      dispatch(_options, handler) {
        held.push(handler as AnyHandler);
        return true;
      },
    });
    const client = createClient({ timeoutMs: 50, maxAttempts: 1 });
    const started = Date.now();
    const { error } = await settled(client("http://127.0.0.1:40000/queued"));
    expect((error as RetryLimitError).cause).toBeInstanceOf(TimeoutError);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(held).toHaveLength(1);

    const handler = held[0] as AnyHandler;
    const abort = vi.fn((reason?: unknown) =>
      handler.onResponseError ? handler.onResponseError({}, reason) : handler.onError?.(reason),
    );
    start(handler, abort); // undici starts it now: it must be aborted there and then
    // (fetch's own handler calls it again as it tears down: undici's abort is idempotent.)
    expect(abort).toHaveBeenCalled();
    expect(abort.mock.calls[0]?.[0]).toMatchObject({ name: "AbortError" });
  });
});

describe("AttemptDispatcher where it cannot work", () => {
  let restore = () => {};
  beforeEach(() => {
    vi.resetModules(); // each test imports a module of its own: what it turns off stays off there
  });
  afterEach(() => {
    restore();
    restore = () => {};
    vi.resetModules();
  });

  it("a handler of another shape is passed on untouched, and later attempts use signals", async () => {
    const { AttemptDispatcher: Fresh, dispatcherUsable } = await import("../src/dispatch.js");
    const passed: unknown[] = [];
    restore = replaceGlobalDispatchers({
      dispatch(_options, handler) {
        passed.push(handler);
        return true;
      },
    });
    const handler = { onRequest() {} };
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
    restore = replaceGlobalDispatchers(undefined);
    expect(dispatcherUsable()).toBe(false);
  });
});

/**
 * Both of undici's handler interfaces, on every Node: fetch's handler is told of its start by
 * `onConnect(abort)` up to Node 24 and by `onRequestStart(controller)` from Node 26, and goes to
 * the global dispatcher fetch itself reads (`.1`, `.2`). Stand-in dispatchers hold the requests.
 */
describe("AttemptDispatcher and undici's two handler interfaces", () => {
  let restore = () => {};
  afterEach(() => {
    restore();
    restore = () => {};
  });

  /** Stand-ins at `.1` and `.2`, each recording the handlers it is given. */
  function standIns() {
    const at = { legacy: [] as AnyHandler[], controller: [] as AnyHandler[] };
    restore = replaceGlobalDispatchers(undefined);
    globals[GLOBAL_DISPATCHER] = { dispatch: (_o, handler) => at.legacy.push(handler as AnyHandler) > 0 };
    globals[GLOBAL_DISPATCHER_2] = { dispatch: (_o, handler) => at.controller.push(handler as AnyHandler) > 0 };
    return at;
  }

  it("a controller handler (undici 8) goes to `.2`, and an abort after its start calls controller.abort", () => {
    const at = standIns();
    const onRequestStart = vi.fn();
    const attempt = new AttemptDispatcher();
    attempt.dispatch({}, { onRequestStart, onResponseError() {} });
    expect(at).toMatchObject({ legacy: [], controller: [expect.anything()] });
    const controller = { abort: vi.fn() };
    start(at.controller[0] as AnyHandler, controller.abort);
    expect(onRequestStart).toHaveBeenCalledWith(expect.objectContaining({ abort: controller.abort }), undefined);
    const reason = new Error("timed out");
    attempt.abort(reason);
    expect(controller.abort).toHaveBeenCalledWith(reason);
  });

  it("a controller handler aborted before it started is aborted the moment it starts", () => {
    const at = standIns();
    const attempt = new AttemptDispatcher();
    attempt.dispatch({}, { onRequestStart() {}, onResponseError() {} });
    const reason = new Error("timed out");
    attempt.abort(reason);
    const controller = { abort: vi.fn() };
    start(at.controller[0] as AnyHandler, controller.abort);
    expect(controller.abort).toHaveBeenCalledWith(reason);
  });

  it("every call of a controller handler is passed on, with the controller", () => {
    const at = standIns();
    const calls: string[] = [];
    const record =
      (name: string) =>
      (...args: unknown[]) => {
        calls.push(`${name}/${args.length}`);
        return name === "onResponseData" ? false : undefined;
      };
    const names = [
      "onRequestStart",
      "onRequestUpgrade",
      "onResponseStart",
      "onResponseData",
      "onResponseEnd",
      "onResponseError",
      "onResponseStarted",
      "onBodySent",
      "onRequestSent",
    ] as const;
    new AttemptDispatcher().dispatch({}, Object.fromEntries(names.map((name) => [name, record(name)])));
    const watcher = at.controller[0] as unknown as Record<string, (...args: unknown[]) => unknown>;
    const controller = { abort() {} };
    watcher.onRequestStart?.(controller, { context: 1 });
    watcher.onRequestUpgrade?.(controller, 101, {}, {});
    watcher.onResponseStarted?.();
    watcher.onResponseStart?.(controller, 200, {}, "OK");
    expect(watcher.onResponseData?.(controller, new Uint8Array(1))).toBe(false); // backpressure kept
    watcher.onResponseEnd?.(controller, {});
    watcher.onResponseError?.(controller, new Error("x"));
    watcher.onBodySent?.(new Uint8Array(1));
    watcher.onRequestSent?.();
    expect(calls).toEqual([
      "onRequestStart/2",
      "onRequestUpgrade/4",
      "onResponseStarted/0",
      "onResponseStart/4",
      "onResponseData/2",
      "onResponseEnd/2",
      "onResponseError/2",
      "onBodySent/3",
      "onRequestSent/0",
    ]);
  });

  it("a legacy handler (undici up to 7) goes to `.1`, even where a newer undici also set `.2`", () => {
    const at = standIns();
    const attempt = new AttemptDispatcher();
    attempt.dispatch({}, { onConnect() {}, onError() {} });
    expect(at).toMatchObject({ legacy: [expect.anything()], controller: [] });
    const abort = vi.fn();
    start(at.legacy[0] as AnyHandler, abort);
    attempt.abort();
    expect(abort).toHaveBeenCalledWith(expect.objectContaining({ name: "AbortError" }));
  });
});
