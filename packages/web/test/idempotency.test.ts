/** `withIdempotency` on its own: what the handler gets, how its answer is recorded, scoping, limits, failures. */
import { Readable } from "node:stream";
import { type InterlockEvent, MemoryStore } from "@interlock/core";
import { unreachableStore } from "@interlock/core/testing";
import { describe, expect, expectTypeOf, it } from "vitest";
import { type IdempotentHandler, withIdempotency } from "../src/index.js";
import {
  bytesOf,
  chunked,
  idempotencyOptions,
  leaveMidBody,
  problemOf,
  releasedEvents,
  start,
  startNotingOutcomes,
  uniqueId,
} from "./helpers.js";

const options = idempotencyOptions;

const send = (url: string, key: string, body: BodyInit = '{"amount":100}', init: RequestInit = {}) =>
  fetch(url, { method: "POST", headers: { "x-api-key": "client-a", "idempotency-key": key }, body, ...init });

/** The same as a web Request, for calling a wrapped handler directly. */
const requestOf = (key: string, body = '{"amount":100}', url = "http://127.0.0.1/payments") =>
  new Request(url, { method: "POST", headers: { "x-api-key": "client-a", "idempotency-key": key }, body });

const released = (events: InterlockEvent[]) => releasedEvents(events).map((event) => event.reason);

const encoder = new TextEncoder();

