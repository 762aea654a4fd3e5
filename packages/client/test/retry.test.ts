/** Retries against a real scripted server on 127.0.0.1, on a virtual clock: attempts, exact waits, keys. */
import https from "node:https";
import type { AddressInfo } from "node:net";
import { InterlockConfigError } from "@interlock/core";
import { selfSignedCertificate } from "@interlock/test-harness/tls";
import { describe, expect, it } from "vitest";
import {
  type ClientOptions,
  createClient,
  MAX_DELAY_MS,
  RetryAfterTooLongError,
  RetryLimitError,
  TimeoutError,
} from "../src/index.js";
import { EPOCH, TestClock, tick } from "./helpers/clock.js";
import { clientOn, serve, settled } from "./helpers/setup.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** A 503 whose body never ends, counting its cancellations: the proof its connection was freed. */
const endless503 = (onCancel: () => void) =>
  new Response(
    new ReadableStream<Uint8Array>({ pull: (controller) => controller.enqueue(new Uint8Array(1)), cancel: onCancel }),
    { status: 503 },
  );

describe("retrying", () => {
  it("GET through two 500s: three attempts, full-jitter waits of exactly 50 and 100 ms", async () => {
    const server = await serve([{ status: 500 }, { status: 500 }, { status: 200, body: "done" }]);
    const { client, clock, ofType } = clientOn();
    const response = await client(server.url);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("done");
    expect(server.received).toHaveLength(3);
    expect(ofType("client.attempt").map((e) => [e.attempt, e.outcome, e.status])).toEqual([
      [1, "response", 500],
      [2, "response", 500],
      [3, "response", 200],
    ]);
    // random() = 0.5: half of min(10 000, 100 · 2^(n-1)).
    expect(ofType("client.retry").map((e) => [e.attempt, e.backoffMs, e.retryAfterMs, e.delayMs])).toEqual([
      [1, 50, undefined, 50],
      [2, 100, undefined, 100],
    ]);
    expect(clock.slept).toEqual([50, 100]);
    expect(clock.now() - EPOCH).toBe(150);
    expect(clock.pending()).toEqual([]); // the attempt timeouts and the deadline were cancelled
  });

  it("draws each wait from the random source: 0.1 then 0.9 give 10 and 180 ms", async () => {
    const server = await serve([{ status: 502 }, { status: 504 }]);
    const draws = [0.1, 0.9];
    const { client, clock } = clientOn({ random: () => draws.shift() as number });
    expect((await client(server.url)).status).toBe(200);
    expect(clock.slept).toEqual([10, 180]);
  });

  it("503 with Retry-After: 2 waits exactly 2000 ms (Retry-After is a floor over the 50 ms backoff)", async () => {
    const server = await serve([{ status: 503, headers: { "retry-after": "2" } }]);
    const { client, clock, ofType } = clientOn();
    expect((await client(server.url)).status).toBe(200);
    expect(ofType("client.retry")).toMatchObject([{ backoffMs: 50, retryAfterMs: 2000, delayMs: 2000, status: 503 }]);
    expect(clock.slept).toEqual([2000]);
  });

  it("429 with an HTTP-date Retry-After waits until that date", async () => {
    const server = await serve([{ status: 429, headers: { "retry-after": new Date(EPOCH + 5000).toUTCString() } }]);
    const { client, clock, ofType } = clientOn();
    expect((await client(server.url)).status).toBe(200);
    expect(ofType("client.retry")).toMatchObject([{ retryAfterMs: 5000, delayMs: 5000, status: 429 }]);
    expect(clock.slept).toEqual([5000]);
  });

  it("an HTTP-date Retry-After is read against the response's Date: 20 s is 20 s whatever the local clock says", async () => {
    // The server's clock is EPOCH; the client's is 5 minutes ahead, then 5 minutes behind.
    const serverSays = { "retry-after": new Date(EPOCH + 20_000).toUTCString(), date: new Date(EPOCH).toUTCString() };
    for (const skewMs of [5 * 60_000, -5 * 60_000]) {
      const server = await serve([{ status: 503, headers: serverSays }]);
      const { client, clock, ofType } = clientOn({}, new TestClock({ start: EPOCH + skewMs }));
      expect((await client(server.url)).status).toBe(200);
      expect(ofType("client.retry")).toMatchObject([{ retryAfterMs: 20_000, delayMs: 20_000 }]);
      expect(clock.slept).toEqual([20_000]);
    }
  });

  it("a Retry-After date before the response's Date leaves the backoff; a Date that is not an HTTP-date is ignored", async () => {
    const server = await serve([
      {
        status: 503,
        headers: { "retry-after": new Date(EPOCH - 1000).toUTCString(), date: new Date(EPOCH).toUTCString() },
      },
      { status: 503, headers: { "retry-after": new Date(EPOCH + 5000).toUTCString(), date: "yesterday" } },
    ]);
    const { client, clock } = clientOn();
    expect((await client(server.url)).status).toBe(200);
    // The second wait: against the local clock (EPOCH + 50 after the first), as without a Date.
    expect(clock.slept).toEqual([50, 4950]);
  });

  it("a Retry-After sent twice is read as one: the longest seconds, or the date both copies give; a no-break space is no space", async () => {
    const date = new Date(EPOCH + 10_000).toUTCString(); // "Tue, 01 Jan 2030 00:00:10 GMT": a comma of its own
    const server = await serve([
      { status: 503, headers: { "retry-after": ["2", "2"] } },
      { status: 503, headers: { "retry-after": ["1", "3"] } },
      { status: 503, headers: { "retry-after": [date, date] } },
      { status: 503, headers: { "retry-after": "1\u00a0" } }, // obs-text, not whitespace: malformed
    ]);
    const { client, clock, ofType } = clientOn({ maxAttempts: 5 });
    expect((await client(server.url)).status).toBe(200);
    expect(ofType("client.retry").map((e) => e.retryAfterMs)).toEqual([2000, 3000, 5000, undefined]);
    expect(clock.slept).toEqual([2000, 3000, 5000, 400]); // the last: the fourth retry's backoff
  });

  it("a Retry-After shorter than the backoff, or a date already past, leaves the backoff", async () => {
    const server = await serve([
      { status: 503, headers: { "retry-after": "0" } },
      { status: 503, headers: { "retry-after": new Date(EPOCH - 60_000).toUTCString() } },
    ]);
    const { client, clock } = clientOn();
    expect((await client(server.url)).status).toBe(200);
    expect(clock.slept).toEqual([50, 100]);
  });

  it("with backoff.baseMs 0, Retry-After stays a floor at any retry (a NaN backoff would have undone it)", async () => {
    const slept: number[] = [];
    const client = createClient({
      fetch: async () => new Response(null, { status: 503, headers: { "retry-after": "1" } }),
      maxAttempts: 1027,
      budget: false,
      breaker: false,
      timeoutMs: false,
      deadlineMs: false,
      backoff: { baseMs: 0 },
      sleep: async (ms) => void slept.push(ms),
    });
    expect((await settled(client("https://api.example.com/"))).error).toMatchObject({ reason: "attempts" });
    expect(slept).toHaveLength(1026);
    expect(slept.filter((ms) => ms !== 1000)).toEqual([]);
  });

  it("a Retry-After past maxRetryAfterMs ends at once with RetryAfterTooLongError carrying the response", async () => {
    const server = await serve([{ status: 503, headers: { "retry-after": "120" }, body: "come back later" }]);
    const { client, clock, ofType } = clientOn();
    const { error } = await settled(client(server.url));
    expect(error).toBeInstanceOf(RetryAfterTooLongError);
    const tooLong = error as RetryAfterTooLongError;
    expect(tooLong).toMatchObject({ code: "retry_after_too_long", retryAfterMs: 120_000, maxRetryAfterMs: 60_000 });
    expect(tooLong.attempts).toBe(1);
    expect(tooLong.response?.status).toBe(503);
    expect(await tooLong.response?.text()).toBe("come back later");
    expect(server.received).toHaveLength(1);
    expect(clock.slept).toEqual([]);
    expect(ofType("client.give_up")).toMatchObject([{ reason: "retry_after_too_long", attempts: 1, status: 503 }]);
  });

  it("the body of a response it retries is cancelled, not left holding its connection", async () => {
    const { createServer } = await import("node:http");
    let cancelled!: () => void;
    const firstClosed = new Promise<void>((resolve) => {
      cancelled = resolve;
    });
    let requests = 0;
    const server = createServer((_req, res) => {
      if (requests++ > 0) return void res.end("ok");
      res.writeHead(503);
      res.write("busy, and more to come"); // never ends: only the client can close it
      res.once("close", cancelled);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as { port: number };
    try {
      const { client } = clientOn();
      expect(await (await client(`http://127.0.0.1:${port}/`)).text()).toBe("ok");
      const timeout = new Promise<string>((resolve) => setTimeout(() => resolve("still open"), 200));
      expect(await Promise.race([firstClosed.then(() => "closed"), timeout])).toBe("closed");
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it("gives up after maxAttempts with RetryLimitError carrying the last response, unread", async () => {
    const server = await serve([
      { status: 500, body: "first" },
      { status: 500, body: "second" },
      { status: 500, body: "third" },
    ]);
    const { client, ofType } = clientOn();
    const { error } = await settled(client(server.url));
    expect(error).toBeInstanceOf(RetryLimitError);
    const limit = error as RetryLimitError;
    expect(limit).toMatchObject({ code: "retry_limit", reason: "attempts", attempts: 3, status: 502, method: "GET" });
    expect(limit.origin).toBe(server.origin);
    expect(await limit.response?.text()).toBe("third");
    expect(limit.message).toBe("gave up after 3 attempts (no attempts left): the last answer was 500");
    expect(server.received).toHaveLength(3);
    expect(ofType("client.give_up")).toMatchObject([{ reason: "attempts", attempts: 3, status: 500 }]);
  });

  it("retries connection resets (RST) and dropped connections", async () => {
    const server = await serve([{ reset: true }, { drop: true }, { status: 200, body: "through" }]);
    const { client, ofType } = clientOn();
    const response = await client(server.url);
    expect(await response.text()).toBe("through");
    const attempts = ofType("client.attempt");
    expect(attempts.map((e) => e.outcome)).toEqual(["network_error", "network_error", "response"]);
    for (const event of attempts.slice(0, 2)) expect(event.error).toMatch(/^[A-Z_]+$/); // a code, not a message
    expect(server.received).toHaveLength(3);
  });

  it("when every attempt fails on the network, the RetryLimitError's cause is the last network error", async () => {
    const server = await serve(() => ({ reset: true }));
    const { client } = clientOn();
    const { error } = await settled(client(server.url));
    expect(error).toBeInstanceOf(RetryLimitError);
    expect((error as RetryLimitError).response).toBeUndefined();
    expect((error as RetryLimitError).cause).toBeInstanceOf(TypeError);
    expect(server.received).toHaveLength(3);
  });

  it("4xx answers other than 408, 409, 425 and 429 are returned at once", async () => {
    const server = await serve([{ status: 404, body: "no such thing" }]);
    const { client, ofType } = clientOn();
    const response = await client(server.url);
    expect(response.status).toBe(404);
    expect(await response.text()).toBe("no such thing");
    expect(server.received).toHaveLength(1);
    expect(ofType("client.retry")).toEqual([]);
  });

  it("arguments fetch refuses (a header value fetch cannot send) fail once with fetch's own TypeError, not retried", async () => {
    const server = await serve([]);
    const { client, clock, ofType } = clientOn();
    const { error } = await settled(client(server.url, { headers: { "x-name": "Zoë ☃" } })); // not a ByteString
    expect(error).toBeInstanceOf(TypeError);
    expect(ofType("client.attempt")).toHaveLength(1);
    expect(ofType("client.retry")).toEqual([]);
    expect(clock.slept).toEqual([]);
    expect(client.budgets.get(server.url)?.tokens).toBe(10); // no retry paid for
    expect(server.received).toHaveLength(0);
    // The same client still calls the origin as usual.
    expect((await client(server.url)).status).toBe(200);
  });

  it("a body on a GET or a HEAD is fetch's TypeError before any attempt, whatever the runtime's fetch would do with it", async () => {
    const server = await serve([]);
    const fetched: unknown[] = [];
    // Bun's fetch, say: its Request takes a GET's body, its fetch refuses it with an error of its own.
    const { client, clock, ofType } = clientOn({
      breaker: { failures: 1 },
      fetch: (input) => {
        fetched.push(input);
        return Promise.reject(new TypeError("fetch() request with GET/HEAD method cannot have body."));
      },
    });
    const form = new FormData();
    form.set("q", "1");
    const calls: Array<[string | Request, RequestInit | undefined]> = [
      [server.url, { method: "GET", body: "a GET has no body" }],
      [server.url, { body: "" }], // a GET by default; an empty body is a body
      [server.url, { method: "head", body: new Uint8Array([1]) }],
      [server.url, { method: "GET", body: form }],
      [new Request(server.url, { method: "PUT", body: "x" }), { method: "GET" }], // the Request's body
    ];
    for (const [input, init] of calls) {
      const { error } = await settled(client(input, init));
      expect(error).toBeInstanceOf(TypeError);
      expect(error).toMatchObject({ message: "Request with GET/HEAD method cannot have body." });
      expect(error).not.toHaveProperty("code");
    }
    expect(fetched).toEqual([]);
    expect(ofType("client.attempt")).toEqual([]);
    expect(ofType("client.give_up")).toEqual([]);
    expect(clock.slept).toEqual([]);
    // Refused before the origin's state is even looked up: no breaker or budget to charge.
    expect(client.breakers.get(server.url)).toBeUndefined();
    expect(client.budgets.get(server.url)).toBeUndefined();
  });

  it("a Request whose body is already used fails once with fetch's TypeError, charging nothing", async () => {
    const server = await serve([]);
    const { client, ofType } = clientOn({ breaker: { failures: 3 } });
    const request = new Request(server.url, { method: "PUT", body: "payload" });
    await request.text();
    const outcome = await settled(client(request));
    expect(server.received).toHaveLength(0);
    expect(outcome.error).toBeInstanceOf(TypeError);
    expect(outcome.error).not.toMatchObject({ message: "unusable" }); // fetch's own, not clone()'s
    expect(ofType("client.attempt")).toHaveLength(1);
    expect(client.breakers.get(server.url)?.state).toBe("closed");
    expect(client.budgets.get(server.url)?.tokens).toBe(10);
  });

  it("a Request whose body a reader locked fails once with fetch's TypeError, charging nothing", async () => {
    const server = await serve([]);
    const { client, ofType } = clientOn({ breaker: { failures: 1 } });
    const request = new Request(server.url, { method: "PUT", body: "payload" });
    request.body?.getReader();
    const outcome = await settled(client(request));
    expect(outcome.error).toBeInstanceOf(TypeError);
    expect(ofType("client.attempt")).toHaveLength(1);
    expect(client.breakers.get(server.url)?.state).toBe("closed");
    expect(server.received).toHaveLength(0);
  });

  it("a redirect the request's settings refuse fails once with fetch's own TypeError: not retried, not a breaker failure", async () => {
    const server = await serve((_, request) =>
      request.url === "/ftp"
        ? { status: 302, headers: { location: "ftp://files.example/" } }
        : request.url.startsWith("/loop")
          ? { status: 302, headers: { location: `/loop${request.url.length}` } }
          : { status: 301, headers: { location: "/elsewhere" } },
    );
    const { client, clock, ofType } = clientOn({ breaker: { failures: 2 } });
    const calls: Array<[string, RequestInit | undefined]> = [
      [server.url, { redirect: "error" }], // a redirect at all
      [`${server.origin}/loop`, undefined], // past fetch's 20 redirects
      [`${server.origin}/ftp`, undefined], // to a URL that is not HTTP(S)
    ];
    for (const [url, init] of calls) {
      const { error } = await settled(client(url, init));
      expect(error).toBeInstanceOf(TypeError);
      expect((error as TypeError).message).toBe("fetch failed");
    }
    expect(ofType("client.attempt")).toHaveLength(3); // one attempt per call
    expect(ofType("client.retry")).toEqual([]);
    expect(clock.slept).toEqual([]);
    expect(client.breakers.get(server.url)?.state).toBe("closed");
    expect(client.budgets.get(server.url)?.tokens).toBe(10);
  });

  it("a TLS certificate the caller does not trust fails once with fetch's own TypeError: not retried, not a breaker failure", async () => {
    const server = https.createServer(selfSignedCertificate("api.example"), (_, res) => res.end("ok"));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      const { client, ofType } = clientOn({ breaker: { failures: 1 } });
      const { error } = await settled(client(url));
      expect(error).toBeInstanceOf(TypeError);
      expect(((error as TypeError).cause as { code?: string }).code).toBe("DEPTH_ZERO_SELF_SIGNED_CERT");
      expect(ofType("client.attempt")).toHaveLength(1);
      expect(client.breakers.get(url)?.state).toBe("closed");
    } finally {
      server.close();
    }
  });

  it.each([301, 302, 303, 307, 308])(
    "a POST a %d answered is not sent again when what it led to fails: the response comes back, give_up redirected",
    async (status) => {
      const server = await serve((_, request) =>
        request.url === "/payments" ? { status, headers: { location: "/payments/1" } } : { status: 503, body: "busy" },
      );
      const { client, ofType } = clientOn();
      const response = await client(`${server.origin}/payments`, { method: "POST", body: '{"amount":1000}' });
      expect(response.status).toBe(503);
      expect(response.redirected).toBe(true);
      expect(await response.text()).toBe("busy");
      // The POST went out once: the server had answered it, with the redirect.
      expect(server.received.filter((r) => r.url === "/payments")).toHaveLength(1);
      expect(server.received).toHaveLength(2);
      expect(ofType("client.retry")).toEqual([]);
      expect(ofType("client.give_up")).toMatchObject([
        { reason: "redirected", method: "POST", attempts: 1, status: 503 },
      ]);
    },
  );

  it("a GET answered through a redirect is retried as any GET: its method makes it safe to send again", async () => {
    const server = await serve((index, request) =>
      request.url === "/old" ? { status: 302, headers: { location: "/new" } } : { status: index < 2 ? 503 : 200 },
    );
    const { client, ofType } = clientOn();
    const response = await client(`${server.origin}/old`);
    expect(response.status).toBe(200);
    expect(server.received.map((r) => r.url)).toEqual(["/old", "/new", "/old", "/new"]);
    expect(ofType("client.retry")).toMatchObject([{ attempt: 1, status: 503 }]);
    expect(ofType("client.give_up")).toEqual([]);
  });

  it("an answer from another origin reached by a redirect is a success of the first origin's, whatever its status", async () => {
    const other = await serve(() => ({ status: 503 }));
    const server = await serve((index) =>
      index === 1 ? { status: 302, headers: { location: `${other.origin}/down` } } : { status: 500 },
    );
    const { client } = clientOn({ retryOn: () => false, breaker: { failures: 2 } });
    for (const status of [500, 503, 500]) expect((await client(server.url)).status).toBe(status);
    // The first origin answered the second call, with a redirect: that success broke its run of failures.
    const breaker = client.breakers.get(server.url);
    expect(breaker?.state).toBe("closed");
    expect(breaker?.consecutiveFailures).toBe(1);
    expect(other.received).toHaveLength(1);
  });

  it("a URL fetch does not send over the network (ftp:, file:) fails once with fetch's own TypeError: not retried, not a breaker failure", async () => {
    const { client, ofType } = clientOn({ breaker: { failures: 1 } });
    for (const url of ["ftp://127.0.0.1/file", "file:///etc/hostname"]) {
      const { error } = await settled(client(url));
      expect(error).toBeInstanceOf(TypeError);
      expect(error).not.toBeInstanceOf(RetryLimitError);
    }
    expect(ofType("client.attempt")).toHaveLength(2);
    expect(ofType("client.breaker")).toEqual([]);
  });

  it("a custom retryOn decides what is transient; safety still applies", async () => {
    const server = await serve([{ status: 418 }, { reset: true }]);
    const { client } = clientOn({ retryOn: ({ response }) => response?.status === 418 });
    const { error } = await settled(client(server.url));
    expect(error).toBeInstanceOf(TypeError); // the reset is not retried: fetch's own error comes back
    expect(server.received).toHaveLength(2);
  });
});

describe("timeouts", () => {
  it("an attempt that hangs past timeoutMs is cut off and retried", async () => {
    const server = await serve([{ hang: true }, { status: 200, body: "second try" }]);
    const { client, clock, ofType } = clientOn({ timeoutMs: 2000 });
    const pending = client(server.url);
    await server.receivedCount(1);
    await clock.advance(2000);
    const response = await pending;
    expect(await response.text()).toBe("second try");
    expect(ofType("client.attempt").map((e) => e.outcome)).toEqual(["timeout", "response"]);
    expect(clock.slept).toEqual([2000, 50]);
  });

  it("with real timers: every attempt timing out ends in RetryLimitError caused by a TimeoutError", async () => {
    const server = await serve(() => ({ hang: true }));
    const client = createClient({ timeoutMs: 50, maxAttempts: 2, backoff: { baseMs: 1 } });
    const { error } = await settled(client(server.url));
    expect(error).toBeInstanceOf(RetryLimitError);
    const cause = (error as RetryLimitError).cause;
    expect(cause).toBeInstanceOf(TimeoutError);
    expect(cause).toMatchObject({ scope: "attempt", timeoutMs: 50, attempts: 2, status: 504 });
    expect(server.received).toHaveLength(2);
  });

  it("a slow answer within the timeout is not cut off", async () => {
    const server = await serve([{ delayMs: 30, answer: { status: 200, body: "slow" } }]);
    const client = createClient({ timeoutMs: 5000 });
    expect(await (await client(server.url)).text()).toBe("slow");
  });

  it("the deadline aborts the attempt in flight with TimeoutError (scope deadline)", async () => {
    const server = await serve([{ status: 503 }, { hang: true }]);
    const { client, clock, ofType } = clientOn({ deadlineMs: 5000, timeoutMs: false });
    const pending = settled(client(server.url));
    await server.receivedCount(2);
    await clock.advance(5000);
    const { error } = await pending;
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error).toMatchObject({ scope: "deadline", timeoutMs: 5000, attempts: 2 });
    // The last attempt, the second, got nothing. The first one's 503 is not handed out: its body
    // was cancelled for the retry, and could not be read.
    expect((error as TimeoutError).response).toBeUndefined();
    expect((error as TimeoutError).cause).toBeUndefined();
    expect(ofType("client.attempt").map((e) => e.outcome)).toEqual(["response", "timeout"]);
    expect(ofType("client.give_up")).toEqual([
      expect.objectContaining({ reason: "deadline", attempts: 2, status: undefined }),
    ]);
  });

  it("a wait that would pass the deadline is not started: RetryLimitError (deadline) at once", async () => {
    const server = await serve([{ status: 503, headers: { "retry-after": "20" } }]);
    const { client, clock } = clientOn({ deadlineMs: 10_000 });
    const { error } = await settled(client(server.url));
    expect(error).toBeInstanceOf(RetryLimitError);
    expect(error).toMatchObject({ reason: "deadline", attempts: 1 });
    expect((error as RetryLimitError).response?.status).toBe(503);
    expect(clock.slept).toEqual([]);
  });

  it("a Retry-After that would end exactly at the deadline is not waited for either: RetryLimitError (deadline) at once", async () => {
    const server = await serve([{ status: 503, headers: { "retry-after": "10" } }]);
    const { client, clock } = clientOn({ deadlineMs: 10_000 });
    const { error } = await settled(client(server.url));
    expect(error).toBeInstanceOf(RetryLimitError);
    expect(error).toMatchObject({ reason: "deadline", attempts: 1 });
    expect(clock.slept).toEqual([]);
  });

  it("an attempt timeout equal to the time left is the deadline's: TimeoutError (deadline), not a retry that cannot happen", async () => {
    const server = await serve([{ hang: true }]);
    const { client, clock, ofType } = clientOn({ timeoutMs: 1000, deadlineMs: 1000 });
    const pending = settled(client(server.url));
    await server.receivedCount(1);
    await clock.advance(1000);
    const { error } = await pending;
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error).toMatchObject({ scope: "deadline", timeoutMs: 1000, attempts: 1 });
    expect(ofType("client.give_up")).toMatchObject([{ reason: "deadline", attempts: 1 }]);
  });

  it("an injected sleep that ignores its signal: the attempt's timer, once the response is handed over, does not cut off its body", async () => {
    const slow = await serveEndlessBody();
    const timers: Array<() => void> = [];
    const client = createClient({
      timeoutMs: 30,
      fetch: (input, init) => fetch(input, init), // the caller's fetch: the attempt gets a real AbortSignal
      sleep: () => new Promise<void>((resolve) => timers.push(resolve)), // runs out when the test says, aborted or not
    });
    try {
      const response = await client(slow.url);
      for (const runOut of timers.splice(0)) runOut(); // the attempt's timer, cancelled, runs out all the same
      await tick();
      slow.finish();
      expect(await response.text()).toBe("first chunk, then the rest");
    } finally {
      await slow.close();
    }
  });
});

describe("aborting", () => {
  it("an abort during a backoff wait rejects at once with the caller's reason: no time passes, nothing is left pending", async () => {
    const server = await serve([{ status: 503, headers: { "retry-after": "2" } }]);
    const clock = new TestClock({ auto: false });
    const { client } = clientOn({}, clock);
    const controller = new AbortController();
    const pending = settled(client(server.url, { signal: controller.signal }));
    await clock.sleepRequested(2000);
    const reason = new Error("the user left");
    controller.abort(reason);
    expect((await pending).error).toBe(reason);
    expect(clock.now()).toBe(EPOCH);
    expect(clock.pending()).toEqual([]);
    expect(server.received).toHaveLength(1);
  });

  it("with real timers, an abort during an hour-long Retry-After wait returns (a hang would time the test out)", async () => {
    const server = await serve(() => ({ status: 503, headers: { "retry-after": "3600" } }));
    const controller = new AbortController();
    const client = createClient({
      maxRetryAfterMs: MAX_DELAY_MS,
      deadlineMs: false,
      onEvent: (event) => event.type === "client.retry" && controller.abort(),
    });
    const { error } = await settled(client(server.url, { signal: controller.signal }));
    expect((error as Error).name).toBe("AbortError");
    expect(server.received).toHaveLength(1);
  });

  it("an abort reason of null is the reason, as fetch rejects with it: before the call, during an attempt, during a wait", async () => {
    const server = await serve((index) =>
      index === 0 ? { hang: true } : { status: 503, headers: { "retry-after": "2" } },
    );
    const clock = new TestClock({ auto: false });
    const { client } = clientOn({}, clock);

    const early = new AbortController();
    early.abort(null);
    expect(await settled(client(server.url, { signal: early.signal }))).toEqual({ error: null });
    expect(server.received).toHaveLength(0);

    const duringAttempt = new AbortController();
    const attempt = settled(client(server.url, { signal: duringAttempt.signal }));
    await server.receivedCount(1);
    duringAttempt.abort(null);
    expect(await attempt).toEqual({ error: null });

    const duringWait = new AbortController();
    const wait = settled(client(server.url, { signal: duringWait.signal }));
    await clock.sleepRequested(2000);
    duringWait.abort(null);
    expect(await wait).toEqual({ error: null });
    expect(server.received).toHaveLength(2);
  });

  it("a signal that carries no reason (an AbortSignal polyfill's): an AbortError, as fetch rejects with, before and during the call", async () => {
    /** As `abort-controller` and other polyfills make them: `aborted` and an "abort" event, no `reason`. */
    class ReasonlessSignal extends EventTarget {
      aborted = false;
      abort() {
        this.aborted = true;
        this.dispatchEvent(new Event("abort"));
      }
    }
    const server = await serve(() => ({ hang: true }));
    const { client } = clientOn();
    const early = new ReasonlessSignal();
    early.abort();
    const before = await settled(client(server.url, { signal: early as unknown as AbortSignal }));
    expect(before.error).toMatchObject({ name: "AbortError" });
    expect(before.error).toBeInstanceOf(DOMException);
    expect(server.received).toHaveLength(0);

    const late = new ReasonlessSignal();
    const pending = settled(client(server.url, { signal: late as unknown as AbortSignal }));
    await server.receivedCount(1);
    late.abort();
    const during = await pending;
    expect(during.error).toMatchObject({ name: "AbortError" });
    expect(during.error).toBeInstanceOf(DOMException);
  });

  it("an abort during an attempt ends it with the caller's reason; the attempt is reported as aborted", async () => {
    const server = await serve([{ hang: true }]);
    const { client, ofType } = clientOn();
    const controller = new AbortController();
    const pending = settled(client(server.url, { signal: controller.signal }));
    await server.receivedCount(1);
    controller.abort();
    const { error } = await pending;
    expect((error as Error).name).toBe("AbortError");
    expect(ofType("client.attempt")).toMatchObject([{ outcome: "aborted", attempt: 1 }]);
    expect(server.received).toHaveLength(1);
  });

  it("a retryable answer that lands as the caller aborts is not retried: the caller's reason, no retry paid or reported", async () => {
    const server = await serve([{ status: 503 }, { status: 200 }]);
    const controller = new AbortController();
    const types: string[] = [];
    const { client } = clientOn({
      onEvent: (event) => {
        types.push(event.type);
        if (event.type === "client.attempt") controller.abort("gone"); // as the 503 lands
      },
    });
    const { error } = await settled(client(server.url, { signal: controller.signal }));
    expect(error).toBe("gone");
    expect(types).toEqual(["client.created", "client.attempt"]);
    expect(client.budgets.get(server.url)?.tokens).toBe(10);
    expect(server.received).toHaveLength(1);
  });

  it("a caller abort from an onEvent hook still frees the response the call drops", async () => {
    let cancelled = 0;
    const controller = new AbortController();
    const client = createClient({
      fetch: async () => endless503(() => void cancelled++),
      timeoutMs: false,
      deadlineMs: false,
      onEvent: (event) => {
        if (event.type === "client.attempt") controller.abort(new Error("stop"));
      },
    });
    const outcome = await settled(client("https://api.example.com/", { signal: controller.signal }));
    expect(outcome.error).toMatchObject({ message: "stop" });
    await tick();
    expect(cancelled).toBe(1);
  });

  it("a retryOn or breaker.isFailure that throws rejects the call with its error, and frees the response it drops", async () => {
    const hooks: ClientOptions[] = [
      {
        retryOn: () => {
          throw new Error("retryOn failed");
        },
      },
      {
        breaker: {
          isFailure: () => {
            throw new Error("isFailure failed");
          },
        },
      },
    ];
    for (const hook of hooks) {
      let cancelled = 0;
      const client = createClient({
        fetch: async () => endless503(() => void cancelled++),
        timeoutMs: false,
        deadlineMs: false,
        ...hook,
      });
      const outcome = await settled(client("https://api.example.com/"));
      expect(outcome.error).toMatchObject({ message: expect.stringMatching(/failed$/) });
      await tick();
      expect(cancelled).toBe(1);
    }
  });

  it("a signal already aborted: no attempt at all", async () => {
    const server = await serve([]);
    const { client } = clientOn();
    const { error } = await settled(client(server.url, { signal: AbortSignal.abort("stop") }));
    expect(error).toBe("stop");
    expect(server.received).toHaveLength(0);
  });

  it("a Request's own signal is the caller's signal", async () => {
    const server = await serve([{ hang: true }]);
    const { client } = clientOn();
    const controller = new AbortController();
    const pending = settled(client(new Request(server.url, { signal: controller.signal })));
    await server.receivedCount(1);
    controller.abort("gone");
    expect((await pending).error).toBe("gone");
  });

  it.each([
    ["a fetch of the caller's", () => clientOn().client],
    ["the platform's fetch", () => createClient()],
  ])(
    "the caller's signal still aborts the body after the response is handed over, as with fetch (%s)",
    async (_, make) => {
      const client = make();
      const controller = new AbortController();
      const stream = await serveEndlessBody();
      try {
        const response = await client(stream.url, { signal: controller.signal });
        const reading = settled(response.text());
        controller.abort("stop reading");
        expect((await reading).error).toBe("stop reading");
      } finally {
        await stream.close();
      }
    },
  );
});

describe("Idempotency-Key", () => {
  it("a POST gets one key, sent identical on every attempt, with the same body", async () => {
    const server = await serve([{ status: 500 }, { status: 503 }, { status: 201, body: '{"id":"pay_1"}' }]);
    const { client, ofType } = clientOn();
    const response = await client(server.url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"amount":1000}',
    });
    expect(response.status).toBe(201);
    const keys = server.received.map((r) => r.headers["idempotency-key"]);
    expect(keys).toHaveLength(3);
    expect(keys[0]).toMatch(UUID);
    expect(new Set(keys).size).toBe(1);
    expect(server.received.map((r) => r.body)).toEqual(Array(3).fill('{"amount":1000}'));
    expect(ofType("client.attempt").every((e) => e.key === keys[0])).toBe(true);
  });

  it("each logical request gets its own key", async () => {
    const server = await serve([]);
    const { client } = clientOn();
    await client(server.url, { method: "POST", body: "a" });
    await client(server.url, { method: "POST", body: "b" });
    const [first, second] = server.received.map((r) => r.headers["idempotency-key"]);
    expect(first).not.toBe(second);
  });

  it("PATCH gets a key too; PUT and DELETE are idempotent and get none", async () => {
    const server = await serve([]);
    const { client } = clientOn();
    for (const method of ["PATCH", "PUT", "DELETE", "post"]) await client(server.url, { method, body: "x" });
    expect(server.received.map((r) => [r.method, typeof r.headers["idempotency-key"]])).toEqual([
      ["PATCH", "string"],
      ["PUT", "undefined"],
      ["DELETE", "undefined"],
      ["POST", "string"], // fetch upper-cases post; so does the client when it decides
    ]);
  });

  it('a method fetch sends as written is judged as written: "patch" is not PATCH, so it gets no key and no retry', async () => {
    const server = await serve([]);
    const generated: string[] = [];
    const asked: string[] = [];
    const { client, ofType } = clientOn({
      // Every outcome worth retrying: only whether the request is safe to send again says no.
      retryOn: ({ method }) => {
        asked.push(method);
        return true;
      },
      idempotencyKey: {
        generate: ({ method }) => {
          generated.push(method);
          return "order-42";
        },
      },
    });
    // Node's server knows methods in upper case only, and refuses "patch" with a 400.
    const response = await client(server.url, { method: "patch", body: "x" });
    expect(response.status).toBe(400);
    expect(generated).toEqual([]);
    expect(asked).toEqual(["patch"]);
    expect(ofType("client.attempt")).toMatchObject([{ method: "patch", key: undefined }]);
    expect(ofType("client.give_up")).toMatchObject([{ reason: "not_idempotent", method: "patch", attempts: 1 }]);
  });

  it("retryMethods and idempotencyKey.methods are matched as fetch sends a method: get is GET, mkcol is not MKCOL", async () => {
    const server = await serve(() => ({ status: 503 }));
    const { client, ofType } = clientOn({
      maxAttempts: 2,
      retryMethods: ["get", "mkcol"],
      idempotencyKey: { methods: ["patch"] },
    });
    expect((await settled(client(server.url))).error).toBeInstanceOf(RetryLimitError);
    for (const method of ["MKCOL", "PATCH"]) expect((await client(server.url, { method })).status).toBe(503);
    expect(server.received.map((r) => [r.method, r.headers["idempotency-key"]])).toEqual([
      ["GET", undefined],
      ["GET", undefined],
      ["MKCOL", undefined],
      ["PATCH", undefined],
    ]);
    expect(ofType("client.give_up").map((e) => [e.method, e.reason])).toEqual([
      ["GET", "attempts"],
      ["MKCOL", "not_idempotent"],
      ["PATCH", "not_idempotent"],
    ]);
  });

  it.each(["HEAD", "OPTIONS"])("%s is idempotent too: retried through a 503 without a key", async (method) => {
    const server = await serve([{ status: 503 }, { status: 204 }]);
    const { client } = clientOn();
    expect((await client(server.url, { method })).status).toBe(204);
    expect(server.received.map((r) => [r.method, r.headers["idempotency-key"]])).toEqual([
      [method, undefined],
      [method, undefined],
    ]);
  });

  it("a POST without a key is never retried: a 503 comes back as it is", async () => {
    const server = await serve([{ status: 503, body: "busy" }]);
    const { client, ofType } = clientOn({ idempotencyKey: false });
    const response = await client(server.url, { method: "POST", body: "charge" });
    expect(response.status).toBe(503);
    expect(await response.text()).toBe("busy");
    expect(server.received).toHaveLength(1);
    expect(server.received[0]?.headers["idempotency-key"]).toBeUndefined();
    expect(ofType("client.give_up")).toMatchObject([{ reason: "not_idempotent", attempts: 1, status: 503 }]);
  });

  it("a POST whose caller sent a blank Idempotency-Key is sent as it is, once: a blank key is no key", async () => {
    const server = await serve([{ status: 503, body: "busy" }]);
    const { client, ofType } = clientOn();
    const response = await client(server.url, { method: "POST", body: "charge", headers: { "Idempotency-Key": " " } });
    expect(response.status).toBe(503);
    expect(server.received).toHaveLength(1);
    expect(server.received[0]?.headers["idempotency-key"]).toBe("");
    expect(ofType("client.give_up")).toMatchObject([{ reason: "not_idempotent", attempts: 1, status: 503 }]);
  });

  it("a POST without a key whose connection resets gets fetch's own error, after one attempt", async () => {
    const server = await serve([{ reset: true }]);
    const { client } = clientOn({ idempotencyKey: false });
    const { error } = await settled(client(server.url, { method: "POST", body: "charge" }));
    expect(error).toBeInstanceOf(TypeError);
    expect(server.received).toHaveLength(1);
  });

  it("the caller's own key is kept and makes the POST retryable even with idempotencyKey: false", async () => {
    const server = await serve([{ status: 502 }]);
    const { client } = clientOn({ idempotencyKey: false });
    const response = await client(server.url, {
      method: "POST",
      headers: { "Idempotency-Key": "order-42" },
      body: "x",
    });
    expect(response.status).toBe(200);
    expect(server.received.map((r) => r.headers["idempotency-key"])).toEqual(["order-42", "order-42"]);
  });

  it("idempotencyKey.methods adds keys to other methods too, idempotent ones included", async () => {
    const server = await serve([]);
    const { client } = clientOn({ idempotencyKey: { methods: ["PUT", "POST"] } });
    for (const method of ["PUT", "POST", "PATCH", "DELETE"]) await client(server.url, { method, body: "x" });
    expect(server.received.map((r) => [r.method, typeof r.headers["idempotency-key"]])).toEqual([
      ["PUT", "string"],
      ["POST", "string"],
      ["PATCH", "undefined"],
      ["DELETE", "undefined"],
    ]);
  });

  it("headers in any form: a key is found whatever its case, and added without losing the others", async () => {
    const server = await serve(() => ({ status: 200 }));
    const { client } = clientOn();
    const forms: HeadersInit[] = [
      { "x-a": "record" },
      [["x-a", "pairs"]],
      new Headers({ "x-a": "headers" }),
      { "IDEMPOTENCY-KEY": "upper", "x-a": "record" },
      [["idempotency-key", "paired"]],
      new Headers({ "Idempotency-Key": "in-headers" }),
    ];
    for (const headers of forms) await client(server.url, { method: "POST", headers, body: "x" });
    const sent = server.received.map((r) => [r.headers["x-a"], r.headers["idempotency-key"]]);
    expect(sent.slice(0, 3).map(([a]) => a)).toEqual(["record", "pairs", "headers"]);
    for (const [, key] of sent.slice(0, 3)) expect(key).toMatch(UUID);
    expect(sent.slice(3).map(([, key]) => key)).toEqual(["upper", "paired", "in-headers"]);
  });

  it("headers as any other iterable of pairs (a Map, map.entries(), a generator) are read once: every attempt sends them all, and a key among them is the key", async () => {
    const server = await serve((i) => (i % 2 === 0 ? { status: 503 } : { status: 200 }));
    const { client } = clientOn();
    const map = () =>
      new Map([
        ["authorization", "Bearer t"],
        ["idempotency-key", "mine"],
      ]);
    function* generated(): Generator<[string, string]> {
      yield* map();
    }
    for (const headers of [map(), map().entries(), generated()] as unknown as HeadersInit[])
      expect((await client(server.url, { method: "POST", headers, body: "x" })).status).toBe(200);
    // A GET is retried too: a one-shot iterator's headers go out on its second attempt as well.
    expect((await client(server.url, { headers: map().entries() as unknown as HeadersInit })).status).toBe(200);
    const sent = server.received.map((r) => [r.headers.authorization, r.headers["idempotency-key"]]);
    expect(sent).toEqual(Array(8).fill(["Bearer t", "mine"]));
  });

  it("a key the caller set on any method is the request's key: a PUT's 409 is retried, and events name the key", async () => {
    const server = await serve([{ status: 409, headers: { "retry-after": "1" } }, { status: 200 }]);
    const { client, ofType } = clientOn();
    const init = { method: "PUT", headers: { "Idempotency-Key": "put-1" }, body: "x" };
    expect((await client(server.url, init)).status).toBe(200);
    expect(server.received.map((r) => r.headers["idempotency-key"])).toEqual(["put-1", "put-1"]);
    expect(ofType("client.attempt").map((event) => event.key)).toEqual(["put-1", "put-1"]);
  });

  it("leaves the caller's init and headers as they were: the key and the attempt's abort handle go on copies", async () => {
    const server = await serve(() => ({ status: 200 }));
    const client = createClient({ timeoutMs: 5_000 }); // the platform's fetch: the shipped path
    const headers = { "x-a": "record" };
    const init: RequestInit = { method: "POST", headers, body: "x" };
    await (await client(server.url, init)).text();
    await (await client(server.url, init)).text();
    expect(init).toEqual({ method: "POST", headers: { "x-a": "record" }, body: "x" });
    expect(init.headers).toBe(headers);
    const [first, second] = server.received.map((r) => r.headers["idempotency-key"]);
    expect(first).toMatch(UUID);
    expect(second).toMatch(UUID);
    expect(second).not.toBe(first);
  });

  it("a custom generator and header name", async () => {
    const server = await serve([{ status: 500 }]);
    const { client } = clientOn({
      idempotencyKey: { headerName: "X-Request-Id", generate: ({ method }) => `${method}-1` },
    });
    await client(server.url, { method: "POST", body: "x" });
    expect(server.received.map((r) => r.headers["x-request-id"])).toEqual(["POST-1", "POST-1"]);
  });

  it("a generator returning an unusable key is a configuration error, before anything is sent", async () => {
    const server = await serve([]);
    const { client } = clientOn({ idempotencyKey: { generate: () => "two words" } });
    const { error } = await settled(client(server.url, { method: "POST", body: "x" }));
    expect(error).toBeInstanceOf(InterlockConfigError);
    expect((error as Error).message).toMatch(/idempotencyKey\.generate/);
    expect(server.received).toHaveLength(0);
  });

  it("409 on a keyed request (still in flight on the server) is retried after its Retry-After; on a GET it is not", async () => {
    const server = await serve([{ status: 409, headers: { "retry-after": "1" } }, { status: 201 }, { status: 409 }]);
    const { client, clock } = clientOn();
    expect((await client(server.url, { method: "POST", body: "x" })).status).toBe(201);
    expect(clock.slept).toEqual([1000]);
    expect((await client(server.url)).status).toBe(409);
    expect(server.received).toHaveLength(3);
  });
  it("a replayed answer (Idempotent-Replayed: true) is the server's stored answer for the key: never retried", async () => {
    // Sent again with the same key, the server would replay it again: a handler's own 409, or a
    // 503 stored under `cache: "all"`.
    const replayed = { "idempotent-replayed": "true", "retry-after": "1" };
    const server = await serve([
      { status: 409, headers: replayed },
      { status: 503, headers: replayed },
    ]);
    const { client, clock, ofType } = clientOn();
    expect((await client(server.url, { method: "POST", body: "x" })).status).toBe(409);
    expect((await client(server.url, { method: "POST", body: "x" })).status).toBe(503);
    expect(server.received).toHaveLength(2);
    expect(clock.slept).toEqual([]);
    expect(ofType("client.attempt")).toHaveLength(2);
  });
});

