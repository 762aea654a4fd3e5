/**
 * The payments API every framework example serves the same way, and one test block for it:
 * a payment is created once, its retry replayed byte for byte, another body under the same
 * key refused (422), keys scoped per account, a key and an API key required, a body that is no
 * payment object refused (400); a body that is not JSON, or does not decode, refused 400 without
 * using up its key (the corrected retry runs); a compressed payment read decoded.
 */
import { gzipSync } from "node:zlib";
import { describe, expect, it, onTestFinished, vi } from "vitest";

export const API_KEY = "sk_test_shop_7";
export const OTHER_API_KEY = "sk_test_shop_9";
/** API key → account, as the examples' `apiKeys` option takes it. */
export const apiKeys = () =>
  new Map([
    [API_KEY, "acct_shop_7"],
    [OTHER_API_KEY, "acct_shop_9"],
  ]);

interface Target {
  /** Where the API is served: an origin, or with the path it is mounted at (`http://…/api`). */
  url: string;
  db: { payments: Map<string, unknown> };
}

/** Authorization values that carry a valid API key but are not exactly `Bearer <key>`: each is a 401. */
export function notBearer(apiKey: string): string[] {
  return [
    `Bearer ${apiKey} extra`,
    `Bearer ${apiKey},other`,
    `Bearer  ${apiKey}`,
    `Bearer\t${apiKey}`,
    `Bearer:${apiKey}`,
    `Basic ${apiKey}`,
    apiKey,
    "Bearer",
  ];
}

/** `text` gzip-compressed, as a fetch body. */
const gzipped = (text: string) => new Uint8Array(gzipSync(text));

/** The path an API at `url` is mounted at, without a trailing slash: "" for an origin. */
const mountPath = (url: string) => new URL(url).pathname.replace(/\/$/, "");

/** The `detail` of every example's 400 `bad_request` for a body that holds no JSON object. */
export const NO_JSON_OBJECT = "send the payment as a JSON object, Content-Type: application/json";
/** The `detail` of the examples' 400 `invalid_payment` for a JSON object that is no payment. */
export const INVALID_PAYMENT = "amount must be a positive integer (cents), currency 3 letters";

/** What an example answers a payment body: a problem+json with this status and code (and detail, where shared). */
export interface PaymentBodyAnswer {
  status: number;
  /** Unset where the examples differ (the status is the same). */
  code?: string;
  detail?: string;
}

export interface PaymentBodyCase {
  name: string;
  /** A function for a body that can be sent once only (a stream). */
  body: BodyInit | null | (() => BodyInit);
  headers: Record<string, string>;
  answer: PaymentBodyAnswer;
}

/** A body of no bytes, sent chunked: no `Content-Length: 0` tells it is empty. */
const emptyStream = () => new ReadableStream<Uint8Array>({ start: (controller) => controller.close() });

const noJsonObject = { status: 400, code: "bad_request", detail: NO_JSON_OBJECT };
const invalidPayment = { status: 400, code: "invalid_payment", detail: INVALID_PAYMENT };
const gzip = { "content-encoding": "gzip" };

/**
 * What every example answers POST /payments for each shape of body, one table for all:
 * - no JSON object at all (no bytes, JSON that is no object, or no JSON): 400 `bad_request`,
 *   refused without using up the key, so the client's corrected retry runs;
 * - a JSON object that is no valid payment, `{}` included: 400 `invalid_payment`, an answer
 *   like any other, stored under the key and replayed to a retry.
 * Bad JSON is `bad_request` too, not @interlock/web's `body_not_json` (the code of readJson's
 * refusal, which the Next.js app answers as `bad_request`): the framework examples' parsers
 * refuse it as a plain 400, and for the client it is one mistake, to send a JSON object. Each
 * parser words its own `detail` for JSON it cannot parse: only the code is the same there.
 */
