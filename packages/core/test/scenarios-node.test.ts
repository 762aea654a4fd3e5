/**
 * The adapter scenario table against a plain node:http app that drives core directly: the
 * reference every framework adapter must match, and a check of the table itself.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  BodyError,
  createIdempotency,
  createWebhookReceiver,
  DEFAULT_REQUEST_BODY_LIMIT,
  decodeContent,
  type HttpResponse,
  problemResponse,
  WebhookPayloadError,
} from "../src/index.js";
import { describeAdapterScenarios, type ScenarioAppOptions } from "../src/testing/index.js";

async function rawBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * The payload, as every adapter decodes it (a compressed body decoded), read once: what the
 * fingerprint covers and the route parses. Core's `BodyError`, thrown, is the engine's to answer.
 */
function payloadOf(req: IncomingMessage, body: Buffer): () => Promise<Uint8Array> {
  let decoded: Promise<Uint8Array | BodyError> | undefined;
  return async () => {
    decoded ??= decodeContent(body, req.headers["content-encoding"], DEFAULT_REQUEST_BODY_LIMIT);
    const payload = await decoded;
    if (payload instanceof BodyError) throw payload;
    return payload;
  };
}

function send(res: ServerResponse, response: HttpResponse): void {
  res.writeHead(response.status, response.headers.flat()).end(response.body);
}

function json(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}) {
  const body = JSON.stringify(value);
  res.writeHead(status, { "content-type": "application/json", ...headers }).end(body);
  return { status, headers: { "content-type": "application/json", ...headers }, body };
}

function nodeApp(options: ScenarioAppOptions) {
  const receiver = createWebhookReceiver(options.webhook);
  const idempotency = createIdempotency({
    ...options.idempotency,
    principal: (request) => (request.headers as IncomingMessage["headers"])["x-api-key"] as string | undefined,
  });
  return createServer(async (req, res) => {
    const body = await rawBody(req);
    const path = req.url ?? "/";
    if (path === "/webhooks" && req.method === "POST") {
      const decision = await receiver.begin(req.headers, body);
      if (decision.action === "respond") return send(res, decision.response);
      try {
        await options.handlers.webhook(decision.event);
      } catch (error) {
        // A payload the sender signed but its scheme cannot decode is the sender's mistake, as every adapter answers it.
        if (error instanceof WebhookPayloadError) {
          await receiver.finish(decision.ticket, { status: error.status });
          return send(res, problemResponse(error));
        }
        await receiver.abort(decision.ticket);
        return json(res, 500, { error: "handler failed" });
      }
      await receiver.finish(decision.ticket, { status: 200 });
      return json(res, 200, { received: decision.event.id });
    }
    if (path === "/payments") {
      const payload = payloadOf(req, body);
      const request = { method: req.method ?? "GET", route: "/payments", path, headers: req.headers, body: payload };
      const decision = await idempotency.begin(request);
      if (decision.action === "respond") return send(res, decision.response);
      const text = new TextDecoder().decode(await payload());
      const result = await options.handlers.payment(text ? JSON.parse(text) : undefined);
      const sent = json(res, result.status, result.json, result.headers);
      if (decision.action === "execute") await idempotency.finish(decision.ticket, sent);
      return;
    }
    if (path === "/exports" && req.method === "POST") {
      const request = { method: req.method, route: "/exports", path, headers: req.headers, body };
      const decision = await idempotency.begin(request);
      if (decision.action === "respond") return send(res, decision.response);
      const headers = { "content-type": "text/csv; charset=utf-8" };
      res.writeHead(200, headers);
      const rows = options.handlers.exportRows(body.length ? JSON.parse(body.toString()) : undefined);
      // A failed stream is cut off (pipeline destroys the response): released all the same.
      const sent = await pipeline(Readable.from(rows), res, { end: false }).then(
        () => true,
        () => false,
      );
      // Streamed, so not kept: the key is released once the stream is over, not before, and
      // before its end goes out, so a retry the moment the client has it all runs again.
      if (decision.action === "execute")
        await idempotency.finish(decision.ticket, { status: 200, headers, body: undefined });
      if (sent) res.end();
      return;
    }
    json(res, 404, { error: "not found" });
  });
}

describeAdapterScenarios("node:http (reference)", async (options) => {
  const server = nodeApp(options);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
});
