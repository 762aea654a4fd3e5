/**
 * Verified, de-duplicated webhooks on a fetch-style handler. The wrapper reads the raw bytes,
 * asks core's receiver (`begin`), runs the handler only for the first valid copy, and reports
 * how it answered (`finish`) or that it threw (`abort`). Every decision is core's.
 */
import {
  assertOptionNames,
  createWebhookReceiver,
  optionNames,
  problemResponse,
  settleResponseAtEnd,
  type VerifiedWebhook,
  WEBHOOK_RECEIVER_OPTION_NAMES,
  type WebhookErrorDecision,
  WebhookPayloadError,
  type WebhookReceiverOptions,
  type WebhookRespondDecision,
} from "@interlock/core";
import { handOver, readRequestBody } from "./body.js";
import { builtOnFirstUse, type OptionsOrFactory } from "./options.js";
import { RequestBodyError } from "./read.js";
import { handlerResponse, toResponse } from "./respond.js";

export interface WithWebhookOptions<R extends Request = Request> extends WebhookReceiverOptions {
  /**
   * Takes over the answer to an error, for a delivery the handler will not see: a rejected
   * delivery (400, 401), a body error (413, 400 `body_incomplete`, 415, 500 `body_not_raw`), a
   * copy still in flight (409) or the store unavailable (503). `decision.response` is what
   * Interlock would send; return your own `Response`, or nothing to send Interlock's. A
   * duplicate is not an error: it always gets Interlock's 200. Nor is a `RequestBodyError` or a
   * `WebhookPayloadError` the handler threw: the handler saw that delivery, and may catch the
   * error to answer its own way.
   */
  onError?: (decision: WebhookErrorDecision, request: R) => Response | undefined | Promise<Response | undefined>;
}

/**
 * The handler `withWebhook` runs: the verified delivery (`event.payload` decoded on first use,
 * `event.body` the raw bytes), the request (`readJson` and `readBytes` on it give the verified
 * bytes, within `maxBodyBytes`, without reading them again), and whatever else the host passes
 * (Next's route context, a Worker's `env` and `ctx`, Bun's server).
 */
export type WebhookHandler<T, R extends Request, A extends unknown[]> = (
  event: VerifiedWebhook<T>,
  request: R,
  ...rest: A
) => Response | Promise<Response>;

/** The options this adapter takes beyond core's. */
const OWN_OPTION_NAMES = optionNames<Omit<WithWebhookOptions, keyof WebhookReceiverOptions>>({ onError: true });

/**
 * Wraps a fetch-style handler so that it runs once per valid delivery. A refusal (401 problem),
 * a redelivery (200 `{"duplicate":true}`), one still being processed elsewhere (409 with
 * `Retry-After`), a body too large (413) or the store down (503) is answered without it. A 2xx
 * from the handler records the delivery; any other status, or a throw, releases it for the
 * provider's retry (the throw goes on to the host, which answers 500), except a
 * `RequestBodyError` (`readJson`'s) or a `WebhookPayloadError` (`event.payload`'s, for a body
 * its scheme cannot decode), answered as problem+json with its status, as a handler's answer
 * outside 2xx (the delivery released).
 *
 * `options` may be a function of the first request (and what the host passes with it): it is
 * called once, on the first call, for settings that are not there when the module is loaded.
 */
export function withWebhook<
  T = unknown,
  R extends Request = Request,
  A extends unknown[] = [],
  F extends WithWebhookOptions<R> = WithWebhookOptions<R>,
>(
  options: OptionsOrFactory<WithWebhookOptions<R>, R, A, F>,
  handler: WebhookHandler<T, R, A>,
): (request: R, ...rest: A) => Promise<Response> {
  return builtOnFirstUse<WithWebhookOptions<R>, R, A>(options, (resolved) => webhookHandler(resolved, handler));
}

function webhookHandler<T, R extends Request, A extends unknown[]>(
  options: WithWebhookOptions<R>,
  handler: WebhookHandler<T, R, A>,
): (request: R, ...rest: A) => Promise<Response> {
  assertOptionNames("withWebhook()", options, WEBHOOK_RECEIVER_OPTION_NAMES, OWN_OPTION_NAMES);
  const { onError, ...receiverOptions } = options;
  const receiver = createWebhookReceiver(receiverOptions);
  const limit = receiver.verifier.maxBodyBytes;

  // A duplicate is not an error: it goes out as core's 200, as idempotency's replays go out as stored.
  const answer = async (request: R, decision: WebhookRespondDecision) =>
    (decision.outcome !== "duplicate" && onError && (await onError(decision, request))) ||
    toResponse(decision.response);

  return async (request, ...rest) => {
    // Read only once the headers pass: a delivery they refuse is answered unread.
    const decision = await receiver.begin(request.headers, () => readRequestBody(request, limit));
    if (decision.action === "respond") return answer(request, decision);
    // The handler's `readJson` and `readBytes` get the verified bytes (a copy: `event.body` stays
    // as verified), within `maxBodyBytes`, not read again. They are the payload: a delivery sent
    // with a `Content-Encoding` is refused before the handler.
    const { body } = decision.event;
    handOver(request, limit, { bytes: body, sent: body.byteLength }, true);
    let response: Response;
    try {
      response = handlerResponse(await handler(decision.event as VerifiedWebhook<T>, request, ...rest));
    } catch (error) {
      // A body the handler could not use (`readJson`'s, or a payload its scheme cannot decode) is
      // the sender's mistake: a 400 to answer, not a failure for the host to answer 500.
      if (!(error instanceof RequestBodyError || error instanceof WebhookPayloadError)) {
        await receiver.abort(decision.ticket);
        throw error;
      }
      // The handler's answer, in effect: outside 2xx, so released (`webhook.handler_failed` with its status).
      await receiver.finish(decision.ticket, { status: error.status });
      return toResponse(problemResponse(error));
    }
    const { ticket } = decision;
    const { status } = response;
    // Recorded before answering: a redelivery that arrives the moment the provider reads this
    // finds it done. A body still being written records it only once it ends (`settleResponseAtEnd`).
    const settled = await settleResponseAtEnd(
      response,
      (ended) => (ended ? receiver.finish(ticket, { status }) : receiver.abort(ticket)),
      limit,
    );
    // Read on as it comes, up to the limit, whoever reads the answer: a wrapper that drops it
    // unread (a framework's own 202 once it sees a 2xx) would otherwise leave the delivery in
    // flight until its lease ends. A later reader still gets every chunk.
    settled.pending?.readAhead();
    return settled.response;
  };
}
