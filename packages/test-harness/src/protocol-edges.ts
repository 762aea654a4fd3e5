/**
 * What real clients do on the wire, against an adapter's scenario app (the contract of core's
 * testing `describeAdapterScenarios`), over bare sockets on 127.0.0.1 (raw-http.ts): nothing
 * between the test and the server normalises the request.
 *
 * - `Expect: 100-continue` (curl sends it for large bodies): the body is read once the client
 *   has its `100 Continue`; a declared length past the limit, or a delivery streamed past it,
 *   is refused 413 at once, never after a wait for bytes the client may not send.
 * - HTTP/1.1 pipelining: requests written back to back on one socket are answered in order, each
 *   with its own complete answer, whichever of them the server finishes first.
 * - A request its headers refuse (a delivery unsigned or outside the window, a malformed key):
 *   answered before its body is sent, never after a wait for bytes the client may not send.
 * - A body cut short (the client leaves): nothing runs and nothing stays claimed.
 * - Chunked bodies, with chunk extensions, trailers, and sizes in upper-case hex with leading
 *   zeros: verified and fingerprinted over exactly the decoded bytes.
 * - HEAD and OPTIONS: never a delivery, never covered by idempotency.
 *
 * Nothing is left unhandled, in the server or in Interlock.
 */

import { DEFAULT_REQUEST_BODY_LIMIT, signWebhook, standardWebhooks } from "@interlock/core";
import type { CreateScenarioApp, ScenarioApp } from "@interlock/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chunked, type RawAnswer, RawHttpConnection, requestHead } from "./raw-http.js";
import { SUITE_SECRET, type SuiteHandlers, startSuiteApp, watchUnhandled } from "./suite-app.js";

/** The webhook middleware's limit here (its verifier's `maxBodyBytes`): small, so bodies past it stay cheap. */
const WEBHOOK_LIMIT = 64 * 1024;
/** A row waits at most 2 s for each answer (raw-http.ts), and a few of them in all. */
const ROW = { timeout: 10_000 } as const;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface ProtocolEdgeOptions {
  /**
   * Who answers a keyed payment whose declared length is past the limit: Interlock (413
   * problem+json `body_too_large`, the default), or the framework's own body parser, which
   * runs before the idempotency middleware on Fastify (its 413 `FST_ERR_CTP_BODY_TOO_LARGE`).
   */
  oversizedPayment?: "interlock" | "framework";
}

/**
 * Registers the protocol edge cases with vitest for one adapter, against the scenario app
 * `createApp` builds (the same one its `describeAdapterScenarios` runs), served over HTTP/1.1.
 */
