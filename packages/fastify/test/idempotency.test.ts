/** Fastify-specific idempotency behaviour: response capture, raw-body fingerprints, scoping, onError. */

import { request as httpRequest } from "node:http";
import { connect as connectHttp2, constants as http2Constants } from "node:http2";
import { PassThrough, pipeline, Readable } from "node:stream";
import { type InterlockEvent, MemoryStore } from "@interlock/core";
import { withClient } from "@interlock/test-harness/http2";
import type { FastifyInstance, FastifyReply, FastifyServerOptions } from "fastify";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type FastifyIdempotencyOptions, idempotency } from "../src/index.js";
import { keepLogs, type LogLine, leaveMidBody, listen, type Running, slowToComplete } from "./app.js";

let sequence = 0;
const newKey = () => `key_${Date.now().toString(36)}_${++sequence}`;
let running: Running | undefined;
afterEach(async () => {
  await running?.close();
  running = undefined;
});

const options = (extra: Partial<FastifyIdempotencyOptions> = {}): FastifyIdempotencyOptions => ({
  store: new MemoryStore(),
  principal: (request) => request.context.headers["x-api-key"] as string | undefined,
  ...extra,
});

/** Starts an app whose routes are added by `routes`, each given the same hook set. */
async function start(hookOptions: FastifyIdempotencyOptions, routes: (app: FastifyInstance, hooks: object) => void) {
  running = await listen((app) => {
    app.addContentTypeParser("application/octet-stream", { parseAs: "buffer" }, (_request, body, done) =>
      done(null, body),
    );
    routes(app, { config: { interlock: idempotency(hookOptions) } });
  });
  return running;
}

function send(
  path: string,
  key: string | undefined,
  init: { body?: string | Uint8Array; type?: string; headers?: Record<string, string> } = {},
) {
  return fetch(`${running?.url}${path}`, {
    method: "POST",
    headers: {
      "content-type": init.type ?? "application/json",
      "x-api-key": "client-a",
      ...(key ? { "idempotency-key": key } : {}),
      ...init.headers,
    },
    body: (init.body ?? "{}") as BodyInit,
  });
}

/** Sends a keyed request, reads the first chunk of the answer, then closes the connection: its status. */
function sendAndLeave(path: string, key: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const headers = { "content-type": "application/json", "x-api-key": "client-a", "idempotency-key": key };
    const request = httpRequest(`${running?.url}${path}`, { method: "POST", headers, agent: false }, (response) => {
      response.once("data", () => {
        request.destroy();
        resolve(response.statusCode ?? 0);
      });
    });
    request.on("error", reject);
    request.end("{}");
  });
}

/** Over HTTP/2: sends a keyed request, reads the first chunk of the answer, then resets the stream: its status. */
function resetAfterFirstChunk(url: string, key: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const session = connectHttp2(new URL(url).origin);
    session.on("error", reject);
    const headers = { "content-type": "application/json", "x-api-key": "client-a", "idempotency-key": key };
    const stream = session.request({ ":method": "POST", ":path": new URL(url).pathname, ...headers });
    let status = 0;
    stream.on("response", (head) => {
      status = Number(head[":status"]);
    });
    stream.once("data", () => {
      stream.close(http2Constants.NGHTTP2_CANCEL);
      session.close(() => resolve(status));
    });
    stream.on("error", reject);
    stream.end("{}");
  });
}

async function snapshot(response: Response) {
  return {
    status: response.status,
    type: response.headers.get("content-type"),
    location: response.headers.get("location"),
    etag: response.headers.get("etag"),
    bytes: [...new Uint8Array(await response.arrayBuffer())],
  };
}

/** Sends the same request twice and checks the second is the first, replayed. */
async function expectReplay(path: string, init: Parameters<typeof send>[2] = {}) {
  const key = newKey();
  const first = await send(path, key, init);
  expect(first.headers.get("idempotent-replayed")).toBeNull();
  const replay = await send(path, key, init);
  expect(replay.headers.get("idempotent-replayed")).toBe("true");
  const [a, b] = [await snapshot(first), await snapshot(replay)];
  expect(b).toEqual(a);
  return a;
}

describe("HEAD, when methods covers it", () => {
  it("the replay gives the first answer's Content-Length, or none: a stream, a hijacked reply, a JSON answer", async () => {
    let runs = 0;
    await start(options({ methods: ["POST", "HEAD"] }), (app, hooks) => {
      app.get("/stream", hooks, async (_request, reply) => {
        runs++;
        reply.type("text/plain");
        return Readable.from(["ab", "cd"]);
      });
      app.get("/hijacked", hooks, async (_request, reply) => {
        runs++;
        reply.hijack();
        reply.raw.writeHead(200);
        reply.raw.end("hello");
      });
      app.get("/json", hooks, async () => {
        runs++;
        return { id: "pay_1" };
      });
    });
    for (const path of ["/stream", "/hijacked", "/json"]) {
      const key = newKey();
      const head = () =>
        fetch(`${running?.url}${path}`, { method: "HEAD", headers: { "x-api-key": "a", "idempotency-key": key } });
      const first = await head();
      const replay = await head();
      expect(replay.headers.get("idempotent-replayed"), path).toBe("true");
      expect(replay.headers.get("content-length"), path).toBe(first.headers.get("content-length"));
    }
    expect(runs).toBe(3);
    // A refusal to a HEAD is framed as to a GET: its problem's length.
    const refused = await fetch(`${running?.url}/json`, {
      method: "HEAD",
      headers: { "x-api-key": "a", "idempotency-key": "two words" },
    });
    expect(refused.status).toBe(400);
    expect(Number(refused.headers.get("content-length"))).toBeGreaterThan(0);
    expect(runs).toBe(3);
  });
});

