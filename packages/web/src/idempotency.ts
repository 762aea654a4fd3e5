/**
 * `Idempotency-Key` on a fetch-style handler. The wrapper translates the request for core's
 * engine (`begin`), answers its refusals and replays as they are, and otherwise runs the
 * handler and hands the engine what it answered, returned or thrown as an answer (`finish`),
 * or that it failed (`abort`).
 */
import {
  assertOptionNames,
  BodyError,
  bodyLimitOption,
  createIdempotency,
  DEFAULT_REQUEST_BODY_LIMIT,
  hasNoContent,
  IDEMPOTENCY_OPTION_NAMES,
  type IdempotencyEngine,
  type IdempotencyErrorDecision,
  type IdempotencyOptions,
  type IdempotencyRequest,
  type IdempotencyRespondDecision,
  type IdempotencyTicket,
  optionNames,
  pathAndQuery,
  problemResponse,
  readyLength,
  recordResponse,
} from "@interlock/core";
import { handOver, type Payload, readPayload } from "./body.js";
import { builtOnFirstUse, type OptionsOrFactory } from "./options.js";
import { RequestBodyError } from "./read.js";
import { handlerResponse, toResponse } from "./respond.js";
import { thrownAnswer } from "./thrown.js";

/** The request as core sees it, with the handler's own `Request` for `principal`, `fingerprint` and `required`. */
export interface WebIdempotencyRequest<R extends Request = Request> extends IdempotencyRequest {
  context: R;
}

/**
 * Core's engine options, with `principal`, `fingerprint` and `required` given the web
 * `Request` as `request.context`, plus the wrapper's own.
 */
export interface WithIdempotencyOptions<R extends Request = Request>
  extends IdempotencyOptions<WebIdempotencyRequest<R>> {
  /**
   * The route part of a key's scope, also named in events (OpenTelemetry's `http.route`): a
   * pattern (`"/payments/[id]"`), or a function of the request that returns one. Default: the
   * request's path, which scopes keys alike but is left out of events (one series per URL).
   */
  route?: string | ((request: R) => string);
  /**
   * Largest request body read for the fingerprint, in bytes; a larger one is answered 413
   * `body_too_large` without being buffered. The handler's `readJson` and `readBytes` read within
   * it too, unless given their own. Default `DEFAULT_REQUEST_BODY_LIMIT` (1 MiB).
   */
  bodyLimit?: number;
  /**
   * Takes over the answer to a refusal (400, 409, 413, 415, 422, 500 `body_not_raw`, 503, with
   * the typed error as `decision.error`), a `RequestBodyError` the handler threw (`readJson`'s)
   * included; replays always go out as stored. Return your own `Response`, or nothing to send
   * `decision.response`.
   */
  onError?: (decision: IdempotencyErrorDecision, request: R) => Response | undefined | Promise<Response | undefined>;
}

/**
 * The handler `withIdempotency` runs: the request, its body unread (read it with `readJson` or
 * `readBytes`: decoded, within the wrapper's `bodyLimit`, the payload the wrapper read for the
 * fingerprint when it did), and whatever else the host passes.
 */
export type IdempotentHandler<R extends Request, A extends unknown[]> = (
  request: R,
  ...rest: A
) => Response | Promise<Response>;

/** The options this adapter takes beyond core's. */
const OWN_OPTION_NAMES = optionNames<Omit<WithIdempotencyOptions, keyof IdempotencyOptions>>({
  route: true,
  bodyLimit: true,
  onError: true,
});

/**
 * Wraps a fetch-style handler so that a request retried with the same `Idempotency-Key` runs it
 * once: a retry gets the stored response (`Idempotent-Replayed: true`), a concurrent copy 409,
 * the key with another body 422. The handler gets the request as it came, its body unread.
 * A throw releases the key, so the retry runs again. A `RequestBodyError` (from `readJson` or
 * `readBytes`: a body that is the client's mistake) is answered as the wrapper's own refusals
 * are, problem+json with its status, through `onError`. The throws a host answers with (Next's
 * `redirect()`, `notFound()`, `forbidden()`, `unauthorized()`; a thrown `Response`, which Remix and
 * React Router send) are stored as that answer and thrown on, for the host to send as ever.
 *
 * `options` may be a function of the first request (and what the host passes with it): it is
 * called once, on the first call, for settings that are not there when the module is loaded.
 */
export function withIdempotency<
  R extends Request = Request,
  A extends unknown[] = [],
  F extends WithIdempotencyOptions<R> = WithIdempotencyOptions<R>,
>(
  options: OptionsOrFactory<WithIdempotencyOptions<R>, R, A, F>,
  handler: IdempotentHandler<R, A>,
): (request: R, ...rest: A) => Promise<Response> {
  return builtOnFirstUse<WithIdempotencyOptions<R>, R, A>(options, (resolved) => idempotentHandler(resolved, handler));
}

