/**
 * `webhook(options)`: verification and replay de-duplication around a Fastify route, through
 * core's receiver. The raw body is captured in `preParsing` (a body of a type no parser of
 * the app takes, or one sent without Content-Type, is then taken raw: body-fallback.ts), the
 * delivery is verified and claimed in `preHandler`, and the claim is settled when the
 * handler's answer is sent (`onSend`: 2xx records it, anything else releases it; a stream once
 * it has ended, released if the response closed first; a hijacked reply as its response
 * finishes) or when it throws (`onError`, or Fastify's diagnostics channel for a hijacked reply).
 * A delivery whose payload cannot be decoded is answered 400 before the app's error handler, by
 * the error handler the plugin gives the route (route-errors.ts; `answerUnparsed` below).
 */

import {
  assertOptionNames,
  BodyError,
  createWebhookReceiver,
  optionNames,
  problemResponse,
  type VerifiedWebhook,
  WEBHOOK_RECEIVER_OPTION_NAMES,
  type WebhookErrorDecision,
  WebhookPayloadError,
  type WebhookReceiverOptions,
  type WebhookTicket,
} from "@interlock/core";
import type { FastifyReply, FastifyRequest } from "fastify";
import { takeBodyRaw } from "./body-fallback.js";
import {
  hasPending,
  holdUntilSettled,
  payloadBody,
  pendingOf,
  type Settling,
  settleAtEnd,
  takePending,
} from "./capture.js";
import { listenForHandlerThrows } from "./handler-throw.js";
import { hookSet, type InterlockHooks } from "./hooks.js";
import { captureRawBody, rawBodyOf, whenKept } from "./raw-body.js";
import { answer, sendResponse, type TakeOver } from "./respond.js";

/** Core's receiver options, plus the adapter's own. */
export interface FastifyWebhookOptions extends WebhookReceiverOptions {
  /**
   * Answer errors yourself: rejected deliveries (400, 401), body errors (413, 400
   * `body_incomplete`, 415, 500 `body_not_raw`), in-flight copies (409) and store outages
   * (503). Send through `reply` and return it; return nothing to send `decision.response`
   * (problem+json). A duplicate is not an error: it always gets Interlock's 200. Nor is a
   * delivery whose payload cannot be decoded (400 `payload_not_decodable`).
   */
  onError?: TakeOver<WebhookErrorDecision>;
}

export const kWebhookClaim = Symbol("interlock.webhookClaim");

/** Takes the request's unsettled claim: each delivery is settled once. */
const takeClaim = (request: FastifyRequest) => takePending<WebhookTicket>(request, kWebhookClaim);

const CONSUMED =
  "the request body was read before Interlock's preParsing hook, so the signed bytes are gone: " +
  "remove the hook or plugin that consumes the payload, or register it after Interlock";

const NOT_CAPTURED =
  "Interlock's preParsing hook did not run for this route, so the signed bytes were never captured: " +
  "register the route with `config: { interlock: webhook(…) }` or spread all of webhook(…)'s hooks into its options";

/** The options this adapter takes beyond core's. */
const OWN_OPTION_NAMES = optionNames<Omit<FastifyWebhookOptions, keyof WebhookReceiverOptions>>({ onError: true });

/**
 * Route hooks that verify and de-duplicate a delivery on its raw bytes, with the verified
 * event on `request.webhook`: a 2xx records it, anything else (or a throw) releases it.
 */
