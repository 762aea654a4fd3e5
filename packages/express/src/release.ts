/**
 * Releasing on a throw. Express hands a route's throw (or, on Express 5, its rejection) straight
 * to the error-handling middleware, past every middleware before the route, so `webhook()` and
 * `idempotency()` cannot see it themselves: `releaseOnError`, mounted as an error handler,
 * does it for them with core's `abort`.
 */

import type { IncomingMessage } from "node:http";
import type { ErrorRequestHandler } from "express";

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
 * passes the error on untouched. Without it, the answer your error handler sends decides, as
 * for any answer: a non-2xx releases a delivery, a 5xx releases a key (default `cache`).
 */
export const releaseOnError: ErrorRequestHandler = (error, req, _res, next) => {
  const state = req as IncomingMessage & WithAborts;
  const aborts = state[ABORTS];
  if (aborts === undefined) return next(error);
  delete state[ABORTS];
  // `abort` never throws; the error goes on to the app's own error handler either way.
  Promise.all(aborts.map((abort) => abort())).then(
    () => next(error),
    () => next(error),
  );
};
