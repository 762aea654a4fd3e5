/**
 * The payments API every framework example serves the same way, and one test block for it:
 * a payment is created once, its retry replayed byte for byte, another body under the same
 * key refused (422), keys scoped per account, a key and an API key required, a body that is no
 * payment object refused (400).
 */
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

/** The path an API at `url` is mounted at, without a trailing slash: "" for an origin. */
const mountPath = (url: string) => new URL(url).pathname.replace(/\/$/, "");

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
  });
}
