/** What the adapter says about a body a parser already read (the code and status are core's). */

/**
 * A parser read the stream first: the detail tells the developer what to change. Not "mount it
 * before any parser" alone: koa-body reads every request again (it has no skip flag), so after
 * Interlock it fails on each one Interlock read; before `idempotency()` it works once it keeps
 * the text (`includeUnparsed`).
 */
export function notRawMessage(middleware: "webhook" | "idempotency"): string {
  const read = `the request body was already read by another middleware (a body parser?) before ${middleware}(): `;
  if (middleware === "webhook") {
    return (
      `${read}mount webhook() before any body parser (it sets ctx.request.rawBody and, for JSON and forms, ` +
      "ctx.request.body itself), and keep koa-body off webhook routes: it reads every request again"
    );
  }
  return (
    `${read}mount idempotency() before any body parser (it sets ctx.request.rawBody and, for JSON and forms, ` +
    "ctx.request.body itself), or after one that keeps ctx.request.rawBody: @koa/bodyparser, koa-bodyparser, " +
    "koa-body with includeUnparsed: true (koa-body must come before: it reads every request again)"
  );
}
