/** Fastify-specific webhook behaviour: raw bytes whatever the parser, limits, misconfiguration, onError. */

import { request as httpRequest } from "node:http";
import { PassThrough, Readable } from "node:stream";
import { createGunzip, gzipSync } from "node:zlib";
import { type InterlockEvent, MemoryStore, signWebhook, standardWebhooks } from "@interlock/core";
import { rejectedTaggedThenUntagged } from "@interlock/test-harness/events";
import { withClient } from "@interlock/test-harness/http2";
import type { FastifyInstance, FastifyReply, FastifyServerOptions } from "fastify";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type FastifyWebhookOptions, idempotency, webhook } from "../src/index.js";
import { keepLogs, type LogLine, leaveMidBody, listen, type Running, slowToComplete } from "./app.js";

const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
let sequence = 0;
let running: Running | undefined;
afterEach(async () => {
  await running?.close();
  running = undefined;
});

async function signed(body: string | Uint8Array, contentType: string, id = `msg_fastify_${++sequence}`) {
  const delivery = await signWebhook({
    scheme: standardWebhooks,
    secret: SECRET,
    body,
    id,
    timestamp: Math.floor(Date.now() / 1000),
  });
  return { headers: { ...delivery.headers, "content-type": contentType }, body, id };
}

const options = (extra: Partial<FastifyWebhookOptions> = {}): FastifyWebhookOptions => ({
  scheme: standardWebhooks,
  secret: SECRET,
  store: new MemoryStore(),
  ...extra,
});

/** An app whose `/hook` route echoes what the handler saw: the parsed body and the verified bytes. */
async function echoApp(hookOptions: FastifyWebhookOptions, setup?: (app: FastifyInstance) => void) {
  running = await listen((app) => {
    setup?.(app);
    app.post("/hook", { config: { interlock: webhook(hookOptions) } }, async (request) => ({
      parsed: request.body,
      raw: Buffer.from(request.webhook!.body).toString("base64"),
      id: request.webhook!.id,
    }));
  });
  return running;
}

const post = (url: string, d: { headers: Record<string, string>; body: string | Uint8Array }) =>
  fetch(url, { method: "POST", headers: d.headers, body: d.body as BodyInit });

async function problem(response: Response) {
  expect(response.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  return (await response.json()) as { code: string; status: number; detail: string };
}

describe("raw body, whatever parser the app uses", () => {
  it.each<[string, ((app: FastifyInstance) => void) | undefined]>([
    ["Fastify's own parsers (which fail on the compressed bytes)", undefined],
    [
      "the app's preParsing hook that inflates it",
      (app) =>
        app.addHook("preParsing", async (request, _reply, payload) => {
          if (request.headers["content-encoding"] !== "gzip") return payload;
          delete request.headers["content-length"];
          return payload.pipe(createGunzip());
        }),
    ],
  ])(
    "a gzip-encoded delivery → 415 unsupported_content_encoding, whichever bytes were signed; %s",
    async (_name, setup) => {
      const handled = vi.fn();
      running = await listen((app) => {
        setup?.(app);
        app.post("/hook", { config: { interlock: webhook(options()) } }, async () => handled());
      });
      const payload = Buffer.from('{"type":"invoice.paid"}');
      const compressed = gzipSync(payload);
      for (const signedBytes of [payload, compressed]) {
        const d = await signed(signedBytes, "application/json");
        const response = await post(`${running.url}/hook`, {
          headers: { ...d.headers, "content-encoding": "gzip" },
          body: compressed,
        });
        expect([response.status, (await problem(response)).code]).toEqual([415, "unsupported_content_encoding"]);
        expect(response.headers.get("accept-encoding")).toBe("identity");
      }
      expect(handled).not.toHaveBeenCalled();
    },
  );

  it("JSON: verified on the exact bytes, and the app's JSON parser still parses", async () => {
    const { url } = await echoApp(options());
    // Whitespace, key order, escapes and a trailing ".0" a re-serialised body would lose.
    const body = '{ "b": 1.0,\n  "a": "\\u00e9t\u00e9" ,"c":[ ] }';
    const response = await post(`${url}/hook`, await signed(body, "application/json"));
    expect(response.status).toBe(200);
    const seen = await response.json();
    expect(seen.parsed).toEqual({ b: 1, a: "été", c: [] });
    expect(Buffer.from(seen.raw, "base64").toString("utf8")).toBe(body);
  });

  it("text/plain and a custom form parser see their usual body; the bytes verified are the ones sent", async () => {
    const { url } = await echoApp(options(), (app) => {
      app.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string" }, (_request, body, done) =>
        done(null, Object.fromEntries(new URLSearchParams(body as string))),
      );
    });
    const text = await post(`${url}/hook`, await signed("  hello, world  \n", "text/plain"));
    expect(await text.json()).toMatchObject({ parsed: "  hello, world  \n" });
    const form = await post(`${url}/hook`, await signed("a=1&b=%C3%A9", "application/x-www-form-urlencoded"));
    const seen = await form.json();
    expect(seen.parsed).toEqual({ a: "1", b: "é" });
    expect(Buffer.from(seen.raw, "base64").toString()).toBe("a=1&b=%C3%A9");
  });

  it("non-UTF-8 binary bodies verify byte for byte, even through a text parser that decodes them lossily", async () => {
    const bytes = new Uint8Array([0xff, 0xfe, 0x00, 0x80, 0xc3, 0x28, 0x0a, 0xe2, 0x82]);
    const { url } = await echoApp(options(), (app) => {
      app.addContentTypeParser("application/octet-stream", { parseAs: "buffer" }, (_request, body, done) =>
        done(null, { length: (body as Buffer).length }),
      );
    });
    const binary = await post(`${url}/hook`, await signed(bytes, "application/octet-stream"));
    expect(binary.status).toBe(200);
    const seen = await binary.json();
    expect(seen.parsed).toEqual({ length: bytes.length });
    expect(new Uint8Array(Buffer.from(seen.raw, "base64"))).toEqual(bytes);
    const lossy = await post(`${url}/hook`, await signed(bytes, "text/plain"));
    expect(lossy.status).toBe(200);
    expect(new Uint8Array(Buffer.from((await lossy.json()).raw, "base64"))).toEqual(bytes);
  });

  /** An app parser that reads the request stream as `encoding` text, as hand-written stream parsers do. */
  const textParser = (encoding: BufferEncoding) => (app: FastifyInstance) =>
    app.addContentTypeParser("application/json", (_request, payload, done) => {
      let text = "";
      payload.setEncoding(encoding);
      payload.on("data", (chunk: string) => {
        text += chunk;
      });
      payload.on("end", () => done(null, { text }));
    });

  it.each<[BufferEncoding, string | Uint8Array]>([
    ["utf8", '{"name":"J\\u00fcrgen \\ud83d\\ude00"}'],
    ["utf8", '{"name":"Jürgen été 😀"}'],
    ["latin1", new Uint8Array([0x7b, 0xff, 0xfe, 0x00, 0x80, 0xc3, 0x28, 0xe2, 0x82, 0x7d])],
    ["hex", new Uint8Array([0xef, 0xbf, 0xbd, 0xff, 0x00])],
  ])(
    "a parser that reads the request stream as %s text: the bytes sent are verified, encoded back",
    async (encoding, body) => {
      const { url } = await echoApp(options(), textParser(encoding));
      const response = await post(`${url}/hook`, await signed(body, "application/json"));
      expect(response.status).toBe(200);
      const seen = await response.json();
      const bytes = typeof body === "string" ? Buffer.from(body) : Buffer.from(body);
      expect(Buffer.from(seen.raw, "base64")).toEqual(bytes);
      expect(seen.parsed).toEqual({ text: bytes.toString(encoding) });
    },
  );

  it.each([
    ["a U+FFFD it sent", Buffer.from('{"name":"\uFFFD"}')],
    ["bytes that are no UTF-8", Buffer.from([0x7b, 0xff, 0x7d])],
  ])(
    "…as UTF-8, with %s (U+FFFD in the text): 500 body_not_raw, never verified as a guess; handler not run",
    async (_name, body) => {
      const handled = vi.fn();
      running = await listen((app) => {
        textParser("utf8")(app);
        app.post("/hook", { config: { interlock: webhook(options()) } }, async () => handled());
      });
      const response = await post(`${running.url}/hook`, await signed(body, "application/json"));
      expect(response.status).toBe(500);
      const refused = await problem(response);
      expect(refused.code).toBe("body_not_raw");
      expect(refused.detail).toMatch(/setEncoding/);
      expect(handled).not.toHaveBeenCalled();
    },
  );

  it("a parser that leaves the payload unread: the route waits for the bytes, then verifies them", async () => {
    const { url } = await echoApp(options(), (app) =>
      app.addContentTypeParser("application/json", (_request, _payload, done) => done(null, { unread: true })),
    );
    const d = await signed('{"type":"invoice.paid"}', "application/json");
    const response = await post(`${url}/hook`, d);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      parsed: { unread: true },
      raw: Buffer.from(d.body).toString("base64"),
      id: d.id,
    });
  });

  it("a body that arrives in several chunks is verified whole, whether its length is announced or it is chunked", async () => {
    const { url } = await echoApp(options());
    const body = `{"type":"invoice.paid","pad":"${"x".repeat(40_000)}"}`;
    for (const announced of [true, false]) {
      const d = await signed(body, "application/json");
      const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
        const headers = announced ? { ...d.headers, "content-length": String(body.length) } : d.headers;
        const request = httpRequest(`${url}/hook`, { method: "POST", headers, agent: false }, (response) => {
          let text = "";
          response.setEncoding("utf8");
          response.on("data", (chunk: string) => {
            text += chunk;
          });
          response.on("end", () => resolve({ status: response.statusCode ?? 0, text }));
        });
        request.on("error", reject);
        request.write(body.slice(0, 10), () =>
          setTimeout(
            () => request.write(body.slice(10, 30_000), () => setTimeout(() => request.end(body.slice(30_000)), 10)),
            10,
          ),
        );
      });
      expect(status).toBe(200);
      expect(Buffer.from(JSON.parse(text).raw, "base64").toString()).toBe(body);
    }
  });

  it("a body another hook consumed first → 500 body_not_raw with advice, not a 401; handler not run", async () => {
    let ran = false;
    running = await listen((app) => {
      // A naive logging hook that drains the payload and hands the empty stream on.
      app.addHook("preParsing", (_request, _reply, payload, done) => {
        payload.on("data", () => {});
        payload.on("end", () => done(null, payload));
      });
      app.post("/hook", { config: { interlock: webhook(options()) } }, async () => {
        ran = true;
        return {};
      });
    });
    const response = await post(`${running.url}/hook`, await signed('{"a":1}', "application/json"));
    expect(response.status).toBe(500);
    const body = await problem(response);
    expect(body).toMatchObject({ code: "body_not_raw", status: 500 });
    expect(body.detail).toMatch(/preParsing/);
    expect(ran).toBe(false);
  });

  it("only the preHandler wired (no preParsing) → 500 body_not_raw naming the fix", async () => {
    running = await listen((app) => {
      app.post("/hook", { preHandler: webhook(options()).preHandler }, async () => ({}));
    });
    const response = await post(`${running.url}/hook`, await signed('{"a":1}', "application/json"));
    expect(response.status).toBe(500);
    expect((await problem(response)).detail).toMatch(/config: \{ interlock: webhook/);
  });
});

