/** The idempotency middleware on its own: response capture, streams, body reading, scoping, failures. */
import { connect } from "node:net";
import { type IdempotencyEvent, type InterlockEvent, MemoryStore } from "@interlock/core";
import { unreachableStore } from "@interlock/core/testing";
import { type Context, Hono, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { cors } from "hono/cors";
import { HTTPException } from "hono/http-exception";
import { stream, streamSSE, streamText } from "hono/streaming";
import { timeout } from "hono/timeout";
import { describe, expect, it, vi } from "vitest";
import { type IdempotencyMiddlewareOptions, idempotency } from "../src/index.js";
import { bytesOf, chunked, leaveMidBody, problemOf, start, uniqueId, watchedApp } from "./helpers.js";

const options = (events: InterlockEvent[] = [], extra: Partial<IdempotencyMiddlewareOptions> = {}) =>
  ({
    store: new MemoryStore(),
    principal: (request) => request.context.req.header("x-api-key"),
    onEvent: (event) => events.push(event),
    ...extra,
  }) satisfies IdempotencyMiddlewareOptions;

const send = (
  url: string,
  key: string | undefined,
  body: BodyInit | null = "{}",
  headers: Record<string, string> = {},
) =>
  fetch(url, {
    method: "POST",
    headers: { "x-api-key": "client-a", ...(key ? { "idempotency-key": key } : {}), ...headers },
    body,
  });

const released = (events: InterlockEvent[]) =>
  events.flatMap((e) =>
    e.type === "idempotency.released" ? [(e as Extract<IdempotencyEvent, { reason: unknown }>).reason] : [],
  );

const BINARY = new Uint8Array([0x00, 0xff, 0xfe, 0xc3, 0x28, 0xef, 0xbb, 0xbf, 0x80, 0x7f]);

describe("response capture", () => {
  it("the answer leaves only once the store has it: a retry sent the moment it arrives is replayed, even with a slow store", async () => {
    /** A store whose writes take a while, as a remote one's do. */
    class SlowStore extends MemoryStore {
      override async complete(...args: Parameters<MemoryStore["complete"]>) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        return super.complete(...args);
      }
    }
    const app = new Hono();
    let runs = 0;
    app.post("/pay", idempotency(options([], { store: new SlowStore() })), (c) => c.json({ run: ++runs }, 201));
    const url = `${await start(app)}/pay`;
    const key = uniqueId("key");
    for (let i = 0; i < 3; i++) expect((await send(url, key)).status).toBe(201);
    expect(runs).toBe(1);
  });

  // Every way a Hono route answers in one piece: each first answer is stored and replayed byte for byte.
  const answers: Record<string, (c: Context) => Response | Promise<Response>> = {
    json: (c) => c.json({ id: "pay_1", note: "café 😀" }, 201, { location: "/payments/pay_1" }),
    text: (c) => c.text("plain text, ünïcödé", 200),
    html: (c) => c.html("<p>paid</p>", 202),
    "body(Uint8Array)": (c) => c.body(BINARY, 201, { "content-type": "application/octet-stream" }),
    "body(ArrayBuffer)": (c) => c.body(BINARY.slice().buffer, 200, { "content-type": "application/octet-stream" }),
    "new Response(bytes)": () => new Response(BINARY, { status: 201, headers: { "content-type": "image/png" } }),
    "new Response(string)": () => new Response("made by hand", { status: 200, headers: { etag: '"v1"' } }),
    "new Response(Blob)": () => new Response(new Blob([BINARY], { type: "application/pdf" })),
    "204 without a body": (c) => c.body(null, 204),
    // Hono's writers are arrow functions: a route may take them off the context.
    "json, called detached": (c) => {
      const { json } = c;
      return json({ id: "pay_1" }, 201, { location: "/payments/pay_1" });
    },
    "body, called detached": (c) => {
      const { body } = c;
      return body(BINARY, 201, { "content-type": "application/octet-stream" });
    },
    "text, called detached": (c) => {
      const { text } = c;
      return text("plain text", 200);
    },
    "a finite stream in a hand-made Response (read to its end)": () =>
      new Response(
        new ReadableStream({
          start(controller) {
            controller.enqueue(new TextEncoder().encode("part one, "));
            controller.enqueue(new TextEncoder().encode("part two"));
            controller.close();
          },
        }),
      ),
  };

  it("a replay carries every value of a header the answer repeated, and the headers an earlier middleware set", async () => {
    const app = new Hono();
    let runs = 0;
    app.use("/pay", async (c, next) => {
      c.header("x-request-id", "req-1"); // an earlier middleware's own header, on every answer
      await next();
    });
    app.post("/pay", idempotency(options([], { replayHeaders: ["content-type", "link"] })), (c) => {
      runs++;
      c.header("link", "</a>; rel=next");
      c.header("link", "</b>; rel=prev", { append: true });
      return c.json({ ok: true }, 201);
    });
    const url = `${await start(app)}/pay`;
    const key = uniqueId("key");
    const first = await send(url, key);
    await first.arrayBuffer();
    const replay = await send(url, key);
    expect([replay.status, replay.headers.get("idempotent-replayed"), await replay.json()]).toEqual([
      201,
      "true",
      { ok: true },
    ]);
    expect(replay.headers.get("link")).toBe("</a>; rel=next, </b>; rel=prev");
    expect(replay.headers.get("content-type")).toBe("application/json");
    expect(replay.headers.get("x-request-id")).toBe("req-1");
    expect(runs).toBe(1);
  });

  it.each(Object.entries(answers))(
    "%s → stored; the replay has the same status, headers and bytes",
    async (_n, answer) => {
      const app = new Hono();
      let runs = 0;
      app.post("/pay", idempotency(options()), (c) => {
        runs++;
        return answer(c);
      });
      const url = `${await start(app)}/pay`;
      const key = uniqueId("key");
      const first = await send(url, key);
      const firstBytes = await bytesOf(first);
      const replay = await send(url, key);
      expect(replay.headers.get("idempotent-replayed")).toBe("true");
      expect(replay.status).toBe(first.status);
      expect(await bytesOf(replay)).toEqual(firstBytes);
      for (const name of ["content-type", "location", "etag"]) {
        expect(replay.headers.get(name)).toBe(first.headers.get(name));
      }
      expect(runs).toBe(1);
    },
  );

  it.each([
    // Given in one piece, the engine sees its size; a recorded stream is given up on at the
    // limit: too large either way (a stream given to the context is not recorded: streamed).
    ["c.text() past the record limit", (c: Context) => c.text("x".repeat(2048))],
    [
      "a hand-made Response(stream) past the record limit",
      () =>
        new Response(
          new ReadableStream({
            start(controller) {
              for (let i = 0; i < 4; i++) controller.enqueue(new TextEncoder().encode("x".repeat(512)));
              controller.close();
            },
          }),
        ),
    ],
  ])("%s → passed through whole, uncached, the key released as too_large", async (_name, answer) => {
    const events: InterlockEvent[] = [];
    const app = new Hono();
    let runs = 0;
    const store = new MemoryStore({ maxRecordBytes: 1024 });
    app.post("/big", idempotency(options(events, { store })), (c) => {
      runs++;
      return answer(c);
    });
    const url = `${await start(app)}/big`;
    const key = uniqueId("key");
    for (const _ of [1, 2]) {
      const response = await send(url, key);
      expect([(await response.text()).length, response.headers.get("idempotent-replayed")]).toEqual([2048, null]);
    }
    expect(runs).toBe(2);
    expect(released(events)).toEqual(["too_large", "too_large"]);
  });

  it("puts no new closure on the context: every request's writers are bound functions (a closure per request costs V8 13+ several µs)", async () => {
    const app = new Hono();
    const writers: string[] = [];
    app.post("/pay", idempotency(options()), (c) => {
      writers.push(...[c.body, c.newResponse, c.text, c.html, c.json].map((writer) => String(writer)));
      return c.json({ ok: true }, 201);
    });
    const url = `${await start(app)}/pay`;
    for (const key of [uniqueId("key"), uniqueId("key")]) expect((await send(url, key)).status).toBe(201);
    expect(writers).toHaveLength(10);
    // A bound function prints as native code; a closure prints its source.
    for (const writer of writers) expect(writer).toMatch(/\[native code\]/);
  });

  it("never replays Set-Cookie", async () => {
    const app = new Hono();
    app.post("/pay", idempotency(options()), (c) => c.json({ ok: true }, 201, { "set-cookie": "session=abc" }));
    const url = `${await start(app)}/pay`;
    const key = uniqueId("key");
    expect((await send(url, key)).headers.get("set-cookie")).toBe("session=abc");
    expect((await send(url, key)).headers.get("set-cookie")).toBeNull();
  });
});

