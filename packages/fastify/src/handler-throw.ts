/**
 * A handler that throws after hijacking its reply reaches none of Fastify's hooks: `onError` is
 * skipped for a reply already sent, and its response waits for an end the route will never
 * write. Fastify 5 publishes every handler's throw on a diagnostics channel, which is where the
 * adapters learn of it, to release what the request claimed as they do for any other throw (and
 * to answer a webhook's payload error before anything was sent: `answerHijacked`). The response
 * is the app's otherwise: Fastify leaves it open, and so does Interlock.
 */

import { subscribe } from "node:diagnostics_channel";
import type { FastifyReply, FastifyRequest } from "fastify";
import { answerHijacked } from "./route-errors.js";

/** Fastify's channel for a handler's throw or rejection: `{ request, reply, route, error }`. */
const HANDLER_ERROR = "tracing:fastify.request.handler:error";

const kOnThrow = Symbol("interlock.onHandlerThrow");

interface WithOnThrow {
  [kOnThrow]?: (() => void) | undefined;
}

let listening = false;

/**
 * Listens to Fastify's channel, once per process. Called when a hook set is made, before any
 * request: Fastify decides per request, before the handler runs, whether to publish at all.
 */
export function listenForHandlerThrows(): void {
  if (listening) return;
  listening = true;
  subscribe(HANDLER_ERROR, (message) => {
    const { request, reply, error } = message as {
      request?: FastifyRequest;
      reply?: FastifyReply & WithOnThrow;
      error?: unknown;
    };
    const onThrow = reply?.[kOnThrow];
    if (request === undefined || reply === undefined || onThrow === undefined) return;
    reply[kOnThrow] = undefined;
    // Answered first: the answer's end settles what the request claimed, and `onThrow` then finds it over.
    answerHijacked(error, request, reply);
    onThrow();
  });
}

/**
 * Calls `onThrow` if the handler of `reply` throws (or rejects) from now on, after what was
 * asked before for the same reply (`webhook()` and `idempotency()` both on the route, its reply
 * hijacked): each set releases its own. Made for hijacked replies alone, not on every request.
 */
export function onHandlerThrow(reply: FastifyReply, onThrow: () => void): void {
  const watched = reply as FastifyReply & WithOnThrow;
  const previous = watched[kOnThrow];
  watched[kOnThrow] =
    previous === undefined
      ? onThrow
      : () => {
          previous();
          onThrow();
        };
}
