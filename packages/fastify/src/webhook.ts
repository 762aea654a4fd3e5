/**
 * `webhook(options)`: verification and replay de-duplication around a Fastify route, through
 * core's receiver. The raw body is captured in `preParsing`, the delivery is verified and
 * claimed in `preHandler`, and the claim is settled when the handler's answer is sent
 * (`onSend`: 2xx records it, anything else releases it) or when it throws (`onError`).
 */

import {
  createWebhookReceiver,
  problemResponse,
  type WebhookDecision,
  type WebhookReceiverOptions,
  type WebhookTicket,
  WebhookVerificationError,
} from "@interlock/core";
import type { FastifyRequest } from "fastify";
import { hookSet, type InterlockHooks } from "./hooks.js";
import { captureRawBody, type RawBodyRefusal, rawBodyOf } from "./raw-body.js";
import { answer, type TakeOver } from "./respond.js";

/** A decision answered without running the handler: a refusal, a duplicate, an in-flight copy, a store outage. */
export type WebhookRespondDecision = Extract<WebhookDecision, { action: "respond" }>;

/**
 * Core's receiver options, plus `onError`. `maxBodyBytes` (default 25 MiB) also bounds the raw
 * body read: past it the request is answered 413 `body_too_large` before the app's parsers
 * run, and it becomes the route's `bodyLimit` when the route sets none, so the app's parser
 * accepts what the verifier does.
 */
export interface FastifyWebhookOptions extends WebhookReceiverOptions {
  /**
   * Answer refusals, duplicates, in-flight copies and store outages yourself: send through
   * `reply` and return it. Return nothing to send `decision.response` (problem+json for
   * errors, 200 for a duplicate).
   */
  onError?: TakeOver<WebhookRespondDecision>;
}

export const kWebhookTicket = Symbol("interlock.webhookTicket");

interface WithTicket {
  [kWebhookTicket]?: WebhookTicket | null;
}

/** Takes the request's unsettled ticket: each ticket is settled once. */
function takeTicket(request: FastifyRequest): WebhookTicket | undefined {
  const ticket = (request as WithTicket)[kWebhookTicket] ?? undefined;
  if (ticket) (request as WithTicket)[kWebhookTicket] = null;
  return ticket;
}

const CONSUMED =
  "the request body was read before Interlock's preParsing hook, so the signed bytes are gone: " +
  "remove the hook or plugin that consumes the payload, or register it after Interlock";

const NOT_CAPTURED =
  "Interlock's preParsing hook did not run for this route, so the signed bytes were never captured: " +
  "register the route with `config: { interlock: webhook(…) }` or spread all of webhook(…)'s hooks into its options";

/** A refusal the adapter makes itself, shaped like the receiver's own. */
function refusal(error: WebhookVerificationError): WebhookRespondDecision {
  return { action: "respond", outcome: "refused", response: problemResponse(error), event: undefined, error };
}

export function webhook(options: FastifyWebhookOptions): InterlockHooks {
  const { onError, ...receiverOptions } = options;
  const receiver = createWebhookReceiver(receiverOptions);
  const scheme = options.scheme.name;
  const limit = receiver.verifier.maxBodyBytes;

  // The route's own bodyLimit, when smaller, is answered the same way rather than by Fastify's parser.
  const limitFor = (request: FastifyRequest) => Math.min(limit, request.routeOptions.bodyLimit);
  const refuseRaw: RawBodyRefusal = (problem, bytes, request, reply) => {
    const error =
      problem === "too_large"
        ? new WebhookVerificationError("body_too_large", `body exceeds ${bytes} bytes`, scheme)
        : new WebhookVerificationError("body_not_raw", CONSUMED, scheme);
    answer(refusal(error), request, reply, onError);
  };

  return hookSet("first", {
    bodyLimit: limit,
    preParsing: captureRawBody(limitFor, refuseRaw),

    preHandler(request, reply, done) {
      const body = rawBodyOf(request);
      if (body === undefined) {
        const error = new WebhookVerificationError("body_not_raw", NOT_CAPTURED, scheme);
        return answer(refusal(error), request, reply, onError);
      }
      receiver.begin(request.headers, body).then((decision) => {
        if (decision.action === "respond") return answer(decision, request, reply, onError);
        request.webhook = decision.event;
        (request as WithTicket)[kWebhookTicket] = decision.ticket;
        done();
      }, done);
    },

    // Settled before the answer goes out, so a provider retrying at once finds it recorded.
    onSend(request, reply, payload, done) {
      const ticket = takeTicket(request);
      if (!ticket) return done(null, payload);
      receiver.finish(ticket, { status: reply.statusCode }).then(() => done(null, payload), done);
    },

    // A hijacked reply never passes onSend: settle it once it has been written.
    onResponse(request, reply, done) {
      const ticket = takeTicket(request);
      if (!ticket) return done();
      receiver.finish(ticket, { status: reply.statusCode }).then(() => done(), done);
    },

    // The handler threw: release the delivery, then Fastify's error handling answers.
    onError(request, _reply, _error, done) {
      const ticket = takeTicket(request);
      if (!ticket) return done();
      receiver.abort(ticket).then(() => done(), done);
    },
  });
}
