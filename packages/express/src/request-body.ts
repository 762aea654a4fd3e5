/**
 * The body for idempotency: raw bytes for the fingerprint, and a parsed `req.body` for the
 * route. When no parser ran yet, Express's own parsers run here, with a `verify` hook that
 * keeps the bytes they read, so the route gets exactly what `express.json()`,
 * `express.urlencoded()`, `express.text()` or `express.raw()` would have given it.
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import express, { type RequestHandler } from "express";
import { captureRawBody, hasBody, rawBodyOf, readRawBody, streamConsumed, TOO_LARGE } from "./raw-body.js";

/** A parser already read the stream and nobody kept its bytes. */
export const NOT_RAW = Symbol("not raw");

export type RequestBody = Buffer | undefined | typeof TOO_LARGE | typeof NOT_RAW;

export type BodyReader = (req: IncomingMessage, res: ServerResponse) => Promise<RequestBody>;

export function bodyReader(limit: number): BodyReader {
  const options = { limit, verify: captureRawBody };
  const parsers: RequestHandler[] = [
    express.json(options),
    express.urlencoded({ ...options, extended: false }),
    express.text(options),
    express.raw(options),
  ];
  return async (req, res) => {
    const known = rawBodyOf(req);
    if (known !== undefined) return known;
    if (streamConsumed(req)) return NOT_RAW;
    // The parsers run even without a body: each Express version sets its own empty `req.body`.
    if ((await parse(parsers, req, res)) === TOO_LARGE) return TOO_LARGE;
    if (!hasBody(req)) return undefined;
    // A type none of the parsers takes (XML, multipart, …): read it raw; `req.body` stays as it was.
    return rawBodyOf(req) ?? readRawBody(req, limit);
  };
}

/** Runs the parsers in turn (each skips a body that is not its type, or is already read). */
function parse(
  parsers: readonly RequestHandler[],
  req: IncomingMessage,
  res: ServerResponse,
): Promise<typeof TOO_LARGE | undefined> {
  return new Promise((resolve, reject) => {
    let index = 0;
    const next = (error?: unknown) => {
      if (error !== undefined && error !== null) {
        // Too large is the client's mistake with a core code; anything else (bad JSON, a bad
        // charset) is the parser's own error, handled by the app as if its parser had raised it.
        if ((error as { type?: unknown }).type === "entity.too.large") resolve(TOO_LARGE);
        else reject(error);
        return;
      }
      const parser = parsers[index++];
      if (parser === undefined) resolve(undefined);
      else parser(req as never, res as never, next);
    };
    next();
  });
}