describe("bodies", () => {
  it("a one-shot stream body is sent once and never retried", async () => {
    const server = await serve([{ status: 503 }]);
    const { client, ofType } = clientOn();
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode("streamed"));
        controller.close();
      },
    });
    const response = await client(server.url, { method: "POST", body, duplex: "half" } as RequestInit);
    expect(response.status).toBe(503);
    expect(server.received.map((r) => r.body)).toEqual(["streamed"]);
    expect(ofType("client.give_up")).toMatchObject([{ reason: "body_not_replayable", attempts: 1 }]);
  });

  it("bytes, Blob, URLSearchParams and FormData bodies are sent again whole", async () => {
    const server = await serve((i) => ({ status: i % 2 === 0 ? 500 : 200 }));
    const { client } = clientOn();
    const form = new FormData();
    form.set("field", "value");
    const bodies: BodyInit[] = [
      new TextEncoder().encode("bytes"),
      new Blob(["blob"]),
      new URLSearchParams({ q: "params" }),
      form,
    ];
    for (const body of bodies) expect((await client(server.url, { method: "PUT", body })).status).toBe(200);
    const sent = server.received.map((r) => r.body);
    for (let i = 0; i < sent.length; i += 2) {
      expect(sent[i + 1]?.replace(/-+\w+/g, "")).toBe(sent[i]?.replace(/-+\w+/g, "")); // FormData picks a new boundary
      expect(sent[i]).not.toBe("");
    }
  });

  it("a FormData body is encoded once: every attempt sends the same bytes, multipart boundary included", async () => {
    const server = await serve([{ status: 503 }, { status: 500 }, { status: 201 }]);
    const { client } = clientOn();
    const form = new FormData();
    form.set("field", "value");
    form.set("file", new Blob(["contents"]), "a.txt");
    expect((await client(server.url, { method: "POST", body: form, headers: { "x-trace": "t2" } })).status).toBe(201);
    const [first, ...others] = server.received;
    expect(first?.headers["content-type"]).toMatch(/^multipart\/form-data; boundary=/);
    expect(first?.body).toContain("contents");
    for (const other of others) {
      expect(other.body).toBe(first?.body);
      expect(other.headers["content-type"]).toBe(first?.headers["content-type"]);
      expect(other.headers["idempotency-key"]).toBe(first?.headers["idempotency-key"]);
      expect(other.headers["x-trace"]).toBe("t2");
    }
    expect(server.received).toHaveLength(3);
  });

  it("a Request with a body is cloned for each attempt: same body, same key", async () => {
    const server = await serve([{ status: 500 }, { status: 500 }, { status: 201 }]);
    const { client } = clientOn();
    const request = new Request(server.url, { method: "POST", body: '{"a":1}', headers: { "x-trace": "t1" } });
    expect((await client(request)).status).toBe(201);
    expect(server.received.map((r) => r.body)).toEqual(['{"a":1}', '{"a":1}', '{"a":1}']);
    expect(new Set(server.received.map((r) => r.headers["idempotency-key"])).size).toBe(1);
    expect(server.received.every((r) => r.headers["x-trace"] === "t1")).toBe(true);
  });

  it("a Request whose attempts all went out as clones is left used, as fetch leaves it: not sent again by mistake", async () => {
    const server = await serve([{ status: 201 }]);
    const { client } = clientOn();
    const request = new Request(server.url, { method: "POST", body: '{"a":1}' });
    expect((await client(request)).status).toBe(201); // the first attempt sent a clone: another could follow
    expect(request.bodyUsed).toBe(true);
    const again = await settled(client(request));
    expect(again.error).toBeInstanceOf(TypeError); // fetch's own, for a Request already used
    expect(server.received).toHaveLength(1);
    // A Request without a body stays as fetch leaves it: reusable.
    const get = new Request(server.url);
    await (await client(get)).text();
    await (await client(get)).text();
    expect(server.received).toHaveLength(3);
  });

  it("a Request with a body and init.body null (fetch then sends the Request's body) is cloned for each attempt too", async () => {
    const server = await serve([{ status: 503 }, { status: 201 }]);
    const { client } = clientOn();
    const request = new Request(server.url, { method: "PUT", body: "kept" });
    expect((await client(request, { body: null })).status).toBe(201);
    expect(server.received.map((r) => r.body)).toEqual(["kept", "kept"]);
  });

  it("a Request with a body whose attempts meet network errors is still sent again whole", async () => {
    const server = await serve([{ reset: true }, { drop: true }, { status: 201 }]);
    const { client } = clientOn();
    const request = new Request(server.url, { method: "PUT", body: "whole" });
    expect((await client(request)).status).toBe(201);
    expect(server.received.map((r) => r.body)).toEqual(["whole", "whole", "whole"]);
  });

  it("an init whose members are inherited is sent as fetch sends it (method, body)", async () => {
    const server = await serve([]);
    const init = Object.create({ method: "POST", body: "payload" }) as RequestInit;
    await (await fetch(server.url, init)).text();
    await (await createClient()(server.url, init)).text();
    expect(server.received.map((r) => [r.method, r.body])).toEqual([
      ["POST", "payload"],
      ["POST", "payload"],
    ]);
  });
});