function idempotentHandler<R extends Request, A extends unknown[]>(
  options: WithIdempotencyOptions<R>,
  handler: IdempotentHandler<R, A>,
): (request: R, ...rest: A) => Promise<Response> {
  assertOptionNames("withIdempotency()", options, IDEMPOTENCY_OPTION_NAMES, OWN_OPTION_NAMES);
  const { route, bodyLimit, onError, ...engineOptions } = options;
  const engine = createIdempotency(engineOptions);
  const limit = bodyLimitOption(bodyLimit, DEFAULT_REQUEST_BODY_LIMIT);
  const routeOf = typeof route === "function" ? route : (request: R) => route ?? pathOf(request.url);
  // A path is no pattern: without the app's own `route`, events name none.
  const routePattern = route === undefined ? () => undefined : undefined;

  const answer = async (request: R, decision: IdempotencyRespondDecision) =>
    (!decision.replayed && onError && (await onError(decision, request))) || toResponse(decision.response);
  // The client's mistake, which the handler found reading its body: answered as the engine's refusals are.
  const refuse = (request: R, error: RequestBodyError) =>
    answer(request, { action: "respond", response: problemResponse(error), replayed: false, error });

  return async (request, ...rest) => {
    let read: Payload | undefined;
    const decision = await engine.begin({
      method: request.method,
      route: routeOf(request),
      routePattern,
      path: pathAndQuery(request.url),
      headers: request.headers,
      // Read only if the engine needs it (a covered request with a key), from a copy: the payload,
      // decoded (so a compressed send and a plain one of the same JSON are one request, as on every
      // adapter), as the handler's `readJson` reads it. The engine answers a `BodyError` (413, 415, 400, 500).
      body: async () => {
        const payload = await readPayload(request, limit);
        if (payload instanceof BodyError) return payload;
        read = payload;
        return payload.bytes;
      },
      context: request,
    });
    if (decision.action === "respond") return answer(request, decision);
    // The handler's `readJson` and `readBytes` get the payload read here, not read nor decoded
    // again, within this limit (a request passed unread is read within it too).
    handOver(request, limit, read);
    if (decision.action === "pass") {
      try {
        return await handler(request, ...rest);
      } catch (error) {
        if (error instanceof RequestBodyError) return refuse(request, error);
        throw error;
      }
    }
    const refused = await execute(engine, decision.ticket, request.method, () => handler(request, ...rest));
    return refused instanceof RequestBodyError ? refuse(request, refused) : refused;
  };
}

/**
 * The path without its query string: the default scope, decoded as hosts decode it to route
 * (`decodeURI`, as Hono does; Next.js decodes its segments alike): `/pay%6Dents` is
 * `/payments`, `/orders/it%27s` is `/orders/it's`. Under two scopes, one key would run the same
 * handler twice. What `decodeURI` leaves encoded (a reserved character, such as `%2F`) keeps its
 * hex in upper case, the one spelling RFC 3986 §6.2.2 gives it; a path it cannot decode (a
 * malformed escape) is taken as sent. (The fingerprint keeps the path as sent: a retry under
 * another spelling is a 422.)
 */
function pathOf(url: string): string {
  const full = pathAndQuery(url);
  const query = full.indexOf("?");
  const path = query === -1 ? full : full.slice(0, query);
  return path.includes("%") ? decodedPath(path) : path;
}

const PERCENT_ENCODED = /%[0-9a-f]{2}/gi;

function decodedPath(path: string): string {
  let decoded: string;
  try {
    decoded = decodeURI(path);
  } catch {
    return path;
  }
  return decoded.replace(PERCENT_ENCODED, (encoded) => encoded.toUpperCase());
}

/**
 * Runs the handler, then settles the key with what it answered (`record`). A throw releases it,
 * unless the host sends the throw as an answer (`thrownAnswer`: Next's `redirect()` or
 * `notFound()`, a thrown `Response`): that answer is stored, and the throw goes on to the host.
 * A `RequestBodyError` releases the key too, and is returned, for the caller to answer: the
 * client's mistake, whose corrected retry must run, not find a stored 400 (nor get a 422).
 */
async function execute<R extends Request>(
  engine: IdempotencyEngine<WebIdempotencyRequest<R>>,
  ticket: IdempotencyTicket,
  method: string,
  run: () => Response | Promise<Response>,
): Promise<Response | RequestBodyError> {
  let answer: HandlerAnswer;
  let response: Response;
  try {
    answer = await answerOf(run);
    response = handlerResponse(answer.response); // its body a web stream, or null
  } catch (error) {
    // Released (`idempotency.released`, reason `error`: the handler threw), never stored.
    await engine.abort(ticket);
    if (error instanceof RequestBodyError) return error;
    throw error;
  }
  const sent = await record(engine, ticket, method, response);
  if (!answer.threw) return sent;
  // Thrown on, for the host to answer as ever; a retry gets the stored answer from the wrapper. A
  // thrown Response goes on as the one its body is recorded through, Next's error as it came.
  throw answer.error === answer.response ? sent : answer.error;
}

