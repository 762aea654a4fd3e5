/**
 * Hostile clients against an adapter's scenario app (the contract of core's testing
 * `describeAdapterScenarios`), over real HTTP on 127.0.0.1, with fast-check. Requests are
 * written as raw bytes with node:http (fetch would normalise headers and bodies):
 *
 * - `POST /payments` with random `Idempotency-Key` values (empty, blank, quoted, sf-string
 *   escapes, latin1 bytes, 256+ characters, sent twice), random content types (JSON, form,
 *   text, octet-stream, multipart without a boundary, an unknown charset) and random bodies
 *   (invalid JSON, truncated UTF-8, empty, NUL bytes, random bytes);
 * - `POST /webhooks` with a signed delivery whose signature headers are garbled (missing,
 *   duplicated, over-long, a non-numeric timestamp, a signature in the wrong encoding).
 *
 * Invariants: no 5xx (the store is up); every problem+json answer has a `code`; any other 4xx
 * is a framework body parser's own (400, 413 or 415); the handler never runs for a refused
 * request; the server still answers a valid request afterwards; nothing is left unhandled.
 */

import { request } from "node:http";
import { type ClientHttp2Session, connect, type OutgoingHttpHeaders } from "node:http2";
import { signWebhook, standardWebhooks } from "@interlock/core";
import type { CreateScenarioApp, ScenarioApp } from "@interlock/core/testing";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closeSession, exchange } from "./http2.js";
import { SUITE_SECRET, startSuiteApp, watchUnhandled } from "./suite-app.js";

/** Fixed seeds: a failure names its counterexample and reproduces. */
const RUNS = { numRuns: 50, seed: 0x1d3a7 } as const;
/** The 4xx a framework's own body parser answers, in its own format (not problem+json). */
const PARSER_STATUSES = new Set([400, 413, 415]);

/** A header as sent: one value, or the same header once per value. */
type HeaderValue = string | string[];

interface RawRequest {
  path: string;
  headers: Record<string, HeaderValue>;
  body: Buffer;
}

interface RawResponse {
  status: number;
  contentType: string;
  text: string;
}

/** Sends `raw` byte for byte: header values as latin1, a header array as repeated lines. */
function send(url: string, raw: RawRequest): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const outgoing = request(`${url}${raw.path}`, { method: "POST", agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("error", reject);
      response.on("end", () =>
        resolve({
          status: response.statusCode ?? 0,
          contentType: response.headers["content-type"] ?? "",
          text: Buffer.concat(chunks).toString("utf8"),
        }),
      );
    });
    outgoing.on("error", reject);
    for (const [name, value] of Object.entries(raw.headers)) outgoing.setHeader(name, value);
    outgoing.setHeader("content-length", raw.body.length);
    outgoing.end(raw.body);
  });
}

/**
 * Sends `raw` over HTTP/2 cleartext on `session`: header values as latin1, a header array as
 * repeated fields, and the body in DATA frames with no `content-length` (HTTP/2 needs none).
 */
async function sendHttp2(session: ClientHttp2Session, raw: RawRequest): Promise<RawResponse> {
  const headers: OutgoingHttpHeaders = { ":method": "POST", ":path": raw.path };
  for (const [name, value] of Object.entries(raw.headers)) headers[name.toLowerCase()] = value;
  const [head, bytes] = await exchange(session, headers, raw.body);
  return {
    status: Number(head[":status"]),
    contentType: String(head["content-type"] ?? ""),
    text: bytes.toString("utf8"),
  };
}

/**
 * Checks the answer to a request Interlock may refuse, and names its outcome: "accepted" (below
 * 400), a problem's `code`, or "parser <status>" for a framework body parser's own 4xx.
 */
function outcomeOf(response: RawResponse, label: string): string {
  expect(response.status, `${label} → ${response.status} ${response.text}`).toBeLessThan(500);
  if (response.status < 400) return "accepted";
  if (/^application\/problem\+json/.test(response.contentType)) {
    const problem = JSON.parse(response.text) as { code?: unknown; status?: unknown };
    expect(typeof problem.code, `${label}: problem without a code: ${response.text}`).toBe("string");
    expect(problem.status, label).toBe(response.status);
    return problem.code as string;
  }
  expect(PARSER_STATUSES.has(response.status), `${label}: a ${response.status} that is not problem+json`).toBe(true);
  return `parser ${response.status}`;
}

// ---------------------------------------------------------------------------------------
// Arbitraries
// ---------------------------------------------------------------------------------------

const token = fc.stringMatching(/^[A-Za-z0-9_-]{1,24}$/);
const latin1 = fc.string({ unit: fc.integer({ min: 0x80, max: 0xff }).map((code) => String.fromCharCode(code)) });