describe("the handler", () => {
  it("gets the request with its body unread, and its answer is replayed byte for byte", async () => {
    let runs = 0;
    const url = await start(
      withIdempotency(options(), async (request) => {
        runs++;
        const body = (await request.json()) as { amount: number };
        return Response.json(
          { id: `pay_${runs}`, amount: body.amount },
          { status: 201, headers: { location: "/p/1" } },
        );
      }),
    );
    const key = uniqueId("key");
    const first = await send(url, key);
    const firstBytes = await bytesOf(first);
    const replay = await send(url, key);
    expect([replay.status, replay.headers.get("idempotent-replayed"), replay.headers.get("location")]).toEqual([
      201,
      "true",
      "/p/1",
    ]);
    expect(replay.headers.get("content-type")).toBe(first.headers.get("content-type"));
    expect(await bytesOf(replay)).toEqual(firstBytes);
    expect(JSON.parse(new TextDecoder().decode(firstBytes))).toEqual({ id: "pay_1", amount: 100 });
    expect(runs).toBe(1);
  });

  it("a subclass of Request (Next's NextRequest) reaches the handler as it came, with what the host passes", async () => {
    class HostRequest extends Request {
      readonly host = "next";
    }
    const seen: unknown[] = [];
    const handle = withIdempotency(
      options(),
      async (request: HostRequest, context: { params: Promise<{ id: string }> }) => {
        seen.push(request, request.host, (await context.params).id, await request.text());
        return new Response("made", { status: 201 });
      },
    );
    expectTypeOf(handle).parameters.toEqualTypeOf<[HostRequest, { params: Promise<{ id: string }> }]>();
    const key = uniqueId("key");
    const request = new HostRequest("http://127.0.0.1/payments/7", {
      method: "POST",
      headers: { "x-api-key": "client-a", "idempotency-key": key },
      body: "{}",
    });
    expect((await handle(request, { params: Promise.resolve({ id: "7" }) })).status).toBe(201);
    expect(seen).toEqual([request, "next", "7", "{}"]);
  });

  it("principal, route and onError see the handler's own Request type (Next's NextRequest and its cookies)", async () => {
    class HostRequest extends Request {
      get account() {
        return this.headers.get("x-api-key") ?? undefined;
      }
    }
    const refused: string[] = [];
    const handle = withIdempotency(
      {
        store: new MemoryStore(),
        principal: (request) => request.context.account,
        route: (request) => `/accounts/${request.account}/payments`,
        required: true,
        onError: (decision, request) => {
          expectTypeOf(request).toEqualTypeOf<HostRequest>();
          refused.push(`${decision.error.code}:${request.account}`);
          return undefined;
        },
      },
      async (request: HostRequest) => new Response(`paid by ${request.account}`, { status: 201 }),
    );
    expectTypeOf(handle).parameters.toEqualTypeOf<[HostRequest]>();
    const key = uniqueId("key");
    const pay = (headers: Record<string, string>) =>
      handle(new HostRequest("http://127.0.0.1/payments", { method: "POST", headers, body: "{}" }));
    expect(await (await pay({ "x-api-key": "a", "idempotency-key": key })).text()).toBe("paid by a");
    expect((await pay({ "x-api-key": "a", "idempotency-key": key })).headers.get("idempotent-replayed")).toBe("true");
    expect((await pay({ "x-api-key": "b" })).status).toBe(400);
    expect(refused).toEqual(["idempotency_key_missing:b"]);
  });

  it("a request without a key, or a GET, passes through unread", async () => {
    const bodies: string[] = [];
    const handle = withIdempotency(options(), async (request) => {
      bodies.push(request.method === "GET" ? "-" : await request.text());
      return new Response("ok");
    });
    await handle(new Request("http://127.0.0.1/payments", { method: "POST", body: "no key" }));
    await handle(new Request("http://127.0.0.1/payments", { headers: { "idempotency-key": "k" } }));
    expect(bodies).toEqual(["no key", "-"]);
  });

  it("a handler that returns no Response (a forgotten return) is a TypeError, and the key is released", async () => {
    const events: InterlockEvent[] = [];
    let runs = 0;
    const handle = withIdempotency(options(events), (async () => {
      runs++;
    }) as unknown as IdempotentHandler<Request, []>);
    const key = uniqueId("key");
    await expect(handle(requestOf(key))).rejects.toThrow(/the handler must return a Response, not undefined/);
    await expect(handle(requestOf(key))).rejects.toThrow(TypeError);
    expect(runs).toBe(2);
    expect(released(events)).toEqual(["error", "error"]);
  });

  it.each([
    ["a plain { status, headers }", { status: 201, headers: new Headers() }],
    [
      "a node-fetch-style response (a Node stream body)",
      { status: 201, headers: new Headers(), body: Readable.from(["x"]) },
    ],
  ])("a look-alike of a Response (%s) is a TypeError, and the key is released", async (_name, lookAlike) => {
    const events: InterlockEvent[] = [];
    let runs = 0;
    const handle = withIdempotency(options(events), (async () => {
      runs++;
      return lookAlike;
    }) as unknown as IdempotentHandler<Request, []>);
    const key = uniqueId("key");
    await expect(handle(requestOf(key))).rejects.toThrow(/the handler must return a Response/);
    await expect(handle(requestOf(key))).rejects.toThrow(TypeError);
    expect(runs).toBe(2);
    expect(released(events)).toEqual(["error", "error"]);
  });

  it("a throw releases the key and goes on to the host: the retry runs again", async () => {
    const events: InterlockEvent[] = [];
    let runs = 0;
    const handle = withIdempotency(options(events), async () => {
      if (++runs === 1) throw new Error("card network down");
      return new Response("charged", { status: 201 });
    });
    const key = uniqueId("key");
    await expect(handle(requestOf(key))).rejects.toThrow("card network down");
    expect((await handle(requestOf(key))).status).toBe(201);
    expect(runs).toBe(2);
    expect(released(events)).toEqual(["error"]);
  });

  it("Response.error() (status 0, a network error) is no answer: the key is released and the retry runs again", async () => {
    const events: InterlockEvent[] = [];
    let runs = 0;
    const handle = withIdempotency(options(events, { cache: "all" }), async () =>
      ++runs === 1 ? Response.error() : new Response("charged", { status: 201 }),
    );
    const key = uniqueId("key");
    expect((await handle(requestOf(key))).type).toBe("error");
    // Stored, status 0 made every retry throw (a Response's status is 200 to 599) until the key expired.
    const retry = await handle(requestOf(key));
    expect([retry.status, await retry.text()]).toEqual([201, "charged"]);
    expect(runs).toBe(2);
    expect(released(events)).toEqual(["status"]);
  });

  it("a Response that turns out invalid only once read (@hono/node-server's own) releases the key, not hold it in flight", async () => {
    const events: InterlockEvent[] = [];
    let runs = 0;
    const url = await start(
      withIdempotency(options(events), async () => {
        runs++;
        // Serving, @hono/node-server makes its Response the global one: it checks the init (a 204
        // cannot have a body) only when the body is first asked for, past the handler's return.
        return new Response("no content", { status: 204 });
      }),
    );
    const key = uniqueId("key");
    expect((await send(url, key)).status).toBe(500);
    const retry = await send(url, key);
    expect([retry.status, runs]).toEqual([500, 2]); // it was 409 request_in_flight until the lease ran out
    expect(released(events)).toEqual(["error", "error"]);
  });

  it("a Response whose body was already read cannot be sent: a TypeError says why, and the key is released", async () => {
    const events: InterlockEvent[] = [];
    const handle = withIdempotency(options(events), async () => {
      const response = new Response("spent");
      await response.text();
      return response;
    });
    await expect(handle(requestOf(uniqueId("key")))).rejects.toThrow(/body was already read or is locked/);
    expect(released(events)).toEqual(["error"]);
  });
});

