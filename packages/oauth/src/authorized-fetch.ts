/**
 * A fetch that sends a bearer token from a token provider. When the resource server answers 401
 * because of the token (RFC 6750 §3.1: `error="invalid_token"`, or no error), the token is renewed
 * once (unless another caller already has) and the request is sent once more; a second 401 is
 * returned as it is, and so is a 401 for another reason (`insufficient_scope`, `invalid_request`),
 * which a new token would not change.
 */

import { createClient } from "@interlock/client";
import { assertOptionNames, InterlockConfigError, optionNames } from "@interlock/core";
import type { FetchLike } from "./client.js";
import type { TokenSource } from "./token-source.js";
import { accessTokenRefused } from "./www-authenticate.js";

/** Where `authorizedFetch` gets its tokens, and how it sends. */
export interface AuthorizedFetchOptions {
  /** Where the access token comes from: `createClientCredentials(…)` or `sessions.tokens(sessionId)`. */
  tokens: TokenSource;
  /**
   * Sends the requests. Default: `createClient()` from `@interlock/client` with its defaults:
   * timeouts, transient failures retried (idempotent methods, and POST/PATCH with the
   * `Idempotency-Key` it adds) with backoff and `Retry-After`, a circuit breaker per origin.
   * Pass global `fetch` to send each request once, or your own `createClient(…)`.
   */
  fetch?: FetchLike;
  /**
   * Renew the token and send again after a 401 that refuses the token (`WWW-Authenticate: Bearer`
   * with `error="invalid_token"` or without an error). Default true. The request body is kept in memory
   * until the first answer for that; turn it off for large streamed uploads.
   */
  retryOnUnauthorized?: boolean;
}

const AUTHORIZED_FETCH_OPTION_NAMES = optionNames<AuthorizedFetchOptions>({
  tokens: true,
  fetch: true,
  retryOnUnauthorized: true,
});

/** A fetch that sends `Authorization: Bearer <token>`, renewing the token once after a 401 that refuses it. */
export function authorizedFetch(options: AuthorizedFetchOptions): FetchLike {
  assertOptionNames("authorizedFetch()", options, AUTHORIZED_FETCH_OPTION_NAMES);
  const { tokens } = options;
  if (typeof tokens?.getAccessToken !== "function") {
    throw new InterlockConfigError("authorizedFetch needs tokens: a TokenSource (getAccessToken)");
  }
  const send = options.fetch ?? createClient();
  if (typeof send !== "function") throw new InterlockConfigError("fetch must be a function");
  const retry = options.retryOnUnauthorized ?? true;

  const withToken = (request: Request, token: string) => {
    const headers = new Headers(request.headers);
    headers.set("authorization", `Bearer ${token}`);
    return send(new Request(request, { headers }));
  };

  return async (input, init) => {
    const request = new Request(input, init);
    // Cloned before the first send consumes the body: the retry needs it again.
    const again = retry ? request.clone() : undefined;
    const token = await tokens.getAccessToken();
    const response = await withToken(request, token);
    if (response.status !== 401 || again === undefined) return response;
    if (!accessTokenRefused(response.headers.get("www-authenticate"))) return response;
    await response.body?.cancel();
    return withToken(again, await tokens.getAccessToken({ rejected: token }));
  };
}