describe("streamed responses", () => {
  it("reach the client as they are written, are not stored, and release the key", async () => {
    const events: InterlockEvent[] = [];
    const app = new Hono();
    let runs = 0;
    let firstChunkSeen: () => void = () => {};
    app.post("/stream", idempotency(options(events)), (c) => {
      runs++;
      const seen = new Promise<void>((resolve) => {
        firstChunkSeen = resolve;
      });
      return streamText(c, async (s) => {
        await s.write("first;");
        await seen; // only once the client has it: a buffering middleware would deadlock here
        await s.write("second");
      });
    });
    const url = `${await start(app)}/stream`;
    const key = uniqueId("key");
    const read = async () => {
      const response = await send(url, key);
      const reader = (response.body as ReadableStream<Uint8Array>).getReader();
      const decoder = new TextDecoder();
      let text = "";
      while (!text.includes("first;")) text += decoder.decode((await reader.read()).value, { stream: true });
      firstChunkSeen();
      for (let r = await reader.read(); !r.done; r = await reader.read())
        text += decoder.decode(r.value, { stream: true });
      return { text, replayed: response.headers.get("idempotent-replayed") };
    };
    expect(await read()).toEqual({ text: "first;second", replayed: null });
    expect(await read()).toEqual({ text: "first;second", replayed: null });
    expect(runs).toBe(2);
    expect(released(events)).toEqual(["streamed", "streamed"]);
  });

  it("an answer whose client stops reading after its first chunk is stored whole, not cut short", async () => {
    const app = new Hono();
    let runs = 0;
    app.post("/pay", idempotency(options()), () => {
      runs++;
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          for (const part of ["hel", "lo", "!"]) controller.enqueue(new TextEncoder().encode(part));
          controller.close();
        },
      });
      return new Response(body, { status: 201, headers: { "content-type": "text/plain" } });
    });
    const pay = () =>
      app.request("/pay", { method: "POST", headers: { "x-api-key": "a", "idempotency-key": "k" }, body: "{}" });
    const reader = ((await pay()).body as ReadableStream<Uint8Array>).getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe("hel");
    await reader.cancel(); // the client went away: the rest was ready, so the answer is stored
    const retry = await pay();
    expect([retry.status, retry.headers.get("idempotent-replayed"), await retry.text(), runs]).toEqual([
      201,
      "true",
      "hello!",
      1,
    ]);
  });

  // A Response the route builds itself around a stream it writes as it goes (Server-Sent Events
  // by hand, a proxied upstream): its chunks must reach the client as they come.
  const liveResponse = (parts: { first: string; rest?: string; written: () => Promise<void> }) =>
    new Response(
      new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(new TextEncoder().encode(parts.first));
          await parts.written(); // only once the client has it: a middleware reading to the end would deadlock
          if (parts.rest === undefined) return; // never ends
          controller.enqueue(new TextEncoder().encode(parts.rest));
          controller.close();
        },
      }),
      { status: 201, headers: { "content-type": "text/plain" } },
    );

  /** Reads a response until `text` has come, then calls `seen`; resolves to everything read. */
  async function readPast(response: Response, text: string, seen: () => void): Promise<string> {
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let read = "";
    while (!read.includes(text)) read += decoder.decode((await reader.read()).value, { stream: true });
    seen();
    for (let r = await reader.read(); !r.done; r = await reader.read())
      read += decoder.decode(r.value, { stream: true });
    return read;
  }

  it("a hand-made Response streams to the client as it is written, and is stored once it ends", async () => {
    const app = new Hono();
    let runs = 0;
    let clientHasFirst: () => void = () => {};
    app.post("/live", idempotency(options()), () => {
      runs++;
      const written = new Promise<void>((resolve) => {
        clientHasFirst = resolve;
      });
      return liveResponse({ first: "first;", rest: "second", written: () => written });
    });
    const url = `${await start(app)}/live`;
    const key = uniqueId("key");
    const first = await send(url, key);
    expect([first.status, await readPast(first, "first;", () => clientHasFirst())]).toEqual([201, "first;second"]);
    const replay = await send(url, key);
    expect([replay.status, replay.headers.get("idempotent-replayed"), await replay.text()]).toEqual([
      201,
      "true",
      "first;second",
    ]);
    expect(runs).toBe(1);
  });

  it("a hand-made Response that never ends releases its key when the client goes away", async () => {
    const events: InterlockEvent[] = [];
    const app = new Hono();
    let runs = 0;
    app.post("/ticks", idempotency(options(events)), () => {
      runs++;
      return liveResponse({ first: "tick;", written: () => new Promise(() => {}) });
    });
    const url = `${await start(app)}/ticks`;
    const key = uniqueId("key");
    const leave = new AbortController();
    const response = await fetch(url, {
      method: "POST",
      headers: { "x-api-key": "client-a", "idempotency-key": key },
      body: "{}",
      signal: leave.signal,
    });
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe("tick;");
    leave.abort();
    await expect.poll(() => released(events), { timeout: 5000 }).toEqual(["streamed"]);
    // The key is free at once, not held until its lease runs out: the retry runs.
    const retry = await send(url, key);
    expect(retry.status).toBe(201);
    await retry.body?.cancel();
    expect(runs).toBe(2);
  });

  it("a hand-made Response finished after its client went away is still stored: the retry is a replay", async () => {
    const events: InterlockEvent[] = [];
    const app = new Hono();
    let runs = 0;
    let handlerStarted: () => void = () => {};
    const started = new Promise<void>((resolve) => (handlerStarted = resolve));
    let clientGone: () => void = () => {};
    const gone = new Promise<void>((resolve) => (clientGone = resolve));
    app.post("/late", idempotency(options(events)), async () => {
      runs++;
      handlerStarted();
      await gone;
      return new Response("charged", { status: 201, headers: { "content-type": "text/plain" } });
    });
    const url = await start(app);
    const key = uniqueId("key");
    const socket = connect(Number(new URL(url).port), "127.0.0.1");
    socket.write(
      `POST /late HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: client-a\r\nidempotency-key: ${key}\r\n` +
        "content-length: 2\r\n\r\n{}",
    );
    await started;
    socket.destroy(); // the client gives up while the payment is being made
    await new Promise((resolve) => setTimeout(resolve, 50));
    clientGone();
    const settled = (e: InterlockEvent) => e.type === "idempotency.completed" || e.type === "idempotency.released";
    await expect.poll(() => events.filter(settled).map((e) => e.type), { timeout: 5000 }).toHaveLength(1);
    const retry = await send(`${url}/late`, key);
    expect([retry.status, retry.headers.get("idempotent-replayed"), await retry.text()]).toEqual([
      201,
      "true",
      "charged",
    ]);
    expect(runs).toBe(1);
  });

  it.each([
    [
      "stream()",
      (c: Context, work: () => Promise<string>) => stream(c, async (s) => void (await s.write(await work()))),
    ],
    [
      "streamSSE()",
      (c: Context, work: () => Promise<string>) => streamSSE(c, async (s) => s.writeSSE({ data: await work() })),
    ],
    [
      "c.body(ReadableStream)",
      (c: Context, work: () => Promise<string>) =>
        c.body(
          new ReadableStream<Uint8Array>({
            async start(controller) {
              controller.enqueue(new TextEncoder().encode(await work()));
              controller.close();
            },
          }),
        ),
    ],
  ])(
    "%s keeps its key in flight until the stream ends: a retry meanwhile is a 409, never a second run",
    async (_name, answer) => {
      const events: InterlockEvent[] = [];
      const app = new Hono();
      let runs = 0;
      let finishWork: () => void = () => {};
      let workStarted: () => void = () => {};
      const started = new Promise<void>((resolve) => (workStarted = resolve));
      app.post("/charge", idempotency(options(events)), (c) =>
        // The work runs in the stream's callback, after the route has returned its Response.
        answer(c, async () => {
          const run = ++runs;
          workStarted();
          await new Promise<void>((resolve) => (finishWork = resolve));
          return `charged ${run}`;
        }),
      );
      const charge = () =>
        app.request("/charge", { method: "POST", headers: { "x-api-key": "a", "idempotency-key": "k" }, body: "{}" });
      const first = await charge();
      await started;
      const retry = await charge();
      expect(retry.status).toBe(409); // before reading it: a second run's body would wait on that run
      expect((await problemOf(retry)).code).toBe("request_in_flight");
      expect(released(events)).toEqual([]);
      finishWork();
      expect(await first.text()).toContain("charged 1");
      // Released once the stream is over, before its end reached the client: the next retry runs.
      expect(released(events)).toEqual(["streamed"]);
      const after = await charge();
      await expect.poll(() => runs).toBe(2);
      finishWork();
      expect([after.status, after.headers.get("idempotent-replayed"), await after.text()]).toEqual([
        200,
        null,
        expect.stringContaining("charged 2"),
      ]);
      expect(runs).toBe(2);
    },
  );

  it("a stream given to the context that fails, or that its client cancels, releases its key", async () => {
    const events: InterlockEvent[] = [];
    const app = new Hono();
    let runs = 0;
    app.post("/fail", idempotency(options(events)), (c) => {
      runs++;
      return c.body(
        new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(new TextEncoder().encode("partial"));
            setTimeout(() => controller.error(new Error("upstream went away")), 20);
          },
        }),
      );
    });
    app.post("/ticks", idempotency(options(events)), (c) =>
      streamSSE(c, async (s) => {
        runs++;
        while (!s.aborted) await s.writeSSE({ data: "tick" });
      }),
    );
    const post = (path: string) =>
      app.request(path, { method: "POST", headers: { "x-api-key": "a", "idempotency-key": "k" }, body: "{}" });
    await expect((await post("/fail")).text()).rejects.toThrow("upstream went away");
    expect(released(events)).toEqual(["streamed"]);
    expect((await post("/fail")).status).toBe(200); // runs again
    const ticks = await post("/ticks");
    const reader = (ticks.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    expect((await post("/ticks")).status).toBe(409);
    await reader.cancel();
    expect(released(events)).toEqual(["streamed", "streamed"]);
    const again = await post("/ticks");
    expect(again.status).toBe(200);
    await again.body?.cancel();
    expect(runs).toBe(4);
  });

  it.each([
    ["c.body(ReadableStream)", (c: Context) => c.body(new Blob(["raw stream"]).stream())],
    [
      "stream()",
      (c: Context) =>
        stream(c, async (s) => {
          await s.write("bytes");
        }),
    ],
    ["streamSSE()", (c: Context) => streamSSE(c, async (s) => s.writeSSE({ data: "tick" }))],
  ])("%s passes through uncached", async (_name, answer) => {
    const events: InterlockEvent[] = [];
    const app = new Hono();
    app.post("/stream", idempotency(options(events)), answer);
    const url = `${await start(app)}/stream`;
    const key = uniqueId("key");
    const first = await (await send(url, key)).text();
    expect(first.length).toBeGreaterThan(0);
    const again = await send(url, key);
    expect(again.headers.get("idempotent-replayed")).toBeNull();
    expect(await again.text()).toBe(first);
    expect(released(events)).toEqual(["streamed", "streamed"]);
  });
});

