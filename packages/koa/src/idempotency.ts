/**
 * `idempotency(options)`: core's engine around a Koa handler. `begin` decides (reading the
 * body only if the fingerprint needs it); on `execute` the handler runs and what it answered
 * is captured for `finish`; a throw is `abort`.
 */

import {
  assertOptionNames,
  bodyLimitOption,
  type CapturedResponse,
  createIdempotency,
  DEFAULT_REQUEST_BODY_LIMIT,
  IDEMPOTENCY_OPTION_NAMES,
  type IdempotencyEngine,
  type IdempotencyErrorDecision,
  type IdempotencyOptions,
  type IdempotencyRequest,
  type IdempotencyTicket,
  optionNames,
  passedBefore,
} from "@interlock/core";
import type { Context, Middleware, Next } from "koa";
import { readRawBody } from "./raw-body.js";
import { answer, captureResponse, recordBypass, settleWhenSent } from "./response.js";
import { capturedUnsent, routeReturned, type UnsentAnswer, watchAround } from "./unsent.js";

/** The request as `principal`, `fingerprint` and `required` see it: `context` is Koa's `ctx`. */
export interface KoaIdempotencyRequest extends IdempotencyRequest {
  context: Context;
}

/**
 * Core's engine options, with `principal`, `fingerprint` and `required` given Koa's `ctx` as
 * `request.context`, plus the adapter's own.
 */
export interface IdempotencyMiddlewareOptions extends IdempotencyOptions<KoaIdempotencyRequest> {
  /**
   * The route part of a key's scope, also named in events (OpenTelemetry's `http.route`): return
   * a pattern, not the path. Default: the pattern @koa/router matched (`ctx._matchedRoute`).
   * Mounted before the router, the key is scoped by `ctx.path`, and events name the route only
   * once the router has matched it (from `idempotency.completed`, `released` or `not_recorded` on).
   */
  route?: (ctx: Context) => string;
  /**
   * Largest request body read for the fingerprint, in bytes; a longer one is answered 413
   * `body_too_large`. Default `DEFAULT_REQUEST_BODY_LIMIT` (1 MiB).
   */
  bodyLimit?: number;
  /**
   * Takes over the answer to a refusal (400, 409, 413, 422, 500, 503; replays always go out as
   * stored): `decision.error` is the typed error, `decision.response` Interlock's answer. Set
   * `ctx.status`/`ctx.body` to answer yourself; leave both alone to let Interlock's go out.
   */
  onError?: (decision: IdempotencyErrorDecision, ctx: Context) => void | Promise<void>;
}

/** The options this adapter takes beyond core's. */
const OWN_OPTION_NAMES = optionNames<Omit<IdempotencyMiddlewareOptions, keyof IdempotencyOptions>>({
  route: true,
  bodyLimit: true,
  onError: true,
});

/**
 * Typed as plain middleware: `ctx.request.rawBody` is set only on the requests it read (see
 * `RawBodyRequest`), so it promises nothing to the handler's types.
 */
