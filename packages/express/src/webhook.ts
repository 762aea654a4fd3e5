/**
 * `webhook(options)`: verifies and de-duplicates a delivery on its raw bytes, then runs the
 * route with the verified event on `req.webhook`. Every decision is core's receiver's; this
 * file only finds the bytes, writes core's answers, and reports the status the app answered.
 */

import type { IncomingMessage } from "node:http";
import {
  createWebhookReceiver,
  DEFAULT_MAX_BODY_BYTES,
  problemResponse,
  type WebhookReceiver,
  type WebhookReceiverOptions,
  WebhookVerificationError,
} from "@interlock/core";
import type { Request, RequestHandler, Response } from "express";
import { holdResponse } from "./hold.js";
import { hasBody, rawBodyOf, readRawBody, streamConsumed, TOO_LARGE } from "./raw-body.js";
import { answer } from "./respond.js";

/** Core's answer when the route must not run: a refusal, a duplicate, an in-flight copy or a store outage. */
export type WebhookRespondDecision = Extract<Awaited<ReturnType<WebhookReceiver["begin"]>>, { action: "respond" }>;

export interface WebhookOptions extends WebhookReceiverOptions {
  /**
   * Takes over the answer when the route will not run. `decision.response` is what Interlock
   * would send (problem+json for errors, 200 for a duplicate); send your own with `res`, or
   * return without responding to let it go out. Throwing passes the error to `next`.
   * `maxBodyBytes` (core's option, default 25 MiB) also bounds the raw body read here: past it
   * the request is answered 413 `body_too_large` without buffering the rest.
   */
  onError?: (decision: WebhookRespondDecision, req: Request, res: Response) => void | Promise<void>;
}

const NOT_RAW_ADVICE =
  "a body parser read the request before webhook() ran, so the signed bytes are gone: mount the webhook " +
  "route before express.json(), or keep the bytes with express.json({ verify: captureRawBody })";

/** A refusal this adapter makes itself, shaped like the receiver's own. */
function refused(error: WebhookVerificationError): WebhookRespondDecision {
  return { action: "respond", outcome: "refused", response: problemResponse(error), event: undefined, error };
}

/** The raw bytes of the delivery, or the refusal when they are too many or already gone. */
async function deliveryBody(
  req: IncomingMessage,
  limit: number,
  scheme: string,
): Promise<Uint8Array | WebhookRespondDecision> {
  const known = rawBodyOf(req);
  if (known !== undefined) return known;
  if (streamConsumed(req)) return refused(new WebhookVerificationError("body_not_raw", NOT_RAW_ADVICE, scheme));
  if (!hasBody(req)) return new Uint8Array();
  const body = await readRawBody(req, limit);
  if (body !== TOO_LARGE) return body;
  return refused(new WebhookVerificationError("body_too_large", `body exceeds ${limit} bytes`, scheme));
}

export function webhook(options: WebhookOptions): RequestHandler {
  const { onError, ...receiverOptions } = options;
  const receiver = createWebhookReceiver(receiverOptions);
  const limit = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const scheme = options.scheme.name;

  /** Resolves true when the route should run. */
  async function begin(req: Request, res: Response): Promise<boolean> {
    const body = await deliveryBody(req, limit, scheme);
    const decision = body instanceof Uint8Array ? await receiver.begin(req.headers, body) : body;
    if (decision.action === "respond") {
      await answer(res, decision.response, onError && (() => onError(decision, req, res)));
      return false;
    }
    req.webhook = decision.event;
    // A thrown route reaches the app's error handler, whose non-2xx answer releases the delivery.
    holdResponse(res, () => receiver.finish(decision.ticket, { status: res.statusCode }));
    return true;
  }

  return function interlockWebhook(req, res, next) {
    begin(req, res).then((run) => run && next(), next);
  };
}
