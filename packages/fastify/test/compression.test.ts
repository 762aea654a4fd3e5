/**
 * `idempotency()` with @fastify/compress. The compress plugin adds its `onSend` hook to each
 * route as the route is declared, after the hooks of plugins registered before it. Registered
 * after `interlock`, it compresses what Interlock stored, for each answer and replay alike;
 * registered before, Interlock sees what it compressed: small answers stored compressed (every
 * replay gzip), large ones as a stream, which is not cached.
 */
import { gzipSync } from "node:zlib";
import compress from "@fastify/compress";
import { MemoryStore } from "@interlock/core";
import Fastify from "fastify";
import { afterEach, describe, expect, it } from "vitest";
import { idempotency, interlock } from "../src/index.js";

const apps: Array<{ close: () => Promise<unknown> }> = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

const SMALL = { paid: true, note: "x".repeat(2_000) };
const LARGE = { paid: true, note: "x".repeat(200_000) }; // compress streams it

async function start(order: "interlock first" | "compress first", body: object) {
  const app = Fastify();
  apps.push(app);
  const registerCompress = () => app.register(compress, { threshold: 0 });
  if (order === "compress first") await registerCompress();
  await app.register(interlock);
  if (order === "interlock first") await registerCompress();
  let runs = 0;
  const payments = idempotency({ store: new MemoryStore(), principal: false });
  app.post("/payments", { config: { interlock: payments } }, async (_request, reply) => {
    runs++;
    return reply.code(201).send(body);
  });
  await app.listen({ port: 0, host: "127.0.0.1" });
  const { port } = app.server.address() as { port: number };
  // fetch decodes gzip itself, and rejects a body that is not what its Content-Encoding says.
  const post = async (acceptEncoding: string) => {
    const response = await fetch(`http://127.0.0.1:${port}/payments`, {
      method: "POST",
      headers: { "content-type": "application/json", "idempotency-key": '"pay-1"', "accept-encoding": acceptEncoding },
      body: "{}",
    });
    const { status, headers } = response;
    return [status, headers.get("content-encoding"), headers.get("idempotent-replayed"), await response.json()];
  };
  return { post, runs: () => runs };
}

describe("idempotency() with @fastify/compress", () => {
  it.each([SMALL, LARGE])("registered after interlock: replays are encoded for each client", async (body) => {
    const { post, runs } = await start("interlock first", body);
    expect(await post("gzip")).toEqual([201, "gzip", null, body]);
    expect(await post("gzip")).toEqual([201, "gzip", "true", body]);
    expect(await post("identity")).toEqual([201, null, "true", body]);
    expect(runs()).toBe(1);
  });

  it("registered before: a small answer is stored compressed, so every replay is gzip", async () => {
    const { post, runs } = await start("compress first", SMALL);
    expect(await post("gzip")).toEqual([201, "gzip", null, SMALL]);
    expect(await post("identity")).toEqual([201, "gzip", "true", SMALL]);
    expect(runs()).toBe(1);
  });

  it("registered before: a large answer reaches Interlock as a stream, and is not cached", async () => {
    const { post, runs } = await start("compress first", LARGE);
    expect(await post("gzip")).toEqual([201, "gzip", null, LARGE]);
    expect(await post("gzip")).toEqual([201, "gzip", null, LARGE]);
    expect(runs()).toBe(2);
  });
});

describe("idempotency() with @fastify/compress decompressing request bodies", () => {
  it.each(["compress first", "interlock first"] as const)(
    "registered %s: a gzip body it decoded first is fingerprinted as decoded, not decoded again",
    async (order) => {
      const app = Fastify();
      apps.push(app);
      const registerCompress = () => app.register(compress, { global: true });
      if (order === "compress first") await registerCompress();
      await app.register(interlock);
      if (order === "interlock first") await registerCompress();
      const received: unknown[] = [];
      const payments = idempotency({ store: new MemoryStore(), principal: false });
      app.post("/payments", { config: { interlock: payments } }, async (request, reply) => {
        received.push(request.body);
        return reply.code(201).send({ paid: true });
      });
      await app.listen({ port: 0, host: "127.0.0.1" });
      const { port } = app.server.address() as { port: number };
      const json = JSON.stringify({ amount: 9 });
      const post = async (body: Uint8Array | string, encoding?: string) => {
        const headers = { "content-type": "application/json", "idempotency-key": '"pay-gz"' };
        const response = await fetch(`http://127.0.0.1:${port}/payments`, {
          method: "POST",
          headers: encoding ? { ...headers, "content-encoding": encoding } : headers,
          body: body as BodyInit,
        });
        return [response.status, response.headers.get("idempotent-replayed")];
      };
      expect(await post(gzipSync(json), "gzip")).toEqual([201, null]);
      expect(await post(json)).toEqual([201, "true"]);
      expect(received).toEqual([{ amount: 9 }]);
    },
  );
});