describe("answers the handler throws (Next's redirect() and notFound(), Remix's thrown Response)", () => {
  /** An error as Next's `redirect()`, `notFound()`, `forbidden()`… throw it: Next answers by its digest. */
  const nextError = (digest: string) => Object.assign(new Error(digest.split(";")[0]), { digest });

  const types = (events: InterlockEvent[]) => events.map((event) => event.type);

  it.each([
    ["redirect()", "NEXT_REDIRECT;replace;/payments/pay_1;307;", 307, "/payments/pay_1"],
    ["permanentRedirect(), a url holding ;", "NEXT_REDIRECT;push;/a;b?c=1;308;", 308, "/a;b?c=1"],
    ["notFound()", "NEXT_HTTP_ERROR_FALLBACK;404", 404, null],
    ["forbidden()", "NEXT_HTTP_ERROR_FALLBACK;403", 403, null],
    ["unauthorized()", "NEXT_HTTP_ERROR_FALLBACK;401", 401, null],
  ])(
    "Next's %s after the work is stored as the answer Next sends, and thrown on as it came",
    async (_name, digest, status, location) => {
      const events: InterlockEvent[] = [];
      let runs = 0;
      const thrown = nextError(digest);
      const handle = withIdempotency(options(events), async () => {
        runs++; // the payment is made…
        throw thrown; // …then Next answers the redirect, the 404
      });
      const key = uniqueId("key");
      await expect(handle(requestOf(key))).rejects.toBe(thrown); // Next answers it as ever
      const replay = await handle(requestOf(key));
      expect([replay.status, replay.headers.get("location"), replay.headers.get("idempotent-replayed")]).toEqual([
        status,
        location,
        "true",
      ]);
      expect(await replay.text()).toBe("");
      expect(runs).toBe(1);
      expect(types(events)).toEqual(["idempotency.first", "idempotency.completed", "idempotency.replayed"]);
    },
  );

  it.each([
    ["a redirect status Next does not send", "NEXT_REDIRECT;replace;/payments;301;"],
    ["a redirect to no url", "NEXT_REDIRECT;replace;;307;"],
    ["a redirect to a url no header can carry", "NEXT_REDIRECT;replace;/payments/\u20ac;307;"],
    ["a redirect of no known type", "NEXT_REDIRECT;reload;/payments;307;"],
    ["an access fallback of another status", "NEXT_HTTP_ERROR_FALLBACK;500"],
    ["another of Next's digests", "DYNAMIC_SERVER_USAGE"],
  ])("an error with %s is a failure (Next answers 500): the key is released", async (_name, digest) => {
    const events: InterlockEvent[] = [];
    let runs = 0;
    const handle = withIdempotency(options(events), async () => {
      runs++;
      throw nextError(digest);
    });
    const key = uniqueId("key");
    await expect(handle(requestOf(key))).rejects.toMatchObject({ digest });
    await expect(handle(requestOf(key))).rejects.toMatchObject({ digest });
    expect(runs).toBe(2);
    expect(released(events)).toEqual(["error", "error"]);
  });

  it("a thrown Response (Remix's throw redirect()) is stored and thrown on for the host to send", async () => {
    let runs = 0;
    const handle = withIdempotency(options(), async () => {
      runs++;
      throw new Response(null, { status: 302, headers: { location: "/orders/7" } });
    });
    const key = uniqueId("key");
    const thrown = await handle(requestOf(key)).catch((error: unknown) => error);
    expect(thrown).toBeInstanceOf(Response);
    expect([(thrown as Response).status, (thrown as Response).headers.get("location")]).toEqual([302, "/orders/7"]);
    const replay = await handle(requestOf(key));
    expect([replay.status, replay.headers.get("location"), replay.headers.get("idempotent-replayed")]).toEqual([
      302,
      "/orders/7",
      "true",
    ]);
    expect(runs).toBe(1);
  });

  it("a thrown Response with a body goes on with every byte of it, and its replay is the same", async () => {
    let runs = 0;
    const handle = withIdempotency(options(), async () => {
      runs++;
      throw Response.json({ error: "order 7 is closed" }, { status: 409, headers: { "x-kind": "closed" } });
    });
    const key = uniqueId("key");
    const thrown = (await handle(requestOf(key)).catch((error: unknown) => error)) as Response;
    expect([thrown.status, thrown.headers.get("x-kind"), await thrown.json()]).toEqual([
      409,
      "closed",
      { error: "order 7 is closed" },
    ]);
    const replay = await handle(requestOf(key));
    expect([replay.status, replay.headers.get("content-type"), await replay.json()]).toEqual([
      409,
      "application/json",
      { error: "order 7 is closed" },
    ]);
    expect(runs).toBe(1);
  });

  it("a thrown Response that turns out invalid only once read (@hono/node-server's own) releases the key", async () => {
    const events: InterlockEvent[] = [];
    let runs = 0;
    const url = await start(
      withIdempotency(options(events), async () => {
        runs++;
        throw new Response("no content", { status: 204 }); // checked by @hono/node-server only when read
      }),
    );
    const key = uniqueId("key");
    expect((await send(url, key)).status).toBe(500);
    const retry = await send(url, key);
    expect([retry.status, runs]).toEqual([500, 2]); // not 409 request_in_flight until the lease runs out
    expect(released(events)).toEqual(["error", "error"]);
  });

  it("a thrown look-alike of a Response, or of Next's error without a digest, is a failure: the key is released", async () => {
    const events: InterlockEvent[] = [];
    const throws = [{ status: 302, headers: new Headers({ location: "/x" }), body: null }, new Error("NEXT_REDIRECT")];
    const handle = withIdempotency(options(events), async () => {
      throw throws.shift();
    });
    const key = uniqueId("key");
    await expect(handle(requestOf(key))).rejects.toMatchObject({ status: 302 });
    await expect(handle(requestOf(key))).rejects.toThrow("NEXT_REDIRECT");
    expect(released(events)).toEqual(["error", "error"]);
  });
});

