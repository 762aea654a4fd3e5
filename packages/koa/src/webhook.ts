/**
 * `webhook(options)`: verifies and de-duplicates a delivery on its raw bytes, exposes it as
 * `ctx.state.webhook`, and reports the handler's outcome to core's receiver. Every decision
 * (refusal, duplicate, in flight, store down) is core's; this file only translates.
 */

import {
  assertOptionNames,
  createWebhookReceiver,
  optionNames,
  passedBefore,
  problemResponse,
  WEBHOOK_RECEIVER_OPTION_NAMES,
  type WebhookErrorDecision,
  WebhookPayloadError,
  type WebhookReceiverOptions,
} from "@interlock/core";
import type { Context, Middleware, Next } from "koa";
import { readRawBody } from "./raw-body.js";
import { answer, guardDestroy, isStreamed, settleWhenSent, watchEnd, writeResponse } from "./response.js";
import type { RawBodyContext, WebhookState } from "./types.js";
import { routeReturned, streamedUnsent, type UnsentAnswer, watchAround } from "./unsent.js";

export interface WebhookMiddlewareOptions extends WebhookReceiverOptions {
  /**
   * Takes over the answer to an error when the handler will not run: a rejected delivery (400,
   * 401), a body error (413, 400 `body_incomplete`, 415, 500 `body_not_raw`), a copy still in
   * flight (409) or the store unavailable (503). `decision.outcome` says which,
   * `decision.error` is the typed error, `decision.response` is Interlock's answer. Set
   * `ctx.status`/`ctx.body` to answer yourself; leave both alone to let Interlock's answer go
   * out; throw to use Koa's error handling. A duplicate is not an error: it always gets
   * Interlock's 200. Nor is a `WebhookPayloadError` the handler lets through: the handler saw
   * that delivery, and may catch the error to answer its own way.
   */
  onError?: (decision: WebhookErrorDecision, ctx: Context) => void | Promise<void>;
}

/** The options this adapter takes beyond core's. */
const OWN_OPTION_NAMES = optionNames<Omit<WebhookMiddlewareOptions, keyof WebhookReceiverOptions>>({ onError: true });

/**
 * Middleware that verifies and de-duplicates a delivery on its raw bytes, with the verified
 * event on `ctx.state.webhook`: a 2xx answer records it, anything else (or a throw) releases it.
 */
export function webhook<T = unknown>(options: WebhookMiddlewareOptions): Middleware<WebhookState<T>, RawBodyContext> {
  assertOptionNames("webhook()", options, WEBHOOK_RECEIVER_OPTION_NAMES, OWN_OPTION_NAMES);
  const { onError, ...receiverOptions } = options;
  const receiver = createWebhookReceiver(receiverOptions);
  const limit = receiver.verifier.maxBodyBytes;

  const passed = Symbol("@interlock/koa.webhook.passed");

  async function interlockWebhook(ctx: Context, next: Next): Promise<void> {
    if (passedBefore(ctx, passed)) return next();
    // Read only once the headers pass: a delivery they refuse is answered unread. A parser's
    // decoded text is not the signed bytes: refused, never verified into a wrong 401.
    const decision = await receiver.begin(ctx.headers, () => readRawBody(ctx, limit, "webhook"));
    if (decision.action === "respond") {
      // A duplicate is not an error: it goes out as core's 200, as idempotency's replays go out as stored.
      const takeOver = decision.outcome === "duplicate" ? undefined : onError && (() => onError(decision, ctx));
      return answer(ctx, decision.response, takeOver);
    }
    ctx.state.webhook = decision.event;
    // A response the app destroys before its end (`ctx.res.destroy()`) is a failed handler, as a
    // throw: watched from now on, as the handler may destroy it before it returns.
    const destroy = guardDestroy(ctx.res);
    let unsent: UnsentAnswer | undefined;
    watchAround(ctx);
    try {
      try {
        await next();
      } finally {
        unsent = routeReturned(ctx);
      }
    } catch (error) {
      if (answeredPayloadError(ctx, error)) {
        // Answered 400 here, before the app's error handling makes it a 500 that the provider
        // retries as the server's failure: released as any answer outside 2xx is.
        await receiver.finish(decision.ticket, { status: ctx.status });
        return;
      }
      // Released before Koa answers the error, so the provider's retry is processed.
      await receiver.abort(decision.ticket);
      throw error;
    }
    if (destroy.failed) {
      await receiver.abort(decision.ticket);
      return;
    }
    // A layer around the route answered the provider first (a timeout): the answer the route gave
    // then, which Koa dropped, says how its work ended (see unsent.ts). A body Koa would have
    // streamed says nothing of that: released, as any answer outside 2xx.
    if (unsent !== undefined) {
      const status = unsent.answeredStatus();
      if (status === undefined || streamedUnsent(unsent)) await receiver.abort(decision.ticket);
      else await receiver.finish(decision.ticket, { status });
      return;
    }
    // A streamed body is sent once every middleware has returned, and the work behind it may
    // still be running: the delivery stays claimed (a copy meanwhile is in flight) until the body
    // has been sent whole, then is settled by the status sent; released if it failed or was cut off.
    if (ctx.respond !== false && isStreamed(ctx.body)) {
      const { ticket } = decision;
      const res = ctx.res;
      settleWhenSent(res, ctx.body, (sent) =>
        sent ? receiver.finish(ticket, { status: res.statusCode }) : receiver.abort(ticket),
      );
      return;
    }
    // The status the app actually answered: 2xx records the delivery, anything else releases it.
    // An app that bypassed Koa (`ctx.respond = false`) answered through `ctx.res`: its status once
    // it has ended it (Koa's `ctx.status` is still its default 404 when `next()` returns), and
    // none when the response closed before that end, cut off (released once the handler ends it;
    // renewed no more from the close, so a delivery whose handler never ends it lapses within
    // `lockTtlMs`), or when the app destroys it before its end (released at once).
    const status = ctx.respond === false ? await watchEnd(ctx.res, () => receiver.cutOff(decision.ticket)) : ctx.status;
    if (status === undefined) await receiver.abort(decision.ticket);
    else await receiver.finish(decision.ticket, { status });
  }
  return interlockWebhook as Middleware<WebhookState<T>, RawBodyContext>;
}

/**
 * Answers a `WebhookPayloadError` the handler let through (it read `payload`, and the signed body
 * is not what the scheme decodes: the sender's mistake) as problem+json, as the adapter answers
 * its other refusals, unless the answer has begun: then, as Koa does with any error after its
 * headers, it goes on as a throw. Koa answers an error whatever `ctx.respond` says, and so does
 * this: a handler that meant to answer through `ctx.res` itself has sent nothing yet. The
 * headers set for the answer the handler did not give go, as Koa's own error answer clears them.
 * Returns whether it answered.
 */
function answeredPayloadError(ctx: Context, error: unknown): boolean {
  if (!(error instanceof WebhookPayloadError) || ctx.headerSent || !ctx.writable) return false;
  for (const name of ctx.res.getHeaderNames()) ctx.res.removeHeader(name);
  ctx.respond = true;
  writeResponse(ctx, problemResponse(error));
  return true;
}
