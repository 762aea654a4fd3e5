/** Writing core's decisions out through Fastify, or letting the app answer them itself. */

import { Readable } from "node:stream";
import { forEachHeader, type HttpResponse, hasNoContent } from "@interlock/core";
import type { FastifyReply, FastifyRequest } from "fastify";

/**
 * The app's hook for a decision Interlock would answer. Take over by sending through `reply`
 * and returning it (`return reply.code(…).send(…)`, sync or async); return nothing to let
 * Interlock send `decision.response`.
 */
export type TakeOver<D> = (decision: D, request: FastifyRequest, reply: FastifyReply) => unknown;

/**
 * Sends a response core decided, as it is. Repeated header names become arrays so none is lost.
 * Each name is set on the reply directly, not first into an object keyed by header names that
 * `reply.headers` then walks: this is every replay's path.
 */
export function sendResponse(reply: FastifyReply, response: HttpResponse): FastifyReply {
  reply.code(response.status);
  forEachHeader(response.headers, (name, value) => reply.header(name, value));
  // A replayed HEAD answer (stored without content) brings the length of a GET's content, never
  // sent, or none, as the first answer did. Fastify's HEAD handling sets `Content-Length: 0` for
  // no payload; a stream it drains without one. A refusal to a HEAD is sent as to a GET.
  const headReplay = reply.request.method === "HEAD" && response.body.length === 0;
  if (headReplay && !hasNoContent(response.status)) return reply.send(Readable.from([]));
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
