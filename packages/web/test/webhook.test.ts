/** `withWebhook` on its own: raw body, limits, `onError`, settling, what the handler gets and returns. */
import { gzipSync } from "node:zlib";
import {
  InterlockConfigError,
  type InterlockEvent,
  MemoryStore,
  standardWebhooks,
  type VerifiedWebhook,
} from "@interlock/core";
import { unreachableStore } from "@interlock/core/testing";
import { describe, expect, expectTypeOf, it, vi } from "vitest";
import { type WebhookHandler, type WithWebhookOptions, withWebhook } from "../src/index.js";
import { bytesOf, chunked, delivery, leaveMidBody, problemOf, SECRET, start, startNotingOutcomes } from "./helpers.js";

const options = (extra: Partial<WithWebhookOptions> = {}): WithWebhookOptions => ({
  scheme: standardWebhooks,
  secret: SECRET,
  store: new MemoryStore(),
  ...extra,
});

type Delivery = Awaited<ReturnType<typeof delivery>>;

const post = (url: string, d: Delivery, extra: RequestInit = {}) =>
  fetch(url, { method: "POST", headers: { "content-type": "application/json", ...d.headers }, body: d.body, ...extra });

/** The same delivery as a web Request, for calling a wrapped handler directly. */
const requestOf = (d: Delivery, init: RequestInit = {}) =>
  new Request("http://127.0.0.1/hooks", { method: "POST", headers: d.headers, body: d.body, ...init });

// Unusual but valid JSON: spacing, key order, escapes and non-ASCII must all survive.
const ODD_JSON = '{ "z" : 1,\n\t"a":"caf\\u00e9 café 😀", "n": 1.50 }';

describe("the handler", () => {
  it("gets the verified event from the exact bytes, and its answer goes out untouched", async () => {
    const handle = withWebhook(options(), async (event) =>
      Response.json(
        { id: event.id, text: event.text(), payload: event.payload },
        { status: 202, statusText: "Taken", headers: { "x-processed-by": "test" } },
      ),
    );
    const url = await start(handle);
    const d = await delivery(ODD_JSON);
    const response = await post(url, d);
    expect([response.status, response.headers.get("x-processed-by")]).toEqual([202, "test"]);
    expect(await response.json()).toEqual({ id: d.id, text: ODD_JSON, payload: JSON.parse(ODD_JSON) });
    // The very Response the handler made (Node's bridge sends no custom status text, so it is read here).
    expect((await handle(requestOf(await delivery("{}")))).statusText).toBe("Taken");
  });

  it("keeps bodies that are not UTF-8 intact (invalid sequences, a byte-order mark, NULs)", async () => {
    const url = await start(
      withWebhook(options(), async (event) => new Response(event.body as Uint8Array<ArrayBuffer>)),
    );
    const raw = new Uint8Array([0xef, 0xbb, 0xbf, 0x7b, 0x7d, 0x00, 0xff, 0xfe, 0xc3]);
    const d = await delivery(raw);
    expect(await bytesOf(await post(url, d))).toEqual(raw);
  });

  it("gets the request, its body unread, and whatever else the host passes (a route context, a Worker's env and ctx)", async () => {
    const seen: unknown[] = [];
    const handle = withWebhook(options(), async (event, request: Request, env: { region: string }, ctx: number) => {
      seen.push(event.id, request.url, await request.json(), env.region, ctx);
      return new Response(null, { status: 204 });
    });
    expectTypeOf(handle).parameters.toEqualTypeOf<[Request, { region: string }, number]>();
    const d = await delivery('{"type":"ping"}');
    const response = await handle(requestOf(d), { region: "eu" }, 7);
    expect(response.status).toBe(204);
    expect(seen).toEqual([d.id, "http://127.0.0.1/hooks", { type: "ping" }, "eu", 7]);
  });

  it("a subclass of Request (Next's NextRequest) reaches the handler as it came", async () => {
    class HostRequest extends Request {
      readonly host = "next";
    }
    let got: Request | undefined;
    const handle = withWebhook(options(), async (_event, request: HostRequest) => {
      got = request;
      return Response.json({ host: request.host });
    });
    const d = await delivery("{}");
    const request = new HostRequest("http://127.0.0.1/hooks", { method: "POST", headers: d.headers, body: d.body });
    expect(await (await handle(request)).json()).toEqual({ host: "next" });
    expect(got).toBe(request);
  });

  it("infers the payload and the request type from an annotated handler (withWebhook<T> alone would fix the request as Request)", () => {
    class HostRequest extends Request {
      readonly host = "next";
    }
    const handle = withWebhook(options(), async (event: VerifiedWebhook<{ type: string }>, request: HostRequest) =>
      Response.json({ type: event.payload.type, host: request.host }),
    );
    expectTypeOf(handle).parameters.toEqualTypeOf<[HostRequest]>();
    expectTypeOf(
      withWebhook<{ type: string }, HostRequest>(options(), async (_event, request) => Response.json(request.host)),
    ).parameters.toEqualTypeOf<[HostRequest]>();
  });

  it("types the payload it is given", () => {
    const handler: WebhookHandler<{ type: string }, Request, []> = async (event) => {
      expectTypeOf(event).toEqualTypeOf<VerifiedWebhook<{ type: string }>>();
      return Response.json({ type: event.payload.type });
    };
    expectTypeOf(withWebhook(options(), handler)).toEqualTypeOf<(request: Request) => Promise<Response>>();
  });
});

