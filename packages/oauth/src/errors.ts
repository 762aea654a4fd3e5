/**
 * What can go wrong on the client side of OAuth, as typed `InterlockError`s with a stable
 * `code` and the HTTP status an app (the backend-for-frontend) should answer. Neither messages
 * nor causes contain a token, a code, a verifier or a client secret.
 */

import { brandErrorClass, InterlockError, type ProblemDetails } from "@interlock/core";

/**
 * Error codes an authorization server answers with: RFC 6749 §5.2 (token endpoint), §4.1.2.1
 * (authorization response), RFC 7009 (revocation), RFC 8707 (`invalid_target`) and OpenID
 * Connect Core §3.1.2.6 (authorization response: `login_required` and the others a login sent
 * with `prompt=none` gets back). A server may use extension codes, so any string can appear.
 */
export type OAuthErrorCode =
  | "invalid_request"
  | "invalid_client"
  | "invalid_grant"
  | "unauthorized_client"
  | "unsupported_grant_type"
  | "invalid_scope"
  | "invalid_target"
  | "unsupported_token_type"
  | "access_denied"
  | "unsupported_response_type"
  | "server_error"
  | "temporarily_unavailable"
  | "interaction_required"
  | "login_required"
  | "account_selection_required"
  | "consent_required"
  | "invalid_request_uri"
  | "invalid_request_object"
  | "request_not_supported"
  | "request_uri_not_supported"
  | "registration_not_supported";

const OAUTH_ERRORS: Record<OAuthErrorCode, { status: number; title: string }> = {
  // Our request or our client registration is wrong: the app's problem, reported as a bad gateway.
  invalid_request: { status: 502, title: "The authorization server refused the request as malformed" },
  invalid_client: { status: 502, title: "The authorization server did not accept the client's credentials" },
  unauthorized_client: { status: 502, title: "The client is not allowed to use this grant" },
  unsupported_grant_type: { status: 502, title: "The authorization server does not support this grant" },
  invalid_scope: { status: 502, title: "The requested scope is invalid or not allowed" },
  invalid_target: { status: 502, title: "The requested resource is invalid or not allowed" },
  unsupported_token_type: { status: 502, title: "The authorization server cannot revoke this type of token" },
  unsupported_response_type: { status: 502, title: "The authorization server does not support this response type" },
  invalid_request_uri: { status: 502, title: "The authorization server refused the request_uri" },
  invalid_request_object: { status: 502, title: "The authorization server refused the request object" },
  request_not_supported: { status: 502, title: "The authorization server does not support request objects" },
  request_uri_not_supported: { status: 502, title: "The authorization server does not support request_uri" },
  registration_not_supported: { status: 502, title: "The authorization server does not support registration" },
  // The grant (code or refresh token) is no longer good: the user has to log in again.
  invalid_grant: { status: 401, title: "The authorization grant is invalid, expired or revoked" },
  access_denied: { status: 403, title: "The user or the authorization server denied the request" },
  // A login sent without interaction (`prompt=none`) that needs it: not a failure of the app or
  // the server, so not a 502. The user has to go through the login interactively.
  login_required: { status: 401, title: "The user has to log in at the authorization server" },
  interaction_required: { status: 401, title: "The user has to interact with the authorization server" },
  account_selection_required: { status: 401, title: "The user has to choose an account at the authorization server" },
  consent_required: { status: 401, title: "The user has to consent at the authorization server" },
  server_error: { status: 503, title: "The authorization server failed" },
  temporarily_unavailable: { status: 503, title: "The authorization server is temporarily unavailable" },
};

/**
 * Where an `OAuthError` came from: the metadata request (`discovery`), the token or revocation
 * endpoint, or the authorization redirect back to the app (`authorization`).
 */
export type OAuthEndpoint = "discovery" | "token" | "revocation" | "authorization";