export function webhook(options: FastifyWebhookOptions): InterlockHooks {
  assertOptionNames("webhook()", options, WEBHOOK_RECEIVER_OPTION_NAMES, OWN_OPTION_NAMES);
  const { onError, ...receiverOptions } = options;
  const receiver = createWebhookReceiver(receiverOptions);
  listenForHandlerThrows();
  const limit = receiver.verifier.maxBodyBytes;
  const refuse = (error: BodyError, request: FastifyRequest) =>
    receiver.refuse(error.code, error.message, request.headers);

  // The route's own bodyLimit, when smaller, is answered the same way rather than by Fastify's parser.
  const capture = captureRawBody({
    limitOf: (request) => Math.min(limit, request.routeOptions.bodyLimit),
    consumed: CONSUMED,
    refuse: (error, request, reply) => answer(refuse(error, request), request, reply, onError),
    report: (error, request) => void refuse(error, request),
    tooLarge: "refuse",
  });

  /** Settles a hijacked reply by the status it sent: once it has finished, or once the provider left and the route ended it. */
  async function finishHijacked(request: FastifyRequest): Promise<void> {
    const claim = takeClaim(request);
    if (claim) await receiver.finish(claim.ticket, { status: claim.hijacked().status });
  }

  /** The handler threw: releases the delivery so the provider's retry is processed. */
  async function abortClaim(request: FastifyRequest): Promise<void> {
    const claim = takeClaim(request);
    if (claim) await receiver.abort(claim.ticket);
  }

  const settling: Settling = {
    slot: kWebhookClaim,
    recordLimit: undefined,
    settle: finishHijacked,
    release: abortClaim,
    // The provider left: a reply the route ended is settled by its status; one whose piped
    // stream stopped instead never completed an answer (its 200 went out first), so the
    // delivery is released, never recorded as processed.
    cutOff: (request, answered) => void (answered ? finishHijacked(request) : abortClaim(request)),
    // The provider left mid-answer: the route's later end settles it by its status as above;
    // renewed no more, a delivery whose route never ends it lapses within `lockTtlMs`.
    stopRenewal: (request) => {
      const claim = pendingOf<WebhookTicket>(request, kWebhookClaim);
      if (claim) receiver.cutOff(claim.ticket);
    },
  };

  /** Verifies and claims the delivery on its kept bytes; the route runs (`done()`) only for a new one. */
  function verify(request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void): void {
    const body = rawBodyOf(request) ?? new BodyError("body_not_raw", NOT_CAPTURED);
    if (body instanceof BodyError) {
      answer(refuse(body, request), request, reply, onError);
      return;
    }
    receiver.begin(request.headers, body).then((decision) => {
      if (decision.action === "respond") {
        // A duplicate is not an error: it goes out as core's 200, as idempotency's replays go out as stored.
        if (decision.outcome === "duplicate") return answer(decision, request, reply, undefined);
        return answer(decision, request, reply, onError);
      }
      request.webhook = decision.event;
      holdUntilSettled(request, reply, decision.ticket, settling);
      done();
    }, done);
  }

  /**
   * Fastify's JSON parser refused a body declared `application/json` (empty, or not JSON) before
   * the preHandler verified it, and Fastify would hand its error to the app's error handler.
   * Verified from the bytes kept instead, as any delivery: refused (401, through `onError`), a
   * duplicate, in flight; a verified one whose payload its scheme cannot decode either is the
   * sender's mistake, 400 `payload_not_decodable` (released: the route never ran). One its scheme
   * does decode (Fastify's parser is stricter: it refuses `__proto__` keys) is released, and the
   * parser's error goes on to the app as before. Undefined when the error is not such a refusal.
   */
  function answerUnparsed(error: unknown, request: FastifyRequest, reply: FastifyReply): Promise<boolean> | undefined {
    // Verified already: the parser passed it, and a later error merely shares its code.
    if (request.webhook != null || !refusedJson(error)) return undefined;
    return new Promise<Buffer | BodyError | undefined>((resolve) =>
      whenKept(request, () => resolve(rawBodyOf(request))),
    )
      .then((body) => (Buffer.isBuffer(body) ? receiver.begin(request.headers, body) : undefined))
      .then(async (decision) => {
        if (decision === undefined) return false; // nothing kept to verify: the parser's error stands
        if (decision.action === "respond") {
          if (decision.outcome === "duplicate") answer(decision, request, reply, undefined);
          else answer(decision, request, reply, onError);
          return true;
        }
        const payloadError = undecodable(decision.event);
        if (payloadError === undefined) {
          await receiver.abort(decision.ticket);
          return false;
        }
        await receiver.finish(decision.ticket, { status: payloadError.status });
        sendResponse(reply, problemResponse(payloadError));
        return true;
      });
  }

  return hookSet(
    "first",
    {
      bodyLimit: limit,
      preParsing(request, reply, payload, done) {
        // A delivery its headers refuse is answered unread. (A compressed one too, as the verifier
        // would: after this, Fastify's parser would fail on the compressed bytes with its own 400.)
        const refused = receiver.checkHeaders(request.headers);
        if (refused) return answer(refused, request, reply, onError);
        takeBodyRaw(request);
        capture(request, reply, payload, done);
      },

      preHandler(request, reply, done) {
        whenKept(request, () => verify(request, reply, done));
      },

      // Settled before the answer goes out, so a provider retrying at once finds it recorded.
      onSend(request, reply, payload, done) {
        const claim = takeClaim(request);
        if (!claim) return done(null, payload);
        if (payloadBody(payload) === undefined) {
          // A stream, or a web Response (its body a stream the route may still be producing):
          // settled once it is over, by the status sent (a Response's own, which Fastify applies
          // only after this hook) if it ended; released if the response closed first (the provider
          // left, the stream failed), never recorded as processed.
          settleAtEnd(reply.raw, (ended) =>
            ended ? receiver.finish(claim.ticket, { status: reply.raw.statusCode }) : receiver.abort(claim.ticket),
          );
          return done(null, payload);
        }
        receiver.finish(claim.ticket, { status: reply.statusCode }).then(() => done(null, payload), done);
      },

      // The handler threw: release the delivery, then Fastify's error handling answers (a payload
      // error, the route's error handler: its 400). Released whatever the error: an app that took
      // the route's error handler over, or declared it where the plugin could not see, answers
      // it its own way, and even a 2xx of its must not record a delivery whose route failed. (A
      // hijacked reply's throw reaches no hook: `threw` above.)
      onError(request, _reply, _error, done) {
        if (!hasPending(request, kWebhookClaim)) return done();
        abortClaim(request).then(() => done(), done);
      },
    },
    answerUnparsed,
  );
}

/** The codes of Fastify's JSON parser refusing a body: empty, or not JSON. */
const JSON_REFUSALS = new Set(["FST_ERR_CTP_EMPTY_JSON_BODY", "FST_ERR_CTP_INVALID_JSON_BODY"]);

const refusedJson = (error: unknown): boolean =>
  JSON_REFUSALS.has((error as { code?: unknown } | null)?.code as string);

/** The error reading the delivery's payload throws, if it throws one. */
function undecodable(event: VerifiedWebhook): WebhookPayloadError | undefined {
  try {
    void event.payload;
    return undefined;
  } catch (error) {
    if (error instanceof WebhookPayloadError) return error;
    throw error;
  }
}