describe("options made on first use", () => {
  it("from the first call's arguments (a Worker's env), once; the handler gets the same arguments", async () => {
    let made = 0;
    interface Env {
      WEBHOOK_SECRET: string;
    }
    const handle = withWebhook(
      (_request: Request, env: Env) => {
        made++;
        return options({ secret: env.WEBHOOK_SECRET });
      },
      async (event, _request, env) => Response.json({ id: event.id, secretLength: env.WEBHOOK_SECRET.length }),
    );
    expectTypeOf(handle).parameters.toEqualTypeOf<[Request, Env]>();
    const env = { WEBHOOK_SECRET: SECRET };
    const d = await delivery("{}");
    expect(await (await handle(requestOf(d), env)).json()).toEqual({ id: d.id, secretLength: SECRET.length });
    const again = await handle(requestOf(d), env);
    expect(await again.json()).toEqual({ duplicate: true, id: d.id }); // one receiver: the same store
    expect(made).toBe(1);
  });

  it("a factory that throws fails that call, and is asked again on the next", async () => {
    let secret: string | undefined;
    const handle = withWebhook(
      () => options({ secret: secret as string }),
      async () => new Response("ok"),
    );
    const d = await delivery("{}");
    await expect(handle(requestOf(d))).rejects.toThrow(InterlockConfigError);
    secret = SECRET;
    expect((await handle(requestOf(d))).status).toBe(200);
  });

  it("options given as they are are checked where the wrapper is made", () => {
    expect(() => withWebhook(options({ secret: "" }), async () => new Response("ok"))).toThrow(
      expect.objectContaining({ code: "invalid_secret" }),
    );
  });
});

