/**
 * `readJson` and `readBytes`: the handler reads its body as the wrapper read it (decoded, within
 * a limit), and a body that is the client's mistake is thrown as a `RequestBodyError`, which the
 * wrappers answer as problem+json with its status, the key released so the corrected retry runs.
 */
import { deflateSync, gzipSync } from "node:zlib";
import {
  brandErrorClass,
  DEFAULT_REQUEST_BODY_LIMIT,
  InterlockConfigError,
  InterlockError,
  type InterlockEvent,
  MemoryStore,
  standardWebhooks,
  type WebhookEvent,
} from "@interlock/core";
import { afterEach, describe, expect, expectTypeOf, it, vi } from "vitest";
import {
  type ReadBodyOptions,
  RequestBodyError,
  type RequestBodyErrorCode,
  readBytes,
  readJson,
  type WithIdempotencyOptions,
  withIdempotency,
  withWebhook,
} from "../src/index.js";
import {
  chunked,
  delivery,
  idempotencyOptions,
  problemOf,
  releasedEvents,
  SECRET,
  start,
  startNotingOutcomes,
  uniqueId,
} from "./helpers.js";

/** A payments handler as an app writes it: the JSON body read with `readJson`, each created payment noted. */
function paymentsApp(
  events: InterlockEvent[] = [],
  extra: Partial<WithIdempotencyOptions> = {},
  read: (request: Request) => Promise<unknown> = (request) => readJson(request),
) {
  const created: unknown[] = [];
  const handler = withIdempotency(idempotencyOptions(events, extra), async (request) => {
    const body = await read(request);
    created.push(body);
    return Response.json({ id: `pay_${created.length}` }, { status: 201 });
  });
  return { handler, created };
}

const post = (url: string, key: string | undefined, body: BodyInit | null, headers: Record<string, string> = {}) =>
  fetch(`${url}/payments`, {
    method: "POST",
    headers: {
      "x-api-key": "client-a",
      "content-type": "application/json",
      ...(key === undefined ? {} : { "idempotency-key": key }),
      ...headers,
    },
    body,
  });

const released = (events: InterlockEvent[]) => releasedEvents(events).map((event) => [event.reason, event.status]);

/** `text` compressed with `format`, as a client sends it. */
const compressed = (text: string, format: "gzip" | "deflate") =>
  new Response(new Blob([text]).stream().pipeThrough(new CompressionStream(format))).arrayBuffer();

/** What a direct call threw, or a failure naming what it returned. */
async function thrownBy(promise: Promise<unknown>): Promise<unknown> {
  try {
    const value = await promise;
    throw new Error(`expected a throw, got ${JSON.stringify(value)}`);
  } catch (error) {
    return error;
  }
}

const requestWith = (body: BodyInit | null, headers: Record<string, string> = {}, init: RequestInit = {}) =>
  new Request("http://127.0.0.1/payments", { method: "POST", headers, body, ...init });

