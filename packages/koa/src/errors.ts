/** What the adapter says about a body it cannot use (codes and statuses are core's), and its limit option. */

import { InterlockConfigError } from "@interlock/core";

export const tooLargeMessage = (limit: number) => `the request body exceeds ${limit} bytes`;

/** A parser read the stream first: the detail tells the developer what to change. */
export function notRawMessage(middleware: "webhook" | "idempotency"): string {
  const keeps =
    middleware === "idempotency" ? " (or use one that keeps ctx.request.rawBody, as @koa/bodyparser does)" : "";
  return (
    `the request body was already read by another middleware (a body parser?) before ${middleware}(): ` +
    `mount ${middleware}() before any body parser${keeps}; it sets ctx.request.rawBody and, for JSON and ` +
    "forms, ctx.request.body itself"
  );
}

/** `bodyLimit`, checked when the middleware is made: a bad limit is reported at start-up. */
export function bodyLimitOption(value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new InterlockConfigError("bodyLimit must be a positive whole number of bytes");
  }
  return value;
}