describe("body size limit", () => {
  it("announced over the limit → 413 body_too_large before reading; handler not run", async () => {
    const { url } = await echoApp(options({ maxBodyBytes: 64 }));
    const response = await post(
      `${url}/hook`,
      await signed(JSON.stringify({ pad: "x".repeat(100) }), "application/json"),
    );
    expect(response.status).toBe(413);
    expect(await problem(response)).toMatchObject({ code: "body_too_large", status: 413 });
  });

  it("a chunked body that grows past the limit → 413 body_too_large", async () => {
    const { url } = await echoApp(options({ maxBodyBytes: 64 }));
    const d = await signed(JSON.stringify({ pad: "x".repeat(500) }), "application/json");
    const stream = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(d.body as string));
        controller.close();
      },
    });
    const response = await fetch(`${url}/hook`, {
      method: "POST",
      headers: d.headers,
      body: stream,
      duplex: "half",
    } as RequestInit);
    expect(response.status).toBe(413);
    expect((await problem(response)).code).toBe("body_too_large");
  });

  it("over HTTP/2: a body past the limit → 413, with no Connection header (HTTP/2 has none)", async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on("warning", onWarning);
    try {
      running = await listen(
        (app) => {
          app.post("/hook", { config: { interlock: webhook(options({ maxBodyBytes: 64 })) } }, async () => ({}));
        },
        { http2: true } as FastifyServerOptions,
      );
      const client = withClient(running.url, async () => {});
      const d = await signed(JSON.stringify({ pad: "x".repeat(500) }), "application/json");
      const response = await client.fetch(`${running.url}/hook`, {
        method: "POST",
        headers: d.headers,
        body: d.body as string,
      });
      await client.close();
      expect([response.status, (await problem(response)).code]).toEqual([413, "body_too_large"]);
      // Node drops a connection-specific header on HTTP/2 and says so with an UnsupportedWarning.
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings.map((w) => w.message)).toEqual([]);
    } finally {
      process.off("warning", onWarning);
    }
  });

  it("over HTTP/1.1: a body past the limit → 413 with Connection: close, so the rest is not read", async () => {
    const { url } = await echoApp(options({ maxBodyBytes: 64 }));
    const response = await post(
      `${url}/hook`,
      await signed(JSON.stringify({ pad: "x".repeat(100) }), "application/json"),
    );
    expect([response.status, response.headers.get("connection")]).toEqual([413, "close"]);
  });

  it("the adapter's own 413 carries the request's correlation id (x-request-id), as core's refusals do", async () => {
    const events: InterlockEvent[] = [];
    const { url } = await echoApp(options({ maxBodyBytes: 64, onEvent: (event) => events.push(event) }));
    const big = await signed(JSON.stringify({ pad: "x".repeat(64) }), "application/json");
    const tagged = await post(`${url}/hook`, {
      ...big,
      headers: { ...big.headers, "x-request-id": "req-413-fastify" },
    });
    expect([tagged.status, (await problem(tagged)).code]).toEqual([413, "body_too_large"]);
    expect((await post(`${url}/hook`, big)).status).toBe(413);
    expect(events.filter((e) => e.type === "webhook.rejected")).toEqual(
      rejectedTaggedThenUntagged("body_too_large", "req-413-fastify", big.headers),
    );
  });

  it("maxBodyBytes: 413 past it, as a webhook.rejected event; a bad limit is refused when the hooks are made", async () => {
    const events: InterlockEvent[] = [];
    const { url } = await echoApp(options({ maxBodyBytes: 64, onEvent: (event) => events.push(event) }));
    const refused = await post(
      `${url}/hook`,
      await signed(JSON.stringify({ pad: "x".repeat(64) }), "application/json"),
    );
    expect([refused.status, (await problem(refused)).code]).toEqual([413, "body_too_large"]);
    expect((await post(`${url}/hook`, await signed('{"a":1}', "application/json"))).status).toBe(200);
    expect(events.find((e) => e.type === "webhook.rejected")).toMatchObject({ code: "body_too_large" });
    expect(() => webhook(options({ maxBodyBytes: 1.5 }))).toThrow(/maxBodyBytes/);
  });

  it("defaults to the verifier's maxBodyBytes and raises the route's bodyLimit to match (Fastify's is 1 MiB)", async () => {
    const big = await echoApp(options());
    const body = JSON.stringify({ pad: "x".repeat(2 * 1024 * 1024) });
    const response = await post(`${big.url}/hook`, await signed(body, "application/json"));
    expect(response.status).toBe(200);
    await big.close();
    const small = await echoApp(options({ maxBodyBytes: 1024 }));
    const refused = await post(`${small.url}/hook`, await signed(body, "application/json"));
    expect(refused.status).toBe(413);
    expect((await problem(refused)).code).toBe("body_too_large");
  });

  it("a smaller bodyLimit set on the route is answered the same way, as problem+json", async () => {
    running = await listen((app) => {
      app.post("/hook", { bodyLimit: 32, config: { interlock: webhook(options()) } }, async () => ({}));
    });
    const response = await post(
      `${running.url}/hook`,
      await signed(JSON.stringify({ pad: "x".repeat(64) }), "application/json"),
    );
    expect([response.status, (await problem(response)).code]).toEqual([413, "body_too_large"]);
  });
});

