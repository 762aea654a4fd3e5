/** `idempotency()` specifics, over real HTTP on 127.0.0.1: capture, replay, scoping, bodies. */
import { Agent, request as httpRequest } from "node:http";
import { createRequire } from "node:module";
import { connect } from "node:net";
import { PassThrough, pipeline, Readable } from "node:stream";
import { gunzipSync, gzipSync } from "node:zlib";
import {
  DEFAULT_REPLAY_HEADERS,
  IdempotencyError,
  type IdempotencyEvent,
  type InterlockEvent,
  MemoryStore,
} from "@interlock/core";
import { leaveMidBody } from "@interlock/test-harness/web-requests";
import compression from "compression";
import express, {
  type ErrorRequestHandler,
  type Express,
  type Request,
  type RequestHandler,
  type Response,
} from "express";
import { afterEach, describe, expect, it, vi } from "vitest";
import { captureRawBody, type IdempotencyMiddlewareOptions, idempotency, releaseOnError } from "../src/index.js";
import { asyncRoute, untouchedBody } from "./framework.js";
import { keepRawBody, listen, postAndLeave, type Running, readByEvents, SlowStore, send, sleep } from "./helpers.js";

const running: Running[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((app) => app.close()));
});

const onError: ErrorRequestHandler = (error, _req, res, _next) => {
  const { status = 500, type } = error as { status?: number; type?: string };
  res.status(status).json({ error: type ?? (error as Error).message });
};

let sequence = 0;
const newKey = () => `key-${Date.now().toString(36)}-${++sequence}`;

interface World {
  url: string;
  runs: () => number;
  events: IdempotencyEvent[];
}

/**
 * An app whose routes count their runs. `routes` mounts them; `use` wraps each handler so
 * it counts (an async one as this Express major needs, see `asyncRoute`); `before` mounts app-wide middleware first; `errors` error handlers before `onError`.
 */
async function start(
  mount: (app: Express, use: (handler: RequestHandler) => RequestHandler, idem: RequestHandler) => void,
  options: Partial<IdempotencyMiddlewareOptions> = {},
  before: (app: Express) => void = () => {},
  errors: ErrorRequestHandler[] = [],
): Promise<World> {
  const app = express();
  before(app);
  const events: IdempotencyEvent[] = [];
  let runs = 0;
  const idem = idempotency({
    store: new MemoryStore(),
    principal: (request) => request.context.get("x-api-key"),
    onEvent: (event: InterlockEvent) => void events.push(event as IdempotencyEvent),
    ...options,
  });
  mount(
    app,
    (handler) =>
      asyncRoute((req, res, next) => {
        runs++;
        return handler(req, res, next);
      }),
    idem,
  );
  for (const handler of errors) app.use(handler);
  app.use(onError);
  const server = await listen(app);
  running.push(server);
  return { url: server.url, runs: () => runs, events };
}

const post = (
  url: string,
  key: string | undefined,
  body: string | Uint8Array = "{}",
  headers: Record<string, string> = {},
) =>
  send(url, {
    headers: {
      "content-type": "application/json",
      "x-api-key": "client-a",
      ...(key ? { "idempotency-key": key } : {}),
      ...headers,
    },
    body,
  });

const BINARY = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

describe("idempotency(): HEAD, when methods covers it", () => {
  // The first answer's framing is Node's for a HEAD: no Content-Length unless the handler set one.
  const heads: Record<string, RequestHandler> = {
    "res.write() then res.end()": (_req, res) => {
      res.write("abc");
      res.end("def");
    },
    "res.end(string)": (_req, res) => void res.end("hello"),
    "res.json(value) (Express sets the length)": (_req, res) => void res.json({ id: "pay_1" }),
  };
  for (const [name, handler] of Object.entries(heads)) {
    it(`${name}: the replay gives the first answer's Content-Length, or none`, async () => {
      const world = await start(
        (app, use, idem) => {
          app.get("/things", idem, use(handler));
        },
        { methods: ["POST", "HEAD"] },
      );
      const key = newKey();
      const head = () =>
        send(`${world.url}/things`, { method: "HEAD", headers: { "x-api-key": "a", "idempotency-key": key } });
      const first = await head();
      const replay = await head();
      expect([replay.headers["idempotent-replayed"], world.runs()]).toEqual(["true", 1]);
      expect(replay.headers["content-length"]).toBe(first.headers["content-length"]);
    });
  }

  it("a refusal to a HEAD is framed as to a GET: its problem's Content-Length", async () => {
    const world = await start(
      (app, use, idem) => void app.get("/things", idem, use(heads["res.end(string)"] as RequestHandler)),
      {
        methods: ["POST", "HEAD"],
      },
    );
    const refused = await send(`${world.url}/things`, {
      method: "HEAD",
      headers: { "x-api-key": "a", "idempotency-key": "two words" },
    });
    expect(refused.status).toBe(400);
    expect(Number(refused.headers["content-length"])).toBeGreaterThan(0);
    expect(world.runs()).toBe(0);
  });
});