describe("options made on first use", () => {
  it("from the first call's arguments, once: every later call shares the engine and its store", async () => {
    let made = 0;
    const handle = withIdempotency(
      (_request: Request, context: { store: MemoryStore }) => {
        made++;
        return options([], { store: context.store });
      },
      async (_request, context) => new Response(String(context.store === shared), { status: 201 }),
    );
    const shared = new MemoryStore();
    const key = uniqueId("key");
    expect(await (await handle(requestOf(key), { store: shared })).text()).toBe("true");
    const replay = await handle(requestOf(key), { store: shared });
    expect([replay.headers.get("idempotent-replayed"), made]).toEqual(["true", 1]);
  });

  it("two first requests at the same instant build it once: a store made in the factory is shared, the copy is 409", async () => {
    let made = 0;
    let runs = 0;
    const handle = withIdempotency(
      () => {
        made++;
        return options(); // its own MemoryStore: two builds would be two key spaces, and both copies would run
      },
      async () => {
        runs++;
        await new Promise((resolve) => setTimeout(resolve, 20));
        return new Response("made", { status: 201 });
      },
    );
    const key = uniqueId("key");
    const answers = await Promise.all([handle(requestOf(key)), handle(requestOf(key))]);
    expect([answers.map((answer) => answer.status), made, runs]).toEqual([[201, 409], 1, 1]);
  });
});

