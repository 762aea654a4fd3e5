/** The pieces adapters share to read bodies: the default limit, the option check, the collector. */
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { createServer as createHttp2Server, type Http2ServerRequest } from "node:http2";
import { connect } from "node:net";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { RawHttp2Connection } from "../../test-harness/src/raw-http2.js";
import {
  announcesBody,
  BodyCollector,
  BodyError,
  bodyLimitOption,
  DEFAULT_REQUEST_BODY_LIMIT,
  declaredTooLarge,
  forEachHeader,
  type HttpResponse,
  IdempotencyError,
  InterlockConfigError,
  type NodeRequestHead,
  problemResponse,
  readRequestBody,
  requestCutOff,
  StoreUnavailableError,
  WebhookVerificationError,
} from "../src/index.js";

const bytes = (...values: number[]) => Uint8Array.from(values);

describe("bodyLimitOption", () => {
  it("defaults, and takes a positive whole number of bytes", () => {
    expect(DEFAULT_REQUEST_BODY_LIMIT).toBe(1024 * 1024);
    expect(bodyLimitOption(undefined, DEFAULT_REQUEST_BODY_LIMIT)).toBe(1024 * 1024);
    expect(bodyLimitOption(16, DEFAULT_REQUEST_BODY_LIMIT)).toBe(16);
  });

  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, "16" as unknown as number])("refuses %s", (value) => {
    expect(() => bodyLimitOption(value, DEFAULT_REQUEST_BODY_LIMIT)).toThrow(InterlockConfigError);
  });
});

describe("announcesBody", () => {
  const http1 = (headers: NodeRequestHead["headers"]): NodeRequestHead => ({ headers, httpVersionMajor: 1 });
  const http2 = (headers: NodeRequestHead["headers"], endAfterHeaders: boolean): NodeRequestHead => ({
    headers,
    httpVersionMajor: 2,
    stream: { endAfterHeaders },
  });

  it("HTTP/1.1: content only when Transfer-Encoding or a non-zero Content-Length announces it (RFC 9112 §6.3)", () => {
    expect(announcesBody(http1({}))).toBe(false);
    expect(announcesBody(http1({ "content-length": "0" }))).toBe(false);
    expect(announcesBody(http1({ "content-length": "12" }))).toBe(true);
    expect(announcesBody(http1({ "transfer-encoding": "chunked" }))).toBe(true);
  });

  it("HTTP/2: content unless the HEADERS frame ended the stream or the length is 0 (RFC 9113 §8.1.1)", () => {
    expect(announcesBody(http2({}, false))).toBe(true);
    expect(announcesBody(http2({}, true))).toBe(false);
    expect(announcesBody(http2({ "content-length": "0" }, false))).toBe(false);
    expect(announcesBody(http2({ "content-length": "12" }, false))).toBe(true);
  });
});

describe("BodyCollector", () => {
  it("joins the chunks of a body within the limit; a lone chunk is returned as it is", () => {
    const one = bytes(1, 2, 3);
    const lone = new BodyCollector(3);
    expect(lone.add(one)).toBe(true);
    expect(lone.body()).toBe(one);
    const several = new BodyCollector(8);
    for (const chunk of [bytes(1), bytes(), "é", bytes(0xff)]) expect(several.add(chunk)).toBe(true);
    expect(several.body()).toEqual(bytes(1, 0xc3, 0xa9, 0xff));
    expect([several.size, several.overflowed]).toEqual([4, false]);
    expect(new BodyCollector(1).body()).toEqual(bytes());
  });

  it("copies a chunk when asked, so a writer may reuse its buffer", () => {
    const reused = bytes(1, 2);
    const collector = new BodyCollector(8);
    collector.add(reused, true);
    reused[0] = 9;
    expect(collector.body()).toEqual(bytes(1, 2));
  });

  it("forget() lets go of the chunks kept once past the limit; it still says it overflowed", () => {
    const collector = new BodyCollector(4);
    collector.add(bytes(1, 2, 3));
    expect(collector.add(bytes(4, 5))).toBe(false);
    collector.forget();
    expect([collector.chunks, collector.overflowed, collector.size, collector.body()]).toEqual([
      [],
      true,
      5,
      undefined,
    ]);
  });

  it("past the limit keeps nothing more: add answers false and body() is undefined", () => {
    const collector = new BodyCollector(4);
    expect(collector.add(bytes(1, 2, 3))).toBe(true);
    expect(collector.add(bytes(4, 5))).toBe(false);
    expect(collector.add(bytes())).toBe(false);
    expect([collector.size, collector.overflowed, collector.body()]).toEqual([5, true, undefined]);
    // What was kept before the limit is still there, for a reader that hands on what it read.
    expect(collector.chunks).toEqual([bytes(1, 2, 3)]);
  });
});