describe("idempotency(): response capture", () => {
  const bodies: Record<string, RequestHandler> = {
    "res.send(Buffer) with binary bytes": (_req, res) =>
      void res.status(201).type("application/octet-stream").send(BINARY),
    "res.end(Buffer) after writeHead (headers only in the header block)": (_req, res) => {
      res.writeHead(202, { "content-type": "image/x-test", location: "/things/1", "x-trace": "abc" });
      res.end(BINARY);
    },
    "res.end(string, 'latin1')": (_req, res) => {
      res.statusCode = 200;
      res.setHeader("content-type", "text/plain; charset=latin1");
      res.end("café ÿ", "latin1");
    },
    "res.send(string) with non-ASCII text": (_req, res) => void res.status(201).send("<p>naïve — ✓</p>"),
    "res.json(value)": (_req, res) => void res.status(201).json({ id: "pay_1", amount: 1.5, note: "é" }),
    "res.sendStatus(204)": (_req, res) => void res.sendStatus(204),
    "res.status(409).end() with no body": (_req, res) => void res.status(409).end(),
  };
  for (const [name, handler] of Object.entries(bodies)) {
    it(`${name}: captured, replayed byte for byte, handler run once`, async () => {
      const world = await start((app, use, idem) => {
        app.disable("x-powered-by");
        app.post("/things", idem, use(handler));
      });
      const key = newKey();
      const first = await post(`${world.url}/things`, key);
      const replay = await post(`${world.url}/things`, key);
      expect(world.runs()).toBe(1);
      expect(replay.status).toBe(first.status);
      expect(replay.body).toEqual(first.body);
      expect(replay.headers["content-type"]).toEqual(first.headers["content-type"]);
      expect(replay.headers.location).toEqual(first.headers.location);
      expect(replay.headers["idempotent-replayed"]).toBe("true");
      expect(replay.headers["x-trace"]).toBeUndefined(); // not on the replay allow-list
      expect(world.events.map((e) => e.type)).toContain("idempotency.completed");
    });
  }

  it("write() then end(): captured whole and replayed exactly, the writes reaching the client as they come", async () => {
    const world = await start((app, use, idem) =>
      app.post(
        "/written",
        idem,
        use((_req, res) => {
          res.status(201).type("text/plain").set("location", "/things/2");
          const reused = Buffer.from("two,");
          res.write("one,");
          // Node lets the app reuse a buffer once its write is done: the capture keeps a copy.
          res.write(reused, () => reused.write("XXXX"));
          res.write("caf\u00e9,", "latin1");
          setTimeout(() => res.end(BINARY.subarray(0, 4)), 10);
        }),
      ),
    );
    const key = newKey();
    const first = await post(`${world.url}/written`, key);
    const expected = Buffer.concat([
      Buffer.from("one,two,"),
      Buffer.from("caf\u00e9,", "latin1"),
      BINARY.subarray(0, 4),
    ]);
    expect([first.status, first.body]).toEqual([201, expected]);
    const replay = await post(`${world.url}/written`, key);
    expect([replay.status, replay.body, replay.headers["idempotent-replayed"]]).toEqual([201, expected, "true"]);
    expect([replay.headers["content-type"], replay.headers.location]).toEqual([
      first.headers["content-type"],
      "/things/2",
    ]);
    expect(world.runs()).toBe(1);
    expect(world.events.map((e) => e.type)).toContain("idempotency.completed");
  });

  it("write() then end(): the first answer's Connection, Keep-Alive and Transfer-Encoding are never replayed, even when listed", async () => {
    const world = await start(
      (app, use, idem) =>
        app.post(
          "/written",
          idem,
          use((_req, res) => {
            res.status(201).type("text/plain");
            res.write("one,"); // the header block goes out now, with this connection's own headers
            res.end("two");
          }),
        ),
      { replayHeaders: [...DEFAULT_REPLAY_HEADERS, "connection", "keep-alive", "transfer-encoding", "content-length"] },
    );
    const key = newKey();
    const keepAlive = { connection: "keep-alive" };
    const first = await post(`${world.url}/written`, key, "{}", keepAlive);
    expect([first.headers.connection, first.headers["transfer-encoding"]]).toEqual(["keep-alive", "chunked"]);
    const replay = await post(`${world.url}/written`, key); // Connection: close
    expect([replay.status, replay.text, replay.headers["idempotent-replayed"]]).toEqual([201, "one,two", "true"]);
    expect(replay.headers.connection).toBe("close");
    expect(replay.headers["keep-alive"]).toBeUndefined();
    expect(replay.headers["transfer-encoding"]).toBeUndefined();
    expect(replay.headers["content-length"]).toBe("7");
  });

  it("behind an app-wide compression(): the body is stored as the route wrote it and compressed again on each replay", async () => {
    // compression() wraps the response before idempotency() does: the capture sees the route's
    // plain bytes, while the header block gains compression's Content-Encoding.
    const world = await start(
      (app, use, idem) => {
        const route = use((_req, res) => {
          res.status(201).type("application/json");
          res.write('{"paid":'); // the header block goes out now, gzip chosen
          res.end("true}");
        });
        app.post("/written", idem, route);
        app.post("/sent", idem, (_req, res) => void res.status(201).json({ paid: true }));
      },
      {},
      (app) => app.use(compression({ threshold: 0 })),
    );
    const gzip = { "accept-encoding": "gzip" };
    const plain = (response: { headers: Record<string, unknown>; body: Buffer }) =>
      response.headers["content-encoding"] === "gzip" ? gunzipSync(response.body).toString() : response.body.toString();
    for (const path of ["/written", "/sent"]) {
      const key = newKey();
      const first = await post(`${world.url}${path}`, key, "{}", gzip);
      expect([first.status, first.headers["content-encoding"], plain(first)]).toEqual([201, "gzip", '{"paid":true}']);
      const replay = await post(`${world.url}${path}`, key, "{}", gzip);
      expect([replay.status, replay.headers["idempotent-replayed"], plain(replay)]).toEqual([
        201,
        "true",
        '{"paid":true}',
      ]);
      // A client that takes no gzip gets the same body, plain.
      const identity = await post(`${world.url}${path}`, key, "{}", { "accept-encoding": "identity" });
      expect([identity.headers["content-encoding"], identity.text]).toEqual([undefined, '{"paid":true}']);
    }
  });

  it("writeHead(status, [name, value, …]) then write(): the listed headers are stored and replayed", async () => {
    const world = await start((app, use, idem) =>
      app.post(
        "/listed",
        idem,
        use((_req, res) => {
          res.writeHead(201, ["Content-Type", "text/plain", "Location", "/things/3"]);
          res.write("one,");
          res.end("two");
        }),
      ),
    );
    const key = newKey();
    const first = await post(`${world.url}/listed`, key);
    const replay = await post(`${world.url}/listed`, key);
    expect([replay.status, replay.text, replay.headers["idempotent-replayed"]]).toEqual([201, "one,two", "true"]);
    expect([replay.headers["content-type"], replay.headers.location]).toEqual([
      first.headers["content-type"],
      "/things/3",
    ]);
    expect(world.runs()).toBe(1);
  });

  it.each([
    [
      "write() then end()",
      (res: Response) => {
        for (let i = 0; i < 4; i++) res.write("x".repeat(512));
        res.end("!");
      },
    ],
    ["res.send() in one piece", (res: Response) => res.send(`${"x".repeat(2048)}!`)],
  ])(
    "%s past the store's maxRecordBytes: passed through whole, uncached, the key released as too_large",
    async (_name, answer) => {
      const world = await start(
        (app, use, idem) =>
          app.post(
            "/big",
            idem,
            use((_req, res) => {
              res.type("text/plain");
              answer(res);
            }),
          ),
        { store: new MemoryStore({ maxRecordBytes: 1024 }) },
      );
      const key = newKey();
      expect((await post(`${world.url}/big`, key)).text).toBe(`${"x".repeat(2048)}!`);
      const again = await post(`${world.url}/big`, key);
      expect([again.text.length, again.headers["idempotent-replayed"]]).toEqual([2049, undefined]);
      expect(world.runs()).toBe(2);
      expect(world.events.filter((e) => e.type === "idempotency.released")).toMatchObject([
        { reason: "too_large", status: 200 },
        { reason: "too_large", status: 200 },
      ]);
    },
  );

  it("a piped stream passes through uncached, the key released", async () => {
    const world = await start((app, use, idem) =>
      app.post(
        "/file",
        idem,
        use((_req, res) => {
          res.type("application/octet-stream");
          Readable.from([BINARY.subarray(0, 100), BINARY.subarray(100)]).pipe(res);
        }),
      ),
    );
    const key = newKey();
    expect((await post(`${world.url}/file`, key)).body).toEqual(BINARY);
    const again = await post(`${world.url}/file`, key);
    expect([again.body, again.headers["idempotent-replayed"]]).toEqual([BINARY, undefined]);
    expect(world.runs()).toBe(2);
    expect(world.events.filter((e) => e.type === "idempotency.released")).toMatchObject([
      { reason: "streamed", status: 200 },
      { reason: "streamed", status: 200 },
    ]);
  });

  it("a route that answers twice: the first answer goes out and is stored, the second throws as without Interlock", async () => {
    const thrown: unknown[] = [];
    const world = await start((app, use, idem) =>
      app.post(
        "/twice",
        idem,
        use((_req, res) => {
          res.status(201).json({ first: true });
          try {
            res.status(400).json({ second: true });
          } catch (error) {
            thrown.push((error as { code?: string }).code);
          }
        }),
      ),
    );
    const key = newKey();
    const first = await post(`${world.url}/twice`, key);
    expect([first.status, first.json()]).toEqual([201, { first: true }]);
    expect(thrown).toEqual(["ERR_HTTP_HEADERS_SENT"]);
    const replay = await post(`${world.url}/twice`, key);
    expect([replay.status, replay.body, replay.headers["idempotent-replayed"]]).toEqual([201, first.body, "true"]);
    expect(world.runs()).toBe(1);
  });

  it("a route that answers, then calls res.end() again: answered and stored as without Interlock (the second end does nothing)", async () => {
    const world = await start((app, use, idem) =>
      app.post(
        "/ended-twice",
        idem,
        use((_req, res) => {
          res.status(201).json({ id: "pay_1" });
          res.end(); // a "make sure it is ended" helper
        }),
      ),
    );
    const key = newKey();
    const first = await post(`${world.url}/ended-twice`, key);
    expect([first.status, first.text]).toEqual([201, '{"id":"pay_1"}']);
    const replay = await post(`${world.url}/ended-twice`, key);
    expect([replay.status, replay.body, replay.headers["idempotent-replayed"]]).toEqual([201, first.body, "true"]);
    expect(world.runs()).toBe(1);
  });

  it("a route that writes or ends again with bytes after its end: Node's write-after-end error, as without Interlock, after the whole first answer", async () => {
    const errors: string[] = [];
    const world = await start((app, use, idem) =>
      app.post(
        "/written-after",
        idem,
        use((_req, res) => {
          res.on("error", (error) => errors.push((error as { code?: string }).code ?? error.message));
          res.status(201).json({ id: "pay_1" });
          res.write("late");
          res.end("later");
        }),
      ),
    );
    const key = newKey();
    const first = await post(`${world.url}/written-after`, key);
    expect([first.status, first.text]).toEqual([201, '{"id":"pay_1"}']);
    await vi.waitFor(() => expect(errors).toEqual(["ERR_STREAM_WRITE_AFTER_END", "ERR_STREAM_WRITE_AFTER_END"]));
    const replay = await post(`${world.url}/written-after`, key);
    expect([replay.status, replay.body]).toEqual([201, first.body]);
  });

  it("a client that leaves a piped stream: the key stays claimed while the stream goes on, released once it is over; the retry then runs", async () => {
    let piped = 0;
    let finishFirst = () => {};
    const world = await start((app, use, idem) =>
      app.post(
        "/piped",
        idem,
        use((_req, res) => {
          res.type("text/plain");
          const source = new PassThrough();
          source.pipe(res);
          if (++piped > 1) return void source.end("all");
          // The first answer goes on after its client left: the route still produces it.
          source.write("one,");
          finishFirst = () => {
            source.write("two,");
            source.end("three");
          };
        }),
      ),
    );
    const key = newKey();
    expect(await postAndLeave(`${world.url}/piped`, key)).toBe(200);
    await sleep(50); // the response has closed
    const meanwhile = await post(`${world.url}/piped`, key);
    expect([meanwhile.status, (meanwhile.json() as { code: string }).code]).toEqual([409, "request_in_flight"]);
    expect(world.runs()).toBe(1);
    finishFirst();
    await vi.waitFor(() => expect(world.events.map((e) => e.type)).toContain("idempotency.released"));
    expect(world.events.find((e) => e.type === "idempotency.released")).toMatchObject({ reason: "streamed" });
    const retry = await post(`${world.url}/piped`, key);
    expect([retry.status, retry.text]).toEqual([200, "all"]);
    expect(world.runs()).toBe(2);
  });

  it("a client that leaves a piped stream that then fails: the key is released once it has failed", async () => {
    let failFirst = () => {};
    let piped = 0;
    const world = await start((app, use, idem) =>
      app.post(
        "/piped",
        idem,
        use((_req, res) => {
          const source = new PassThrough();
          source.pipe(res);
          if (++piped > 1) return void source.end("all");
          source.write("one,");
          failFirst = () => source.destroy(new Error("db down"));
        }),
      ),
    );
    const key = newKey();
    expect(await postAndLeave(`${world.url}/piped`, key)).toBe(200);
    await sleep(50);
    expect((await post(`${world.url}/piped`, key)).status).toBe(409);
    failFirst();
    await vi.waitFor(() => expect(world.events.map((e) => e.type)).toContain("idempotency.released"));
    expect((await post(`${world.url}/piped`, key)).text).toBe("all");
    expect(world.runs()).toBe(2);
  });

  it("the store settles before the client reads the answer: an immediate retry replays, or runs again", async () => {
    const world = await start(
      (app, use, idem) => {
        app.post(
          "/pay",
          idem,
          use((_req, res) => void res.status(201).json({ ok: 1 })),
        );
        app.post(
          "/fail",
          idem,
          use((_req, res) => void res.status(503).json({ ok: 0 })),
        );
        app.post(
          "/written",
          idem,
          use((_req, res) => void res.status(201).write("a", () => res.end("b"))),
        );
      },
      { store: new SlowStore(50) },
    );
    const key = newKey();
    for (let i = 0; i < 3; i++) expect((await post(`${world.url}/pay`, key)).status).toBe(201);
    expect(world.runs()).toBe(1);
    for (let i = 0; i < 3; i++) expect((await post(`${world.url}/fail`, key)).status).toBe(503);
    for (let i = 0; i < 3; i++) expect((await post(`${world.url}/written`, key)).text).toBe("ab");
    expect(world.runs()).toBe(5); // /pay once, /fail three times (5xx released), /written once
  });
});

