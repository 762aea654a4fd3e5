/** Writing core's decisions out through Fastify, or letting the app answer them itself. */

import type { HttpResponse } from "@interlock/core";
import type { FastifyReply, FastifyRequest } from "fastify";

/**
 * The app's hook for a decision Interlock would answer. Take over by sending through `reply`
 * and returning it (`return reply.code(…).send(…)`, sync or async); return nothing to let
 * Interlock send `decision.response`.
 */
export type TakeOver<D> = (decision: D, request: FastifyRequest, reply: FastifyReply) => unknown;

/** Sends a response core decided, as it is. Repeated header names become arrays so none is lost. */
export function sendResponse(reply: FastifyReply, response: HttpResponse): FastifyReply {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of response.headers) {
    const seen = headers[name];
    headers[name] = seen === undefined ? value : [...(Array.isArray(seen) ? seen : [seen]), value];
  }
  reply.code(response.status).headers(headers);
  // An empty body is sent as none, so Fastify adds no content-type of its own to a bare 204.
  return reply.send(response.body.length > 0 ? response.body : undefined);
}

/** Answers `decision` through the app's `onError` when it takes over, else with core's response. */
export function answer<D extends { response: HttpResponse }>(
  decision: D,
  request: FastifyRequest,
  reply: FastifyReply,
  onError: TakeOver<D> | undefined,
): void {
  if (!onError) {
    sendResponse(reply, decision.response);
    return;
  }
  const fail = (error: unknown) => {
    if (!reply.sent) reply.send(error);
  };
  let result: unknown;
  try {
    result = onError(decision, request, reply);
  } catch (error) {
    fail(error);
    return;
  }
  // `reply` is itself a thenable (it settles once the response is written): check it first.
  if (result === reply) return;
  Promise.resolve(result).then((value) => {
    if (value !== reply && !reply.sent) sendResponse(reply, decision.response);
  }, fail);
}
