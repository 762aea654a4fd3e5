/**
 * Verified, de-duplicated webhooks on a Hono route. The middleware reads the raw bytes,
 * asks core's receiver (`begin`), runs the route only for the first valid copy, and reports
 * how it answered (`finish`) or that it threw (`abort`). Every decision is core's.
 */
import {
  type BodyErrorCode,
  createWebhookReceiver,
  problemResponse,
  type VerifiedWebhook,
  type WebhookDecision,
  type WebhookReceiver,
  type WebhookReceiverOptions,
  type WebhookTicket,
  WebhookVerificationError,
} from "@interlock/core";
import type { Context, MiddlewareHandler, Next } from "hono";
import { createMiddleware } from "hono/factory";
import { limitOption, readBody } from "./body.js";
import { send } from "./respond.js";

/** A delivery the route will not see: refused, a duplicate, in flight elsewhere, or the store is down. */
export type WebhookRespondDecision = Extract<WebhookDecision, { action: "respond" }>;

/** What `webhook()` puts on the context: `c.get("webhook")` / `c.var.webhook`. */
export interface WebhookVariables<T = unknown> {
  webhook: VerifiedWebhook<T>;
}

export interface WebhookOptions extends WebhookReceiverOptions {
  /**
   * Largest raw body read, in bytes: a larger delivery is answered 413 `body_too_large`
   * without being buffered. Default: the verifier's `maxBodyBytes` (25 MiB).
   */
  bodyLimit?: number;
  /**
   * Takes over the answer for a delivery the route will not see. `decision.response` is what
   * Interlock would send; return your own `Response`, or nothing to send Interlock's.
   */
  onError?: (decision: WebhookRespondDecision, c: Context) => Response | undefined | Promise<Response | undefined>;
}

export function webhook<T = unknown>(options: WebhookOptions): MiddlewareHandler<{ Variables: WebhookVariables<T> }> {
  const { bodyLimit, onError, ...receiverOptions } = options;
  const receiver = createWebhookReceiver(receiverOptions);
  const scheme = options.scheme.name;
  const read = {
    limit: limitOption(bodyLimit, receiver.verifier.maxBodyBytes),
    acceptText: false,
    fail: (code: BodyErrorCode, message: string) => new WebhookVerificationError(code, message, scheme),
  };

  const answer = async (c: Context, decision: WebhookRespondDecision) =>
    (onError && (await onError(decision, c))) || send(c, decision.response);

  return createMiddleware<{ Variables: WebhookVariables<T> }>(async (c, next) => {
    const body = await readBody(c, read);
    if (body instanceof WebhookVerificationError) return answer(c, refusal(body));
    const decision = await receiver.begin(c.req.raw.headers, body);
    if (decision.action === "respond") return answer(c, decision);
    c.set("webhook", decision.event as VerifiedWebhook<T>);
    await handle(receiver, decision.ticket, c, next);
  });
}

/** A refusal found while reading the body (too large, not raw), shaped like core's own. */
function refusal(error: WebhookVerificationError): WebhookRespondDecision {
  return { action: "respond", outcome: "refused", response: problemResponse(error), event: undefined, error };
}

/**
 * Runs the route and settles the delivery. Hono catches a route's throw itself (its
 * `onError` has already answered when `next()` returns) and records it on `c.error`.
 */
async function handle(receiver: WebhookReceiver, ticket: WebhookTicket, c: Context, next: Next): Promise<void> {
  try {
    await next();
  } catch (error) {
    await receiver.abort(ticket);
    throw error;
  }
  if (c.error) await receiver.abort(ticket);
  else await receiver.finish(ticket, { status: c.res.status });
}