describe("readJson in withIdempotency: the client's mistake is its 400, 413 or 415, and the key is released", () => {
  it.each([
    ["JSON cut short", '{"amount":', {}],
    ["not JSON at all", "amount=100", {}],
    ["an empty body", null, {}],
    ["JSON cut short, gzip", gzipSync('{"amount":'), { "content-encoding": "gzip" }],
  ] as const)(
    "answers %s 400 body_not_json; the corrected retry with the same key runs: 201, not 422",
    async (_, body, headers) => {
      const events: InterlockEvent[] = [];
      const { handler, created } = paymentsApp(events);
      const { url, outcomes } = await startNotingOutcomes(handler);
      const key = uniqueId("key");

      const refused = await post(url, key, body, headers);
      expect(refused.status).toBe(400);
      expect(refused.headers.get("content-type")).toBe("application/problem+json");
      const problem = await problemOf(refused);
      expect(problem).toMatchObject({
        status: 400,
        code: "body_not_json",
        type: "urn:interlock:problem:body_not_json",
      });
      expect(problem.detail).not.toContain("amount"); // the body is never echoed
      expect(created).toEqual([]);
      // The engine's release for a handler that threw: nothing stored, the retry runs.
      expect(events.map((event) => event.type)).toEqual(["idempotency.first", "idempotency.released"]);
      expect(released(events)).toEqual([["error", undefined]]);

      const retried = await post(url, key, '{"amount":100}');
      expect([retried.status, retried.headers.get("idempotent-replayed")]).toEqual([201, null]);
      expect(await retried.json()).toEqual({ id: "pay_1" });
      expect(created).toEqual([{ amount: 100 }]);
      // An answer, not a failure for the host: nothing was thrown out of the wrapped handler.
      expect(outcomes).toEqual(["400", "201"]);
    },
  );

  it.each(["gzip", "x-gzip", "deflate"] as const)(
    "reads a %s body decoded, as the wrapper fingerprinted it",
    async (coding) => {
      const { handler, created } = paymentsApp();
      const url = await start(handler);
      const key = uniqueId("key");
      const body = await compressed('{"amount":100}', coding === "deflate" ? "deflate" : "gzip");
      const first = await post(url, key, body, { "content-encoding": coding });
      expect(first.status).toBe(201);
      expect(created).toEqual([{ amount: 100 }]);
      // The same JSON sent plain under the same key is the same request: a replay.
      const plain = await post(url, key, '{"amount":100}');
      expect([plain.status, plain.headers.get("idempotent-replayed")]).toEqual([201, "true"]);
      expect(created).toHaveLength(1);
    },
  );

  it("a coding it does not decode is 415 unsupported_content_encoding with Accept-Encoding (a request the wrapper passes unread)", async () => {
    const { handler, created } = paymentsApp();
    const url = await start(handler);
    // No key: the wrapper passes the request on unread, and readJson is the first to look at its coding.
    const refused = await post(url, undefined, gzipSync('{"amount":100}'), { "content-encoding": "compress" });
    expect(refused.status).toBe(415);
    expect(refused.headers.get("accept-encoding")).toMatch(/^gzip, deflate/);
    expect((await problemOf(refused)).code).toBe("unsupported_content_encoding");
    const stacked = await post(url, undefined, gzipSync(gzipSync("{}")), { "content-encoding": "gzip, gzip" });
    expect([stacked.status, (await problemOf(stacked)).code]).toEqual([415, "unsupported_content_encoding"]);
    expect(created).toEqual([]);
  });

  it("data that is not what its coding says is 400 body_not_decodable (unkeyed: the wrapper does not read it)", async () => {
    const { handler } = paymentsApp();
    const url = await start(handler);
    const refused = await post(url, undefined, '{"amount":100}', { "content-encoding": "gzip" });
    expect([refused.status, (await problemOf(refused)).code]).toEqual([400, "body_not_decodable"]);
  });

  it("over its bodyLimit is 413 body_too_large, decoded too; the key is released and a smaller retry runs", async () => {
    const events: InterlockEvent[] = [];
    const { handler, created } = paymentsApp(events, {}, (request) => readJson(request, { bodyLimit: 32 }));
    const url = await start(handler);
    const key = uniqueId("key");
    const large = JSON.stringify({ amount: 100, note: "x".repeat(64) });
    const refused = await post(url, key, large);
    expect([refused.status, (await problemOf(refused)).code]).toEqual([413, "body_too_large"]);
    // Small on the wire, past the limit decoded (a zip bomb costs the limit, no more).
    const bomb = await post(url, uniqueId("key"), gzipSync(`{"pad":"${" ".repeat(100_000)}"}`), {
      "content-encoding": "gzip",
    });
    expect([bomb.status, (await problemOf(bomb)).code]).toEqual([413, "body_too_large"]);
    expect(created).toEqual([]);
    expect(released(events)).toEqual([
      ["error", undefined],
      ["error", undefined],
    ]);

    const retried = await post(url, key, '{"amount":100}');
    expect(retried.status).toBe(201);
    expect(created).toEqual([{ amount: 100 }]);
  });

  it("a request without a key, or not covered, gets the same answers: 400 problem+json, not the host's 500", async () => {
    const { handler, created } = paymentsApp();
    const { url, outcomes } = await startNotingOutcomes(handler);
    const refused = await post(url, undefined, "{");
    expect([refused.status, (await problemOf(refused)).code]).toEqual([400, "body_not_json"]);
    const put = await fetch(`${url}/payments`, {
      method: "PUT",
      headers: { "idempotency-key": uniqueId("key") },
      body: "{",
    });
    expect([put.status, (await problemOf(put)).code]).toEqual([400, "body_not_json"]);
    expect((await post(url, undefined, "[1]")).status).toBe(201);
    expect(created).toEqual([[1]]);
    expect(outcomes).toEqual(["400", "400", "201"]);
  });

  it("onError takes over its answer, as for the wrapper's other refusals, with the RequestBodyError as decision.error", async () => {
    const seen: unknown[] = [];
    const { handler } = paymentsApp([], {
      onError: (decision, request) => {
        seen.push(
          decision.error instanceof RequestBodyError,
          decision.error.code,
          decision.response.status,
          request.method,
        );
        return Response.json({ mine: decision.error.code }, { status: decision.error.status });
      },
    });
    const url = await start(handler);
    const refused = await post(url, uniqueId("key"), "{");
    expect([refused.status, await refused.json()]).toEqual([400, { mine: "body_not_json" }]);
    const unkeyed = await post(url, undefined, "");
    expect([unkeyed.status, await unkeyed.json()]).toEqual([400, { mine: "body_not_json" }]);
    expect(seen).toEqual([true, "body_not_json", 400, "POST", true, "body_not_json", 400, "POST"]);
  });

  it("a handler that catches the error itself keeps full control: its own answer is sent and stored as any other", async () => {
    let runs = 0;
    const handler = withIdempotency(idempotencyOptions(), async (request) => {
      runs++;
      let body: unknown;
      try {
        body = await readJson(request);
      } catch (error) {
        if (!(error instanceof RequestBodyError)) throw error;
        return Response.json({ error: error.code, status: error.status }, { status: 422 });
      }
      return Response.json(body, { status: 201 });
    });
    const url = await start(handler);
    const key = uniqueId("key");
    const first = await post(url, key, "{");
    expect([first.status, first.headers.get("content-type"), await first.json()]).toEqual([
      422,
      "application/json",
      { error: "body_not_json", status: 400 },
    ]);
    // The handler's answer: stored (default cache policy), and replayed to the same request.
    const replay = await post(url, key, "{");
    expect([replay.status, replay.headers.get("idempotent-replayed"), await replay.json()]).toEqual([
      422,
      "true",
      { error: "body_not_json", status: 400 },
    ]);
    expect(runs).toBe(1);
  });

  it("any other throw still goes on to the host (500), the key released", async () => {
    const handler = withIdempotency(idempotencyOptions(), async (request) => {
      await request.text(); // the body read already: readJson's TypeError is a bug, not the client's mistake
      return Response.json(await readJson(request));
    });
    const { url, outcomes } = await startNotingOutcomes(handler);
    expect((await post(url, uniqueId("key"), "{}")).status).toBe(500);
    expect(outcomes).toEqual([expect.stringMatching(/^threw TypeError: .*already read/)]);
  });
});