describe("recording the answer", () => {
  /** An answer whose first part is written at once and the rest only when `more` resolves (never, without `rest`). */
  const liveResponse = (first: string, more: Promise<void>, rest?: string) =>
    new Response(
      new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(encoder.encode(first));
          await more;
          if (rest === undefined) return; // never ends
          controller.enqueue(encoder.encode(rest));
          controller.close();
        },
      }),
      { status: 201, headers: { "content-type": "text/plain" } },
    );

  it("a streamed answer reaches the client as it is written, and is stored once it ends", async () => {
    let runs = 0;
    let clientHasFirst: () => void = () => {};
    const url = await start(
      withIdempotency(options(), () => {
        runs++;
        return liveResponse("first;", new Promise((resolve) => (clientHasFirst = resolve)), "second");
      }),
    );
    const key = uniqueId("key");
    const first = await send(url, key);
    const reader = (first.body as ReadableStream<Uint8Array>).getReader();
    // Only once the client has the first part is the rest written: buffering the answer would deadlock here.
    expect(new TextDecoder().decode((await reader.read()).value)).toBe("first;");
    clientHasFirst();
    let rest = "";
    for (let r = await reader.read(); !r.done; r = await reader.read()) rest += new TextDecoder().decode(r.value);
    expect(rest).toBe("second");
    const replay = await send(url, key);
    expect([replay.status, replay.headers.get("idempotent-replayed"), await replay.text()]).toEqual([
      201,
      "true",
      "first;second",
    ]);
    expect(runs).toBe(1);
  });

  it("the end reaches the client only once it is stored: a retry the moment it has the whole answer is a replay", async () => {
    const store = new MemoryStore();
    let storing: () => void = () => {};
    const stored = new Promise<void>((resolve) => (storing = resolve));
    const complete = store.complete.bind(store);
    store.complete = async (...args: Parameters<MemoryStore["complete"]>) => {
      await stored;
      return complete(...args);
    };
    // Produced as it goes: its one part is written once the answer is on its way (below). On a
    // timer instead, a loaded machine could make it before the answer was recorded, and a body
    // ready by then goes out whole, once stored: held on `stored` here, a deadlock of the test's own.
    let produce: () => void = () => {};
    const produced = new Promise<void>((resolve) => (produce = resolve));
    const streamed = () =>
      new ReadableStream<Uint8Array>({
        async pull(controller) {
          await produced;
          controller.enqueue(encoder.encode("done"));
          controller.close();
        },
      });
    const handle = withIdempotency(options([], { store }), async (request) =>
      request.headers.get("x-stream")
        ? new Response(streamed(), { status: 201 })
        : new Response("done", { status: 201 }),
    );
    // A body ready at once goes out whole (framed by its length), once stored.
    const key = uniqueId("key");
    let answered = false;
    const whole = handle(requestOf(key)).then((response) => {
      answered = true;
      return response;
    });
    // A streamed one goes out as it comes, its end held.
    const streamedKey = uniqueId("key");
    const streaming = () => {
      const request = requestOf(streamedKey);
      request.headers.set("x-stream", "1");
      return request;
    };
    const response = await handle(streaming());
    produce();
    let ended = false;
    const text = response.text().then((t) => {
      ended = true;
      return t;
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect([answered, ended]).toEqual([false, false]); // held: the store has completed neither key
    storing();
    expect(await (await whole).text()).toBe("done");
    expect(await text).toBe("done");
    for (const replayed of [await handle(requestOf(key)), await handle(streaming())]) {
      expect(replayed.headers.get("idempotent-replayed")).toBe("true");
    }
  });

  it("a body ready at once goes out framed by its length, first answer and replay alike", async () => {
    const url = await start(withIdempotency(options(), async () => Response.json({ id: "pay_1" }, { status: 201 })));
    const key = uniqueId("key");
    const [first, replay] = [await send(url, key), await send(url, key)];
    expect([first.headers.get("content-length"), first.headers.get("transfer-encoding")]).toEqual(["14", null]);
    expect([replay.headers.get("content-length"), replay.headers.get("idempotent-replayed")]).toEqual(["14", "true"]);
    expect([await first.text(), await replay.text()]).toEqual(['{"id":"pay_1"}', '{"id":"pay_1"}']);
  });

  it("is stored even when nobody reads it: the answer is read on at once", async () => {
    let runs = 0;
    const handle = withIdempotency(options(), async () => {
      runs++;
      return Response.json({ id: "pay_1" }, { status: 201 });
    });
    const key = uniqueId("key");
    await handle(requestOf(key)); // never read
    await expect
      .poll(async () => (await handle(requestOf(key))).headers.get("idempotent-replayed"), { timeout: 2000 })
      .toBe("true");
    expect(runs).toBe(1);
  });

  it.each([
    ["a body given whole", (big: string) => big],
    [
      "a stream",
      (big: string) =>
        new ReadableStream<Uint8Array>({
          start(controller) {
            for (let at = 0; at < big.length; at += 512) controller.enqueue(encoder.encode(big.slice(at, at + 512)));
            controller.close();
          },
        }),
    ],
  ])(
    "%s past the store's maxRecordBytes: the client still gets every byte, and the key is released as too_large",
    async (_name, bodyOf) => {
      const events: InterlockEvent[] = [];
      let runs = 0;
      const big = "x".repeat(4096);
      const url = await start(
        withIdempotency(options(events, { store: new MemoryStore({ maxRecordBytes: 1024 }) }), async () => {
          runs++;
          return new Response(bodyOf(big), { status: 201 });
        }),
      );
      const key = uniqueId("key");
      expect(await (await send(url, key)).text()).toBe(big);
      await expect.poll(() => released(events), { timeout: 2000 }).toEqual(["too_large"]);
      const retry = await send(url, key);
      expect([retry.headers.get("idempotent-replayed"), await retry.text()]).toEqual([null, big]);
      expect(runs).toBe(2);
    },
  );

  it("a stream that never ends releases its key when the client goes away", async () => {
    const events: InterlockEvent[] = [];
    let runs = 0;
    const url = await start(
      withIdempotency(options(events), () => {
        runs++;
        return liveResponse("tick;", new Promise(() => {}));
      }),
    );
    const key = uniqueId("key");
    const leave = new AbortController();
    const response = await send(url, key, "{}", { signal: leave.signal });
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe("tick;");
    leave.abort();
    await expect.poll(() => released(events), { timeout: 5000 }).toEqual(["streamed"]);
    const retry = await send(url, key, "{}", { signal: AbortSignal.timeout(5000) });
    expect(retry.status).toBe(201);
    await retry.body?.cancel();
    expect(runs).toBe(2);
  });

  it("never replays Set-Cookie; a null body and a 204 are stored as no body", async () => {
    let runs = 0;
    const url = await start(
      withIdempotency(options(), async () => {
        runs++;
        return new Response(null, { status: 204, headers: { "set-cookie": "session=abc", "x-request-id": "r1" } });
      }),
    );
    const key = uniqueId("key");
    expect((await send(url, key)).headers.get("set-cookie")).toBe("session=abc");
    const replay = await send(url, key);
    expect([replay.status, replay.headers.get("idempotent-replayed"), replay.headers.get("set-cookie")]).toEqual([
      204,
      "true",
      null,
    ]);
    expect(await replay.text()).toBe("");
    expect(runs).toBe(1);
  });

  it("HEAD, when methods covers it: the status and headers are stored, no body", async () => {
    let runs = 0;
    const handle = withIdempotency(options([], { methods: ["POST", "HEAD"] }), async () => {
      runs++;
      return new Response("a body HEAD never sends", { status: 200, headers: { "content-type": "text/plain" } });
    });
    const head = () =>
      handle(
        new Request("http://127.0.0.1/payments", {
          method: "HEAD",
          headers: { "x-api-key": "a", "idempotency-key": "h1" },
        }),
      );
    await head();
    const replay = await head();
    expect([replay.status, replay.headers.get("idempotent-replayed"), replay.headers.get("content-type")]).toEqual([
      200,
      "true",
      "text/plain",
    ]);
    expect(await replay.text()).toBe(""); // stored without the body HEAD never sends
    expect(replay.headers.get("content-length")).toBe("23"); // that body's length, as the first answer said
    expect(runs).toBe(1);
  });

  describe("HEAD: the length of the body it never sends", () => {
    const headOf = (key: string) =>
      new Request("http://127.0.0.1/payments", {
        method: "HEAD",
        headers: { "x-api-key": "a", "idempotency-key": key },
      });
    const covering = (events: InterlockEvent[], answer: () => Response) => {
      let runs = 0;
      const handle = withIdempotency(
        options(events, { methods: ["POST", "HEAD"], store: new MemoryStore({ maxRecordBytes: 1_000 }) }),
        async () => {
          runs++;
          return answer();
        },
      );
      return { handle, runs: () => runs };
    };

    it("counted from a stream, sent and replayed as its Content-Length; one the handler set is kept as it is", async () => {
      const streamed = covering(
        [],
        () => new Response(chunked(encoder.encode("abcde")).body, { headers: { "content-type": "text/plain" } }),
      );
      const first = await streamed.handle(headOf("h-stream"));
      const replay = await streamed.handle(headOf("h-stream"));
      expect([first.headers.get("content-length"), replay.headers.get("content-length")]).toEqual(["5", "5"]);
      expect([replay.headers.get("idempotent-replayed"), replay.headers.get("content-type"), streamed.runs()]).toEqual([
        "true",
        "text/plain",
        1,
      ]);
      const declared = covering([], () => new Response("four", { headers: { "content-length": "4000" } }));
      await declared.handle(headOf("h-declared"));
      expect((await declared.handle(headOf("h-declared"))).headers.get("content-length")).toBe("4000");
    });

    it("a 204 gets none; past maxRecordBytes the length is unknown: sent without one, the key released", async () => {
      const empty = covering([], () => new Response(null, { status: 204 }));
      await empty.handle(headOf("h-204"));
      const replay = await empty.handle(headOf("h-204"));
      expect([replay.status, replay.headers.get("content-length"), replay.headers.get("idempotent-replayed")]).toEqual([
        204,
        null,
        "true",
      ]);
      const events: InterlockEvent[] = [];
      const large = covering(events, () => new Response(chunked(new Uint8Array(1_600), 2).body));
      const unknown = await large.handle(headOf("h-large"));
      expect([unknown.headers.get("content-length"), unknown.body === null]).toEqual([null, false]);
      expect(released(events)).toEqual(["too_large"]);
      await large.handle(headOf("h-large"));
      expect(large.runs()).toBe(2);
    });

    it("a body still being produced is not waited for: sent at once without a length, cancelled, the key released", async () => {
      const events: InterlockEvent[] = [];
      let cancelled = 0;
      // Server-sent events: one message ready, the rest never comes.
      const endless = covering(
        events,
        () =>
          new Response(
            new ReadableStream<Uint8Array>({
              start(controller) {
                controller.enqueue(encoder.encode("data: first\n\n"));
              },
              cancel() {
                cancelled++;
              },
            }),
            { headers: { "content-type": "text/event-stream" } },
          ),
      );
      const first = await endless.handle(headOf("h-endless"));
      expect([first.status, first.headers.get("content-length"), first.headers.get("content-type"), cancelled]).toEqual(
        [200, null, "text/event-stream", 1],
      );
      expect(released(events)).toEqual(["streamed"]);
      expect(first.body).not.toBeNull(); // an empty stream: a host frames a null body as Content-Length: 0
      const again = await endless.handle(headOf("h-endless"));
      expect([again.headers.get("idempotent-replayed"), endless.runs()]).toEqual([null, 2]);
    });

    it("a null body is not counted: no length on the first answer or its replay, as the host frames it alone", async () => {
      const bare = covering([], () => new Response(null, { status: 200, headers: { "content-type": "text/plain" } }));
      const first = await bare.handle(headOf("h-null"));
      const replay = await bare.handle(headOf("h-null"));
      expect([first.headers.get("content-length"), first.body]).toEqual([null, null]);
      expect([replay.headers.get("content-length"), replay.headers.get("idempotent-replayed"), bare.runs()]).toEqual([
        null,
        "true",
        1,
      ]);
    });

    it("a body that cannot be cancelled is no error of the answer's: a handler's own length is sent, stored and replayed", async () => {
      const stubborn = covering(
        [],
        () =>
          new Response(
            new ReadableStream<Uint8Array>({
              pull(controller) {
                controller.enqueue(encoder.encode("hello"));
                controller.close();
              },
              cancel() {
                throw new Error("cannot cancel");
              },
            }),
            { headers: { "content-length": "5" } },
          ),
      );
      const first = await stubborn.handle(headOf("h-stubborn"));
      const replay = await stubborn.handle(headOf("h-stubborn"));
      expect([first.status, first.headers.get("content-length")]).toEqual([200, "5"]);
      expect([
        replay.headers.get("content-length"),
        replay.headers.get("idempotent-replayed"),
        stubborn.runs(),
      ]).toEqual(["5", "true", 1]);
    });

    it("a body that fails while counted releases the key and fails the request as the handler's error", async () => {
      const failing = covering([], () => {
        const body = new ReadableStream<Uint8Array>({
          pull(controller) {
            controller.error(new Error("the body failed"));
          },
        });
        return new Response(body);
      });
      await expect(failing.handle(headOf("h-fails"))).rejects.toThrow("the body failed");
      await expect(failing.handle(headOf("h-fails"))).rejects.toThrow("the body failed");
      expect(failing.runs()).toBe(2);
    });
  });
});

