/** webhook(): the raw body whatever the app's body parsing, limits, onError, and outcomes. */
import { createHash, randomBytes } from "node:crypto";
import { request as httpRequest } from "node:http";
import { PassThrough, Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import { type InterlockEvent, MemoryStore, standardWebhooks } from "@interlock/core";
import { unreachableStore } from "@interlock/core/testing";
import { leaveMidBody } from "@interlock/test-harness/web-requests";
import Koa, { type Middleware } from "koa";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  idempotency,
  type RawBodyContext,
  type WebhookMiddlewareOptions,
  type WebhookState,
  webhook,
} from "../src/index.js";
import { type Served, serve } from "./serve.js";
import { bodyParser, delivery, readAll, route, SECRET, sleep, watchErrors } from "./support.js";

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

let served: Served | undefined;
afterEach(async () => {
  await served?.close();
  served = undefined;
});

interface Seen {
  events: InterlockEvent[];
  handled: string[];
  raw?: Buffer;
  body?: unknown;
}

type Handler = Middleware<WebhookState, RawBodyContext>;

/** An app with `before` middleware, then webhook(), then `after` middleware and a recording handler. */
async function start(
  options: Partial<WebhookMiddlewareOptions> = {},
  { before = [], after = [], handler }: { before?: Middleware[]; after?: Middleware[]; handler?: Handler } = {},
) {
  const seen: Seen = { events: [], handled: [] };
  const app = new Koa();
  app.silent = true;
  for (const middleware of before) app.use(middleware);
  const verify = webhook({
    scheme: standardWebhooks,
    secret: SECRET,
    store: new MemoryStore(),
    onEvent: (event) => seen.events.push(event),
    ...options,
  });
  const record: Handler = async (ctx) => {
    const event = ctx.state.webhook;
    seen.handled.push(event.id as string);
    seen.raw = ctx.request.rawBody;
    ctx.body = { received: event.id, sha256: sha256(ctx.request.rawBody) };
  };
  app.use(route("POST", "/webhooks", verify, ...after, handler ?? record));
  served = await serve(app);
  return seen;
}

/**
 * The app's own error middleware: a throw is answered 500, and one after the answer began (which
 * Koa leaves open) ended as it stands, as an app that bypasses Koa must.
 */
const answerFailures =
  (errors: unknown[]): Middleware =>
  async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      errors.push(error);
      if (ctx.headerSent) ctx.res.end();
      else {
        ctx.status = 500;
        ctx.body = { error: "handler failed" };
      }
    }
  };

const post = (d: { headers: Record<string, string>; body: Uint8Array | string }) =>
  fetch(`${served?.url}/webhooks`, { method: "POST", headers: d.headers, body: d.body as BodyInit });

/** Posts `d` and leaves once the first bytes of the answer arrive: its status. */
function postAndLeave(d: { headers: Record<string, string>; body: Uint8Array | string }): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      `${served?.url}/webhooks`,
      { method: "POST", headers: d.headers, agent: false },
      (response) => {
        response.once("data", () => {
          request.destroy();
          resolve(response.statusCode ?? 0);
        });
      },
    );
    request.on("error", reject);
    request.end(d.body);
  });
}

const types = (events: InterlockEvent[]) => events.map((e) => e.type);

