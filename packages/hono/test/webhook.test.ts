/** The webhook middleware on its own: raw body capture, limits, `onError`, settling, typing. */
import { gzipSync } from "node:zlib";
import {
  InterlockConfigError,
  type InterlockEvent,
  MemoryStore,
  standardWebhooks,
  type VerifiedWebhook,
} from "@interlock/core";
import { unreachableStore } from "@interlock/core/testing";
import { rejectedTaggedThenUntagged } from "@interlock/test-harness/events";
import { Hono, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { cors } from "hono/cors";
import { HTTPException } from "hono/http-exception";
import { routePath } from "hono/route";
import { streamSSE } from "hono/streaming";
import { timeout } from "hono/timeout";
import { validator } from "hono/validator";
import { describe, expect, expectTypeOf, it, vi } from "vitest";
import { type WebhookMiddlewareOptions, type WebhookVariables, webhook } from "../src/index.js";
import { bytesOf, chunked, delivery, leaveMidBody, problemOf, SECRET, start, watchedApp } from "./helpers.js";

const options = (extra: Partial<WebhookMiddlewareOptions> = {}): WebhookMiddlewareOptions => ({
  scheme: standardWebhooks,
  secret: SECRET,
  store: new MemoryStore(),
  ...extra,
});

const post = (url: string, d: { headers: Record<string, string>; body: Uint8Array<ArrayBuffer> }, extra = {}) =>
  fetch(url, { method: "POST", headers: { "content-type": "application/json", ...d.headers }, body: d.body, ...extra });

// Unusual but valid JSON: spacing, key order, escapes and non-ASCII must all survive.
const ODD_JSON = '{ "z" : 1,\n\t"a":"caf\\u00e9 café 😀", "n": 1.50 }';

describe("raw body", () => {
  it("a gzip-encoded delivery → 415 unsupported_content_encoding, whichever bytes were signed", async () => {
    let ran = 0;
    const app = new Hono();
    app.post("/hook", webhook(options()), (c) => c.text(String(++ran)));
    const url = await start(app);
    const payload = new TextEncoder().encode('{"type":"invoice.paid"}');
    const compressed = new Uint8Array(gzipSync(payload));
    for (const signedBytes of [payload, compressed]) {
      const d = await delivery(signedBytes);
      const response = await post(
        `${url}/hook`,
        { headers: d.headers, body: compressed },
        {
          headers: { ...d.headers, "content-type": "application/json", "content-encoding": "gzip" },
        },
      );
      expect([response.status, (await problemOf(response)).code]).toEqual([415, "unsupported_content_encoding"]);
      expect(response.headers.get("accept-encoding")).toBe("identity");
    }
    expect(ran).toBe(0);
  });

  it("is verified byte for byte, and the route still parses the body whichever way it likes", async () => {
    // Mounted with app.use(), so the app's own type declares the variable.
    const app = new Hono<{ Variables: WebhookVariables }>();
    app.use("/hooks/*", webhook(options()));
    app.post("/hooks/json", async (c) => c.json({ parsed: await c.req.json(), event: c.get("webhook").text() }));
    app.post("/hooks/text", async (c) => c.json({ text: await c.req.text() }));
    app.post("/hooks/bytes", async (c) => c.body(new Uint8Array(await c.req.arrayBuffer())));
    app.post("/hooks/blob", async (c) => c.body(await (await c.req.blob()).arrayBuffer()));
    app.post(
      "/hooks/validator",
      validator("json", (value) => value as { a: string }),
      (c) => c.json({ a: c.req.valid("json").a }),
    );
    const url = await start(app);
    const d = () => delivery(ODD_JSON);

    const json = await post(`${url}/hooks/json`, await d());
    expect(await json.json()).toEqual({ parsed: JSON.parse(ODD_JSON), event: ODD_JSON });
    expect(await (await post(`${url}/hooks/text`, await d())).json()).toEqual({ text: ODD_JSON });
    const sent = await d();
    expect(await bytesOf(await post(`${url}/hooks/bytes`, sent))).toEqual(sent.body);
    const again = await d();
    expect(await bytesOf(await post(`${url}/hooks/blob`, again))).toEqual(again.body);
    expect(await (await post(`${url}/hooks/validator`, await d())).json()).toEqual({ a: "caf\u00e9 café 😀" });
  });

  it("keeps bodies that are not UTF-8 intact (invalid sequences, a byte-order mark, NULs)", async () => {
    const app = new Hono();
    app.post("/hook", webhook(options()), async (c) => {
      const event = c.get("webhook");
      const routeBytes = new Uint8Array(await c.req.arrayBuffer());
      return c.json({ event: [...event.body], route: [...routeBytes] });
    });
    const url = await start(app);
    const bytes = new Uint8Array([0xef, 0xbb, 0xbf, 0xff, 0xfe, 0x00, 0xc3, 0x28, 0x80, 0x7b, 0x7d]);
    const sent = await delivery(bytes);
    const response = await post(`${url}/hook`, sent, {
      headers: { ...sent.headers, "content-type": "application/octet-stream" },
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ event: [...bytes], route: [...bytes] });
  });

  it("reads a chunked body (no Content-Length) and hands the route the same bytes", async () => {
    const app = new Hono();
    app.post("/hook", webhook(options()), async (c) => c.json({ text: await c.req.text(), id: c.get("webhook").id }));
    const url = await start(app);
    const sent = await delivery(ODD_JSON);
    const response = await fetch(`${url}/hook`, { method: "POST", headers: sent.headers, ...chunked(sent.body) });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ text: ODD_JSON, id: sent.id });
  });

  it.each([
    ["c.req.json()", (c: { req: { json(): Promise<unknown> } }) => c.req.json()],
    ["c.req.text()", (c: { req: { text(): Promise<unknown> } }) => c.req.text()],
    ["c.req.raw.text()", (c: { req: { raw: Request } }) => c.req.raw.text()],
  ])("already consumed by %s → 500 body_not_raw with advice, not a 401", async (_name, consume) => {
    const app = new Hono();
    let ran = false;
    app.use("/hook", async (c, next) => {
      await consume(c as never);
      await next();
    });
    app.post("/hook", webhook(options()), (c) => {
      ran = true;
      return c.text("ok");
    });
    const response = await post(`${await start(app)}/hook`, await delivery('{"a":1}'));
    expect(response.status).toBe(500);
    const problem = await problemOf(response);
    expect(problem).toMatchObject({ code: "body_not_raw", status: 500, scheme: "standard-webhooks" });
    expect(problem.detail).toMatch(/before any middleware that reads the body/);
    expect(ran).toBe(false);
  });

  it("c.req.parseBody() before: a JSON delivery verifies; a form one too on Hono 4.13, 500 body_not_raw naming it on 4.8", async () => {
    const app = new Hono();
    app.use("/hook", async (c, next) => {
      await c.req.parseBody();
      await next();
    });
    app.post("/hook", webhook(options()), async (c) => c.json({ text: await c.req.text() }));
    const url = `${await start(app)}/hook`;
    // Not a form: parseBody() reads nothing, on either version.
    const json = await post(url, await delivery('{"a":1}'));
    expect([json.status, await json.json()]).toEqual([200, { text: '{"a":1}' }]);
    const form = await delivery("a=1&b=2");
    const formHeaders = { ...form.headers, "content-type": "application/x-www-form-urlencoded" };
    const answer = await post(url, form, { headers: formHeaders });
    if (routePath.length < 2) {
      // Hono 4.8 parses the form from the stream itself, and keeps only the form: the bytes are gone.
      expect(answer.status).toBe(500);
      const problem = await problemOf(answer);
      expect(problem.code).toBe("body_not_raw");
      expect(problem.detail).toMatch(/c\.req\.parseBody\(\) on Hono 4\.8/);
    } else expect([answer.status, await answer.json()]).toEqual([200, { text: "a=1&b=2" }]);
  });

  it("accepts a body an earlier middleware read as bytes (Hono caches them)", async () => {
    const app = new Hono();
    app.use("/hook", async (c, next) => {
      await c.req.arrayBuffer();
      await next();
    });
    app.post("/hook", webhook(options()), (c) => c.text("ok"));
    expect((await post(`${await start(app)}/hook`, await delivery('{"a":1}'))).status).toBe(200);
  });
});