describe("request body and scoping", () => {
  it("fingerprints the raw bytes: one changed byte under the key is a 422", async () => {
    const handle = withIdempotency(options(), async () => new Response("ok", { status: 201 }));
    const key = uniqueId("key");
    await handle(requestOf(key, '{"amount":100}'));
    const other = await handle(requestOf(key, '{"amount":101}'));
    expect([other.status, (await problemOf(other)).code]).toEqual([422, "idempotency_key_mismatch"]);
  });

  it("a chunked body is read from a copy: the handler still gets every byte", async () => {
    const url = await start(withIdempotency(options(), async (request) => new Response(await request.text())));
    const body = JSON.stringify({ amount: 100, note: "é".repeat(100) });
    const response = await send(url, uniqueId("key"), undefined, chunked(encoder.encode(body), 4));
    expect(await response.text()).toBe(body);
  });

  it("scopes keys by the request's path by default, and events name no route", async () => {
    const events: InterlockEvent[] = [];
    let runs = 0;
    const handle = withIdempotency(options(events), async () => new Response(String(++runs), { status: 201 }));
    const key = uniqueId("key");
    await handle(requestOf(key, "{}", "http://127.0.0.1/payments/1?x=1"));
    await handle(requestOf(key, "{}", "http://127.0.0.1/payments/2"));
    expect(runs).toBe(2);
    const routes = events.filter((e) => e.type === "idempotency.first").map((e) => (e as { route?: string }).route);
    expect(routes).toEqual([undefined, undefined]);
  });

  it("scopes keys by the path as hosts decode it to route: another spelling of the path is the same scope (422)", async () => {
    let runs = 0;
    const handle = withIdempotency(options(), async () => new Response(String(++runs), { status: 201 }));
    const key = uniqueId("key");
    await handle(requestOf(key, "{}", "http://127.0.0.1/pay%6Dents/it%27s%281%29/a%2fb"));
    for (const path of ["/payments/it's(1)/a%2Fb", "/payments/it%27s(1)/a%2fb"]) {
      const variant = await handle(requestOf(key, "{}", `http://127.0.0.1${path}`));
      expect([variant.status, (await problemOf(variant)).code]).toEqual([422, "idempotency_key_mismatch"]);
    }
    // An encoded reserved character is no unreserved one: `/a%2Fb` is not `/a/b`.
    const other = await handle(requestOf(key, "{}", "http://127.0.0.1/payments/a/b"));
    expect([other.status, runs]).toEqual([201, 2]);
  });

  it("scopes keys by the `route` option, a pattern events name", async () => {
    const events: InterlockEvent[] = [];
    let runs = 0;
    const handle = withIdempotency(
      options(events, { route: "/payments/[id]" }),
      async () => new Response(String(++runs), { status: 201 }),
    );
    const key = uniqueId("key");
    await handle(requestOf(key, "{}", "http://127.0.0.1/payments/1"));
    const second = await handle(requestOf(key, "{}", "http://127.0.0.1/payments/1"));
    expect(second.headers.get("idempotent-replayed")).toBe("true");
    const routes = events.filter((e) => e.type === "idempotency.first").map((e) => (e as { route?: string }).route);
    expect(routes).toEqual(["/payments/[id]"]);
  });

  it("scopes keys by principal: another client's same key runs anew", async () => {
    let runs = 0;
    const handle = withIdempotency(options(), async () => new Response(String(++runs), { status: 201 }));
    const key = uniqueId("key");
    await handle(requestOf(key));
    const other = new Request("http://127.0.0.1/payments", {
      method: "POST",
      headers: { "x-api-key": "client-b", "idempotency-key": key },
      body: '{"amount":100}',
    });
    expect(await (await handle(other)).text()).toBe("2");
  });

  it("a body something already read is 500 body_not_raw when the engine needs it", async () => {
    const handle = withIdempotency(options(), async () => new Response("ok"));
    const request = requestOf(uniqueId("key"));
    await request.text();
    const response = await handle(request);
    expect([response.status, (await problemOf(response)).code]).toEqual([500, "body_not_raw"]);
  });
});