describe("idempotency(): answers framed by their length", () => {
  it("an HTTP/1.0 keep-alive client gets the replay and the next answer on the same connection", async () => {
    const world = await start((app, use, idem) => {
      app.post(
        "/payments",
        idem,
        use((_req, res) => void res.status(201).json({ ok: 1 })),
      );
    });
    const { hostname, port } = new URL(world.url);
    const socket = connect(Number(port), hostname);
    let received = "";
    socket.setEncoding("latin1").on("data", (chunk: string) => {
      received += chunk;
    });
    const closed = new Promise<boolean>((resolve) => {
      socket.on("close", () => resolve(true));
      setTimeout(() => resolve(false), 1_000);
    });
    const request = (key: string) =>
      `POST /payments HTTP/1.0\r\nConnection: keep-alive\r\nContent-Type: application/json\r\n` +
      `X-Api-Key: client-a\r\nIdempotency-Key: ${key}\r\nContent-Length: 2\r\n\r\n{}`;
    const [x, y] = [newKey(), newKey()];
    for (const key of [x, x, y]) {
      socket.write(request(key));
      await sleep(100); // one at a time: each answer before the next request
    }
    expect(await closed).toBe(false);
    socket.destroy();
    const answers = received.split("HTTP/1.1 ").slice(1);
    expect(answers.map((answer) => answer.slice(0, 3))).toEqual(["201", "201", "201"]);
    expect(answers[1]).toMatch(/content-length: 8\r\n/i);
    expect(answers[1]).toMatch(/idempotent-replayed: true/i);
    expect(world.runs()).toBe(2);
  });
});

