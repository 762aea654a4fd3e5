/**
 * Every decision the flows make is an event, for logs and metrics: hook `onEvent` on the client.
 * Events never carry a token, a code, a verifier, a secret or a session id.
 */

import type { LoginErrorCode, LoginRequiredReason, OAuthErrorCode, OAuthResponseErrorCode } from "./errors.js";

/** The OAuth grant a token request used. */
export type TokenGrant = "authorization_code" | "client_credentials" | "refresh_token";

/** Every event the OAuth flows emit; tell them apart by `type`. */
export type OAuthEvent =
  | {
      /** A token request went to the authorization server. */
      type: "oauth.token.requested";
      /** The grant it used. */
      grant: TokenGrant;
      /** `"issued"`, or the error's code. */
      outcome: string;
      /** How long the request took, in milliseconds. */
      durationMs: number;
    }
  | {
      /**
       * A token request sent once that timed out (`oauth.token.requested` with
       * `server_unavailable`) was not abandoned; this is how its answer ended: `"issued"`, or the
       * error's code (`server_unavailable`: no answer came in time).
       * - A refresh grant: the server may have rotated the refresh token already, and the answer
       *   then holds the only copy of the new one. It is waited for (the session's refresh lock
       *   held meanwhile) until shortly before the lock's lease ends; tokens issued are kept, as a
       *   refresh in time keeps them.
       * - A code exchange: the tokens issued are revoked (`oauth.login.tokens_revoked`), since the
       *   login already ended refused. It is waited for as long again as the exchange could take.
       */
      type: "oauth.token.answered_late";
      /** The grant the request used. */
      grant: TokenGrant;
      /** `"issued"`, or the error's code. */
      outcome: string;
      /** How long the answer was waited for after the request timed out, in milliseconds. */
      durationMs: number;
    }
  | {
      /** Another process was already requesting the token: this one waited and used its result. */
      type: "oauth.token.shared";
      /** The grant the other process used. */
      grant: "client_credentials" | "refresh_token";
      /** How long this one waited, in milliseconds. */
      waitedMs: number;
    }
  | {
      /** The token was due, the server (or the store) failed: the unexpired token was used, and the next call tries again. */
      type: "oauth.token.stale_used";
      /** The grant that failed. */
      grant: "client_credentials" | "refresh_token";
      /** Why it failed: the error's code. */
      code: string;
    }
  | {
      /** The server's metadata could not be discovered; the next call that needs it tries again. */
      type: "oauth.discovery.failed";
      /** The error's code (`server_unavailable`, `invalid_response`, …; `"error"` when untyped). */
      code: string;
      /** How long the discovery took, retries included, in milliseconds. */
      durationMs: number;
    }
  | {
      /** A login was started (`begin`). */
      type: "oauth.login.started";
    }
  | {
      /** A callback was exchanged for tokens. */
      type: "oauth.login.completed";
    }
  | {
      /**
       * A callback did not end in tokens: every `complete` emits this or `oauth.login.completed`,
       * once. Refused before the exchange (a `LoginError`), by the server (its error), or because
       * the exchange failed (an `OAuthResponseError`: the server unreachable, or its token
       * response refused, such as an OpenID Connect answer without an ID token or with another
       * nonce, or an authentication older than `max_age`).
       */
      type: "oauth.login.refused";
      /**
       * The error's code: a `LoginError`'s, the server's error (`access_denied`, …), an
       * `OAuthResponseError`'s (`server_unavailable`, `invalid_response`, `max_age_exceeded`);
       * `"error"` for an untyped failure (the token store's, say).
       */
      code: LoginErrorCode | OAuthErrorCode | OAuthResponseErrorCode | (string & {});
    }
  | {
      /**
       * A session's tokens were deleted because they can no longer be used (`LoginRequiredError`);
       * with `error`, ended all the same though the store failed the delete.
       */
      type: "oauth.session.ended";
      /** Why they can no longer be used. */
      reason: LoginRequiredReason;
      /**
       * The store's error code (`store_unavailable`; `"error"` when untyped), when it failed the
       * delete: the tokens stay in the store until they expire or are written over (a login), and
       * this process uses them no more (it tries the delete again each time it reads them).
       */
      error?: string;
    }
  | {
      /**
       * A refresh's new tokens could not be written to the store. The server had already rotated
       * the refresh token, so they are not dropped: this process keeps them in memory and hands
       * out the new access token, and writes them back (compare-and-set) on the session's next
       * call. Should the process stop before that write succeeds, they are lost, and the session's
       * next refresh (with the old refresh token) is refused: the user logs in again.
       */
      type: "oauth.session.write_failed";
      /** Why the write failed: the error's code (`store_unavailable`; `"error"` when untyped). */
      code: string;
    }
  | {
      /**
       * Tokens the server issued that nothing will hold were revoked at the server (RFC 7009), so
       * that no grant is left behind: those of a login that ended refused (`oauth.login.refused`),
       * of a session's refresh answered once the session was gone, or of a refresh answer that
       * ended its session refused.
       */
      type: "oauth.login.tokens_revoked";
      /**
       * `"late"`: the code exchange timed out after it was sent, and the server's answer came
       * afterwards. `"refused"`: the login refused the server's answer (an ID token for another
       * nonce or without one, an authentication older than `max_age`, …). `"session_ended"`: a
       * session's refresh was answered after the session was logged out (`revoke()`) or ended,
       * its tokens deleted from the store meanwhile. `"refresh_refused"`: a session's refresh
       * answer was refused and ended the session (`oauth.session.ended`, `identity_changed` or
       * `refresh_answer_refused`).
       */
      reason: "late" | "refused" | "session_ended" | "refresh_refused";
      /** Whether the server revoked the refresh token or the access token. */
      revoked: boolean;
      /**
       * The error's code, when revoking at the server failed; or, with `revoked`, the OAuth error
       * the server answered in place of a revocation that still counts: `invalid_token`, for a
       * token no longer valid there (revoked with the grant, RFC 7009 §2.1, or by an attempt whose
       * answer came too late), or another, for the access token once the refresh token was revoked.
       */
      error?: string;
    }
  | {
      /** `revoke()` deleted a session's tokens. */
      type: "oauth.session.revoked";
      /** Whether the server revoked the refresh token or the access token (RFC 7009). */
      revoked: boolean;
      /**
       * The error's code, when revoking at the server failed (`revoke()` threw): the tokens are
       * deleted here all the same, and the server may still honour them until they expire. Or,
       * with `revoked` and `revoke()` resolved, the OAuth error the server answered in place of a
       * revocation that still counts, as `oauth.login.tokens_revoked`'s `error` (`invalid_token`).
       */
      error?: string;
    };

/** An `onEvent` option for the OAuth client: called with each event; a hook that throws changes nothing. */
export type OAuthEventHook = (event: OAuthEvent) => void;