describe("bodyLimit, onError and refusals", () => {
  it("answers 413 body_too_large over bodyLimit, declared or chunked, without running the handler", async () => {
    let runs = 0;
    const url = await start(
      withIdempotency(options([], { bodyLimit: 16 }), async () => {
        runs++;
        return new Response("ok");
      }),
    );
    const body = JSON.stringify({ amount: 100, padding: "x".repeat(64) });
    const declared = await send(url, uniqueId("key"), body);
    expect([declared.status, (await problemOf(declared)).code]).toEqual([413, "body_too_large"]);
    const streamed = await send(url, uniqueId("key"), undefined, chunked(encoder.encode(body)));
    expect([streamed.status, (await problemOf(streamed)).code]).toEqual([413, "body_too_large"]);
    expect(runs).toBe(0);
  });

  it("reads a body of exactly bodyLimit bytes, declared or chunked; one byte more is 413", async () => {
    let runs = 0;
    const url = await start(
      withIdempotency(options([], { bodyLimit: 16 }), async (request) => {
        runs++;
        return new Response(await request.text(), { status: 201 });
      }),
    );
    const exact = "x".repeat(16);
    const declared = await send(url, uniqueId("key"), exact);
    expect([declared.status, await declared.text()]).toEqual([201, exact]);
    const streamed = await send(url, uniqueId("key"), undefined, chunked(encoder.encode(exact), 4));
    expect([streamed.status, await streamed.text()]).toEqual([201, exact]);
    const over = await send(url, uniqueId("key"), `${exact}x`);
    expect([over.status, (await problemOf(over)).code]).toEqual([413, "body_too_large"]);
    const overStreamed = await send(url, uniqueId("key"), undefined, chunked(encoder.encode(`${exact}x`), 4));
    expect([overStreamed.status, (await problemOf(overStreamed)).code]).toEqual([413, "body_too_large"]);
    expect(runs).toBe(2);
  });

  it("a declared length over bodyLimit is refused before a byte of the body is read", async () => {
    let pulled = false;
    const handle = withIdempotency(options([], { bodyLimit: 16 }), async () => new Response("ok", { status: 201 }));
    const body = new ReadableStream<Uint8Array>(
      {
        pull(controller) {
          pulled = true;
          controller.enqueue(encoder.encode("{}"));
          controller.close();
        },
      },
      { highWaterMark: 0 }, // pulled only when read
    );
    const request = new Request("http://127.0.0.1/payments", {
      method: "POST",
      headers: { "x-api-key": "client-a", "idempotency-key": uniqueId("key"), "content-length": "17" },
      body,
      duplex: "half",
    } as RequestInit);
    const response = await handle(request);
    expect([response.status, (await problemOf(response)).code, pulled]).toEqual([413, "body_too_large", false]);
  });

  it("a Content-Length that understates the body (a Request made in code) never lets more than bodyLimit be read", async () => {
    let runs = 0;
    const handle = withIdempotency(options([], { bodyLimit: 16 }), async () => {
      runs++;
      return new Response("ok");
    });
    const request = new Request("http://127.0.0.1/payments", {
      method: "POST",
      headers: { "x-api-key": "client-a", "idempotency-key": uniqueId("key"), "content-length": "2" },
      body: JSON.stringify({ padding: "x".repeat(64 * 1024) }),
    });
    const response = await handle(request);
    expect([response.status, (await problemOf(response)).code, runs]).toEqual([413, "body_too_large", 0]);
  });

  it("a body cut off mid-way (the client went away) is 400 body_incomplete, never a throw to the host", async () => {
    const events: InterlockEvent[] = [];
    let runs = 0;
    const handle = withIdempotency(options(events), async () => {
      runs++;
      return new Response("ok");
    });
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.error(new TypeError("terminated: the client went away"));
      },
    });
    const request = new Request("http://127.0.0.1/payments", {
      method: "POST",
      headers: { "x-api-key": "a", "idempotency-key": uniqueId("key") },
      body,
      duplex: "half",
    } as RequestInit);
    const response = await handle(request);
    expect([response.status, (await problemOf(response)).code]).toEqual([400, "body_incomplete"]);
    expect(events.filter((e) => e.type === "idempotency.rejected").map((e) => (e as { code: string }).code)).toEqual([
      "body_incomplete",
    ]);

    // Over HTTP: a client that leaves mid-upload gets nothing, and nothing reaches the host as an error.
    const { url, outcomes } = await startNotingOutcomes(handle);
    await leaveMidBody(url, "/payments", { "x-api-key": "a", "idempotency-key": uniqueId("key") });
    await expect.poll(() => outcomes, { timeout: 3000 }).toEqual(["400"]);
    expect(runs).toBe(0);
  });

  it("lets the app answer refusals itself; replays always go out as stored", async () => {
    const seen: string[] = [];
    const handle = withIdempotency(
      options([], {
        required: true,
        onError: (decision, request) => {
          seen.push(`${decision.error.code}:${request.method}`);
          return Response.json({ mine: decision.error.code }, { status: decision.response.status });
        },
      }),
      async () => new Response("made", { status: 201 }),
    );
    const missing = await handle(new Request("http://127.0.0.1/payments", { method: "POST", body: "{}" }));
    expect([missing.status, await missing.json()]).toEqual([400, { mine: "idempotency_key_missing" }]);
    const key = uniqueId("key");
    await handle(requestOf(key));
    const replay = await handle(requestOf(key));
    expect([replay.headers.get("idempotent-replayed"), await replay.text()]).toEqual(["true", "made"]);
    expect(seen).toEqual(["idempotency_key_missing:POST"]);
  });

  it("the store down is 503 store_unavailable, and the handler does not run", async () => {
    let runs = 0;
    const handle = withIdempotency(options([], { store: unreachableStore() }), async () => {
      runs++;
      return new Response("ok");
    });
    const response = await handle(requestOf(uniqueId("key")));
    expect([response.status, (await problemOf(response)).code]).toEqual([503, "store_unavailable"]);
    expect(runs).toBe(0);
  });
});