describe("events", () => {
  it("name the origin only: no path, no query, no header, no body", async () => {
    const server = await serve([{ status: 503 }, { reset: true }, { status: 500 }]);
    const { client, events } = clientOn();
    const { error } = await settled(
      client(`${server.url}?api_key=s3cr3t-query`, {
        method: "POST",
        headers: { authorization: "Bearer s3cr3t-token" },
        body: "s3cr3t-body",
      }),
    );
    expect(error).toBeInstanceOf(RetryLimitError);
    const text = JSON.stringify(events);
    expect(text).not.toMatch(/s3cr3t|\/resource/);
    expect((error as Error).message).not.toMatch(/s3cr3t|\/resource|127\.0\.0\.1/);
    expect(new Set(events.map((e) => e.type))).toEqual(
      new Set(["client.created", "client.attempt", "client.retry", "client.give_up"]),
    );
  });

  it("client.created, once, before the first call: the client's own live breaker registry", async () => {
    const server = await serve([{ status: 500 }]);
    const { client, events, ofType } = clientOn({ breaker: { failures: 1 }, maxAttempts: 1 });
    expect(events.map((e) => e.type)).toEqual(["client.created"]);
    const [created] = ofType("client.created");
    expect(created?.breakers).toBe(client.breakers);
    await settled(client(server.url));
    expect([...(created?.breakers ?? [])].map((breaker) => [breaker.origin, breaker.state])).toEqual([
      [new URL(server.url).origin, "open"],
    ]);
    expect(ofType("client.created")).toHaveLength(1);
  });

  it("a hook that throws changes nothing", async () => {
    const server = await serve([{ status: 500 }]);
    const { client } = clientOn({
      onEvent: () => {
        throw new Error("logger down");
      },
    });
    expect((await client(server.url)).status).toBe(200);
  });
});