describe("problemResponse", () => {
  const problemOf = (response: HttpResponse) => JSON.parse(new TextDecoder().decode(response.body));

  it("is the error's problem+json at its status, with Retry-After when the error says when to retry", () => {
    const unavailable = problemResponse(new StoreUnavailableError("redis", "down"));
    expect([unavailable.status, unavailable.headers]).toEqual([
      503,
      [
        ["content-type", "application/problem+json"],
        ["retry-after", "2"],
      ],
    ]);
    expect(problemOf(unavailable)).toMatchObject({
      type: "urn:interlock:problem:store_unavailable",
      status: 503,
      code: "store_unavailable",
    });
    const tooLarge = problemResponse(BodyError.tooLarge(8));
    expect([tooLarge.status, tooLarge.headers, problemOf(tooLarge).detail]).toEqual([
      413,
      [["content-type", "application/problem+json"]],
      "the request body exceeds 8 bytes",
    ]);
  });

  it("sends the Retry-After it is given, 0 included", () => {
    const inFlight = new IdempotencyError("request_in_flight", "still running", { retryAfterSeconds: 0 });
    expect(problemResponse(inFlight).headers).toContainEqual(["retry-after", "0"]);
    expect(problemResponse(BodyError.incomplete(), 5).headers).toContainEqual(["retry-after", "5"]);
  });

  it("a 415 unsupported_content_encoding names identity, the one coding accepted (RFC 9110 §15.5.16)", () => {
    const encoded = problemResponse(new WebhookVerificationError("unsupported_content_encoding", "gzip"));
    expect([encoded.status, encoded.headers]).toEqual([
      415,
      [
        ["content-type", "application/problem+json"],
        ["accept-encoding", "identity"],
      ],
    ]);
  });

  it("a delivery refused 401 carries a challenge naming its scheme (RFC 9110 §15.5.2); other answers none", () => {
    const challengeOf = (response: HttpResponse) =>
      response.headers.filter(([name]) => name === "www-authenticate").map(([, value]) => value);
    const refused = (code: "no_matching_signature" | "timestamp_too_old" | "missing_header", scheme?: string) =>
      problemResponse(new WebhookVerificationError(code, "refused", scheme));
    expect(challengeOf(refused("no_matching_signature", "stripe"))).toEqual(['Signature scheme="stripe"']);
    expect(challengeOf(refused("timestamp_too_old", 'a"b\\c'))).toEqual(['Signature scheme="a\\"b\\\\c"']);
    expect(challengeOf(refused("no_matching_signature"))).toEqual(["Signature"]);
    expect(challengeOf(refused("missing_header", "stripe"))).toEqual([]);
    expect(challengeOf(problemResponse(new StoreUnavailableError("redis", "down")))).toEqual([]);
  });
});

describe("forEachHeader", () => {
  const calls = (pairs: Array<[string, string]>) => {
    const seen: Array<[string, string | string[]]> = [];
    forEachHeader(pairs, (name, value) => seen.push([name, value]));
    return seen;
  };

  it("sets each name once, in lower case, in the order names first appear; a repeated one (in any case) with its values in order", () => {
    expect(
      calls([
        ["Content-Type", "application/json"],
        ["Link", "</a>; rel=next"],
        ["Idempotent-Replayed", "true"],
        ["link", "</b>; rel=prev"],
        ["LINK", "</c>; rel=last"],
      ]),
    ).toEqual([
      ["content-type", "application/json"],
      ["link", ["</a>; rel=next", "</b>; rel=prev", "</c>; rel=last"]],
      ["idempotent-replayed", "true"],
    ]);
    expect(calls([])).toEqual([]);
  });

  it("property: a short list (scanned) and a long one (grouped in a Map) give what grouping by lower-case name gives", () => {
    const name = fc.constantFrom("a", "A", "b", "B", "x-c", "X-C", "x-d", "vary", "Vary", "link");
    const pairs = fc.array(fc.tuple(name, fc.string({ maxLength: 4 })), { maxLength: 40, size: "max" });
    fc.assert(
      fc.property(pairs, (list) => {
        const model = new Map<string, string[]>();
        for (const [pairName, value] of list) {
          const lower = pairName.toLowerCase();
          model.set(lower, [...(model.get(lower) ?? []), value]);
        }
        const expected = [...model].map(([lower, values]) => [lower, values.length === 1 ? values[0] : values]);
        expect(calls(list as Array<[string, string]>)).toEqual(expected);
      }),
      { numRuns: 500 },
    );
  });
});

