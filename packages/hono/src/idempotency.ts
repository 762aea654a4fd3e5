/**
 * `Idempotency-Key` on Hono routes. The middleware translates the request for core's engine
 * (`begin`), answers its refusals and replays as they are, and otherwise runs the route and
 * hands the engine what it answered (`finish`) or that it threw (`abort`).
 */
import {
  BodyError,
  type BodyErrorCode,
  type CapturedResponse,
  createIdempotency,
  type IdempotencyDecision,
  type IdempotencyEngine,
  type IdempotencyOptions,
  type IdempotencyRequest,
  type IdempotencyTicket,
} from "@interlock/core";
import type { Context, MiddlewareHandler, Next } from "hono";
import { createMiddleware } from "hono/factory";
import { routePath } from "hono/route";
import { limitOption, readBody } from "./body.js";
import { send } from "./respond.js";

/** The request as core sees it, with the Hono context for `principal`, `fingerprint` and `required`. */
export interface HonoIdempotencyRequest extends IdempotencyRequest {
  context: Context;
}

export interface IdempotencyMiddlewareOptions
  extends Omit<IdempotencyOptions, "principal" | "fingerprint" | "required"> {
  /** Who is calling (API key id, user, tenant): keys are scoped by it. `false`: one shared key space. */
  principal?: ((request: HonoIdempotencyRequest) => string | undefined | Promise<string | undefined>) | false;
  fingerprint?: (request: HonoIdempotencyRequest) => string | Promise<string>;
  required?: boolean | ((request: HonoIdempotencyRequest) => boolean);
  /**
   * The route part of a key's scope. Default: the pattern of the route that answers
   * (`/payments/:id`), even when the middleware is mounted with `app.use("*")`.
   */
  route?: (c: Context) => string;
  /**
   * Largest request body read for the fingerprint, in bytes; a larger one is answered 413
   * `body_too_large` without being buffered. Default: no limit, like Hono's own `c.req.json()`
   * (Hono's `bodyLimit()` middleware in front bounds both).
   */
  bodyLimit?: number;
  /**
   * Takes over the answer to a refusal (400, 409, 413, 422, 500 `body_not_raw`, 503, with the
   * typed error as `decision.error`); replays always go out as stored. Return your own
   * `Response`, or nothing to send `decision.response`.
   */
  onError?: (decision: IdempotencyRespondDecision, c: Context) => Response | undefined | Promise<Response | undefined>;
}

/** A refusal (problem+json) or a replay, answered without running the route. */
export type IdempotencyRespondDecision = Extract<IdempotencyDecision, { action: "respond" }>;

/** The answering route's pattern: the last route matched, as `hono/route` documents it. */
const answeringRoute = (c: Context): string => routePath(c, -1) || c.req.path;

export function idempotency(options: IdempotencyMiddlewareOptions): MiddlewareHandler {
  const { route = answeringRoute, bodyLimit, onError, ...engineOptions } = options;
  // Sound: every request this middleware hands the engine carries its Hono context.
  const engine = createIdempotency(engineOptions as IdempotencyOptions);
  const read = {
    limit: limitOption(bodyLimit, Number.POSITIVE_INFINITY),
    acceptText: true,
    // Thrown: the engine answers a `BodyError` as its own refusal (413, or 500 `body_not_raw`).
    fail: (code: BodyErrorCode, message: string): never => {
      throw new BodyError(code, message);
    },
  };

  const answer = async (c: Context, decision: IdempotencyRespondDecision) =>
    (!decision.replayed && onError && (await onError(decision, c))) || send(c, decision.response);

  return createMiddleware(async (c, next) => {
    // The body is read only if the engine needs it (a covered request with a key); any other
    // request reaches the route with its stream untouched.
    const decision = await engine.begin(requestOf(c, route(c), () => readBody(c, read)));
    if (decision.action === "pass") return next();
    if (decision.action === "respond") return answer(c, decision);
    await execute(engine, decision.ticket, c, next);
  });
}

function requestOf(c: Context, route: string, body: () => Promise<Uint8Array | string>): HonoIdempotencyRequest {
  const { method, url, raw } = c.req;
  return { method, route, path: pathAndQuery(url), headers: raw.headers, body, context: c };
}

/** `/payments?x=1` from `http://host/payments?x=1`, without parsing the whole URL. */
function pathAndQuery(url: string): string {
  const start = url.indexOf("/", url.indexOf("://") + 3);
  return start === -1 ? "/" : url.slice(start);
}

/** Runs the route, then settles the key: a throw (seen by Hono as `c.error`) releases it. */
async function execute(engine: IdempotencyEngine, ticket: IdempotencyTicket, c: Context, next: Next): Promise<void> {
  const streamed = watchStreams(c);
  try {
    await next();
  } catch (error) {
    await engine.abort(ticket);
    throw error;
  }
  if (c.error) return engine.abort(ticket);
  await engine.finish(ticket, await capture(c, streamed()));
}

/**
 * Notes whether the route answered with a `ReadableStream` (`c.body(stream)`, `stream()`,
 * `streamText()`, `streamSSE()`): a fetch `Response` looks the same for a string and a
 * stream, so this is the one place the difference is visible. A stream may never end and
 * must reach the client as it is written: it passes through uncached.
 */
function watchStreams(c: Context): () => boolean {
  let streamed = false;
  const note = <F extends (data: unknown, ...rest: never[]) => Response>(write: F): F =>
    ((data: unknown, ...rest: never[]) => {
      if (data instanceof ReadableStream) streamed = true;
      return write(data, ...rest);
    }) as F;
  c.body = note(c.body as never);
  c.newResponse = note(c.newResponse as never);
  return () => streamed;
}

/**
 * The route's response as the engine stores it. A body written in one piece is read once and
 * put back as bytes, so the client gets exactly what is stored; a stream is left alone
 * (`body: undefined`, the engine releases the key).
 */
async function capture(c: Context, streamed: boolean): Promise<CapturedResponse> {
  const response = c.res;
  const { status, statusText } = response;
  const headers = headerPairs(response.headers);
  if (streamed) return { status, headers, body: undefined };
  if (response.body === null) return { status, headers, body: new Uint8Array(0) };
  const body = new Uint8Array(await response.arrayBuffer());
  // The exact headers just captured, not the response as init: a runtime's own Response
  // (@hono/node-server's) may spell a default Content-Type differently when converted.
  // Cleared first: Hono's setter would otherwise copy the spent response's headers again.
  c.res = undefined;
  c.res = new Response(body, { status, statusText, headers: response.headers });
  return { status, headers, body };
}

/** Header pairs, as `Headers.forEach` gives them (the DOM lib types only that as iteration). */
function headerPairs(headers: Headers): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  headers.forEach((value, name) => {
    pairs.push([name, value]);
  });
  return pairs;
}