describe("response capture and replay", () => {
  it("the answer leaves only once the store has it: a retry sent the moment it arrives is replayed, even with a slow store", async () => {
    /** A store whose writes take a while, as a remote one's do. */
    class SlowStore extends MemoryStore {
      override async complete(...args: Parameters<MemoryStore["complete"]>) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        return super.complete(...args);
      }
    }
    let runs = 0;
    await start(options({ store: new SlowStore() }), (app, hooks) => {
      app.post("/pay", hooks, async (_request, reply) => reply.code(201).send({ run: ++runs }));
    });
    const key = newKey();
    for (let i = 0; i < 3; i++) expect((await send("/pay", key)).status).toBe(201);
    expect(runs).toBe(1);
  });

  it("JSON objects, strings and Buffers are stored as sent and replayed byte for byte; the handler runs once", async () => {
    let calls = 0;
    await start(options(), (app, hooks) => {
      app.post("/json", hooks, async (_request, reply) => {
        reply.code(201).header("location", `/things/${++calls}`);
        return { id: calls, note: "été ✓" };
      });
      app.post("/text", hooks, async (_request, reply) => {
        calls++;
        return reply.type("text/plain; charset=utf-8").send("héllo\r\n\u0000 ");
      });
      app.post("/bytes", hooks, async (_request, reply) => {
        calls++;
        return reply
          .type("application/octet-stream")
          .header("etag", '"v1"')
          .send(Buffer.from([0xff, 0x00, 0xfe, 0x80]));
      });
    });
    const json = await expectReplay("/json");
    expect([json.status, json.location, Buffer.from(json.bytes).toString()]).toEqual([
      201,
      "/things/1",
      '{"id":1,"note":"été ✓"}',
    ]);
    expect(Buffer.from((await expectReplay("/text")).bytes).toString()).toBe("héllo\r\n\u0000 ");
    const bytes = await expectReplay("/bytes");
    expect([bytes.bytes, bytes.etag]).toEqual([[0xff, 0x00, 0xfe, 0x80], '"v1"']);
    expect(calls).toBe(3);
  });

  it("write + end on a hijacked reply are recorded and replayed exactly", async () => {
    let calls = 0;
    await start(options(), (app, hooks) => {
      app.post("/raw", hooks, (_request, reply) => {
        calls++;
        reply.hijack();
        reply.raw.setHeader("etag", '"raw"');
        reply.raw.writeHead(202, { "content-type": "application/json", Location: "/jobs/7" });
        reply.raw.write('{"job":');
        reply.raw.write(Buffer.from("7,"));
        reply.raw.end('"state":"queued"}');
      });
    });
    const replayed = await expectReplay("/raw");
    expect(replayed).toMatchObject({ status: 202, type: "application/json", location: "/jobs/7", etag: '"raw"' });
    expect(Buffer.from(replayed.bytes).toString()).toBe('{"job":7,"state":"queued"}');
    expect(calls).toBe(1);
  });

  it("a hijacked reply's end goes out once its answer is stored: a retry the moment the answer is whole replays it", async () => {
    // A store slow to write: the answer must still be stored before its end reaches the client.
    const store = slowToComplete();
    let calls = 0;
    await start(options({ store }), (app, hooks) => {
      app.post("/raw", hooks, (_request, reply) => {
        calls++;
        reply.hijack();
        reply.raw.writeHead(201, { "content-type": "text/plain" });
        reply.raw.write("made ");
        reply.raw.end(`once ${calls}`);
      });
    });
    const key = newKey();
    expect(await (await send("/raw", key)).text()).toBe("made once 1");
    const retry = await send("/raw", key);
    expect([retry.status, retry.headers.get("idempotent-replayed"), await retry.text()]).toEqual([
      201,
      "true",
      "made once 1",
    ]);
    expect(calls).toBe(1);
  });

  it("a hijacked reply ended, then ended again: answered and stored as without Interlock (the second end does nothing)", async () => {
    let calls = 0;
    await start(options(), (app, hooks) => {
      app.post("/raw", hooks, (_request, reply) => {
        calls++;
        reply.hijack();
        reply.raw.writeHead(201, { "content-type": "application/json" });
        reply.raw.end('{"id":"pay_1"}');
        reply.raw.end(); // a "make sure it is ended" helper
      });
    });
    const key = newKey();
    const first = await send("/raw", key);
    expect([first.status, await first.text()]).toEqual([201, '{"id":"pay_1"}']);
    const retry = await send("/raw", key);
    expect([retry.status, retry.headers.get("idempotent-replayed"), await retry.text()]).toEqual([
      201,
      "true",
      '{"id":"pay_1"}',
    ]);
    expect(calls).toBe(1);
  });

  it("a hijacked reply written to after its end: Node's write-after-end error, as without Interlock, after the whole answer", async () => {
    const errors: string[] = [];
    await start(options(), (app, hooks) => {
      app.post("/raw", hooks, (_request, reply) => {
        reply.hijack();
        reply.raw.on("error", (error) => errors.push((error as { code?: string }).code ?? error.message));
        reply.raw.writeHead(201, { "content-type": "text/plain" });
        reply.raw.end("whole");
        reply.raw.write("late");
      });
    });
    const first = await send("/raw", newKey());
    expect([first.status, await first.text()]).toEqual([201, "whole"]);
    await vi.waitFor(() => expect(errors).toEqual(["ERR_STREAM_WRITE_AFTER_END"]));
  });

  it("a streamed body passes through uncached and the key is released", async () => {
    const events: InterlockEvent[] = [];
    let calls = 0;
    await start(options({ onEvent: (event) => events.push(event) }), (app, hooks) => {
      app.post("/stream", hooks, async (_request, reply) => {
        calls++;
        return reply.type("text/plain").send(Readable.from(["a", "b", "c"]));
      });
    });
    const key = newKey();
    const first = await send("/stream", key);
    expect([first.status, await first.text()]).toEqual([200, "abc"]);
    const second = await send("/stream", key);
    expect([second.status, await second.text(), second.headers.get("idempotent-replayed")]).toEqual([200, "abc", null]);
    expect(calls).toBe(2);
    expect(events.filter((e) => e.type === "idempotency.released")).toMatchObject([
      { reason: "streamed", status: 200 },
      { reason: "streamed", status: 200 },
    ]);
  });

  it("a stream the handler still feeds keeps its key claimed until it ends: a retry meanwhile is refused (409), not run beside it", async () => {
    const events: InterlockEvent[] = [];
    let calls = 0;
    const streams: PassThrough[] = [];
    // Ends the jobs' streams still open.
    const finishJobs = () => {
      for (const out of streams) if (!out.writableEnded) out.end("done");
    };
    await start(options({ onEvent: (event) => events.push(event) }), (app, hooks) => {
      app.post("/export", hooks, async (_request, reply) => {
        const run = ++calls;
        const out = new PassThrough();
        streams.push(out);
        out.write(`job ${run},`);
        return reply.type("text/plain").send(out);
      });
    });
    try {
      const key = newKey();
      const first = await send("/export", key);
      expect(first.status).toBe(200);
      // The first stream is still produced: the retry finds the key claimed.
      const meanwhile = await send("/export", key);
      expect([meanwhile.status, calls]).toEqual([409, 1]);
      expect(((await meanwhile.json()) as { code: string }).code).toBe("request_in_flight");
      finishJobs();
      expect(await first.text()).toBe("job 1,done");
      // Released as the stream ended, before its end went out: a retry at once runs.
      const retry = await send("/export", key);
      expect([retry.status, retry.headers.get("idempotent-replayed")]).toEqual([200, null]);
      finishJobs();
      expect(await retry.text()).toBe("job 2,done");
    } finally {
      finishJobs();
    }
    expect(events.filter((e) => e.type === "idempotency.released")).toMatchObject([
      { reason: "streamed", status: 200 },
      { reason: "streamed", status: 200 },
    ]);
  });

  it("a stream cut off by its client keeps its key claimed until the response has closed, then releases it", async () => {
    const events: InterlockEvent[] = [];
    let calls = 0;
    await start(options({ onEvent: (event) => events.push(event) }), (app, hooks) => {
      app.post("/export", hooks, async (_request, reply) => {
        const out = new PassThrough();
        if (++calls > 1) out.end("all");
        else out.write("one,"); // never ended: Fastify destroys it once the client left
        return reply.type("text/plain").send(out);
      });
    });
    const key = newKey();
    expect(await sendAndLeave("/export", key)).toBe(200);
    await vi.waitFor(() => expect(events.map((e) => e.type)).toContain("idempotency.released"));
    expect(events.find((e) => e.type === "idempotency.released")).toMatchObject({ reason: "streamed" });
    const retry = await send("/export", key);
    expect([retry.status, await retry.text()]).toEqual([200, "all"]);
    expect(calls).toBe(2);
  });

  it("a web Response the handler returns is stored with its own status and headers and replayed byte for byte", async () => {
    const events: InterlockEvent[] = [];
    let calls = 0;
    await start(options({ onEvent: (event) => events.push(event) }), (app, hooks) => {
      // Fastify applies a Response's status and headers only after every onSend hook.
      app.post("/web", hooks, async () => {
        calls++;
        return new Response(JSON.stringify({ payment: calls }), {
          status: 201,
          headers: { "content-type": "application/json", location: `/payments/${calls}` },
        });
      });
    });
    const sent = await expectReplay("/web");
    expect([sent.status, sent.type, sent.location]).toEqual([201, "application/json", "/payments/1"]);
    expect(Buffer.from(sent.bytes).toString()).toBe('{"payment":1}');
    expect(calls).toBe(1);
    expect(events.filter((e) => e.type === "idempotency.completed")).toMatchObject([{ status: 201 }]);
  });

  it("a web Response streaming its body is recorded as it goes out: its chunks as they come, then stored and replayed", async () => {
    let calls = 0;
    let sentFirst = () => {};
    const firstSent = new Promise<void>((resolve) => {
      sentFirst = resolve;
    });
    await start(options(), (app, hooks) => {
      app.post("/web", hooks, async (_request, reply) => {
        calls++;
        const body = new ReadableStream<Uint8Array>({
          async start(controller) {
            controller.enqueue(new TextEncoder().encode("first,"));
            // The rest only once the client has the first chunk: nothing is read ahead of it.
            await firstSent;
            controller.enqueue(new TextEncoder().encode("second"));
            controller.close();
          },
        });
        return reply.send(new Response(body, { status: 202, headers: { "content-type": "text/plain" } }));
      });
    });
    const key = newKey();
    const first = await send("/web", key);
    const reader = (first.body as ReadableStream<Uint8Array>).getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe("first,");
    sentFirst();
    let rest = "";
    for (let read = await reader.read(); !read.done; read = await reader.read())
      rest += new TextDecoder().decode(read.value);
    expect([first.status, rest]).toEqual([202, "second"]);
    const replay = await send("/web", key);
    expect([replay.status, await replay.text(), replay.headers.get("idempotent-replayed")]).toEqual([
      202,
      "first,second",
      "true",
    ]);
    expect(calls).toBe(1);
  });

  it.each([
    ["past the store's record limit", 202, "x".repeat(2048), "too_large"],
    ["with a status not cached", 500, "failed", "status"],
  ])(
    "a web Response %s goes out whole, uncached, released with its own status",
    async (_name, status, body, reason) => {
      const events: InterlockEvent[] = [];
      let calls = 0;
      const store = new MemoryStore({ maxRecordBytes: 1024 });
      await start(options({ store, onEvent: (event) => events.push(event) }), (app, hooks) => {
        app.post("/web", hooks, async () => {
          calls++;
          return new Response(body, { status });
        });
      });
      const key = newKey();
      for (const _ of [1, 2]) {
        const response = await send("/web", key);
        expect([response.status, await response.text(), response.headers.get("idempotent-replayed")]).toEqual([
          status,
          body,
          null,
        ]);
      }
      expect(calls).toBe(2);
      expect(events.filter((e) => e.type === "idempotency.released")).toMatchObject([
        { reason, status },
        { reason, status },
      ]);
    },
  );

  it("a web Response whose body the handler already read is a 500 with why, and the key is released: the retry runs", async () => {
    const events: InterlockEvent[] = [];
    const errors: string[] = [];
    let calls = 0;
    await start(options({ onEvent: (event) => events.push(event) }), (app, hooks) => {
      app.setErrorHandler((error: Error, _request, reply) => {
        errors.push(error.message);
        return reply.code(500).send({ failed: true });
      });
      app.post("/web", hooks, async () => {
        const response = new Response(`paid ${++calls}`, { status: 201 });
        if (calls === 1) await response.text(); // a bug in the route: the body is spent
        return response;
      });
    });
    const key = newKey();
    const first = await send("/web", key);
    expect([first.status, await first.json()]).toEqual([500, { failed: true }]);
    expect(errors).toEqual([expect.stringMatching(/body was already read or is locked/)]);
    const retry = await send("/web", key);
    expect([retry.status, await retry.text(), calls]).toEqual([201, "paid 2", 2]);
    expect(events.filter((e) => e.type === "idempotency.released")).toMatchObject([{ reason: "error" }]);
  });

  it("a web Response without a body is stored at once with its status", async () => {
    let calls = 0;
    await start(options(), (app, hooks) => {
      app.post("/web", hooks, async () => {
        calls++;
        return new Response(null, { status: 204, headers: { etag: `"v${calls}"` } });
      });
    });
    const sent = await expectReplay("/web");
    expect([sent.status, sent.etag, sent.bytes, calls]).toEqual([204, '"v1"', [], 1]);
  });

  it.each([
    [
      "a hijacked body",
      (reply: FastifyReply) => {
        reply.hijack();
        reply.raw.writeHead(200, { "content-type": "text/plain" });
        for (let i = 0; i < 4; i++) reply.raw.write("x".repeat(512));
        reply.raw.end();
      },
    ],
    ["a body sent whole", (reply: FastifyReply) => reply.type("text/plain").send("x".repeat(2048))],
  ])(
    "%s past the store's record limit passes through whole, uncached, released as too_large",
    async (_name, answer) => {
      const events: InterlockEvent[] = [];
      let calls = 0;
      const store = new MemoryStore({ maxRecordBytes: 1024 });
      await start(options({ store, onEvent: (event) => events.push(event) }), (app, hooks) => {
        app.post("/big", hooks, (_request, reply) => {
          calls++;
          answer(reply);
        });
      });
      const key = newKey();
      expect((await (await send("/big", key)).text()).length).toBe(2048);
      expect((await (await send("/big", key)).text()).length).toBe(2048);
      expect(calls).toBe(2);
      expect(events.filter((e) => e.type === "idempotency.released")).toMatchObject([
        { reason: "too_large", status: 200 },
        { reason: "too_large", status: 200 },
      ]);
    },
  );

  it("a stream piped into a hijacked reply passes through uncached, the key released", async () => {
    const events: InterlockEvent[] = [];
    let calls = 0;
    await start(options({ onEvent: (event) => events.push(event) }), (app, hooks) => {
      app.post("/piped", hooks, (_request, reply) => {
        calls++;
        reply.hijack();
        reply.raw.writeHead(200, { "content-type": "text/plain" });
        Readable.from(["a", "b", "c"]).pipe(reply.raw);
      });
    });
    const key = newKey();
    for (const _ of [1, 2]) {
      const response = await send("/piped", key);
      expect([await response.text(), response.headers.get("idempotent-replayed")]).toEqual(["abc", null]);
    }
    expect(calls).toBe(2);
    expect(events.filter((e) => e.type === "idempotency.released")).toMatchObject([
      { reason: "streamed" },
      { reason: "streamed" },
    ]);
  });

  it("a route that writes reply.raw itself, never hijacked: the answer passes through uncached, the key released once it has finished", async () => {
    const events: InterlockEvent[] = [];
    let calls = 0;
    await start(options({ onEvent: (event) => events.push(event) }), (app, hooks) => {
      app.post("/raw", hooks, (_request, reply) => {
        calls++;
        reply.raw.writeHead(200, { "content-type": "text/plain" });
        reply.raw.end(`written ${calls}`);
      });
    });
    const key = newKey();
    for (const n of [1, 2]) {
      const response = await send("/raw", key);
      expect([response.status, await response.text()]).toEqual([200, `written ${n}`]);
      await vi.waitFor(() => expect(events.filter((e) => e.type === "idempotency.released")).toHaveLength(n));
    }
    expect(events.filter((e) => e.type === "idempotency.released")).toMatchObject([
      { reason: "streamed", status: 200 },
      { reason: "streamed", status: 200 },
    ]);
  });

  it("a client that leaves a hijacked reply mid-response: the route's later end is recorded, the retry replays it", async () => {
    const events: InterlockEvent[] = [];
    let calls = 0;
    await start(options({ onEvent: (event) => events.push(event) }), (app, hooks) => {
      app.post("/raw", hooks, (_request, reply) => {
        calls++;
        reply.hijack();
        reply.raw.writeHead(200, { "content-type": "text/plain" });
        reply.raw.write("one,");
        // The route goes on after the client left, and ends its answer.
        reply.raw.once("close", () => reply.raw.end("two"));
      });
    });
    const key = newKey();
    expect(await sendAndLeave("/raw", key)).toBe(200);
    await vi.waitFor(() => expect(events.map((e) => e.type)).toContain("idempotency.completed"));
    const retry = await send("/raw", key);
    expect([retry.status, await retry.text(), retry.headers.get("idempotent-replayed")]).toEqual([
      200,
      "one,two",
      "true",
    ]);
    expect(calls).toBe(1);
  });

  // The lease is renewed every third of lockTtlMs while the route runs; a client that leaves an
  // answer the route began stops that, settling nothing: the claim lapses from two thirds of lockTtlMs to
  // lockTtlMs after the close.
  const cutOffLease = { lockTtlMs: 1_000, extendLease: { maxMs: 60_000 } };
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  it("a client that leaves a hijacked reply mid-response, whose route ends it 100 ms later: that end is recorded, the retry replays it, the route ran once", async () => {
    const events: InterlockEvent[] = [];
    let calls = 0;
    await start(options({ onEvent: (event) => events.push(event), ...cutOffLease }), (app, hooks) => {
      app.post("/pay", hooks, (_request, reply) => {
        calls++;
        reply.hijack();
        reply.raw.writeHead(201, { "content-type": "text/plain" });
        reply.raw.write("charged,");
        // The payment is made: the route goes on after its client left, and ends its answer.
        reply.raw.once("close", () => setTimeout(() => reply.raw.end("receipt"), 100));
      });
    });
    const key = newKey();
    expect(await sendAndLeave("/pay", key)).toBe(201);
    await vi.waitFor(() => expect(events.map((e) => e.type)).toContain("idempotency.completed"));
    const retry = await send("/pay", key);
    expect([retry.status, await retry.text(), retry.headers.get("idempotent-replayed")]).toEqual([
      201,
      "charged,receipt",
      "true",
    ]);
    expect(calls).toBe(1);
  });

  it("a client that leaves a hijacked reply mid-response, whose route never ends it (server-sent events): a retry is in flight until the lease lapses (lockTtlMs, not extendLease's maxMs), then runs", async () => {
    const events: InterlockEvent[] = [];
    let calls = 0;
    await start(options({ onEvent: (event) => events.push(event), ...cutOffLease }), (app, hooks) => {
      app.post("/events", hooks, (_request, reply) => {
        reply.hijack();
        reply.raw.writeHead(200, { "content-type": "text/event-stream" });
        if (++calls > 1) return void reply.raw.end("data: again\n\n");
        reply.raw.write("data: first\n\n");
        const timer = setInterval(() => reply.raw.write("data: tick\n\n"), 10);
        reply.raw.once("close", () => clearInterval(timer));
      });
    });
    const key = newKey();
    expect(await sendAndLeave("/events", key)).toBe(200);
    expect((await send("/events", key)).status).toBe(409);
    await sleep(1_500);
    const retry = await send("/events", key);
    expect([retry.status, await retry.text(), retry.headers.get("idempotent-replayed")]).toEqual([
      200,
      "data: again\n\n",
      null,
    ]);
    expect(calls).toBe(2);
    expect(events.map((e) => e.type)).not.toContain("idempotency.released");
  });

  it("a hijacked reply whose route begins its answer only once its client left, never ending it: the lease is renewed no more, the retry runs once it lapses", async () => {
    let calls = 0;
    let arrived = () => {};
    const ran = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    await start(options(cutOffLease), (app, hooks) => {
      app.post("/late", hooks, (_request, reply) => {
        reply.hijack();
        if (++calls > 1) return void reply.raw.writeHead(201).end("again");
        arrived();
        // Closed already when it writes: the response emits no more "close".
        reply.raw.once("close", () => setTimeout(() => reply.raw.writeHead(200).write("too late"), 10));
      });
    });
    const key = newKey();
    const headers = { "content-type": "application/json", "x-api-key": "client-a", "idempotency-key": key };
    const leaving = httpRequest(`${running?.url}/late`, { method: "POST", headers, agent: false });
    leaving.on("error", () => {});
    leaving.end("{}");
    await ran;
    leaving.destroy();
    await sleep(1_600);
    const retry = await send("/late", key);
    expect([retry.status, await retry.text()]).toEqual([201, "again"]);
    expect(calls).toBe(2);
  });

  it("over HTTP/2, a client that resets a hijacked reply mid-response: the route's later end is recorded, the retry replays it", async () => {
    const events: InterlockEvent[] = [];
    let calls = 0;
    running = await listen(
      (app) => {
        app.post(
          "/raw",
          { config: { interlock: idempotency(options({ onEvent: (event) => events.push(event) })) } },
          (_request, reply) => {
            calls++;
            reply.hijack();
            reply.raw.writeHead(200, { "content-type": "text/plain" });
            reply.raw.write("one,");
            // The route goes on after the client left, and ends its answer.
            reply.raw.once("close", () => reply.raw.end("two"));
          },
        );
      },
      { http2: true } as FastifyServerOptions,
    );
    const client = withClient(running.url, async () => {});
    try {
      const key = newKey();
      // Node reports the reset response as finished: what it wrote so far must not be stored as the whole answer.
      expect(await resetAfterFirstChunk(`${running.url}/raw`, key)).toBe(200);
      await vi.waitFor(() => expect(events.map((e) => e.type)).toContain("idempotency.completed"));
      const retry = await client.fetch(`${running.url}/raw`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-api-key": "client-a", "idempotency-key": key },
        body: "{}",
      });
      expect([retry.status, await retry.text(), retry.headers.get("idempotent-replayed")]).toEqual([
        200,
        "one,two",
        "true",
      ]);
      expect(calls).toBe(1);
    } finally {
      await client.close();
    }
  });

  it("a client that leaves a stream piped into a hijacked reply: the key stays claimed while the stream goes on, released as it ends", async () => {
    const events: InterlockEvent[] = [];
    let calls = 0;
    let finishJob: (() => void) | undefined;
    await start(options({ onEvent: (event) => events.push(event) }), (app, hooks) => {
      app.post("/piped", hooks, (_request, reply) => {
        reply.hijack();
        reply.raw.writeHead(200, { "content-type": "text/plain" });
        const source = new PassThrough();
        source.pipe(reply.raw);
        if (++calls > 1) return void source.end("all");
        // The first job goes on after its client left (more than the pipe's buffer), and ends later.
        source.write("one,");
        reply.raw.once("close", () => source.write("x".repeat(256 * 1024)));
        finishJob = () => source.end("two");
      });
    });
    const key = newKey();
    expect(await sendAndLeave("/piped", key)).toBe(200);
    // The client left, the job did not: a retry is refused, not run beside it.
    const meanwhile = await send("/piped", key);
    expect([meanwhile.status, calls]).toEqual([409, 1]);
    expect(((await meanwhile.json()) as { code: string }).code).toBe("request_in_flight");
    expect(events.map((e) => e.type)).not.toContain("idempotency.released");
    finishJob?.();
    await vi.waitFor(() => expect(events.map((e) => e.type)).toContain("idempotency.released"));
    expect(events.find((e) => e.type === "idempotency.released")).toMatchObject({ reason: "streamed" });
    const retry = await send("/piped", key);
    expect([retry.status, await retry.text()]).toEqual([200, "all"]);
    expect(calls).toBe(2);
  });

  for (const hijacked of [true, false]) {
    it(`a route that writes part of its answer on reply.raw, then destroys it (${hijacked ? "hijacked" : "never hijacked"}): the key is released as for a throw, the retry runs`, async () => {
      const events: InterlockEvent[] = [];
      let calls = 0;
      // Renewed leases would keep a key nothing settles claimed past its lockTtlMs.
      await start(options({ lockTtlMs: 600, onEvent: (event) => events.push(event) }), (app, hooks) => {
        app.post("/partial", hooks, async (_request, reply) => {
          if (++calls > 1) return reply.code(201).send({ calls });
          if (hijacked) reply.hijack();
          reply.raw.write("partial");
          setTimeout(() => reply.raw.destroy(), 20);
          return reply; // answered by the route itself, later
        });
      });
      const key = newKey();
      await send("/partial", key)
        .then((response) => response.text())
        .catch(() => {}); // the connection is reset
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const retry = await send("/partial", key);
      expect([retry.status, await retry.json()]).toEqual([201, { calls: 2 }]);
      expect(calls).toBe(2);
      expect(events.filter((e) => e.type === "idempotency.released")).toMatchObject([{ reason: "error" }]);
    });
  }

  it("a stream piped into a hijacked reply with pipeline() that fails mid-way (pipeline destroys the response): the key is released once, the retry runs", async () => {
    const events: InterlockEvent[] = [];
    let calls = 0;
    await start(options({ onEvent: (event) => events.push(event) }), (app, hooks) => {
      app.post("/piped", hooks, (_request, reply) => {
        reply.hijack();
        reply.raw.writeHead(200, { "content-type": "text/plain" });
        const source = new PassThrough();
        pipeline(source, reply.raw, () => {});
        if (++calls > 1) return void source.end("all");
        source.write("one,");
        setTimeout(() => source.destroy(new Error("db down")), 20);
      });
    });
    const key = newKey();
    await send("/piped", key)
      .then((response) => response.text())
      .catch(() => {});
    await vi.waitFor(() => expect(events.map((e) => e.type)).toContain("idempotency.released"));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(events.filter((e) => e.type === "idempotency.released")).toMatchObject([{ reason: "streamed" }]);
    const retry = await send("/piped", key);
    expect([retry.status, await retry.text()]).toEqual([200, "all"]);
    expect(calls).toBe(2);
  });

  it("a handler that throws releases the key: the retry runs, then replays", async () => {
    let calls = 0;
    await start(options(), (app, hooks) => {
      app.post("/flaky", hooks, async (_request, reply) => {
        if (++calls === 1) throw new Error("provider timeout");
        return reply.code(201).send({ calls });
      });
    });
    const key = newKey();
    expect((await send("/flaky", key)).status).toBe(500);
    const retry = await send("/flaky", key);
    expect([retry.status, await retry.json()]).toEqual([201, { calls: 2 }]);
    const replay = await send("/flaky", key);
    expect([replay.status, await replay.json(), replay.headers.get("idempotent-replayed")]).toEqual([
      201,
      { calls: 2 },
      "true",
    ]);
    expect(calls).toBe(2);
  });

  for (const shape of ["sync", "async"] as const) {
    it(`a handler that throws (${shape}) after hijacking its reply releases the key at once: the retry runs`, async () => {
      const events: InterlockEvent[] = [];
      let calls = 0;
      await start(options({ onEvent: (event) => events.push(event) }), (app, hooks) => {
        const fail = (reply: FastifyReply) => {
          reply.hijack();
          reply.raw.writeHead(200, { "content-type": "text/plain" });
          if (++calls === 1) {
            // Fastify hands this throw to no hook, and leaves the hijacked response open.
            reply.raw.write("partial,");
            throw new Error("provider timeout");
          }
          reply.raw.end("all");
        };
        app.post("/raw", hooks, shape === "sync" ? (_request, reply) => fail(reply) : async (_r, reply) => fail(reply));
      });
      const key = newKey();
      // The first client stays connected, reading an answer that never ends.
      const first = httpRequest(`${running?.url}/raw`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-api-key": "client-a", "idempotency-key": key },
      });
      first.on("error", () => {});
      first.end("{}");
      try {
        await vi.waitFor(() => expect(events.map((e) => e.type)).toContain("idempotency.released"));
        expect(events.find((e) => e.type === "idempotency.released")).toMatchObject({ reason: "error" });
        const retry = await send("/raw", key);
        expect([retry.status, await retry.text()]).toEqual([200, "all"]);
        expect(calls).toBe(2);
      } finally {
        first.destroy();
      }
    });
  }

  it("a handler that throws after ending its hijacked reply: the status it sent is recorded and replayed", async () => {
    let calls = 0;
    await start(options(), (app, hooks) => {
      app.post("/raw", hooks, async (_request, reply) => {
        calls++;
        reply.hijack();
        reply.raw.writeHead(201, { "content-type": "text/plain" });
        reply.raw.end("done");
        // Fastify then sets a 500 on the response already sent, for its diagnostics channel.
        throw new Error("cleanup failed");
      });
    });
    const replayed = await expectReplay("/raw");
    expect([replayed.status, Buffer.from(replayed.bytes).toString(), calls]).toEqual([201, "done", 1]);
  });

  it("the response is stored before it is sent: an immediate retry replays (no 409)", async () => {
    await start(options(), (app, hooks) => {
      app.post("/fast", hooks, async (_request, reply) => reply.code(201).send({ ok: true }));
    });
    for (let i = 0; i < 20; i++) {
      const key = newKey();
      await (await send("/fast", key)).arrayBuffer();
      expect((await send("/fast", key)).status).toBe(201);
    }
  });
  it("a dropped response is still recorded: the client's retry is a replay, not a second run", async () => {
    let calls = 0;
    // The client drops its request once the route runs: a timer alone could fire, on a loaded
    // machine, before the request had reached the server at all.
    let entered = () => {};
    const inRoute = new Promise<void>((resolve) => {
      entered = resolve;
    });
    await start(options(), (app, hooks) => {
      app.post("/slow", hooks, async (_request, reply) => {
        entered();
        await new Promise((resolve) => setTimeout(resolve, 100));
        return reply.code(201).send({ call: ++calls });
      });
    });
    const key = newKey();
    const aborted = new AbortController();
    const dropped = fetch(`${running?.url}/slow`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": "client-a", "idempotency-key": key },
      body: "{}",
      signal: aborted.signal,
    });
    await inRoute;
    aborted.abort();
    await expect(dropped).rejects.toThrow();
    // Retried until the route has answered and its answer is stored (409 until then).
    const retry = await vi.waitFor(async () => {
      const answer = await send("/slow", key);
      expect(answer.status).not.toBe(409);
      return answer;
    }, 5_000);
    expect([retry.status, await retry.json(), retry.headers.get("idempotent-replayed")]).toEqual([
      201,
      { call: 1 },
      "true",
    ]);
    expect(calls).toBe(1);
  });
});

