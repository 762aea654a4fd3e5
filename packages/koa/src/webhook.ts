/**
 * `webhook(options)`: verifies and de-duplicates a delivery on its raw bytes, exposes it as
 * `ctx.state.webhook`, and reports the handler's outcome to core's receiver. Every decision
 * (refusal, duplicate, in flight, store down) is core's; this file only translates.
 */

import {
  createWebhookReceiver,
  problemResponse,
  type WebhookDecision,
  type WebhookReceiverOptions,
  WebhookVerificationError,
} from "@interlock/core";
import type { Context, Middleware, Next } from "koa";
import { bodyLimitOption, notRawMessage, tooLargeMessage } from "./errors.js";
import { readRawBody } from "./raw-body.js";
import { answer } from "./response.js";
import type { RawBodyContext, WebhookState } from "./types.js";

/** Core's answer when the handler must not run: a refusal, a duplicate, an in-flight copy or a store outage. */
export type WebhookRespondDecision = Extract<WebhookDecision, { action: "respond" }>;

export interface WebhookOptions extends WebhookReceiverOptions {
  /**
   * Largest body read, in bytes; a longer one is answered 413 `body_too_large` without being
   * buffered. Default: the verifier's `maxBodyBytes` (25 MiB unless set).
   */
  bodyLimit?: number;
  /**
   * Takes over the answer when the handler will not run: `decision.outcome` says why,
   * `decision.error` is the typed error, `decision.response` is Interlock's answer. Set
   * `ctx.status`/`ctx.body` to answer yourself; leave both alone to let Interlock's answer go
   * out; throw to use Koa's error handling.
   */
  onError?: (decision: WebhookRespondDecision, ctx: Context) => void | Promise<void>;
}

export function webhook<T = unknown>(options: WebhookOptions): Middleware<WebhookState<T>, RawBodyContext> {
  const { bodyLimit, onError, ...receiverOptions } = options;
  const receiver = createWebhookReceiver(receiverOptions);
  const limit = bodyLimitOption(bodyLimit, receiver.verifier.maxBodyBytes);
  const scheme = options.scheme.name;

  async function decide(ctx: Context): Promise<WebhookDecision> {
    const read = await readRawBody(ctx, limit);
    if (read.kind === "read") return receiver.begin(ctx.headers, read.body);
    // A parser's decoded text is not the signed bytes: refused, never verified into a wrong 401.
    if (read.kind === "consumed")
      return refused(new WebhookVerificationError("body_not_raw", notRawMessage("webhook"), scheme));
    return refused(new WebhookVerificationError("body_too_large", tooLargeMessage(limit), scheme));
  }

  async function interlockWebhook(ctx: Context, next: Next): Promise<void> {
    const decision = await decide(ctx);
    if (decision.action === "respond") {
      return answer(ctx, decision.response, onError && (() => onError(decision, ctx)));
    }
    ctx.state.webhook = decision.event;
    try {
      await next();
    } catch (error) {
      // Released before Koa answers the error, so the provider's retry is processed.
      await receiver.abort(decision.ticket);
      throw error;
    }
    // The status the app actually answered: 2xx records the delivery, anything else releases it.
    await receiver.finish(decision.ticket, { status: ctx.status });
  }
  return interlockWebhook as Middleware<WebhookState<T>, RawBodyContext>;
}

/** A refusal this adapter makes itself, shaped like the receiver's own. */
function refused(error: WebhookVerificationError): WebhookRespondDecision {
  return { action: "respond", outcome: "refused", response: problemResponse(error), event: undefined, error };
}
