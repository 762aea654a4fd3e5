/**
 * The error handler of a webhook route, put before the app's own as Fastify's route-level
 * `errorHandler` where the route is declared (`onRoute`), for the errors that are the sender's
 * and that Fastify would hand to the app's error handler, which would make them a 500 that the
 * provider retries as the server's failure (`onError` hooks run first, but cannot answer):
 * - a `WebhookPayloadError` the handler (or a hook of the route's own) lets through: it read
 *   `request.webhook.payload`, and the signed body is not what the scheme decodes. Answered
 *   400 problem+json, as the hooks answer their other refusals, unless the answer has begun.
 * - what a set on the route answers itself (`ErrorAnswer`: `webhook()` verifies a delivery that
 *   Fastify's JSON parser refused before its preHandler could).
 * Anything else goes on as it would have: to the route's own `errorHandler`, else to the app's.
 * A hijacked reply reaches no error handler: its payload error is answered from Fastify's
 * diagnostics channel instead (`answerHijacked`).
 */

import { problemResponse, sendOnNode, WebhookPayloadError } from "@interlock/core";
import type { FastifyReply, FastifyRequest, RouteOptions } from "fastify";
import type { ErrorAnswer } from "./hooks.js";
import { asBuffer } from "./raw-body.js";
import { sendResponse } from "./respond.js";

type ErrorHandler = (error: unknown, request: FastifyRequest, reply: FastifyReply) => unknown;

interface Composed {
  /** The route's own `errorHandler`, which this one comes before. */
  own: ErrorHandler | undefined;
  answers: ErrorAnswer[];
}

/** Marks a composed handler, whichever copy of the package made it: a route gets one. */
const kComposed = Symbol.for("@interlock/fastify.routeErrorHandler");

type Marked = ErrorHandler & { [kComposed]?: Composed };

/**
 * Whether `error` is a payload error Interlock answers for `reply`: nothing of the answer sent
 * yet. (The webhook set's `onError` hook released the delivery before.)
 */
function answersPayloadError(error: unknown, reply: FastifyReply): error is WebhookPayloadError {
  return error instanceof WebhookPayloadError && !reply.sent && !reply.raw.headersSent;
}

/**
 * Answers a payload error thrown by the handler of a hijacked reply of a webhook route, which
 * Fastify hands to no error handler (it logs it and leaves the response open), when nothing of
 * the answer has been sent: the sender's mistake gets its 400 there too. Written on the raw
 * response, whose recording settles the delivery by that status as for any answer the route
 * writes. Once the answer has begun, the response stays the app's: false.
 */
export function answerHijacked(error: unknown, request: FastifyRequest, reply: FastifyReply): boolean {
  const raw = reply.raw;
  if (!(error instanceof WebhookPayloadError) || request.webhook == null || raw.headersSent || raw.writableEnded)
    return false;
  sendOnNode(raw, problemResponse(error), asBuffer);
  return true;
}

/**
 * Gives a webhook route the error handler above, with `answer` among the answers it tries (a
 * route with two sets, or seen twice by the plugin, gets one handler answering for each).
 */
export function answerRouteErrors(route: RouteOptions, answer: ErrorAnswer): void {
  const found = (route.errorHandler as Marked | undefined)?.[kComposed];
  if (found?.answers.includes(answer)) return;
  const composed: Composed = {
    own: found ? found.own : (route.errorHandler as ErrorHandler | undefined),
    answers: found ? [...found.answers, answer] : [answer],
  };
  const handler: Marked = (error, request, reply) => routeErrorHandler(composed, error, request, reply);
  Object.defineProperty(handler, kComposed, { value: composed });
  route.errorHandler = handler as NonNullable<RouteOptions["errorHandler"]>;
}

function routeErrorHandler(composed: Composed, error: unknown, request: FastifyRequest, reply: FastifyReply): unknown {
  if (answersPayloadError(error, reply)) {
    sendResponse(reply, problemResponse(error));
    return undefined;
  }
  for (const answer of composed.answers) {
    const answering = answer(error, request, reply);
    // Resolved with the reply once answered: Fastify waits for it, as for `return reply`.
    if (answering) return answering.then((answered) => (answered ? reply : passOn(composed, error, request, reply)));
  }
  return passOn(composed, error, request, reply);
}

/**
 * Hands the error on as Fastify would have without this handler: to the route's own, else to the
 * app's, which Fastify calls when a route's error handler throws an `Error`. Any other value
 * thrown would be sent as the answer (a 200), so it is rejected with instead, which Fastify
 * passes on as an error.
 */
function passOn(composed: Composed, error: unknown, request: FastifyRequest, reply: FastifyReply): unknown {
  if (composed.own) return composed.own(error, request, reply);
  if (error instanceof Error) throw error;
  return Promise.reject(error);
}