describe("a request cut off mid-body", () => {
  // Its length announced, it is read beside the app's parser, which meets the cut first and
  // answers its own 400; chunked, it is read ahead, before any parser, and Interlock answers.
  it.each([
    ["its length announced: Fastify's parser answers its 400", 100, "ECONNRESET"],
    ["chunked: 400 body_incomplete", "chunked", "body_incomplete"],
  ] as const)(
    "%s, logged at info as Fastify logs its own parser's, not as a server error; reported as body_incomplete; nothing claimed, its retry runs",
    async (_name, length, logged) => {
      const events: InterlockEvent[] = [];
      const logs: LogLine[] = [];
      let calls = 0;
      running = await listen((app) => {
        const hooks = idempotency(options({ onEvent: (event) => events.push(event) }));
        app.post("/pay", { config: { interlock: hooks } }, async (_request, reply) =>
          reply.code(201).send({ calls: ++calls }),
        );
      }, keepLogs(logs));
      const key = newKey();
      const headers = { "content-type": "application/json", "x-api-key": "client-a", "idempotency-key": key };
      await leaveMidBody(`${running.url}/pay`, headers, '{"amount":', length);
      await vi.waitFor(() => expect(logs.filter((line) => line.err !== undefined)).toHaveLength(1));
      expect(logs.filter((line) => line.err !== undefined)).toMatchObject([
        { level: 30, err: { code: logged }, res: { statusCode: 400 } },
      ]);
      expect(logs.filter((line) => line.level >= 40)).toEqual([]);
      expect(events.map((e) => (e.type === "idempotency.rejected" ? e.code : e.type))).toEqual(["body_incomplete"]);

      const retry = await send("/pay", key);
      expect([retry.status, await retry.json(), retry.headers.get("idempotent-replayed")]).toEqual([
        201,
        { calls: 1 },
        null,
      ]);
      expect((await send("/pay", key)).headers.get("idempotent-replayed")).toBe("true");
    },
  );
});

