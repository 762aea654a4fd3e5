/**
 * `idempotency(options)`: the engine's `begin` → `finish` / `abort` around an Express route.
 * Every decision is the engine's; this file translates the request, writes the engine's
 * answers, and captures the route's response for `finish`.
 */

import {
  assertOptionNames,
  bodyLimitOption,
  createIdempotency,
  DEFAULT_REQUEST_BODY_LIMIT,
  IDEMPOTENCY_OPTION_NAMES,
  type IdempotencyErrorDecision,
  type IdempotencyOptions,
  type IdempotencyRequest,
  optionNames,
} from "@interlock/core";
import type { Request, RequestHandler, Response } from "express";
import { holdResponse } from "./hold.js";
import { passedBefore } from "./once.js";
import { onThrow } from "./release.js";
import { bodyReader } from "./request-body.js";
import { answer } from "./respond.js";

/** The engine's view of a request, with the Express request as its `context`. */
export interface ExpressIdempotencyRequest extends IdempotencyRequest {
  context: Request;
}

/**
 * Core's engine options, with `principal`, `fingerprint` and `required` given the Express
 * request as `request.context`, plus the adapter's own.
 */
export interface IdempotencyMiddlewareOptions extends IdempotencyOptions<ExpressIdempotencyRequest> {
  /**
   * The route a key is scoped to, also named in events (OpenTelemetry's `http.route`): return a
   * pattern, not the path. Default: `req.baseUrl` + the matched route pattern. Mounted before
   * routing (`app.use(idempotency(…))`), the key is scoped by `req.baseUrl` + `req.path`, and
   * events name the route only once it has matched (from `idempotency.completed`, `released`
   * or `not_recorded` on). A router mounted at a path with parameters puts their values in
   * `req.baseUrl`: pass `route` for such routes.
   */
  route?: (req: Request) => string;
  /**
   * Largest request body read for the fingerprint, in bytes; a larger one is answered 413
   * `body_too_large`. Default `DEFAULT_REQUEST_BODY_LIMIT` (1 MiB).
   */
  bodyLimit?: number;
  /**
   * Takes over the answer to a refusal (400, 409, 413, 422, 500 `body_not_raw`, 503): core's
   * decision, with the typed error as `decision.error` and Interlock's answer as
   * `decision.response`. Replays always go out as stored. Send your own with `res`, or return
   * without responding to let `decision.response` go out. Throwing passes the error to `next`.
   */
  onError?: (decision: IdempotencyErrorDecision, req: Request, res: Response) => void | Promise<void>;
}

/**
 * The matched route's pattern under its router's mount path: undefined until routing has matched
 * one. Once the app's router has handed the request to Express's final handler (an error no
 * handler of the app's answered), it has put back the `req.baseUrl` it found: none at all.
 */
function matchedPattern(req: Request): string | undefined {
  const pattern: unknown = req.route?.path;
  return pattern === undefined ? undefined : asRouted(req, req.baseUrl ?? "") + String(pattern);
}

const defaultRoute = (req: Request): string => matchedPattern(req) ?? asRouted(req, req.baseUrl + req.path);

/**
 * Path text as the client wrote it (a router's mount, or the whole path app-wide), as the app's
 * routing reads it: in lower case unless routing is case-sensitive (by default it is not), and
 * without a trailing slash unless routing is strict. A variant that reaches the same route
 * then shares its scope, where its other path is a 422, instead of running the route again.
 */
function asRouted(req: Request, path: string): string {
  const folded = req.app.get("case sensitive routing") ? path : path.toLowerCase();
  return folded.length > 1 && folded.endsWith("/") && !req.app.get("strict routing") ? folded.slice(0, -1) : folded;
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
 */
export function idempotency(options: IdempotencyMiddlewareOptions): RequestHandler {
  assertOptionNames("idempotency()", options, IDEMPOTENCY_OPTION_NAMES, OWN_OPTION_NAMES);
  const { route = defaultRoute, bodyLimit, onError, ...engineOptions } = options;
  const readBody = bodyReader(bodyLimitOption(bodyLimit, DEFAULT_REQUEST_BODY_LIMIT));
  const engine = createIdempotency(engineOptions);
  const recordLimit = engine.options.store.maxRecordBytes;

  /** Resolves true when the route should run. */
  async function begin(req: Request, res: Response): Promise<boolean> {
    const decision = await engine.begin({
      method: req.method,
      route: route(req),
      // The app's own `route` is its pattern; the default one is read as each event is emitted:
      // mounted before routing, the pattern is known only once a route has matched.
      routePattern: options.route ? undefined : () => matchedPattern(req),
      path: req.originalUrl,
      headers: req.headers,
      // Read only if the engine needs it (a covered request with a key, default fingerprint).
      body: () => readBody(req, res),
      context: req,
    });
    if (decision.action === "pass") return true;
    if (decision.action === "respond") {
      const takeOver = decision.replayed ? undefined : onError && (() => onError(decision, req, res));
      await answer(res, decision.response, takeOver);
      return false;
    }
    const { ticket } = decision;
    // A throw, or a response the route destroys before its end, releases the key. A client that
    // leaves an answer the route began only stops the lease's renewal: the route's later end is
    // recorded (the retry a replay), or the key lapses within `lockTtlMs` if none comes.
    const abort = () => engine.abort(ticket);
    onThrow(req, abort);
    holdResponse(
      res,
      async (body, headers, tooLarge) => {
        await engine.finish(ticket, { status: res.statusCode, headers, body, tooLarge });
      },
      abort,
      () => engine.cutOff(ticket),
      recordLimit,
    );
    return true;
  }

  const passed = Symbol("@interlock/express.idempotency.passed");
  return function interlockIdempotency(req, res, next) {
    if (passedBefore(req, res, passed)) return next();
    begin(req, res).then((run) => run && next(), next);
  };
}
