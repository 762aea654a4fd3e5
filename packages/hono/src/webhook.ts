/**
 * Verified, de-duplicated webhooks on a Hono route. The middleware reads the raw bytes,
 * asks core's receiver (`begin`), runs the route only for the first valid copy, and reports
 * how it answered (`finish`) or that it threw (`abort`). Every decision is core's.
 */
import {
  assertOptionNames,
  createWebhookReceiver,
  optionNames,
  passedBefore,
  problemResponse,
  settleResponseAtEnd,
  type VerifiedWebhook,
  WEBHOOK_RECEIVER_OPTION_NAMES,
  type WebhookErrorDecision,
  WebhookPayloadError,
  type WebhookReceiver,
  type WebhookReceiverOptions,
  type WebhookRespondDecision,
  type WebhookTicket,
} from "@interlock/core";
import type { Context, MiddlewareHandler, Next } from "hono";
import { createMiddleware } from "hono/factory";
import { readBody } from "./body.js";
import { builtOnFirstUse, type OptionsOrFactory } from "./options.js";
import { answerByApp, replaceErrorAnswer, send } from "./respond.js";
import { givenBody, raisedAroundRoute, readAheadWhenReplaced, type Written, watchBodies } from "./written.js";

/** What `webhook()` puts on the context: `c.get("webhook")` / `c.var.webhook`. */
export interface WebhookVariables<T = unknown> {
  /** The verified delivery. */
  webhook: VerifiedWebhook<T>;
}

export interface WebhookMiddlewareOptions extends WebhookReceiverOptions {
  /**
   * Takes over the answer to an error, for a delivery the route will not see: a rejected
   * delivery (400, 401), a body error (413, 400 `body_incomplete`, 415, 500 `body_not_raw`), a
   * copy still in flight (409) or the store unavailable (503). `decision.response` is what
   * Interlock would send; return your own `Response`, or nothing to send Interlock's. A
   * duplicate is not an error: it always gets Interlock's 200.
   */
  onError?: (decision: WebhookErrorDecision, c: Context) => Response | undefined | Promise<Response | undefined>;
}

/** The environment `webhook()` gives its route: the verified delivery at `c.get("webhook")`. */
export interface WebhookEnv<T = unknown> {
  /** What the middleware sets on the context. */
  Variables: WebhookVariables<T>;
}

/** The options this adapter takes beyond core's. */
const OWN_OPTION_NAMES = optionNames<Omit<WebhookMiddlewareOptions, keyof WebhookReceiverOptions>>({ onError: true });

/**
 * Middleware that verifies and de-duplicates a delivery on its raw bytes, with the verified
 * event at `c.get("webhook")`: a 2xx from the route records it, anything else releases it.
 * `options` may be a function of the first request's context (`(c) => ({ secret:
 * c.env.STRIPE_WEBHOOK_SECRET, … })` on Workers): the middleware is then made once, from it.
 */
export function webhook<T = unknown, F extends WebhookMiddlewareOptions = WebhookMiddlewareOptions>(
  options: OptionsOrFactory<WebhookMiddlewareOptions, F>,
): MiddlewareHandler<WebhookEnv<T>> {
  return builtOnFirstUse<WebhookMiddlewareOptions, WebhookEnv<T>>(options, (given) => webhookMiddleware<T>(given));
}

function webhookMiddleware<T>(options: WebhookMiddlewareOptions): MiddlewareHandler<WebhookEnv<T>> {
  assertOptionNames("webhook()", options, WEBHOOK_RECEIVER_OPTION_NAMES, OWN_OPTION_NAMES);
  const { onError, ...receiverOptions } = options;
  const receiver = createWebhookReceiver(receiverOptions);
  // A signature is over bytes: text a parser decoded is refused, never verified into a wrong 401.
  const read = { limit: receiver.verifier.maxBodyBytes, acceptText: false, decode: false };

  // A duplicate is not an error: it goes out as core's 200, as idempotency's replays go out as stored.
  // Sent at once unless the app's `onError` may take it: a middleware that returns a promise
  // settles a tick later than one that returns the answer.
  const answer = (c: Context, decision: WebhookRespondDecision) =>
    decision.outcome === "duplicate" || onError === undefined
      ? send(c, decision.response)
      : answerByApp(c, decision, onError);

  const passed = Symbol("@interlock/hono.webhook.passed");

  return createMiddleware<WebhookEnv<T>>(async (c, next) => {
    if (passedBefore(c, passed)) return next();
    // Read only once the headers pass: a delivery they refuse is answered unread.
    const decision = await receiver.begin(c.req.raw.headers, () => readBody(c, read));
    if (decision.action === "respond") return answer(c, decision);
    c.set("webhook", decision.event as VerifiedWebhook<T>);
    await handle(receiver, decision.ticket, c, next);
  });
}