/** `{"pad":"xxx…"}`, exactly `size` bytes. */
const jsonOfSize = (size: number) => `{"pad":"${"x".repeat(size - 10)}"}`;

describe("body limit", () => {
  const limited = async (extra: Partial<WebhookMiddlewareOptions>) => {
    const app = new Hono();
    let runs = 0;
    app.post("/hook", webhook(options(extra)), (c) => {
      runs++;
      return c.text("ok");
    });
    return { url: `${await start(app)}/hook`, runs: () => runs };
  };

  it("answers 413 body_too_large over `bodyLimit`, declared or chunked, without running the route", async () => {
    const events: InterlockEvent[] = [];
    const app = await limited({ maxBodyBytes: 64, onEvent: (event) => events.push(event) });
    const over = await delivery(jsonOfSize(65));
    const declared = await post(app.url, over);
    expect([declared.status, (await problemOf(declared)).code]).toEqual([413, "body_too_large"]);
    const streamed = await fetch(app.url, { method: "POST", headers: over.headers, ...chunked(over.body, 5) });
    expect([streamed.status, (await problemOf(streamed)).code]).toEqual([413, "body_too_large"]);
    const atLimit = await delivery(jsonOfSize(64));
    expect((await post(app.url, atLimit)).status).toBe(200);
    expect(app.runs()).toBe(1);
    // The adapter's own refusals are the receiver's, reported like every other.
    expect(events.filter((e) => e.type === "webhook.rejected")).toMatchObject([
      { code: "body_too_large" },
      { code: "body_too_large" },
    ]);
  });

  it("Hono's bodyLimit() before it answers its own 413 for a chunked delivery past its limit, not 400", async () => {
    const events: InterlockEvent[] = [];
    const app = new Hono();
    let runs = 0;
    app.post("/hook", bodyLimit({ maxSize: 64 }), webhook(options({ onEvent: (e) => events.push(e) })), (c) => {
      runs++;
      return c.text("ok");
    });
    const url = `${await start(app)}/hook`;
    const over = await delivery(jsonOfSize(65));
    const streamed = await fetch(url, { method: "POST", headers: over.headers, ...chunked(over.body, 5) });
    expect([streamed.status, await streamed.text(), runs]).toEqual([413, "Payload Too Large", 0]);
    expect(events.filter((e) => e.type === "webhook.rejected")).toEqual([]);
    const within = await delivery(jsonOfSize(64));
    const accepted = await fetch(url, { method: "POST", headers: within.headers, ...chunked(within.body, 5) });
    expect(accepted.status).toBe(200);
    expect(runs).toBe(1);
  });

  it("a delivery cut off mid-body (the client went away) is 400 body_incomplete, never an error for Hono", async () => {
    const events: InterlockEvent[] = [];
    const { app, statuses, errors } = watchedApp();
    let runs = 0;
    app.post("/hook", webhook(options({ onEvent: (event) => events.push(event) })), (c) => {
      runs++;
      return c.text("ok");
    });
    const url = await start(app);
    await leaveMidBody(url, "/hook", (await delivery("{}")).headers);
    await expect.poll(() => statuses, { timeout: 3000 }).toEqual([400]);
    expect([errors, runs]).toEqual([[], 0]);
    expect(events.map((e) => (e.type === "webhook.rejected" ? e.code : e.type))).toEqual(["body_incomplete"]);
  });

  it("the adapter's own 413 carries the request's correlation id (x-request-id), as core's refusals do", async () => {
    const events: InterlockEvent[] = [];
    const app = await limited({ maxBodyBytes: 64, onEvent: (event) => events.push(event) });
    const over = await delivery(jsonOfSize(65));
    const tagged = await post(app.url, { ...over, headers: { ...over.headers, "x-request-id": "req-413-hono" } });
    expect([tagged.status, (await problemOf(tagged)).code]).toEqual([413, "body_too_large"]);
    expect((await post(app.url, over)).status).toBe(413);
    expect(events.filter((e) => e.type === "webhook.rejected")).toEqual(
      rejectedTaggedThenUntagged("body_too_large", "req-413-hono", over.headers),
    );
  });

  it("refuses a limit that is not a positive number when the middleware is made", () => {
    for (const maxBodyBytes of [0, -1, Number.NaN]) {
      expect(() => webhook(options({ maxBodyBytes }))).toThrow(InterlockConfigError);
    }
  });

  it("defaults to the verifier's maxBodyBytes", async () => {
    const app = await limited({ maxBodyBytes: 32 });
    const response = await post(app.url, await delivery(jsonOfSize(33)));
    expect([response.status, (await problemOf(response)).code]).toEqual([413, "body_too_large"]);
    expect(app.runs()).toBe(0);
  });
});