const WHERE: Record<OAuthEndpoint, string> = {
  discovery: "to the metadata request (discovery)",
  token: "at its token endpoint",
  revocation: "at its revocation endpoint",
  authorization: "in the authorization redirect",
};

/**
 * The authorization server refused a request with an OAuth error. The message names the code and
 * where it came from, never the server's `error_description` (on `description`): a server may
 * echo the request there, the code, the verifier, a refresh token or the client's secret.
 */
export class OAuthError extends InterlockError {
  static {
    brandErrorClass(OAuthError, "@interlock/oauth:OAuthError");
  }
  /** The class name, the same in every copy of the package: match on it (or `code`) across copies. */
  override readonly name = "OAuthError";
  /** The server's `error` code, as sent. */
  readonly code: OAuthErrorCode | (string & {});
  readonly status: number;
  readonly title: string;
  /** The server's `error_description` (see `description`). */
  readonly #description: string | undefined;
  /** The server's `error_uri`, when it sent one. */
  readonly uri: string | undefined;
  /** The HTTP status of the server's response; undefined for an error in the authorization redirect. */
  readonly responseStatus: number | undefined;

  constructor(
    code: string,
    options: {
      description?: string | undefined;
      uri?: string | undefined;
      responseStatus?: number | undefined;
      endpoint?: OAuthEndpoint | undefined;
    } = {},
  ) {
    const known = OAUTH_ERRORS[code as OAuthErrorCode] as { status: number; title: string } | undefined;
    const where = options.endpoint === undefined ? "" : ` ${WHERE[options.endpoint]}`;
    super(`authorization server answered ${code}${where}`);
    this.code = code;
    this.status = known?.status ?? 502;
    this.title = known?.title ?? "The authorization server refused the request";
    this.#description = options.description;
    this.uri = options.uri;
    this.responseStatus = options.responseStatus;
  }

  /**
   * The server's `error_description`, when it sent one: its own words, which may echo the request
   * (the code, the verifier, a refresh token, the client's secret). In no `message`, and no own
   * property, so an error logged whole (`console.error`, `util.inspect`, JSON, pino) leaves it out:
   * read it only where such values may go.
   */
  get description(): string | undefined {
    return this.#description;
  }

  /**
   * The problem+json body for an app to answer its own client with: the code and its title,
   * without the server's `error_description`. That text is the server's (any words it chose,
   * possibly echoing the request), and in an authorization redirect it is whatever the link's
   * query string says: kept on `description` only, not relayed.
   */
  override toProblem(): ProblemDetails {
    return { ...super.toProblem(), detail: `authorization server answered ${this.code}` };
  }
}

/**
 * Why the authorization server's answer could not be used: unreachable or failing, invalid, a
 * refreshed ID token for another user or authentication (`id_token_mismatch`), or a login that
 * asked for `max_age` answered with an authentication older than that (`max_age_exceeded`).
 */
export type OAuthResponseErrorCode =
  | "server_unavailable"
  | "invalid_response"
  | "id_token_mismatch"
  | "max_age_exceeded";

/**
 * The authorization server could not be reached, failed (5xx, 429), or answered something that is
 * not a valid OAuth response (wrong status, not JSON, an ID token that fails validation, metadata
 * for another issuer, a token that is not 1*VSCHAR). `server_unavailable` is worth retrying later;
 * the others are not. `id_token_mismatch`: a refresh answered an ID token whose `iss`, `sub`,
 * `aud`, `auth_time` or `nonce` is not the first one's (OpenID Connect Core §12.2); its tokens
 * were not stored. `max_age_exceeded`: the ID token of a login that asked for `max_age` has no
 * `auth_time`, or an older one (§3.1.3.7).
 */
export class OAuthResponseError extends InterlockError {
  static {
    brandErrorClass(OAuthResponseError, "@interlock/oauth:OAuthResponseError");
  }
  /** The class name, the same in every copy of the package: match on it (or `code`) across copies. */
  override readonly name = "OAuthResponseError";
  readonly code: OAuthResponseErrorCode;
  readonly status: number;
  readonly title: string;
  /** The HTTP status of the server's response, when there was one. */
  readonly responseStatus: number | undefined;

