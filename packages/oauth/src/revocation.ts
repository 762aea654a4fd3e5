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
  /** Whether the server revoked the refresh token or the access token (or called it invalid: see `revokeToken`). */
  revoked: boolean;
  failure?: { error: unknown };
  /**
   * The OAuth error the server answered where the revocation still counts, nothing failed:
   * `invalid_token` for either token (no longer valid there, see `revokeToken`), or another one
   * for the access token once the refresh token was revoked (see `afterGrantEnded`).
   */
  refusal?: OAuthError;
}

/** How the server answered one token's revocation. */
interface TokenRevocation {
  /** Whether the token can no longer be used there: revoked, or answered `invalid_token`. */
  revoked: boolean;
  /** The OAuth error it answered instead of a 200 (`invalid_token`), when the token still counts as revoked. */
  said?: OAuthError;
}

/**
 * Revokes a grant's tokens at the server: the refresh token first, which ends the grant on most
 * servers (RFC 7009 §2.1), then the access token, for those where it would outlive it. Nothing
 * is revoked at a server without a revocation endpoint. Never throws: a failure is returned.
 */
export async function revokeGrant(internals: ClientInternals, tokens: GrantTokens): Promise<Revocation> {
  let refresh: TokenRevocation | undefined;
  try {
    const server = await internals.server();
    if (server.revocation_endpoint === undefined) return { revoked: false };
    const { refreshToken, accessToken } = tokens;
    if (refreshToken !== undefined) refresh = await revokeToken(internals, refreshToken, "refresh_token");
    const access = await revokeToken(internals, accessToken, "access_token");
    const said = access.said ?? refresh?.said;
    const revoked = access.revoked || refresh?.revoked === true;
    return said === undefined ? { revoked } : { revoked, refusal: said };
  } catch (error) {
    const refreshRevoked = refresh?.revoked === true;
    if (refreshRevoked && afterGrantEnded(error)) return { revoked: true, refusal: error };
    return { revoked: refreshRevoked, failure: { error } };
  }
}

/**
 * Whether `error`, the access token's revocation failing once the refresh token's succeeded, is
 * the server's answer about a token the grant's end took with it: an OAuth error it answered
 * (`invalid_request`, …; `invalid_token` counts as revoked whenever it comes, see `revokeToken`),
 * not one saying it is down (`server_error`, `temporarily_unavailable`: the token may still be live).
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

/**
 * Revokes `token` at the server (RFC 7009). Not revoked when the server does not revoke tokens of
 * its type; revoked, with what it said, when it answers `invalid_token`.
 */
async function revokeToken(
  internals: ClientInternals,
  token: string,
  hint: "refresh_token" | "access_token",
): Promise<TokenRevocation> {
  try {
    await internals.exchange(async (as) => {
      const http = await oauth.revocationRequest(as, internals.client, internals.auth, token, {
        ...internals.http,
        additionalParameters: { token_type_hint: hint },
      });
      return oauth.processRevocationResponse(http);
    });
    return { revoked: true };
  } catch (error) {
    if (!(error instanceof OAuthError)) throw error;
    // RFC 7009 §2.2.1: a server that cannot revoke this type of token (access tokens, most often:
    // revoking them is only a SHOULD, §2.1) says so. Nothing went wrong; that token just lives on.
    if (error.code === "unsupported_token_type") return { revoked: false };
    // A token the server calls invalid can no longer be used there, which is all revoking it is
    // for. §2.2 has a server answer an invalid token 200, yet Google and Salesforce answer this for
    // one already revoked: by the grant's end (§2.1), or by this very revocation, whose attempt
    // that timed out reached the server before the one retried.
    if (error.code === "invalid_token") return { revoked: true, said: error };
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