export const PAYMENT_BODY_ANSWERS: PaymentBodyCase[] = [
  { name: "no body", body: null, headers: {}, answer: noJsonObject },
  { name: "an empty body", body: "", headers: {}, answer: noJsonObject },
  { name: "an empty body, chunked", body: emptyStream, headers: {}, answer: noJsonObject },
  { name: "an empty body, gzip", body: gzipped(""), headers: gzip, answer: noJsonObject },
  { name: "{}", body: "{}", headers: {}, answer: invalidPayment },
  { name: '{"currency":"eur"}', body: '{"currency":"eur"}', headers: {}, answer: invalidPayment },
  { name: '{"amount":0}', body: '{"amount":0}', headers: {}, answer: invalidPayment },
  { name: '{"amount":"700"}', body: '{"amount":"700"}', headers: {}, answer: invalidPayment },
  { name: "{}, gzip", body: gzipped("{}"), headers: gzip, answer: invalidPayment },
  { name: "JSON null", body: "null", headers: {}, answer: noJsonObject },
  { name: "a JSON array", body: "[]", headers: {}, answer: noJsonObject },
  { name: "a JSON number", body: "42", headers: {}, answer: noJsonObject },
  { name: "a JSON string", body: '"pay"', headers: {}, answer: noJsonObject },
  { name: "JSON true", body: "true", headers: {}, answer: noJsonObject },
  {
    name: "no JSON, sent as text/plain",
    body: "amount=700",
    headers: { "content-type": "text/plain" },
    answer: noJsonObject,
  },
  { name: "blanks only", body: " \n", headers: {}, answer: { status: 400, code: "bad_request" } },
  { name: "JSON cut short", body: '{"amount":', headers: {}, answer: { status: 400, code: "bad_request" } },
  { name: "no JSON", body: "{amount: 700}", headers: {}, answer: { status: 400, code: "bad_request" } },
  {
    name: "JSON cut short, gzip",
    body: gzipped('{"amount":'),
    headers: gzip,
    answer: { status: 400, code: "bad_request" },
  },
  // Refused where it is decoded: by Interlock's middleware (`body_not_decodable`, Interlock's
  // problem type) in most examples, by express.json() (`bad_request`) in those that use it.
  {
    name: "gzip that does not decode",
    body: new Uint8Array([0x1f, 0x8b, 0x08, 0x00, 1, 2, 3]),
    headers: gzip,
    answer: { status: 400 },
  },
];

/** Where to send a payment, and how to count the payments made. */
export interface PaymentsEndpoint {
  url: string;
  /** The authentication headers. */
  headers: Record<string, string>;
  /** How many payments the app has made; without it, a payment made is told by its 201 alone. */
  payments?: () => number | Promise<number>;
}

/**
 * Sends `body` under a key of its own and checks `answer`: a `bad_request` leaves the key for the
 * corrected retry, which runs; an `invalid_payment` is stored, its retry replayed. No payment is
 * made of the body either way.
 */
export async function expectPaymentBodyAnswer(
  { url, headers: auth, payments }: PaymentsEndpoint,
  { name, body, headers, answer }: PaymentBodyCase,
  key: string,
): Promise<void> {
  const send = (sent: BodyInit | null | (() => BodyInit), more: Record<string, string> = {}) =>
    fetch(`${url}/payments`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json", "idempotency-key": key, ...more },
      body: typeof sent === "function" ? sent() : sent,
      ...(typeof sent === "function" && { duplex: "half" }),
    } as RequestInit);
  const count = async () => payments?.();
  const before = await count();
  const refused = await send(body, headers);
  const text = await refused.text();
  expect({ name, status: refused.status, type: refused.headers.get("content-type") }).toEqual({
    name,
    status: answer.status,
    type: expect.stringMatching(/^application\/problem\+json/),
  });
  const problem = answer.code === undefined ? answer : { ...answer, type: `urn:example:problem:${answer.code}` };
  expect({ name, problem: JSON.parse(text) }).toEqual({ name, problem: expect.objectContaining(problem) });
  expect(await count()).toBe(before);

  if (answer.code === "invalid_payment") {
    // An answer: stored under the key, replayed to the retry.
    const retry = await send(body, headers);
    expect({ name, replayed: retry.headers.get("idempotent-replayed"), body: await retry.text() }).toEqual({
      name,
      replayed: "true",
      body: text,
    });
  } else {
    // The client's mistake, refused: the key is left for the corrected retry, which runs.
    const corrected = await send(JSON.stringify({ amount: 700, currency: "eur" }));
    expect({ name, status: corrected.status, replayed: corrected.headers.get("idempotent-replayed") }).toEqual({
      name,
      status: 201,
      replayed: null,
    });
    if (before !== undefined) expect(await count()).toBe(before + 1);
  }
}