/**
 * A server whose response body never ends, to show the caller's signal reaching the body, unless
 * the test calls `finish` (a body still arriving after the response was handed over).
 */
async function serveEndlessBody() {
  const { createServer } = await import("node:http");
  const open: Array<{ end(chunk: string): void }> = [];
  const server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/plain" });
    res.write("first chunk");
    open.push(res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/stream`,
    finish: () => {
      for (const res of open.splice(0)) res.end(", then the rest");
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe("the documented defaults", () => {
  it("attempts of 10 s each inside a 30 s deadline: a server that never answers ends at 30 s exactly", async () => {
    const server = await serve(() => ({ hang: true }));
    const { client, clock } = clientOn({ breaker: false });
    const pending = settled(client(server.url));
    const steps: Array<[requests: number, ms: number]> = [
      [1, 10_000],
      [2, 10_000],
      [3, 9850],
    ];
    for (const [n, ms] of steps) {
      await server.receivedCount(n);
      await clock.advance(ms); // then the backoff (50, then 100 ms) passes on its own
    }
    const { error } = await pending;
    expect(error).toMatchObject({ scope: "deadline", timeoutMs: 30_000, attempts: 3 });
    expect(clock.slept).toEqual([10_000, 50, 10_000, 100, 9850]); // the third attempt's timer is the deadline's
  });

  it("backoff: base 100 ms, capped at 10 s (full jitter at 0.5: half of each ceiling)", async () => {
    const server = await serve(() => ({ status: 503 }));
    const { client, clock } = clientOn({ maxAttempts: 9, deadlineMs: false, breaker: false });
    expect((await settled(client(server.url))).error).toMatchObject({ reason: "attempts", attempts: 9 });
    expect(clock.slept).toEqual([50, 100, 200, 400, 800, 1600, 3200, 5000]);
  });

  it("the breaker opens after 5 failures in a row", async () => {
    const server = await serve(() => ({ status: 500 }));
    const { client } = clientOn({ maxAttempts: 1 });
    for (let i = 0; i < 4; i++) await settled(client(server.url));
    expect(client.breakers.get(server.origin)?.state).toBe("closed");
    await settled(client(server.url));
    expect(client.breakers.get(server.origin)?.state).toBe("open");
  });
});

describe("retry budget", () => {
  it("retries stop when the origin's bucket is empty, and successes refill it", async () => {
    const statuses = [500, 500, 500, /* then */ 200, 200, /* then */ 503, 200];
    const server = await serve((i) => ({ status: statuses[i] ?? 200 }));
    const { client, ofType } = clientOn({ maxAttempts: 5, budget: { capacity: 2, retryCost: 1, successRefund: 0.5 } });
    const tokens = () => client.budgets.get(server.origin)?.tokens;

    const { error } = await settled(client(server.url));
    expect(error).toBeInstanceOf(RetryLimitError);
    expect(error).toMatchObject({ reason: "budget", attempts: 3 }); // two retries paid, the third refused
    expect((error as RetryLimitError).response?.status).toBe(500);
    expect(tokens()).toBe(0);
    expect(ofType("client.retry").map((e) => e.budgetTokens)).toEqual([1, 0]);
    expect(ofType("client.give_up")).toMatchObject([{ reason: "budget", attempts: 3 }]);

    await client(server.url);
    await client(server.url);
    expect(tokens()).toBe(1); // two successes, 0.5 each

    expect((await client(server.url)).status).toBe(200); // 503, then a paid retry
    expect(tokens()).toBe(0.5); // spent 1, refunded 0.5 by the success
    expect(server.received).toHaveLength(7);
  });

  it("only a response not retried puts a token share back: a network error the client does not retry puts back nothing", async () => {
    const server = await serve([{ status: 503 }, { status: 200 }, { reset: true }]);
    const { client } = clientOn({ retryOn: ({ response }) => response?.status === 503 });
    const tokens = () => client.budgets.get(server.origin)?.tokens;
    expect((await client(server.url)).status).toBe(200);
    expect(tokens()).toBe(9.1); // a retry paid, a success refunded
    expect((await settled(client(server.url))).error).toBeInstanceOf(TypeError);
    expect(tokens()).toBe(9.1);
  });
});
