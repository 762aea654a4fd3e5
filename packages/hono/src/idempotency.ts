/**
 * `Idempotency-Key` on Hono routes. The middleware translates the request for core's engine
 * (`begin`), answers its refusals and replays as they are, and otherwise runs the route and
 * hands the engine what it answered (`finish`) or that it threw (`abort`).
 */
import {
  assertOptionNames,
  type BodyError,
  bodyLimitOption,
  createIdempotency,
  DEFAULT_REQUEST_BODY_LIMIT,
  IDEMPOTENCY_OPTION_NAMES,
  type IdempotencyEngine,
  type IdempotencyErrorDecision,
  type IdempotencyOptions,
  type IdempotencyRequest,
  type IdempotencyRespondDecision,
  type IdempotencyTicket,
  optionNames,
  passedBefore,
  pathAndQuery,
  type ResponseSettlement,
  recordResponse,
  settleAtEnd,
} from "@interlock/core";
import type { Context, Env, MiddlewareHandler, Next } from "hono";
import { createMiddleware } from "hono/factory";
import { matchedRoutes } from "hono/route";
import { readBody } from "./body.js";
import { builtOnFirstUse, type OptionsOrFactory } from "./options.js";
import { answerByApp, send } from "./respond.js";
import { givenBody, raisedAroundRoute, readAheadWhenReplaced, type Written, watchBodies } from "./written.js";

/** The request as core sees it, with the Hono context for `principal`, `fingerprint` and `required`. */
export interface HonoIdempotencyRequest extends IdempotencyRequest {
  context: Context;
}

/**
 * Core's engine options, with `principal`, `fingerprint` and `required` given the Hono
 * context as `request.context`, plus the adapter's own.
 */
export interface IdempotencyMiddlewareOptions extends IdempotencyOptions<HonoIdempotencyRequest> {
  /**
   * The route part of a key's scope, also named in events (OpenTelemetry's `http.route`): return
   * a pattern, not the path. Default: the pattern of the route that answers (`/payments/:id`),
   * even when the middleware is mounted with `app.use("*")`.
   */
  route?: (c: Context) => string;
  /**
   * Largest request body read for the fingerprint, in bytes; a larger one is answered 413
   * `body_too_large` without being buffered. Default `DEFAULT_REQUEST_BODY_LIMIT` (1 MiB).
   */
  bodyLimit?: number;
  /**
   * Takes over the answer to a refusal (400, 409, 413, 422, 500 `body_not_raw`, 503, with the
   * typed error as `decision.error`); replays always go out as stored. Return your own
   * `Response`, or nothing to send `decision.response`.
   */
  onError?: (decision: IdempotencyErrorDecision, c: Context) => Response | undefined | Promise<Response | undefined>;
}

/**
 * The answering route's pattern: the first route matched after the running middleware that is a
 * handler. Not the last one matched: a catch-all registered after the routes (`app.all("*", …)`)
 * is matched too, but never answers a request a route before it answered. Read from
 * `matchedRoutes`, as Hono 4.8 has it (its `routePath(c)` takes no index: only the running one's).
 */
const answeringPattern = (c: Context): string | undefined =>
  matchedRoutes(c).find((route, index) => index > c.req.routeIndex && isHandler(route.handler))?.path;

/** What Hono's `app.route()` marks a sub-app's route with when it wraps it in its own `onError`. */
const COMPOSED_HANDLER = "__COMPOSED_HANDLER";

type RouteFunction = ReturnType<typeof matchedRoutes>[number]["handler"];
type Wrapped = RouteFunction & { [COMPOSED_HANDLER]?: RouteFunction };

/**
 * A route's function answers (`(c) => …`) rather than passes on (`(c, next) => …`): how Hono's
 * own `showRoutes` tells a handler from a middleware, looking through `app.route()`'s wrapper.
 */
function isHandler(handler: Wrapped): boolean {
  const own = handler[COMPOSED_HANDLER];
  return own === undefined ? handler.length < 2 : isHandler(own);
}

/** The options this adapter takes beyond core's. */
const OWN_OPTION_NAMES = optionNames<Omit<IdempotencyMiddlewareOptions, keyof IdempotencyOptions>>({
  route: true,
  bodyLimit: true,
  onError: true,
});

/**
 * Middleware that makes a route safe to retry with an `Idempotency-Key`: the first request
 * runs, a retry gets the stored response, a concurrent copy 409, the key with another body 422.
 * `options` may be a function of the first request's context (a Worker's `c.env`): the
 * middleware is then made once, from it.
 */
export function idempotency<F extends IdempotencyMiddlewareOptions = IdempotencyMiddlewareOptions>(
  options: OptionsOrFactory<IdempotencyMiddlewareOptions, F>,
): MiddlewareHandler {
  return builtOnFirstUse<IdempotencyMiddlewareOptions, Env>(options, idempotencyMiddleware);
}