describe("idempotency(): failures release the key", () => {
  it("with releaseOnError, a handler that throws releases the key whatever the error handler answers", async () => {
    const world = await start(
      (app, use, idem) =>
        app.post(
          "/pay",
          idem,
          use(async () => {
            throw Object.assign(new Error("card declined"), { status: 402, type: "declined" });
          }),
        ),
      { cache: "all" }, // even a policy that stores every status never stores a throw
      () => {},
      [releaseOnError],
    );
    const key = newKey();
    expect((await post(`${world.url}/pay`, key)).status).toBe(402);
    const retry = await post(`${world.url}/pay`, key);
    expect([retry.status, retry.headers["idempotent-replayed"]]).toEqual([402, undefined]);
    expect(world.runs()).toBe(2);
    expect(world.events.filter((e) => e.type === "idempotency.released")).toMatchObject([
      { reason: "error" },
      { reason: "error" },
    ]);
  });

  it("without releaseOnError, a throw → the error handler's 500, which releases the key (cache policy)", async () => {
    const world = await start((app, use, idem) =>
      app.post(
        "/pay",
        idem,
        use(async () => {
          throw new Error("provider down");
        }),
      ),
    );
    const key = newKey();
    expect((await post(`${world.url}/pay`, key)).status).toBe(500);
    expect((await post(`${world.url}/pay`, key)).status).toBe(500);
    expect(world.runs()).toBe(2);
    expect(world.events.filter((e) => e.type === "idempotency.released")).toHaveLength(2);
  });

  it("an app with no error handler of its own: a throw answered by Express's final handler releases the key, its event naming the route", async () => {
    const events: IdempotencyEvent[] = [];
    let runs = 0;
    const app = express();
    const idem = idempotency({
      store: new MemoryStore(),
      principal: false,
      onEvent: (event: InterlockEvent) => void events.push(event as IdempotencyEvent),
    });
    app.post(
      "/pay",
      idem,
      asyncRoute(() => {
        runs++;
        throw new Error("provider down");
      }),
    );
    const server = await listen(app);
    running.push(server);
    const key = newKey();
    expect((await post(`${server.url}/pay`, key)).status).toBe(500);
    // The final handler runs once the app's router has exited: the pattern is read then.
    await vi.waitFor(() => expect(events.map((e) => e.type)).toContain("idempotency.released"));
    expect(events.find((e) => e.type === "idempotency.released")).toMatchObject({ route: "/pay", reason: "status" });
    expect((await post(`${server.url}/pay`, key)).status).toBe(500);
    expect(runs).toBe(2);
  });

  it("a route that writes part of its answer, then destroys the response (a body that failed mid-way): the key is released as for a throw, the retry runs", async () => {
    let n = 0;
    const world = await start(
      (app, use, idem) =>
        app.post(
          "/partial",
          idem,
          use((_req, res) => {
            if (++n > 1) return void res.status(201).json({ n });
            res.write("partial");
            setTimeout(() => res.destroy(), 20);
          }),
        ),
      // Renewed leases would keep a key nothing settles claimed past its lockTtlMs.
      { lockTtlMs: 600 },
    );
    const key = newKey();
    await expect(post(`${world.url}/partial`, key)).rejects.toThrow(); // the connection is reset
    await sleep(1_500);
    const retry = await post(`${world.url}/partial`, key);
    expect([retry.status, retry.json()]).toEqual([201, { n: 2 }]);
    expect(world.runs()).toBe(2);
    expect(world.events.filter((e) => e.type === "idempotency.released")).toMatchObject([{ reason: "error" }]);
  });

  it("a route that destroys the response before writing anything: the key is released at once", async () => {
    let n = 0;
    const world = await start((app, use, idem) =>
      app.post(
        "/destroyed",
        idem,
        use((_req, res) => {
          if (++n > 1) return void res.status(201).json({ n });
          res.destroy();
        }),
      ),
    );
    const key = newKey();
    await expect(post(`${world.url}/destroyed`, key)).rejects.toThrow();
    await vi.waitFor(() => expect(world.events.map((e) => e.type)).toContain("idempotency.released"));
    expect((await post(`${world.url}/destroyed`, key)).status).toBe(201);
    expect(world.runs()).toBe(2);
  });

  it("a client that leaves before a non-piped answer is whole: the route's later end is recorded, the retry replays it", async () => {
    const world = await start((app, use, idem) =>
      app.post(
        "/late",
        idem,
        use((_req, res) => {
          res.status(201).type("text/plain");
          res.write("one,");
          // The route goes on after its client left (Node does not destroy the response), and ends its answer.
          res.once("close", () => res.end("two"));
        }),
      ),
    );
    const key = newKey();
    expect(await postAndLeave(`${world.url}/late`, key)).toBe(201);
    await vi.waitFor(() => expect(world.events.map((e) => e.type)).toContain("idempotency.completed"));
    const retry = await post(`${world.url}/late`, key);
    expect([retry.status, retry.text, retry.headers["idempotent-replayed"]]).toEqual([201, "one,two", "true"]);
    expect(world.runs()).toBe(1);
  });

  // The lease is renewed every third of lockTtlMs while the route runs; a client that leaves an
  // answer the route began stops that, settling nothing: the claim lapses from two thirds of lockTtlMs to
  // lockTtlMs after the close.
  const cutOffLease = { lockTtlMs: 1_000, extendLease: { maxMs: 60_000 } };

  it("a client that leaves an answer written with res.write(), whose route ends it 100 ms later: that end is recorded, the retry replays it, the route ran once", async () => {
    const world = await start(
      (app, use, idem) =>
        app.post(
          "/pay",
          idem,
          use((_req, res) => {
            res.writeHead(201, { "content-type": "text/plain" });
            res.write("charged,");
            // The payment is made: the route goes on after its client left, and ends its answer.
            res.once("close", () => setTimeout(() => res.end("receipt"), 100));
          }),
        ),
      cutOffLease,
    );
    const key = newKey();
    expect(await postAndLeave(`${world.url}/pay`, key)).toBe(201);
    await vi.waitFor(() => expect(world.events.map((e) => e.type)).toContain("idempotency.completed"));
    const retry = await post(`${world.url}/pay`, key);
    expect([retry.status, retry.text, retry.headers["idempotent-replayed"]]).toEqual([201, "charged,receipt", "true"]);
    expect(world.runs()).toBe(1);
  });

  it("a client that leaves an answer written with res.write(), whose route never ends it (server-sent events): a retry is in flight until the lease lapses (lockTtlMs, not extendLease's maxMs), then runs", async () => {
    let n = 0;
    const world = await start(
      (app, use, idem) =>
        app.post(
          "/events",
          idem,
          use((_req, res) => {
            res.writeHead(200, { "content-type": "text/event-stream" });
            if (++n > 1) return void res.end("data: again\n\n");
            res.write("data: first\n\n");
            const timer = setInterval(() => res.write("data: tick\n\n"), 10);
            res.once("close", () => clearInterval(timer));
          }),
        ),
      cutOffLease,
    );
    const key = newKey();
    expect(await postAndLeave(`${world.url}/events`, key)).toBe(200);
    expect((await post(`${world.url}/events`, key)).status).toBe(409);
    await sleep(1_500);
    const retry = await post(`${world.url}/events`, key);
    expect([retry.status, retry.text, retry.headers["idempotent-replayed"]]).toEqual([
      200,
      "data: again\n\n",
      undefined,
    ]);
    expect(world.runs()).toBe(2);
    expect(world.events.map((e) => e.type)).not.toContain("idempotency.released");
  });

  it("a route that begins its answer only once its client left, and never ends it: the lease is renewed no more, the retry runs once it lapses", async () => {
    let n = 0;
    let arrived = () => {};
    const ran = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    const world = await start(
      (app, use, idem) =>
        app.post(
          "/late",
          idem,
          use((_req, res) => {
            if (++n > 1) return void res.status(201).json({ ok: n });
            arrived();
            // Closed already when it writes: the response emits no more "close".
            res.once("close", () => setTimeout(() => res.writeHead(200).write("too late"), 10));
          }),
        ),
      cutOffLease,
    );
    const key = newKey();
    const headers = { "content-type": "application/json", "x-api-key": "client-a", "idempotency-key": key };
    const leaving = httpRequest(`${world.url}/late`, { method: "POST", headers, agent: false });
    leaving.on("error", () => {});
    leaving.end("{}");
    await ran;
    leaving.destroy();
    await sleep(1_600);
    const retry = await post(`${world.url}/late`, key);
    expect([retry.status, retry.json()]).toEqual([201, { ok: 2 }]);
  });

  it("without releaseOnError, a route that throws once its answer began (Express's final handler then destroys the socket): the lease is renewed no more, the retry runs once it lapses", async () => {
    let n = 0;
    const world = await start(
      (app, use, idem) =>
        app.post(
          "/pay",
          idem,
          use((_req, res) => {
            if (++n > 1) return void res.status(201).json({ paid: true });
            res.writeHead(200, { "content-type": "text/plain" });
            res.write("partial");
            throw new Error("boom after headers");
          }),
        ),
      cutOffLease,
    );
    const key = newKey();
    await expect(post(`${world.url}/pay`, key)).rejects.toThrow();
    await sleep(1_500);
    const retry = await post(`${world.url}/pay`, key);
    expect([retry.status, retry.json()]).toEqual([201, { paid: true }]);
    expect(world.runs()).toBe(2);
  });

  it("a stream piped with pipeline() that fails mid-way (pipeline destroys the response): the key is released once, the retry runs", async () => {
    let n = 0;
    const world = await start((app, use, idem) =>
      app.post(
        "/pipeline",
        idem,
        use((_req, res) => {
          const source = new PassThrough();
          pipeline(source, res, () => {});
          if (++n > 1) return void source.end("all");
          source.write("one,");
          setTimeout(() => source.destroy(new Error("db down")), 20);
        }),
      ),
    );
    const key = newKey();
    await expect(post(`${world.url}/pipeline`, key)).rejects.toThrow();
    await vi.waitFor(() => expect(world.events.map((e) => e.type)).toContain("idempotency.released"));
    await sleep(50);
    expect(world.events.filter((e) => e.type === "idempotency.released")).toMatchObject([{ reason: "streamed" }]);
    expect((await post(`${world.url}/pipeline`, key)).text).toBe("all");
    expect(world.runs()).toBe(2);
  });

  it("a 4xx answer is stored and replayed (cache policy non-5xx)", async () => {
    const world = await start((app, use, idem) =>
      app.post(
        "/pay",
        idem,
        use((_req, res) => void res.status(402).json({ error: "card declined" })),
      ),
    );
    const key = newKey();
    await post(`${world.url}/pay`, key);
    const replay = await post(`${world.url}/pay`, key);
    expect([replay.status, replay.headers["idempotent-replayed"], world.runs()]).toEqual([402, "true", 1]);
  });
});