describe("onError", () => {
  it("lets the app answer refusals and store outages itself, or fall back to Interlock's", async () => {
    const seen: string[] = [];
    const app = new Hono();
    const onError: WebhookMiddlewareOptions["onError"] = (decision, c) => {
      seen.push(`${decision.outcome}:${decision.error.code}:${decision.response.status}`);
      if (decision.error.code === "body_too_large") return undefined; // Interlock's 413 is fine
      return c.json({ rejected: decision.error.code }, 418 as never);
    };
    app.post("/hook", webhook(options({ onError, maxBodyBytes: 200 })), (c) => c.text("ok"));
    const url = `${await start(app)}/hook`;

    const tampered = await delivery('{"a":1}');
    const refused = await post(url, { ...tampered, body: new TextEncoder().encode('{"a":2}') });
    expect([refused.status, await refused.json()]).toEqual([418, { rejected: "no_matching_signature" }]);

    const tooLarge = await post(url, await delivery(`"${"x".repeat(300)}"`));
    expect([tooLarge.status, (await problemOf(tooLarge)).code]).toEqual([413, "body_too_large"]);

    expect(seen).toEqual(["rejected:no_matching_signature:401", "rejected:body_too_large:413"]);
  });

  it("a duplicate is not an error: it gets core's 200 and onError is not called", async () => {
    const outcomes: string[] = [];
    const app = new Hono();
    const onError: WebhookMiddlewareOptions["onError"] = (decision, c) => {
      outcomes.push(decision.outcome);
      return c.json({ mine: true }, 418 as never);
    };
    app.post("/hook", webhook(options({ onError })), (c) => c.text("ok"));
    const url = `${await start(app)}/hook`;
    const once = await delivery('{"a":1}');
    expect((await post(url, once)).status).toBe(200);
    const duplicate = await post(url, once);
    expect([duplicate.status, await duplicate.json()]).toEqual([200, { duplicate: true, id: once.id }]);
    expect(outcomes).toEqual([]);
  });

  it("sees an unreachable store as store_unavailable, with Interlock's 503 to fall back on", async () => {
    const seen: unknown[] = [];
    const app = new Hono();
    const onError: WebhookMiddlewareOptions["onError"] = (decision, c) => {
      seen.push([decision.outcome, decision.error.code, decision.response.status, decision.event?.id]);
      return c.text("try later", 503, { "retry-after": "30" });
    };
    app.post("/hook", webhook(options({ onError, store: unreachableStore() })), (c) => c.text("ok"));
    const d = await delivery('{"a":1}');
    const response = await post(`${await start(app)}/hook`, d);
    expect([response.status, response.headers.get("retry-after"), await response.text()]).toEqual([
      503,
      "30",
      "try later",
    ]);
    expect(seen).toEqual([["store_unavailable", "store_unavailable", 503, d.id]]);
  });
});

