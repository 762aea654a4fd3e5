/**
 * The payments API every framework example serves the same way, and one test block for it:
 * a payment is created once, its retry replayed byte for byte, another body under the same
 * key refused (422), keys scoped per account, a key and an API key required, a body that is no
 * payment object refused (400); a body that is not JSON, or does not decode, refused 400 without
 * using up its key (the corrected retry runs); a compressed payment read decoded.
 */
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";

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

/** `target` is read when the tests run, after the example's `beforeAll` has booted it. */
/** Payment bodies a client got wrong: each a 400 problem+json, its key left for the corrected retry. */
export const MALFORMED_PAYMENT_BODIES: [string, BodyInit | null, Record<string, string>][] = [
  ["JSON cut short", '{"amount":', {}],
  ["an empty body", null, {}],
  ["no JSON, sent as text/plain", "amount=700", { "content-type": "text/plain" }],
  ["JSON cut short, gzip", gzipped('{"amount":'), { "content-encoding": "gzip" }],
  [
    "gzip that does not decode",
    new Uint8Array([0x1f, 0x8b, 0x08, 0x00, 0x01, 0x02, 0x03]),
    { "content-encoding": "gzip" },
  ],
];

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

    it("refuses a body that is not a payment object (JSON null, a number, bad JSON) with a 400 problem, never a 500", async () => {
      const payments = target().db.payments.size;
      for (const [i, body] of ["null", "[]", "42", '"pay"', "true", '{"amount":'].entries()) {
        const response = await fetch(`${target().url}/payments`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${API_KEY}`,
            "content-type": "application/json",
            "idempotency-key": `odd-${i}`,
          },
          body,
        });
        const answer = { body, status: response.status, type: response.headers.get("content-type") };
        expect(answer).toEqual({ body, status: 400, type: expect.stringMatching(/^application\/problem\+json/) });
      }
      expect(target().db.payments.size).toBe(payments);
    });

    // A client's mistake in the body is its 400, never a 500, and loses nothing: the key is not
    // used up by the refusal, so the same request corrected runs.
    const malformed = MALFORMED_PAYMENT_BODIES;

    it.each(malformed)(
      "answers %s 400 problem+json, and the corrected retry with the same key runs",
      async (name, body, headers) => {
        const payments = target().db.payments.size;
        const key = `malformed-${malformed.findIndex(([named]) => named === name)}`;
        const refused = await fetch(`${target().url}/payments`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${API_KEY}`,
            "content-type": "application/json",
            "idempotency-key": key,
            ...headers,
          },
          body,
        });
        const answer = { status: refused.status, type: refused.headers.get("content-type") };
        expect(answer).toEqual({ status: 400, type: expect.stringMatching(/^application\/problem\+json/) });
        expect(await refused.json()).toMatchObject({ status: 400 });
        expect(target().db.payments.size).toBe(payments);

        const corrected = await pay({ amount: 700, currency: "eur" }, { key });
        expect(corrected.status).toBe(201);
        expect(corrected.headers.get("idempotent-replayed")).toBeNull();
        expect(await corrected.json()).toMatchObject({ amount: 700, currency: "eur" });
        expect(target().db.payments.size).toBe(payments + 1);
      },
    );

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