function idempotencyMiddleware(options: IdempotencyMiddlewareOptions): MiddlewareHandler {
  assertOptionNames("idempotency()", options, IDEMPOTENCY_OPTION_NAMES, OWN_OPTION_NAMES);
  const { route, bodyLimit, onError, ...engineOptions } = options;
  const engine = createIdempotency(engineOptions);
  const read = { limit: bodyLimitOption(bodyLimit, DEFAULT_REQUEST_BODY_LIMIT), acceptText: true, decode: true };

  // Sent at once unless the app's `onError` may take it: a middleware that returns a promise
  // settles a tick later than one that returns the answer.
  const answer = (c: Context, decision: IdempotencyRespondDecision) =>
    decision.replayed || onError === undefined ? send(c, decision.response) : answerByApp(c, decision, onError);

  const passed = Symbol("@interlock/hono.idempotency.passed");

  return createMiddleware(async (c, next) => {
    if (passedBefore(c, passed)) return next();
    // The body is read only if the engine needs it (a covered request with a key); any other
    // request reaches the route with its stream untouched. A `BodyError` the read returns is the
    // engine's to answer (413, 400, 500).
    const decision = await engine.begin(requestOf(c, route, () => readBody(c, read)));
    if (decision.action === "pass") return next();
    if (decision.action === "respond") return answer(c, decision);
    await execute(engine, decision.ticket, c, next);
  });
}

/**
 * The request for the engine, scoped by the app's `route`, else by the answering route's pattern
 * (the path where no handler answers). The pattern is found now, before the route runs: Hono's
 * `routeIndex`, where the search starts, moves on with every route it runs. The app's own
 * `route` is its pattern; the default one is named only where a handler answers.
 */
function requestOf(
  c: Context,
  route: ((c: Context) => string) | undefined,
  body: () => Promise<Uint8Array | string | BodyError>,
): HonoIdempotencyRequest {
  const { method, url, raw } = c.req;
  const path = pathAndQuery(url);
  if (route) return { method, route: route(c), routePattern: undefined, path, headers: raw.headers, body, context: c };
  const pattern = answeringPattern(c);
  const routePattern = () => pattern;
  return { method, route: pattern ?? c.req.path, routePattern, path, headers: raw.headers, body, context: c };
}

/**
 * Runs the route, then settles the key: a throw (seen by Hono as `c.error`) releases it, and so
 * does a context nothing answered (Hono then answers 500 "Context is not finalized"; `c.res`
 * would only be the empty 200 its getter makes up). An error raised around the route (a timeout
 * mounted before ours answered the client) is not the route's: the route's own answer, never
 * sent, is what its work came to, and settles the key (`settleUnsent`).
 */
async function execute(
  engine: IdempotencyEngine<HonoIdempotencyRequest>,
  ticket: IdempotencyTicket,
  c: Context,
  next: Next,
): Promise<void> {
  const watch = watchBodies(c);
  try {
    await next();
  } catch (error) {
    await engine.abort(ticket);
    throw error;
  }
  const settle: Settle = {
    finish: (captured) => engine.finish(ticket, captured),
    abort: () => engine.abort(ticket),
  };
  const unsent = raisedAroundRoute(c, watch.written);
  if (unsent) {
    await settleUnsent(unsent, settle);
    return;
  }
  if (c.error || !c.finalized) return engine.abort(ticket);
  try {
    await capture(c, watch.written, engine.options.store.maxRecordBytes, settle);
  } catch (error) {
    // A response that cannot be sent (its body already read or locked): Hono answers the error,
    // and the key is released so the retry runs. (A ticket settles once: a late finish is a no-op.)
    await engine.abort(ticket);
    throw error;
  }
}

/**
 * Stores the answer the route gave the context though a layer around it answered the client
 * first (see `raisedAroundRoute`): a retry is replayed what the route did, not run again. A body
 * given in one piece is stored as given; any other (a stream nobody will read) is settled as
 * streamed, the key released. An error status releases the key, as a throw does: it may be a
 * middleware inside ours mapping the route's own error after the fact (an answer Hono ignores
 * once its error handler has answered), and a retry of a failed request runs again either way.
 */
async function settleUnsent(written: Written, settle: Settle): Promise<unknown> {
  const response = await written.response;
  const { status } = response;
  const body = givenBody(written.data);
  if (body !== undefined && status < 400) return settle.finish({ status, headers: givenHeaders(response, body), body });
  await response.body?.cancel().catch(() => {});
  return status >= 400
    ? settle.abort()
    : settle.finish({ status, headers: headerPairs(response.headers), body: undefined });
}

/**
 * The headers stored with a body given in one piece: the response's, and the text type a
 * `Response` gives a string body of its own when none was set.
 */
function givenHeaders(response: Response, body: Uint8Array | string): Array<[string, string]> {
  const headers = headerPairs(response.headers);
  if (typeof body === "string" && !response.headers.has("content-type")) headers.push(TEXT_TYPE);
  return headers;
}