describe("idempotency(): scoping by principal and route", () => {
  it("the principal function gets the Express request as context", async () => {
    const principals: Array<string | undefined> = [];
    const world = await start(
      (app, use, idem) =>
        app.post(
          "/pay",
          idem,
          use((_req, res) => void res.status(201).json({})),
        ),
      {
        principal: (request) => {
          principals.push(request.context.get("authorization"));
          return request.context.get("authorization");
        },
      },
    );
    const key = newKey();
    await post(`${world.url}/pay`, key, "{}", { authorization: "Bearer a" });
    await post(`${world.url}/pay`, key, "{}", { authorization: "Bearer b" });
    await post(`${world.url}/pay`, key, "{}", { authorization: "Bearer a" });
    expect(world.runs()).toBe(2);
    expect(principals).toEqual(["Bearer a", "Bearer b", "Bearer a"]);
  });

  it("keys are scoped by the matched route pattern, with the router's mount path", async () => {
    const world = await start((app, use, idem) => {
      const router = express.Router();
      router.post(
        "/orders/:id",
        idem,
        use((req, res) => void res.status(201).json({ id: req.params.id })),
      );
      router.post(
        "/refunds/:id",
        idem,
        use((req, res) => void res.status(201).json({ id: req.params.id })),
      );
      app.use("/v1", router);
    });
    const key = newKey();
    expect((await post(`${world.url}/v1/orders/1`, key)).status).toBe(201);
    // Same pattern, other path: the same key under the same scope, for another request → 422.
    const other = await post(`${world.url}/v1/orders/2`, key);
    expect([other.status, (other.json() as { code: string }).code]).toEqual([422, "idempotency_key_mismatch"]);
    // Another route: its own scope.
    expect((await post(`${world.url}/v1/refunds/1`, key)).status).toBe(201);
    expect(world.runs()).toBe(2);
    const routes = world.events.filter((e) => e.type === "idempotency.first").map((e) => e.route);
    expect(routes).toEqual(["/v1/orders/:id", "/v1/refunds/:id"]);
  });

  it("a mount path written in other case reaches the same route, and its scope: 422, not a second run", async () => {
    const world = await start((app, use, idem) => {
      const router = express.Router();
      router.post(
        "/payments",
        idem,
        use((_req, res) => void res.status(201).json({ paid: true })),
      );
      app.use("/v1", router);
    });
    const key = newKey();
    expect((await post(`${world.url}/v1/payments`, key)).status).toBe(201);
    // Express routes ignore case by default: /V1 reaches the route, so it is the route's scope,
    // and its other path a mismatch.
    const other = await post(`${world.url}/V1/payments`, key);
    expect([other.status, (other.json() as { code: string }).code]).toEqual([422, "idempotency_key_mismatch"]);
    expect(world.runs()).toBe(1);
    expect(world.events.filter((e) => e.type === "idempotency.first").map((e) => e.route)).toEqual(["/v1/payments"]);
  });

  it("mounted app-wide, a path in other case or with a trailing slash is the same scope: 422, not a second run", async () => {
    const world = await start((app, use, idem) => {
      app.use(idem);
      app.post(
        "/payments",
        use((_req, res) => void res.status(201).json({ paid: true })),
      );
    });
    const key = newKey();
    expect((await post(`${world.url}/payments`, key)).status).toBe(201);
    for (const variant of ["/Payments", "/payments/"]) {
      expect((await post(`${world.url}${variant}`, key)).status).toBe(422);
    }
    expect(world.runs()).toBe(1);
  });

  it("with case-sensitive and strict routing on, the app's own rules apply: each path its own scope", async () => {
    const world = await start((app, use, idem) => {
      app.set("case sensitive routing", true);
      app.set("strict routing", true);
      app.use(idem);
      for (const path of ["/payments", "/Payments", "/payments/"]) {
        app.post(
          path,
          use((_req, res) => void res.status(201).json({ path })),
        );
      }
    });
    const key = newKey();
    for (const path of ["/payments", "/Payments", "/payments/"]) {
      expect((await post(`${world.url}${path}`, key)).status).toBe(201);
    }
    expect(world.runs()).toBe(3);
  });

  it("mounted with app.use: keys are scoped by the path; events name the pattern once it matched, never the path", async () => {
    const world = await start((app, use, idem) => {
      app.use(idem);
      const router = express.Router();
      router.post(
        "/orders/:id",
        use((req, res) => void res.status(201).json({ id: req.params.id })),
      );
      app.use("/v1", router);
    });
    const key = newKey();
    // No pattern is known when the key is claimed: each path is its own scope.
    expect((await post(`${world.url}/v1/orders/1`, key)).status).toBe(201);
    expect((await post(`${world.url}/v1/orders/2`, key)).status).toBe(201);
    expect((await post(`${world.url}/v1/orders/2`, key)).headers["idempotent-replayed"]).toBe("true");
    expect((await post(`${world.url}/v1/orders/3`, "a b")).status).toBe(400);
    expect(world.runs()).toBe(2);
    // Until the route runs (and when it never does), events name no route: a path would be one metric series per URL.
    expect(world.events.map((e) => [e.type, "route" in e ? e.route : "none"])).toEqual([
      ["idempotency.first", "none"],
      ["idempotency.completed", "/v1/orders/:id"],
      ["idempotency.first", "none"],
      ["idempotency.completed", "/v1/orders/:id"],
      ["idempotency.replayed", "none"],
      ["idempotency.rejected", "none"],
    ]);
  });

  it("mounted with app.use, the scope is the path; `route` overrides it", async () => {
    const world = await start(
      (app, use, idem) => {
        app.use("/api", idem);
        app.post(
          "/api/a",
          use((_req, res) => void res.status(201).json({})),
        );
      },
      { route: (req) => `custom:${req.baseUrl}${req.path}` },
    );
    await post(`${world.url}/api/a`, newKey());
    expect(world.events.find((e) => e.type === "idempotency.first")?.route).toBe("custom:/api/a");
  });

  it("the same idempotency() mounted app-wide and again on the route: one claim, the route's answer stored and replayed", async () => {
    const world = await start((app, use, idem) => {
      app.use("/pay", idem);
      app.post(
        "/pay",
        idem,
        use((_req, res) => void res.status(201).json({ paid: true })),
      );
    });
    const key = newKey();
    const first = await post(`${world.url}/pay`, key);
    expect([first.status, first.json()]).toEqual([201, { paid: true }]);
    const retry = await post(`${world.url}/pay`, key);
    expect([retry.status, retry.headers["idempotent-replayed"], retry.json()]).toEqual([201, "true", { paid: true }]);
    expect(world.runs()).toBe(1);
    expect(world.events.map((e) => e.type)).toEqual([
      "idempotency.first",
      "idempotency.completed",
      "idempotency.replayed",
    ]);
  });
});