describe("readJson in withWebhook", () => {
  it("a RequestBodyError out of the handler is answered problem+json, without onError, and the delivery released", async () => {
    const events: WebhookEvent[] = [];
    let onErrorCalls = 0;
    let runs = 0;
    const handler = withWebhook(
      {
        scheme: standardWebhooks,
        secret: SECRET,
        store: new MemoryStore(),
        onEvent: (event) => events.push(event as WebhookEvent),
        onError: () => {
          onErrorCalls++;
          return undefined;
        },
      },
      async (_event, request) => {
        runs++;
        return Response.json({ received: await readJson(request) });
      },
    );
    const { url, outcomes } = await startNotingOutcomes(handler);
    const d = await delivery("not json");
    const send = () => fetch(url, { method: "POST", headers: d.headers, body: d.body });
    const refused = await send();
    expect([refused.status, (await problemOf(refused)).code]).toEqual([400, "body_not_json"]);
    // Released, as for any answer outside 2xx: the redelivery runs the handler again.
    const again = await send();
    expect(again.status).toBe(400);
    expect(runs).toBe(2);
    expect(onErrorCalls).toBe(0);
    expect(outcomes).toEqual(["400", "400"]);
    const failed = events.filter((event) => event.type === "webhook.handler_failed");
    expect(failed.map((event) => [event.status, event.released])).toEqual([
      [400, true],
      [400, true],
    ]);

    const ok = await delivery('{"type":"paid"}');
    const answered = await fetch(url, { method: "POST", headers: ok.headers, body: ok.body });
    expect(await answered.json()).toEqual({ received: { type: "paid" } });
  });
});