describe("settling the delivery", () => {
  it("the same webhook() mounted app-wide and again on the route: processed once, recorded, then a duplicate", async () => {
    const app = new Hono();
    const events: InterlockEvent[] = [];
    const hook = webhook(options({ onEvent: (event) => events.push(event) }));
    let runs = 0;
    app.use("/hook", hook);
    app.post("/hook", hook, (c) => c.json({ run: ++runs }));
    const url = `${await start(app)}/hook`;
    const d = await delivery('{"a":1}');
    const first = await post(url, d);
    expect([first.status, await first.json()]).toEqual([200, { run: 1 }]);
    expect(await (await post(url, d)).json()).toEqual({ duplicate: true, id: d.id });
    expect(runs).toBe(1);
    expect(events.map((e) => e.type)).toEqual([
      "webhook.verified",
      "webhook.processed",
      "webhook.verified",
      "webhook.duplicate",
    ]);
  });

  it("a timeout mounted before ours answers the provider while the route runs: the route's 2xx records the delivery, the redelivery is a duplicate", async () => {
    const app = new Hono();
    let runs = 0;
    const events: InterlockEvent[] = [];
    app.post("/hook", timeout(50), webhook(options({ onEvent: (event) => events.push(event) })), async (c) => {
      await new Promise((resolve) => setTimeout(resolve, 150));
      runs++;
      return c.json({ ok: true });
    });
    const url = `${await start(app)}/hook`;
    const d = await delivery('{"a":1}');
    expect((await post(url, d)).status).toBe(504);
    await vi.waitFor(() => expect(events.map((e) => e.type)).toContain("webhook.processed"));
    expect(await (await post(url, d)).json()).toEqual({ duplicate: true, id: d.id });
    expect(runs).toBe(1);
  });

  it("a 2xx Response whose body was already read cannot be sent: a TypeError (Hono's 500), the delivery released, the redelivery runs", async () => {
    const app = new Hono();
    let runs = 0;
    app.post("/hook", webhook(options()), async () => {
      runs++;
      const answer = new Response("done", { status: 200, headers: { "content-type": "text/plain" } });
      if (runs === 1) await answer.text(); // read by the route (a logger) before it returned it
      return answer;
    });
    const url = `${await start(app)}/hook`;
    const d = await delivery('{"a":1}');
    expect((await post(url, d)).status).toBe(500);
    const redelivery = await post(url, d);
    expect([redelivery.status, await redelivery.text()]).toEqual([200, "done"]);
    expect(runs).toBe(2);
  });

  it("records a 2xx answer; releases any other status and a throw, so the redelivery runs", async () => {
    const app = new Hono();
    const answers = [503, "throw", 200];
    let runs = 0;
    app.post("/hook", webhook(options()), (c) => {
      runs++;
      const next = answers.shift();
      if (next === "throw") throw new HTTPException(502, { message: "upstream" });
      return c.text("done", next as 200);
    });
    const url = `${await start(app)}/hook`;
    const d = await delivery('{"a":1}');
    expect((await post(url, d)).status).toBe(503);
    expect((await post(url, d)).status).toBe(502);
    expect((await post(url, d)).status).toBe(200);
    expect(await (await post(url, d)).json()).toEqual({ duplicate: true, id: d.id });
    expect(runs).toBe(3);
  });

  it("cors() before: a throw answered 200 by onError releases the delivery, the redelivery runs", async () => {
    let runs = 0;
    const app = new Hono();
    app.use(cors()); // reads c.res before next(): every answer set after it is wrapped anew
    app.onError((_error, c) => c.json({ received: false }, 200));
    app.post("/hook", webhook(options()), () => {
      runs++;
      throw new Error("down");
    });
    const d = await delivery('{"a":1}');
    const hook = () =>
      app.request("/hook", { method: "POST", headers: { ...d.headers, origin: "https://a.example" }, body: d.body });
    expect(await (await hook()).json()).toEqual({ received: false });
    expect(await (await hook()).json()).toEqual({ received: false }); // not a duplicate
    expect(runs).toBe(2);
  });

  it("a payload its scheme cannot decode, read by the route: app.onError sees the error, its answer is replaced by 400 payload_not_decodable problem+json, the headers prepared kept; released", async () => {
    const events: InterlockEvent[] = [];
    const seen: string[] = [];
    let runs = 0;
    const app = new Hono();
    app.use(async (c, next) => {
      c.header("x-request-id", "req_1");
      await next();
    });
    app.onError((error, c) => {
      seen.push(error.name);
      // Headers of its own body, as a middleware between webhook() and the route (compress(), etag()) sets them.
      return c.json({ error: "handler failed" }, 500, {
        "content-length": "28",
        "content-encoding": "gzip",
        etag: '"e1"',
        "last-modified": "Mon, 07 Dec 2026 00:00:00 GMT",
      });
    });
    app.post("/hook", webhook(options({ onEvent: (event) => events.push(event) })), (c) => {
      runs++;
      return c.json(c.get("webhook").payload);
    });
    const url = `${await start(app)}/hook`;
    const d = await delivery("not json {");
    for (let attempt = 0; attempt < 2; attempt++) {
      const response = await post(url, d);
      expect([response.status, response.headers.get("x-request-id")]).toEqual([400, "req_1"]);
      const about = ["content-encoding", "etag", "last-modified"].map((name) => response.headers.get(name));
      expect(about).toEqual([null, null, null]);
      expect(await problemOf(response)).toMatchObject({ code: "payload_not_decodable", scheme: "standard-webhooks" });
    }
    // Released as the route's answer outside 2xx: the redelivery ran the route again.
    expect([runs, seen]).toEqual([2, ["WebhookPayloadError", "WebhookPayloadError"]]);
    const failed = events.flatMap((event) => (event.type === "webhook.handler_failed" ? [event.status] : []));
    expect(failed).toEqual([400, 400]);
  });

  it("a payload its scheme cannot decode, rethrown by app.onError through next(), is 400 payload_not_decodable too, not the server's 500", async () => {
    const app = new Hono();
    let runs = 0;
    app.post("/hook", webhook(options()), (c) => {
      runs++;
      return c.json(c.get("webhook").payload);
    });
    app.onError((error) => {
      throw error;
    });
    const url = `${await start(app)}/hook`;
    const d = await delivery("not json {");
    for (let attempt = 0; attempt < 2; attempt++) {
      const response = await post(url, d);
      expect([response.status, (await problemOf(response)).code]).toEqual([400, "payload_not_decodable"]);
    }
    expect(runs).toBe(2);
  });

  it("a throw that passes through next() (an app.onError that rethrows it) releases the delivery: the redelivery runs", async () => {
    const app = new Hono();
    let runs = 0;
    app.post("/hook", webhook(options()), (c) => {
      if (++runs === 1) throw new Error("boom");
      return c.json({ run: runs });
    });
    // Rethrown, the error leaves Hono's chain through every middleware's next(), up to the server (a 500).
    app.onError((error) => {
      throw error;
    });
    const url = `${await start(app)}/hook`;
    const d = await delivery('{"a":1}');
    expect((await post(url, d)).status).toBe(500);
    const redelivery = await post(url, d);
    expect([redelivery.status, await redelivery.json()]).toEqual([200, { run: 2 }]);
  });

  it("a 2xx c.body(stream) whose work fails is released once it fails, not recorded when the route returns: the redelivery runs", async () => {
    const app = new Hono();
    let runs = 0;
    let fail: () => void = () => {};
    app.post("/hook", webhook(options()), (c) =>
      c.body(
        new ReadableStream<Uint8Array>({
          start(controller) {
            runs++;
            controller.enqueue(new TextEncoder().encode("processing...\n"));
            fail = () => controller.error(new Error("db down")); // the work behind the body fails later
          },
        }),
        200,
      ),
    );
    const d = await delivery('{"a":1}');
    const hook = () => app.request("/hook", { method: "POST", headers: d.headers, body: d.body });
    const first = await hook();
    expect(first.status).toBe(200);
    expect((await hook()).status).toBe(409); // still being processed: in flight, not a duplicate
    const reading = first.text();
    fail();
    await expect(reading).rejects.toThrow("db down");
    const redelivery = await hook();
    expect([redelivery.status, runs]).toEqual([200, 2]);
    await redelivery.body?.cancel();
  });

  it("a 2xx streamSSE() is recorded once its stream ends: a redelivery meanwhile is 409, then a duplicate", async () => {
    const app = new Hono();
    let done: () => void = () => {};
    app.post("/hook", webhook(options()), (c) =>
      streamSSE(c, async (s) => {
        await s.writeSSE({ data: "started" });
        await new Promise<void>((resolve) => (done = resolve));
        await s.writeSSE({ data: "done" });
      }),
    );
    const url = `${await start(app)}/hook`;
    const d = await delivery('{"a":1}');
    const first = await post(url, d);
    const reading = first.text();
    const meanwhile = await post(url, d);
    await meanwhile.body?.cancel(); // before the check: a second run's stream would never end
    expect(meanwhile.status).toBe(409);
    done();
    expect(await reading).toContain("data: done");
    expect(await (await post(url, d)).json()).toEqual({ duplicate: true, id: d.id });
  });

  it("releases a delivery the route leaves unanswered (Hono's 500): the redelivery runs", async () => {
    const app = new Hono();
    let checks = 0;
    let runs = 0;
    // A guard that, the first time, forgets to return its answer (and so neither answers nor calls next).
    const guard: MiddlewareHandler = async (c, next) => {
      if (++checks === 1) {
        c.text("busy", 503);
        return;
      }
      await next();
    };
    app.post("/hook", webhook(options()), guard, (c) => c.json({ run: ++runs }));
    app.onError((_error, c) => c.json({ error: "failed" }, 500));
    const url = `${await start(app)}/hook`;
    const d = await delivery('{"a":1}');
    expect((await post(url, d)).status).toBe(500);
    const redelivery = await post(url, d);
    expect([redelivery.status, await redelivery.json()]).toEqual([200, { run: 1 }]);
  });
});

describe("typing", () => {
  it("puts the verified delivery on the context, typed", async () => {
    interface Invoice {
      type: "invoice.paid";
      amount: number;
    }
    const app = new Hono();
    app.post("/hook", webhook<Invoice>(options()), (c) => {
      expectTypeOf(c.get("webhook")).toEqualTypeOf<VerifiedWebhook<Invoice>>();
      expectTypeOf(c.var.webhook.payload.amount).toEqualTypeOf<number>();
      return c.json({ amount: c.var.webhook.payload.amount });
    });
    const response = await post(`${await start(app)}/hook`, await delivery('{"type":"invoice.paid","amount":42}'));
    expect(await response.json()).toEqual({ amount: 42 });
  });
});