/** Waits until `done()` holds, for 5 s at most. */
async function until(done: () => boolean): Promise<void> {
  for (let waited = 0; !done() && waited < 5000; waited += 10) await new Promise((resolve) => setTimeout(resolve, 10));
}

describe("readRequestBody", () => {
  let server: Server | undefined;
  afterEach(() => {
    server?.close();
    server?.closeAllConnections();
    server = undefined;
  });

  /** A server on 127.0.0.1 that reads each request with `readRequestBody` and reports the outcome. */
  /** A server reading each request's body after `prepare`, which may wait (an earlier async step). */
  async function reading(limit: number, prepare: (request: IncomingMessage) => unknown = () => {}) {
    const outcomes: Array<Uint8Array | BodyError> = [];
    const begun: IncomingMessage[] = [];
    server = createServer(async (request, response) => {
      begun.push(request);
      const preparing = prepare(request);
      if (preparing instanceof Promise) await preparing;
      const read = await readRequestBody(request, limit);
      outcomes.push(read);
      response.statusCode = read instanceof BodyError ? read.status : 200;
      response.end(read instanceof BodyError ? read.code : `${read.byteLength}`);
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const { port } = server.address() as { port: number };
    return { url: `http://127.0.0.1:${port}/`, port, outcomes, begun };
  }

  it("reads a body sent in pieces to its end, as sent", async () => {
    const { url, outcomes } = await reading(1024);
    const pieces = ['{"amount":', "1000,", '"note":"caf\u00e9"}'];
    const body = new ReadableStream({
      start(controller) {
        for (const piece of pieces) controller.enqueue(new TextEncoder().encode(piece));
        controller.close();
      },
    });
    const response = await fetch(url, { method: "POST", body, duplex: "half" } as RequestInit);
    expect(response.status).toBe(200);
    expect(Buffer.from(outcomes[0] as Uint8Array).toString("utf8")).toBe(pieces.join(""));
  });

  it("reads a stream set to give text as the bytes it carried", async () => {
    const { url, outcomes } = await reading(1024, (request) => request.setEncoding("utf8"));
    const sent = '{"note":"caf\u00e9 \u{1f600}"}';
    expect((await fetch(url, { method: "POST", body: sent })).status).toBe(200);
    expect(outcomes[0]).toEqual(new Uint8Array(Buffer.from(sent, "utf8")));
  });

  it("past the limit while reading, answers 413 at once and drains the rest: the connection serves the next request", async () => {
    const { port, outcomes } = await reading(16);
    const socket = connect(port, "127.0.0.1");
    await once(socket, "connect");
    let received = "";
    socket.setEncoding("latin1").on("data", (chunk: string) => {
      received += chunk;
    });
    // Chunked: no length declared, so the limit is found as the bytes arrive.
    const big = "x".repeat(64 * 1024);
    socket.write(
      `POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n${big.length.toString(16)}\r\n${big}\r\n0\r\n\r\n`,
    );
    socket.write("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok");
    await until(() => /\r\n\r\n2$/.test(received));
    socket.destroy();
    expect(received).toMatch(/^HTTP\/1\.1 413 [\s\S]*body_too_large[\s\S]*HTTP\/1\.1 200 [\s\S]*\r\n\r\n2$/);
    expect(outcomes.map((o) => (o instanceof BodyError ? o.code : o.byteLength))).toEqual(["body_too_large", 2]);
  });

  it("a client that leaves mid-body is 400 body_incomplete", async () => {
    const { port, outcomes, begun } = await reading(1024);
    const socket = connect(port, "127.0.0.1");
    await once(socket, "connect");
    socket.write("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly ten b");
    await until(() => begun.length === 1);
    socket.destroy();
    await until(() => outcomes.length === 1);
    expect(outcomes.map((o) => (o instanceof BodyError ? o.code : o.byteLength))).toEqual(["body_incomplete"]);
  });

  // Something asynchronous ran before the read (an authentication lookup, a rate limiter) and
  // the client left meanwhile: the request's `close` fired before the read began.
  it("a request its client left before the read began is 400 body_incomplete at once, over HTTP/1.1", async () => {
    const { port, outcomes, begun } = await reading(
      1024,
      (request) => new Promise((resolve) => request.once("close", resolve)),
    );
    const socket = connect(port, "127.0.0.1");
    await once(socket, "connect");
    socket.write("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly ten b");
    await until(() => begun.length === 1);
    socket.destroy();
    await until(() => outcomes.length === 1);
    expect(outcomes.map((o) => (o instanceof BodyError ? o.code : o.byteLength))).toEqual(["body_incomplete"]);
  });

  it("a request whose HTTP/2 stream was reset before the read began is 400 body_incomplete, never the bytes so far as the body", async () => {
    const outcomes: Array<Uint8Array | BodyError> = [];
    const begun: Http2ServerRequest[] = [];
    const h2 = createHttp2Server(async (request) => {
      begun.push(request);
      // The compatibility API closes the request, then ends it as if the body were complete.
      await new Promise((resolve) => request.once("close", resolve));
      outcomes.push(await readRequestBody(request, 1024));
    });
    h2.listen(0, "127.0.0.1");
    await once(h2, "listening");
    const connection = await RawHttp2Connection.open(`http://127.0.0.1:${(h2.address() as { port: number }).port}`);
    try {
      const headers = { "content-length": "100" };
      const stream = await connection.request({ method: "POST", path: "/", headers }, Buffer.from('{"a":1}'));
      await until(() => begun.length === 1);
      await connection.reset(stream);
      await until(() => outcomes.length === 1);
    } finally {
      await connection.close();
      h2.close();
    }
    expect(outcomes.map((o) => (o instanceof BodyError ? o.code : o.byteLength))).toEqual(["body_incomplete"]);
  });
});

describe("requestCutOff", () => {
  it("is true for a request over before its end (destroyed unended; HTTP/2's reset, aborted), false otherwise", () => {
    expect(requestCutOff({ destroyed: true, readableEnded: false })).toBe(true);
    expect(requestCutOff({ destroyed: false, readableEnded: true, aborted: true })).toBe(true);
    expect(requestCutOff({ destroyed: true, readableEnded: true })).toBe(false);
    expect(requestCutOff({ destroyed: false, readableEnded: false, aborted: false })).toBe(false);
    expect(requestCutOff({})).toBe(false);
  });
});

describe("declaredTooLarge", () => {
  const head = (headers: Record<string, string>): NodeRequestHead => ({ headers, httpVersionMajor: 1 });

  it("is 413 body_too_large past the limit; nothing at the limit, without a length, or with a chunked body", () => {
    expect(declaredTooLarge(head({ "content-length": "17" }), 16)).toMatchObject({
      status: 413,
      code: "body_too_large",
    });
    expect(declaredTooLarge(head({ "content-length": "16" }), 16)).toBeUndefined();
    expect(declaredTooLarge(head({}), 16)).toBeUndefined();
    expect(declaredTooLarge(head({ "transfer-encoding": "chunked" }), 16)).toBeUndefined();
  });

  let server: Server | undefined;
  afterEach(() => {
    server?.close();
    server?.closeAllConnections();
    server = undefined;
  });

  it("readRequestBody answers it before the body is sent; Node drains the body left unread, and the connection serves the next request", async () => {
    const limit = 16;
    server = createServer(async (request, response) => {
      const read = await readRequestBody(request, limit);
      response.statusCode = read instanceof BodyError ? read.status : 200;
      response.end(read instanceof BodyError ? read.code : `${read.byteLength}`);
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const socket = connect((server.address() as { port: number }).port, "127.0.0.1");
    await once(socket, "connect");
    let received = "";
    socket.setEncoding("latin1").on("data", (chunk: string) => {
      received += chunk;
    });
    const big = "x".repeat(64 * 1024);
    socket.write(`POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ${big.length}\r\n\r\n`);
    await until(() => received.includes("body_too_large"));
    expect(received).toMatch(/^HTTP\/1\.1 413 /);
    socket.write(big);
    socket.write("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok");
    await until(() => /\r\n\r\n2$/.test(received));
    socket.destroy();
    expect(received).toMatch(/^HTTP\/1\.1 413 [\s\S]*HTTP\/1\.1 200 [\s\S]*\r\n\r\n2$/);
  });
});
