/** What the client's errors show when logged: the origin, never the path or query of the URL called. */
import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import {
  CircuitOpenError,
  type ClientError,
  type ClientErrorDetails,
  RetryAfterTooLongError,
  RetryLimitError,
  TimeoutError,
} from "../src/index.js";
import { clientOn, serve, settled } from "./helpers/setup.js";

/** A token in the query, as some APIs take it: it must not reach a log through an error. */
const QUERY = "?access_token=s3cr3t-query";
const LEAK = /s3cr3t|\/resource/;

/** Everything a logger could print of an error: `console.error(error)`'s text, and its JSON. */
function printed(error: unknown): string {
  return `${inspect(error, { depth: 10 })}\n${JSON.stringify(error)}`;
}

/** The error `promise` rejects with. */
async function failure(promise: Promise<unknown>): Promise<ClientError> {
  const { error } = await settled(promise);
  return error as ClientError;
}

describe("a logged error", () => {
  it("of each type, carrying a response to a URL with a path and a query, shows neither; its response is still there", async () => {
    const server = await serve([]);
    const response = await fetch(`${server.url}${QUERY}`);
    expect(response.url).toMatch(LEAK); // what the error must not print
    const details: ClientErrorDetails = { origin: server.origin, method: "GET", attempts: 1, response };
    const errors: ClientError[] = [
      new RetryLimitError("attempts", details),
      new TimeoutError("deadline", 1000, details),
      new CircuitOpenError(1000, details),
      new RetryAfterTooLongError(120_000, 60_000, details),
    ];
    for (const error of errors) {
      expect(printed(error)).not.toMatch(LEAK);
      expect(printed(error)).toContain(server.origin.replace("http://", "")); // the origin is there
      expect(error.response).toBe(response);
      expect(Object.keys(error)).not.toContain("response");
    }
    expect(await errors[0]?.response?.text()).toBe("ok");
  });

  it("as the client throws them, after a response (retry limit, too long a Retry-After, the circuit opening): no path, no query", async () => {
    const server = await serve((index) =>
      index === 2 ? { status: 503, headers: { "retry-after": "120" } } : { status: 503, body: "down" },
    );
    const url = `${server.url}${QUERY}`;
    const { client } = clientOn({ maxAttempts: 2, breaker: { failures: 4 } });
    const limit = await failure(client(url));
    const tooLong = await failure(client(url));
    const open = await failure(client(url));
    expect([limit, tooLong, open].map((error) => [error.name, error.response?.status])).toEqual([
      ["RetryLimitError", 503],
      ["RetryAfterTooLongError", 503],
      ["CircuitOpenError", 503],
    ]);
    for (const error of [limit, tooLong, open]) {
      expect(error.response?.url).toMatch(LEAK);
      expect(printed(error)).not.toMatch(LEAK);
      await error.response?.body?.cancel();
    }
  });

  it("as the client throws them, after a timeout or a network error: the cause it prints has no path or query either", async () => {
    const server = await serve([{ hang: true }, { reset: true }, { reset: true }]);
    const url = `${server.url}${QUERY}`;
    const { client, clock } = clientOn({ maxAttempts: 1, timeoutMs: 1000, breaker: false });
    const pending = failure(client(url));
    await server.receivedCount(1);
    await clock.advance(1000);
    const timedOut = await pending;
    const reset = await failure(client(url, { method: "PUT" }));
    expect([timedOut, reset].map((error) => [error.name, error.cause instanceof Error])).toEqual([
      ["RetryLimitError", true],
      ["RetryLimitError", true],
    ]);
    for (const error of [timedOut, reset]) expect(printed(error)).not.toMatch(LEAK);
  });
});

describe("the Idempotency-Key on an error", () => {
  it("is the one every attempt sent, the client's or the caller's, so a later call can collect the stored outcome; a request without one has none", async () => {
    const server = await serve(() => ({ status: 503, body: "down" }));
    const { client } = clientOn({ maxAttempts: 2, breaker: false });
    const made = await failure(client(server.url, { method: "POST", body: "{}" }));
    const given = await failure(client(server.url, { method: "PATCH", headers: { "idempotency-key": "k-mine" } }));
    const none = await failure(client(server.url));
    const sent = server.received.map((request) => request.headers["idempotency-key"]);
    expect(sent).toEqual([sent[0], sent[0], "k-mine", "k-mine", undefined, undefined]);
    expect(sent[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect([made, given, none].map((error) => [error.name, error.idempotencyKey])).toEqual([
      ["RetryLimitError", sent[0]],
      ["RetryLimitError", "k-mine"],
      ["RetryLimitError", undefined],
    ]);
  });
});
