/**
 * `idempotency(options)`: core's engine around a Koa handler. `begin` decides (reading the
 * body only if the fingerprint needs it); on `execute` the handler runs and what it left on
 * `ctx` is captured for `finish`; a throw is `abort`.
 */

import {
  BodyError,
  createIdempotency,
  type IdempotencyDecision,
  type IdempotencyOptions,
  type IdempotencyRequest,
} from "@interlock/core";
import type { Context, Middleware, Next } from "koa";
import { bodyLimitOption, notRawMessage, tooLargeMessage } from "./errors.js";
import { readRawBody } from "./raw-body.js";
import { answer, captureResponse, writeResponse } from "./response.js";

/** The request as `principal`, `fingerprint` and `required` see it: `context` is Koa's `ctx`. */
export interface KoaIdempotencyRequest extends IdempotencyRequest {
  context: Context;
}

/** Core's answer when the handler must not run: a replay, or a refusal (with `error`). */
export type IdempotencyRespondDecision = Extract<IdempotencyDecision, { action: "respond" }>;

export interface IdempotencyMiddlewareOptions
  extends Omit<IdempotencyOptions, "principal" | "fingerprint" | "required"> {
  /** Who is calling, e.g. `(request) => request.context.state.user?.id`; `false` for one shared key space. */
  principal?: ((request: KoaIdempotencyRequest) => string | undefined | Promise<string | undefined>) | false;
  /** Replaces the default fingerprint (method, path and raw body; `await request.body()` reads the bytes). */
  fingerprint?: (request: KoaIdempotencyRequest) => string | Promise<string>;
  /** Refuse covered requests without a key (400). Default false. */
  required?: boolean | ((request: KoaIdempotencyRequest) => boolean);
  /** The route part of a key's scope. Default: `ctx._matchedRoute` (@koa/router), else `ctx.path`. */
  route?: (ctx: Context) => string;
  /** Largest body read, in bytes; a longer one is answered 413 `body_too_large`. Default 1 MiB. */
  bodyLimit?: number;
  /**
   * Takes over the answer to a refusal (400, 409, 413, 422, 500, 503; replays always go out as
   * stored): `decision.error` is the typed error, `decision.response` Interlock's answer. Set
   * `ctx.status`/`ctx.body` to answer yourself; leave both alone to let Interlock's go out.
   */
  onError?: (decision: IdempotencyRespondDecision, ctx: Context) => void | Promise<void>;
}

/** As @koa/bodyparser's JSON limit. */
export const DEFAULT_IDEMPOTENCY_BODY_LIMIT = 1024 * 1024;

/**
 * Typed as plain middleware: `ctx.request.rawBody` is set only on the requests it read (see
 * `RawBodyRequest`), so it promises nothing to the handler's types.
 */
export function idempotency(options: IdempotencyMiddlewareOptions): Middleware {
  const { route = matchedRoute, bodyLimit, onError, ...engineOptions } = options;
  const limit = bodyLimitOption(bodyLimit, DEFAULT_IDEMPOTENCY_BODY_LIMIT);
  // Every request the engine sees carries `context`, so the Koa-typed functions are safe here.
  const engine = createIdempotency(engineOptions as IdempotencyOptions);

  /** The bytes to fingerprint, read on the engine's demand: a request it passes through is left unread. */
  async function bodyOf(ctx: Context): Promise<Buffer | string> {
    const read = await readRawBody(ctx, limit);
    if (read.kind === "read") return read.body;
    if (read.kind === "too_large") throw new BodyError("body_too_large", tooLargeMessage(limit));
    // A parser that kept the text it decoded: the same request gives the same text, enough to fingerprint.
    if (read.text !== undefined) return read.text;
    throw new BodyError("body_not_raw", notRawMessage("idempotency"));
  }

  function translate(ctx: Context): KoaIdempotencyRequest {
    return {
      method: ctx.method,
      route: route(ctx),
      path: ctx.originalUrl,
      headers: ctx.headers,
      body: () => bodyOf(ctx),
      context: ctx,
    };
  }

  async function interlockIdempotency(ctx: Context, next: Next): Promise<void> {
    const decision = await engine.begin(translate(ctx));
    if (decision.action === "pass") return next();
    if (decision.action === "respond") {
      if (decision.replayed) return writeResponse(ctx, decision.response);
      return answer(ctx, decision.response, onError && (() => onError(decision, ctx)));
    }
    let captured: ReturnType<typeof captureResponse>;
    try {
      await next();
      captured = captureResponse(ctx);
    } catch (error) {
      await engine.abort(decision.ticket);
      throw error;
    }
    // Recorded before Koa sends the response: a client that got it and retries is replayed.
    await engine.finish(decision.ticket, captured);
  }
  return interlockIdempotency;
}

/** The route pattern @koa/router matched, when the middleware runs inside a route. */
function matchedRoute(ctx: Context): string {
  const matched: unknown = ctx._matchedRoute;
  return matched === undefined || matched === null ? ctx.path : String(matched);
}