describe("readJson and readBytes on any Request, outside a wrapper", () => {
  it("parses the JSON body (a byte-order mark dropped, as request.json() does), typed as asked", async () => {
    const value = await readJson<{ amount: number }>(requestWith('\uFEFF{"amount":100}'));
    expectTypeOf(value).toEqualTypeOf<{ amount: number }>();
    expect(value).toEqual({ amount: 100 });
    expectTypeOf(readJson(requestWith("1"))).resolves.toBeUnknown();
    expect(await readJson(requestWith("null"))).toBeNull();
  });

  it("takes a subclass of Request (Next's NextRequest), and decodes a compressed body", async () => {
    class HostRequest extends Request {
      readonly nextUrl = new URL(this.url);
    }
    const request = new HostRequest("http://127.0.0.1/payments", {
      method: "POST",
      headers: { "content-encoding": "deflate" },
      body: deflateSync('{"amount":7}'),
    });
    expect(await readJson(request)).toEqual({ amount: 7 });
    expect(request.bodyUsed).toBe(true);
  });

  it("readBytes gives the decoded bytes, any bytes at all; an empty body is empty", async () => {
    const raw = new Uint8Array([0xef, 0xbb, 0xbf, 0x00, 0xff, 0xfe, 0xc3]);
    expect(await readBytes(requestWith(raw))).toEqual(raw);
    expect(await readBytes(requestWith(gzipSync(raw), { "content-encoding": "x-gzip" }))).toEqual(raw);
    expect(await readBytes(requestWith(null))).toEqual(new Uint8Array(0));
    expect(await readBytes(new Request("http://127.0.0.1/"))).toEqual(new Uint8Array(0));
    expect(await readBytes(requestWith(new Uint8Array(0), { "content-encoding": "gzip" }))).toEqual(new Uint8Array(0));
    await expect(readBytes(requestWith("12345", {}), { bodyLimit: 4 })).rejects.toMatchObject({
      code: "body_too_large",
      status: 413,
    });
  });

  it.each([
    ["malformed JSON", () => requestWith("{"), "body_not_json", 400],
    ["an empty body", () => requestWith(null), "body_not_json", 400],
    ["an empty body, declared", () => requestWith("", { "content-length": "0" }), "body_not_json", 400],
    [
      "a coding not decoded",
      () => requestWith("{}", { "content-encoding": "zstd" }),
      "unsupported_content_encoding",
      415,
    ],
    ["data not of its coding", () => requestWith("{}", { "content-encoding": "gzip" }), "body_not_decodable", 400],
    [
      "a declared length over the limit",
      () => requestWith("{}", { "content-length": String(DEFAULT_REQUEST_BODY_LIMIT + 1) }),
      "body_too_large",
      413,
    ],
    [
      "a body cut off (the client went away)",
      () =>
        requestWith(
          new ReadableStream({
            pull(controller) {
              controller.error(new TypeError("terminated"));
            },
          }),
          {},
          { duplex: "half" } as RequestInit,
        ),
      "body_incomplete",
      400,
    ],
  ] as const)("throws a RequestBodyError for %s", async (_, request, code, status) => {
    const error = await thrownBy(readJson(request()));
    expect(error).toBeInstanceOf(RequestBodyError);
    expect(error).toBeInstanceOf(InterlockError);
    const typed = error as RequestBodyError;
    expectTypeOf(typed.code).toEqualTypeOf<RequestBodyErrorCode>();
    expect([typed.name, typed.code, typed.status]).toEqual(["RequestBodyError", code, status]);
    expect(typed.toProblem()).toMatchObject({ code, status, type: `urn:interlock:problem:${code}` });
    if (code === "unsupported_content_encoding") expect(typed.acceptEncoding).toMatch(/^gzip, deflate/);
  });

  it("without a bodyLimit it reads up to the wrapper's default, DEFAULT_REQUEST_BODY_LIMIT, declared or counted", async () => {
    const over = JSON.stringify({ pad: "x".repeat(DEFAULT_REQUEST_BODY_LIMIT) });
    const length = { "content-length": String(new TextEncoder().encode(over).byteLength) };
    for (const request of [
      requestWith(over),
      requestWith(over, length),
      requestWith(null, {}, chunked(new TextEncoder().encode(over), 40)),
    ])
      await expect(readJson(request)).rejects.toMatchObject({ code: "body_too_large", status: 413 });
    // Exactly the limit is read.
    const exact = JSON.stringify({ pad: "x".repeat(DEFAULT_REQUEST_BODY_LIMIT - 10) });
    expect(new TextEncoder().encode(exact).byteLength).toBe(DEFAULT_REQUEST_BODY_LIMIT);
    expect(await readJson(requestWith(exact))).toEqual({ pad: "x".repeat(DEFAULT_REQUEST_BODY_LIMIT - 10) });
  });

  it("a declared length over the limit is refused before the body is touched", async () => {
    const request = requestWith("{}", { "content-length": "10" });
    await expect(readJson(request, { bodyLimit: 5 })).rejects.toMatchObject({ code: "body_too_large" });
    expect(request.bodyUsed).toBe(false);
  });

  it("a body already read is a TypeError (the app's bug), not a RequestBodyError", async () => {
    const request = requestWith("{}");
    await request.text();
    const error = await thrownBy(readJson(request));
    expect(error).toBeInstanceOf(TypeError);
    expect(error).not.toBeInstanceOf(RequestBodyError);
    const twice = requestWith("{}");
    await readJson(twice);
    await expect(readBytes(twice)).rejects.toThrow(TypeError);
  });

  it("is known across copies of the package (its ESM and CommonJS builds both loaded), as core's errors are", async () => {
    // What another copy's class looks like from here: its own class, with the same name for core.
    class FromAnotherCopy extends InterlockError {
      static {
        brandErrorClass(FromAnotherCopy, "@interlock/web:RequestBodyError");
      }
      readonly code = "body_not_json";
      readonly status = 400;
      readonly title = "The request body is not valid JSON";
    }
    const error = new FromAnotherCopy("the request body is not valid JSON");
    expect(error).toBeInstanceOf(RequestBodyError);
    const handler = withIdempotency(idempotencyOptions(), async () => {
      throw error;
    });
    const response = await handler(requestWith("{", { "x-api-key": "a", "idempotency-key": uniqueId("key") }));
    expect([response.status, (await problemOf(response)).code]).toEqual([400, "body_not_json"]);
  });

  it("checks its options as the wrappers check theirs", async () => {
    const options: ReadBodyOptions = { bodyLimit: 10 };
    expect(await readJson(requestWith("{}"), options)).toEqual({});
    await expect(readJson(requestWith("{}"), { bodyLimit: 0 })).rejects.toThrow(InterlockConfigError);
    await expect(readJson(requestWith("{}"), { bodyLimit: 1.5 })).rejects.toThrow(InterlockConfigError);
    // @ts-expect-error `limit` is no option (`bodyLimit` is)
    await expect(readJson(requestWith("{}"), { limit: 10 })).rejects.toThrow('readJson() has no option "limit"');
    // @ts-expect-error `bodylimit` is no option (`bodyLimit` is)
    await expect(readBytes(requestWith("{}"), { bodylimit: 10 })).rejects.toThrow('did you mean "bodyLimit"');
  });
});