/** A multipart/form-data body of a field and a file, as a browser's FormData sends it. */
async function multipart(): Promise<{ body: Buffer; type: string }> {
  const form = new FormData();
  form.append("title", "invoice");
  form.append("file", new Blob(["hello pdf"]), "a.pdf");
  const request = new Request("http://localhost/", { method: "POST", body: form });
  return { body: Buffer.from(await request.arrayBuffer()), type: request.headers.get("content-type") as string };
}

// multer, the usual Express upload parser (busboy's), reached through NestJS's platform, which runs it for `FileInterceptor`.
const multer = createRequire(createRequire(import.meta.url).resolve("@nestjs/platform-express"))("multer") as () => {
  single(field: string): RequestHandler;
};

describe("idempotency(): request bodies", () => {
  const echo: RequestHandler = (req, res) =>
    void res.status(201).json({ body: Buffer.isBuffer(req.body) ? `buffer:${req.body.length}` : (req.body ?? null) });

  it("with no parser, a keyed request is read here and the route gets what this major's own parsers give", async () => {
    const world = await start((app, use, idem) => app.post("/echo", idem, use(echo)));
    const url = `${world.url}/echo`;
    const cases: Array<[string, string | Buffer, unknown]> = [
      ["application/json", '{"a":[1,2]}', { a: [1, 2] }],
      ["application/x-www-form-urlencoded", "a=1&b=two", { a: "1", b: "two" }],
      ["text/plain", "hello", "hello"],
      ["application/octet-stream", BINARY, "buffer:256"],
      ["application/xml", "<a/>", untouchedBody ?? null],
    ];
    for (const [type, body, expected] of cases) {
      const response = await post(url, newKey(), body, { "content-type": type });
      expect([type, response.status, (response.json() as { body: unknown }).body]).toEqual([type, 201, expected]);
    }
  });

  it.each([
    ["listens for data", (req: Request) => readByEvents(req)],
    [
      "iterates it",
      async (req: Request) => {
        const chunks: Buffer[] = [];
        for await (const chunk of req) chunks.push(chunk as Buffer);
        return Buffer.concat(chunks);
      },
    ],
    [
      "pipes it",
      (req: Request) => {
        const out = new PassThrough();
        req.pipe(out);
        return readByEvents(out);
      },
    ],
    [
      "reads it with read()",
      (req: Request) =>
        new Promise<Buffer>((resolve, reject) => {
          const chunks: Buffer[] = [];
          req.on("readable", () => {
            for (let chunk = req.read(); chunk !== null; chunk = req.read()) chunks.push(chunk as Buffer);
          });
          req.once("end", () => resolve(Buffer.concat(chunks)));
          req.once("error", reject);
        }),
    ],
  ])(
    "a keyed body of a type no parser takes (multipart) is read here, and the route that %s reads it whole",
    async (_how, read) => {
      const world = await start((app, use, idem) =>
        app.post(
          "/upload",
          idem,
          use(async (req, res) => {
            const bytes = await read(req);
            res.status(201).json({ bytes: bytes.toString("base64") });
          }),
        ),
      );
      const { body, type } = await multipart();
      const key = newKey();
      const first = await post(`${world.url}/upload`, key, body, { "content-type": type });
      expect([first.status, Buffer.from((first.json() as { bytes: string }).bytes, "base64")]).toEqual([201, body]);
      const retry = await post(`${world.url}/upload`, key, body, { "content-type": type });
      expect([retry.status, retry.headers["idempotent-replayed"], retry.text]).toEqual([201, "true", first.text]);
      expect(world.runs()).toBe(1);
    },
  );

  it("a keyed body of a type no parser takes, which the route never reads: its request closes once the answer is out, as without Interlock", async () => {
    let closed!: Promise<void>;
    const world = await start((app, use, idem) =>
      app.post(
        "/upload",
        idem,
        use((req, res) => {
          closed = new Promise((resolve) => req.once("close", () => resolve()));
          res.status(201).json({ ok: true });
        }),
      ),
    );
    const { body, type } = await multipart();
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const status = await new Promise<unknown>((resolve, reject) => {
        const headers = { "content-type": type, "idempotency-key": newKey(), "content-length": body.length };
        const req = httpRequest(`${world.url}/upload`, { method: "POST", headers, agent }, (res) => {
          res.resume().on("end", () => resolve(res.statusCode));
        });
        req.on("error", reject);
        req.end(body);
      });
      expect(status).toBe(201);
      // The connection stays open (kept alive): only the drained request can close.
      const outcome = await Promise.race([closed.then(() => "closed"), sleep(1_000).then(() => "still open")]);
      expect(outcome).toBe("closed");
    } finally {
      agent.destroy();
    }
  });

  it("multer after idempotency(): a keyed upload is parsed, stored and replayed", async () => {
    const world = await start((app, use, idem) =>
      app.post(
        "/documents",
        idem,
        multer().single("file"),
        use((req, res) => {
          const { file } = req as Request & { file?: { originalname: string; size: number } };
          res
            .status(201)
            .json({ title: (req.body as { title?: string }).title, name: file?.originalname, size: file?.size });
        }),
      ),
    );
    const { body, type } = await multipart();
    const key = newKey();
    const first = await post(`${world.url}/documents`, key, body, { "content-type": type });
    expect([first.status, first.json()]).toEqual([201, { title: "invoice", name: "a.pdf", size: 9 }]);
    const retry = await post(`${world.url}/documents`, key, body, { "content-type": type });
    expect([retry.status, retry.headers["idempotent-replayed"], retry.json()]).toEqual([
      201,
      "true",
      { title: "invoice", name: "a.pdf", size: 9 },
    ]);
    expect(world.runs()).toBe(1);
  });

  it("a keyed body sent compressed: the route gets what the same body sent plain gets, whatever its type, an empty one too", async () => {
    const world = await start((app, use, idem) => app.post("/echo", idem, use(echo)));
    const url = `${world.url}/echo`;
    const cases: Array<[string | undefined, string | Buffer]> = [
      ["application/json", '{"a":[1,2]}'],
      ["text/plain", "hello"],
      ["application/octet-stream", BINARY],
      ["application/xml", "<a/>"],
      ["application/json", ""],
      ["application/xml", ""],
      [undefined, ""],
    ];
    const seen = async (type: string | undefined, body: string | Buffer, coding?: string) => {
      const headers = { "x-api-key": "client-a", "idempotency-key": newKey() };
      const response = await send(url, {
        headers: { ...headers, ...(type && { "content-type": type }), ...(coding && { "content-encoding": coding }) },
        body,
      });
      return [response.status, (response.json() as { body: unknown }).body];
    };
    for (const [type, body] of cases) {
      const gzipped = await seen(type, body === "" ? "" : gzipSync(body), "gzip");
      expect([type, body.length, ...gzipped]).toEqual([type, body.length, ...(await seen(type, body))]);
    }
  });

  it("the body is read only when the engine needs it: other requests reach the app's own parser unread", async () => {
    let parsed = 0;
    const parser = express.json({ verify: () => void parsed++ });
    const world = await start((app, use, idem) => {
      app.post("/echo", idem, parser, use(echo));
      app.get("/echo", idem, parser, use(echo));
    });
    const url = `${world.url}/echo`;
    const unkeyed = await post(url, undefined, '{"a":1}');
    expect([unkeyed.status, unkeyed.json()]).toEqual([201, { body: { a: 1 } }]);
    expect(parsed).toBe(1); // the app's parser read it
    const keyed = await post(url, newKey(), '{"a":2}');
    expect([keyed.status, keyed.json()]).toEqual([201, { body: { a: 2 } }]);
    expect(parsed).toBe(1); // read here; the app's parser stood aside
    const get = await send(url, { method: "GET", headers: { "idempotency-key": newKey(), "content-length": "0" } });
    expect(get.status).toBe(201);
  });

  it("the fingerprint is over the raw bytes: the same JSON with other spacing is another request", async () => {
    const world = await start((app, use, idem) => app.post("/echo", idem, use(echo)));
    const key = newKey();
    expect((await post(`${world.url}/echo`, key, '{"a":1}')).status).toBe(201);
    const spaced = await post(`${world.url}/echo`, key, '{"a": 1}');
    expect([spaced.status, (spaced.json() as { code: string }).code]).toEqual([422, "idempotency_key_mismatch"]);
  });

  it("with express.json({ verify: captureRawBody }) first, the raw bytes are still fingerprinted", async () => {
    const world = await start(
      (app, use, idem) => app.post("/echo", idem, use(echo)),
      {},
      (app) => app.use(express.json({ verify: captureRawBody })),
    );
    const key = newKey();
    const first = await post(`${world.url}/echo`, key, '{"a":1}');
    expect([first.status, first.json()]).toEqual([201, { body: { a: 1 } }]);
    expect((await post(`${world.url}/echo`, key, '{"a": 1}')).status).toBe(422);
    expect((await post(`${world.url}/echo`, key, '{"a":1}')).headers["idempotent-replayed"]).toBe("true");
  });

  it("behind a host that keeps the bytes as a Buffer req.rawBody (NestJS rawBody: true, Cloud Functions), they are fingerprinted", async () => {
    const world = await start(
      (app, use, idem) => app.post("/echo", idem, use(echo)),
      {},
      (app) => app.use(express.json({ verify: keepRawBody })),
    );
    const key = newKey();
    const first = await post(`${world.url}/echo`, key, '{"a":1}');
    expect([first.status, first.json()]).toEqual([201, { body: { a: 1 } }]);
    expect((await post(`${world.url}/echo`, key, '{"a": 1}')).status).toBe(422);
    expect((await post(`${world.url}/echo`, key, '{"a":1}')).headers["idempotent-replayed"]).toBe("true");
  });

  it("with a plain express.json() first: keyed requests → 500 body_not_raw with advice; others pass", async () => {
    const world = await start(
      (app, use, idem) => {
        app.post("/echo", idem, use(echo));
        app.get("/echo", idem, use(echo));
      },
      {},
      (app) => app.use(express.json()),
    );
    const refused = await post(`${world.url}/echo`, newKey(), '{"a":1}');
    expect(refused.status).toBe(500);
    expect(refused.headers["content-type"]).toBe("application/problem+json");
    const problem = refused.json() as { code: string; detail: string };
    expect(problem.code).toBe("body_not_raw");
    expect(problem.detail).toContain("verify: captureRawBody");
    expect(problem.detail).toContain("rawBody: true");
    expect((await post(`${world.url}/echo`, undefined, '{"a":1}')).status).toBe(201);
    expect((await send(`${world.url}/echo`, { method: "GET", headers: { "idempotency-key": newKey() } })).status).toBe(
      201,
    );
    expect(world.runs()).toBe(2);
    // A keyed request without a body (Content-Length: 0) lost no bytes to the parser: it runs, once.
    const key = newKey();
    const empty = await post(`${world.url}/echo`, key, "", { "content-type": "application/json" });
    expect(empty.status).toBe(201);
    const replayed = await post(`${world.url}/echo`, key, "", { "content-type": "application/json" });
    expect([replayed.status, replayed.headers["idempotent-replayed"]]).toEqual([201, "true"]);
    expect(world.runs()).toBe(3);
  });

  it("with a plain express.json() first and a custom fingerprint, no raw bytes are needed", async () => {
    const world = await start(
      (app, use, idem) => app.post("/echo", idem, use(echo)),
      { fingerprint: (request) => JSON.stringify(request.context.body) },
      (app) => app.use(express.json()),
    );
    const key = newKey();
    expect((await post(`${world.url}/echo`, key, '{"a":1}')).status).toBe(201);
    expect((await post(`${world.url}/echo`, key, '{"a": 1}')).headers["idempotent-replayed"]).toBe("true");
  });

  it("a body over bodyLimit → 413 body_too_large when it must be read, reported as an event; nothing claimed", async () => {
    const world = await start((app, use, idem) => app.post("/echo", idem, use(echo)), { bodyLimit: 32 });
    const key = newKey();
    const big = JSON.stringify({ a: "x".repeat(40) });
    for (const type of ["application/json", "application/xml"]) {
      const response = await post(`${world.url}/echo`, key, big, { "content-type": type });
      expect(response.status).toBe(413);
      expect(response.json()).toMatchObject({ code: "body_too_large", status: 413 });
    }
    expect(world.events.filter((e) => (e.type as string) === "idempotency.rejected")).toEqual([
      { type: "idempotency.rejected", method: "POST", route: "/echo", code: "body_too_large" },
      { type: "idempotency.rejected", method: "POST", route: "/echo", code: "body_too_large" },
    ]);
    expect((await post(`${world.url}/echo`, key, '{"a":1}')).status).toBe(201);
    // Without a key nothing is fingerprinted, so nothing is read or limited here.
    expect((await post(`${world.url}/echo`, undefined, big)).status).toBe(201);
    expect(world.runs()).toBe(2);
  });

  it("bytes an app's parser kept past bodyLimit → 413 body_too_large, the route not run (the parser's own limit is larger)", async () => {
    const world = await start(
      (app, use, idem) => app.post("/echo", idem, use(echo)),
      { bodyLimit: 32 },
      (app) => app.use(express.json({ verify: captureRawBody })),
    );
    const key = newKey();
    const big = JSON.stringify({ a: "x".repeat(40) });
    for (const _ of [1, 2]) {
      const response = await post(`${world.url}/echo`, key, big);
      expect([response.status, response.json()]).toEqual([413, expect.objectContaining({ code: "body_too_large" })]);
    }
    expect(world.runs()).toBe(0);
    expect((await post(`${world.url}/echo`, key, '{"a":1}')).status).toBe(201); // nothing was claimed
  });

  it("a chunked body (no Content-Length) that grows past bodyLimit → 413 body_too_large, for a type Express's parsers read too", async () => {
    const world = await start((app, use, idem) => app.post("/echo", idem, use(echo)), { bodyLimit: 32 });
    const key = newKey();
    const chunks = [Buffer.from('{"a":"'), Buffer.from("x".repeat(40)), Buffer.from('"}')];
    for (const type of ["application/json", "application/xml"]) {
      const headers = { "content-type": type, "x-api-key": "client-a", "idempotency-key": key };
      const response = await send(`${world.url}/echo`, { headers, body: chunks });
      expect(response.status).toBe(413);
      expect(response.json()).toMatchObject({ code: "body_too_large", status: 413 });
    }
    expect(world.runs()).toBe(0);
  });

  it("bodyLimit defaults to 1 MiB (DEFAULT_REQUEST_BODY_LIMIT), and must be a positive whole number", async () => {
    const world = await start((app, use, idem) =>
      app.post(
        "/echo",
        idem,
        use((_req, res) => void res.json({})),
      ),
    );
    const pad = (size: number) => `{"p":"${"x".repeat(size - 8)}"}`;
    expect((await post(`${world.url}/echo`, newKey(), pad(1024 * 1024))).status).toBe(200);
    expect((await post(`${world.url}/echo`, newKey(), pad(1024 * 1024 + 1))).status).toBe(413);
    for (const bodyLimit of [0, -1, 1.5]) {
      expect(() => idempotency({ store: new MemoryStore(), principal: false, bodyLimit })).toThrow(/bodyLimit/);
    }
  });

  it.each([
    ["application/json", "read by this major's JSON parser"],
    ["application/xml", "read raw"],
  ])(
    "a %s body cut off mid-way (the client went away) is 400 body_incomplete, reported (%s); the key stays free",
    async (type) => {
      const errors: unknown[] = [];
      const world = await start(
        (app, use, idem) =>
          app.post(
            "/echo",
            idem,
            use((_req, res) => void res.status(201).json({ ok: true })),
          ),
        {},
        () => {},
        [(error, _req, _res, next) => next(errors.push(error) && error)],
      );
      const key = newKey();
      await leaveMidBody(world.url, "/echo", { "content-type": type, "x-api-key": "a", "idempotency-key": key });
      await vi.waitFor(() => expect(world.events.map((e) => e.type)).toContain("idempotency.rejected"));
      expect(world.events).toEqual([
        expect.objectContaining({ type: "idempotency.rejected", code: "body_incomplete" }),
      ]);
      expect([world.runs(), errors]).toEqual([0, []]);
      const body = type === "application/json" ? "{}" : "<a/>";
      expect((await post(`${world.url}/echo`, key, body, { "content-type": type, "x-api-key": "a" })).status).toBe(201);
    },
  );

  it("malformed JSON is the parser's usual 400, before any key is claimed", async () => {
    const world = await start((app, use, idem) => app.post("/echo", idem, use(echo)));
    const key = newKey();
    const bad = await post(`${world.url}/echo`, key, '{"a":');
    expect([bad.status, bad.json()]).toEqual([400, { error: "entity.parse.failed" }]);
    expect((await post(`${world.url}/echo`, key, '{"a":1}')).status).toBe(201);
  });
});

