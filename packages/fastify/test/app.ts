/** Test helpers: a Fastify app listening on 127.0.0.1, and the scenario table's contract app. */

import { request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import { MemoryStore } from "@interlock/core";
import type { ScenarioApp, ScenarioAppOptions } from "@interlock/core/testing";
import { withClient } from "@interlock/test-harness/http2";
import Fastify, { type FastifyInstance, type FastifyServerOptions } from "fastify";
import { afterEach } from "vitest";
import { idempotency, interlock, webhook } from "../src/index.js";

/** The Standard Webhooks secret the tests sign with. */
export const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

const served: Array<{ close(): Promise<unknown> }> = [];
afterEach(async () => {
  await Promise.all(served.splice(0).map((app) => app.close()));
});

/** Closes `app` after the test. */
export function closeAfterTest(app: { close(): Promise<unknown> }): void {
  served.push(app);
}

/** Listens with an app the caller built (any copy of the package's plugin), closed after the test. */
export async function serve(app: Pick<FastifyInstance, "listen" | "server" | "close">): Promise<string> {
  closeAfterTest(app);
  await app.listen({ port: 0, host: "127.0.0.1" });
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

export interface Running {
  app: FastifyInstance;
  url: string;
  close(): Promise<void>;
}

/** Builds an app with the plugin registered, lets `routes` add to it, and listens on 127.0.0.1. */
export async function listen(
  routes: (app: FastifyInstance) => void | Promise<void>,
  options: FastifyServerOptions = {},
): Promise<Running> {
  const app = Fastify(options);
  await app.register(interlock);
  await routes(app);
  await app.listen({ port: 0, host: "127.0.0.1" });
  return {
    app,
    url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
    close: () => app.close(),
  };
}

/** A Fastify log line, as its logger writes it. */
/** A memory store whose writes of an answer (`complete`) take `ms` longer: what must be stored before a reply's end goes out. */
export function slowToComplete(ms = 150): MemoryStore {
  const store = new MemoryStore();
  const complete = store.complete.bind(store);
  store.complete = async (...args) => {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return complete(...args);
  };
  return store;
}

export interface LogLine {
  level: number;
  msg: string;
  err?: { code?: string };
  res?: { statusCode?: number };
}

/** Fastify logger options that keep every line it writes, at info level and above, in `lines`. */
export function keepLogs(lines: LogLine[]): FastifyServerOptions {
  return { logger: { level: "info", stream: { write: (line: string) => lines.push(JSON.parse(line)) } } };
}

/**
 * Sends a request announcing `length` body bytes (or chunked, announcing none), only `part` of
 * them, then closes the connection: a client that left mid-upload. Resolves once it is closed.
 */
export function leaveMidBody(
  url: string,
  headers: Record<string, string>,
  part: string,
  length: number | "chunked",
): Promise<void> {
  return new Promise((resolve) => {
    const request = httpRequest(url, {
      method: "POST",
      headers: { ...headers, ...(length === "chunked" ? {} : { "content-length": String(length) }) },
      agent: false,
    });
    request.on("error", () => {});
    request.on("close", () => resolve());
    request.write(part, () => setTimeout(() => request.destroy(), 20));
  });
}

/**
 * The contract app of `describeAdapterScenarios` (see its header comment); with `http2`, served
 * over HTTP/2 cleartext (`Fastify({ http2: true })`) and driven by an HTTP/2 client.
 */
export async function scenarioApp(options: ScenarioAppOptions, { http2 = false } = {}): Promise<ScenarioApp> {
  const payments = idempotency({
    ...options.idempotency,
    principal: (request) => request.context.headers["x-api-key"] as string | undefined,
  });
  const running = await listen(
    (app) => {
      app.setErrorHandler((error, _request, reply) => {
        // Fastify's own client errors (a body it cannot parse, a type it has no parser for) keep their status.
        const status = (error as { statusCode?: number }).statusCode ?? 500;
        if (status >= 400 && status < 500) return reply.code(status).send(error);
        return reply.code(500).send({ error: "handler failed" });
      });
      app.post("/webhooks", { config: { interlock: webhook(options.webhook) } }, async (request) => {
        await options.handlers.webhook(request.webhook!);
        return { received: request.webhook!.id };
      });
      const pay = async (request: { body: unknown }, reply: import("fastify").FastifyReply) => {
        const result = await options.handlers.payment(request.body);
        reply.code(result.status).headers(result.headers ?? {});
        return result.json;
      };
      app.post("/payments", { config: { interlock: payments } }, pay);
      app.get("/payments", { config: { interlock: payments } }, pay);
      app.post("/exports", { config: { interlock: payments } }, (request, reply) =>
        reply
          .code(200)
          .type("text/csv")
          .send(Readable.from(options.handlers.exportRows(request.body))),
      );
    },
    http2 ? ({ http2: true } as FastifyServerOptions) : {},
  );
  return http2 ? withClient(running.url, running.close) : { url: running.url, close: running.close };
}