describe("raw body", () => {
  it("a gzip-encoded delivery → 415 unsupported_content_encoding, whichever bytes were signed; a parser after stands aside", async () => {
    const seen = await start({ maxBodyBytes: 4096 }, { after: [bodyParser()] });
    const payload = Buffer.from('{"type":"invoice.paid"}');
    // One that inflates past bodyLimit too: never inflated, it gets the same answer, not Koa's 413.
    const bomb = Buffer.from(JSON.stringify({ type: "invoice.paid", pad: "p".repeat(10_000) }));
    for (const [signedBytes, sent] of [
      [payload, gzipSync(payload)],
      [gzipSync(payload), gzipSync(payload)],
      [bomb, gzipSync(bomb)],
    ] as const) {
      const d = await delivery(signedBytes);
      const response = await post({ headers: { ...d.headers, "content-encoding": "gzip" }, body: sent });
      expect(response.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect([response.status, (await response.json()).code]).toEqual([415, "unsupported_content_encoding"]);
      expect(response.headers.get("accept-encoding")).toBe("identity");
    }
    expect(seen.handled).toEqual([]);
  });

  it("reaches verification byte for byte, and a body parser after webhook() stands aside", async () => {
    const parser = { ran: 0 };
    // Odd spacing, key order, escapes and non-ASCII: anything a re-serialisation would change.
    const text = '{ "b":1,\n  "a" : "caf\u00e9 \\u00e9 \u{1F600}",\t"n": 1.50 }';
    const seen = await start({}, { after: [bodyParser(parser)] });
    const d = await delivery(text);
    const response = await post(d);
    expect(response.status).toBe(200);
    expect((await response.json()).sha256).toBe(sha256(Buffer.from(text)));
    expect(seen.raw?.equals(Buffer.from(text))).toBe(true);
    expect(parser.ran).toBe(0);
  });

  it("parses JSON onto ctx.request.body, so no body parser is needed", async () => {
    const seen = await start(
      {},
      {
        handler: async (ctx) => {
          seen.body = ctx.request.body;
          ctx.status = 204;
        },
      },
    );
    const response = await post(await delivery('{"type":"invoice.paid","amount":12}'));
    expect(response.status).toBe(204);
    expect(seen.body).toEqual({ type: "invoice.paid", amount: 12 });
  });

  it("parses url-encoded forms (Slack's format) into fields", async () => {
    const seen = await start(
      {},
      {
        handler: async (ctx) => {
          seen.body = ctx.request.body;
          ctx.status = 200;
        },
      },
    );
    const d = await delivery("command=%2Fdeploy&text=a+b&tag=x&tag=y", "application/x-www-form-urlencoded");
    expect((await post(d)).status).toBe(200);
    expect(seen.body).toEqual({ command: "/deploy", text: "a b", tag: ["x", "y"] });
  });

  it("a form field named __proto__ is an own field of ctx.request.body, never its prototype", async () => {
    const seen = await start(
      {},
      {
        handler: async (ctx) => {
          seen.body = ctx.request.body;
          ctx.status = 200;
        },
      },
    );
    const d = await delivery("__proto__=x&__proto__=y&a=1", "application/x-www-form-urlencoded");
    expect((await post(d)).status).toBe(200);
    const body = seen.body as Record<string, unknown>;
    expect(Object.getPrototypeOf(body)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(body, "__proto__")?.value).toEqual(["x", "y"]);
    expect(body.a).toBe("1");
  });

  it("keeps binary, non-UTF-8 bodies intact; ctx.request.body stays undefined, later parsers skip", async () => {
    const bytes = new Uint8Array([0xff, 0xfe, 0x00, 0xc3, 0x28, 0x80, ...randomBytes(4096)]);
    const parser = { ran: 0 };
    const seen = await start(
      {},
      {
        after: [bodyParser(parser)],
        handler: async (ctx) => {
          seen.raw = ctx.request.rawBody;
          seen.body = ctx.request.body;
          expect(Buffer.from(ctx.state.webhook.body).equals(bytes)).toBe(true);
          ctx.status = 202;
        },
      },
    );
    const response = await post(await delivery(bytes, "application/octet-stream"));
    expect(response.status).toBe(202);
    expect(seen.raw?.equals(bytes)).toBe(true);
    expect(seen.body).toBeUndefined();
    expect(parser.ran).toBe(0); // told by ctx.disableBodyParser: the stream is consumed
  });

  it("a signed body with invalid JSON is still verified; reading ctx.request.body is a 400", async () => {
    const seen = await start(
      {},
      {
        handler: async (ctx) => {
          seen.handled.push("ran");
          if (ctx.get("x-read-body")) seen.body = ctx.request.body;
          ctx.status = 200;
        },
      },
    );
    const d = await delivery("{not json");
    expect((await post(d)).status).toBe(200);
    const other = await delivery("{not json");
    const response = await post({ ...other, headers: { ...other.headers, "x-read-body": "1" } });
    expect(response.status).toBe(400);
    expect(await response.text()).toBe("the request body is not valid JSON");
  });

  it("a body parser mounted before webhook() → 500 body_not_raw with advice, not a silent 401", async () => {
    const seen = await start({}, { before: [bodyParser()] });
    const response = await post(await delivery('{"type":"x"}'));
    expect(response.status).toBe(500);
    expect(response.headers.get("content-type")).toBe("application/problem+json");
    const problem = await response.json();
    expect(problem).toMatchObject({ code: "body_not_raw", status: 500, scheme: "standard-webhooks" });
    expect(problem.detail).toMatch(/mount webhook\(\) before any body parser/);
    expect(seen.handled).toEqual([]);
  });

  it("the adapter's own body_not_raw carries the request's correlation id (x-request-id), as core's refusals do", async () => {
    const seen = await start({}, { before: [bodyParser()] });
    const sent = await delivery('{"type":"x"}');
    const tagged = await post({ ...sent, headers: { ...sent.headers, "x-request-id": "req-500-koa" } });
    expect([tagged.status, (await tagged.json()).code]).toEqual([500, "body_not_raw"]);
    expect((await post(sent)).status).toBe(500);
    expect(seen.events).toEqual([
      {
        type: "webhook.rejected",
        scheme: "standard-webhooks",
        id: sent.id,
        code: "body_not_raw",
        durationMs: 0,
        correlationId: "req-500-koa",
      },
      {
        type: "webhook.rejected",
        scheme: "standard-webhooks",
        id: sent.id,
        code: "body_not_raw",
        durationMs: 0,
      },
    ]);
  });

  it("a middleware that drained the stream without setting a body → body_not_raw too", async () => {
    const drain: Middleware = async (ctx, next) => {
      await readAll(ctx.req);
      await next();
    };
    await start({}, { before: [drain] });
    const response = await post(await delivery('{"type":"x"}'));
    expect([response.status, (await response.json()).code]).toEqual([500, "body_not_raw"]);
  });
});

describe("body size", () => {
  it("a declared length over bodyLimit → 413 body_too_large, unread, reported as webhook.rejected", async () => {
    const seen = await start({ maxBodyBytes: 1024 });
    const response = await post(await delivery(JSON.stringify({ pad: "x".repeat(2000) })));
    expect(response.status).toBe(413);
    expect(await response.json()).toMatchObject({ code: "body_too_large", status: 413 });
    expect(seen.handled).toEqual([]);
    expect(seen.events).toMatchObject([{ type: "webhook.rejected", code: "body_too_large" }]);
  });

  it("a chunked body that grows past the limit → 413, and the connection still answers", async () => {
    await start({ maxBodyBytes: 1024 });
    const d = await delivery(JSON.stringify({ pad: "x".repeat(5000) }));
    const chunks = [d.body.subarray(0, 600), d.body.subarray(600, 1400), d.body.subarray(1400)];
    const stream = new ReadableStream({
      pull(controller) {
        const chunk = chunks.shift();
        if (chunk) controller.enqueue(chunk);
        else controller.close();
      },
    });
    const response = await fetch(`${served?.url}/webhooks`, {
      method: "POST",
      headers: d.headers,
      body: stream,
      duplex: "half",
    } as RequestInit);
    expect(response.status).toBe(413);
    expect((await response.json()).code).toBe("body_too_large");
    expect((await post(await delivery('{"ok":true}'))).status).toBe(200);
  });

  it("the limit defaults to maxBodyBytes", async () => {
    await start({ maxBodyBytes: 512 });
    const response = await post(await delivery(JSON.stringify({ pad: "x".repeat(600) })));
    expect([response.status, (await response.json()).code]).toEqual([413, "body_too_large"]);
    expect((await post(await delivery(JSON.stringify({ pad: "x".repeat(400) })))).status).toBe(200);
  });
});

describe("onError", () => {
  it("takes over refusals and store outages; leaving ctx alone lets Interlock's answer go out", async () => {
    const outcomes: string[] = [];
    const onError: WebhookMiddlewareOptions["onError"] = (decision, ctx) => {
      outcomes.push(decision.outcome);
      if (decision.outcome === "store_unavailable") return; // Interlock's 503 problem+json
      ctx.status = decision.error.status;
      ctx.body = { ok: false, reason: decision.error.code };
    };
    await start({ onError });
    const d = await delivery('{"type":"x"}');
    const tampered = await post({ ...d, body: '{"type":"y"}' });
    expect([tampered.status, await tampered.json()]).toEqual([401, { ok: false, reason: "no_matching_signature" }]);
    await served?.close();
    await start({ onError, store: unreachableStore() });
    const down = await post(await delivery('{"type":"x"}'));
    expect([down.status, (await down.json()).code]).toEqual([503, "store_unavailable"]);
    expect(outcomes).toEqual(["rejected", "store_unavailable"]);
  });

  it("a duplicate is not an error: it gets core's 200 and onError is not called", async () => {
    const outcomes: string[] = [];
    await start({
      onError: (decision, ctx) => {
        outcomes.push(decision.outcome);
        ctx.status = 418;
        ctx.body = { mine: true };
      },
    });
    const d = await delivery('{"type":"x"}');
    expect((await post(d)).status).toBe(200);
    const duplicate = await post(d);
    expect([duplicate.status, await duplicate.json()]).toEqual([200, { duplicate: true, id: d.id }]);
    expect(outcomes).toEqual([]);
  });

  it("sees the adapter's own refusals (body too large) like core's", async () => {
    const codes: string[] = [];
    await start({
      maxBodyBytes: 16,
      onError: (decision, ctx) => {
        codes.push(decision.error.code);
        ctx.status = 400;
      },
    });
    expect((await post(await delivery('{"type":"invoice.paid"}'))).status).toBe(400);
    expect(codes).toEqual(["body_too_large"]);
  });

  it("answers with the status it sets alone, Koa's starting 404 included (a route hidden from bad signatures)", async () => {
    await start({
      onError: (_decision, ctx) => {
        ctx.status = 404;
      },
    });
    const response = await post({ headers: { "content-type": "application/json" }, body: "{}" });
    expect([response.status, response.headers.get("content-type")]).toEqual([404, "text/plain; charset=utf-8"]);
  });

  it("can throw, handing the refusal to Koa's error handling", async () => {
    await start({
      onError: (decision) => {
        throw decision.error;
      },
    });
    const response = await post({ headers: { "content-type": "application/json" }, body: "{}" });
    expect(response.status).toBe(400); // the error's own status: missing_header
  });
});

describe("the handler's outcome", () => {
  it("the same webhook() mounted app-wide and again on the route: processed once, recorded, then a duplicate", async () => {
    const events: InterlockEvent[] = [];
    const verify = webhook({
      scheme: standardWebhooks,
      secret: SECRET,
      store: new MemoryStore(),
      onEvent: (event) => events.push(event),
    });
    let calls = 0;
    const app = new Koa();
    app.silent = true;
    app.use(verify);
    app.use(
      route("POST", "/webhooks", verify, async (ctx: Koa.Context) => {
        ctx.body = { run: ++calls };
      }),
    );
    served = await serve(app);
    const d = await delivery('{"type":"x"}');
    const first = await post(d);
    expect([first.status, await first.json()]).toEqual([200, { run: 1 }]);
    expect(await (await post(d)).json()).toEqual({ duplicate: true, id: d.id });
    expect(calls).toBe(1);
    expect(types(events)).toEqual(["webhook.verified", "webhook.processed", "webhook.verified", "webhook.duplicate"]);
  });

  it("a non-2xx answer (without a throw) releases the delivery: the redelivery runs", async () => {
    let calls = 0;
    const seen = await start(
      {},
      {
        handler: async (ctx) => {
          calls++;
          ctx.status = calls === 1 ? 503 : 200;
        },
      },
    );
    const d = await delivery('{"type":"x"}');
    expect((await post(d)).status).toBe(503);
    expect((await post(d)).status).toBe(200);
    expect((await post(d)).status).toBe(200); // now a duplicate
    expect(calls).toBe(2);
    expect(seen.events.map((e) => e.type)).toContain("webhook.handler_failed");
  });

  it("a throw releases it and reaches Koa's default error handling (500)", async () => {
    let calls = 0;
    await start(
      {},
      {
        handler: async (ctx) => {
          if (++calls === 1) throw new Error("boom");
          ctx.status = 200;
        },
      },
    );
    const d = await delivery('{"type":"x"}');
    const failed = await post(d);
    expect([failed.status, await failed.text()]).toEqual([500, "Internal Server Error"]);
    expect((await post(d)).status).toBe(200);
    expect(calls).toBe(2);
  });

  it("a payload the handler reads that is not JSON → 400 payload_not_decodable, answered before the app's error middleware; released, never recorded", async () => {
    const errors: unknown[] = [];
    let calls = 0;
    const seen = await start(
      {},
      {
        before: [answerFailures(errors)],
        handler: async (ctx) => {
          calls++;
          ctx.set("x-handler", "ran");
          ctx.body = { received: (ctx.state.webhook.payload as { type: string }).type };
        },
      },
    );
    const d = await delivery("not json {");
    for (let attempt = 0; attempt < 2; attempt++) {
      const response = await post(d);
      expect(response.status).toBe(400);
      expect(response.headers.get("content-type")).toBe("application/problem+json");
      // Set for the answer the handler never gave: cleared, as Koa's own error answer clears them.
      expect(response.headers.get("x-handler")).toBeNull();
      expect(await response.json()).toMatchObject({ code: "payload_not_decodable", scheme: "standard-webhooks" });
    }
    expect(calls).toBe(2); // released: the redelivery ran the handler again
    expect(errors).toEqual([]); // the app's error middleware never saw it
    const failed = seen.events.filter((e) => e.type === "webhook.handler_failed");
    expect(failed).toMatchObject([{ status: 400 }, { status: 400 }]);
    expect(types(seen.events)).not.toContain("webhook.processed");
  });

  it("a handler that set ctx.respond = false and throws the payload error before writing still gets the 400, not a hung answer", async () => {
    await start(
      {},
      {
        handler: async (ctx) => {
          ctx.respond = false;
          const payload = JSON.stringify(ctx.state.webhook.payload);
          ctx.res.writeHead(200).end(payload);
        },
      },
    );
    const d = await delivery("not json {");
    const response = await fetch(`${served?.url}/webhooks`, {
      method: "POST",
      headers: d.headers,
      body: d.body as BodyInit,
      signal: AbortSignal.timeout(2000),
    });
    expect([response.status, (await response.json()).code]).toEqual([400, "payload_not_decodable"]);
  });

  it("the payload error once the answer has begun goes on as any throw: the app's error middleware gets it, the delivery is released", async () => {
    const errors: unknown[] = [];
    let calls = 0;
    const seen = await start(
      {},
      {
        before: [answerFailures(errors)],
        handler: async (ctx) => {
          calls++;
          ctx.respond = false;
          ctx.res.writeHead(200, { "content-type": "text/plain" });
          ctx.res.write("partial ");
          ctx.res.end(String(ctx.state.webhook.payload));
        },
      },
    );
    const d = await delivery("not json {");
    for (let attempt = 0; attempt < 2; attempt++) {
      const response = await fetch(`${served?.url}/webhooks`, {
        method: "POST",
        headers: d.headers,
        body: d.body as BodyInit,
        signal: AbortSignal.timeout(2000),
      });
      expect([response.status, await response.text()]).toEqual([200, "partial "]);
    }
    expect(errors).toHaveLength(2);
    expect(errors[0]).toMatchObject({ name: "WebhookPayloadError", code: "payload_not_decodable" });
    expect(calls).toBe(2);
    expect(types(seen.events)).not.toContain("webhook.processed");
  });

  it("a 2xx streamed ctx.body still being produced: a copy meanwhile is in flight (409); the body failing releases the delivery, the redelivery runs", async () => {
    let calls = 0;
    let fail: (error: Error) => void = () => {};
    const seen = await start(
      {},
      {
        handler: async (ctx) => {
          calls++;
          const body = new PassThrough();
          body.write("processing...\n");
          fail = (error) => body.destroy(error); // the work behind the body fails later
          ctx.type = "text/plain";
          ctx.body = body;
        },
      },
    );
    const d = await delivery('{"type":"x"}');
    const first = await post(d);
    expect(first.status).toBe(200);
    const reader = (first.body as ReadableStream<Uint8Array>).getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe("processing...\n");
    const meanwhile = await post(d);
    expect([meanwhile.status, (await meanwhile.json()).code]).toEqual([409, "request_in_flight"]);
    fail(new Error("db down"));
    await vi.waitFor(() => expect(seen.events.map((e) => e.type)).toContain("webhook.handler_failed"));
    await reader.cancel().catch(() => {});
    const redelivery = await post(d);
    expect(redelivery.status).toBe(200);
    await redelivery.body?.cancel();
    expect(calls).toBe(2);
  });

  it("a 2xx streamed ctx.body sent whole records the delivery before its end goes out: the redelivery is a duplicate", async () => {
    let calls = 0;
    await start(
      {},
      {
        handler: async (ctx) => {
          calls++;
          ctx.type = "text/plain";
          ctx.body = Readable.from(["processed ", "in parts"]);
        },
      },
    );
    const d = await delivery('{"type":"x"}');
    const first = await post(d);
    expect([first.status, await first.text()]).toEqual([200, "processed in parts"]);
    const again = await post(d);
    expect([again.status, await again.json()]).toMatchObject([200, { duplicate: true }]);
    expect(calls).toBe(1);
  });

  it("an app that answers through ctx.res itself (ctx.respond = false) is settled by the status it sent", async () => {
    let calls = 0;
    const seen = await start(
      {},
      {
        handler: async (ctx) => {
          calls++;
          ctx.respond = false;
          // Answered after next() has returned, when Koa's ctx.status is still its default 404.
          setTimeout(() => ctx.res.writeHead(calls === 1 ? 503 : 202).end("raw"), 20);
        },
      },
    );
    const d = await delivery('{"type":"x"}');
    expect((await post(d)).status).toBe(503); // released: the redelivery runs
    const accepted = await post(d);
    expect([accepted.status, await accepted.text()]).toEqual([202, "raw"]);
    const duplicate = await post(d);
    expect([duplicate.status, await duplicate.json()]).toMatchObject([200, { duplicate: true }]);
    expect(calls).toBe(2);
    expect(seen.events.map((e) => e.type)).toContain("webhook.processed");
  });

  it.each([
    ["before any answer was sent", false],
    ["after its 200's headers went out early", true],
  ])(
    "ctx.respond = false and the provider leaves %s: the delivery stays claimed while the handler runs, then is released, never recorded",
    async (_when, flushEarly) => {
      let calls = 0;
      let closed = false;
      let finishWork = () => {};
      const working = new Promise<void>((resolve) => {
        finishWork = resolve;
      });
      const seen = await start(
        {},
        {
          handler: async (ctx) => {
            calls++;
            ctx.respond = false;
            const res = ctx.res;
            if (calls > 1) {
              res.writeHead(202).end("raw");
              return;
            }
            // The first copy's work goes on after the provider gave up, then fails (its 200 already
            // sent, or none): it ends the response it can no longer deliver.
            res.once("close", () => {
              closed = true;
            });
            if (flushEarly) res.writeHead(200, { "content-type": "text/plain" }).flushHeaders();
            void working.then(() => res.end("failed"));
          },
        },
      );
      const d = await delivery('{"type":"x"}');
      const leaving = new AbortController();
      const first = fetch(`${served?.url}/webhooks`, {
        method: "POST",
        headers: d.headers,
        body: d.body as BodyInit,
        signal: leaving.signal,
      }).then((response) => response.text());
      await vi.waitFor(() => expect(calls).toBe(1));
      leaving.abort();
      await expect(first).rejects.toThrow();
      await vi.waitFor(() => expect(closed).toBe(true));
      // The handler is still running: a redelivery now is in flight, not run beside it.
      const meanwhile = await post(d);
      expect(meanwhile.status).toBe(409);
      expect(calls).toBe(1);
      finishWork();
      await vi.waitFor(() => expect(seen.events.map((e) => e.type)).toContain("webhook.handler_failed"));
      expect(seen.events.map((e) => e.type)).not.toContain("webhook.processed");
      const redelivery = await post(d);
      expect([redelivery.status, await redelivery.text()]).toEqual([202, "raw"]);
      expect(calls).toBe(2);
    },
  );

  it("ctx.respond = false, a stream piped into ctx.res, and the provider leaves: released when the pipe stops", async () => {
    let calls = 0;
    const seen = await start(
      {},
      {
        handler: async (ctx) => {
          calls++;
          ctx.respond = false;
          ctx.res.writeHead(200, { "content-type": "text/plain" });
          const source = new PassThrough();
          source.pipe(ctx.res);
          // The first answer never ends by itself: only the provider leaving stops it.
          if (calls === 1) source.write("one,");
          else source.end("all");
        },
      },
    );
    const d = await delivery('{"type":"x"}');
    const leaving = new AbortController();
    const first = await fetch(`${served?.url}/webhooks`, {
      method: "POST",
      headers: d.headers,
      body: d.body as BodyInit,
      signal: leaving.signal,
    });
    expect(first.status).toBe(200);
    leaving.abort();
    await vi.waitFor(() => expect(seen.events.map((e) => e.type)).toContain("webhook.handler_failed"));
    const redelivery = await post(d);
    expect([redelivery.status, await redelivery.text()]).toEqual([200, "all"]);
    expect(calls).toBe(2);
    expect(seen.events.map((e) => e.type)).toContain("webhook.processed");
  });

  it.each([
    ["after the handler returned", true],
    ["before the handler returned", false],
  ])(
    "ctx.respond = false, and the app destroys the response mid-way %s: a failed handler, the delivery released at once; the redelivery runs it",
    async (_when, later) => {
      let calls = 0;
      const seen = await start(
        // Renewed every 200 ms while the delivery is held: only a release lets the redelivery in.
        { lockTtlMs: 600 },
        {
          handler: async (ctx) => {
            calls++;
            ctx.respond = false;
            if (calls > 1) {
              ctx.res.writeHead(202).end("raw");
              return;
            }
            ctx.res.writeHead(200, { "content-type": "text/plain" });
            ctx.res.write("partial");
            if (later) setTimeout(() => ctx.res.destroy(), 20);
            else ctx.res.destroy();
          },
        },
      );
      const d = await delivery('{"type":"x"}');
      await post(d)
        .then((response) => response.text())
        .catch(() => {}); // the connection is reset
      await sleep(1500);
      expect(types(seen.events)).toContain("webhook.handler_failed");
      const redelivery = await post(d);
      expect([redelivery.status, await redelivery.text()]).toEqual([202, "raw"]);
      expect(calls).toBe(2);
      const duplicate = await post(d);
      expect([duplicate.status, await duplicate.json()]).toMatchObject([200, { duplicate: true }]);
      expect(types(seen.events).filter((type) => type === "webhook.handler_failed")).toHaveLength(1);
      expect(types(seen.events).filter((type) => type === "webhook.processed")).toHaveLength(1);
    },
  );

  it.each([
    ["webhook() first", true],
    ["idempotency() first", false],
  ])(
    "with idempotency() on the route too (%s), a response the app destroys before its end releases both, each once: the redelivery runs",
    async (_order, webhookFirst) => {
      const events: InterlockEvent[] = [];
      const onEvent = (event: InterlockEvent) => void events.push(event);
      const keys = idempotency({ store: new MemoryStore(), principal: false, onEvent });
      let calls = 0;
      await start(
        { onEvent },
        {
          before: webhookFirst ? [] : [keys],
          after: webhookFirst ? [keys] : [],
          handler: async (ctx) => {
            calls++;
            ctx.respond = false;
            ctx.res.writeHead(200, { "content-type": "text/plain" });
            ctx.res.write("partial,");
            if (calls === 1) setTimeout(() => ctx.res.destroy(), 20);
            else ctx.res.end("done");
          },
        },
      );
      const d = await delivery('{"type":"x"}');
      const keyed = { headers: { ...d.headers, "idempotency-key": "k1" }, body: d.body };
      await post(keyed)
        .then((response) => response.text())
        .catch(() => {}); // the connection is reset
      await vi.waitFor(() =>
        expect(types(events)).toEqual(expect.arrayContaining(["webhook.handler_failed", "idempotency.released"])),
      );
      const again = await post(keyed);
      expect([again.status, await again.text()]).toEqual([200, "partial,done"]);
      await vi.waitFor(() => expect(types(events)).toContain("webhook.processed"));
      expect(calls).toBe(2);
      expect(types(events).filter((type) => type === "webhook.handler_failed")).toHaveLength(1);
      expect(events.filter((e) => e.type === "idempotency.released")).toMatchObject([{ reason: "error" }]);
    },
  );

  it.each([
    ["webhook() first", true],
    ["idempotency() first", false],
  ])(
    "with idempotency() on the route too (%s), a destroy after the app's end is passed on as it is: both recorded by that end",
    async (_order, webhookFirst) => {
      const events: InterlockEvent[] = [];
      const onEvent = (event: InterlockEvent) => void events.push(event);
      const keys = idempotency({ store: new MemoryStore(), principal: false, onEvent });
      let calls = 0;
      await start(
        { onEvent },
        {
          before: webhookFirst ? [] : [keys],
          after: webhookFirst ? [keys] : [],
          handler: async (ctx) => {
            calls++;
            ctx.respond = false;
            ctx.res.writeHead(202).end("raw");
            ctx.res.destroy();
          },
        },
      );
      const d = await delivery('{"type":"x"}');
      const keyed = { headers: { ...d.headers, "idempotency-key": "k1" }, body: d.body };
      await post(keyed)
        .then((response) => response.text())
        .catch(() => {}); // the end is held until stored: destroyed before it went out
      await vi.waitFor(() =>
        expect(types(events)).toEqual(expect.arrayContaining(["webhook.processed", "idempotency.completed"])),
      );
      const duplicate = await post(d);
      expect([duplicate.status, await duplicate.json()]).toMatchObject([200, { duplicate: true }]);
      expect(calls).toBe(1);
      expect(types(events)).not.toContain("webhook.handler_failed");
      expect(types(events)).not.toContain("idempotency.released");
    },
  );

  it("ctx.respond = false, and the provider leaves mid-body while the handler still writes, then ends it: claimed until that end, then released", async () => {
    let calls = 0;
    let ended = false;
    const seen = await start(
      {},
      {
        handler: async (ctx) => {
          calls++;
          ctx.respond = false;
          const res = ctx.res;
          res.writeHead(200, { "content-type": "text/plain" });
          if (calls > 1) {
            res.end("all");
            return;
          }
          res.write("one,");
          setTimeout(() => {
            res.write("two,");
            res.end("three");
            ended = true;
          }, 300);
        },
      },
    );
    const d = await delivery('{"type":"x"}');
    expect(await postAndLeave(d)).toBe(200);
    await sleep(50);
    const meanwhile = await post(d);
    expect(meanwhile.status).toBe(409);
    await vi.waitFor(() => expect(ended).toBe(true));
    await vi.waitFor(() => expect(types(seen.events)).toContain("webhook.handler_failed"));
    expect(types(seen.events)).not.toContain("webhook.processed");
    const redelivery = await post(d);
    expect([redelivery.status, await redelivery.text()]).toEqual([200, "all"]);
    expect(calls).toBe(2);
  });

  it.each([
    ["its 200's headers went out early", true],
    ["the handler wrote part of its answer", false],
  ])(
    "ctx.respond = false, and the provider leaves once %s, the handler never ending it: a redelivery is in flight until the lease lapses (lockTtlMs, not extendLease's maxMs), then runs",
    async (_when, headersOnly) => {
      let calls = 0;
      const seen = await start(
        // The lease is renewed every third of lockTtlMs while the handler runs; a provider that
        // leaves an answer the handler began stops that, settling nothing: the claim then lapses
        // between two thirds of lockTtlMs and lockTtlMs after the close.
        { lockTtlMs: 1_000, extendLease: { maxMs: 60_000 } },
        {
          handler: async (ctx) => {
            calls++;
            ctx.respond = false;
            const res = ctx.res;
            res.writeHead(200, { "content-type": "text/plain" });
            if (calls > 1) {
              res.end("all");
              return;
            }
            if (headersOnly) return void res.flushHeaders();
            res.write("one,");
            const timer = setInterval(() => res.write("more,"), 10);
            res.once("close", () => clearInterval(timer));
          },
        },
      );
      const d = await delivery('{"type":"x"}');
      const leaving = new AbortController();
      const first = fetch(`${served?.url}/webhooks`, {
        method: "POST",
        headers: d.headers,
        body: d.body as BodyInit,
        signal: leaving.signal,
      });
      await first; // the headers went out: the answer has begun
      leaving.abort();
      await sleep(50);
      expect((await post(d)).status).toBe(409);
      await sleep(1_500);
      const redelivery = await post(d);
      expect([redelivery.status, await redelivery.text()]).toEqual([200, "all"]);
      expect(calls).toBe(2);
      expect(types(seen.events)).not.toContain("webhook.handler_failed");
    },
  );

  it("ctx.respond = false, and the provider leaves before the handler sent anything, the handler then answering as it goes and never ending: the redelivery runs once the lease lapses", async () => {
    let calls = 0;
    const seen = await start(
      { lockTtlMs: 1_000, extendLease: { maxMs: 60_000 } },
      {
        handler: async (ctx) => {
          calls++;
          ctx.respond = false;
          const res = ctx.res;
          if (calls > 1) {
            res.writeHead(200, { "content-type": "text/plain" }).end("all");
            return;
          }
          // Begun only after the provider left, and never ended.
          setTimeout(() => res.writeHead(200, { "content-type": "text/plain" }).write("late,"), 200);
        },
      },
    );
    const d = await delivery('{"type":"x"}');
    const leaving = new AbortController();
    const first = fetch(`${served?.url}/webhooks`, {
      method: "POST",
      headers: d.headers,
      body: d.body as BodyInit,
      signal: leaving.signal,
    }).catch(() => undefined);
    await sleep(50);
    leaving.abort(); // nothing sent yet
    await first;
    await sleep(50);
    expect((await post(d)).status).toBe(409);
    await sleep(1_500);
    const redelivery = await post(d);
    expect([redelivery.status, await redelivery.text()]).toEqual([200, "all"]);
    expect(calls).toBe(2);
    expect(types(seen.events)).not.toContain("webhook.handler_failed");
  });

  it.each([
    ["at once", false],
    ["later", true],
  ])(
    "ctx.respond = false, and the app destroys the response after its end (%s): passed on as it is, the delivery recorded by that end",
    async (_when, later) => {
      let calls = 0;
      const seen = await start(
        {},
        {
          handler: async (ctx) => {
            calls++;
            ctx.respond = false;
            ctx.res.writeHead(202).end("raw");
            if (later) setTimeout(() => ctx.res.destroy(), 20);
            else ctx.res.destroy();
          },
        },
      );
      const d = await delivery('{"type":"x"}');
      await post(d)
        .then((response) => response.text())
        .catch(() => {});
      await vi.waitFor(() => expect(types(seen.events)).toContain("webhook.processed"));
      const duplicate = await post(d);
      expect([duplicate.status, await duplicate.json()]).toMatchObject([200, { duplicate: true }]);
      expect(types(seen.events)).not.toContain("webhook.handler_failed");
      expect(calls).toBe(1);
    },
  );

  it("a delivery cut off mid-body (the client went away) is 400 body_incomplete, reported; nothing runs, nothing is claimed", async () => {
    const errors: unknown[] = [];
    const seen = await start({}, { before: [watchErrors(errors)] });
    const d = await delivery('{"type":"x"}');
    await leaveMidBody(served!.url, "/webhooks", d.headers);
    await vi.waitFor(() => expect(seen.events.map((e) => e.type)).toContain("webhook.rejected"));
    expect(seen.events).toEqual([expect.objectContaining({ type: "webhook.rejected", code: "body_incomplete" })]);
    expect([seen.handled, errors]).toEqual([[], []]);
    const retried = await post(d);
    expect(retried.status).toBe(200);
  });

  it("reports verified and processed deliveries to onEvent", async () => {
    const seen = await start();
    const d = await delivery('{"type":"x"}');
    await post(d);
    expect(seen.events.map((e) => e.type)).toEqual(["webhook.verified", "webhook.processed"]);
  });
});
