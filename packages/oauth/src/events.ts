/**
 * Every decision the flows make is an event, for logs and metrics: hook `onEvent` on the client.
 * Events never carry a token, a code, a verifier, a secret or a session id.
 */

import type { LoginErrorCode, LoginRequiredReason } from "./errors.js";

export type TokenGrant = "authorization_code" | "client_credentials" | "refresh_token";

export type OAuthEvent =
  /** A token request went to the authorization server: `outcome` is `"issued"` or the error's code. */
  | { type: "oauth.token.requested"; grant: TokenGrant; outcome: string; durationMs: number }
  /** Another process was already requesting the token: this one waited and used its result. */
  | { type: "oauth.token.shared"; grant: "client_credentials" | "refresh_token"; waitedMs: number }
  /** The token was due, the server (or the store) failed: the unexpired token was used, and the next call tries again. */
  | { type: "oauth.token.stale_used"; grant: "client_credentials" | "refresh_token"; code: string }
  /** A login was started (`begin`). */
  | { type: "oauth.login.started" }
  /** A callback was exchanged for tokens. */
  | { type: "oauth.login.completed" }
  /** A callback was refused: `code` of the `LoginError`, or the server's error (`access_denied`, …). */
  | { type: "oauth.login.refused"; code: LoginErrorCode | (string & {}) }
  /** A session's tokens were deleted because they can no longer be used. */
  | { type: "oauth.session.ended"; reason: LoginRequiredReason }
  /** `revoke()` deleted a session's tokens; `revoked`: the server was told. */
  | { type: "oauth.session.revoked"; revoked: boolean };

export type OAuthEventHook = (event: OAuthEvent) => void;