/** `Idempotency-Key` values a client may send: valid, malformed, or absent (undefined). */
const idempotencyKey: fc.Arbitrary<HeaderValue | undefined> = fc.oneof(
  fc.constant(undefined),
  token.map((key) => `"${key}"`),
  token,
  fc.constantFrom(
    "",
    " ",
    "   ",
    '""',
    '"',
    "'key'",
    '"a", "b"',
    '"a\\"b"',
    '"a\\\\b"',
    '"a\\x"',
    '"a\\',
    "?1",
    ":YWJj:",
  ),
  fc.tuple(token, latin1).map(([key, bytes]) => `"${key}${bytes}"`),
  latin1.map((bytes) => `"${bytes}"`),
  fc.integer({ min: 256, max: 1024 }).map((length) => `"${"k".repeat(length)}"`),
  fc.tuple(token, token).map(([a, b]) => [`"${a}"`, `"${b}"`]),
  token.map((key) => [`"${key}"`, `"${key}"`]),
);

/** Content types, `undefined` for none. */
const contentType = fc.constantFrom(
  undefined,
  "application/json",
  "application/json; charset=utf-8",
  "application/json; charset=x-no-such-charset",
  "application/vnd.api+json",
  "application/x-www-form-urlencoded",
  "text/plain",
  "text/plain; charset=x-no-such-charset",
  "application/octet-stream",
  "multipart/form-data",
);

/** Request bodies: valid and broken JSON, forms, truncated UTF-8, NUL bytes, random bytes. */
const body: fc.Arbitrary<Buffer> = fc.oneof(
  fc.constant(Buffer.alloc(0)),
  fc.json({ maxDepth: 2 }).map((text) => Buffer.from(text)),
  fc
    .constantFrom("{", '{"amount":', "[1,]", "{'a':1}", "nul", "\uFEFF{}", "a=1&b=%ZZ&=")
    .map((text) => Buffer.from(text)),
  fc.json({ maxDepth: 1 }).map((text) => {
    const bytes = Buffer.from(`{"note":"é${text}"}`);
    return bytes.subarray(0, bytes.indexOf(0xc3) + 1); // cut inside the two-byte "é"
  }),
  fc.uint8Array({ maxLength: 32 }).map((bytes) => Buffer.concat([Buffer.from('{"a":"'), Buffer.alloc(2), bytes])),
  fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes)),
);

type WebhookHeaders = Record<"webhook-id" | "webhook-timestamp" | "webhook-signature", string>;

/** Ways to garble a validly signed delivery's headers; each leaves the signature unverifiable or the request malformed. */
type Garble = (headers: WebhookHeaders) => Record<string, HeaderValue>;

const garble: fc.Arbitrary<Garble> = fc.oneof(
  fc.subarray(["webhook-id", "webhook-timestamp", "webhook-signature"] as const, { minLength: 1 }).map(
    (missing): Garble =>
      (headers) =>
        Object.fromEntries(Object.entries(headers).filter(([name]) => !missing.includes(name as never))) as Record<
          string,
          string
        >,
  ),
  fc.constantFrom("abc", "", " ", "1e9", "-1", "0x10", "１７", "9".repeat(40), "1.5").map(
    (timestamp): Garble =>
      (headers) => ({
        ...headers,
        "webhook-timestamp": timestamp,
      }),
  ),
  fc.tuple(fc.integer({ min: 1, max: 99 }), fc.integer({ min: 300, max: 4_000 })).map(
    ([skew, length]): Garble =>
      (headers) => ({
        ...headers,
        "webhook-timestamp": [headers["webhook-timestamp"], String(Number(headers["webhook-timestamp"]) + skew)],
        "webhook-signature": "v1,".padEnd(length, "A"),
      }),
  ),
  fc.integer({ min: 300, max: 4_000 }).map(
    (length): Garble =>
      (headers) => ({ ...headers, "webhook-signature": "v1,".padEnd(length, "=") }),
  ),
  // The right signature in the wrong encoding: hex, base64url, raw bytes (high bit set: a header value may hold 0x80–0xFF).
  fc.constantFrom("hex", "base64url", "latin1").map(
    (encoding): Garble =>
      (headers) => {
        const bytes = Buffer.from(headers["webhook-signature"].slice(3), "base64");
        const text =
          encoding === "latin1"
            ? Buffer.from(bytes.map((byte) => byte | 0x80)).toString("latin1")
            : bytes.toString(encoding as BufferEncoding);
        return { ...headers, "webhook-signature": `v1,${text}` };
      },
  ),
  fc.constantFrom("v2,", "v1", "v1,", "v1,!!!!", "v1a,abc", ",,,", "v1,a v1,b v1,c").map(
    (signature): Garble =>
      (headers) => ({
        ...headers,
        "webhook-signature": signature,
      }),
  ),
  latin1.map(
    (bytes): Garble =>
      (headers) => ({
        ...headers,
        "webhook-signature": `v1,${bytes}`,
        "webhook-id": `msg_${bytes}`,
      }),
  ),
  fc.constant<Garble>((headers) => ({
    ...headers,
    "webhook-signature": [headers["webhook-signature"], "v1,AAAA"],
  })),
);

// ---------------------------------------------------------------------------------------
// The suite
// ---------------------------------------------------------------------------------------

