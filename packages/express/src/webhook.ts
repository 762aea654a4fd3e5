/**
 * `webhook(options)`: verifies and de-duplicates a delivery on its raw bytes, then runs the
 * route with the verified event on `req.webhook`. Every decision is core's receiver's; this
 * file only finds the bytes, writes core's answers, and reports the status the app answered.
 */

import type { IncomingMessage } from "node:http";
import {
  announcesBody,
  assertOptionNames,
  BodyError,
  createWebhookReceiver,
  optionNames,
  WEBHOOK_RECEIVER_OPTION_NAMES,
  type WebhookErrorDecision,
  type WebhookReceiverOptions,
} from "@interlock/core";
import type { Request, RequestHandler, Response } from "express";
import { holdResponse } from "./hold.js";
import { passedBefore } from "./once.js";
import { RAW_BODY_HOST_ADVICE, rawBodyOf, readRawBodyHandedOn, streamConsumed } from "./raw-body.js";
import { onThrow } from "./release.js";
import { answer } from "./respond.js";

export interface WebhookMiddlewareOptions extends WebhookReceiverOptions {
  /**
   * Takes over the answer to an error when the route will not run: a rejected delivery (400,
   * 401), a body error (413, 400 `body_incomplete`, 415, 500 `body_not_raw`), a copy still in
   * flight (409) or the store unavailable (503). `decision.error` is the typed error and
   * `decision.response` the problem+json Interlock would send; send your own with `res`, or
   * return without responding to let it go out. A duplicate is not an error: it always gets
   * Interlock's 200. Throwing passes the error to `next`.
   */
  onError?: (decision: WebhookErrorDecision, req: Request, res: Response) => void | Promise<void>;
}

const NOT_RAW_ADVICE =
  "a body parser read the request before webhook() ran, so the signed bytes are gone: mount the webhook " +
  "route before express.json(), or keep the bytes with express.json({ verify: captureRawBody })" +
  RAW_BODY_HOST_ADVICE;

/**
 * The raw bytes of the delivery, or core's error when they are too many or already gone. Read
 * from the stream, they are handed on in it, as `idempotency()` hands on a body it reads raw: a
 * parser after `webhook()` parses the verified bytes, and a route that reads the request reads them.
 */
async function deliveryBody(req: IncomingMessage, limit: number): Promise<Uint8Array | BodyError> {
  const known = rawBodyOf(req);
  // Bytes a parser or the host already holds are bounded as the ones read here are.
  if (known !== undefined) return known.byteLength > limit ? BodyError.tooLarge(limit) : known;
  // Nothing announced, nothing lost, even when a parser read the empty stream (body-parser reads `Content-Length: 0`).
  if (!announcesBody(req)) return new Uint8Array();
  if (streamConsumed(req)) return new BodyError("body_not_raw", NOT_RAW_ADVICE);
  return readRawBodyHandedOn(req, limit);
}

/** The options this adapter takes beyond core's. */
const OWN_OPTION_NAMES = optionNames<Omit<WebhookMiddlewareOptions, keyof WebhookReceiverOptions>>({ onError: true });

/**
 * Middleware that verifies and de-duplicates a delivery on its raw bytes, then runs the route
 * with the verified event on `req.webhook`: a 2xx records it, anything else releases it.
 */
export function webhook(options: WebhookMiddlewareOptions): RequestHandler {
  assertOptionNames("webhook()", options, WEBHOOK_RECEIVER_OPTION_NAMES, OWN_OPTION_NAMES);
  const { onError, ...receiverOptions } = options;
  const receiver = createWebhookReceiver(receiverOptions);
  const limit = receiver.verifier.maxBodyBytes;

  /** Resolves true when the route should run. */
  async function begin(req: Request, res: Response): Promise<boolean> {
    // The body is read only once the headers pass: a delivery they refuse is answered unread.
    const decision = await receiver.begin(req.headers, () => deliveryBody(req, limit));
    if (decision.action === "respond") {
      // A duplicate is not an error: it goes out as core's 200, as idempotency's replays go out as stored.
      const takeOver = decision.outcome === "duplicate" ? undefined : onError && (() => onError(decision, req, res));
      await answer(res, decision.response, takeOver);
      return false;
    }
    req.webhook = decision.event;
    const { ticket } = decision;
    // A throw, or a response the route destroys before its end (its answer failed mid-way),
    // releases the delivery for the provider's retry.
    const abort = () => receiver.abort(ticket);
    onThrow(req, abort);
    // The status the route answered: 2xx records the delivery, anything else releases it. A
    // piped answer the provider closed before its end was never answered in full: its status
    // (200 until the route sets another) says nothing of the work, which may yet fail, so the
    // delivery is released for the provider's retry rather than recorded as processed. One the
    // route wrote and the provider closed before its end only stops the lease's renewal: the
    // route's later end settles it by its status, or the delivery lapses within `lockTtlMs`.
    holdResponse(
      res,
      (_body, _headers, _tooLarge, cutOff) =>
        cutOff ? receiver.abort(ticket) : receiver.finish(ticket, { status: res.statusCode }),
      abort,
      () => receiver.cutOff(ticket),
    );
    return true;
  }

  const passed = Symbol("@interlock/express.webhook.passed");
  return function interlockWebhook(req, res, next) {
    if (passedBefore(req, res, passed)) return next();
    begin(req, res).then((run) => run && next(), next);
  };
}
