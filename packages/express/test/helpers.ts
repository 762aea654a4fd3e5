import { request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { MemoryStore, signWebhook, standardWebhooks } from "@interlock/core";
import type { Express } from "express";

export interface Running {
  url: string;
  close(): Promise<void>;
}

/** Serves the app on an ephemeral port of 127.0.0.1. */
export function listen(app: Express): Promise<Running> {
  return new Promise((resolve, reject) => {
    const server = app.listen(0, "127.0.0.1", (error?: Error) => {
      if (error) return reject(error);
      resolve({
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  text: string;
  json: () => unknown;
}

/**
 * One request with exact bytes. A body given as several chunks goes out chunked (no
 * Content-Length), as a streaming client would send it.
 */
export function send(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: Uint8Array | string | Uint8Array[] } = {},
): Promise<RawResponse> {
  const { method = "POST", headers = {}, body } = options;
  const chunks = body === undefined ? [] : Array.isArray(body) ? body : [body];
  const chunked = Array.isArray(body);
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers, agent: false }, (res) => {
      const received: Buffer[] = [];
      res.on("data", (chunk: Buffer) => received.push(chunk));
      res.on("error", reject);
      res.on("end", () => {
        const bytes = Buffer.concat(received);
        const text = bytes.toString("utf8");
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: bytes, text, json: () => JSON.parse(text) });
      });
    });
    req.on("error", reject);
    if (!chunked && chunks[0] !== undefined) req.setHeader("content-length", Buffer.byteLength(chunks[0]));
    for (const chunk of chunks) req.write(chunk);
    req.end();
  });
}

/** Sends a keyed JSON request, reads the first chunk of the answer, then closes the connection: its status. */
export function postAndLeave(url: string, key: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const headers = { "content-type": "application/json", "x-api-key": "client-a", "idempotency-key": key };
    const req = httpRequest(url, { method: "POST", headers, agent: false }, (res) => {
      res.once("data", () => {
        req.destroy();
        resolve(res.statusCode ?? 0);
      });
    });
    req.on("error", reject);
    req.end("{}");
  });
}

/** A stream's bytes, read as a `data` listener reads them. */
export function readByEvents(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.once("end", () => resolve(Buffer.concat(chunks)));
    stream.once("error", reject);
  });
}

export const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
let sequence = 0;

/** A Standard Webhooks delivery of exactly these bytes, signed now. */
export async function signed(body: Uint8Array | string, contentType = "application/json", id?: string) {
  const delivery = await signWebhook({
    scheme: standardWebhooks,
    secret: SECRET,
    body,
    id: id ?? `msg_express_${Date.now().toString(36)}_${++sequence}`,
  });
  return {
    headers: { ...delivery.headers, "content-type": contentType },
    body: delivery.body,
    id: delivery.id as string,
  };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A memory store whose `complete` and `release` answer late, like one across a network. */
export class SlowStore extends MemoryStore {
  constructor(private readonly delayMs: number) {
    super();
  }
  override async complete(...args: Parameters<MemoryStore["complete"]>) {
    await sleep(this.delayMs);
    return super.complete(...args);
  }
  override async release(...args: Parameters<MemoryStore["release"]>) {
    await sleep(this.delayMs);
    return super.release(...args);
  }
}

/**
 * A body parser `verify` hook doing what NestJS (`rawBody: true`) and Google Cloud Functions do:
 * the bytes read kept as a Buffer on `req.rawBody`.
 */
export function keepRawBody(req: IncomingMessage, _res: ServerResponse, buf: Buffer): void {
  (req as IncomingMessage & { rawBody?: Buffer }).rawBody = buf;
}