/**
 * One test per row of `PAYMENT_BODY_ANSWERS` against the app at `endpoint()` (read when the
 * tests run). `invalidPaymentDetail`: the app's words for a JSON object that is no payment, when
 * its payments differ (the Prometheus app's have no currency).
 */
export function itAnswersEveryPaymentBody(endpoint: () => PaymentsEndpoint, invalidPaymentDetail = INVALID_PAYMENT) {
  it.each(PAYMENT_BODY_ANSWERS.map((row, i) => ({ ...row, i })))(
    "answers $name $answer.status $answer.code",
    async ({ i, ...row }) => {
      const answer =
        row.answer.code === "invalid_payment" ? { ...row.answer, detail: invalidPaymentDetail } : row.answer;
      await expectPaymentBodyAnswer(endpoint(), { ...row, answer }, `body-${i}`);
    },
  );
}

/** `target` is read when the tests run, after the example's `beforeAll` has booted it. */
export function describePaymentsApi(target: () => Target): void {
  describe("POST /payments", () => {
    const pay = (body: unknown, { key = "order-1042", apiKey = API_KEY } = {}) =>
      fetch(`${target().url}/payments`, {
        method: "POST",
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json", "idempotency-key": key },
        body: JSON.stringify(body),
      });

    it("creates a payment once: the retry is replayed byte for byte, another body with the key is 422", async () => {
      const first = await pay({ amount: 4200, currency: "eur" });
      expect(first.status).toBe(201);
      expect(first.headers.get("idempotent-replayed")).toBeNull();
      const created = await first.text();
      const payment = JSON.parse(created);
      expect(payment).toMatchObject({ amount: 4200, currency: "eur", account: "acct_shop_7" });
      expect(first.headers.get("location")).toBe(`${mountPath(target().url)}/payments/${payment.id}`);

      const retry = await pay({ amount: 4200, currency: "eur" });
      expect(retry.status).toBe(201);
      expect(retry.headers.get("idempotent-replayed")).toBe("true");
      expect(retry.headers.get("location")).toBe(`${mountPath(target().url)}/payments/${payment.id}`);
      expect(await retry.text()).toBe(created);

      const other = await pay({ amount: 9900, currency: "eur" });
      expect(other.status).toBe(422);
      expect(other.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(await other.json()).toMatchObject({ code: "idempotency_key_mismatch" });

      expect([...target().db.payments.keys()]).toEqual([payment.id]);
      const read = await fetch(new URL(first.headers.get("location")!, target().url), {
        headers: { authorization: `Bearer ${API_KEY}` },
      });
      expect(await read.json()).toEqual(payment);
    });

    it("scopes keys per account, requires a key and an API key", async () => {
      const mine = await pay({ amount: 100 }, { key: "shared-key" });
      const theirs = await pay({ amount: 100 }, { key: "shared-key", apiKey: OTHER_API_KEY });
      expect([mine.status, theirs.status]).toEqual([201, 201]);
      expect(theirs.headers.get("idempotent-replayed")).toBeNull();
      expect((await theirs.json()).account).toBe("acct_shop_9");

      const keyless = await fetch(`${target().url}/payments`, {
        method: "POST",
        headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
        body: JSON.stringify({ amount: 100 }),
      });
      expect(keyless.status).toBe(400);
      expect(await keyless.json()).toMatchObject({ code: "idempotency_key_missing" });

      const anonymous = await pay({ amount: 100 }, { apiKey: "sk_unknown" });
      expect(anonymous.status).toBe(401);
      expect(anonymous.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    });

    it("reads Authorization strictly: `Bearer <api key>` with the scheme in any case, one space, nothing after", async () => {
      const read = (authorization: string) =>
        fetch(`${target().url}/payments/pay_none`, { headers: { authorization } }).then((response) => response.status);
      expect(await read(`bearer ${API_KEY}`)).toBe(404); // authenticated: there is no such payment
      expect(await read(`BEARER ${API_KEY}`)).toBe(404);
      for (const authorization of notBearer(API_KEY)) {
        expect({ authorization, status: await read(authorization) }).toEqual({ authorization, status: 401 });
      }
    });

    it("refuses a currency that is no string, though its only element is one: 400 invalid_payment", async () => {
      const payments = target().db.payments.size;
      const refused = await pay({ amount: 4200, currency: ["eur"] }, { key: "currency-array" });
      expect(refused.status).toBe(400);
      expect(await refused.json()).toMatchObject({ code: "invalid_payment", detail: INVALID_PAYMENT });
      expect(target().db.payments.size).toBe(payments);
    });

    // One table for every example: the same body gets the same status and problem code everywhere.
    itAnswersEveryPaymentBody(() => {
      const { url, db } = target();
      return { url, headers: { authorization: `Bearer ${API_KEY}` }, payments: () => db.payments.size };
    });

    it("reads a gzip-compressed payment decoded: 201, and its plain retry is the same request", async () => {
      const send = (body: BodyInit, headers: Record<string, string> = {}) =>
        fetch(`${target().url}/payments`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${API_KEY}`,
            "content-type": "application/json",
            "idempotency-key": "gzip-1",
            ...headers,
          },
          body,
        });
      const json = JSON.stringify({ amount: 1250, currency: "eur" });
      const first = await send(gzipped(json), { "content-encoding": "gzip" });
      expect(first.status).toBe(201);
      const created = await first.text();
      expect(JSON.parse(created)).toMatchObject({ amount: 1250, currency: "eur" });
      const retry = await send(json);
      expect(retry.status).toBe(201);
      expect(retry.headers.get("idempotent-replayed")).toBe("true");
      expect(await retry.text()).toBe(created);
    });
  });
}

/**
 * A payment the handler fails to make (its database throws): answered 500 `internal_error` with
 * nothing said to the client, and the error logged (console.error) for whoever runs the app. A
 * client's mistake the error handler answers (bad JSON, in most examples) is logged nowhere.
 */
export function itLogsAnUnexpectedError(target: () => Target): void {
  it("answers a handler's unexpected error 500 internal_error, saying nothing, and logs it (a client's mistake: not)", async () => {
    const { url, db } = target();
    const failure = new Error("the payments database is down");
    const write = vi.spyOn(db.payments, "set").mockImplementationOnce(() => {
      throw failure;
    });
    const logged = vi.spyOn(console, "error").mockImplementation(() => {});
    onTestFinished(() => {
      write.mockRestore();
      logged.mockRestore();
    });
    const send = (body: string, key: string) =>
      fetch(`${url}/payments`, {
        method: "POST",
        headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json", "idempotency-key": key },
        body,
      });

    const badJson = await send('{"amount":', "unexpected-bad-json");
    expect(badJson.status).toBe(400);
    expect(logged).not.toHaveBeenCalled();

    const failed = await send(JSON.stringify({ amount: 700 }), "unexpected-error");
    expect(failed.status).toBe(500);
    expect(failed.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(await failed.json()).toMatchObject({ status: 500, code: "internal_error", detail: "" });
    expect(logged).toHaveBeenCalledWith(failure);
  });
}