export interface HostileClientOptions {
  /**
   * Send over HTTP/2 cleartext (h2c, prior knowledge), to an app `createApp` serves with an
   * HTTP/2 server: every body in DATA frames with no `content-length`.
   */
  http2?: boolean;
}

/**
 * Registers the hostile-client properties with vitest for one adapter, against the scenario
 * app `createApp` builds (the same one its `describeAdapterScenarios` runs).
 */
export function describeHostileClients(
  framework: string,
  createApp: CreateScenarioApp,
  { http2 = false }: HostileClientOptions = {},
): void {
  describe(`hostile clients: ${framework}`, () => {
    let app: ScenarioApp;
    let session: ClientHttp2Session | undefined;
    const post = (raw: RawRequest) => (session ? sendHttp2(session, raw) : send(app.url, raw));
    const ran = { payments: 0, webhooks: [] as string[] };
    const unhandled = watchUnhandled();
    let sequence = 0;

    beforeAll(async () => {
      unhandled.start();
      app = await startSuiteApp(createApp, {
        async webhook(event) {
          ran.webhooks.push(event.id as string);
        },
        async payment() {
          ran.payments++;
          return { status: 201, json: { id: `pay_${ran.payments}` } };
        },
      });
      if (http2) {
        session = connect(app.url);
        session.on("error", unhandled.collect);
      }
    });
    afterAll(async () => {
      if (session) await closeSession(session);
      await app?.close();
      unhandled.stop();
      expect(unhandled.errors).toEqual([]);
    });

    async function signed(): Promise<WebhookHeaders & { id: string; body: string }> {
      const body = JSON.stringify({ type: "invoice.paid" });
      const id = `msg_hostile_${Date.now().toString(36)}_${++sequence}`;
      const delivery = await signWebhook({ scheme: standardWebhooks, secret: SUITE_SECRET, body, id });
      return { ...(delivery.headers as WebhookHeaders), id, body };
    }

    /** The server still works: a valid keyed payment runs once, a valid delivery is received. */
    async function expectStillServing(): Promise<void> {
      const before = ran.payments;
      const key = `"after_${++sequence}_${Date.now().toString(36)}"`;
      const payment = await post({
        path: "/payments",
        headers: { "content-type": "application/json", "x-api-key": "client-a", "idempotency-key": key },
        body: Buffer.from('{"amount":100}'),
      });
      expect(payment.status, payment.text).toBe(201);
      expect(ran.payments).toBe(before + 1);
      const { id, body, ...headers } = await signed();
      const delivery = await post({
        path: "/webhooks",
        headers: { ...headers, "content-type": "application/json" },
        body: Buffer.from(body),
      });
      expect([delivery.status, delivery.text]).toEqual([200, JSON.stringify({ received: id })]);
    }

    it("random Idempotency-Key values, content types and bodies → no 5xx, typed refusals, the handler only for 2xx", async () => {
      const outcomes = new Set<string>();
      await fc.assert(
        fc.asyncProperty(idempotencyKey, contentType, body, async (key, type, bytes) => {
          const headers: Record<string, HeaderValue> = { "x-api-key": `client_${++sequence}` };
          if (key !== undefined) headers["idempotency-key"] = key;
          if (type !== undefined) headers["content-type"] = type;
          const before = ran.payments;
          const response = await post({ path: "/payments", headers, body: bytes });
          const label = JSON.stringify({ key, type, body: bytes.toString("latin1") });
          const outcome = outcomeOf(response, label);
          outcomes.add(outcome);
          // A fresh principal each run: nothing to replay, so a 2xx ran the handler once.
          expect(ran.payments - before, `${label} → ${response.status}`).toBe(outcome === "accepted" ? 1 : 0);
        }),
        RUNS,
      );
      // The runs reached both sides: requests the handler took, and keys Interlock refused.
      expect([...outcomes]).toEqual(expect.arrayContaining(["accepted", "idempotency_key_invalid"]));
      await expectStillServing();
    });

    it("garbled webhook signature headers → a problem+json 4xx and the handler not run, or a verified 200", async () => {
      const outcomes = new Set<string>();
      await fc.assert(
        fc.asyncProperty(garble, async (garbleHeaders) => {
          const { id, body, ...headers } = await signed();
          const sent = garbleHeaders(headers);
          const response = await post({
            path: "/webhooks",
            headers: { ...sent, "content-type": "application/json" },
            body: Buffer.from(body),
          });
          const label = JSON.stringify(sent).slice(0, 400);
          // A valid signature beside a garbled one may verify (a header may list several).
          const outcome = outcomeOf(response, label);
          outcomes.add(outcome);
          if (outcome !== "accepted") {
            expect(response.contentType, label).toMatch(/^application\/problem\+json/);
            expect(ran.webhooks, label).not.toContain(id);
          } else {
            expect([response.status, ran.webhooks.includes(id)], label).toEqual([200, true]);
          }
        }),
        RUNS,
      );
      expect([...outcomes]).toEqual(expect.arrayContaining(["missing_header", "no_matching_signature"]));
      await expectStillServing();
    });
  });
}