describe("onError: the app takes over", () => {
  it("answers refusals its own way, with the typed error", async () => {
    const seen: string[] = [];
    const { url } = await echoApp(
      options({
        onError: (decision, _request, reply) => {
          seen.push(`${decision.outcome}:${decision.error.code}`);
          return reply.code(403).send({ mine: decision.outcome });
        },
      }),
    );
    const d = await signed('{"a":1}', "application/json");
    const tampered = await post(`${url}/hook`, { ...d, body: '{"a":2}' });
    expect([tampered.status, await tampered.json()]).toEqual([403, { mine: "rejected" }]);
    expect(seen).toEqual(["rejected:no_matching_signature"]);
  });

  it("a duplicate is not an error: it gets core's 200 and onError is not called", async () => {
    const outcomes: string[] = [];
    const { url } = await echoApp(
      options({
        onError: (decision, _request, reply) => {
          outcomes.push(decision.outcome);
          return reply.code(418).send({ mine: true });
        },
      }),
    );
    const d = await signed('{"a":1}', "application/json");
    expect((await post(`${url}/hook`, d)).status).toBe(200);
    const duplicate = await post(`${url}/hook`, d);
    expect([duplicate.status, await duplicate.json()]).toEqual([200, { duplicate: true, id: d.id }]);
    expect(outcomes).toEqual([]);
  });

  it("also for the adapter's own refusals (413), asynchronously", async () => {
    const { url } = await echoApp(
      options({
        maxBodyBytes: 8,
        onError: async (decision, _request, reply) => {
          await new Promise((resolve) => setTimeout(resolve, 5));
          return reply.code(decision.response.status).send({ mine: decision.error.code });
        },
      }),
    );
    const response = await post(`${url}/hook`, await signed('{"aaaaaaaaaa":1}', "application/json"));
    expect([response.status, await response.json()]).toEqual([413, { mine: "body_too_large" }]);
  });

  it("returning nothing sends core's response; throwing goes to Fastify's error handler", async () => {
    const fallback = await echoApp(options({ onError: () => undefined }));
    const d = await signed('{"a":1}', "application/json");
    const refused = await post(`${fallback.url}/hook`, { ...d, body: "{}" });
    expect([refused.status, (await problem(refused)).code]).toEqual([401, "no_matching_signature"]);
    await fallback.close();
    const throwing = await echoApp(
      options({
        onError: () => {
          throw Object.assign(new Error("nope"), { statusCode: 418 });
        },
      }),
    );
    expect((await post(`${throwing.url}/hook`, { ...d, body: "{}" })).status).toBe(418);
  });
});