/** The engine's settling of one claimed key. */
type Settle = Pick<ResponseSettlement, "finish" | "abort">;

/**
 * Hands `finish` the route's response as the engine stores it. A body given to the context in
 * one piece is taken as it was given. Any other response (one the route built itself, or that a
 * later middleware replaced) is recorded as it goes out, up to the store's `maxRecordBytes`:
 * its chunks reach the client as the route writes them, and its end only once `finish` is done,
 * so a client that retries the moment it has the whole answer finds it stored. A stream given
 * to the context, or one the client stops reading, goes out uncached as streamed; a body past
 * that size, as too large (`tooLarge`), whatever its kind: the engine releases the key.
 */
async function capture(c: Context, written: Written | undefined, limit: number, settle: Settle): Promise<unknown> {
  const { finish } = settle;
  const response = c.res;
  // Only `status` and `headers` on this path: on @hono/node-server any other member of its
  // lightweight Response builds the full one, and the answer then leaves by a slower path.
  const { status } = response;
  if (written?.data instanceof ReadableStream) return passStream(c, response, limit, settle);
  if (written !== undefined && written.response === response) {
    const body = givenBody(written.data);
    if (body !== undefined) {
      const headers = givenHeaders(response, body);
      answerAsStored(c, written.data as BodyInit | null, status, headers);
      return finish({ status, headers, body });
    }
  }
  // Recorded as it goes out. Hono answers HEAD with the route's headers and drops its body
  // unread (`new Response(null, res)`): a recording would never end, and the key would stay in
  // flight, so none is made.
  const recorded = await recordResponse(response, {
    headers: () => headerPairs(response.headers),
    limit,
    bodyless: c.req.method === "HEAD",
    ...settle,
  });
  const { recording } = recorded;
  if (recording === undefined) return;
  // Cleared first: Hono's setter would otherwise copy the spent response's headers again.
  c.res = undefined;
  c.res = recorded.response;
  readAheadWhenReplaced(c, recording.stream, () => recording.readAhead());
}

/**
 * A stream given to the context (`stream()`, `streamSSE()`, `c.body(stream)`) goes out as it is
 * written, uncached, but the key stays claimed until it is over: Hono runs the stream's callback
 * (the route's real work) after the route returns, so a retry meanwhile is answered 409
 * `request_in_flight`, never run alongside it. When the stream ends, fails or the client cancels
 * it, the engine releases the key (`streamed`), before the end reaches the client. A HEAD answer's
 * body is dropped unread by Hono, and one a later middleware already took cannot be followed:
 * both are settled at once, as is an answer with no body left.
 */
async function passStream(c: Context, response: Response, limit: number, settle: Settle): Promise<unknown> {
  const { status } = response;
  const headers = headerPairs(response.headers);
  const streamed = () => settle.finish({ status, headers, body: undefined });
  const { body } = response;
  if (c.req.method === "HEAD" || body === null || body.locked) return streamed();
  const passed = settleAtEnd(body, streamed);
  c.res = undefined;
  c.res = new Response(passed.stream, { status, statusText: response.statusText, headers: response.headers });
  readAheadWhenReplaced(c, passed.stream, () => passed.readAhead(limit));
}

/**
 * The answer made anew from the copy of the body stored: on @hono/node-server the route's own
 * Response keeps the buffer it was given, which the route may reuse once it has answered.
 * Reading `headers` turned the response's headers into a `Headers` object, which
 * @hono/node-server then iterates again (sorted, per the Fetch spec) to write the answer: they
 * are given as a plain record of the headers just read, which it writes as it is. As the pairs
 * when a name repeats: a record cannot hold two `Set-Cookie`s on every runtime.
 */
function answerAsStored(c: Context, data: BodyInit | null, status: number, headers: Array<[string, string]>) {
  c.res = undefined;
  c.res = new Response(data, { status, headers: headerRecord(headers) ?? headers });
}

/** The header pairs as a record, or `undefined` when a name repeats (or is one every object has). */
function headerRecord(headers: Array<[string, string]>): Record<string, string> | undefined {
  const record: Record<string, string> = {};
  for (const [name, value] of headers) {
    if (name in record) return undefined;
    record[name] = value;
  }
  return record;
}

/**
 * The Content-Type the Fetch spec gives a string body the route set none for. Bun leaves it out
 * of `response.headers` (it adds its own as it sends), so it is written here: the first answer
 * and the replay, made of stored bytes, go out with it alike.
 */
const TEXT_TYPE: [string, string] = ["content-type", "text/plain;charset=UTF-8"];

/** Header pairs, as `Headers.forEach` gives them (the DOM lib types only that as iteration). */
function headerPairs(headers: Headers): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  headers.forEach((value, name) => {
    pairs.push([name, value]);
  });
  return pairs;
}