  constructor(
    code: OAuthResponseErrorCode,
    message: string,
    options: { responseStatus?: number | undefined; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.code = code;
    this.responseStatus = options.responseStatus;
    if (code === "server_unavailable") {
      this.status = 503;
      this.title = "The authorization server is unavailable";
    } else {
      this.status = 502;
      this.title = "The authorization server sent an invalid response";
    }
  }
}

/** Why a login callback was refused. */
export type LoginErrorCode =
  | "state_missing"
  | "state_mismatch"
  | "state_unknown"
  | "issuer_mismatch"
  | "invalid_callback";

const LOGIN_ERRORS: Record<LoginErrorCode, string> = {
  state_missing: "The callback has no state",
  state_mismatch: "The callback's state is not the one this browser started",
  state_unknown: "The login is unknown, expired or already completed",
  issuer_mismatch: "The callback comes from another issuer",
  invalid_callback: "The callback is not a valid authorization response",
};

/** A login callback refused before any code was exchanged: start the login again. */
export class LoginError extends InterlockError {
  static {
    brandErrorClass(LoginError, "@interlock/oauth:LoginError");
  }
  /** The class name, the same in every copy of the package: match on it (or `code`) across copies. */
  override readonly name = "LoginError";
  readonly code: LoginErrorCode;
  readonly status = 400;
  readonly title: string;

  constructor(code: LoginErrorCode, message: string) {
    super(message);
    this.code = code;
    this.title = LOGIN_ERRORS[code];
  }
}

/**
 * Why a session has no usable token: never logged in (or logged out), expired without a refresh
 * token, its refresh token was refused, a resource server refused its access token (401) and
 * there is no refresh token to get another with, a refresh answered with an ID token about
 * another user or authentication (OpenID Connect Core §12.2), or a refresh answered with a new
 * refresh token in an answer this client refused (`refresh_answer_refused`: the server rotated,
 * so the one kept is used up).
 */
export type LoginRequiredReason =
  | "no_session"
  | "expired"
  | "refresh_rejected"
  | "token_rejected"
  | "identity_changed"
  | "refresh_answer_refused";

/**
 * A session has no usable token: it never logged in (or logged out, or was revoked), its access
 * token expired or was refused by a resource server without a refresh token to renew it, or its
 * refresh failed for good (the server refused the refresh token, or this client refused the
 * answer: see `reason`). The session's tokens are gone from the store; send the user through the
 * login again.
 */
export class LoginRequiredError extends InterlockError {
  static {
    brandErrorClass(LoginRequiredError, "@interlock/oauth:LoginRequiredError");
  }
  /** The class name, the same in every copy of the package: match on it (or `code`) across copies. */
  override readonly name = "LoginRequiredError";
  readonly code = "login_required";
  readonly status = 401;
  readonly title = "Log in again";
  /** Why the session has no usable token. */
  readonly reason: LoginRequiredReason;

  constructor(reason: LoginRequiredReason, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.reason = reason;
  }
}

/**
 * A stored value could not be decrypted: it was sealed with a key that is no longer listed, or it
 * was altered (or moved to another key in the store). Nothing is returned from such a value.
 */
export class TokenDecryptionError extends InterlockError {
  static {
    brandErrorClass(TokenDecryptionError, "@interlock/oauth:TokenDecryptionError");
  }
  /** The class name, the same in every copy of the package: match on it (or `code`) across copies. */
  override readonly name = "TokenDecryptionError";
  readonly code = "token_decryption_failed";
  readonly status = 500;
  readonly title = "A stored token could not be decrypted";
}

/** How an event names a failure: the typed error's `code`, or `"error"` for anything untyped. */
export const eventCode = (error: unknown): string => (error instanceof InterlockError ? error.code : "error");
