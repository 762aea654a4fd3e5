import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterEach, beforeEach, describe, expect, expectTypeOf, it, vi } from "vitest";
import {
  BodyError,
  type CapturedResponse,
  createIdempotency,
  createWebhookReceiver,
  DEFAULT_IDEMPOTENCY_RENEWAL_MAX_MS,
  type IdempotencyRequest,
  InterlockConfigError,
  type InterlockEvent,
  type InterlockStore,
  MemoryStore,
  parseIdempotencyKey,
  type RunIdempotentOptions,
  runIdempotent,
  StoreUnavailableError,
  standardWebhooks,
} from "../src/index.js";
import { describeIdempotencyBehaviour } from "../src/testing/index.js";

/** A POST with `key` as its Idempotency-Key, as an adapter hands it to the engine. */
const keyedPost = (key: string, body: string | Uint8Array = "{}", route = "/payments") => ({
  method: "POST",
  route,
  path: route,
  headers: { "idempotency-key": key },
  body,
});

/** Counts the calls to `store[method]`, which still does what it did: `calls()` says how many so far. */
function countCalls(store: MemoryStore, method: "claim" | "extend"): { calls: () => number; reset: () => void } {
  let count = 0;
  const original = (store[method] as (...args: unknown[]) => unknown).bind(store);
  (store as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => {
    count++;
    return original(...args);
  };
  return {
    calls: () => count,
    reset: () => {
      count = 0;
    },
  };
}

describeIdempotencyBehaviour("memory", { create: () => new MemoryStore({ maxRecordBytes: 64 * 1024 }) });

describe("mayReadBody", () => {
  const engineWith = (extra: Partial<Parameters<typeof createIdempotency>[0]> = {}) =>
    createIdempotency({ store: new MemoryStore(), principal: false, ...extra });

  it("is true only for a covered method that carries the key header", () => {
    const engine = engineWith({ headerName: "X-Request-Key" });
    expect(engine.mayReadBody({ method: "post", headers: { "x-request-key": "k" } })).toBe(true);
    expect(engine.mayReadBody({ method: "PATCH", headers: new Headers({ "X-Request-Key": "" }) })).toBe(true);
    expect(engine.mayReadBody({ method: "POST", headers: { "idempotency-key": "k" } })).toBe(false);
    expect(engine.mayReadBody({ method: "GET", headers: { "x-request-key": "k" } })).toBe(false);
    expect(engine.mayReadBody({ method: "POST", headers: {} })).toBe(false);
  });

  it("agrees with begin: when it says no, begin decides without reading the body, required or not", async () => {
    for (const required of [false, true]) {
      const engine = engineWith({ required, methods: ["POST", "PUT"] });
      for (const method of ["POST", "PUT", "GET"]) {
        for (const headers of [{}, { "idempotency-key": "k-1" }, { "idempotency-key": "not a key\u0001" }]) {
          let read = false;
          const request: IdempotencyRequest = {
            method,
            route: "/r",
            path: "/r",
            headers,
            body: () => {
              read = true;
              return "{}";
            },
          };
          const may = engine.mayReadBody(request);
          const decision = await engine.begin(request);
          if (decision.action === "execute") await engine.abort(decision.ticket);
          if (!may) expect(read, `${method} ${JSON.stringify(headers)} required=${required}`).toBe(false);
          if (decision.action === "execute") expect(may).toBe(true);
        }
      }
    }
  });
});

describe("refusesUnread", () => {
  it("agrees with begin: true exactly when begin refuses without reading the body or claiming", async () => {
    for (const required of [false, true]) {
      const store = new MemoryStore();
      const engine = createIdempotency({ store, principal: false, required, methods: ["POST"] });
      const cases = [
        {},
        { "idempotency-key": "k-1" },
        { "idempotency-key": "not a key\u0001" },
        { "idempotency-key": ["a", "b"] },
      ];
      for (const method of ["POST", "GET"]) {
        for (const headers of cases) {
          let read = false;
          const body = () => {
            read = true;
            return "{}";
          };
          const request: IdempotencyRequest = { method, route: "/r", path: "/r", headers, body };
          const refuses = engine.refusesUnread(request);
          const decision = await engine.begin(request);
          if (decision.action === "execute") await engine.abort(decision.ticket);
          const label = `${method} ${JSON.stringify(headers)} required=${required}`;
          expect(refuses, label).toBe(decision.action === "respond" && !read);
        }
      }
    }
  });
});

describe("parseIdempotencyKey", () => {
  it.each([
    ['"abc"', "abc"],
    ["abc", "abc"],
    ['"a\\"b\\\\c"', 'a"b\\c'],
    ["  8e03978e-40d5-43e8-bc93-6894a57f9324  ", "8e03978e-40d5-43e8-bc93-6894a57f9324"],
    ['"with space"', "with space"],
    ['" padded "', " padded "],
  ])("%s → %s", (value, key) => {
    expect(parseIdempotencyKey(value)).toBe(key);
  });

  it.each(['"a",', '"a" "b"', "a b", '""', '" "', '"   "', '"\\n"', '"é"', "k".repeat(256), '"unterminated'])(
    "refuses %s",
    (value) => {
      expect(parseIdempotencyKey(value)).toBeUndefined();
    },
  );
});

describe("request bodies", () => {
  const request = (body: unknown, key: string | null = "k-body") => ({
    method: "POST",
    route: "/payments",
    path: "/payments",
    headers: key ? { "idempotency-key": key } : {},
    body: body as never,
  });

  it("reads a lazy body only when the fingerprint needs it", async () => {
    const engine = createIdempotency({ store: new MemoryStore(), principal: false });
    let reads = 0;
    const lazy = async () => {
      reads++;
      return '{"amount":1}';
    };
    expect(await engine.begin({ ...request(lazy, null), method: "GET" })).toEqual({ action: "pass" });
    expect(await engine.begin(request(lazy, null))).toEqual({ action: "pass" });
    expect(reads).toBe(0);
    expect((await engine.begin(request(lazy))).action).toBe("execute");
    expect(reads).toBe(1);
  });

  it("answers a parsed (non-raw) body with a typed 500 problem instead of throwing", async () => {
    const engine = createIdempotency({ store: new MemoryStore(), principal: false });
    const decision = await engine.begin(request({ amount: 1 }));
    expect(decision).toMatchObject({ action: "respond", replayed: false, response: { status: 500 } });
    if (decision.action !== "respond") throw new Error("unreachable");
    expect(decision.error).toBeInstanceOf(BodyError);
    expect(JSON.parse(new TextDecoder().decode(decision.response.body))).toMatchObject({ code: "body_not_raw" });
  });

  it("answers a BodyError a lazy body throws or returns exactly as refuse() does, event included", async () => {
    const events: unknown[] = [];
    const engine = createIdempotency({ store: new MemoryStore(), principal: false, onEvent: (e) => events.push(e) });
    const tooLarge = () => BodyError.tooLarge(16);
    const thrown = await engine.begin(
      request(async () => {
        throw tooLarge();
      }),
    );
    const returned = await engine.begin(request(async () => tooLarge()));
    const returnedAtOnce = await engine.begin(request(tooLarge));
    const refused = engine.refuse({ method: "post", route: "/payments" }, tooLarge());
    for (const decision of [thrown, returned, returnedAtOnce, refused]) {
      expect(decision).toMatchObject({ action: "respond", replayed: false, response: { status: 413 } });
      if (decision.action !== "respond") throw new Error("unreachable");
      expect(decision.error).toMatchObject({ code: "body_too_large", message: "the request body exceeds 16 bytes" });
    }
    const rejected = { type: "idempotency.rejected", method: "POST", route: "/payments", code: "body_too_large" };
    expect(events).toEqual([rejected, rejected, rejected, rejected]);
    // Nothing was claimed: the same key with a body that can be read runs.
    expect((await engine.begin(request('{"amount":1}'))).action).toBe("execute");
  });

  it("types principal, fingerprint and required for the adapter's own request", () => {
    interface WithContext extends IdempotencyRequest {
      context: { user: string };
    }
    const engine = createIdempotency<WithContext>({
      store: new MemoryStore(),
      principal: (req) => req.context.user,
      fingerprint: (req) => req.context.user,
    });
    expectTypeOf(engine.begin).parameter(0).toEqualTypeOf<WithContext>();
  });
});

describe("a custom fingerprint", () => {
  const request = (fingerprintOf: string) => ({
    method: "POST",
    route: "/payments",
    path: "/payments",
    headers: { "idempotency-key": "k-1", "x-fingerprint": fingerprintOf },
    body: "{}",
  });
  const read = (req: IdempotencyRequest) => String((req.headers as Record<string, string>)["x-fingerprint"]);

  // Left to the store, the claim refused it and the engine answered an outage (503, store_unavailable;
  // under failOpen the request ran unprotected): it is the fingerprint function's bug.
  for (const [what, value] of [
    ["NUL", "a\u0000b"],
    ["a lone surrogate", "a\uD800b"],
  ] as const) {
    for (const failOpen of [false, true]) {
      for (const sync of [true, false]) {
        it(`holding ${what} makes begin throw InterlockConfigError (${sync ? "sync" : "async"}${failOpen ? ", failOpen" : ""})`, async () => {
          const events: string[] = [];
          const engine = createIdempotency({
            store: new MemoryStore(),
            principal: false,
            failOpen,
            fingerprint: sync ? read : async (req) => read(req),
            onEvent: (event) => events.push(event.type),
          });
          await expect(engine.begin(request(value))).rejects.toThrow(InterlockConfigError);
          expect(events).toEqual([]);
        });
      }
    }
  }

  it.each([false, true])(
    "a store set up wrong (its claim throws InterlockConfigError: a table never created) makes begin throw it, no outage (failOpen %s)",
    async (failOpen) => {
      const events: string[] = [];
      const store = new MemoryStore();
      store.claim = () =>
        Promise.reject(new InterlockConfigError('table "interlock_idempotency" is missing: run migrate()'));
      const engine = createIdempotency({
        store,
        principal: false,
        failOpen,
        onEvent: (event) => events.push(event.type),
      });
      await expect(engine.begin(request("x"))).rejects.toThrow(/run migrate\(\)/);
      expect(events).toEqual([]); // not a store_unavailable, and never let through unprotected
    },
  );

  it("a principal that is a number names the caller as its text; null is nobody, as undefined is", async () => {
    const store = new MemoryStore();
    const of = (principal: unknown) =>
      createIdempotency({ store, principal: () => principal as string, fingerprint: () => "same" });
    const run = async (principal: unknown) => {
      const decision = await of(principal).begin(request("x"));
      if (decision.action === "execute")
        await of(principal).finish(decision.ticket, { status: 201, headers: {}, body: "ok" });
      return decision.action === "respond" && decision.replayed ? "replayed" : decision.action;
    };
    expect(await run(42)).toBe("execute");
    expect(await run("42")).toBe("replayed"); // the same caller
    expect(await run(Promise.resolve(42))).toBe("replayed");
    expect(await run(7)).toBe("execute"); // another caller
    expect(await run(null)).toBe("execute"); // nobody: the shared space
    expect(await run(undefined)).toBe("replayed");
    expect(await run(Promise.resolve(null))).toBe("replayed");
  });

  it.each([[{ id: 1 }], [true], [Number.NaN]])(
    "a principal of another kind (%s) makes begin throw InterlockConfigError naming the option",
    async (principal) => {
      const engine = createIdempotency({ store: new MemoryStore(), principal: () => principal as unknown as string });
      await expect(engine.begin(request("x"))).rejects.toThrow(/principal must return a string/);
    },
  );

  it("that is no string makes begin throw InterlockConfigError", async () => {
    const engine = createIdempotency({
      store: new MemoryStore(),
      principal: false,
      fingerprint: () => 42 as unknown as string,
    });
    await expect(engine.begin(request("x"))).rejects.toThrow(InterlockConfigError);
  });

  it("any other text is the fingerprint: the same text replays, other text is a mismatch", async () => {
    const engine = createIdempotency({ store: new MemoryStore(), principal: false, fingerprint: read });
    const first = await engine.begin(request("caf\u00e9 \u{1F511}"));
    if (first.action !== "execute") throw new Error(`expected execute, got ${first.action}`);
    await engine.finish(first.ticket, { status: 201, headers: {}, body: "ok" });
    const replay = await engine.begin(request("caf\u00e9 \u{1F511}"));
    expect(replay.action === "respond" && replay.replayed).toBe(true);
    const other = await engine.begin(request("cafe"));
    expect(other.action === "respond" && other.response.status).toBe(422);
  });
});

describe("response headers as captured", () => {
  const request = (key: string) => keyedPost(key);

  // A Fetch Headers, a Node getHeaders() record, pairs, and an object with only Headers' forEach
  // (what the type promises under a `lib` without DOM.Iterable): each stores the same headers.
  const shapes: Record<string, () => CapturedResponse["headers"]> = {
    "a Fetch Headers": () => new Headers({ "Content-Type": "application/json", Location: "/p/1", "X-Trace": "t" }),
    "a record": () => ({ "content-type": "application/json", location: "/p/1", "x-trace": "t" }),
    pairs: () => [
      ["Content-Type", "application/json"],
      ["Location", "/p/1"],
    ],
    "only forEach": () => ({
      forEach(callback: (value: string, name: string) => void) {
        callback("application/json", "content-type");
        callback("/p/1", "location");
        callback("t", "x-trace");
      },
    }),
  };

  it.each(Object.keys(shapes))("%s: the replay carries the allowed headers", async (shape) => {
    const engine = createIdempotency({ store: new MemoryStore(), principal: false });
    const first = await engine.begin(request(`k-${shape.replaceAll(" ", "-")}`));
    if (first.action !== "execute") throw new Error(`expected execute, got ${first.action}`);
    await engine.finish(first.ticket, {
      status: 201,
      headers: (shapes[shape] as () => CapturedResponse["headers"])(),
      body: "{}",
    });
    const replay = await engine.begin(request(`k-${shape.replaceAll(" ", "-")}`));
    if (replay.action !== "respond") throw new Error(`expected respond, got ${replay.action}`);
    expect(replay.response.headers).toEqual([
      ["content-type", "application/json"],
      ["location", "/p/1"],
      ["Idempotent-Replayed", "true"],
    ]);
  });

  it("a value no store can hold (NUL, a lone surrogate) is left out: the response is stored, not the key left locked", async () => {
    // A store that keeps what every store keeps, as PostgreSQL does: core's check, then the memory store.
    const engine = createIdempotency({
      store: new MemoryStore(),
      principal: false,
      replayHeaders: ["location", "x-a", "x-b"],
    });
    const first = await engine.begin(request("k-unstorable"));
    if (first.action !== "execute") throw new Error(`expected execute, got ${first.action}`);
    const headers = { location: "/p/1", "x-a": "a\u0000b", "x-b": ["ok", "\uD800"] };
    expect(await engine.finish(first.ticket, { status: 201, headers, body: "{}" })).toBe(true);
    const replay = await engine.begin(request("k-unstorable"));
    if (replay.action !== "respond") throw new Error(`expected respond, got ${replay.action}`);
    expect(replay.response.headers).toEqual([
      ["location", "/p/1"],
      ["x-b", "ok"],
      ["Idempotent-Replayed", "true"],
    ]);
  });
});

describe("finish inside the caller's transaction", () => {
  it("reports whether the response was stored, and abort after a rollback releases the key", async () => {
    const store = new MemoryStore();
    // The memory store cannot join a transaction: stand in for one that can.
    const transactional: InterlockStore = {
      name: "tx",
      maxRecordBytes: store.maxRecordBytes,
      claim: (key, options) => store.claim(key, options),
      release: (key, token) => store.release(key, token),
      extend: (key, token, ttl) => store.extend(key, token, ttl),
      complete: async () => true, // "written inside the transaction", not yet committed
    };
    const engine = createIdempotency({ store: transactional, principal: false });
    const request = { method: "POST", route: "/p", path: "/p", headers: { "idempotency-key": "tx-1" }, body: "{}" };
    const decision = await engine.begin(request);
    if (decision.action !== "execute") throw new Error("expected to execute");
    expect(await engine.finish(decision.ticket, { status: 201, headers: {}, body: "ok" }, { transaction: {} })).toBe(
      true,
    );
    expect((await engine.begin(request)).action).toBe("respond"); // still locked: in flight
    await engine.abort(decision.ticket); // the caller rolled back
    expect((await engine.begin(request)).action).toBe("execute");
  });

  it("throws the store's InterlockConfigError for a transaction it cannot join, reported as no outage", async () => {
    const events: string[] = [];
    const engine = createIdempotency({
      store: new MemoryStore(),
      principal: false,
      onEvent: (event) => events.push(event.type),
    });
    const request = { method: "POST", route: "/p", path: "/p", headers: { "idempotency-key": "tx-2" }, body: "{}" };
    const decision = await engine.begin(request);
    if (decision.action !== "execute") throw new Error("expected to execute");
    await expect(
      engine.finish(decision.ticket, { status: 201, headers: {}, body: "ok" }, { transaction: {} }),
    ).rejects.toBeInstanceOf(InterlockConfigError);
    expect(events).not.toContain("idempotency.not_recorded");
    expect(events).not.toContain("idempotency.store_unavailable");
  });

  it("throws the store's InterlockConfigError from the release of an answer not stored", async () => {
    const store = new MemoryStore();
    const misconfigured: InterlockStore = {
      name: "misconfigured",
      maxRecordBytes: store.maxRecordBytes,
      claim: (key, options) => store.claim(key, options),
      release: async () => {
        throw new InterlockConfigError("the table was never created");
      },
      extend: (key, token, ttl) => store.extend(key, token, ttl),
      complete: (key, token, record, options) => store.complete(key, token, record, options),
    };
    const engine = createIdempotency({ store: misconfigured, principal: false });
    const request = { method: "POST", route: "/p", path: "/p", headers: { "idempotency-key": "rel-1" }, body: "{}" };
    const decision = await engine.begin(request);
    if (decision.action !== "execute") throw new Error("expected to execute");
    await expect(engine.finish(decision.ticket, { status: 500, headers: {}, body: "no" })).rejects.toBeInstanceOf(
      InterlockConfigError,
    );
  });

  it("resolves false when nothing was stored", async () => {
    const engine = createIdempotency({ store: new MemoryStore(), principal: false });
    const decision = await engine.begin({
      method: "POST",
      route: "/p",
      path: "/p",
      headers: { "idempotency-key": "s" },
      body: "",
    });
    if (decision.action !== "execute") throw new Error("expected to execute");
    expect(await engine.finish(decision.ticket, { status: 503, headers: {}, body: "down" })).toBe(false);
    expect(await engine.finish(decision.ticket, { status: 201, headers: {}, body: "late" })).toBe(false);
  });
});

describe("a store that fails its claim", () => {
  // A claim that throws before returning a promise, or rejects with the driver's own error.
  const failing = (how: "throws" | "rejects"): InterlockStore => {
    const store = new MemoryStore();
    store.claim = () => {
      const error = new Error("ECONNREFUSED 127.0.0.1:6379");
      if (how === "throws") throw error;
      return Promise.reject(error);
    };
    return store;
  };
  const request = {
    method: "POST",
    route: "/payments",
    path: "/payments",
    headers: { "idempotency-key": "k-down" },
    body: new Uint8Array(0),
  };

  it.each(["throws", "rejects"] as const)("that %s is answered 503 store_unavailable", async (how) => {
    const engine = createIdempotency({ store: failing(how), principal: false });
    const decision = await engine.begin(request);
    expect(decision.action).toBe("respond");
    if (decision.action !== "respond") return;
    expect(decision.response.status).toBe(503);
    expect(decision.error?.code).toBe("store_unavailable");
    expect(decision.error?.message).toMatch(/ECONNREFUSED/);
    // The driver's message (hosts, ports, users) is for the logs, not for whoever sent the request.
    const problem = JSON.parse(new TextDecoder().decode(decision.response.body));
    expect(problem).toMatchObject({ status: 503, code: "store_unavailable", detail: expect.stringMatching(/retry/) });
    expect(JSON.stringify(problem)).not.toMatch(/ECONNREFUSED|6379/);
  });

  it.each(["throws", "rejects"] as const)(
    "that %s fails runIdempotent with StoreUnavailableError, fn not run",
    async (how) => {
      let ran = false;
      const run = runIdempotent({ store: failing(how), key: "job-1" }, () => {
        ran = true;
      });
      await expect(run).rejects.toBeInstanceOf(StoreUnavailableError);
      await expect(run).rejects.toThrow(/ECONNREFUSED/);
      expect(ran).toBe(false);
    },
  );
});

describe("runIdempotent's durations", () => {
  // 1.1 days in ms is 95040000.00000001: no store keeps a record for a fraction of a ms.
  const DAY = 24 * 60 * 60 * 1000;

  it.each([
    ["retentionMs", 1.1 * DAY],
    ["retentionMs", 0],
    ["lockTtlMs", 0],
    ["lockTtlMs", 1.5],
  ])("refuses %s of %s with InterlockConfigError, before fn runs", async (option, value) => {
    let runs = 0;
    const run = runIdempotent({ store: new MemoryStore(), key: "job-durations", [option]: value }, () => ++runs);
    await expect(run).rejects.toBeInstanceOf(InterlockConfigError);
    expect(runs).toBe(0);
  });
});

describe("the store option, checked at set-up", () => {
  const complete = () => new MemoryStore();
  const withoutMethod = (method: string) => {
    const store = complete();
    return new Proxy(store, {
      get: (target, name) => (name === method ? undefined : Reflect.get(target, name, target)),
    });
  };
  const wrong: Array<[string, () => unknown, RegExp]> = [
    ["left out", () => undefined, /store is missing/],
    ["a factory not called", () => () => complete(), /a function \(call it\?\)/],
    ["an empty object", () => ({}), /has no claim\(\) method/],
    ["a store whose complete is misspelt", () => withoutMethod("complete"), /has no complete\(\) method/],
    ["a store without extend", () => withoutMethod("extend"), /has no extend\(\) method/],
    ["a store without maxRecordBytes", () => withoutMethod("maxRecordBytes"), /positive maxRecordBytes/],
  ];

  it.each(wrong)(
    "%s: createIdempotency, createWebhookReceiver and runIdempotent throw InterlockConfigError",
    async (_what, make, message) => {
      const store = make() as InterlockStore;
      expect(() => createIdempotency({ store, principal: false })).toThrow(InterlockConfigError);
      expect(() => createIdempotency({ store, principal: false })).toThrow(message);
      expect(() =>
        createWebhookReceiver({ scheme: standardWebhooks, secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", store }),
      ).toThrow(InterlockConfigError);
      let runs = 0;
      await expect(runIdempotent({ store, key: "job-store" }, () => ++runs)).rejects.toBeInstanceOf(
        InterlockConfigError,
      );
      expect(runs).toBe(0);
    },
  );

  it("a complete store is taken as it is", () => {
    expect(() => createIdempotency({ store: complete(), principal: false })).not.toThrow();
  });
});

describe("options checked at set-up", () => {
  const make = (options: Record<string, unknown>) => () =>
    createIdempotency({ store: new MemoryStore(), principal: false, ...options } as never);

  it.each([
    ["headerName", "Idempotency Key"],
    ["headerName", ""],
    ["replayedHeader", "Idempotent Replayed"],
    ["replayedHeader", ""],
    ["methods", []],
    ["methods", ["PO ST"]],
    ["replayHeaders", ["x-trace", "bad name"]],
    ["replayHeaders", ["x-\u0000"]],
    ["replayHeaders", [""]],
    ["replayHeaders", "content-type"],
    ["cache", "none"],
    ["failOpen", "false"],
    ["required", "true"],
    ["principal", "user"],
    ["fingerprint", "body"],
  ])("%s: %j throws InterlockConfigError naming it", (option, value) => {
    expect(make({ [option]: value })).toThrow(InterlockConfigError);
    expect(make({ [option]: value })).toThrow(option);
  });

  it("header names that are tokens, lower-case methods and every cache policy are taken", () => {
    expect(make({ headerName: "X-Request-Key", replayedHeader: "x-replayed", methods: ["post", "PUT"] })).not.toThrow();
    expect(make({ replayHeaders: ["Content-Type", "x-trace-id", "set-cookie"] })).not.toThrow();
    for (const cache of ["non-5xx", "2xx", "all"]) expect(make({ cache })).not.toThrow();
  });
});

describe("waiting for a request in flight", () => {
  // `Number(process.env.WAIT_MS)` with the variable unset is NaN: a wait with no deadline,
  // polling the store every millisecond (setTimeout(NaN) is 1 ms) while the first one runs.
  const badWaits: Array<[string, { timeoutMs: number; pollMs?: number }]> = [
    ["a NaN timeoutMs", { timeoutMs: Number.NaN }],
    ["a negative timeoutMs", { timeoutMs: -1 }],
    ["a pollMs of 0", { timeoutMs: 1_000, pollMs: 0 }],
    ["an infinite pollMs", { timeoutMs: 1_000, pollMs: Number.POSITIVE_INFINITY }],
  ];

  it.each(badWaits)("the engine refuses %s with InterlockConfigError", (_, wait) => {
    expect(() => createIdempotency({ store: new MemoryStore(), principal: false, waitForInFlight: wait })).toThrow(
      InterlockConfigError,
    );
  });

  // Node refuses a status outside 100–999 when the answer is written: one past 4xx surfaced only
  // as a request's 500, and a 2xx would tell a client its reused key had worked.
  it.each([4220, 200, 500, 421.5, Number.NaN])(
    "the engine refuses a mismatchStatus of %s with InterlockConfigError",
    (status) => {
      expect(() => createIdempotency({ store: new MemoryStore(), principal: false, mismatchStatus: status })).toThrow(
        InterlockConfigError,
      );
    },
  );

  it("the engine takes any 4xx as mismatchStatus (Stripe answers 400, the draft 422)", () => {
    expect(() => createIdempotency({ store: new MemoryStore(), principal: false, mismatchStatus: 400 })).not.toThrow();
  });

  it("a system clock set back mid-wait does not stretch the wait (the copy gets its 409 after timeoutMs)", async () => {
    const store = new MemoryStore();
    const engine = createIdempotency({ store, principal: false, waitForInFlight: { timeoutMs: 100, pollMs: 20 } });
    const request = { method: "POST", route: "/r", path: "/r", headers: { "idempotency-key": "k-clock" }, body: "{}" };
    expect((await engine.begin(request)).action).toBe("execute");
    const real = Date.now.bind(Date);
    let calls = 0;
    // The first reading is the true time, every later one an hour earlier: a clock set back mid-wait.
    const now = vi.spyOn(Date, "now").mockImplementation(() => (calls++ === 0 ? real() : real() - 3_600_000));
    try {
      const copy = await engine.begin(request);
      expect(copy.action === "respond" && copy.response.status).toBe(409);
    } finally {
      now.mockRestore();
    }
  }, 5_000);

  it.each(badWaits)("runIdempotent refuses %s with InterlockConfigError, before it claims", async (_, wait) => {
    const store = new MemoryStore();
    const claims = countCalls(store, "claim");
    await expect(runIdempotent({ store, key: "job-wait", wait }, () => 1)).rejects.toBeInstanceOf(InterlockConfigError);
    expect(claims.calls()).toBe(0);
  });
});

describe("the route events name", () => {
  it("is routePattern, read as each event is emitted, and none while it is undefined; route scopes the key", async () => {
    const events: InterlockEvent[] = [];
    const engine = createIdempotency({ store: new MemoryStore(), principal: false, onEvent: (e) => events.push(e) });
    let pattern: string | undefined;
    const request = (path: string, key = "k-route") => ({
      method: "POST",
      route: path,
      routePattern: () => pattern,
      path,
      headers: { "idempotency-key": key },
      body: "",
    });
    const first = await engine.begin(request("/orders/1"));
    if (first.action !== "execute") throw new Error(`expected execute, got ${first.action}`);
    pattern = "/orders/:id"; // routing matched once the key was claimed
    await engine.finish(first.ticket, { status: 201, headers: {}, body: "" });
    pattern = undefined;
    expect((await engine.begin(request("/orders/2"))).action).toBe("execute"); // another path, another scope
    engine.refuse(request("/orders/3"), new BodyError("body_too_large", "too large"));
    expect(events.map((e) => [e.type, "route" in e ? e.route : "none"])).toEqual([
      ["idempotency.first", "none"],
      ["idempotency.completed", "/orders/:id"],
      ["idempotency.first", "none"],
      ["idempotency.rejected", "none"],
    ]);
    events.length = 0;
    await engine.begin({ ...request("/refunds", "k-route-2"), routePattern: undefined });
    expect(events).toMatchObject([{ type: "idempotency.first", route: "/refunds" }]); // without one: `route`
  });
});

describe("extendLease's bound", () => {
  const request = (key: string) => keyedPost(key, new Uint8Array(0), "/events");

  /** Claims `key` with `extendLease` on a store whose clock is the fake timers', and never settles it. */
  async function holdForever(extendLease: true | { maxMs: number }, lockTtlMs = 300) {
    const store = new MemoryStore();
    const extensions = countCalls(store, "extend");
    const engine = createIdempotency({ store, principal: false, lockTtlMs, extendLease });
    const decision = await engine.begin(request("k-stream"));
    if (decision.action !== "execute") throw new Error(`expected execute, got ${decision.action}`);
    // A retry: 409 while the key is held, run once it is free.
    const retry = async () => (await engine.begin(request("k-stream"))).action;
    return { retry, extends: extensions.calls };
  }

  it("renews a response that never ends until it has held its key for maxMs; the lease then runs out", async () => {
    vi.useFakeTimers();
    try {
      const held = await holdForever({ maxMs: 1_000 });
      vi.advanceTimersByTime(900);
      expect(await held.retry()).toBe("respond"); // 409: still renewed past the first lease
      vi.advanceTimersByTime(10_000);
      expect(held.extends()).toBe(10); // every 100 ms, for 1 s
      expect(await held.retry()).toBe("execute");
    } finally {
      vi.useRealTimers();
    }
  });

  it("extendLease: true renews for 10 minutes at most", async () => {
    vi.useFakeTimers();
    try {
      const held = await holdForever(true, 60_000);
      vi.advanceTimersByTime(DEFAULT_IDEMPOTENCY_RENEWAL_MAX_MS - 1);
      expect(await held.retry()).toBe("respond");
      vi.advanceTimersByTime(60_000 + 1);
      expect(await held.retry()).toBe("execute");
      expect(held.extends()).toBe(DEFAULT_IDEMPOTENCY_RENEWAL_MAX_MS / 20_000);
    } finally {
      vi.useRealTimers();
    }
  });

  it("cutOff: the lease is renewed no more, so the key lapses within lockTtlMs; a retry meanwhile is in flight, then runs", async () => {
    vi.useFakeTimers();
    try {
      const store = new MemoryStore();
      const renewals = countCalls(store, "extend");
      const engine = createIdempotency({ store, principal: false, lockTtlMs: 300, extendLease: true });
      const first = await engine.begin(request("k-cut-lapse"));
      if (first.action !== "execute") throw new Error(`expected execute, got ${first.action}`);
      vi.advanceTimersByTime(150); // renewed once, at 100 ms: held until 400 ms
      engine.cutOff(first.ticket);
      engine.cutOff(first.ticket); // idempotent
      vi.advanceTimersByTime(200);
      expect(await engine.begin(request("k-cut-lapse"))).toMatchObject({
        action: "respond",
        error: { code: "request_in_flight" },
      });
      vi.advanceTimersByTime(100); // past 400 ms: renewed, it would be held until 700 ms
      expect(renewals.calls()).toBe(1);
      expect((await engine.begin(request("k-cut-lapse"))).action).toBe("execute");
      // The first request's answer comes too late: its lease is another request's now.
      expect(await engine.finish(first.ticket, { status: 201, headers: {}, body: "late" })).toBe(false);
    } finally {
      vi.useRealTimers();
    }
  });

  it("cutOff does not settle: a finish before the lease lapses is recorded, and the retry replays it", async () => {
    vi.useFakeTimers();
    try {
      const engine = createIdempotency({
        store: new MemoryStore(),
        principal: false,
        lockTtlMs: 300,
        extendLease: true,
      });
      const first = await engine.begin(request("k-cut-finish"));
      if (first.action !== "execute") throw new Error(`expected execute, got ${first.action}`);
      engine.cutOff(first.ticket);
      vi.advanceTimersByTime(200);
      expect(await engine.finish(first.ticket, { status: 201, headers: {}, body: "done" })).toBe(true);
      vi.advanceTimersByTime(10_000);
      const retry = await engine.begin(request("k-cut-finish"));
      expect(retry).toMatchObject({ action: "respond", replayed: true, response: { status: 201 } });
      expect(new TextDecoder().decode((retry as { response: { body: Uint8Array } }).response.body)).toBe("done");
      engine.cutOff(first.ticket); // after the finish: nothing, and no throw
    } finally {
      vi.useRealTimers();
    }
  });

  it("a lease longer than a timer can wait is renewed at the longest wait, not every millisecond", async () => {
    const held = await holdForever({ maxMs: 1e12 }, 1e10); // a third of it is past setTimeout's 24.8 days
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(held.extends()).toBe(0);
  });

  it.each([0, -1, 1.5, Number.NaN])("refuses a maxMs of %s with InterlockConfigError", (maxMs) => {
    expect(() => createIdempotency({ store: new MemoryStore(), principal: false, extendLease: { maxMs } })).toThrow(
      InterlockConfigError,
    );
  });
});

describe("runIdempotent's lease", () => {
  /** A run on `store` whose fn waits until `finish()` is called. */
  function slowRun(store: MemoryStore, extra: Partial<RunIdempotentOptions> = {}) {
    let finish = () => {};
    const run = runIdempotent({ store, key: "job-slow", lockTtlMs: 300, ...extra }, () => {
      return new Promise<string>((resolve) => {
        finish = () => resolve("first");
      });
    });
    return { run, finish: () => finish() };
  }

  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("is renewed while fn runs: a run with the key meanwhile is refused as in flight, three leases in", async () => {
    const store = new MemoryStore();
    const first = slowRun(store);
    await vi.advanceTimersByTimeAsync(1_000);
    const second = runIdempotent({ store, key: "job-slow", lockTtlMs: 300 }, () => "second");
    await expect(second).rejects.toMatchObject({ code: "request_in_flight" });
    first.finish();
    expect(await first.run).toEqual({ value: "first", replayed: false, recorded: true });
  });

  it("extendLease: false renews nothing: past lockTtlMs another run takes the key, and the first is not recorded", async () => {
    const store = new MemoryStore();
    const first = slowRun(store, { extendLease: false });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await runIdempotent({ store, key: "job-slow", lockTtlMs: 300 }, () => "second")).toMatchObject({
      value: "second",
      replayed: false,
    });
    first.finish();
    expect(await first.run).toEqual({ value: "first", replayed: false, recorded: false });
  });

  it("leaves no timer behind once it has returned or thrown: nothing to renew, nothing to keep a process open for", async () => {
    const store = new MemoryStore();
    // A timer left behind outlived its run by a third of the lease (20 s by default), one per
    // run: a consumer's thousands a second piled up, and where a timer cannot be unref'd (Deno)
    // a script that ran one job stayed open that long after it.
    expect(await runIdempotent({ store, key: "job-done" }, () => "done")).toMatchObject({ value: "done" });
    await expect(
      runIdempotent({ store, key: "job-failed" }, () => {
        throw new Error("failed");
      }),
    ).rejects.toThrow("failed");
    expect(await runIdempotent({ store, key: "job-done" }, () => "again")).toMatchObject({ replayed: true });
    expect(vi.getTimerCount()).toBe(0);
  });

  it("stops renewing at extendLease.maxMs, and refuses a maxMs that is not a positive whole number of ms", async () => {
    const store = new MemoryStore();
    const first = slowRun(store, { extendLease: { maxMs: 600 } });
    await vi.advanceTimersByTimeAsync(1_500);
    expect(await runIdempotent({ store, key: "job-slow" }, () => "second")).toMatchObject({ value: "second" });
    first.finish();
    await first.run;
    const bad = runIdempotent({ store: new MemoryStore(), key: "job-bad", extendLease: { maxMs: 0 } }, () => 1);
    await expect(bad).rejects.toBeInstanceOf(InterlockConfigError);
  });
});

describe("a store that throws instead of rejecting, once the key is claimed", () => {
  const throwing = (...methods: Array<"complete" | "release" | "extend">): InterlockStore => {
    const store = new MemoryStore();
    for (const method of methods) {
      store[method] = () => {
        throw new Error("ECONNRESET");
      };
    }
    return store;
  };
  const request = (key: string) => keyedPost(key, new Uint8Array(0));

  it("finish and abort still never throw when the release throws", async () => {
    const engine = createIdempotency({ store: throwing("release"), principal: false });
    const first = await engine.begin(request("k-release-1"));
    if (first.action !== "execute") throw new Error(`expected execute, got ${first.action}`);
    await expect(engine.finish(first.ticket, { status: 503, headers: {}, body: "down" })).resolves.toBe(false);
    const second = await engine.begin(request("k-release-2"));
    if (second.action !== "execute") throw new Error(`expected execute, got ${second.action}`);
    await expect(engine.abort(second.ticket)).resolves.toBeUndefined();
  });

  it("a lease renewal that throws stays inside its timer", async () => {
    vi.useFakeTimers();
    try {
      const engine = createIdempotency({
        store: throwing("extend"),
        principal: false,
        lockTtlMs: 30,
        extendLease: true,
      });
      const decision = await engine.begin(request("k-extend"));
      if (decision.action !== "execute") throw new Error(`expected execute, got ${decision.action}`);
      expect(() => vi.advanceTimersByTime(100)).not.toThrow();
      await engine.abort(decision.ticket);
    } finally {
      vi.useRealTimers();
    }
  });

  it("runIdempotent still rethrows fn's own error when the release throws", async () => {
    const run = runIdempotent({ store: throwing("release"), key: "job-release" }, () => {
      throw new Error("fn failed");
    });
    await expect(run).rejects.toThrow("fn failed");
  });

  it("runIdempotent still returns the done work, not recorded, when complete and release throw", async () => {
    const run = runIdempotent({ store: throwing("complete", "release"), key: "job-complete" }, () => "done");
    await expect(run).resolves.toEqual({ value: "done", replayed: false, recorded: false });
  });
});

describe("a record an older version stored", () => {
  it("is replayed without Set-Cookie: during a rolling upgrade the older instances still store it", async () => {
    const store = new MemoryStore();
    // What an instance on a version before Set-Cookie was left out stored, for an app that
    // listed it in replayHeaders: the same record, its cookie included.
    const older: InterlockStore = {
      name: store.name,
      maxRecordBytes: store.maxRecordBytes,
      claim: (key, options) => store.claim(key, options),
      release: (key, token) => store.release(key, token),
      extend: (key, token, lockTtlMs) => store.extend(key, token, lockTtlMs),
      complete: (key, token, response, options) =>
        store.complete(
          key,
          token,
          { ...response, headers: [...response.headers, ["set-cookie", "session=first-client; HttpOnly"]] },
          options,
        ),
    };
    const options = { principal: false as const, replayHeaders: ["content-type", "set-cookie"] };
    const request = (): IdempotencyRequest => ({
      method: "POST",
      route: "/payments",
      path: "/payments",
      headers: { "idempotency-key": "k-upgrade" },
      body: () => "{}",
    });
    const olderEngine = createIdempotency({ store: older, ...options });
    const first = await olderEngine.begin(request());
    if (first.action !== "execute") throw new Error(`expected execute, got ${first.action}`);
    expect(
      await olderEngine.finish(first.ticket, {
        status: 201,
        headers: { "content-type": "application/json" },
        body: "{}",
      }),
    ).toBe(true);

    const replay = await createIdempotency({ store, ...options }).begin(request());
    if (replay.action !== "respond") throw new Error(`expected respond, got ${replay.action}`);
    expect(replay.response.headers).toEqual([
      ["content-type", "application/json"],
      ["Idempotent-Replayed", "true"],
    ]);
  });
});

describe("the cache of scope hashes", () => {
  // A collection on demand, without starting the process with --expose-gc.
  const collect = (): void => {
    setFlagsFromString("--expose-gc");
    (runInNewContext("gc") as () => void)();
  };

  it("does not keep the long routes and principals a client can choose", async () => {
    // An app-wide middleware scopes by path, and a principal may come from a header: a client
    // choosing a new 16 KiB one per request must not make the engine keep them all.
    const engine = createIdempotency({ store: new MemoryStore({ maxEntries: 10_000 }), principal: false });
    collect();
    const before = process.memoryUsage().heapUsed;
    const padding = "p".repeat(16 * 1024);
    for (let i = 0; i < 4000; i++) {
      const path = `/${i}/${padding}`;
      const decision = await engine.begin({
        method: "POST",
        route: path,
        path,
        headers: { "idempotency-key": "k" },
        body: "",
      });
      if (decision.action === "execute") await engine.abort(decision.ticket);
    }
    collect();
    // Kept, the routes would hold 64 MiB.
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(16 * 1024 * 1024);
    // Used after the measure, so the engine (and whatever it keeps) is not collected before it.
    expect(engine.options.principal).toBe(false);
  });
});

describe("edges the decision table leaves open", () => {
  const request = (key: string, body = "{}", path = "/payments") => ({
    method: "POST",
    route: "/payments",
    path,
    headers: { "idempotency-key": key },
    body,
  });

  /** Runs one request answered `status`, then its retry: whether the retry was replayed. */
  async function storedAfter(options: Partial<Parameters<typeof createIdempotency>[0]>, status: number) {
    const engine = createIdempotency({ store: new MemoryStore(), principal: false, ...options });
    const key = `k-status-${status}`;
    const first = await engine.begin(request(key));
    if (first.action !== "execute") throw new Error(`expected execute, got ${first.action}`);
    await engine.finish(first.ticket, { status, headers: {}, body: "answer" });
    const retry = await engine.begin(request(key));
    if (retry.action === "execute") await engine.abort(retry.ticket);
    return retry.action === "respond" && retry.replayed;
  }

  it("each cache policy's boundaries: 499 stored and 500 released by default, 299 stored and 300 released by '2xx', 599 stored by 'all'", async () => {
    expect(await storedAfter({}, 499)).toBe(true);
    expect(await storedAfter({}, 500)).toBe(false);
    expect(await storedAfter({ cache: "2xx" }, 200)).toBe(true);
    expect(await storedAfter({ cache: "2xx" }, 299)).toBe(true);
    expect(await storedAfter({ cache: "2xx" }, 300)).toBe(false);
    expect(await storedAfter({ cache: "all" }, 500)).toBe(true);
    expect(await storedAfter({ cache: "all" }, 599)).toBe(true);
  });

  /** A fresh engine on which `key` is completed (201 "made") by a POST of `body` to `path`. */
  async function completedOn(key: string, body: string, path: string) {
    const engine = createIdempotency({ store: new MemoryStore(), principal: false });
    const first = await engine.begin(request(key, body, path));
    if (first.action !== "execute") throw new Error(`expected execute, got ${first.action}`);
    await engine.finish(first.ticket, { status: 201, headers: {}, body: "made" });
    return engine;
  }

  it("the default fingerprint keeps the path and the body apart: /p?x=1 with no body is not /p?x= with the body 1", async () => {
    const engine = await completedOn("k-fp", "", "/payments?x=1");
    const other = await engine.begin(request("k-fp", "1", "/payments?x="));
    expect(other).toMatchObject({ action: "respond", replayed: false, error: { code: "idempotency_key_mismatch" } });
  });

  it("a request target in absolute form is the same request as its path: replayed, not a mismatch", async () => {
    const engine = await completedOn("k-target", "{}", "/payments?x=1");
    const absolute = await engine.begin(request("k-target", "{}", "http://api.example:8080/payments?x=1"));
    expect(absolute).toMatchObject({ action: "respond", replayed: true, response: { status: 201 } });
    const elsewhere = await engine.begin(request("k-target", "{}", "http://api.example/refunds?x=1"));
    expect(elsewhere).toMatchObject({ action: "respond", error: { code: "idempotency_key_mismatch" } });
  });

  it("a request target in absolute form without a path keeps its query: another query is another request", async () => {
    // `http://host?x=1` has the empty path, which is "/" (RFC 9110 §4.2.3): it is `/?x=1`, not `/`.
    const engine = await completedOn("k-no-path", "{}", "http://api.example?amount=10");
    const same = await engine.begin(request("k-no-path", "{}", "/?amount=10"));
    expect(same).toMatchObject({ action: "respond", replayed: true, response: { status: 201 } });
    const other = await engine.begin(request("k-no-path", "{}", "http://api.example?amount=1000"));
    expect(other).toMatchObject({ action: "respond", error: { code: "idempotency_key_mismatch" } });
    const slashInQuery = await engine.begin(request("k-no-path", "{}", "http://api.example?next=/refunds"));
    expect(slashInQuery).toMatchObject({ action: "respond", error: { code: "idempotency_key_mismatch" } });
  });

  it.each([
    [500, "1"],
    [60_000, "1"],
    [600_000, "1"],
  ])(
    "a key in flight under a lease of %s ms asks for a retry in Retry-After: %s (soon: the key frees when the first finishes, not when its lease would end)",
    async (lockTtlMs, seconds) => {
      const engine = createIdempotency({ store: new MemoryStore(), principal: false, lockTtlMs });
      expect((await engine.begin(request("k-retry-after"))).action).toBe("execute");
      const copy = await engine.begin(request("k-retry-after"));
      if (copy.action !== "respond") throw new Error(`expected respond, got ${copy.action}`);
      expect(copy.response.status).toBe(409);
      expect(copy.response.headers).toContainEqual(["retry-after", seconds]);
    },
  );

  it("a full memory store answers 503 with Retry-After: when it takes a new key again, not the 2 s of a store down", async () => {
    let now = 1_000;
    const store = new MemoryStore({ maxEntries: 1, whenFull: "refuse", now: () => now });
    const engine = createIdempotency({ store, principal: false, retentionMs: 10 * 60_000 });
    const first = await engine.begin(request("k-kept"));
    if (first.action !== "execute") throw new Error(`expected execute, got ${first.action}`);
    await engine.finish(first.ticket, { status: 201, headers: {}, body: "made" });
    now += 60_000;
    const refused = await engine.begin(request("k-new"));
    if (refused.action !== "respond") throw new Error(`expected respond, got ${refused.action}`);
    expect([refused.response.status, refused.error?.code]).toEqual([503, "store_unavailable"]);
    expect(refused.response.headers).toContainEqual(["retry-after", String(9 * 60)]);
  });

  it("waitForInFlight does not wait on a request with other content: its 422 comes from the first claim", async () => {
    const store = new MemoryStore();
    const claims = countCalls(store, "claim");
    const engine = createIdempotency({ store, principal: false, waitForInFlight: { timeoutMs: 300, pollMs: 10 } });
    expect((await engine.begin(request("k-wait-other", "first"))).action).toBe("execute");
    claims.reset();
    const other = await engine.begin(request("k-wait-other", "second"));
    expect(other).toMatchObject({ action: "respond", error: { code: "idempotency_key_mismatch" } });
    expect(claims.calls()).toBe(1);
  });

  it("stops renewing a lease once the request is finished or aborted", async () => {
    vi.useFakeTimers();
    try {
      const store = new MemoryStore();
      const renewals = countCalls(store, "extend");
      const engine = createIdempotency({ store, principal: false, lockTtlMs: 300, extendLease: true });
      const finished = await engine.begin(request("k-renew-finish"));
      const aborted = await engine.begin(request("k-renew-abort"));
      if (finished.action !== "execute" || aborted.action !== "execute") throw new Error("expected execute");
      vi.advanceTimersByTime(150);
      expect(renewals.calls()).toBe(2); // one renewal each, every 100 ms
      await engine.finish(finished.ticket, { status: 201, headers: {}, body: "ok" });
      await engine.abort(aborted.ticket);
      vi.advanceTimersByTime(10_000);
      expect(renewals.calls()).toBe(2);
    } finally {
      vi.useRealTimers();
    }
  });

  it("a ticket settles once: abort after a finish, or finish after an abort, does nothing and reports nothing", async () => {
    const events: InterlockEvent[] = [];
    const engine = createIdempotency({ store: new MemoryStore(), principal: false, onEvent: (e) => events.push(e) });
    const finished = await engine.begin(request("k-settle-finish"));
    if (finished.action !== "execute") throw new Error(`expected execute, got ${finished.action}`);
    expect(await engine.finish(finished.ticket, { status: 201, headers: {}, body: "ok" })).toBe(true);
    const aborted = await engine.begin(request("k-settle-abort"));
    if (aborted.action !== "execute") throw new Error(`expected execute, got ${aborted.action}`);
    await engine.abort(aborted.ticket);
    const settled = events.length;
    await engine.abort(finished.ticket);
    expect(await engine.finish(aborted.ticket, { status: 201, headers: {}, body: "late" })).toBe(false);
    expect(events.slice(settled)).toEqual([]);
    expect(await engine.begin(request("k-settle-finish"))).toMatchObject({ action: "respond", replayed: true });
    expect((await engine.begin(request("k-settle-abort"))).action).toBe("execute");
  });
});

describe("runIdempotent's edges", () => {
  it("a completed key run again with other input is refused as a mismatch, not answered with the other's value", async () => {
    const store = new MemoryStore();
    await runIdempotent({ store, key: "job-mismatch", fingerprint: "msg-1" }, () => "first");
    let ran = false;
    const other = runIdempotent({ store, key: "job-mismatch", fingerprint: "msg-2" }, () => (ran = true));
    await expect(other).rejects.toMatchObject({ code: "idempotency_key_mismatch" });
    expect(ran).toBe(false);
  });

  it.each([
    ["a key longer than a store key can be", { key: "k".repeat(1021) }],
    ["a key holding NUL", { key: "job\u0000-1" }],
    ["a key holding a lone surrogate", { key: "job-\ud800" }],
    ["a fingerprint holding NUL", { key: "job-fingerprint", fingerprint: "msg\u0000" }],
  ])("refuses %s with InterlockConfigError before fn runs, not as a store outage", async (_, options) => {
    let ran = false;
    const run = runIdempotent({ store: new MemoryStore(), ...options }, () => (ran = true));
    await expect(run).rejects.toBeInstanceOf(InterlockConfigError);
    expect(ran).toBe(false);
  });

  it("takes a key of 1020 characters: 1024 with its run: scope, the longest key every store holds", async () => {
    expect(await runIdempotent({ store: new MemoryStore(), key: "k".repeat(1020) }, () => "done")).toMatchObject({
      value: "done",
      recorded: true,
    });
  });

  it("a result the store failed to record keeps the key for its lease: a run meanwhile is in flight, one after it runs", async () => {
    const store = new MemoryStore();
    const complete = store.complete.bind(store);
    store.complete = () => Promise.reject(new Error("ECONNRESET"));
    let runs = 0;
    const work = () => ++runs;
    const options = { store, key: "job-unrecorded", lockTtlMs: 300, extendLease: false };
    expect(await runIdempotent(options, work)).toEqual({ value: 1, replayed: false, recorded: false });
    store.complete = complete;
    // The work's effects exist: a redelivery now must not run it again.
    await expect(runIdempotent(options, work)).rejects.toMatchObject({ code: "request_in_flight" });
    expect(runs).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(await runIdempotent(options, work)).toEqual({ value: 2, replayed: false, recorded: true });
  });

  it.each([
    ["not JSON", () => 10n],
    ["too large for the store", () => "x".repeat(2048)],
  ])("a result no store could keep (%s) frees the key at once: the next run runs", async (_what, result) => {
    const store = new MemoryStore({ maxRecordBytes: 1024 });
    let runs = 0;
    const work = () => {
      runs++;
      return result();
    };
    const options = { store, key: "job-unrecordable", lockTtlMs: 60_000 };
    expect(await runIdempotent(options, work)).toMatchObject({ replayed: false, recorded: false });
    expect(await runIdempotent(options, work)).toMatchObject({ replayed: false, recorded: false });
    expect(runs).toBe(2);
  });

  it("a result too large for the store is not handed to it", async () => {
    const store = new MemoryStore({ maxRecordBytes: 1024 });
    const complete = vi.spyOn(store, "complete");
    await runIdempotent({ store, key: "job-large" }, () => "x".repeat(2048));
    expect(complete).not.toHaveBeenCalled();
  });
});

describe("what the engine and runIdempotent hand the store", () => {
  const request = (key: string) => keyedPost(key);

  it("stores an answer of exactly maxRecordBytes in UTF-8, header text included, and releases one a byte over", async () => {
    // "é" is one UTF-16 unit and two bytes: a count of units would take both answers for 96 bytes.
    const store = new MemoryStore({ maxRecordBytes: 128 });
    const events: InterlockEvent[] = [];
    const engine = createIdempotency({
      store,
      principal: false,
      replayHeaders: ["x-name"],
      onEvent: (event) => events.push(event),
    });
    const answer = (bodyBytes: number) => ({
      status: 201,
      headers: { "x-name": "é".repeat(32) }, // 6 + 64 bytes
      body: "b".repeat(bodyBytes),
    });
    const fits = await engine.begin(request("k-fits"));
    if (fits.action !== "execute") throw new Error(`expected execute, got ${fits.action}`);
    expect(await engine.finish(fits.ticket, answer(128 - 70))).toBe(true);
    const over = await engine.begin(request("k-over"));
    if (over.action !== "execute") throw new Error(`expected execute, got ${over.action}`);
    expect(await engine.finish(over.ticket, answer(128 - 69))).toBe(false);
    expect(events.filter((event) => event.type === "idempotency.released")).toMatchObject([
      { reason: "too_large", status: 201, released: true },
    ]);
    expect(await engine.begin(request("k-fits"))).toMatchObject({ action: "respond", replayed: true });
    expect(await engine.begin(request("k-over"))).toMatchObject({ action: "execute" });
    // ASCII header text three times over the limit's bound, yet within it: stored.
    const ascii = await engine.begin(request("k-ascii"));
    if (ascii.action !== "execute") throw new Error(`expected execute, got ${ascii.action}`);
    const asciiAnswer = { status: 201, headers: { "x-name": "a".repeat(100) }, body: "b".repeat(22) };
    expect(await engine.finish(ascii.ticket, asciiAnswer)).toBe(true);
  });

  it("a response is kept for retentionMs, long past the lease: replayed until then, run again after", async () => {
    let now = 1_000_000;
    const store = new MemoryStore({ now: () => now });
    const engine = createIdempotency({ store, principal: false, lockTtlMs: 1_000, retentionMs: 10_000 });
    const first = await engine.begin(request("k-retention"));
    if (first.action !== "execute") throw new Error(`expected execute, got ${first.action}`);
    expect(await engine.finish(first.ticket, { status: 201, headers: {}, body: "made" })).toBe(true);
    now += 9_999;
    expect(await engine.begin(request("k-retention"))).toMatchObject({ action: "respond", replayed: true });
    now += 2;
    expect((await engine.begin(request("k-retention"))).action).toBe("execute");
  });

  it("runIdempotent keeps its result for retentionMs, long past the lease", async () => {
    let now = 1_000_000;
    const store = new MemoryStore({ now: () => now });
    const options = { store, key: "job-retention", lockTtlMs: 1_000, retentionMs: 10_000 };
    let runs = 0;
    await runIdempotent(options, () => ++runs);
    now += 9_999;
    expect(await runIdempotent(options, () => ++runs)).toMatchObject({ value: 1, replayed: true });
    now += 2;
    expect(await runIdempotent(options, () => ++runs)).toMatchObject({ value: 2, replayed: false });
  });

  it("finish and runIdempotent hand the caller's transaction to the store's complete, and none when not given", async () => {
    const store = new MemoryStore();
    const seen: unknown[] = [];
    const complete = store.complete.bind(store);
    // The memory store cannot join a transaction: note what it was handed, and complete without it.
    store.complete = (key, token, response, options) => {
      seen.push(options.transaction);
      return complete(key, token, response, { ttlMs: options.ttlMs });
    };
    const engine = createIdempotency({ store, principal: false });
    const transaction = { id: "tx-1" };
    const inTransaction = await engine.begin(request("k-tx-given"));
    const without = await engine.begin(request("k-tx-none"));
    if (inTransaction.action !== "execute" || without.action !== "execute") throw new Error("expected execute");
    await engine.finish(inTransaction.ticket, { status: 201, headers: {}, body: "ok" }, { transaction });
    await engine.finish(without.ticket, { status: 201, headers: {}, body: "ok" });
    await runIdempotent({ store, key: "job-tx-given", transaction }, () => "done");
    await runIdempotent({ store, key: "job-tx-none" }, () => "done");
    expect(seen).toEqual([transaction, undefined, transaction, undefined]);
    expect(await runIdempotent({ store, key: "job-tx-given" }, () => "again")).toMatchObject({ replayed: true });
    expect(seen[0]).toBe(transaction);
    expect(seen[2]).toBe(transaction);
  });
});

describe("what a replay and its events carry", () => {
  const request = (key: string, headers: Record<string, string> = {}) => ({
    method: "POST",
    route: "/payments",
    path: "/payments",
    headers: { "idempotency-key": key, ...headers },
    body: "{}",
  });

  it("replayHeaders match whatever their case; every value of a repeated header is replayed", async () => {
    const engine = createIdempotency({
      store: new MemoryStore(),
      principal: false,
      replayHeaders: ["X-Request-Cost", "Link"],
    });
    const first = await engine.begin(request("k-headers"));
    if (first.action !== "execute") throw new Error(`expected execute, got ${first.action}`);
    const link = ["</a>; rel=first", "</b>; rel=next"];
    await engine.finish(first.ticket, { status: 201, headers: { "x-request-cost": "3", link }, body: "ok" });
    const replay = await engine.begin(request("k-headers"));
    if (replay.action !== "respond") throw new Error(`expected respond, got ${replay.action}`);
    expect(replay.response.headers).toEqual([
      ["x-request-cost", "3"],
      ["link", link[0]],
      ["link", link[1]],
      ["Idempotent-Replayed", "true"],
    ]);
  });

  it("by default, the headers HTTP requires on a stored 401, 405, 407, 206 or 416 are replayed with it", async () => {
    // RFC 9110: a 401 MUST carry WWW-Authenticate (§15.5.2), a 405 Allow (§15.5.6), a 407
    // Proxy-Authenticate (§15.5.8), a 206 Content-Range (§15.3.7); a 416 should (§15.5.17).
    const engine = createIdempotency({ store: new MemoryStore(), principal: false });
    const answers: Array<[number, Record<string, string>]> = [
      [401, { "www-authenticate": 'Bearer error="insufficient_scope", scope="payments:write"' }],
      [405, { allow: "GET, HEAD" }],
      [407, { "proxy-authenticate": 'Basic realm="proxy"' }],
      [206, { "content-range": "bytes 0-1/10", "accept-ranges": "bytes" }],
      [416, { "content-range": "bytes */10" }],
      [201, { "accept-patch": "application/merge-patch+json", "accept-post": "application/json" }],
    ];
    for (const [status, headers] of answers) {
      const key = `k-required-${status}`;
      const first = await engine.begin(request(key));
      if (first.action !== "execute") throw new Error(`expected execute, got ${first.action}`);
      expect(await engine.finish(first.ticket, { status, headers, body: "{}" })).toBe(true);
      const replay = await engine.begin(request(key));
      if (replay.action !== "respond") throw new Error(`expected respond, got ${replay.action}`);
      expect(replay.response.status).toBe(status);
      expect(replay.response.headers).toEqual([...Object.entries(headers), ["Idempotent-Replayed", "true"]]);
    }
  });

  it("a HEAD answer is stored without content, with the Content-Length it announced, and replayed with it", async () => {
    const store = new MemoryStore();
    const engine = createIdempotency({ store, principal: false, methods: ["POST", "HEAD"] });
    const head = (key: string) => ({ ...request(key), method: "HEAD", body: "" });
    const answered = async (key: string, headers: Record<string, string | number>, body: string) => {
      const first = await engine.begin(head(key));
      if (first.action !== "execute") throw new Error(`expected execute, got ${first.action}`);
      await engine.finish(first.ticket, {
        status: 200,
        headers: { "content-type": "application/json", ...headers },
        body,
      });
      const replay = await engine.begin(head(key));
      if (replay.action !== "respond") throw new Error(`expected respond, got ${replay.action}`);
      return replay.response;
    };
    // Node's getHeaders() holds a length set as a number; content handed over for a HEAD is dropped.
    const replay = await answered("k-head", { "content-length": 27 }, '{"the GET content":"unsent"}');
    expect(replay.headers).toEqual([
      ["content-type", "application/json"],
      ["content-length", "27"],
      ["Idempotent-Replayed", "true"],
    ]);
    expect(replay.body).toEqual(new Uint8Array(0));
    // None announced, or one that is no length: none replayed (a HEAD answer may leave it out).
    for (const [key, headers] of [
      ["k-head-none", {}],
      ["k-head-bad", { "content-length": "27, 27" }],
    ] as const) {
      expect((await answered(key, headers, "")).headers.map(([name]) => name)).toEqual([
        "content-type",
        "Idempotent-Replayed",
      ]);
    }
    // A POST's Content-Length is its framing, never stored: the adapter frames the replayed body.
    const post = await engine.begin(request("k-post-length"));
    if (post.action !== "execute") throw new Error(`expected execute, got ${post.action}`);
    await engine.finish(post.ticket, { status: 201, headers: { "content-length": "2" }, body: "ok" });
    const postReplay = await engine.begin(request("k-post-length"));
    if (postReplay.action !== "respond") throw new Error(`expected respond, got ${postReplay.action}`);
    expect(postReplay.response.headers).toEqual([["Idempotent-Replayed", "true"]]);
  });

  it("a HEAD answer's headers handed over as an iterator (read once) keep its Content-Length", async () => {
    const engine = createIdempotency({ store: new MemoryStore(), principal: false, methods: ["HEAD"] });
    const head = { ...request("k-head-iterator"), method: "HEAD", body: "" };
    const first = await engine.begin(head);
    if (first.action !== "execute") throw new Error(`expected execute, got ${first.action}`);
    const headers = new Map([
      ["content-type", "application/json"],
      ["content-length", "27"],
    ]);
    await engine.finish(first.ticket, { status: 200, headers: headers.entries(), body: "" });
    const replay = await engine.begin(head);
    if (replay.action !== "respond") throw new Error(`expected respond, got ${replay.action}`);
    expect(replay.response.headers).toEqual([
      ["content-type", "application/json"],
      ["content-length", "27"],
      ["Idempotent-Replayed", "true"],
    ]);
  });

  it("methods match whatever their case", async () => {
    const engine = createIdempotency({ store: new MemoryStore(), principal: false, methods: ["put"] });
    expect((await engine.begin({ ...request("k-put"), method: "PUT" })).action).toBe("execute");
  });

  it("the replayed event carries the stored status, and the in_flight event whether the request waited", async () => {
    const events: InterlockEvent[] = [];
    const engine = createIdempotency({
      store: new MemoryStore(),
      principal: false,
      waitForInFlight: { timeoutMs: 30, pollMs: 10 },
      onEvent: (e) => events.push(e),
    });
    const first = await engine.begin(request("k-events"));
    if (first.action !== "execute") throw new Error(`expected execute, got ${first.action}`);
    expect(await engine.begin(request("k-events"))).toMatchObject({ error: { code: "request_in_flight" } });
    expect(events.at(-1)).toMatchObject({ type: "idempotency.in_flight", waited: true });
    await engine.finish(first.ticket, { status: 202, headers: {}, body: "accepted" });
    await engine.begin(request("k-events"));
    expect(events.at(-1)).toMatchObject({ type: "idempotency.replayed", status: 202 });
  });
});
