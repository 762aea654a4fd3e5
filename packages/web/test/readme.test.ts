/**
 * The README's example, as written there (its `createPaymentHandler`; the functions it declares
 * as "yours" are stubs), over real HTTP: a client's malformed body is a 400, never the host's
 * 500, a compressed JSON body is read decoded, and nothing is lost (the key is released, so the
 * corrected retry runs).
 */
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { MemoryStore } from "@interlock/core";
import { describe, expect, it } from "vitest";
import { withIdempotency } from "../src/index.js";
import { problemOf, start, uniqueId } from "./helpers.js";

const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
const flat = (code: string) => code.replace(/\s+/g, " ").trim();

/** The README's handler and its helpers, copied: the first test checks the README still shows them. */
const HANDLER = `
  async (request) => {
    const body = await jsonBody(request); // the body is still yours to read
    const payment = await createPayment(body);
    return Response.json(payment, { status: 201, headers: { location: \`/payments/\${payment.id}\` } });
  },
);

// A throw releases the key (a corrected retry runs) and goes on to your host, which answers 500:
// a body that is not JSON is the client's mistake, answered 400 problem+json here.
export const createPaymentHandler = (request: Request) =>
  payments(request).catch((error: unknown) => {
    if (!(error instanceof BadRequest)) throw error;
    const problem = { title: "Bad Request", status: 400, detail: error.message };
    return Response.json(problem, { status: 400, headers: { "content-type": "application/problem+json" } });
  });

class BadRequest extends Error {}

/** The body as JSON. The handler gets it as sent: compressed is decoded here (the wrapper decodes only for the fingerprint). */
async function jsonBody(request: Request): Promise<unknown> {
  const coding = request.headers.get("content-encoding")?.trim().toLowerCase() || "identity";
  const format = coding === "x-gzip" ? "gzip" : coding === "br" ? "brotli" : coding;
  try {
    const body =
      coding === "identity" ? request.body : request.body?.pipeThrough(new DecompressionStream(format as ConstructorParameters<typeof DecompressionStream>[0]));
    return JSON.parse(await new Response(body).text());
  } catch {
    throw new BadRequest("the request body is not JSON, or not in a coding this server decodes");
  }
}
`;

function readmeApp() {
  const created: unknown[] = [];
  const accountOf = (authorization: string | null) => authorization ?? undefined;
  const createPayment = async (body: unknown) => {
    created.push(body);
    return { id: `pay_${created.length}` };
  };

  const store = new MemoryStore();
  const payments = withIdempotency(
    { store, principal: (request) => accountOf(request.context.headers.get("authorization")) },
    async (request) => {
      const body = await jsonBody(request); // the body is still yours to read
      const payment = await createPayment(body);
      return Response.json(payment, { status: 201, headers: { location: `/payments/${payment.id}` } });
    },
  );

  const createPaymentHandler = (request: Request) =>
    payments(request).catch((error: unknown) => {
      if (!(error instanceof BadRequest)) throw error;
      const problem = { title: "Bad Request", status: 400, detail: error.message };
      return Response.json(problem, { status: 400, headers: { "content-type": "application/problem+json" } });
    });

  // The host: Node through @hono/node-server's bridge, which answers a throw 500.
  return { handler: createPaymentHandler, created };
}

class BadRequest extends Error {}

/** The body as JSON. The handler gets it as sent: compressed is decoded here (the wrapper decodes only for the fingerprint). */
async function jsonBody(request: Request): Promise<unknown> {
  const coding = request.headers.get("content-encoding")?.trim().toLowerCase() || "identity";
  const format = coding === "x-gzip" ? "gzip" : coding === "br" ? "brotli" : coding;
  try {
    const body =
      coding === "identity"
        ? request.body
        : request.body?.pipeThrough(
            new DecompressionStream(format as ConstructorParameters<typeof DecompressionStream>[0]),
          );
    return JSON.parse(await new Response(body).text());
  } catch {
    throw new BadRequest("the request body is not JSON, or not in a coding this server decodes");
  }
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
      const url = await start(handler);
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
