/**
 * The body for idempotency, read only when the engine needs the fingerprint (a covered
 * request with a key): raw bytes for the fingerprint, and a parsed `req.body` for the route.
 * When no parser ran yet, Express's own parsers run here, with a `verify` hook that keeps the
 * bytes they read, so the route gets exactly what `express.json()`, `express.urlencoded()`,
 * `express.text()` or `express.raw()` would have given it. Requests the engine lets through
 * are left unread, for the app's own parser.
 */

import { type IncomingHttpHeaders, IncomingMessage, type ServerResponse } from "node:http";
import { PassThrough } from "node:stream";
import { announcesBody, BodyError, declaredTooLarge, decodeContent, requestCutOff } from "@interlock/core";
import express, { type RequestHandler } from "express";
import {
  asBuffer,
  captureRawBody,
  RAW_BODY_HOST_ADVICE,
  type RequestState,
  rawBodyOf,
  readRawBody,
  readRawBodyHandedOn,
  streamConsumed,
} from "./raw-body.js";

const NOT_RAW_ADVICE =
  "a body parser read the request before idempotency() ran, so the bytes to fingerprint are gone: " +
  "pass the parser the verify hook, e.g. express.json({ verify: captureRawBody }), or mount idempotency() first" +
  RAW_BODY_HOST_ADVICE;

/**
 * Reads the body; core's `BodyError` (413 too large, 500 not raw), returned or thrown, is the
 * engine's to answer. Bytes a parser already kept come back at once, with no promise: the engine
 * then hashes them in the same tick.
 */
export type BodyReader = (
  req: IncomingMessage,
  res: ServerResponse,
) => Buffer | undefined | BodyError | Promise<Buffer | undefined | BodyError>;

export function bodyReader(limit: number): BodyReader {
  const options = { limit, verify: captureRawBody };
  const parsers: RequestHandler[] = [
    express.json(options),
    express.urlencoded({ ...options, extended: false }),
    express.text(options),
    express.raw(options),
  ];
  const readUnread = async (req: IncomingMessage, res: ServerResponse): Promise<Buffer | undefined | BodyError> => {
    const hostBytes = bytesOnBody(req);
    // Its client left before anything read the body (while a middleware before this one ran):
    // the parsers would take the stream for one they cannot read (a 500 of theirs); core's reader
    // refuses it 400 `body_incomplete`, as it does a cut-off body of any declared length.
    if (hostBytes === undefined && requestCutOff(req) && announcesBody(req)) return readRawBody(req, limit);
    // Refused before Express's parsers, which read a body past their limit to its end before refusing it.
    const declared = declaredTooLarge(req, limit);
    if (declared) return declared;
    // Decoded as every adapter decodes it, not by the parsers (whose codings differ by major).
    if (req.headers["content-encoding"] !== undefined && parsersReadBody(req)) {
      const payload = await decodedPayload(req, res, hostBytes, limit);
      return parseHostBytes(parsers, req, res, payload, limit, true);
    }
    if (hostBytes !== undefined) return parseHostBytes(parsers, req, res, hostBytes, limit, false);
    // The parsers run even without a body: each Express version sets its own empty `req.body`.
    const refused = await parse(parsers, req, res);
    if (refused) return refusal(refused, limit);
    if (!announcesBody(req)) return undefined;
    // A type none of the parsers takes (XML, multipart, …): read it raw; `req.body` stays as it
    // was, and the stream is the route's to read again.
    const known = rawBodyOf(req);
    if (known !== undefined) return known;
    return readRawBodyHandedOn(req, limit);
  };
  return (req, res) => (streamConsumed(req) ? keptBytes(req, limit) : readUnread(req, res));
}

/**
 * The bytes of a request whose stream a parser (or the host) read: what it kept, or gone. Held
 * to the limit whatever read them: the app's parser may allow more than `bodyLimit`.
 */
function keptBytes(req: IncomingMessage, limit: number): Buffer | undefined | BodyError {
  const known = rawBodyOf(req);
  if (known !== undefined) return known.byteLength > limit ? BodyError.tooLarge(limit) : known;
  // Nothing announced, nothing lost: a parser that read an empty stream kept no bytes.
  if (!announcesBody(req)) return undefined;
  return new BodyError("body_not_raw", NOT_RAW_ADVICE);
}

type ParsedRequest = IncomingMessage & RequestState;

/**
 * Whether Express's parsers read a body from `req` (type-is's `hasBody`): one announced, or an
 * empty one sent with `Content-Length: 0`, which they would inflate as its coding says and
 * refuse (zlib's "unexpected end of file", a 400 of their own) where every other adapter takes
 * the empty body it is.
 */
function parsersReadBody(req: IncomingMessage): boolean {
  return announcesBody(req) || req.headers["content-length"] !== undefined;
}

