/** What the adapter says about a body a parser already read (the code and status are core's). */

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
