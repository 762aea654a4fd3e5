/**
 * Releasing on a throw. Express hands a route's throw (or, on Express 5, its rejection) straight
 * to the error-handling middleware, past every middleware before the route, so `webhook()` and
 * `idempotency()` cannot see it themselves: `releaseOnError`, mounted as an error handler,
 * does it for them with core's `abort`, and answers the one throw that is the sender's mistake.
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import { problemResponse, WebhookPayloadError } from "@interlock/core";
import type { ErrorRequestHandler } from "express";
import { responseStarted } from "./hold.js";
import { send } from "./respond.js";

const ABORTS = Symbol.for("@interlock/express.aborts");

interface WithAborts {
  [ABORTS]?: Array<() => Promise<void>>;
}

/** Remembers how to release what this request claimed, should its route throw. */
export function onThrow(req: IncomingMessage, abort: () => Promise<void>): void {
  const state = req as IncomingMessage & WithAborts;
  const aborts = state[ABORTS] ?? [];
  aborts.push(abort);
  state[ABORTS] = aborts;
}

/**
 * An error handler: mount it after your routes and before your own error handler
 * (`app.use(releaseOnError)`). When a route protected by `webhook()` or `idempotency()` throws,
 * it releases the delivery or key (the provider's or client's retry then runs again), then
 * passes the error on untouched, except a `WebhookPayloadError` (a delivery's payload its scheme
 * cannot decode), which it answers itself, 400 problem+json, unless the route had begun its
 * answer. Without it, the answer your error handler sends decides, as for any answer: a non-2xx
 * releases a delivery, a 5xx releases a key (default `cache`).
 */
export const releaseOnError: ErrorRequestHandler = (error, req, res, next) => {
  const state = req as IncomingMessage & WithAborts;
  const aborts = state[ABORTS];
  if (aborts === undefined) return next(error);
  delete state[ABORTS];
  const settled = answersItself(error, res) ? () => send(res, problemResponse(error)) : () => next(error);
  // `abort` never throws; the error is answered or goes on to the app's own error handler either way.
  Promise.all(aborts.map((abort) => abort())).then(settled, settled);
};

/**
 * Whether the error is answered here: a payload the sender signed but its scheme cannot decode
 * is the sender's mistake, never the 500 an app's error handler gives a throw (which the provider
 * would retry as the server's failure). An answer the route began is its own, as it was.
 */
function answersItself(error: unknown, res: ServerResponse): error is WebhookPayloadError {
  return error instanceof WebhookPayloadError && !responseStarted(res);
}