export function idempotency(options: IdempotencyMiddlewareOptions): Middleware {
  assertOptionNames("idempotency()", options, IDEMPOTENCY_OPTION_NAMES, OWN_OPTION_NAMES);
  const { route = defaultRoute, bodyLimit, onError, ...engineOptions } = options;
  const limit = bodyLimitOption(bodyLimit, DEFAULT_REQUEST_BODY_LIMIT);
  const engine = createIdempotency(engineOptions);
  const recordLimit = engine.options.store.maxRecordBytes;
  const readsPattern = !options.route && options.onEvent !== undefined;

  const passed = Symbol("@interlock/koa.idempotency.passed");

  async function interlockIdempotency(ctx: Context, next: Next): Promise<void> {
    if (passedBefore(ctx, passed)) return next();
    const decision = await engine.begin({
      method: ctx.method,
      route: route(ctx),
      // The app's own `route` is its pattern; the default one is read as each event is emitted:
      // mounted before the router, the pattern is known only once it has matched. No events, no
      // reader: not a closure made for every request that nothing calls.
      routePattern: readsPattern ? () => matchedPattern(ctx) : undefined,
      path: ctx.originalUrl,
      headers: ctx.headers,
      // Read on the engine's demand (a request it passes through is left unread); a `BodyError`
      // returned is its refusal (413, 400, 500).
      body: () => readRawBody(ctx, limit, "idempotency"),
      context: ctx,
    });
    if (decision.action === "pass") return next();
    if (decision.action === "respond") {
      const takeOver = decision.replayed ? undefined : onError && (() => onError(decision, ctx));
      return answer(ctx, decision.response, takeOver);
    }
    const bypass = recordBypass(ctx, recordLimit, engine, decision.ticket);
    let captured: CapturedResponse | undefined;
    let unsent: UnsentAnswer | undefined;
    watchAround(ctx);
    try {
      try {
        await next();
      } finally {
        unsent = routeReturned(ctx);
      }
      // Koa answers from ctx: captured now, recorded before Koa sends it, so a client that got
      // the response and retries is replayed. An app that wrote ctx.res itself is recorded instead.
      captured = unsent !== undefined || bypass.used(ctx) ? undefined : captureResponse(ctx);
    } catch (error) {
      bypass.stop();
      await engine.abort(decision.ticket);
      // An end the app made before it threw goes out once the key is released.
      bypass.sendHeld();
      throw error;
    }
    if (unsent !== undefined) {
      // A layer around the route answered first (a timeout); the route's own answer, which Koa
      // dropped, is what a retry is replayed, as it says how the work ended.
      bypass.stop();
      try {
        await settleUnsent(ctx, unsent, engine, decision.ticket);
      } finally {
        bypass.sendHeld();
      }
      return;
    }
    if (captured) bypass.stop();
    // A streamed body (not stored) is sent once every middleware has returned, and may still be
    // being produced: the key stays claimed (a retry meanwhile is in flight) until it has been
    // sent, failed or cut off, then is released.
    if (captured !== undefined && captured.body === undefined) {
      const streamed = captured;
      settleWhenSent(ctx.res, ctx.body, () => engine.finish(decision.ticket, streamed));
      return;
    }
    if (captured !== undefined) {
      await engine.finish(decision.ticket, captured);
      return;
    }
    // The app began its answer on ctx.res and left Koa to end it (with ctx.body): Koa does so only
    // once every middleware has returned, so it is stored then, not waited for here. An app that
    // destroyed ctx.res before its end (`undefined`) failed, as one that throws: the key is released.
    if (bypass.endedByKoa(ctx)) {
      void bypass
        .whenEnded()
        .then(
          (sent): Promise<unknown> =>
            sent === undefined ? engine.abort(decision.ticket) : engine.finish(decision.ticket, sent),
        );
      return;
    }
    const written = await bypass.recorded();
    if (written === undefined) {
      await engine.abort(decision.ticket);
      return;
    }
    // With ctx.respond = false, the app's end is held until the record is settled (stored or
    // not): a client that received the answer and retries is replayed, never told it is in flight.
    try {
      await engine.finish(decision.ticket, written);
    } finally {
      bypass.sendHeld();
    }
  }
  return interlockIdempotency;
}

/**
 * Settles the key by the answer the route gave after a layer around it had answered the client
 * (see unsent.ts): a retry is replayed what the route did, not run again. A body Koa would have
 * streamed is not stored (released, `streamed`), nor one JSON cannot serialise (released, as Koa's
 * 500 would be). An error status releases the key, as a throw does: it may be a middleware inside
 * ours mapping the route's own throw after the fact, and a retry of a failed request runs again
 * either way (as the Hono adapter settles the same case).
 */
async function settleUnsent(
  ctx: Context,
  unsent: UnsentAnswer,
  engine: Pick<IdempotencyEngine, "finish" | "abort">,
  ticket: IdempotencyTicket,
): Promise<unknown> {
  const status = unsent.answeredStatus();
  const captured = status !== undefined && status < 400 ? capturedUnsent(ctx, unsent, status) : undefined;
  return captured === undefined ? engine.abort(ticket) : engine.finish(ticket, captured);
}

/**
 * The route pattern @koa/router matched: undefined until it has matched one, and for a
 * `router.use()` layer, whose "pattern" is the regular expression of its prefix (every route of
 * the router under one name, and that name no path).
 */
function matchedPattern(ctx: Context): string | undefined {
  const matched: unknown = ctx._matchedRoute;
  if (matched === undefined || matched === null) return undefined;
  const pattern = String(matched);
  return pattern.includes("(?:") ? undefined : pattern;
}

/**
 * The path as a router reads it by default (@koa/router: case-insensitive, a trailing slash
 * optional): a variant that reaches the same route shares its scope, where its other path is a
 * 422, instead of running the route again.
 */
function routedPath(path: string): string {
  const folded = path.toLowerCase();
  return folded.length > 1 && folded.endsWith("/") ? folded.slice(0, -1) : folded;
}

const defaultRoute = (ctx: Context): string => matchedPattern(ctx) ?? routedPath(ctx.path);