/**
 * Runs the route and settles the delivery. Hono catches a route's throw itself (its `onError`
 * has already answered when `next()` returns) and records it on `c.error`. A context nothing
 * answered is a failure too: Hono answers it 500 ("Context is not finalized"), and `c.res` would
 * only be the empty 200 its getter makes up.
 *
 * The answer's body is the route's work too when it is a stream (`stream()`, `streamSSE()`, one
 * it built: written after the route returned): the delivery is settled once it is over, its end
 * held until then (`settleAtEnd`). One that fails, or that the provider stops reading, releases
 * the delivery for the provider's retry, never recorded as processed. A body handed to the
 * context in one piece (`c.json`, `c.text`, bytes) is settled now, the answer untouched: reading
 * it back would cost more than the verification on @hono/node-server.
 */
async function handle(receiver: WebhookReceiver, ticket: WebhookTicket, c: Context, next: Next): Promise<unknown> {
  const watch = watchBodies(c);
  try {
    await next();
  } catch (error) {
    // Rethrown by the app's `onError`: answered here all the same, never left to the host's 500.
    if (error instanceof WebhookPayloadError) return answerUndecodable(receiver, ticket, c, error);
    await receiver.abort(ticket);
    throw error;
  }
  // An error raised around the route (a timeout mounted before ours answered the provider) is
  // not the route's: the answer the route then gave, never sent, says how its work ended.
  const unsent = raisedAroundRoute(c, watch.written);
  if (unsent) return settleUnsent(receiver, ticket, unsent);
  // (`c.error` first: a custom `instanceof` is asked of nothing on the way of every delivery.)
  if (c.error && c.error instanceof WebhookPayloadError) return answerUndecodable(receiver, ticket, c, c.error);
  if (c.error || !c.finalized) return receiver.abort(ticket);
  const response = c.res;
  const { status } = response; // only `status` read first: the lightweight Response stays light
  const { written } = watch;
  if (written !== undefined && written.response === response && givenBody(written.data) !== undefined)
    return receiver.finish(ticket, { status });
  // Hono drops a HEAD answer's body unread.
  const settled = await settleResponseAtEnd(
    response,
    (ended) => (ended ? receiver.finish(ticket, { status }) : receiver.abort(ticket)),
    receiver.verifier.maxBodyBytes,
    c.req.method === "HEAD",
  );
  if (settled.response === response) return;
  c.res = undefined; // cleared first: Hono's setter would otherwise copy the spent response's headers again
  c.res = settled.response;
  const { pending } = settled;
  if (pending !== undefined) readAheadWhenReplaced(c, pending.stream, pending.readAhead);
}

/**
 * A payload the route read that its scheme cannot decode is the sender's mistake, not the
 * server's failure: the answer the app's `onError` gave that throw (Hono's default: 500), if any,
 * is replaced by its 400 problem+json, and the delivery released, as for any answer outside 2xx.
 */
async function answerUndecodable(
  receiver: WebhookReceiver,
  ticket: WebhookTicket,
  c: Context,
  error: WebhookPayloadError,
): Promise<void> {
  await receiver.finish(ticket, { status: error.status });
  replaceErrorAnswer(c, problemResponse(error));
}

/**
 * Settles a delivery by the answer the route gave the context after a layer around it answered
 * the provider (see `raisedAroundRoute`): a 2xx whose body was given in one piece records it; a
 * stream nobody will read says nothing of its work's end, and releases it, as any other status.
 */
async function settleUnsent(receiver: WebhookReceiver, ticket: WebhookTicket, written: Written): Promise<unknown> {
  const response = await written.response;
  if (givenBody(written.data) !== undefined) return receiver.finish(ticket, { status: response.status });
  await response.body?.cancel().catch(() => {});
  return receiver.abort(ticket);
}