describe("readJson and readBytes in a wrapper: the body the wrapper read and decoded, under the wrapper's limit", () => {
  const MiB = 2 ** 20;
  /** A JSON body of about `size` bytes. */
  const jsonOf = (size: number) => JSON.stringify({ pad: "x".repeat(size - 10) });
  const keyed = (body: BodyInit | null, headers: Record<string, string> = {}) =>
    requestWith(body, { "x-api-key": "a", "idempotency-key": uniqueId("key"), ...headers });

  /**
   * Runs `handler` in `withIdempotency` on `request`, `read` in it noting whether the request's
   * own body stream was read (a reader taken on it: the wrapper read a clone).
   */
  async function inWrapper(
    request: Request,
    read: (request: Request) => Promise<unknown>,
    extra: Partial<WithIdempotencyOptions> = {},
  ) {
    const seen: { readOwnStream?: boolean; value?: unknown; error?: unknown; usedAfter?: boolean } = {};
    const handler = withIdempotency(idempotencyOptions([], extra), async (request) => {
      const own = request.body;
      const getReader = own && vi.spyOn(own, "getReader");
      try {
        seen.value = await read(request);
      } catch (error) {
        seen.error = error;
      }
      seen.readOwnStream = (getReader?.mock.calls.length ?? 0) > 0;
      seen.usedAfter = request.bodyUsed;
      if (seen.error !== undefined) throw seen.error;
      return Response.json({ ok: true }, { status: 201 });
    });
    const response = await handler(request);
    return { response, seen };
  }

  afterEach(() => {
    vi.unstubAllGlobals();
  });

  it("a 1.5 MiB body under a wrapper's 2 MiB bodyLimit is parsed by readJson without options (it was 413)", async () => {
    const body = jsonOf(1.5 * MiB);
    const { response, seen } = await inWrapper(keyed(body), (request) => readJson(request), { bodyLimit: 2 * MiB });
    expect(response.status).toBe(201);
    expect(seen.value).toEqual(JSON.parse(body));
    // Given what the wrapper read: the request's own body is not read again, and counts as read.
    expect([seen.readOwnStream, seen.usedAfter]).toEqual([false, true]);
  });

  it("a request the wrapper passes unread (no key) is read within the wrapper's bodyLimit too", async () => {
    const body = jsonOf(1.5 * MiB);
    const { response, seen } = await inWrapper(requestWith(body), (request) => readJson(request), {
      bodyLimit: 2 * MiB,
    });
    expect(response.status).toBe(201);
    expect(seen.value).toEqual(JSON.parse(body));
    expect(seen.usedAfter).toBe(true);
    // Past the wrapper's limit, it is refused as the wrapper would have.
    const over = await inWrapper(requestWith(jsonOf(2 * MiB + 1)), (request) => readJson(request), {
      bodyLimit: 2 * MiB,
    });
    expect([over.response.status, (await problemOf(over.response)).code]).toEqual([413, "body_too_large"]);
  });

  it("an explicit bodyLimit holds: a payload the wrapper read past it is 413 body_too_large (sent or decoded)", async () => {
    const body = jsonOf(1.5 * MiB);
    const events: InterlockEvent[] = [];
    const { response, seen } = await inWrapper(keyed(body), (request) => readJson(request, { bodyLimit: MiB }), {
      bodyLimit: 2 * MiB,
      onEvent: (event) => events.push(event),
    });
    expect([response.status, (await problemOf(response)).code]).toEqual([413, "body_too_large"]);
    expect(seen.error).toBeInstanceOf(RequestBodyError);
    expect(released(events)).toEqual([["error", undefined]]);
    // Decoded past it, though small as sent.
    const bomb = await inWrapper(keyed(gzipSync(jsonOf(64 * 1024)), { "content-encoding": "gzip" }), (request) =>
      readBytes(request, { bodyLimit: 32 * 1024 }),
    );
    expect([bomb.response.status, (await problemOf(bomb.response)).code]).toEqual([413, "body_too_large"]);
    // Sent past it, though within it decoded: bytes that do not compress, which gzip makes longer.
    const random = crypto.getRandomValues(new Uint8Array(4096));
    expect(gzipSync(random).byteLength).toBeGreaterThan(4096);
    const grown = await inWrapper(keyed(gzipSync(random), { "content-encoding": "gzip" }), (request) =>
      readBytes(request, { bodyLimit: 4096 }),
    );
    expect([grown.response.status, (await problemOf(grown.response)).code]).toEqual([413, "body_too_large"]);
    const within = await inWrapper(keyed(gzipSync(random), { "content-encoding": "gzip" }), (request) =>
      readBytes(request, { bodyLimit: 8192 }),
    );
    expect([within.response.status, within.seen.value]).toEqual([201, random]);
    // A larger explicit limit reads it.
    const larger = await inWrapper(keyed(body), (request) => readJson(request, { bodyLimit: 4 * MiB }), {
      bodyLimit: 2 * MiB,
    });
    expect([larger.response.status, larger.seen.value]).toEqual([201, JSON.parse(body)]);
  });

  it("an explicit bodyLimit under a declared Content-Length refuses it unread, as on any request", async () => {
    const { seen } = await inWrapper(keyed("{}", { "content-length": "2" }), async (request) => {
      const refused = await thrownBy(readJson(request, { bodyLimit: 1 }));
      expect(refused).toMatchObject({ code: "body_too_large" });
      expect(request.bodyUsed).toBe(false);
      return readJson(request);
    });
    expect(seen.value).toEqual({});
  });

  it("a gzip body is decoded once, by the wrapper: the handler gets those bytes, its own stream unread", async () => {
    let decoders = 0;
    const Native = globalThis.DecompressionStream;
    vi.stubGlobal(
      "DecompressionStream",
      class extends Native {
        constructor(format: CompressionFormat) {
          super(format);
          decoders++;
        }
      },
    );
    const text = '{"amount":100}';
    const { response, seen } = await inWrapper(keyed(gzipSync(text), { "content-encoding": "gzip" }), (request) =>
      readBytes(request),
    );
    expect(response.status).toBe(201);
    expect(utf8(seen.value as Uint8Array)).toBe(text);
    expect([decoders, seen.readOwnStream, seen.usedAfter]).toEqual([1, false, true]);
  });

  it("a body is read once: a second read is a TypeError, and so is request.json() after it", async () => {
    const { seen } = await inWrapper(keyed('{"amount":1}'), async (request) => {
      const first = await readJson(request);
      expect(request.bodyUsed).toBe(true);
      expect(await thrownBy(readBytes(request))).toBeInstanceOf(TypeError);
      expect(await thrownBy(readJson(request))).toBeInstanceOf(TypeError);
      expect(await thrownBy(request.json())).toBeInstanceOf(TypeError);
      return first;
    });
    expect(seen.value).toEqual({ amount: 1 });
    // Read by the handler first, it is not the wrapper's to give: a TypeError, thrown on to the host, as ever.
    const after = inWrapper(keyed("{}"), async (request) => {
      await request.text();
      return readJson(request);
    });
    await expect(after).rejects.toThrow(TypeError);
  });

  it("an empty or invalid body the wrapper read is 400 body_not_json", async () => {
    for (const body of [null, "", "{"]) {
      const { response, seen } = await inWrapper(keyed(body), (request) => readJson(request));
      expect([response.status, (await problemOf(response)).code]).toEqual([400, "body_not_json"]);
      expect(seen.readOwnStream).toBe(false);
    }
  });

  it("a request the handler rebuilds, or one no wrapper saw, reads as ever: its own body, within the default", async () => {
    const body = jsonOf(1.5 * MiB);
    const rebuilt = await inWrapper(keyed(body), (request) => readJson(new Request(request)), { bodyLimit: 2 * MiB });
    expect([rebuilt.response.status, (await problemOf(rebuilt.response)).code]).toEqual([413, "body_too_large"]);
    const told = await inWrapper(keyed(body), (request) => readJson(new Request(request), { bodyLimit: 2 * MiB }), {
      bodyLimit: 2 * MiB,
    });
    expect([told.response.status, told.seen.value]).toEqual([201, JSON.parse(body)]);
    const unseen = requestWith(body);
    expect(await thrownBy(readJson(unseen))).toMatchObject({ code: "body_too_large" });
  });

  it("withWebhook: readJson gives the verified body, within maxBodyBytes, and readBytes a copy of event.body", async () => {
    const payload = jsonOf(1.5 * MiB);
    const seen: unknown[] = [];
    const handler = withWebhook(
      { scheme: standardWebhooks, secret: SECRET, store: new MemoryStore() },
      async (event, request) => {
        const getReader = request.body && vi.spyOn(request.body, "getReader");
        if (new URL(request.url).pathname === "/bytes") {
          const bytes = await readBytes(request);
          bytes[0] = 0;
          seen.push(bytes.byteLength === event.body.byteLength, event.body[0] === "{".charCodeAt(0));
        } else {
          seen.push((await readJson<{ pad: string }>(request)).pad.length);
        }
        seen.push(getReader?.mock.calls.length ?? 0, request.bodyUsed);
        return new Response(null, { status: 204 });
      },
    );
    const json = await delivery(payload);
    const answered = await handler(
      new Request("http://127.0.0.1/json", { method: "POST", headers: json.headers, body: json.body }),
    );
    expect(answered.status).toBe(204);
    const bytes = await delivery('{"type":"paid"}');
    await handler(new Request("http://127.0.0.1/bytes", { method: "POST", headers: bytes.headers, body: bytes.body }));
    expect(seen).toEqual([1.5 * MiB - 10, 0, true, true, true, 0, true]);
  });
});

const utf8 = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