describe("settling the delivery", () => {
  it("a handler that throws releases the delivery (then Fastify's error handling answers); its redelivery runs", async () => {
    const events: InterlockEvent[] = [];
    let calls = 0;
    running = await listen((app) => {
      const hooks = webhook(options({ onEvent: (event) => events.push(event) }));
      app.post("/hook", { config: { interlock: hooks } }, async () => {
        if (++calls === 1) throw new Error("boom");
        return { ok: true };
      });
    });
    const d = await signed('{"a":1}', "application/json");
    expect((await post(`${running.url}/hook`, d)).status).toBe(500);
    expect((await post(`${running.url}/hook`, d)).status).toBe(200);
    expect((await post(`${running.url}/hook`, d)).status).toBe(200);
    expect(calls).toBe(2);
    expect(events.map((e) => e.type)).toContain("webhook.handler_failed");
    expect(events.find((e) => e.type === "webhook.handler_failed")).toMatchObject({ released: true });
  });

  it("a handler that throws releases the delivery whatever the app's error handler answers, a 2xx included", async () => {
    let calls = 0;
    running = await listen((app) => {
      // An error handler that acknowledges every failure: the throw, not this 202, decides.
      app.setErrorHandler((_error, _request, reply) => reply.code(202).send({ acknowledged: true }));
      app.post("/hook", { config: { interlock: webhook(options()) } }, async () => {
        if (++calls === 1) throw new Error("boom");
        return { ok: true };
      });
    });
    const d = await signed('{"a":1}', "application/json");
    expect((await post(`${running.url}/hook`, d)).status).toBe(202);
    const redelivery = await post(`${running.url}/hook`, d);
    expect([redelivery.status, await redelivery.json()]).toEqual([200, { ok: true }]);
    expect(calls).toBe(2);
  });

  it("a non-2xx answer releases it; a 2xx is recorded before the response is sent", async () => {
    const events: InterlockEvent[] = [];
    let status = 503;
    running = await listen((app) => {
      const hooks = webhook(options({ onEvent: (event) => events.push(event) }));
      app.post("/hook", { config: { interlock: hooks } }, async (_request, reply) =>
        reply.code(status).send({ status }),
      );
    });
    const d = await signed('{"a":1}', "application/json");
    expect((await post(`${running.url}/hook`, d)).status).toBe(503);
    status = 204;
    expect((await post(`${running.url}/hook`, d)).status).toBe(204);
    // No wait: the record was written before the 204 left.
    const again = await post(`${running.url}/hook`, d);
    expect([again.status, await again.json()]).toEqual([200, { duplicate: true, id: d.id }]);
    expect(events.filter((e) => e.type === "webhook.processed")).toHaveLength(1);
  });

  it("a web Response the handler returns is settled by its own status: a 500 releases the delivery, a 2xx records it", async () => {
    const events: InterlockEvent[] = [];
    let status = 500;
    running = await listen((app) => {
      const hooks = webhook(options({ onEvent: (event) => events.push(event) }));
      // Fastify applies a Response's status only after every onSend hook: the reply says 200 until then.
      app.post("/hook", { config: { interlock: hooks } }, async () =>
        Response.json({ status }, { status, headers: { "x-handler": "web" } }),
      );
    });
    const d = await signed('{"a":1}', "application/json");
    const failed = await post(`${running.url}/hook`, d);
    expect([failed.status, await failed.json()]).toEqual([500, { status: 500 }]);
    status = 202;
    const processed = await post(`${running.url}/hook`, d);
    expect([processed.status, await processed.json(), processed.headers.get("x-handler")]).toEqual([
      202,
      { status: 202 },
      "web",
    ]);
    const again = await post(`${running.url}/hook`, d);
    expect([again.status, await again.json()]).toEqual([200, { duplicate: true, id: d.id }]);
    expect(events.map((e) => e.type).filter((type) => type !== "webhook.verified")).toEqual([
      "webhook.handler_failed",
      "webhook.processed",
      "webhook.duplicate",
    ]);
  });

  it("a 2xx web Response whose body is still being produced: a copy meanwhile is in flight (409); the body failing releases the delivery, the redelivery runs", async () => {
    const events: InterlockEvent[] = [];
    let runs = 0;
    let fail: () => void = () => {};
    running = await listen((app) => {
      const hooks = webhook(options({ onEvent: (event) => events.push(event) }));
      app.post("/hook", { config: { interlock: hooks } }, async () => {
        runs++;
        const body = new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(new TextEncoder().encode("processing...\n"));
            fail = () => controller.error(new Error("the work behind the body failed"));
          },
        });
        return new Response(body, { status: 200, headers: { "content-type": "text/plain" } });
      });
    });
    const d = await signed('{"a":1}', "application/json");
    const first = await post(`${running.url}/hook`, d);
    expect(first.status).toBe(200);
    const reader = (first.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    const meanwhile = await post(`${running.url}/hook`, d);
    expect([meanwhile.status, (await meanwhile.json()).code]).toEqual([409, "request_in_flight"]);
    fail();
    await reader.closed.catch(() => {});
    await vi.waitFor(() => expect(events.map((e) => e.type)).toContain("webhook.handler_failed"));
    const redelivery = await post(`${running.url}/hook`, d);
    expect(redelivery.status).toBe(200);
    await redelivery.body?.cancel();
    expect(runs).toBe(2);
  });

  it("a hijacked reply's end goes out once the delivery is recorded: a redelivery the moment it is whole is a duplicate", async () => {
    // A store slow to write: the delivery must still be recorded before the answer's end goes out.
    const store = slowToComplete();
    let calls = 0;
    running = await listen((app) => {
      app.post("/hook", { config: { interlock: webhook(options({ store })) } }, (_request, reply) => {
        calls++;
        reply.hijack();
        reply.raw.writeHead(200, { "content-type": "text/plain" });
        reply.raw.end("processed");
      });
    });
    const d = await signed('{"a":1}', "application/json");
    expect(await (await post(`${running.url}/hook`, d)).text()).toBe("processed");
    const again = await post(`${running.url}/hook`, d);
    expect([again.status, await again.json()]).toEqual([200, { duplicate: true, id: d.id }]);
    expect(calls).toBe(1);
  });

  it("a hijacked reply ended, then ended again: answered as without Interlock, the delivery recorded", async () => {
    running = await listen((app) => {
      app.post("/hook", { config: { interlock: webhook(options()) } }, (_request, reply) => {
        reply.hijack();
        reply.raw.writeHead(200, { "content-type": "text/plain" });
        reply.raw.end("processed");
        reply.raw.end(); // a "make sure it is ended" helper
      });
    });
    const d = await signed('{"a":1}', "application/json");
    const first = await post(`${running.url}/hook`, d);
    expect([first.status, await first.text()]).toEqual([200, "processed"]);
    const again = await post(`${running.url}/hook`, d);
    expect([again.status, await again.json()]).toEqual([200, { duplicate: true, id: d.id }]);
  });

  it("a hijacked reply the provider left before it finished is settled by the status answered once the route ends it", async () => {
    const events: InterlockEvent[] = [];
    let calls = 0;
    running = await listen((app) => {
      const hooks = webhook(options({ onEvent: (event) => events.push(event) }));
      app.post("/hook", { config: { interlock: hooks } }, (_request, reply) => {
        calls++;
        reply.hijack();
        reply.raw.writeHead(200, { "content-type": "text/plain" });
        reply.raw.write("processing,");
        // The route goes on after the provider left, and ends its answer.
        reply.raw.once("close", () => reply.raw.end("done"));
      });
    });
    const d = await signed('{"a":1}', "application/json");
    expect(await postAndLeave(`${running.url}/hook`, d)).toBe(200);
    await vi.waitFor(() => expect(events.map((e) => e.type)).toContain("webhook.processed"));
    const again = await post(`${running.url}/hook`, d);
    expect([again.status, await again.json()]).toEqual([200, { duplicate: true, id: d.id }]);
    expect(calls).toBe(1);
  });

  // The lease is renewed every third of lockTtlMs while the route runs; a provider that leaves an
  // answer the route began stops that, settling nothing: the claim lapses from two thirds of lockTtlMs to
  // lockTtlMs after the close.
  const cutOffLease = { lockTtlMs: 1_000, extendLease: { maxMs: 60_000 } };

  it("a hijacked reply the provider left mid-answer, whose route ends it 2xx 100 ms later: recorded as processed, the redelivery a duplicate", async () => {
    const events: InterlockEvent[] = [];
    let calls = 0;
    running = await listen((app) => {
      const hooks = webhook(options({ onEvent: (event) => events.push(event), ...cutOffLease }));
      app.post("/hook", { config: { interlock: hooks } }, (_request, reply) => {
        calls++;
        reply.hijack();
        reply.raw.writeHead(200, { "content-type": "text/plain" });
        reply.raw.write("processing,");
        reply.raw.once("close", () => setTimeout(() => reply.raw.end("done"), 100));
      });
    });
    const d = await signed('{"a":1}', "application/json");
    expect(await postAndLeave(`${running.url}/hook`, d)).toBe(200);
    await vi.waitFor(() => expect(events.map((e) => e.type)).toContain("webhook.processed"));
    const again = await post(`${running.url}/hook`, d);
    expect([again.status, await again.json()]).toEqual([200, { duplicate: true, id: d.id }]);
    expect(calls).toBe(1);
  });

  it("a hijacked reply the provider left mid-answer, whose route never ends it: a redelivery is in flight until the lease lapses (lockTtlMs, not extendLease's maxMs), then runs", async () => {
    const events: InterlockEvent[] = [];
    let calls = 0;
    running = await listen((app) => {
      const hooks = webhook(options({ onEvent: (event) => events.push(event), ...cutOffLease }));
      app.post("/hook", { config: { interlock: hooks } }, (_request, reply) => {
        reply.hijack();
        reply.raw.writeHead(200, { "content-type": "text/plain" });
        if (++calls > 1) return void reply.raw.end("done");
        reply.raw.write("processing,");
        const timer = setInterval(() => reply.raw.write("still processing,"), 10);
        reply.raw.once("close", () => clearInterval(timer));
      });
    });
    const d = await signed('{"a":1}', "application/json");
    expect(await postAndLeave(`${running.url}/hook`, d)).toBe(200);
    expect((await post(`${running.url}/hook`, d)).status).toBe(409);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const again = await post(`${running.url}/hook`, d);
    expect([again.status, await again.text()]).toEqual([200, "done"]);
    expect(await (await post(`${running.url}/hook`, d)).json()).toEqual({ duplicate: true, id: d.id });
    expect(calls).toBe(2);
    expect(events.map((e) => e.type)).not.toContain("webhook.handler_failed");
  });

  it("a stream piped into a hijacked reply, the provider still there: recorded by its status once the response has finished", async () => {
    const events: InterlockEvent[] = [];
    let calls = 0;
    running = await listen((app) => {
      const hooks = webhook(options({ onEvent: (event) => events.push(event) }));
      app.post("/hook", { config: { interlock: hooks } }, (_request, reply) => {
        calls++;
        reply.hijack();
        reply.raw.writeHead(200, { "content-type": "text/plain" });
        Readable.from(["processing,", "done"]).pipe(reply.raw);
      });
    });
    const d = await signed('{"a":1}', "application/json");
    expect(await (await post(`${running.url}/hook`, d)).text()).toBe("processing,done");
    await vi.waitFor(() => expect(events.map((e) => e.type)).toContain("webhook.processed"));
    const again = await post(`${running.url}/hook`, d);
    expect([again.status, await again.json()]).toEqual([200, { duplicate: true, id: d.id }]);
    expect(calls).toBe(1);
  });

  it("a stream piped into a hijacked reply that fails after the provider left: the delivery is released, never recorded as processed", async () => {
    const events: InterlockEvent[] = [];
    let calls = 0;
    let failJob: (() => void) | undefined;
    running = await listen((app) => {
      const hooks = webhook(options({ onEvent: (event) => events.push(event) }));
      app.post("/hook", { config: { interlock: hooks } }, (_request, reply) => {
        reply.hijack();
        reply.raw.writeHead(200, { "content-type": "text/plain" });
        const progress = new PassThrough();
        progress.pipe(reply.raw);
        if (++calls > 1) return void progress.end("done");
        progress.write("processing,");
        // The job goes on after the provider left, then fails: no answer of it ever completed.
        failJob = () => progress.destroy(new Error("database down"));
      });
    });
    const d = await signed('{"a":1}', "application/json");
    expect(await postAndLeave(`${running.url}/hook`, d)).toBe(200);
    // Still processing: the redelivery meanwhile is told to come back, not acknowledged.
    const meanwhile = await post(`${running.url}/hook`, d);
    expect([meanwhile.status, (await problem(meanwhile)).code]).toEqual([409, "request_in_flight"]);
    failJob?.();
    await vi.waitFor(() => expect(events.map((e) => e.type)).toContain("webhook.handler_failed"));
    expect(events.map((e) => e.type)).not.toContain("webhook.processed");
    const again = await post(`${running.url}/hook`, d);
    expect([again.status, await again.text()]).toEqual([200, "done"]);
    expect(calls).toBe(2);
  });

  it("a streamed answer the provider left before it ended: the delivery is released, never recorded as processed", async () => {
    const events: InterlockEvent[] = [];
    let calls = 0;
    running = await listen((app) => {
      const hooks = webhook(options({ onEvent: (event) => events.push(event) }));
      app.post("/hook", { config: { interlock: hooks } }, async (_request, reply) => {
        const progress = new PassThrough();
        if (++calls > 1) progress.end("done");
        else progress.write("processing,"); // never ended: Fastify destroys it once the provider left
        return reply.type("text/plain").send(progress);
      });
    });
    const d = await signed('{"a":1}', "application/json");
    expect(await postAndLeave(`${running.url}/hook`, d)).toBe(200);
    await vi.waitFor(() => expect(events.map((e) => e.type)).toContain("webhook.handler_failed"));
    expect(events.map((e) => e.type)).not.toContain("webhook.processed");
    const again = await post(`${running.url}/hook`, d);
    expect([again.status, await again.text()]).toEqual([200, "done"]);
    expect(calls).toBe(2);
    // Ended, it is recorded by its status: the next redelivery is a duplicate.
    const duplicate = await post(`${running.url}/hook`, d);
    expect([duplicate.status, await duplicate.json()]).toEqual([200, { duplicate: true, id: d.id }]);
  });

  for (const hijacked of [true, false]) {
    it(`a route that writes part of its answer on reply.raw, then destroys it (${hijacked ? "hijacked" : "never hijacked"}): the delivery is released, never recorded as processed; the redelivery runs it`, async () => {
      const events: InterlockEvent[] = [];
      let calls = 0;
      running = await listen((app) => {
        const hooks = webhook(options({ onEvent: (event) => events.push(event) }));
        app.post("/hook", { config: { interlock: hooks } }, async (_request, reply) => {
          if (++calls > 1) return { calls };
          if (hijacked) reply.hijack();
          reply.raw.write("partial");
          setTimeout(() => reply.raw.destroy(), 20);
          return reply; // answered by the route itself, later
        });
      });
      const d = await signed('{"a":1}', "application/json");
      await post(`${running.url}/hook`, d)
        .then((response) => response.text())
        .catch(() => {}); // the connection is reset
      await vi.waitFor(() => expect(events.map((e) => e.type)).toContain("webhook.handler_failed"));
      expect(events.map((e) => e.type)).not.toContain("webhook.processed");
      const again = await post(`${running.url}/hook`, d);
      expect([again.status, await again.json()]).toEqual([200, { calls: 2 }]);
      const duplicate = await post(`${running.url}/hook`, d);
      expect([duplicate.status, await duplicate.json()]).toEqual([200, { duplicate: true, id: d.id }]);
      expect(calls).toBe(2);
    });
  }

  it("with idempotency() on the route too, a reply written on reply.raw settles both: its end records the delivery, its destroy releases the delivery and the key", async () => {
    const events: InterlockEvent[] = [];
    const onEvent = (event: InterlockEvent) => void events.push(event);
    let calls = 0;
    running = await listen((app) => {
      const interlock = [
        webhook(options({ onEvent })),
        idempotency({ store: new MemoryStore(), principal: false, onEvent }),
      ];
      app.post("/hook", { config: { interlock } }, async (_request, reply) => {
        reply.raw.write("partial,");
        if (++calls === 1) setTimeout(() => reply.raw.destroy(), 20);
        else reply.raw.end("done");
        return reply; // answered by the route itself
      });
    });
    const d = await signed('{"a":1}', "application/json");
    const keyed = { headers: { ...d.headers, "idempotency-key": "k1" }, body: d.body };
    await post(`${running.url}/hook`, keyed)
      .then((response) => response.text())
      .catch(() => {}); // the connection is reset
    await vi.waitFor(() =>
      expect(events.map((e) => e.type)).toEqual(
        expect.arrayContaining(["webhook.handler_failed", "idempotency.released"]),
      ),
    );
    const again = await post(`${running.url}/hook`, keyed);
    expect([again.status, await again.text()]).toEqual([200, "partial,done"]);
    await vi.waitFor(() => expect(events.map((e) => e.type)).toContain("webhook.processed"));
    const duplicate = await post(`${running.url}/hook`, d);
    expect([duplicate.status, await duplicate.json()]).toEqual([200, { duplicate: true, id: d.id }]);
    expect(calls).toBe(2);
    expect(events.filter((e) => e.type === "webhook.handler_failed")).toHaveLength(1);
  });

  describe("a hijacked reply on a route with idempotency() too", () => {
    /** A route with both sets whose handler hijacks its reply; `answer` writes on reply.raw. */
    async function both(answer: (reply: FastifyReply, call: number) => void) {
      const events: InterlockEvent[] = [];
      const onEvent = (event: InterlockEvent) => void events.push(event);
      const calls = { count: 0 };
      running = await listen((app) => {
        const interlock = [
          webhook(options({ onEvent })),
          idempotency({ store: new MemoryStore(), principal: false, onEvent }),
        ];
        app.post("/hook", { config: { interlock } }, async (_request, reply) => {
          reply.hijack();
          answer(reply, ++calls.count);
          return reply; // answered by the route itself
        });
      });
      const d = await signed('{"a":1}', "application/json");
      const keyed = { headers: { ...d.headers, "idempotency-key": "k1" }, body: d.body };
      return { events, calls, d, keyed, url: `${running.url}/hook` };
    }

    it("ended by the route: answered as written, the delivery recorded (a redelivery is a duplicate) and the key's answer replayed", async () => {
      const { events, calls, d, keyed, url } = await both((reply) => {
        reply.raw.writeHead(200, { "content-type": "application/json" });
        reply.raw.end('{"ok":true}');
      });
      const first = await post(url, keyed);
      expect([first.status, first.headers.get("content-type"), await first.text()]).toEqual([
        200,
        "application/json",
        '{"ok":true}',
      ]);
      // Both settled before the end went out: a retry sent the moment the answer is whole finds them.
      const duplicate = await post(url, d);
      expect([duplicate.status, await duplicate.json()]).toEqual([200, { duplicate: true, id: d.id }]);
      // Another delivery (a new id) with the same key: the key's answer, replayed; the handler not run.
      const other = await signed(d.body, "application/json");
      const replay = await post(url, { headers: { ...other.headers, "idempotency-key": "k1" }, body: other.body });
      expect([replay.status, replay.headers.get("idempotent-replayed"), await replay.text()]).toEqual([
        200,
        "true",
        '{"ok":true}',
      ]);
      expect(calls.count).toBe(1);
      // Each delivery recorded once: the first by the hijacked reply's status, the other by the replay.
      expect(events.filter((e) => e.type === "webhook.processed").map((e) => "id" in e && e.id)).toEqual([
        d.id,
        other.id,
      ]);
      expect(events.map((e) => e.type)).not.toContain("webhook.handler_failed");
    });

    it("destroyed by the route before its end: the delivery and the key are both released, once; the redelivery runs", async () => {
      const { events, calls, keyed, url } = await both((reply, call) => {
        reply.raw.writeHead(200, { "content-type": "text/plain" });
        reply.raw.write("partial,");
        if (call === 1) setTimeout(() => reply.raw.destroy(), 20);
        else reply.raw.end("done");
      });
      await post(url, keyed)
        .then((response) => response.text())
        .catch(() => {}); // the connection is reset
      await vi.waitFor(() =>
        expect(events.map((e) => e.type)).toEqual(
          expect.arrayContaining(["webhook.handler_failed", "idempotency.released"]),
        ),
      );
      const again = await post(url, keyed);
      expect([again.status, again.headers.get("idempotent-replayed"), await again.text()]).toEqual([
        200,
        null,
        "partial,done",
      ]);
      expect(calls.count).toBe(2);
      expect(events.filter((e) => e.type === "webhook.handler_failed")).toHaveLength(1);
      expect(events.filter((e) => e.type === "idempotency.released")).toHaveLength(1);
    });

    it("a throw before its end: the delivery and the key are both released, once; the redelivery runs", async () => {
      const { events, calls, d, keyed, url } = await both((reply, call) => {
        reply.raw.writeHead(200, { "content-type": "text/plain" });
        // Fastify hands this throw to no hook, and leaves the hijacked response open.
        if (call === 1) throw new Error("database down");
        reply.raw.end("done");
      });
      // The first delivery stays connected, waiting for an answer that never ends.
      const first = httpRequest(url, { method: "POST", headers: keyed.headers });
      first.on("error", () => {});
      first.end(d.body);
      try {
        await vi.waitFor(() =>
          expect(events.map((e) => e.type)).toEqual(
            expect.arrayContaining(["webhook.handler_failed", "idempotency.released"]),
          ),
        );
        const again = await post(url, keyed);
        expect([again.status, await again.text()]).toEqual([200, "done"]);
        expect(calls.count).toBe(2);
        expect(events.filter((e) => e.type === "webhook.handler_failed")).toHaveLength(1);
        expect(events.filter((e) => e.type === "idempotency.released")).toHaveLength(1);
      } finally {
        first.destroy();
      }
    });
  });

  it("a handler that throws after hijacking its reply releases the delivery at once: the redelivery runs", async () => {
    const events: InterlockEvent[] = [];
    let calls = 0;
    running = await listen((app) => {
      const hooks = webhook(options({ onEvent: (event) => events.push(event) }));
      app.post("/hook", { config: { interlock: hooks } }, async (_request, reply) => {
        reply.hijack();
        reply.raw.writeHead(200, { "content-type": "text/plain" });
        // Fastify hands this throw to no hook, and leaves the hijacked response open.
        if (++calls === 1) throw new Error("database down");
        reply.raw.end("done");
      });
    });
    const d = await signed('{"a":1}', "application/json");
    // The first delivery stays connected, waiting for an answer that never ends.
    const first = httpRequest(`${running.url}/hook`, { method: "POST", headers: d.headers });
    first.on("error", () => {});
    first.end(d.body);
    try {
      await vi.waitFor(() => expect(events.map((e) => e.type)).toContain("webhook.handler_failed"));
      const again = await post(`${running.url}/hook`, d);
      expect([again.status, await again.text()]).toEqual([200, "done"]);
      expect(calls).toBe(2);
    } finally {
      first.destroy();
    }
  });

  it("a handler that throws after ending its hijacked reply is settled by the status it sent", async () => {
    let calls = 0;
    running = await listen((app) => {
      app.post("/hook", { config: { interlock: webhook(options()) } }, async (_request, reply) => {
        calls++;
        reply.hijack();
        reply.raw.writeHead(204);
        reply.raw.end();
        // Fastify then sets a 500 on the response already sent, for its diagnostics channel.
        throw new Error("cleanup failed");
      });
    });
    const d = await signed('{"a":1}', "application/json");
    expect((await post(`${running.url}/hook`, d)).status).toBe(204);
    await vi.waitFor(async () => {
      const again = await post(`${running?.url}/hook`, d);
      expect([again.status, await again.json()]).toEqual([200, { duplicate: true, id: d.id }]);
    });
    expect(calls).toBe(1);
  });
});