describe("idempotency(): onError", () => {
  it("takes over refusals (400, 409, 422) with core's decision, but never replays", async () => {
    const seen: string[] = [];
    const world = await start(
      (app, use, idem) =>
        app.post(
          "/pay",
          idem,
          use(async (req, res) => {
            await sleep((req.body as { delayMs?: number }).delayMs ?? 0);
            res.status(201).json({ ok: true });
          }),
        ),
      {
        onError(decision, _req, res) {
          expect(decision).toMatchObject({ action: "respond", replayed: false });
          expect(decision.error).toBeInstanceOf(IdempotencyError);
          const code = decision.error.code;
          seen.push(code);
          if (code !== "request_in_flight") res.status(400).json({ mine: code });
        },
      },
    );
    const url = `${world.url}/pay`;
    const invalid = await post(url, '"a", "b"');
    expect([invalid.status, invalid.json()]).toEqual([400, { mine: "idempotency_key_invalid" }]);
    const key = newKey();
    const slow = post(url, key, '{"delayMs":150}');
    await sleep(50);
    const inFlight = await post(url, key, '{"delayMs":150}');
    expect([inFlight.status, inFlight.headers["retry-after"]]).toEqual([409, "1"]); // onError let the default go
    expect((await slow).status).toBe(201);
    const mismatch = await post(url, key, '{"delayMs":1}');
    expect(mismatch.json()).toEqual({ mine: "idempotency_key_mismatch" });
    expect((await post(url, key, '{"delayMs":150}')).headers["idempotent-replayed"]).toBe("true");
    expect(seen).toEqual(["idempotency_key_invalid", "request_in_flight", "idempotency_key_mismatch"]);
  });
});