describe("a request body stream that fails otherwise", () => {
  it("is answered as Fastify's own parser answers it: 400, not a server error", async () => {
    const logs: LogLine[] = [];
    const handled = vi.fn();
    running = await listen((app) => {
      // The app's own hook hands on a stream that fails (a body it cannot inflate, say).
      app.addHook(
        "preParsing",
        async () =>
          new Readable({
            read() {
              this.destroy(new Error("invalid compressed data"));
            },
          }),
      );
      app.post("/pay", { config: { interlock: idempotency(options()) } }, async () => handled());
    }, keepLogs(logs));
    const response = await send("/pay", newKey());
    expect(response.status).toBe(400);
    expect(logs.filter((line) => line.level >= 50)).toEqual([]);
    expect(handled).not.toHaveBeenCalled();
  });
});

describe("a key refused from the headers alone", () => {
  it("is refused (400 problem+json, an event) before Fastify parses the body, whose own error would answer first", async () => {
    const events: InterlockEvent[] = [];
    let calls = 0;
    running = await listen((app) => {
      const hooks = idempotency(options({ onEvent: (event) => events.push(event) }));
      app.post("/pay", { config: { interlock: hooks } }, async () => ({ call: ++calls }));
      const required = idempotency(options({ required: true, onEvent: (event) => events.push(event) }));
      app.route({ method: ["GET", "POST"], url: "/must", config: { interlock: required }, handler: async () => ({}) });
    });
    // No parser takes XML (Fastify: 415), an empty JSON body fails Fastify's JSON parser (400).
    const answers = [
      await send("/pay", "a b", { type: "application/xml", body: "<a/>" }),
      await send("/pay", "a b", { body: "" }),
      await send("/must", undefined, { type: "application/xml", body: "<a/>" }),
      await send("/must", undefined, { body: "", headers: { "x-request-id": "req-missing" } }),
    ];
    const seen = await Promise.all(
      answers.map(async (r) => [r.status, r.headers.get("content-type"), ((await r.json()) as { code: string }).code]),
    );
    const problem = expect.stringMatching(/^application\/problem\+json/);
    expect(seen).toEqual([
      [400, problem, "idempotency_key_invalid"],
      [400, problem, "idempotency_key_invalid"],
      [400, problem, "idempotency_key_missing"],
      [400, problem, "idempotency_key_missing"],
    ]);
    expect(calls).toBe(0);
    const rejected = (route: string, code: string) => ({ type: "idempotency.rejected", method: "POST", route, code });
    expect(events).toEqual([
      rejected("/pay", "idempotency_key_invalid"),
      rejected("/pay", "idempotency_key_invalid"),
      rejected("/must", "idempotency_key_missing"),
      { ...rejected("/must", "idempotency_key_missing"), correlationId: "req-missing" },
    ]);
    // A method the engine does not cover passes, and a valid key is claimed as ever.
    expect((await fetch(`${running.url}/must`)).status).toBe(200);
    expect((await send("/pay", newKey(), { body: '{"a":1}' })).status).toBe(200);
    expect(calls).toBe(1);
  });

  it("goes through onError like every refusal", async () => {
    const seen: string[] = [];
    await start(
      options({
        onError: (decision, _request, reply) => {
          seen.push(decision.error.code);
          return reply.code(decision.response.status).send({ error: "custom" });
        },
      }),
      (app, hooks) => {
        app.post("/pay", hooks, async () => ({ ok: true }));
      },
    );
    const invalid = await send("/pay", "a b", { type: "application/xml", body: "<a/>" });
    expect([invalid.status, await invalid.json()]).toEqual([400, { error: "custom" }]);
    expect(seen).toEqual(["idempotency_key_invalid"]);
  });

  it("a `required` function is asked after the route's own hooks, which it may read", async () => {
    const asked: unknown[] = [];
    running = await listen((app) => {
      const hooks = idempotency(
        options({
          required: (request) => {
            asked.push((request.context as { user?: string }).user);
            return true;
          },
        }),
      );
      app.decorateRequest("user", undefined);
      app.post(
        "/pay",
        {
          preHandler: async (request) => {
            (request as { user?: string }).user = "ann";
          },
          config: { interlock: hooks },
        },
        async () => ({}),
      );
    });
    const missing = await send("/pay", undefined, { body: '{"a":1}' });
    expect([missing.status, ((await missing.json()) as { code: string }).code]).toEqual([
      400,
      "idempotency_key_missing",
    ]);
    expect(asked).toEqual(["ann"]);
  });
});

