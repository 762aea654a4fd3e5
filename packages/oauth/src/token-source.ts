/** What `authorizedFetch` needs from a token provider, and options the providers share. */

import { assertOptionNames, InterlockConfigError, optionNames, StoreUnavailableError } from "@interlock/core";
import type { ClientInternals } from "./client.js";
import { eventCode, OAuthError, OAuthResponseError } from "./errors.js";
import { isOutlived, type StoredTokens } from "./tokens.js";

/** Options of `getAccessToken`. */
export interface GetAccessTokenOptions {
  /**
   * An access token a resource server refused (401): answer a newer one, refreshing unless
   * someone already has.
   */
  rejected?: string;
}

const GET_ACCESS_TOKEN_OPTION_NAMES = optionNames<GetAccessTokenOptions>({ rejected: true });

/**
 * The refused token of a call's options (`what` names the call), checked: a misspelt `rejected`
 * would be answered the very token the resource server just refused.
 */
export function rejectedOption(what: string, options: GetAccessTokenOptions | undefined): string | undefined {
  assertOptionNames(what, options, GET_ACCESS_TOKEN_OPTION_NAMES);
  return options?.rejected;
}

/** Hands out a valid access token: cached, or fetched or refreshed when due, one request at a time. */
export interface TokenSource {
  /** A valid access token, fetched or refreshed first when it is due. */
  getAccessToken(options?: GetAccessTokenOptions): Promise<string>;
}

/** Default lease on the lock a token request holds: longer than one request to the server with its retries. */
export const DEFAULT_LOCK_TTL_MS = 30_000;

export function lockTtlOption(value: number | undefined): number {
  const lockTtlMs = value ?? DEFAULT_LOCK_TTL_MS;
  if (!Number.isSafeInteger(lockTtlMs) || lockTtlMs <= 0) {
    throw new InterlockConfigError("lockTtlMs must be a positive whole number of ms");
  }
  return lockTtlMs;
}

export function prefixOption(value: string | undefined): string {
  const prefix = value ?? "oauth:";
  if (typeof prefix !== "string" || prefix.length > 128)
    throw new InterlockConfigError("keyPrefix must be a short string");
  return prefix;
}

/**
 * A failure worth riding out with a token that is due but still valid: the server or the store is
 * down. The server may say so itself, in an error answer (`server_error`, `temporarily_unavailable`:
 * the codes `OAuthError` answers 503 for), not only by failing or answering 5xx.
 */
export function isTransient(error: unknown): boolean {
  return (
    (error instanceof OAuthResponseError && error.code === "server_unavailable") ||
    (error instanceof OAuthError && error.status === 503) ||
    error instanceof StoreUnavailableError
  );
}

/**
 * After a renewal failed: the tokens to ride it out with, when the server or the store is down
 * and `tokens` are neither past their lifetime at `now` (the one assumed when the server gave no
 * `expires_in`) nor the ones a resource server refused (the next call tries again; the event says
 * so). Any other failure is thrown.
 */
export function staleOrThrow(
  error: unknown,
  tokens: StoredTokens | undefined,
  rejected: string | undefined,
  now: number,
  internals: Pick<ClientInternals, "emit">,
  grant: "client_credentials" | "refresh_token",
): StoredTokens {
  if (tokens === undefined || tokens.accessToken === rejected || !isTransient(error)) throw error;
  if (isOutlived(tokens, now)) throw error;
  internals.emit({ type: "oauth.token.stale_used", grant, code: eventCode(error) });
  return tokens;
}
