/**
 * Reads the request stream once, before any body parser, with a size limit. The bytes are
 * kept per request, so `webhook()` and `idempotency()` on one route share a single read.
 */

import type { IncomingMessage } from "node:http";
import type { Context } from "koa";
import { exposeBody } from "./parse.js";

export type RawBodyRead =
  | { kind: "read"; body: Buffer }
  /**
   * Something read the stream first. `text` is the `ctx.request.rawBody` string that
   * `@koa/bodyparser` and `koa-bodyparser` keep, when one did.
   */
  | { kind: "consumed"; text: string | undefined }
  | { kind: "too_large" };

const EMPTY = Buffer.alloc(0);
const TOO_LARGE: RawBodyRead = { kind: "too_large" };
const bodies = new WeakMap<IncomingMessage, Buffer>();

export async function readRawBody(ctx: Context, limit: number): Promise<RawBodyRead> {
  const req = ctx.req;
  const known = bodies.get(req);
  if (known !== undefined) return { kind: "read", body: known };
  // Nothing announced, nothing lost: whoever comes next still gets the (empty) stream untouched.
  if (!hasBody(req)) return remember(req, EMPTY, ctx, false);
  const request = ctx.request as { body?: unknown; rawBody?: unknown };
  if (request.body !== undefined || req.readableDidRead || req.readableEnded) {
    return { kind: "consumed", text: typeof request.rawBody === "string" ? request.rawBody : undefined };
  }
  // A declared length over the limit is refused unread; Node drains it after the response.
  if (Number(req.headers["content-length"]) > limit) return TOO_LARGE;
  const body = await collect(req, limit).catch(() => ctx.throw(400, "the request was aborted while its body was read"));
  return body === undefined ? TOO_LARGE : remember(req, body, ctx, true);
}

function remember(req: IncomingMessage, body: Buffer, ctx: Context, consumed: boolean): RawBodyRead {
  bodies.set(req, body);
  exposeBody(ctx, body, consumed);
  return { kind: "read", body };
}

/** As `type-is` decides it: a body is announced by `Transfer-Encoding` or a non-zero length. */
function hasBody(req: IncomingMessage): boolean {
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}

/** The whole body, or undefined once it passes `limit` (the rest is drained, not kept). */
function collect(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = () => req.off("data", onData).off("end", onEnd).off("error", onError).off("close", onClose);
    function onData(chunk: Buffer) {
      size += chunk.length;
      if (size <= limit) return void chunks.push(chunk);
      stop();
      // Keep reading into nothing, so the connection is not left stalled and the 413 arrives.
      req.resume();
      resolve(undefined);
    }
    function onEnd() {
      stop();
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
    }
    function onError(error: unknown) {
      stop();
      reject(error);
    }
    // 'close' before 'end': the client went away mid-body.
    const onClose = () => onError(new Error("request aborted"));
    req.on("data", onData).on("end", onEnd).on("error", onError).on("close", onClose);
  });
}