describe("request body", () => {
  it("fingerprints the raw bytes: one changed byte is a 422, even where UTF-8 decoding would hide it", async () => {
    const app = new Hono();
    app.post("/upload", idempotency(options()), async (c) =>
      c.json({ size: (await c.req.arrayBuffer()).byteLength }, 201),
    );
    const url = `${await start(app)}/upload`;
    const key = uniqueId("key");
    expect((await send(url, key, BINARY)).status).toBe(201);
    const same = await send(url, key, BINARY.slice());
    expect([same.status, same.headers.get("idempotent-replayed")]).toEqual([201, "true"]);
    const other = BINARY.slice();
    other[1] = 0xfd; // 0xff and 0xfd both decode to U+FFFD
    const changed = await send(url, key, other);
    expect([changed.status, (await problemOf(changed)).code]).toEqual([422, "idempotency_key_mismatch"]);
  });

  it("reads the body only when the engine needs it: without a key the route gets c.req.raw untouched", async () => {
    const app = new Hono();
    // A route that streams the request body on, as a proxy does: it needs the untouched stream.
    app.post("/proxy", idempotency(options()), async (c) => {
      const upstream = new Response(c.req.raw.body);
      return c.body(await upstream.arrayBuffer(), 201);
    });
    const url = `${await start(app)}/proxy`;
    const bytes = new TextEncoder().encode("streamed upload");
    const withoutKey = await fetch(url, { method: "POST", headers: { "x-api-key": "a" }, ...chunked(bytes) });
    expect([withoutKey.status, await withoutKey.text()]).toEqual([201, "streamed upload"]);
  });

  it("with a key, the route reads the same bytes through c.req (framed by Content-Length or chunked)", async () => {
    const app = new Hono();
    app.post("/bytes", idempotency(options()), async (c) => c.body(await c.req.arrayBuffer(), 201));
    app.post("/text", idempotency(options()), async (c) => c.text(await c.req.text(), 201));
    const url = await start(app);
    // Invalid UTF-8 and a byte-order mark: the bytes stay bytes, the text decodes as Response.text() would.
    const bytes = new Uint8Array([0xef, 0xbb, 0xbf, 0x61, 0xff, 0x62, 0xc3, 0xa9]);
    for (const framing of [{ body: bytes }, chunked(bytes)]) {
      const raw = await fetch(`${url}/bytes`, {
        method: "POST",
        headers: { "idempotency-key": uniqueId("key") },
        ...framing,
      });
      expect([raw.status, [...(await bytesOf(raw))]]).toEqual([201, [...bytes]]);
    }
    for (const framing of [{ body: bytes }, chunked(bytes)]) {
      const text = await fetch(`${url}/text`, {
        method: "POST",
        headers: { "idempotency-key": uniqueId("key") },
        ...framing,
      });
      expect([text.status, await text.text()]).toEqual([201, await new Response(bytes).text()]);
    }
  });

  it("leaves the body for the route's own parsing (json, form, chunked)", async () => {
    const app = new Hono();
    app.post("/json", idempotency(options()), async (c) => c.json(await c.req.json(), 201));
    app.post("/form", idempotency(options()), async (c) => c.json(await c.req.parseBody(), 201));
    const url = await start(app);
    const json = await send(`${url}/json`, uniqueId("key"), '{"amount":250}', { "content-type": "application/json" });
    expect(await json.json()).toEqual({ amount: 250 });
    const form = await send(`${url}/form`, uniqueId("key"), new URLSearchParams({ amount: "250", currency: "eur" }));
    expect(await form.json()).toEqual({ amount: "250", currency: "eur" });
    const bytes = new TextEncoder().encode('{"amount":7}');
    const streamedIn = await fetch(`${url}/json`, {
      method: "POST",
      headers: { "x-api-key": "a", "idempotency-key": uniqueId("key"), "content-type": "application/json" },
      ...chunked(bytes),
    });
    expect(await streamedIn.json()).toEqual({ amount: 7 });
  });

  it("a body a middleware took a reader on is 500 body_not_raw (problem+json), declared or chunked, never blamed on the client", async () => {
    const app = new Hono();
    app.use(async (c, next) => {
      c.req.raw.body?.getReader(); // a middleware that took a reader on the raw stream
      await next();
    });
    app.post("/pay", idempotency(options()), (c) => c.json({ ok: true }, 201));
    const body = new TextEncoder().encode('{"a":1}');
    const declared = await app.request("/pay", {
      method: "POST",
      headers: { "idempotency-key": uniqueId("key"), "content-type": "application/json", "content-length": "7" },
      body,
    });
    const streamed = await app.request("/pay", {
      method: "POST",
      headers: { "idempotency-key": uniqueId("key"), "content-type": "application/json" },
      ...chunked(body),
    } as RequestInit);
    // Over HTTP too, where @hono/node-server reads a declared body its own way.
    const served = await send(`${await start(app)}/pay`, uniqueId("key"), body);
    for (const answer of [declared, streamed, served]) {
      expect([answer.status, answer.headers.get("content-type")]).toEqual([500, "application/problem+json"]);
      expect(await problemOf(answer)).toMatchObject({ code: "body_not_raw" });
    }
  });

  it("a declared body is read without asking for c.req.raw.body (@hono/node-server would build a web Request for it)", async () => {
    const app = new Hono();
    let asked = 0;
    app.use(async (c, next) => {
      const raw = c.req.raw;
      const body = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(raw), "body")?.get;
      Object.defineProperty(raw, "body", {
        get() {
          asked++;
          return body?.call(raw);
        },
      });
      await next();
    });
    app.post("/pay", idempotency(options()), async (c) => c.json(await c.req.json(), 201));
    const url = `${await start(app)}/pay`;
    const answer = await send(url, uniqueId("key"), '{"a":1}');
    expect([answer.status, await answer.json(), asked]).toEqual([201, { a: 1 }, 0]);
  });

  it("a Request made in code whose body is longer than its Content-Length is refused by the limit (413), not fingerprinted", async () => {
    const app = new Hono();
    let runs = 0;
    app.post("/pay", idempotency(options([], { bodyLimit: 100 })), (c) => {
      runs++;
      return c.json({ ok: true }, 201);
    });
    const answer = await app.fetch(
      new Request("http://host/pay", {
        method: "POST",
        headers: { "idempotency-key": uniqueId("key"), "content-type": "application/json", "content-length": "10" },
        body: new Uint8Array(1000),
      }),
    );
    expect(answer.status).toBe(413);
    expect(runs).toBe(0);
  });

  it("accepts a body already read as text; refuses one parsed as a form (500 body_not_raw) only when it needs it", async () => {
    const app = new Hono();
    app.use("/text", async (c, next) => {
      // Text, not c.req.json(): Hono 4.8 caches JSON parsed, not as the text it came as.
      await c.req.text();
      await next();
    });
    app.use("/form", async (c, next) => {
      await c.req.formData(); // (c.req.parseBody() reads bytes first and would keep them)
      await next();
    });
    let runs = 0;
    app.post("/*", idempotency(options()), (c) => {
      runs++;
      return c.json({ run: runs }, 201);
    });
    const url = await start(app);
    const key = uniqueId("key");
    expect((await send(`${url}/text`, key, '{"a":1}')).status).toBe(201);
    expect((await send(`${url}/text`, key, '{"a":1}')).headers.get("idempotent-replayed")).toBe("true");
    expect((await send(`${url}/text`, key, '{"a":2}')).status).toBe(422);
    const form = await send(`${url}/form`, uniqueId("key"), new URLSearchParams({ a: "1" }));
    expect(form.status).toBe(500);
    const problem = await problemOf(form);
    expect(problem).toMatchObject({ code: "body_not_raw", status: 500 });
    expect(problem.detail).toMatch(/already consumed as formData .*before any middleware that reads the body/);
    expect(runs).toBe(1);
    // Without a key the engine needs no bytes: the request goes through.
    expect((await send(`${url}/form`, undefined, new URLSearchParams({ a: "1" }))).status).toBe(201);
  });
});