/**
 * The payload of a body sent with a `Content-Encoding`, decoded (core's `decodeContent`): what the
 * fingerprint covers and the parsers parse, so a compressed send and a plain one of the same
 * JSON are the same request. A coding not decoded (415), data that does not decode (400), or a
 * body that decodes past the limit (413) is core's `BodyError`, answered before a key is claimed.
 */
async function decodedPayload(
  req: IncomingMessage,
  res: ServerResponse,
  hostBytes: Buffer | undefined,
  limit: number,
): Promise<Buffer> {
  const sent = hostBytes ?? (await readRawBody(req, limit));
  if (sent instanceof BodyError) throw sent;
  const payload = await decodeContent(sent, req.headers["content-encoding"], limit);
  if (payload instanceof BodyError) throw payload;
  const bytes = asBuffer(payload);
  captureRawBody(req, res, bytes); // the bytes kept for the request are the payload
  return bytes;
}

/**
 * The bytes a host put on `req.body` as a Buffer while the stream is still unread: hosts that
 * make a request from an event do (serverless-express and serverless-http on AWS Lambda).
 */
function bytesOnBody(req: IncomingMessage): Buffer | undefined {
  const { body } = req as ParsedRequest;
  return Buffer.isBuffer(body) ? body : undefined;
}

/**
 * Parses the bytes a host put on `req.body` (or the payload `decodedPayload` decoded) for the
 * route, as the parsers would parse the stream, and returns them for the fingerprint (or the
 * parsers' refusal, a `BodyError`). They are read from a request of their own, not from the
 * host's stream: serverless-express marks that stream unreadable once the app's first
 * synchronous pass returns, so after any `await` before this (an authentication lookup, the
 * engine's own) the parsers would skip it (Express 5, leaving the Buffer) or fail on it
 * (Express 4, a 500 "stream is not readable").
 */
async function parseHostBytes(
  parsers: readonly RequestHandler[],
  req: IncomingMessage,
  res: ServerResponse,
  bytes: Buffer,
  limit: number,
  decoded: boolean,
): Promise<Buffer | undefined | BodyError> {
  const copy = requestCarrying(req, bytes, decoded);
  const refused = await parse(parsers, copy, res);
  if (refused) return refusal(refused, limit);
  const parsed = req as ParsedRequest;
  if (!streamConsumed(copy)) {
    // A type none of the parsers takes: `req.body` stays the host's Buffer, as it would stay
    // unparsed; without one (a decoded payload), it is what the parsers leave on a body they
    // skip: Express 4's `{}` (else `undefined` for a compressed XML body, `{}` sent plain).
    parsed.body ??= (copy as ParsedRequest).body;
    return announcesBody(req) ? bytes : undefined;
  }
  // Whatever a parser made of the bytes, an empty body included (`{}` for JSON, `""` for text),
  // replaces the host's Buffer, as it would have replaced it reading the stream.
  parsed.body = (copy as ParsedRequest).body;
  parsed._body = true; // a parser after this one stands aside on Express 4, as it does after any parser
  if (!announcesBody(req)) return undefined;
  const read = rawBodyOf(copy) ?? bytes;
  captureRawBody(req, res, read);
  return read;
}

/**
 * A request with `req`'s method, URL and headers whose unread stream carries `bytes`; for a
 * `decoded` payload, headers that name no coding and give its own length, so no parser decodes
 * it again or finds it the wrong size.
 */
function requestCarrying(req: IncomingMessage, bytes: Buffer, decoded: boolean): IncomingMessage {
  const copy = new IncomingMessage(new PassThrough() as never);
  copy.method = req.method;
  copy.url = req.url;
  copy.headers = decoded ? payloadHeaders(req.headers, bytes.byteLength) : req.headers;
  copy.push(bytes);
  copy.push(null);
  return copy;
}

function payloadHeaders(headers: IncomingHttpHeaders, length: number): IncomingHttpHeaders {
  const { "content-encoding": _coding, ...rest } = headers;
  return { ...rest, "content-length": String(length) };
}

/** What the parsers' errors that are core's refusals say: the body was too large, or cut off. */
type Refused = "too_large" | "incomplete";

const refusal = (refused: Refused, limit: number): BodyError =>
  refused === "too_large" ? BodyError.tooLarge(limit) : BodyError.incomplete();

/**
 * Runs the parsers in turn (each skips a body that is not its type, or is already read);
 * resolves what refused the body, if anything did.
 */
function parse(
  parsers: readonly RequestHandler[],
  req: IncomingMessage,
  res: ServerResponse,
): Promise<Refused | undefined> {
  return new Promise((resolve, reject) => {
    let index = 0;
    const next = (error?: unknown) => {
      if (error !== undefined && error !== null) {
        // Too large, or cut off by a client that went away, is the client's doing with a core
        // code; anything else (bad JSON, a bad charset) is the parser's own error, handled by
        // the app as if its parser had raised it.
        const type = (error as { type?: unknown }).type;
        if (type === "entity.too.large") resolve("too_large");
        else if (type === "request.aborted") resolve("incomplete");
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