export function describeProtocolEdges(
  framework: string,
  createApp: CreateScenarioApp,
  { oversizedPayment = "interlock" }: ProtocolEdgeOptions = {},
): void {
  describe(`protocol edges over raw sockets: ${framework}`, () => {
    let app: ScenarioApp;
    /** Amounts of the payments the handler ran, and ids of the deliveries it processed, in order. */
    const ran = { payments: [] as number[], webhooks: [] as string[] };
    const unhandled = watchUnhandled();
    const connections: RawHttpConnection[] = [];
    let sequence = 0;

    beforeAll(async () => {
      unhandled.start();
      const handlers: SuiteHandlers = {
        async webhook(event) {
          const { delayMs = 0 } = event.payload as { delayMs?: number };
          await sleep(delayMs);
          ran.webhooks.push(event.id as string);
        },
        async payment(body) {
          const { amount, delayMs = 0 } = (body ?? {}) as { amount?: number; delayMs?: number };
          await sleep(delayMs);
          ran.payments.push(amount ?? 0);
          return { status: 201, json: { id: `pay_${ran.payments.length}`, amount } };
        },
      };
      app = await startSuiteApp(createApp, handlers, { maxBodyBytes: WEBHOOK_LIMIT });
    });
    afterAll(async () => {
      for (const connection of connections) connection.destroy();
      await app?.close();
      unhandled.stop();
      expect(unhandled.errors).toEqual([]);
    });

    const open = async () => {
      const connection = await RawHttpConnection.open(app.url);
      connections.push(connection);
      return connection;
    };
    const newKey = () => `"edge_${++sequence}_${Date.now().toString(36)}"`;
    /** A fresh amount: the payment handler's record of the runs tells each request apart by it. */
    const newAmount = () => 1_000 + ++sequence;
    const runsOf = (amount: number) => ran.payments.filter((ranAmount) => ranAmount === amount).length;

    /** The head of a keyed JSON payment; `framing` is its Content-Length or Transfer-Encoding (and Expect). */
    const paymentHead = (key: string | undefined, framing: Record<string, string | number>) =>
      requestHead("POST", "/payments", {
        "content-type": "application/json",
        "x-api-key": "client-a",
        ...(key === undefined ? {} : { "idempotency-key": key }),
        ...framing,
      });
    const payment = (key: string | undefined, body: object) => {
      const json = JSON.stringify(body);
      return paymentHead(key, { "content-length": Buffer.byteLength(json) }) + json;
    };

    /** A signed delivery of `payload`, signed at `timestamp` (seconds; default now). */
    async function delivery(payload: object = { type: "invoice.paid" }, timestamp?: number) {
      const body = JSON.stringify(payload);
      const id = `msg_edge_${++sequence}_${Date.now().toString(36)}`;
      const signed = await signWebhook({
        scheme: standardWebhooks,
        secret: SUITE_SECRET,
        body,
        id,
        ...(timestamp === undefined ? {} : { timestamp }),
      });
      const headers = { ...(signed.headers as Record<string, string>), "content-type": "application/json" };
      return {
        id,
        body,
        head: (framing: Record<string, string | number>, method = "POST") =>
          requestHead(method, "/webhooks", { ...headers, ...framing }),
      };
    }
    /** The delivery's request, framed by Content-Length. */
    const deliveryRequest = (d: { body: string; head: (framing: Record<string, number>) => string }) =>
      d.head({ "content-length": Buffer.byteLength(d.body) }) + d.body;

    const json = (answer: RawAnswer) => JSON.parse(answer.text) as Record<string, unknown>;
    const expectProblem = (answer: RawAnswer, status: number, code: string) => {
      expect([answer.status, answer.headers["content-type"]], answer.text).toEqual([
        status,
        "application/problem+json",
      ]);
      expect(json(answer)).toMatchObject({ status, code });
    };
    /** The handler's own 201 for `amount`, run now (not replayed). */
    const expectCreated = (answer: RawAnswer, amount: number) => {
      expect([answer.status, json(answer).amount, answer.headers["idempotent-replayed"]], answer.text).toEqual([
        201,
        amount,
        undefined,
      ]);
    };
    /** A second copy of a keyed request: the replay of `first`, or 409 while the first still runs. */
    const expectReplayOrInFlight = (answer: RawAnswer, first: RawAnswer) => {
      if (answer.status === 409) return expectProblem(answer, 409, "request_in_flight");
      expect([answer.status, answer.headers["idempotent-replayed"], answer.text]).toEqual([201, "true", first.text]);
    };
    /** Not answered by Interlock: no refusal and no replay. */
    const expectNotInterlocks = (answer: RawAnswer) => {
      expect(answer.headers["content-type"] ?? "", answer.text).not.toMatch(/problem\+json/);
      expect(answer.headers["idempotent-replayed"]).toBeUndefined();
    };

    describe("Expect: 100-continue", () => {
      it("a body within the limit is sent after 100 Continue, then read and answered", ROW, async () => {
        const connection = await open();
        const amount = newAmount();
        const body = JSON.stringify({ amount });
        await connection.write(paymentHead(newKey(), { "content-length": body.length, expect: "100-continue" }));
        expect((await connection.answer()).status).toBe(100);
        await connection.write(body);
        expectCreated(await connection.answer(), amount);

        const d = await delivery();
        await connection.write(d.head({ "content-length": d.body.length, expect: "100-continue" }));
        expect((await connection.answer()).status).toBe(100);
        await connection.write(d.body);
        const answer = await connection.answer();
        expect([answer.status, json(answer)]).toEqual([200, { received: d.id }]);
      });

      it(
        "a declared length past the limit → 413 without waiting for the body (never sent); nothing runs",
        ROW,
        async () => {
          const amount = newAmount();
          const payments = await open();
          await payments.write(
            paymentHead(newKey(), { "content-length": DEFAULT_REQUEST_BODY_LIMIT + 1, expect: "100-continue" }),
          );
          const refused = await payments.finalAnswer();
          if (oversizedPayment === "interlock") expectProblem(refused, 413, "body_too_large");
          else expect(refused.status).toBe(413);

          const d = await delivery();
          const webhooks = await open();
          await webhooks.write(d.head({ "content-length": WEBHOOK_LIMIT + 1, expect: "100-continue" }));
          expectProblem(await webhooks.finalAnswer(), 413, "body_too_large");
          expect([runsOf(amount), ran.webhooks.includes(d.id)]).toEqual([0, false]);
        },
      );
    });

    it(
      "a keyed payment declared past the limit, its body then sent whole → 413; the next request on the connection is answered, unless the 413 said Connection: close",
      ROW,
      async () => {
        const amount = newAmount();
        const connection = await open();
        await connection.write(paymentHead(newKey(), { "content-length": DEFAULT_REQUEST_BODY_LIMIT + 1 }));
        await connection.write(Buffer.alloc(DEFAULT_REQUEST_BODY_LIMIT + 1, " "));
        const refused = await connection.finalAnswer();
        expect(refused.status).toBe(413);
        // A server may close a connection after a body it will not read; one that said keep-alive must keep it.
        const next = newAmount();
        await connection.write(payment(newKey(), { amount: next }));
        const after = await connection.answerOrEnd();
        const closes = /\bclose\b/i.test(refused.headers.connection ?? "");
        if (after !== "closed" || !closes) {
          expect(after, `the 413 said Connection: ${refused.headers.connection}`).not.toBe("closed");
          expectCreated(after as RawAnswer, next);
        }
        expect(runsOf(amount)).toBe(0);
      },
    );

    it(
      "a chunked delivery past the limit → 413 before its last chunk; then the next request is answered, or the connection closes",
      ROW,
      async () => {
        const d = await delivery();
        const connection = await open();
        await connection.write(d.head({ "transfer-encoding": "chunked", expect: "100-continue" }));
        const oversized = Buffer.alloc(WEBHOOK_LIMIT + 1024, "x");
        await connection.write(chunked(oversized, { pieces: 4, unfinished: true }));
        expectProblem(await connection.finalAnswer(), 413, "body_too_large");
        // The body ends, and a delivery follows on the same connection: it is answered as itself, or not at all.
        const next = await delivery();
        await connection.write(`0\r\n\r\n${deliveryRequest(next)}`);
        const after = await connection.answerOrEnd();
        if (after !== "closed") expect([after.status, json(after)]).toEqual([200, { received: next.id }]);
        expect(ran.webhooks.includes(d.id)).toBe(false);
      },
    );

    it(
      "a request its headers refuse (a delivery unsigned or stale; a payment's malformed key) → answered before its body is sent; nothing runs; then the next request is answered, or the connection closes",
      ROW,
      async () => {
        const length = 32 * 1024; // within the limit: only the headers can refuse it
        const stale = await delivery({ type: "invoice.paid" }, Math.floor(Date.now() / 1000) - 600);
        const heads = [
          {
            head: requestHead("POST", "/webhooks", { "content-type": "application/json", "content-length": length }),
            status: 400,
            code: "missing_header",
          },
          { head: stale.head({ "content-length": length }), status: 401, code: "timestamp_too_old" },
          { head: paymentHead('"a", "b"', { "content-length": length }), status: 400, code: "idempotency_key_invalid" },
        ];
        for (const { head, status, code } of heads) {
          const connection = await open();
          await connection.write(head);
          expectProblem(await connection.finalAnswer(), status, code);
          // The body follows late, then a delivery on the same connection: answered as itself, or not at all.
          const next = await delivery();
          await connection.write(Buffer.concat([Buffer.alloc(length, "x"), Buffer.from(deliveryRequest(next))]));
          const after = await connection.answerOrEnd();
          if (after !== "closed") expect([after.status, json(after)]).toEqual([200, { received: next.id }]);
        }
        expect(ran.webhooks.includes(stale.id)).toBe(false);
      },
    );

    describe("pipelining: requests written back to back on one socket", () => {
      it(
        "one key three times → one run; the copies get 409 or the replay, each complete and in order",
        ROW,
        async () => {
          const connection = await open();
          const key = newKey();
          const amount = newAmount();
          const request = payment(key, { amount, delayMs: 100 });
          await connection.write(request + request + request);
          const first = await connection.answer();
          expectCreated(first, amount);
          expectReplayOrInFlight(await connection.answer(), first);
          expectReplayOrInFlight(await connection.answer(), first);
          expect(runsOf(amount)).toBe(1);
        },
      );

      it("different keys and none, the first slowest → each answer is its own request's, in order", ROW, async () => {
        const connection = await open();
        const amounts = [newAmount(), newAmount()];
        await connection.write(
          payment(newKey(), { amount: amounts[0], delayMs: 150 }) +
            payment(newKey(), { amount: amounts[1], delayMs: 50 }) +
            payment(undefined, { amount: newAmount() }),
        );
        for (const amount of amounts) expectCreated(await connection.answer(), amount);
        // Passed through unread, to the route's own parser where the app has one (not Express's here).
        const unkeyed = await connection.answer();
        expect([unkeyed.status, unkeyed.headers["idempotent-replayed"]]).toEqual([201, undefined]);
        expect(amounts).not.toContain(json(unkeyed).amount);
        expect(amounts.map(runsOf)).toEqual([1, 1]);
      });

      it(
        "one delivery twice with a keyed payment between → processed once; the copy is a duplicate or in flight",
        ROW,
        async () => {
          const connection = await open();
          const d = await delivery({ type: "invoice.paid", delayMs: 50 });
          const amount = newAmount();
          await connection.write(deliveryRequest(d) + payment(newKey(), { amount }) + deliveryRequest(d));
          const first = await connection.answer();
          expect([first.status, json(first)]).toEqual([200, { received: d.id }]);
          expectCreated(await connection.answer(), amount);
          const copy = await connection.answer();
          if (copy.status === 409) expectProblem(copy, 409, "request_in_flight");
          else expect([copy.status, json(copy)]).toEqual([200, { duplicate: true, id: d.id }]);
          expect(ran.webhooks.filter((id) => id === d.id)).toEqual([d.id]);
        },
      );
    });

    it(
      "a body cut short, then the client leaves → nothing runs, nothing held: the full retry runs once",
      ROW,
      async () => {
        const key = newKey();
        const amount = newAmount();
        const body = JSON.stringify({ amount, note: "x".repeat(64) });
        const d = await delivery({ type: "invoice.paid", note: "x".repeat(64) });
        const cut = [
          // Half of what Content-Length declares.
          paymentHead(key, { "content-length": body.length }) + body.slice(0, body.length / 2),
          d.head({ "content-length": d.body.length }) + d.body.slice(0, d.body.length / 2),
          // Every byte of the JSON, but not the last chunk that ends the message.
          Buffer.concat([
            Buffer.from(paymentHead(key, { "transfer-encoding": "chunked" })),
            chunked(body, { unfinished: true }),
          ]),
          Buffer.concat([
            Buffer.from(d.head({ "transfer-encoding": "chunked" })),
            chunked(d.body, { unfinished: true }),
          ]),
        ];
        for (const request of cut) {
          const connection = await open();
          await connection.write(request);
          connection.destroy();
        }
        // Time for the server to see the connections close: a request it took as complete would run now.
        await sleep(200);
        expect([runsOf(amount), ran.webhooks.includes(d.id)]).toEqual([0, false]);
        const connection = await open();
        await connection.write(payment(key, { amount, note: "x".repeat(64) }) + deliveryRequest(d));
        expectCreated(await connection.answer(), amount);
        const processed = await connection.answer();
        expect([processed.status, json(processed)]).toEqual([200, { received: d.id }]);
        expect([runsOf(amount), ran.webhooks.filter((id) => id === d.id).length]).toEqual([1, 1]);
      },
    );

    it(
      "chunked bodies with extensions, trailers and padded upper-case sizes → verified and fingerprinted on the decoded bytes",
      ROW,
      async () => {
        const framing = { pieces: 4, extension: ';ext="a;b"', paddedSizes: true, trailers: { "x-checksum": "0" } };
        const connection = await open();
        const d = await delivery({ type: "invoice.paid", note: "chunked" });
        await connection.write(
          Buffer.concat([
            Buffer.from(d.head({ "transfer-encoding": "chunked", trailer: "x-checksum" })),
            chunked(d.body, framing),
          ]),
        );
        const verified = await connection.answer();
        expect([verified.status, json(verified)]).toEqual([200, { received: d.id }]);

        const key = newKey();
        const amount = newAmount();
        const body = JSON.stringify({ amount, note: "chunked" });
        const chunkedPayment = (bytes: string) =>
          Buffer.concat([Buffer.from(paymentHead(key, { "transfer-encoding": "chunked" })), chunked(bytes, framing)]);
        await connection.write(chunkedPayment(body));
        const first = await connection.answer();
        expectCreated(first, amount);
        // The same bytes framed by Content-Length are the same request: the replay.
        await connection.write(payment(key, { amount, note: "chunked" }));
        const replay = await connection.answer();
        expect([replay.status, replay.headers["idempotent-replayed"], replay.text]).toEqual([201, "true", first.text]);
        // One byte other, chunked the same way: another request under that key.
        await connection.write(chunkedPayment(body.replace("chunked", "chunkee")));
        expectProblem(await connection.answer(), 422, "idempotency_key_mismatch");
        expect(runsOf(amount)).toBe(1);
      },
    );

    it(
      "a retry whose target carries a fragment (`/payments#retry`) → the same request: the replay, never a second run",
      ROW,
      async () => {
        const connection = await open();
        const key = newKey();
        const amount = newAmount();
        await connection.write(payment(key, { amount }));
        const first = await connection.answer();
        expectCreated(first, amount);
        const json = JSON.stringify({ amount });
        const head = requestHead("POST", "/payments#retry", {
          "content-type": "application/json",
          "x-api-key": "client-a",
          "idempotency-key": key,
          "content-length": Buffer.byteLength(json),
        });
        await connection.write(head + json);
        const retry = await connection.answer();
        // A router that takes the fragment for part of the path (Hono before 4.9) finds no route:
        // its own 404, before any middleware. Interlock's answer, where the route is found, is the replay.
        if (retry.status !== 404 || process.env.INTERLOCK_EXPECTED_HONO !== "4.8") {
          expect([retry.status, retry.headers["idempotent-replayed"], retry.text]).toEqual([201, "true", first.text]);
        }
        expect(runsOf(amount)).toBe(1);
      },
    );

    describe("HEAD and OPTIONS", () => {
      it(
        "on the idempotent route, with a key → not covered: no refusal, no replay, the key left unclaimed",
        ROW,
        async () => {
          const connection = await open();
          const key = newKey();
          for (const method of ["HEAD", "OPTIONS", "HEAD", "OPTIONS"]) {
            await connection.write(
              requestHead(method, "/payments", { "x-api-key": "client-a", "idempotency-key": key }),
            );
            expectNotInterlocks(await connection.answer({ head: method === "HEAD" }));
          }
          const amount = newAmount();
          await connection.write(payment(key, { amount }));
          expectCreated(await connection.answer(), amount);
        },
      );

      it(
        "on the webhook route, with a delivery's signed headers → not a delivery: the handler does not run, the POST is processed",
        ROW,
        async () => {
          const connection = await open();
          const d = await delivery();
          await connection.write(d.head({}, "HEAD"));
          await connection.answer({ head: true });
          await connection.write(d.head({ "content-length": d.body.length }, "OPTIONS") + d.body);
          await connection.answer();
          expect(ran.webhooks.includes(d.id)).toBe(false);
          await connection.write(deliveryRequest(d));
          const processed = await connection.answer();
          expect([processed.status, json(processed)]).toEqual([200, { received: d.id }]);
        },
      );
    });
  });
}