describe("a body an earlier middleware read", () => {
  const gzip = async (text: string) =>
    new Uint8Array(
      await new Response(new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"))).arrayBuffer(),
    );

  /** An app whose middleware reads the body (`read`) before idempotency() does; the route counts its runs. */
  function appReading(read: (c: Context) => Promise<unknown>, extra: Partial<IdempotencyMiddlewareOptions> = {}) {
    const app = new Hono();
    const runs = { count: 0 };
    app.use(async (c, next) => {
      await read(c);
      await next();
    });
    app.post("/pay", idempotency(options([], extra)), async (c) =>
      c.json({ run: ++runs.count, body: await c.req.text() }, 201),
    );
    const send = (key: string, body: BodyInit, headers: Record<string, string> = {}) =>
      app.request("/pay", {
        method: "POST",
        headers: { "idempotency-key": key, "x-api-key": "client-a", ...headers },
        body,
      });
    return { app, runs, send };
  }

  for (const [kind, read] of [
    ["bytes", (c: Context) => c.req.arrayBuffer()],
    ["text", (c: Context) => c.req.text()],
  ] as const) {
    it(`read as ${kind}: held to bodyLimit (413), and one sent with a coding not decoded refused (415)`, async () => {
      const { runs, send } = appReading(read, { bodyLimit: 10 });
      const over = await send(uniqueId("key"), "x".repeat(100));
      expect([over.status, (await problemOf(over)).code]).toEqual([413, "body_too_large"]);
      const coded = await send(uniqueId("key"), "{}", { "content-encoding": "zstd-unknown" });
      expect([coded.status, (await problemOf(coded)).code]).toEqual([415, "unsupported_content_encoding"]);
      expect((await send(uniqueId("key"), "{}")).status).toBe(201);
      expect(runs.count).toBe(1);
    });
  }

  it("read as bytes: a gzip body is decoded, so the same JSON sent compressed and plain is one request", async () => {
    const { runs, send } = appReading((c) => c.req.arrayBuffer());
    const key = uniqueId("key");
    const json = '{"amount":100}';
    const first = await send(key, await gzip(json), { "content-type": "application/json", "content-encoding": "gzip" });
    expect([first.status, await first.json()]).toEqual([201, { run: 1, body: json }]);
    const plain = await send(key, json, { "content-type": "application/json" });
    expect([plain.status, plain.headers.get("idempotent-replayed")]).toEqual([201, "true"]);
    expect(runs.count).toBe(1);
  });

  it("read as text: a gzip body's bytes are gone (decoded as UTF-8), 500 body_not_raw, not a wrong fingerprint", async () => {
    const { runs, send } = appReading((c) => c.req.text());
    const coded = await send(uniqueId("key"), await gzip('{"amount":100}'), { "content-encoding": "gzip" });
    expect([coded.status, (await problemOf(coded)).code]).toEqual([500, "body_not_raw"]);
    expect(runs.count).toBe(0);
  });
});

describe("scoping", () => {
  it("the same idempotency() mounted app-wide and again on the route: one claim, the route's answer stored and replayed", async () => {
    const app = new Hono();
    const events: InterlockEvent[] = [];
    const idem = idempotency(options(events));
    let runs = 0;
    app.use("/pay", idem);
    app.post("/pay", idem, (c) => c.json({ run: ++runs }, 201));
    const url = `${await start(app)}/pay`;
    const key = uniqueId("key");
    const first = await send(url, key);
    expect([first.status, await first.json()]).toEqual([201, { run: 1 }]);
    const retry = await send(url, key);
    expect([retry.status, retry.headers.get("idempotent-replayed"), await retry.json()]).toEqual([
      201,
      "true",
      { run: 1 },
    ]);
    expect(runs).toBe(1);
    expect(events.map((e) => e.type)).toEqual(["idempotency.first", "idempotency.completed", "idempotency.replayed"]);
  });

  it("scopes keys by principal, which can come from an earlier middleware on the context", async () => {
    const app = new Hono<{ Variables: { tenant: string } }>();
    app.use("*", async (c, next) => {
      c.set("tenant", c.req.header("x-api-key") === "key-a" ? "tenant-a" : "tenant-b");
      await next();
    });
    let runs = 0;
    const principal = (request: { context: Context }) => request.context.get("tenant") as string;
    app.post("/pay", idempotency(options([], { principal })), (c) => c.json({ run: ++runs }, 201));
    const url = `${await start(app)}/pay`;
    const key = uniqueId("key");
    const a = await send(url, key, "{}", { "x-api-key": "key-a" });
    const b = await send(url, key, "{}", { "x-api-key": "key-b" });
    const a2 = await send(url, key, "{}", { "x-api-key": "key-a" });
    expect([await a.json(), await b.json(), await a2.json()]).toEqual([{ run: 1 }, { run: 2 }, { run: 1 }]);
  });

  it("scopes keys by the answering route's pattern, also under app.use(), or by the `route` option", async () => {
    const events: InterlockEvent[] = [];
    const byPattern = new Hono();
    byPattern.use("/api/*", idempotency(options(events)));
    byPattern.post("/api/orders/:id", (c) => c.json({ order: c.req.param("id") }, 201));
    byPattern.post("/api/refunds", (c) => c.json({ refund: true }, 201));
    const url = await start(byPattern);
    const key = uniqueId("key");
    expect((await send(`${url}/api/orders/1`, key)).status).toBe(201);
    // Same scope (POST /api/orders/:id), other path: the key was used for another request.
    expect((await send(`${url}/api/orders/2`, key)).status).toBe(422);
    // Another route: its own scope, so the same key is a first request there.
    expect((await send(`${url}/api/refunds`, key)).status).toBe(201);
    const routes = events.flatMap((e) => (e.type === "idempotency.first" ? [e.route] : []));
    expect(routes).toEqual(["/api/orders/:id", "/api/refunds"]);

    const byPath = new Hono();
    byPath.post("/api/orders/:id", idempotency(options([], { route: (c) => c.req.path })), (c) => c.json({}, 201));
    const url2 = await start(byPath);
    expect((await send(`${url2}/api/orders/1`, key)).status).toBe(201);
    expect((await send(`${url2}/api/orders/2`, key)).status).toBe(201);
  });

  it("scopes by the route that answers, not a catch-all matched after it, nor the middleware before it", async () => {
    const events: InterlockEvent[] = [];
    const app = new Hono();
    app.use("*", idempotency(options(events)));
    const audited: MiddlewareHandler = async (_c, next) => next(); // a middleware: Hono matches it, it never answers
    app.post("/payments/:id", audited, (c) => c.json({ paid: c.req.param("id") }, 201));
    // A sub-app with its own onError: app.route() wraps each of its routes in a middleware-shaped function.
    const v1 = new Hono();
    v1.onError((_error, c) => c.json({ failed: true }, 500));
    v1.post("/refunds/:id", (c) => c.json({ refunded: c.req.param("id") }, 201));
    app.route("/v1", v1);
    app.all("*", (c) => c.json({ error: "not found" }, 404));
    const url = await start(app);
    const key = uniqueId("key");
    expect((await send(`${url}/payments/1`, key)).status).toBe(201);
    expect((await send(`${url}/v1/refunds/1`, key)).status).toBe(201);
    expect((await send(`${url}/payments/2`, key)).status).toBe(422);
    expect((await send(`${url}/nowhere`, key)).status).toBe(404); // the catch-all answers: its own scope
    // Every event names the route that answered, also those emitted once it has run.
    expect(events.map((e) => `${e.type} ${"route" in e ? e.route : ""}`)).toEqual([
      "idempotency.first /payments/:id",
      "idempotency.completed /payments/:id",
      "idempotency.first /v1/refunds/:id",
      "idempotency.completed /v1/refunds/:id",
      "idempotency.mismatch /payments/:id",
      "idempotency.first /*",
      "idempotency.completed /*",
    ]);
  });
});

describe("failures", () => {
  it("a timeout mounted before ours answers the client while the route runs: the route's answer is stored, the retry replays it, the route runs once", async () => {
    const events: InterlockEvent[] = [];
    const app = new Hono();
    let charges = 0;
    app.post("/pay", timeout(50), idempotency(options(events)), async (c) => {
      await new Promise((resolve) => setTimeout(resolve, 150)); // a slow payment provider
      charges++;
      return c.json({ charge: charges }, 201);
    });
    const url = `${await start(app)}/pay`;
    const key = uniqueId("key");
    expect((await send(url, key)).status).toBe(504); // timeout() answered the client
    await vi.waitFor(() => expect(events.map((e) => e.type)).toContain("idempotency.completed"));
    const retry = await send(url, key);
    expect([retry.status, retry.headers.get("idempotent-replayed"), await retry.json()]).toEqual([
      201,
      "true",
      { charge: 1 },
    ]);
    expect(charges).toBe(1);
  });

  it("a timeout around the route, then the route throws: released, the retry runs again", async () => {
    const events: InterlockEvent[] = [];
    const app = new Hono();
    let runs = 0;
    app.post("/pay", timeout(50), idempotency(options(events)), async (c) => {
      runs++;
      await new Promise((resolve) => setTimeout(resolve, 100));
      if (runs === 1) throw new Error("the provider failed too");
      return c.json({ run: runs }, 201);
    });
    const url = `${await start(app)}/pay`;
    const key = uniqueId("key");
    expect((await send(url, key)).status).toBe(504);
    await vi.waitFor(() => expect(released(events)).toEqual(["error"]));
    expect((await send(url, key)).status).toBe(504); // runs again, and outlives the timeout again
    await vi.waitFor(() => expect(events.map((e) => e.type)).toContain("idempotency.completed"));
    expect(runs).toBe(2);
  });

  it("a route that throws releases the key (after Hono's onError answers): the retry runs again", async () => {
    const events: InterlockEvent[] = [];
    const app = new Hono();
    const outcomes = ["error", "http-exception", "ok"];
    let runs = 0;
    app.post("/pay", idempotency(options(events)), (c) => {
      runs++;
      const outcome = outcomes.shift();
      if (outcome === "error") throw new Error("boom");
      if (outcome === "http-exception") throw new HTTPException(400, { message: "bad card" });
      return c.json({ paid: true }, 201);
    });
    app.onError((error, c) =>
      error instanceof HTTPException ? error.getResponse() : c.json({ error: "failed" }, 500),
    );
    const url = `${await start(app)}/pay`;
    const key = uniqueId("key");
    expect((await send(url, key)).status).toBe(500);
    expect((await send(url, key)).status).toBe(400);
    expect((await send(url, key)).status).toBe(201);
    expect((await send(url, key)).headers.get("idempotent-replayed")).toBe("true");
    expect(runs).toBe(3);
    expect(released(events)).toEqual(["error", "error"]);
  });

  // cors() reads c.res before next(): Hono's setter then wraps every answer set after it in a new
  // Response, so onError's answer never is the object its writer returned.
  for (const [name, answer] of [
    ["302", (c: Context) => c.redirect("/error-page")],
    ["200 c.text", (c: Context) => c.text("something went wrong")],
  ] as const) {
    it(`cors() before: a throw answered by onError (${name}) releases the key, the retry runs again`, async () => {
      let runs = 0;
      const app = new Hono();
      app.use(cors());
      app.onError((_error, c) => answer(c));
      app.post("/p", idempotency({ store: new MemoryStore(), principal: false }), () => {
        runs++;
        throw new Error("down");
      });
      const send = () =>
        app.request("/p", {
          method: "POST",
          headers: { "idempotency-key": "k1", "content-type": "application/json", origin: "https://a.example" },
          body: "{}",
        });
      await send();
      const retry = await send();
      expect(retry.headers.get("idempotent-replayed")).toBeNull();
      expect(runs).toBe(2);
    });
  }

  it("a throw that passes through next() (an app.onError that rethrows it) releases the key: the retry runs again", async () => {
    const events: InterlockEvent[] = [];
    const app = new Hono();
    let runs = 0;
    app.post("/pay", idempotency(options(events)), (c) => {
      if (++runs === 1) throw new Error("boom");
      return c.json({ run: runs }, 201);
    });
    // Rethrown, the error leaves Hono's chain through every middleware's next(), up to the server (a 500).
    app.onError((error) => {
      throw error;
    });
    const url = `${await start(app)}/pay`;
    const key = uniqueId("key");
    expect((await send(url, key)).status).toBe(500);
    const retry = await send(url, key);
    expect([retry.status, retry.headers.get("idempotent-replayed"), await retry.json()]).toEqual([
      201,
      null,
      { run: 2 },
    ]);
    expect(released(events)).toEqual(["error"]);
  });

  it("refusals and replays keep the headers earlier middleware set on the context (a request id)", async () => {
    const app = new Hono();
    app.use(async (c, next) => {
      c.header("x-request-id", "req-1");
      await next();
    });
    app.post("/pay", idempotency(options()), (c) => c.json({ paid: true }, 201));
    const url = `${await start(app)}/pay`;
    const refused = await send(url, '"a", "b"');
    expect([refused.status, refused.headers.get("x-request-id")]).toEqual([400, "req-1"]);
    const key = uniqueId("key");
    expect((await send(url, key)).status).toBe(201);
    const replay = await send(url, key);
    expect([replay.headers.get("idempotent-replayed"), replay.headers.get("x-request-id")]).toEqual(["true", "req-1"]);
  });

  /** The first request fails (Hono's onError answers 500), its key is released, and the retry runs: `answered`. */
  async function expectFailedThenRun(app: Hono, events: InterlockEvent[], answered: string) {
    app.onError((_error, c) => c.json({ error: "failed" }, 500));
    const url = `${await start(app)}/pay`;
    const key = uniqueId("key");
    expect((await send(url, key)).status).toBe(500);
    const retry = await send(url, key);
    expect([retry.status, retry.headers.get("idempotent-replayed"), await retry.text()]).toEqual([201, null, answered]);
    expect(released(events)).toEqual(["error"]);
  }

  it("a route that leaves the context unanswered (Hono's 500) releases the key: no empty 200 is stored", async () => {
    const events: InterlockEvent[] = [];
    const app = new Hono();
    let checks = 0;
    let runs = 0;
    // A guard that, the first time, forgets to return its answer (and so neither answers nor calls next).
    const guard: MiddlewareHandler = async (c, next) => {
      if (++checks === 1) {
        c.json({ error: "try again" }, 429);
        return;
      }
      await next();
    };
    app.post("/pay", idempotency(options(events)), guard, (c) => c.json({ run: ++runs }, 201));
    await expectFailedThenRun(app, events, '{"run":1}');
  });

  it("a route's Response that cannot be sent (its body already read) releases the key: the retry runs", async () => {
    const events: InterlockEvent[] = [];
    const app = new Hono();
    let runs = 0;
    app.post("/pay", idempotency(options(events)), async () => {
      const response = new Response(`{"run":${++runs}}`, { status: 201 });
      if (runs === 1) await response.text(); // a bug in the route: the body is spent
      return response;
    });
    await expectFailedThenRun(app, events, '{"run":2}');
  });

  it("a route's Response.error() (status 0) releases the key under any cache: stored, every retry threw building its replay", async () => {
    const events: InterlockEvent[] = [];
    const app = new Hono();
    let runs = 0;
    app.post("/pay", idempotency(options(events, { cache: "all" })), () =>
      ++runs === 1 ? Response.error() : new Response("paid", { status: 201 }),
    );
    const pay = () =>
      app.request("/pay", { method: "POST", headers: { "x-api-key": "a", "idempotency-key": "k" }, body: "{}" });
    expect((await pay()).status).toBe(0);
    const retry = await pay();
    expect([retry.status, await retry.text(), runs]).toEqual([201, "paid", 2]);
    expect(released(events)).toEqual(["status"]);
  });

  it("answers the engine's refusals as problem+json: 400 for a malformed key, 400 when required and missing", async () => {
    const app = new Hono();
    app.post("/pay", idempotency(options([], { required: true })), (c) => c.json({}, 201));
    const url = `${await start(app)}/pay`;
    const malformed = await send(url, '"a", "b"');
    expect([malformed.status, (await problemOf(malformed)).code]).toEqual([400, "idempotency_key_invalid"]);
    const missing = await send(url, undefined);
    expect([missing.status, (await problemOf(missing)).code]).toEqual([400, "idempotency_key_missing"]);
  });
});

describe("bodyLimit and onError", () => {
  it("a body cut off mid-way (the client went away) is 400 body_incomplete, never an error for Hono", async () => {
    const events: InterlockEvent[] = [];
    const { app, statuses, errors } = watchedApp();
    let runs = 0;
    app.post("/pay", idempotency(options(events)), (c) => {
      runs++;
      return c.text("ok");
    });
    const url = await start(app);
    await leaveMidBody(url, "/pay", { "x-api-key": "client-a", "idempotency-key": uniqueId("key") });
    await expect.poll(() => statuses, { timeout: 3000 }).toEqual([400]);
    expect([errors, runs]).toEqual([[], 0]);
    const rejected = events.filter((e) => e.type === "idempotency.rejected").map((e) => (e as { code: string }).code);
    expect(rejected).toEqual(["body_incomplete"]);
  });

  it("answers 413 body_too_large over `bodyLimit`, declared or chunked, without running the route", async () => {
    const app = new Hono();
    let runs = 0;
    app.post("/pay", idempotency(options([], { bodyLimit: 16 })), async (c) =>
      c.json({ run: ++runs, body: await c.req.text() }, 201),
    );
    const url = `${await start(app)}/pay`;
    const over = new TextEncoder().encode('{"amount":123456}'); // 17 bytes
    const declared = await send(url, uniqueId("key"), over);
    expect([declared.status, (await problemOf(declared)).code]).toEqual([413, "body_too_large"]);
    const streamedIn = await fetch(url, {
      method: "POST",
      headers: { "idempotency-key": uniqueId("key") },
      ...chunked(over),
    });
    expect([streamedIn.status, (await problemOf(streamedIn)).code]).toEqual([413, "body_too_large"]);
    const within = await fetch(url, {
      method: "POST",
      headers: { "idempotency-key": uniqueId("key") },
      ...chunked(over.slice(0, 16)),
    });
    expect(await within.json()).toEqual({ run: 1, body: '{"amount":123456' });
    // Without a key nothing is fingerprinted, so nothing is read or limited here.
    const unkeyed = await send(url, undefined, over);
    expect(await unkeyed.json()).toEqual({ run: 2, body: '{"amount":123456}' });
    expect(() => idempotency(options([], { bodyLimit: 0 }))).toThrow(/bodyLimit/);
  });

  it("Hono's bodyLimit() before it answers its own 413 for a chunked body past its limit, not 400", async () => {
    const events: InterlockEvent[] = [];
    const app = new Hono();
    let runs = 0;
    app.post("/pay", bodyLimit({ maxSize: 8 }), idempotency(options(events)), (c) => c.json({ run: ++runs }, 201));
    const url = `${await start(app)}/pay`;
    const over = await fetch(url, {
      method: "POST",
      headers: { "idempotency-key": uniqueId("key") },
      ...chunked(new TextEncoder().encode('{"amount":123456}'), 4),
    });
    expect([over.status, await over.text(), runs]).toEqual([413, "Payload Too Large", 0]);
    expect(events.filter((e) => e.type === "idempotency.rejected")).toEqual([]);
    const within = await fetch(url, {
      method: "POST",
      headers: { "idempotency-key": uniqueId("key") },
      ...chunked(new TextEncoder().encode('{"a":1}')),
    });
    expect([within.status, await within.json()]).toEqual([201, { run: 1 }]);
  });

  it("bodyLimit defaults to 1 MiB (DEFAULT_REQUEST_BODY_LIMIT); a refusal is an idempotency.rejected event", async () => {
    const events: InterlockEvent[] = [];
    const app = new Hono();
    app.post("/pay", idempotency(options(events)), (c) => c.json({}, 201));
    const url = `${await start(app)}/pay`;
    const pad = (size: number) => `{"p":"${"x".repeat(size - 8)}"}`;
    expect((await send(url, uniqueId("key"), pad(1024 * 1024))).status).toBe(201);
    const over = await send(url, uniqueId("key"), pad(1024 * 1024 + 1));
    expect([over.status, (await problemOf(over)).code]).toEqual([413, "body_too_large"]);
    expect(events.filter((e) => (e.type as string) === "idempotency.rejected")).toEqual([
      { type: "idempotency.rejected", method: "POST", route: "/pay", code: "body_too_large" },
    ]);
  });

  it("lets the app answer refusals itself; replays always go out as stored", async () => {
    const seen: unknown[] = [];
    const onError: IdempotencyMiddlewareOptions["onError"] = (decision, c) => {
      const code = decision.error.code;
      seen.push([decision.response.status, code]);
      if (code === "idempotency_key_mismatch") return undefined; // Interlock's 422 is fine
      return c.json({ refused: code }, 400);
    };
    const app = new Hono();
    app.post("/pay", idempotency(options([], { onError })), (c) => c.json({ paid: true }, 201));
    const down = new Hono();
    down.post("/pay", idempotency(options([], { onError, store: unreachableStore() })), (c) => c.json({}, 201));
    const url = `${await start(app)}/pay`;
    const key = uniqueId("key");
    expect((await send(url, key, '{"a":1}')).status).toBe(201);
    expect((await send(url, key, '{"a":1}')).headers.get("idempotent-replayed")).toBe("true");
    expect((await send(url, key, '{"a":2}')).status).toBe(422);
    const malformed = await send(url, '"a", "b"');
    expect([malformed.status, await malformed.json()]).toEqual([400, { refused: "idempotency_key_invalid" }]);
    const unavailable = await send(`${await start(down)}/pay`, uniqueId("key"));
    expect([unavailable.status, await unavailable.json()]).toEqual([400, { refused: "store_unavailable" }]);
    expect(seen).toEqual([
      [422, "idempotency_key_mismatch"],
      [400, "idempotency_key_invalid"],
      [503, "store_unavailable"],
    ]);
  });
});
