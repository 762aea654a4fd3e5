/**
 * The README's example, as written there (its `createPaymentHandler`; the functions it declares
 * as "yours" are stubs), over real HTTP: a client's malformed body is a 400 problem+json
 * (`readJson`'s), never the host's 500, a compressed JSON body is read decoded, one too large or
 * in a coding not decoded is its 413 or 415, and nothing is lost (the key is released, so the
 * corrected retry runs).
 */
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { DEFAULT_REQUEST_BODY_LIMIT, MemoryStore } from "@interlock/core";
import { describe, expect, it } from "vitest";
import { readJson, withIdempotency } from "../src/index.js";
import { problemOf, start, startNotingOutcomes, uniqueId } from "./helpers.js";

const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
const flat = (code: string) => code.replace(/\s+/g, " ").trim();

/** The README's handler, copied: the first test checks the README still shows it. */
const HANDLER = `
export const createPaymentHandler = withIdempotency(
  { store, principal: (request) => accountOf(request.context.headers.get("authorization")) },
  async (request) => {
    // Decoded as the wrapper decoded it (gzip, deflate). Not JSON, or empty: 400 problem+json, the
    // key released, so the corrected retry runs (a stored 400 would make it a 422).
    const payment = await createPayment(await readJson(request));
    return Response.json(payment, { status: 201, headers: { location: \`/payments/\${payment.id}\` } });
  },
);
`;

function readmeApp() {
  const created: unknown[] = [];
  const accountOf = (authorization: string | null) => authorization ?? undefined;
  const createPayment = async (body: unknown) => {
    created.push(body);
    return { id: `pay_${created.length}` };
  };

  const store = new MemoryStore();
  const createPaymentHandler = withIdempotency(
    { store, principal: (request) => accountOf(request.context.headers.get("authorization")) },
    async (request) => {
      // Decoded as the wrapper decoded it (gzip, deflate). Not JSON, or empty: 400 problem+json, the
      // key released, so the corrected retry runs (a stored 400 would make it a 422).
      const payment = await createPayment(await readJson(request));
      return Response.json(payment, { status: 201, headers: { location: `/payments/${payment.id}` } });
    },
  );

  // The host: Node through @hono/node-server's bridge, which answers a throw 500.
  return { handler: createPaymentHandler, created };
}

const post = (url: string, key: string, body: BodyInit | null, headers: Record<string, string> = {}) =>
  fetch(`${url}/payments`, {
    method: "POST",
    headers: { authorization: "key_a", "idempotency-key": key, "content-type": "application/json", ...headers },
    body,
  });

describe("README 'Example': createPaymentHandler", () => {
  it("is the handler the README shows", () => {
    expect(flat(readme)).toContain(flat(HANDLER));
  });

  it.each([
    ["JSON cut short", '{"a":', {}],
    ["an empty body", null, {}],
    ["JSON cut short, gzip", gzipSync('{"a":'), { "content-encoding": "gzip" }],
  ] as const)(
    "answers %s 400 problem+json, and the corrected retry with the same key runs",
    async (_, body, headers) => {
      const { handler, created } = readmeApp();
      const { url, outcomes } = await startNotingOutcomes(handler);
      const key = uniqueId("readme");

      const refused = await post(url, key, body, headers);
      expect(refused.status).toBe(400);
      expect(await problemOf(refused)).toMatchObject({ status: 400, code: "body_not_json" });
      expect(created).toEqual([]);

      const retried = await post(url, key, '{"amount":100}');
      expect(retried.status).toBe(201);
      expect(await retried.json()).toEqual({ id: "pay_1" });
      expect(created).toEqual([{ amount: 100 }]);
      // Answers, both: nothing reached the host as a throw (its 500).
      expect(outcomes).toEqual(["400", "201"]);
    },
  );

  it("answers a coding it does not decode 415 with Accept-Encoding, and the plain retry with the same key runs", async () => {
    const { handler, created } = readmeApp();
    const url = await start(handler);
    const key = uniqueId("readme");
    const refused = await post(url, key, '{"amount":100}', { "content-encoding": "compress" });
    expect([refused.status, (await problemOf(refused)).code]).toEqual([415, "unsupported_content_encoding"]);
    expect(refused.headers.get("accept-encoding")).toMatch(/^gzip, deflate/);
    expect((await post(url, key, '{"amount":100}')).status).toBe(201);
    expect(created).toEqual([{ amount: 100 }]);
  });

  it("reads a body of up to 1 MiB (DEFAULT_REQUEST_BODY_LIMIT); one byte more is 413", async () => {
    const { handler, created } = readmeApp();
    const request = (body: string) =>
      new Request("http://127.0.0.1/payments", {
        method: "POST",
        headers: { authorization: "key_a", "idempotency-key": uniqueId("readme") },
        body,
      });
    const exact = JSON.stringify({ pad: "x".repeat(DEFAULT_REQUEST_BODY_LIMIT - 10) });
    expect((await handler(request(exact))).status).toBe(201);
    const over = await handler(request(`${exact} `));
    expect([over.status, (await problemOf(over)).code]).toEqual([413, "body_too_large"]);
    expect(created).toHaveLength(1);
  });

  it.each(["gzip", "x-gzip", "deflate"] as const)("reads a %s JSON body decoded: 201", async (coding) => {
    const { handler, created } = readmeApp();
    const url = await start(handler);
    const format = coding === "x-gzip" ? "gzip" : coding;
    const compressed = new Response(
      new Blob(['{"amount":100}']).stream().pipeThrough(new CompressionStream(format)),
    ).arrayBuffer();
    const response = await post(url, uniqueId("readme"), await compressed, { "content-encoding": coding });
    expect(response.status).toBe(201);
    expect(created).toEqual([{ amount: 100 }]);
  });
});
