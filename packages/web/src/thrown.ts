/**
 * Throws that are answers, not failures. Some hosts let a handler answer by throwing: Next.js's
 * `redirect()`, `permanentRedirect()`, `notFound()`, `forbidden()` and `unauthorized()` throw an
 * error the route module turns into a 307/308/404/403/401, and Remix and React Router send a
 * thrown `Response` (`throw redirect("/orders/7")`). The handler did its work and the client gets
 * that answer, so the key must keep it: released as a failure, the client's retry would run the
 * handler again (a second payment behind a redirect).
 */

import { isWebResponse } from "@interlock/core";

/**
 * The `Response` the host sends for `thrown`, when it is one of those answers; undefined for any
 * other throw (a failure, which releases the key). Next's errors are known by their `digest`, the
 * string Next itself matches on (`isRedirectError`, `isHTTPAccessFallbackError`) and the one
 * libraries that must let them through match too, as Next exports no stable way to ask.
 */
export function thrownAnswer(thrown: unknown): Response | undefined {
  if (isWebResponse(thrown)) return thrown;
  const digest = (thrown as { digest?: unknown } | null | undefined)?.digest;
  return typeof digest === "string" ? nextAnswer(digest.split(";")) : undefined;
}

/** The statuses Next takes from a redirect's digest: 307 (`redirect()`), 308 (`permanentRedirect()`), 303. */
const NEXT_REDIRECT_STATUSES: ReadonlySet<number> = new Set([303, 307, 308]);
/** The statuses Next answers for `unauthorized()`, `forbidden()` and `notFound()`. */
const NEXT_ACCESS_STATUSES: ReadonlySet<number> = new Set([401, 403, 404]);

/**
 * What a Next.js route handler answers for an error with this digest, as its route module does
 * (`handleHandlerError`): `NEXT_REDIRECT;<replace|push>;<url>;<status>;` is that status with
 * `Location: <url>` (the url may hold `;`), `NEXT_HTTP_ERROR_FALLBACK;<status>` that status, both
 * with no body. A digest Next would not accept (another status, an empty url, a url no header
 * can carry) is no answer: Next answers it 500, as any other throw.
 */
function nextAnswer([code, type, ...rest]: string[]): Response | undefined {
  if (code === "NEXT_HTTP_ERROR_FALLBACK") {
    const status = Number(type);
    return NEXT_ACCESS_STATUSES.has(status) ? new Response(null, { status }) : undefined;
  }
  if (code !== "NEXT_REDIRECT" || (type !== "replace" && type !== "push")) return undefined;
  const status = Number(rest.at(-2));
  const location = rest.slice(0, -2).join(";");
  if (!NEXT_REDIRECT_STATUSES.has(status) || location === "") return undefined;
  let headers: Headers;
  try {
    // Checked here, where Next checks it: a Response may check its init only when first read
    // (@hono/node-server's does).
    headers = new Headers({ location });
  } catch {
    return undefined; // a character past U+00FF: Next's own `new Headers({ Location })` throws too
  }
  return new Response(null, { status, headers });
}
