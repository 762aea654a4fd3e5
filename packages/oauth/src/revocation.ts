/**
 * Token revocation (RFC 7009), for the flows that end a grant: a session's `revoke()`, and tokens
 * the server issued that nothing will ever hold (a login that ends without them, a refresh
 * answered once its session was gone).
 */

import * as oauth from "oauth4webapi";
import type { ClientInternals } from "./client.js";
import { eventCode, OAuthError } from "./errors.js";
import type { OAuthEvent } from "./events.js";
import { isTransient } from "./token-source.js";

/** The tokens of one grant, as far as revoking them goes. */
export interface GrantTokens {
  accessToken: string;
  refreshToken: string | undefined;
}

/** How revoking a grant's tokens went: `failure` holds the error when a request failed. */
export interface Revocation {
  /** Whether the server revoked the refresh token or the access token. */
  revoked: boolean;
  failure?: { error: unknown };
  /**
   * The OAuth error the server refused the access token's revocation with, after it revoked the
   * refresh token (see `afterGrantEnded`): nothing failed, the grant ended with the refresh token.
   */
  refusal?: OAuthError;
}

/**
 * Revokes a grant's tokens at the server: the refresh token first, which ends the grant on most
 * servers (RFC 7009 §2.1), then the access token, for those where it would outlive it. Nothing
 * is revoked at a server without a revocation endpoint. Never throws: a failure is returned.
 */
export async function revokeGrant(internals: ClientInternals, tokens: GrantTokens): Promise<Revocation> {
  let refreshRevoked = false;
  try {
    const server = await internals.server();
    if (server.revocation_endpoint === undefined) return { revoked: false };
    const { refreshToken, accessToken } = tokens;
    refreshRevoked = refreshToken !== undefined && (await revokeToken(internals, refreshToken, "refresh_token"));
    return { revoked: (await revokeToken(internals, accessToken, "access_token")) || refreshRevoked };
  } catch (error) {
    if (refreshRevoked && afterGrantEnded(error)) return { revoked: true, refusal: error };
    return { revoked: refreshRevoked, failure: { error } };
  }
}

/**
 * Whether `error`, the access token's revocation failing once the refresh token's succeeded, is
 * the server's answer about a token the grant's end took with it: an OAuth error it answered
 * (`invalid_token`, as Google and Salesforce answer for an access token revoked along with its
 * refresh token, which RFC 7009 §2.1 says a server SHOULD do; `invalid_request`, …), not one
 * saying it is down (`server_error`, `temporarily_unavailable`: the token may still be live).
 */
const afterGrantEnded = (error: unknown): error is OAuthError => error instanceof OAuthError && !isTransient(error);

/** Why tokens the server issued are left without a holder: `oauth.login.tokens_revoked`'s `reason`. */
export type OrphanReason = Extract<OAuthEvent, { type: "oauth.login.tokens_revoked" }>["reason"];

/**
 * Revokes tokens the server issued that nothing will ever hold, so that no grant is left behind
 * (RFC 7009), and tells `oauth.login.tokens_revoked`. Never throws.
 */
export async function revokeOrphans(
  internals: ClientInternals,
  tokens: GrantTokens,
  reason: OrphanReason,
): Promise<void> {
  const revocation = await revokeGrant(internals, tokens);
  internals.emit({ type: "oauth.login.tokens_revoked", reason, ...revocationEvent(revocation) });
}

/** An event's account of `revocation`: whether the server revoked, and `error`, what it answered when it refused or failed. */
export function revocationEvent({ revoked, failure, refusal }: Revocation): { revoked: boolean; error?: string } {
  const said = failure === undefined ? refusal : failure.error;
  return said === undefined ? { revoked } : { revoked, error: eventCode(said) };
}

/** Revokes `token` at the server (RFC 7009); false when the server does not revoke tokens of its type. */
async function revokeToken(
  internals: ClientInternals,
  token: string,
  hint: "refresh_token" | "access_token",
): Promise<boolean> {
  try {
    await internals.exchange(async (as) => {
      const http = await oauth.revocationRequest(as, internals.client, internals.auth, token, {
        ...internals.http,
        additionalParameters: { token_type_hint: hint },
      });
      return oauth.processRevocationResponse(http);
    });
    return true;
  } catch (error) {
    // RFC 7009 §2.2.1: a server that cannot revoke this type of token (access tokens, most often:
    // revoking them is only a SHOULD, §2.1) says so. Nothing went wrong; that token just lives on.
    if (error instanceof OAuthError && error.code === "unsupported_token_type") return false;
    throw error;
  }
}

/**
 * The tokens in a token endpoint's answer body, read without validating anything else: those of
 * an answer a login refused (an ID token without its nonce, …) are still live at the server.
 */
export function grantTokensIn(body: unknown): GrantTokens | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const { access_token: accessToken, refresh_token: refreshToken } = body as Record<string, unknown>;
  if (typeof accessToken !== "string" || accessToken === "") return undefined;
  return {
    accessToken,
    refreshToken: typeof refreshToken === "string" && refreshToken !== "" ? refreshToken : undefined,
  };
}

/** The tokens in a token endpoint's 2xx answer, read as `grantTokensIn` reads them (from a copy: its own body stays unread). */
export async function tokensAnswered(response: Response): Promise<GrantTokens | undefined> {
  if (!response.ok) return undefined;
  return grantTokensIn(
    await response
      .clone()
      .json()
      .catch(() => undefined),
  );
}
