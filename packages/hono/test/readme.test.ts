/**
 * The README's example, as written there (its payments route; the functions it declares as
 * "yours" are stubs), over real HTTP: a client's malformed body is a 400, never Hono's 500, and
 * loses nothing (the key is released, so the corrected retry runs).
 */
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { MemoryStore } from "@interlock/core";
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { describe, expect, it } from "vitest";
import { idempotency } from "../src/index.js";
import { problemOf, start, uniqueId } from "./helpers.js";

const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
const flat = (code: string) => code.replace(/\s+/g, " ").trim();

/** The README's route handler and its helper, copied: the first test checks the README still shows them. */
const ROUTE_BODY = `
    const body = await c.req.json().catch(() => {
      throw badRequest("the request body is not valid JSON");
    });
    const payment = await createPayment(body);
    return c.json(payment, 201, { location: \`/payments/\${payment.id}\` });
  },
);

/** A client's mistake, answered 400 problem+json (RFC 9457) by Hono's error handling. */
function badRequest(detail: string): HTTPException {
  const problem = { title: "Bad Request", status: 400, detail };
  return new HTTPException(400, {
    res: Response.json(problem, { status: 400, headers: { "content-type": "application/problem+json" } }),
  });
}
`;

function readmeApp() {
  const created: unknown[] = [];
  const authenticate = async (authorization: string | undefined) => authorization ?? "anonymous";
  const createPayment = async (body: unknown) => {
    created.push(body);
    return { id: `pay_${created.length}` };
  };

  const store = new MemoryStore();
  const app = new Hono<{ Variables: { apiKeyId: string } }>();
  app.use("/payments", async (c, next) => {
    c.set("apiKeyId", await authenticate(c.req.header("authorization")));
    await next();
  });
  app.post("/payments", idempotency({ store, principal: (request) => request.context.get("apiKeyId") }), async (c) => {
    const body = await c.req.json().catch(() => {
      throw badRequest("the request body is not valid JSON");
    });
    const payment = await createPayment(body);
    return c.json(payment, 201, { location: `/payments/${payment.id}` });
  });
  return { app, created };
}

/** A client's mistake, answered 400 problem+json (RFC 9457) by Hono's error handling. */
function badRequest(detail: string): HTTPException {
  const problem = { title: "Bad Request", status: 400, detail };
  return new HTTPException(400, {
    res: Response.json(problem, { status: 400, headers: { "content-type": "application/problem+json" } }),
  });
}

const post = (url: string, key: string, body: BodyInit | null, headers: Record<string, string> = {}) =>
  fetch(`${url}/payments`, {
    method: "POST",
    headers: { authorization: "key_a", "idempotency-key": key, "content-type": "application/json", ...headers },
    body,
  });

describe("README 'Example': the payments route", () => {
  it("is the route the README shows", () => {
    expect(flat(readme)).toContain(flat(ROUTE_BODY));
  });

  it.each([
    ["JSON cut short", '{"a":', {}],
    ["an empty body", null, {}],
    ["no JSON, sent as text/plain", "amount=100", { "content-type": "text/plain" }],
  ] as const)(
    "answers %s 400 problem+json, and the corrected retry with the same key runs",
    async (_, body, headers) => {
      const { app, created } = readmeApp();
      const url = await start(app);
      const key = uniqueId("readme");

      const refused = await post(url, key, body, headers);
      expect(refused.status).toBe(400);
      expect((await problemOf(refused)).status).toBe(400);
      expect(created).toEqual([]);

      const retried = await post(url, key, '{"amount":100}');
      expect(retried.status).toBe(201);
      expect(await retried.json()).toEqual({ id: "pay_1" });
      expect(created).toEqual([{ amount: 100 }]);
    },
  );

  it("reads a gzip JSON body decoded (idempotency() decodes it for the route)", async () => {
    const { app, created } = readmeApp();
    const url = await start(app);
    const response = await post(url, uniqueId("readme"), gzipSync('{"amount":100}'), { "content-encoding": "gzip" });
    expect(response.status).toBe(201);
    expect(created).toEqual([{ amount: 100 }]);
  });
});
