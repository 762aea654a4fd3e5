/**
 * Replay fidelity: a retry gets what the first client got (status, body bytes on the wire, the
 * replayable header lines), for the ways real Fastify apps answer.
 */
import { MemoryStore } from "@interlock/core";
import { expectFaithfulReplay, type WireAnswer, wireRequest } from "@interlock/test-harness/wire";
import type { FastifyInstance, RouteHandlerMethod, RouteShorthandOptions } from "fastify";
import { afterEach, describe, expect, it } from "vitest";
import { idempotency } from "../src/index.js";
import { listen, type Running } from "./app.js";

let running: Running | undefined;
afterEach(async () => {
  await running?.close();
  running = undefined;
});

let sequence = 0;
const newKey = () => `key-${Date.now().toString(36)}-${++sequence}`;

/** An app (the plugin registered, then `setup`) with `handler` on POST /things behind idempotency(). */
async function start(
  handler: RouteHandlerMethod,
  options: RouteShorthandOptions = {},
  setup: (app: FastifyInstance) => void = () => {},
) {
  running = await listen((app) => {
    setup(app);
    const interlock = idempotency({ store: new MemoryStore(), principal: false });
    app.post("/things", { ...options, config: { interlock } }, handler);
  });
}

/** Sends the same keyed POST twice: the first answer and its replay, as they came over the wire. */
async function firstAndReplay(): Promise<[WireAnswer, WireAnswer]> {
  const headers = { "content-type": "application/json", "idempotency-key": newKey() };
  const first = await wireRequest(`${running?.url}/things`, headers, "{}");
  const replay = await wireRequest(`${running?.url}/things`, headers, "{}");
  return [first, replay];
}

describe("serialisation: the bytes stored are the serialised ones", () => {
  it("a response schema (fast-json-stringify drops unknown fields)", async () => {
    const schema = { type: "object", properties: { id: { type: "string" }, amount: { type: "integer" } } };
    await start(async (_request, reply) => reply.code(201).send({ id: "thing_1", amount: 12.7, internal: "secret" }), {
      schema: { response: { 201: schema } },
    });
    const [first, replay] = await firstAndReplay();
    expect(first.raw.toString()).toBe('{"id":"thing_1","amount":12}');
    expectFaithfulReplay(first, replay);
  });

  it("reply.serializer(), and a toJSON that is not pure", async () => {
    let calls = 0;
    await start(async (_request, reply) =>
      reply
        .type("application/vnd.things+json")
        .serializer((value) => `${JSON.stringify(value)}\n`)
        .send({ id: "thing_1", at: { toJSON: () => `serialised ${++calls} time(s)` } }),
    );
    const [first, replay] = await firstAndReplay();
    expect(first.raw.toString()).toBe('{"id":"thing_1","at":"serialised 1 time(s)"}\n');
    expectFaithfulReplay(first, replay);
  });

  it("an app onSend hook runs before Interlock's (stored after it) and again on a replay, which it can tell by Idempotent-Replayed", async () => {
    const seen: string[] = [];
    await start(
      async () => ({ id: "thing_1" }),
      {},
      (app) => {
        app.addHook("onSend", async (_request, reply, payload) => {
          seen.push(String(payload));
          if (reply.getHeader("idempotent-replayed") === "true") return payload;
          reply.header("content-language", "en");
          return `{"data":${payload}}`;
        });
      },
    );
    const [first, replay] = await firstAndReplay();
    expect([first.raw.toString(), first.headers["content-language"]]).toEqual(['{"data":{"id":"thing_1"}}', "en"]);
    expect(seen).toEqual(['{"id":"thing_1"}', '{"data":{"id":"thing_1"}}']);
    expectFaithfulReplay(first, replay);
  });
});

describe("the bytes a handler hands over", () => {
  it("reply.send(buffer), then the handler reuses its buffer: the first client gets what is stored", async () => {
    await start(async (_request, reply) => {
      const buffer = Buffer.from("first bytes");
      reply.type("text/plain").send(buffer);
      buffer.fill("x");
      return reply;
    });
    const [first, replay] = await firstAndReplay();
    expect(first.raw.toString()).toBe("first bytes");
    expectFaithfulReplay(first, replay);
  });

  it("a hijacked reply writes a buffer, then reuses it once it went out: the bytes stored are the bytes sent", async () => {
    await start(async (_request, reply) => {
      reply.hijack();
      reply.raw.writeHead(201, { "content-type": "text/plain" });
      const buffer = Buffer.from("first bytes");
      reply.raw.write(buffer);
      await new Promise((resolve) => setImmediate(resolve)); // the write has reached the socket
      buffer.fill("x");
      reply.raw.end();
    });
    const [first, replay] = await firstAndReplay();
    expect(first.raw.toString()).toBe("first bytes");
    expectFaithfulReplay(first, replay);
  });

  it("an empty answer without a Content-Type (reply.send() with nothing) is replayed without one", async () => {
    await start(async (_request, reply) => reply.code(202).send());
    const [first, replay] = await firstAndReplay();
    expect([first.status, first.headers["content-type"], first.raw.length]).toEqual([202, undefined, 0]);
    expectFaithfulReplay(first, replay);
    expect(replay.headers["content-type"]).toBeUndefined();
  });

  it("a hijacked reply's writeHead(status, [[name, value], …]): the pairs are replayed as sent", async () => {
    await start(async (_request, reply) => {
      reply.hijack();
      reply.raw.writeHead(201, [
        ["Content-Type", "text/plain"],
        ["Location", "/things/1"],
      ] as unknown as string[]);
      reply.raw.end("made");
    });
    const [first, replay] = await firstAndReplay();
    expect([first.headers["content-type"], first.headers.location]).toEqual(["text/plain", "/things/1"]);
    expectFaithfulReplay(first, replay);
  });

  it("a hijacked reply's writeHead with a name listed twice keeps each of its lines", async () => {
    await start(async (_request, reply) => {
      reply.hijack();
      reply.raw.writeHead(200, ["Content-Type", "text/plain", "Link", "</a>; rel=next", "Link", "</b>; rel=prev"]);
      reply.raw.end("ok");
    });
    const [first, replay] = await firstAndReplay();
    expect(first.headers.link).toBe("</a>; rel=next, </b>; rel=prev");
    expectFaithfulReplay(first, replay);
  });

  it("repeated headers keep their lines and order; Set-Cookie is not replayed", async () => {
    await start(async (_request, reply) =>
      reply
        .header("link", ["</a>; rel=next", "</b>; rel=prev"])
        .header("vary", "Accept, Accept-Language")
        .header("set-cookie", ["session=first-request-only", "theme=dark"])
        .send({ ok: true }),
    );
    const [first, replay] = await firstAndReplay();
    expectFaithfulReplay(first, replay);
    expect(first.headers["set-cookie"]).toHaveLength(2);
    expect(replay.headers["set-cookie"]).toBeUndefined();
  });
});