describe("a delivery whose payload cannot be decoded", () => {
  /** An app whose error handler answers every error 500, as the scenario app's does, noting what it saw. */
  async function appWithErrorHandler(
    route: (app: FastifyInstance, hooks: ReturnType<typeof webhook>) => void,
    extra: Partial<FastifyWebhookOptions> = {},
  ) {
    const seen = { errors: [] as unknown[], events: [] as InterlockEvent[] };
    running = await listen((app) => {
      app.setErrorHandler((error, _request, reply) => {
        seen.errors.push(error);
        return reply.code(500).send({ error: "handler failed" });
      });
      route(app, webhook(options({ onEvent: (event) => seen.events.push(event), ...extra })));
    });
    return seen;
  }

  const failedStatuses = (events: InterlockEvent[]) =>
    events.filter((e) => e.type === "webhook.handler_failed").map((e) => (e as { status?: number }).status);

  it.each([
    [
      "an async handler",
      async (request: { webhook: { payload: unknown } | null }) => ({ got: request.webhook!.payload }),
    ],
    [
      "a sync handler that sends",
      (request: { webhook: { payload: unknown } | null }, reply: FastifyReply) => {
        reply.send({ got: request.webhook!.payload });
      },
    ],
    [
      "a sync handler that returns a value",
      (request: { webhook: { payload: unknown } | null }) => ({ got: request.webhook!.payload }),
    ],
  ])(
    "%s that reads it → 400 payload_not_decodable before the app's error handler; released, the redelivery runs",
    async (_name, handler) => {
      let calls = 0;
      const seen = await appWithErrorHandler((app, hooks) =>
        app.post("/hook", { config: { interlock: hooks } }, (request, reply) => {
          calls++;
          return handler(request, reply);
        }),
      );
      // text/plain: Fastify's text parser takes it, so the handler runs and reads the payload.
      const d = await signed("not json {", "text/plain");
      for (let attempt = 0; attempt < 2; attempt++) {
        const response = await post(`${running?.url}/hook`, d);
        expect(response.status).toBe(400);
        expect(await problem(response)).toMatchObject({ code: "payload_not_decodable", scheme: "standard-webhooks" });
      }
      expect(calls).toBe(2);
      expect(seen.errors).toEqual([]);
      // Released by the onError hook, before the route's error handler answers (no status: the answer came after).
      expect(failedStatuses(seen.events)).toEqual([undefined, undefined]);
    },
  );

  it("declared application/json, which Fastify's JSON parser refuses before the preHandler: verified from the bytes kept, then 400 payload_not_decodable (empty too); unsigned, the verifier's 401", async () => {
    const handled = vi.fn();
    const seen = await appWithErrorHandler((app, hooks) =>
      app.post("/hook", { config: { interlock: hooks } }, async () => handled()),
    );
    for (const body of ["not json {", ""]) {
      const d = await signed(body, "application/json");
      for (let attempt = 0; attempt < 2; attempt++) {
        const response = await post(`${running?.url}/hook`, d);
        expect(response.status).toBe(400);
        expect(await problem(response)).toMatchObject({ code: "payload_not_decodable" });
      }
    }
    const forged = await signed("not json {", "application/json");
    const refused = await post(`${running?.url}/hook`, {
      ...forged,
      headers: { ...forged.headers, "webhook-signature": "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" },
    });
    expect(refused.status).toBe(401);
    expect((await problem(refused)).code).toBe("no_matching_signature");
    expect(handled).not.toHaveBeenCalled();
    expect(seen.errors).toEqual([]);
    expect(failedStatuses(seen.events)).toEqual([400, 400, 400, 400]);
    expect(seen.events.map((e) => e.type)).not.toContain("webhook.processed");
  });

  it("a JSON body the scheme decodes but Fastify's parser refuses (a __proto__ key): the parser's error goes on to the app, the delivery released", async () => {
    const seen = await appWithErrorHandler((app, hooks) =>
      app.post("/hook", { config: { interlock: hooks } }, async () => ({ ok: true })),
    );
    const d = await signed('{"__proto__":{"x":1}}', "application/json");
    expect((await post(`${running?.url}/hook`, d)).status).toBe(500);
    expect(seen.errors).toMatchObject([{ code: "FST_ERR_CTP_INVALID_JSON_BODY" }]);
    expect(failedStatuses(seen.events)).toEqual([undefined]);
    expect((await post(`${running?.url}/hook`, d)).status).toBe(500); // released: verified again, not a duplicate
  });

  it("any other error keeps its path: an Error and a thrown string reach the app's error handler, the route's own errorHandler comes before the app's", async () => {
    const seen = await appWithErrorHandler((app, hooks) => {
      app.post("/error", { config: { interlock: hooks } }, async () => {
        throw new Error("database down");
      });
      app.post("/string", { config: { interlock: hooks } }, () => {
        throw "not an Error";
      });
      app.post(
        "/own",
        {
          config: { interlock: hooks },
          errorHandler: (error, _request, reply) => {
            if ((error as Error).message === "mine") return reply.code(418).send({ own: true });
            throw error;
          },
        },
        async (request) => {
          if (request.headers["x-fail"] === "mine") throw new Error("mine");
          if (request.headers["x-fail"] === "other") throw new Error("other");
          return { got: request.webhook!.payload };
        },
      );
    });
    const at = async (path: string, fail?: string, body = '{"a":1}') => {
      const d = await signed(body, "text/plain");
      const response = await post(`${running?.url}${path}`, { ...d, headers: { ...d.headers, "x-fail": fail ?? "" } });
      return [response.status, await response.json()];
    };
    expect(await at("/error")).toEqual([500, { error: "handler failed" }]);
    expect(await at("/string")).toEqual([500, { error: "handler failed" }]);
    expect(seen.errors).toEqual([new Error("database down"), "not an Error"]);
    expect(await at("/own", "mine")).toEqual([418, { own: true }]);
    expect(await at("/own", "other")).toEqual([500, { error: "handler failed" }]);
    const [status, body] = await at("/own", undefined, "not json {");
    expect([status, (body as { code: string }).code]).toEqual([400, "payload_not_decodable"]);
    expect(failedStatuses(seen.events)).toEqual([undefined, undefined, undefined, undefined, undefined]);
  });

  it("an app whose onRoute hook takes the route's error handler over, answering 200: the payload error is its to answer, the delivery still released", async () => {
    let calls = 0;
    const seen = await appWithErrorHandler((app, hooks) => {
      app.addHook("onRoute", (route) => {
        route.errorHandler = (_error, _request, reply) => reply.code(200).send({ swallowed: true });
      });
      app.post("/hook", { config: { interlock: hooks } }, async (request) => {
        calls++;
        return { got: request.webhook!.payload };
      });
    });
    const d = await signed("not json {", "text/plain");
    for (let attempt = 0; attempt < 2; attempt++) {
      const response = await post(`${running?.url}/hook`, d);
      expect([response.status, await response.json()]).toEqual([200, { swallowed: true }]);
    }
    // Not recorded by the app's 200: the redelivery ran the route again.
    expect(calls).toBe(2);
    expect(seen.events.map((e) => e.type)).not.toContain("webhook.processed");
  });

  it("an error that only shares the JSON parser's code, thrown after the delivery was verified, is not verified again", async () => {
    const seen = await appWithErrorHandler((app, hooks) =>
      app.post("/hook", { config: { interlock: hooks } }, async () => {
        throw Object.assign(new Error("a parser of the route's own"), { code: "FST_ERR_CTP_INVALID_JSON_BODY" });
      }),
    );
    const d = await signed('{"a":1}', "application/json");
    expect((await post(`${running?.url}/hook`, d)).status).toBe(500);
    expect(seen.events.map((e) => e.type)).toEqual(["webhook.verified", "webhook.handler_failed"]);
  });

  it("hooks spread into the route's options, without the plugin: answered the same", async () => {
    const handled = vi.fn();
    const Fastify = (await import("fastify")).default;
    const app = Fastify();
    app.setErrorHandler((_error, _request, reply) => reply.code(500).send({ error: "handler failed" }));
    app.post("/hook", { ...webhook(options()) }, async (request) => handled(request.webhook!.payload));
    await app.listen({ port: 0, host: "127.0.0.1" });
    running = {
      app,
      url: `http://127.0.0.1:${(app.server.address() as { port: number }).port}`,
      close: () => app.close(),
    };
    for (const type of ["text/plain", "application/json"]) {
      const response = await post(`${running.url}/hook`, await signed("not json {", type));
      expect([response.status, (await problem(response)).code]).toEqual([400, "payload_not_decodable"]);
    }
  });

  it("a hijacked reply (which reaches no error handler) with nothing sent yet → 400 payload_not_decodable on it; released, the redelivery runs", async () => {
    let calls = 0;
    const seen = await appWithErrorHandler((app, hooks) =>
      app.post("/hook", { config: { interlock: hooks } }, async (request, reply) => {
        calls++;
        reply.hijack();
        const payload = JSON.stringify(request.webhook!.payload);
        reply.raw.writeHead(200, { "content-type": "application/json" }).end(payload);
      }),
    );
    const d = await signed("not json {", "text/plain");
    for (let attempt = 0; attempt < 2; attempt++) {
      const response = await fetch(`${running?.url}/hook`, {
        method: "POST",
        headers: d.headers,
        body: d.body as BodyInit,
        signal: AbortSignal.timeout(2000),
      });
      expect(response.status).toBe(400);
      expect(await problem(response)).toMatchObject({ code: "payload_not_decodable" });
    }
    expect(calls).toBe(2);
    expect(seen.errors).toEqual([]);
    expect(failedStatuses(seen.events)).toEqual([400, 400]);
  });

  it("a hijacked reply whose head went out keeps its path: the delivery released at once, the response the app's (Fastify leaves it open)", async () => {
    let calls = 0;
    const seen = await appWithErrorHandler((app, hooks) =>
      app.post("/hook", { config: { interlock: hooks } }, async (request, reply) => {
        calls++;
        reply.hijack();
        reply.raw.writeHead(200, { "content-type": "text/plain" }).flushHeaders();
        reply.raw.end(String(request.webhook!.payload));
      }),
    );
    const d = await signed("not json {", "text/plain");
    for (let attempt = 1; attempt <= 2; attempt++) {
      const response = await fetch(`${running?.url}/hook`, {
        method: "POST",
        headers: d.headers,
        body: d.body as BodyInit,
        signal: AbortSignal.timeout(300),
      });
      expect(response.status).toBe(200);
      await expect(response.text()).rejects.toThrow(/aborted/);
      await vi.waitFor(() => expect(failedStatuses(seen.events)).toHaveLength(attempt));
    }
    expect(calls).toBe(2);
    expect(seen.errors).toEqual([]);
    expect(failedStatuses(seen.events)).toEqual([undefined, undefined]);
    running?.app.server.closeAllConnections(); // the responses left open, which closing the app would wait for
  });
});