/**
 * Stores a HEAD answer and says what to send. Its body is never sent, and a host frames it by
 * that body's length only when it knows it (bytes, not a stream; Bun and Deno send
 * `Content-Length: 0` for a Response without a body): counted here while it has chunks ready, up
 * to the store's `maxRecordBytes`, the length goes out as its Content-Length (unless the handler
 * set one) and is stored with it, so the replay says the same on every host (RFC 9110 §8.6).
 * Past the limit, or for a body still being produced (one that may never end, server-sent
 * events: the answer is not held for it), the length is not known: sent without one, the body
 * cancelled, and the key released (reason `too_large` or `streamed`), as for any body not stored.
 * A handler's `null` body is not counted: it says no length, and none is added.
 */
async function recordHead<R extends Request>(
  engine: IdempotencyEngine<WebIdempotencyRequest<R>>,
  ticket: IdempotencyTicket,
  response: Response,
): Promise<Response> {
  const { status } = response;
  const headers = new Headers(response.headers);
  const init = { status, statusText: response.statusText, headers };
  const { body } = response;
  if (body !== null && !headers.has("content-length") && !hasNoContent(status)) {
    let length: Awaited<ReturnType<typeof readyLength>>;
    try {
      length = await readyLength(body, engine.options.store.maxRecordBytes);
    } catch (error) {
      await engine.abort(ticket); // the handler's body failed: a retry runs it again
      throw error;
    }
    if (typeof length !== "number") {
      await engine.finish(ticket, { status, headers, body: undefined, tooLarge: length === "too_large" });
      // An empty stream, not `null`: a host frames a body-less Response as `Content-Length: 0` (Bun).
      return new Response(emptyStream(), init);
    }
    headers.set("content-length", String(length));
  } else {
    // Never sent; a body that cannot be cancelled (locked, or its source throws) is no error of the answer's.
    await body?.cancel().catch(() => {});
  }
  await engine.finish(ticket, { status, headers, body: EMPTY });
  // A handler's own `null` body stays one: the host frames it as it would have without Interlock.
  return new Response(null, init);
}

/** A body that ends at once: what a HEAD answer of unknown length goes out with. */
const emptyStream = () =>
  new ReadableStream<Uint8Array>({
    start(controller) {
      controller.close();
    },
  });

const EMPTY = new Uint8Array(0);

/** What the handler answered: its `Response`, returned or thrown as one (with the throw to pass on). */
type HandlerAnswer = { response: Response; threw: false } | { response: Response; threw: true; error: unknown };

/** Runs the handler: a throw that is no answer (`thrownAnswer`) goes on as it came. */
async function answerOf(run: () => Response | Promise<Response>): Promise<HandlerAnswer> {
  try {
    return { response: await run(), threw: false };
  } catch (error) {
    const response = thrownAnswer(error);
    if (response === undefined) throw error;
    return { response, threw: true, error };
  }
}

/**
 * Stores `response` as the key's answer, recorded as it goes out, up to the store's
 * `maxRecordBytes`; resolves to what to send in its place. The body is read on at once, into the
 * stream sent, so it is stored whether or not (and however slowly) the client reads it, and its
 * end reaches the client only once the engine has stored it, so a client that retries the moment
 * it has the whole answer finds it. A body past that size goes out uncached (the engine releases
 * the key, reason `too_large`), as does one that fails (reason `streamed`); a stream that never
 * ends is streamed on once past it.
 */
async function record<R extends Request>(
  engine: IdempotencyEngine<WebIdempotencyRequest<R>>,
  ticket: IdempotencyTicket,
  method: string,
  response: Response,
): Promise<Response> {
  if (method === "HEAD") return recordHead(engine, ticket, response);
  const recorded = await recordResponse(response, {
    headers: () => response.headers,
    limit: engine.options.store.maxRecordBytes,
    bodyless: false,
    finish: (captured) => engine.finish(ticket, captured),
    abort: () => engine.abort(ticket),
  });
  const { recording } = recorded;
  if (recording === undefined) return recorded.response;
  // A body ready at once (a string, bytes, JSON) is sent whole, so the host frames it with its
  // length, as it frames the handler's own Response (without one, Node marks the end of an
  // answer to an HTTP/1.0 keep-alive client by closing the connection). One still being
  // produced is streamed as it comes, its end held until the engine has stored it. So is a body
  // without a Content-Type: sent as bytes, Bun would label it application/octet-stream.
  const whole = response.headers.has("content-type") ? await recording.readReady() : undefined;
  if (whole !== undefined) {
    const init = { status: response.status, statusText: response.statusText, headers: response.headers };
    return new Response(whole as Uint8Array<ArrayBuffer>, init); // core's own copy, on an ArrayBuffer
  }
  recording.readAhead();
  return recorded.response;
}
