/**
 * Raw body capture in `preParsing`: the hook reads the whole payload, keeps the bytes on the
 * request and hands Fastify a fresh stream of the same bytes, so the app's own content-type
 * parsers (JSON, text, form, custom) run exactly as they would without Interlock.
 */

import { Readable } from "node:stream";
import type { FastifyReply, FastifyRequest, RequestPayload } from "fastify";

/** Why the raw bytes could not be captured. */
export type RawBodyProblem = "too_large" | "consumed";

type Done = (error?: Error | null, payload?: RequestPayload) => void;

/** Answers a request whose bytes cannot be captured (past `limit` bytes, or already read). */
export type RawBodyRefusal = (
  problem: RawBodyProblem,
  limit: number,
  request: FastifyRequest,
  reply: FastifyReply,
) => void;

export const kRawBody = Symbol("interlock.rawBody");

interface WithRawBody {
  [kRawBody]?: Buffer | null;
}

/** The bytes the `preParsing` hook captured, or undefined when it did not run for this request. */
export function rawBodyOf(request: FastifyRequest): Buffer | undefined {
  return (request as WithRawBody)[kRawBody] ?? undefined;
}

/**
 * A stream some earlier hook already read from holds no more bytes: verifying or fingerprinting
 * what is left would silently fail (a 401 for a valid delivery), so it is refused instead.
 */
function wasConsumed(payload: Readable): boolean {
  return payload.readableDidRead || payload.readableEnded || payload.destroyed;
}

/** Reads `payload` to its end; `undefined` as soon as it passes `limit` bytes. */
function readAll(payload: Readable, limit: number, callback: (error: Error | null, body?: Buffer) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  const settle = (error: Error | null, body?: Buffer) => {
    payload.removeListener("data", onData);
    payload.removeListener("end", onEnd);
    payload.removeListener("error", settle);
    callback(error, body);
  };
  function onData(chunk: Buffer | string) {
    const bytes = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    size += bytes.length;
    // Past the limit the stream keeps flowing with no listener: the rest is drained, not kept.
    if (size > limit) settle(null, undefined);
    else chunks.push(bytes);
  }
  // Always a copy: a lone chunk may be a view over a larger socket buffer it would keep alive.
  const onEnd = () => settle(null, Buffer.concat(chunks, size));
  payload.on("data", onData);
  payload.on("end", onEnd);
  payload.on("error", settle);
}

/** A readable stream of `body`, as Fastify's body parsers expect from a `preParsing` hook. */
function streamOf(body: Buffer): Readable {
  const stream = new Readable({ read() {} });
  if (body.length > 0) stream.push(body);
  stream.push(null);
  return stream;
}

/**
 * The `preParsing` hook. `limitOf` gives the largest body kept for a request; `refuse` answers
 * a body over it, or a payload another hook already consumed.
 */
export function captureRawBody(limitOf: (request: FastifyRequest) => number, refuse: RawBodyRefusal) {
  const tooLarge = (limit: number, request: FastifyRequest, reply: FastifyReply) => {
    // The sender may still be sending: close the connection after the answer, as Fastify
    // does after its own parse errors, rather than read an unbounded body to keep it alive.
    reply.header("connection", "close");
    refuse("too_large", limit, request, reply);
  };
  return function interlockRawBody(request: FastifyRequest, reply: FastifyReply, payload: RequestPayload, done: Done) {
    const limit = limitOf(request);
    if (wasConsumed(payload)) return refuse("consumed", limit, request, reply);
    // Refused before reading a byte when the sender announces the size.
    if (Number(request.headers["content-length"]) > limit) return tooLarge(limit, request, reply);
    readAll(payload, limit, (error, body) => {
      if (error) return done(error);
      if (body === undefined) return tooLarge(limit, request, reply);
      (request as WithRawBody)[kRawBody] = body;
      done(null, streamOf(body) as RequestPayload);
    });
  };
}