describe("a delivery cut off mid-body", () => {
  /** A receiver logging to `logs` and reporting to `events`: the handler's calls counted by `handled`. */
  async function receiver(logs: LogLine[], events: InterlockEvent[], handled: () => void) {
    running = await listen((app) => {
      const hooks = webhook(options({ onEvent: (event) => events.push(event) }));
      app.post("/hook", { config: { interlock: hooks } }, async (request) => {
        handled();
        return { id: request.webhook!.id };
      });
    }, keepLogs(logs));
    return running.url;
  }

  // Its length announced, it is read beside the app's parser, which meets the cut first and
  // answers its own 400; chunked, or of a type only the body fallback takes (which waits for the
  // bytes), it is read ahead, before any parser, and Interlock answers.
  it.each([
    ["its length announced: Fastify's parser answers its 400", "application/json", 100, "ECONNRESET"],
    ["chunked: 400 body_incomplete", "application/json", "chunked", "body_incomplete"],
    ["of a type only the body fallback takes: 400 body_incomplete", "application/octet-stream", 100, "body_incomplete"],
  ] as const)(
    "%s, logged at info as Fastify logs its own parser's, not as a server error; reported as body_incomplete; its redelivery is processed",
    async (_name, type, length, logged) => {
      const events: InterlockEvent[] = [];
      const logs: LogLine[] = [];
      const handled = vi.fn();
      const url = await receiver(logs, events, handled);
      const d = await signed('{"type":"invoice.paid","amount":4200}', type);
      await leaveMidBody(`${url}/hook`, d.headers, '{"type":', length);
      await vi.waitFor(() => expect(logs.filter((line) => line.err !== undefined)).toHaveLength(1));
      expect(logs.filter((line) => line.err !== undefined)).toMatchObject([
        { level: 30, err: { code: logged }, res: { statusCode: 400 } },
      ]);
      expect(logs.filter((line) => line.level >= 40)).toEqual([]);
      expect(events.map((e) => (e.type === "webhook.rejected" ? e.code : e.type))).toEqual(["body_incomplete"]);
      expect(handled).not.toHaveBeenCalled();

      const redelivery = await post(`${url}/hook`, d);
      expect([redelivery.status, await redelivery.json()]).toEqual([200, { id: d.id }]);
      expect(handled).toHaveBeenCalledOnce();
    },
  );
});

/** Sends a delivery, reads the first chunk of the answer, then closes the connection: its status. */
function postAndLeave(url: string, d: { headers: Record<string, string>; body: string | Uint8Array }): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(url, { method: "POST", headers: d.headers, agent: false }, (response) => {
      response.once("data", () => {
        request.destroy();
        resolve(response.statusCode ?? 0);
      });
    });
    request.on("error", reject);
    request.end(d.body);
  });
}