describe("settling the delivery", () => {
  it("a 2xx Response whose body was already read cannot be sent: a TypeError, the delivery released, the redelivery runs", async () => {
    let runs = 0;
    const handle = withWebhook(options(), async () => {
      runs++;
      const answer = new Response("done", { status: 200, headers: { "content-type": "text/plain" } });
      if (runs === 1) await answer.text(); // read by the handler (a logger) before it returned it
      return answer;
    });
    const d = await delivery('{"a":1}');
    await expect(handle(requestOf(d))).rejects.toThrow(TypeError);
    const redelivery = await handle(requestOf(d));
    expect([redelivery.status, await redelivery.text()]).toEqual([200, "done"]);
    expect(runs).toBe(2);
  });

  it("a 2xx streamed answer that a wrapper drops unread is settled once the handler's stream ends: the redelivery is a duplicate", async () => {
    const hook = withWebhook(options(), async () => {
      const body = new ReadableStream<Uint8Array>({
        async start(controller) {
          await new Promise((resolve) => setTimeout(resolve, 20));
          controller.enqueue(new TextEncoder().encode("done"));
          controller.close();
        },
      });
      return new Response(body, { status: 200, headers: { "content-type": "text/plain" } });
    });
    // A wrapper (a framework's middleware) that answers on its own once it sees a 2xx.
    const app = async (request: Request) => {
      const response = await hook(request);
      return response.ok ? new Response("accepted", { status: 202 }) : response;
    };
    const d = await delivery('{"a":1}');
    expect((await app(requestOf(d))).status).toBe(202);
    await vi.waitFor(async () =>
      expect(await (await hook(requestOf(d))).json()).toEqual({ duplicate: true, id: d.id }),
    );
  });

  it("a 2xx records it: the redelivery is a duplicate, and the handler ran once", async () => {
    let runs = 0;
    const url = await start(
      withWebhook(options(), async () => {
        runs++;
        return Response.json({ ok: true });
      }),
    );
    const d = await delivery("{}");
    expect((await post(url, d)).status).toBe(200);
    const again = await post(url, d);
    expect([again.status, await again.json()]).toEqual([200, { duplicate: true, id: d.id }]);
    expect(runs).toBe(1);
  });

  it("a non-2xx releases it: the provider's retry runs the handler again", async () => {
    let runs = 0;
    const url = await start(
      withWebhook(options(), async () => new Response("later", { status: ++runs === 1 ? 503 : 200 })),
    );
    const d = await delivery("{}");
    expect((await post(url, d)).status).toBe(503);
    expect((await post(url, d)).status).toBe(200);
    expect(runs).toBe(2);
  });

  it("a throw releases it and goes on to the host; the retry runs the handler again", async () => {
    let runs = 0;
    const handle = withWebhook(options(), async () => {
      if (++runs === 1) throw new Error("database down");
      return new Response("ok");
    });
    const d = await delivery("{}");
    await expect(handle(requestOf(d))).rejects.toThrow("database down");
    expect((await handle(requestOf(d))).status).toBe(200);
    expect(runs).toBe(2);
  });

  it("a payload its scheme cannot decode, read by the handler, is 400 payload_not_decodable problem+json, not a throw: released, onError not asked", async () => {
    const events: InterlockEvent[] = [];
    let onErrorCalls = 0;
    let runs = 0;
    const handle = withWebhook(
      options({
        onEvent: (event) => events.push(event),
        onError: () => {
          onErrorCalls++;
          return undefined;
        },
      }),
      async (event) => {
        runs++;
        return Response.json(event.payload);
      },
    );
    const d = await delivery("not json {");
    for (const response of [await handle(requestOf(d)), await handle(requestOf(d))]) {
      expect([response.status, (await problemOf(response)).code]).toEqual([400, "payload_not_decodable"]);
    }
    // An answer outside 2xx, as the handler's own 400 would be: released, the redelivery runs again.
    expect([runs, onErrorCalls]).toEqual([2, 0]);
    const failed = events.flatMap((event) => (event.type === "webhook.handler_failed" ? [event.status] : []));
    expect(failed).toEqual([400, 400]);
  });

  it("a handler that returns no Response (a forgotten return) is a TypeError, and the delivery is released", async () => {
    let runs = 0;
    const handle = withWebhook(options(), (async () => {
      runs++;
    }) as unknown as WebhookHandler<unknown, Request, []>);
    const d = await delivery("{}");
    await expect(handle(requestOf(d))).rejects.toThrow(/the handler must return a Response, not undefined/);
    await expect(handle(requestOf(d))).rejects.toThrow(TypeError);
    expect(runs).toBe(2); // released each time, never recorded as processed
  });

  it("a look-alike of a Response (no web body) is a TypeError, and the delivery is released, not recorded", async () => {
    let runs = 0;
    const handle = withWebhook(options(), (async () => {
      runs++;
      return { status: 200, headers: new Headers() };
    }) as unknown as WebhookHandler<unknown, Request, []>);
    const d = await delivery("{}");
    await expect(handle(requestOf(d))).rejects.toThrow(/the handler must return a Response/);
    await expect(handle(requestOf(d))).rejects.toThrow(TypeError);
    expect(runs).toBe(2);
  });

  it("is recorded before the answer is returned: a redelivery the moment it is answered is a duplicate", async () => {
    const store = new MemoryStore();
    const handle = withWebhook(options({ store }), async () => new Response("ok"));
    const d = await delivery("{}");
    await handle(requestOf(d));
    const again = await handle(requestOf(d));
    expect(await again.json()).toEqual({ duplicate: true, id: d.id });
  });

  it("a 2xx whose streamed body fails is released, not recorded: the redelivery runs the handler again", async () => {
    let runs = 0;
    let fail: () => void = () => {};
    const handle = withWebhook(options(), async () => {
      runs++;
      return new Response(
        new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(new TextEncoder().encode("processing...\n"));
            fail = () => controller.error(new Error("db down")); // the work behind the body fails later
          },
        }),
        { status: 200, headers: { "content-type": "text/plain" } },
      );
    });
    const d = await delivery("{}");
    const first = await handle(requestOf(d));
    expect(first.status).toBe(200);
    const meanwhile = await handle(requestOf(d)); // still being processed: in flight, not a duplicate
    expect(meanwhile.status).toBe(409);
    const reading = first.text();
    fail();
    await expect(reading).rejects.toThrow("db down");
    const redelivery = await handle(requestOf(d));
    expect([redelivery.status, runs]).toEqual([200, 2]);
    await redelivery.body?.cancel();
  });

  it("a 2xx whose streamed body ends is recorded once it ends, before its end reaches the provider", async () => {
    const url = await start(
      withWebhook(options(), async () => {
        const parts = ["one;", "two"];
        return new Response(
          new ReadableStream<Uint8Array>({
            async pull(controller) {
              await new Promise((resolve) => setTimeout(resolve, 10));
              const part = parts.shift();
              if (part === undefined) controller.close();
              else controller.enqueue(new TextEncoder().encode(part));
            },
          }),
          { status: 200 },
        );
      }),
    );
    const d = await delivery("{}");
    expect(await (await post(url, d)).text()).toBe("one;two");
    const again = await post(url, d);
    expect([again.status, await again.json()]).toEqual([200, { duplicate: true, id: d.id }]);
  });

  it("waits for the store to record it before answering, however slow the store", async () => {
    const store = new MemoryStore();
    const complete = store.complete.bind(store);
    store.complete = async (...args: Parameters<MemoryStore["complete"]>) => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      return complete(...args);
    };
    const handle = withWebhook(options({ store }), async () => new Response("ok"));
    const d = await delivery("{}");
    await handle(requestOf(d));
    const again = await handle(requestOf(d));
    expect(await again.json()).toEqual({ duplicate: true, id: d.id });
  });
});