describe("the watch for a hijack", () => {
  it("puts the same function on every reply as its hijack, not a closure per reply (~8 µs a request on Node 20)", async () => {
    const seen: Array<{ hijack: unknown; fastifys: unknown }> = [];
    await start(options(), (app, hooks) => {
      app.post("/pay", hooks, async (_request, reply: FastifyReply) => {
        seen.push({ hijack: reply.hijack, fastifys: Object.getPrototypeOf(reply).hijack });
        reply.code(201);
        return { ok: true };
      });
    });
    for (const key of [newKey(), newKey()]) expect((await send("/pay", key)).status).toBe(201);
    const [first, second] = seen;
    expect(first?.hijack).not.toBe(first?.fastifys); // watched
    expect(second?.hijack).toBe(first?.hijack);
  });
});

describe("the fingerprint covers the raw bytes", () => {
  it("JSON bodies that parse the same but differ in bytes are different requests (422)", async () => {
    await start(options(), (app, hooks) => {
      app.post("/pay", hooks, async (request) => ({ body: request.body }));
    });
    const key = newKey();
    expect((await send("/pay", key, { body: '{"amount":1}' })).status).toBe(200);
    const other = await send("/pay", key, { body: '{ "amount": 1 }' });
    expect([other.status, ((await other.json()) as { code: string }).code]).toEqual([422, "idempotency_key_mismatch"]);
  });

  it("non-UTF-8 bodies are compared as bytes, not as lossily decoded text", async () => {
    await start(options(), (app, hooks) => {
      app.post("/upload", hooks, async (request) => ({ size: (request.body as Buffer).length }));
    });
    const type = "application/octet-stream";
    const key = newKey();
    expect((await send("/upload", key, { body: new Uint8Array([0xff, 0x01]), type })).status).toBe(200);
    const same = await send("/upload", key, { body: new Uint8Array([0xff, 0x01]), type });
    expect(same.headers.get("idempotent-replayed")).toBe("true");
    // 0xff and 0xfe both decode to U+FFFD: only a byte comparison tells them apart.
    expect((await send("/upload", key, { body: new Uint8Array([0xfe, 0x01]), type })).status).toBe(422);
  });

  it("a parser that leaves the payload unread: the key is claimed once the bytes are in, and they are fingerprinted", async () => {
    let calls = 0;
    await start(options(), (app, hooks) => {
      app.addContentTypeParser("application/vnd.unread", (_request, _payload, done) => done(null, { unread: true }));
      app.post("/unread", hooks, async (request) => ({ calls: ++calls, body: request.body }));
    });
    const type = "application/vnd.unread";
    const key = newKey();
    const first = await send("/unread", key, { body: '{"amount":1}', type });
    expect([first.status, await first.json()]).toEqual([200, { calls: 1, body: { unread: true } }]);
    expect((await send("/unread", key, { body: '{"amount":1}', type })).headers.get("idempotent-replayed")).toBe(
      "true",
    );
    expect((await send("/unread", key, { body: '{"amount":2}', type })).status).toBe(422);
    expect(calls).toBe(1);
  });

  it("a parser that reads the request stream as UTF-8 text: U+FFFD in it, the bytes cannot be known (500 body_not_raw), not fingerprinted as a guess", async () => {
    let calls = 0;
    await start(options(), (app, hooks) => {
      app.addContentTypeParser("application/vnd.text", (_request, payload, done) => {
        let text = "";
        payload.setEncoding("utf8");
        payload.on("data", (chunk: string) => {
          text += chunk;
        });
        payload.on("end", () => done(null, text));
      });
      app.post("/text", hooks, async (request) => ({ calls: ++calls, body: request.body }));
    });
    const type = "application/vnd.text";
    const key = newKey();
    const valid = await send("/text", key, { body: "été", type });
    expect([valid.status, await valid.json()]).toEqual([200, { calls: 1, body: "été" }]);
    // 0xff and 0xfe both decode to U+FFFD: as text they would be one request.
    const lossy = await send("/text", newKey(), { body: new Uint8Array([0xff, 0x01]), type });
    expect([lossy.status, ((await lossy.json()) as { code: string }).code]).toEqual([500, "body_not_raw"]);
    expect(calls).toBe(1);
  });

  it("a body over bodyLimit → 413 body_too_large (problem+json, an event) only when the fingerprint needs it", async () => {
    const events: InterlockEvent[] = [];
    let calls = 0;
    running = await listen((app) => {
      const hooks = idempotency(options({ bodyLimit: 16, onEvent: (event) => events.push(event) }));
      app.post("/small", { config: { interlock: hooks } }, async (request) => ({ call: ++calls, body: request.body }));
    });
    const big = JSON.stringify({ pad: "x".repeat(64) });
    const response = await send("/small", newKey(), { body: big });
    expect(response.status).toBe(413);
    expect(response.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(await response.json()).toMatchObject({ code: "body_too_large", status: 413 });
    expect(calls).toBe(0);
    expect(events).toContainEqual({
      type: "idempotency.rejected",
      method: "POST",
      route: "/small",
      code: "body_too_large",
    });
    // Without a key nothing is fingerprinted: Fastify's parser reads the body as sent, all of it.
    const unkeyed = await send("/small", undefined, { body: big });
    expect(await unkeyed.json()).toEqual({ call: 1, body: { pad: "x".repeat(64) } });
  });

  it("bodyLimit defaults to 1 MiB; the route's own bodyLimit still bounds Fastify's parser (its own 413)", async () => {
    running = await listen(
      (app) => {
        app.post("/pay", { config: { interlock: idempotency(options()) } }, async () => ({ ok: true }));
        app.post("/small", { bodyLimit: 16, config: { interlock: idempotency(options()) } }, async () => ({}));
      },
      { bodyLimit: 2 * 1024 * 1024 },
    );
    const pad = (size: number) => `{"p":"${"x".repeat(size - 8)}"}`;
    expect((await send("/pay", newKey(), { body: pad(1024 * 1024) })).status).toBe(200);
    const over = await send("/pay", newKey(), { body: pad(1024 * 1024 + 1) });
    expect([over.status, ((await over.json()) as { code: string }).code]).toEqual([413, "body_too_large"]);
    const parser = await send("/small", newKey(), { body: pad(64) });
    expect([parser.status, ((await parser.json()) as { code: string }).code]).toEqual([
      413,
      "FST_ERR_CTP_BODY_TOO_LARGE",
    ]);
    expect(() => idempotency(options({ bodyLimit: 0 }))).toThrow(/bodyLimit/);
  });

  it("a body another hook consumed first → 500 body_not_raw at once (Fastify could not parse it either)", async () => {
    const events: InterlockEvent[] = [];
    running = await listen((app) => {
      app.addHook("preParsing", (_request, _reply, payload, done) => {
        payload.resume();
        payload.on("end", () => done(null, payload));
      });
      const hooks = idempotency(options({ onEvent: (event) => events.push(event) }));
      app.post("/pay", { config: { interlock: hooks } }, async () => ({}));
      app.get("/pay", { config: { interlock: hooks } }, async () => ({ get: true }));
    });
    for (const key of [newKey(), undefined]) {
      const response = await send("/pay", key, {
        body: '{"amount":1}',
        headers: { "x-request-id": "req-500-fastify" },
      });
      expect(response.status).toBe(500);
      expect(response.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(await response.json()).toMatchObject({ code: "body_not_raw", status: 500 });
    }
    // Refused by the adapter before the engine's begin, yet correlated as the engine's refusals are.
    expect(events).toEqual([
      {
        type: "idempotency.rejected",
        method: "POST",
        route: "/pay",
        code: "body_not_raw",
        correlationId: "req-500-fastify",
      },
      {
        type: "idempotency.rejected",
        method: "POST",
        route: "/pay",
        code: "body_not_raw",
        correlationId: "req-500-fastify",
      },
    ]);
    // A request without a body lost nothing.
    expect(await (await fetch(`${running?.url}/pay`)).json()).toEqual({ get: true });
  });
  it("the app's parser reads the request stream itself, with a key or without (one read for both), even as text", async () => {
    const seen: Array<{ own: boolean; body: unknown }> = [];
    running = await listen((app) => {
      // The app's own JSON parser, told whether it reads the request itself or a stream of kept bytes.
      app.addContentTypeParser("application/json", (request, payload, done) => {
        let text = "";
        payload.setEncoding("utf8");
        payload.on("data", (chunk: string) => {
          text += chunk;
        });
        payload.on("end", () => {
          seen.push({ own: payload === request.raw, body: JSON.parse(text) });
          done(null, JSON.parse(text));
        });
      });
      app.post("/pay", { config: { interlock: idempotency(options()) } }, async (request) => request.body);
    });
    const unkeyed = await send("/pay", undefined, { body: '{"amount":1}' });
    const keyed = await send("/pay", newKey(), { body: '{"amount":2}' });
    expect([unkeyed.status, await unkeyed.json(), keyed.status, await keyed.json()]).toEqual([
      200,
      { amount: 1 },
      200,
      { amount: 2 },
    ]);
    expect(seen).toEqual([
      { own: true, body: { amount: 1 } },
      { own: true, body: { amount: 2 } },
    ]);
  });

  it("hooks wired without preParsing: refused (500 body_not_raw) only when the fingerprint needs the body", async () => {
    let calls = 0;
    running = await listen((app) => {
      const { preHandler, onSend } = idempotency(options());
      app.route({
        method: ["GET", "POST"],
        url: "/half",
        preHandler,
        onSend,
        handler: async () => ({ call: ++calls }),
      });
      const custom = idempotency(options({ fingerprint: (request) => String(request.context.headers["x-digest"]) }));
      app.post("/custom", { preHandler: custom.preHandler, onSend: custom.onSend }, async () => ({ call: ++calls }));
    });
    expect((await fetch(`${running.url}/half`, { headers: { "idempotency-key": newKey() } })).status).toBe(200);
    expect((await send("/half", undefined)).status).toBe(200);
    const keyed = await send("/half", newKey());
    expect(keyed.status).toBe(500);
    expect(await keyed.json()).toMatchObject({ code: "body_not_raw", detail: expect.stringMatching(/preParsing/) });
    // A fingerprint of the app's own needs no raw bytes.
    const key = newKey();
    expect((await send("/custom", key, { headers: { "x-digest": "d1" } })).status).toBe(200);
    expect((await send("/custom", key, { headers: { "x-digest": "d1" } })).headers.get("idempotent-replayed")).toBe(
      "true",
    );
  });
});

describe("scoping", () => {
  it("the principal can come from the route's own auth hook, which runs first", async () => {
    let calls = 0;
    running = await listen((app) => {
      app.decorateRequest("user", null);
      const hooks = idempotency(options({ principal: (request) => (request.context as { user?: string }).user }));
      app.post(
        "/pay",
        {
          preHandler: (request, _reply, done) => {
            (request as { user?: string | undefined }).user = request.headers.authorization;
            done();
          },
          config: { interlock: hooks },
        },
        async () => ({ call: ++calls }),
      );
    });
    const key = newKey();
    const as = (user: string) => send("/pay", key, { headers: { authorization: user } });
    expect(await (await as("alice")).json()).toEqual({ call: 1 });
    expect(await (await as("bob")).json()).toEqual({ call: 2 });
    const replay = await as("alice");
    expect([await replay.json(), replay.headers.get("idempotent-replayed")]).toEqual([{ call: 1 }, "true"]);
  });

  it("keys are scoped by route pattern: two paths of one pattern share a scope, two routes do not", async () => {
    await start(options(), (app, hooks) => {
      app.post("/orders/:id", hooks, async (request) => ({ order: (request.params as { id: string }).id }));
      app.post("/refunds", hooks, async () => ({ refund: true }));
    });
    const key = newKey();
    expect((await send("/orders/1", key)).status).toBe(200);
    // Same scope (/orders/:id), another path in the fingerprint: the key was used for another request.
    expect((await send("/orders/2", key)).status).toBe(422);
    expect(await (await send("/refunds", key)).json()).toEqual({ refund: true });
  });

  it("a `route` function replaces the pattern", async () => {
    await start(options({ route: () => "shared" }), (app, hooks) => {
      app.post("/a", hooks, async () => "a");
      app.post("/b", hooks, async () => "b");
    });
    const key = newKey();
    expect((await send("/a", key)).status).toBe(200);
    expect((await send("/b", key)).status).toBe(422);
  });
});

describe("onError", () => {
  it("answers refusals the app's way; replays are still sent as stored", async () => {
    const seen: number[] = [];
    await start(
      options({
        onError: (decision, _request, reply) => {
          seen.push(decision.response.status);
          return reply.code(decision.response.status).send({ error: "custom" });
        },
      }),
      (app, hooks) => {
        app.post("/pay", hooks, async (_request, reply) => reply.code(201).send({ ok: true }));
      },
    );
    const invalid = await send("/pay", '"a", "b"');
    expect([invalid.status, await invalid.json()]).toEqual([400, { error: "custom" }]);
    const key = newKey();
    await send("/pay", key);
    const replay = await send("/pay", key);
    expect([replay.status, await replay.json()]).toEqual([201, { ok: true }]);
    expect(seen).toEqual([400]);
  });

  it("an onError that sends without returning the reply is the only answer: nothing is sent after it", async () => {
    const logged: Array<{ msg?: string; err?: { code?: string } }> = [];
    const stream = { write: (line: string) => void logged.push(JSON.parse(line)) };
    running = await listen(
      (app) => {
        const hooks = idempotency(
          options({
            onError: (_decision, _request, reply) => {
              reply.code(418).send({ error: "custom" });
            },
          }),
        );
        app.post("/pay", { config: { interlock: hooks } }, async (_request, reply) =>
          reply.code(201).send({ ok: true }),
        );
      },
      { logger: { level: "warn", stream } },
    );
    const invalid = await send("/pay", '"a", "b"');
    expect([invalid.status, await invalid.json()]).toEqual([418, { error: "custom" }]);
    // Fastify warns of a second send to a reply already sent (FST_ERR_REP_ALREADY_SENT).
    expect(logged).toEqual([]);
  });
});