describe("refusals", () => {
  it("a forged delivery is 401 problem+json and the handler does not run", async () => {
    let runs = 0;
    const url = await start(
      withWebhook(options(), async () => {
        runs++;
        return new Response("ok");
      }),
    );
    const d = await delivery("{}");
    const response = await post(url, { ...d, body: new TextEncoder().encode('{"forged":1}') });
    expect([response.status, (await problemOf(response)).code]).toEqual([401, "no_matching_signature"]);
    expect(runs).toBe(0);
  });

  it("a body over bodyLimit is 413 body_too_large, declared or chunked", async () => {
    const url = await start(withWebhook(options({ maxBodyBytes: 16 }), async () => new Response("ok")));
    const d = await delivery(JSON.stringify({ padding: "x".repeat(64) }));
    const declared = await post(url, d);
    expect([declared.status, (await problemOf(declared)).code]).toEqual([413, "body_too_large"]);
    const streamed = await post(url, d, chunked(d.body));
    expect([streamed.status, (await problemOf(streamed)).code]).toEqual([413, "body_too_large"]);
  });

  it("a Content-Length that understates the body (a Request made in code) never lets more than bodyLimit be read", async () => {
    let runs = 0;
    const handle = withWebhook(options({ maxBodyBytes: 16 }), async () => {
      runs++;
      return new Response("ok");
    });
    const d = await delivery(JSON.stringify({ padding: "x".repeat(64 * 1024) }));
    const response = await handle(requestOf(d, { headers: { ...d.headers, "content-length": "2" } }));
    expect([response.status, (await problemOf(response)).code, runs]).toEqual([413, "body_too_large", 0]);
  });

  it("a chunked body within bodyLimit is read whole and verified", async () => {
    const url = await start(withWebhook(options(), async (event) => Response.json(event.payload)));
    const d = await delivery(ODD_JSON);
    expect(await (await post(url, d, chunked(d.body, 5))).json()).toEqual(JSON.parse(ODD_JSON));
  });

  it("a delivery cut off mid-body (the client went away) is 400 body_incomplete, never a throw to the host", async () => {
    const events: InterlockEvent[] = [];
    let runs = 0;
    const handle = withWebhook(options({ onEvent: (event) => events.push(event) }), async () => {
      runs++;
      return new Response("ok");
    });
    const { url, outcomes } = await startNotingOutcomes(handle);
    const d = await delivery("{}");
    await leaveMidBody(url, "/hooks", d.headers);
    await expect.poll(() => outcomes, { timeout: 3000 }).toEqual(["400"]);
    expect(events.map((e) => (e.type === "webhook.rejected" ? e.code : e.type))).toEqual(["body_incomplete"]);
    expect(runs).toBe(0);
  });

  it("a gzip-encoded delivery → 415 unsupported_content_encoding, whichever bytes were signed", async () => {
    let ran = 0;
    const url = await start(withWebhook(options(), async () => new Response(String(++ran))));
    const payload = new TextEncoder().encode('{"type":"invoice.paid"}');
    const compressed = new Uint8Array(gzipSync(payload));
    for (const signedBytes of [payload, compressed]) {
      const d = await delivery(signedBytes);
      const response = await post(
        url,
        { ...d, body: compressed },
        {
          headers: { ...d.headers, "content-type": "application/json", "content-encoding": "gzip" },
        },
      );
      expect([response.status, (await problemOf(response)).code]).toEqual([415, "unsupported_content_encoding"]);
      expect(response.headers.get("accept-encoding")).toBe("identity");
    }
    expect(ran).toBe(0);
  });

  it("a body something already read is 500 body_not_raw with advice, never a 401", async () => {
    const handle = withWebhook(options(), async () => new Response("ok"));
    const d = await delivery("{}");
    const request = requestOf(d);
    await request.text();
    const response = await handle(request);
    const problem = await problemOf(response);
    expect([response.status, problem.code]).toEqual([500, "body_not_raw"]);
    expect(problem.detail).toMatch(/wrap the handler before anything reads the body/);
  });

  it("onError sees each refusal and may answer it; nothing returned keeps Interlock's", async () => {
    const outcomes: string[] = [];
    const handle = withWebhook(
      options({
        onError: (decision, request) => {
          outcomes.push(`${decision.outcome}:${decision.error.code}:${new URL(request.url).pathname}`);
          return decision.error.code === "body_too_large" ? new Response("too big", { status: 418 }) : undefined;
        },
        maxBodyBytes: 8,
      }),
      async () => new Response("ok"),
    );
    const d = await delivery("{}");
    const forged = await handle(requestOf({ ...d, body: new TextEncoder().encode("[]") }));
    expect(forged.status).toBe(401);
    const tooLarge = await handle(requestOf(await delivery(`"${"x".repeat(16)}"`)));
    expect([tooLarge.status, await tooLarge.text()]).toEqual([418, "too big"]);
    expect(outcomes).toEqual(["rejected:no_matching_signature:/hooks", "rejected:body_too_large:/hooks"]);
  });

  it("a duplicate is not an error: it gets core's 200 and onError is not called", async () => {
    const outcomes: string[] = [];
    const handle = withWebhook(
      options({
        onError: (decision) => {
          outcomes.push(decision.outcome);
          return new Response("mine", { status: 418 });
        },
      }),
      async () => new Response("ok"),
    );
    const d = await delivery("{}");
    expect((await handle(requestOf(d))).status).toBe(200);
    const duplicate = await handle(requestOf(d));
    expect([duplicate.status, await duplicate.json()]).toEqual([200, { duplicate: true, id: d.id }]);
    expect(outcomes).toEqual([]);
  });

  it("the store down is 503 store_unavailable, and the handler does not run", async () => {
    let runs = 0;
    const url = await start(
      withWebhook(options({ store: unreachableStore() }), async () => {
        runs++;
        return new Response("ok");
      }),
    );
    const response = await post(url, await delivery("{}"));
    expect([response.status, (await problemOf(response)).code]).toEqual([503, "store_unavailable"]);
    expect(runs).toBe(0);
  });
});
