/**
 * The ID token checks OpenID Connect asks of the client beyond what oauth4webapi validates (its
 * signature, `iss`, `aud`, `exp`, `iat`, `nonce`): that a refresh keeps the same user and
 * authentication (Core §12.2), and that a login that asked for `max_age` got an authentication
 * that recent (Core §3.1.2.1, §3.1.3.7 item 13).
 */

import { utf8 } from "@interlock/core";
import { CLOCK_TOLERANCE_SECONDS } from "./client.js";
import { base64url } from "./encryption.js";
import { OAuthResponseError } from "./errors.js";
import type { IdTokenClaims } from "./tokens.js";

/**
 * The claims of an ID token this package validated when it was issued and has kept since (sealed
 * in the store): read, not validated again. Undefined when it is not a JWT with a JSON payload.
 */
export function keptIdTokenClaims(idToken: string): IdTokenClaims | undefined {
  const payload = idToken.split(".")[1];
  const bytes = payload === undefined ? undefined : base64url.decode(payload);
  if (bytes === undefined) return undefined;
  try {
    const claims: unknown = JSON.parse(utf8.decode(bytes));
    return typeof claims === "object" && claims !== null && !Array.isArray(claims)
      ? (claims as IdTokenClaims)
      : undefined;
  } catch {
    return undefined;
  }
}

/** The audience as a set of client ids, for comparing a string with a one-element list. */
const audiences = (aud: unknown): string => JSON.stringify([...new Set([aud].flat())].sort());

/**
 * Refuses (`id_token_mismatch`) an ID token a refresh answered that breaks OpenID Connect Core
 * §12.2 against the session's ID token: `iss`, `sub` and `aud` must be the same; `azp` the same,
 * and absent when it was absent; `iat` the time the new one was issued, so not before the
 * session's; `auth_time`, when the refreshed one has it (leaving it out is allowed), the
 * session's, when that one has it (without it, the original authentication's time is not known
 * here); and `nonce`, when the refreshed one has it (§12.2, as its errata reads: it should not),
 * the session's, when that one has it (the login's, checked at the login, or one compared with it
 * since; a refreshed ID token without it replaces the session's, and the login's is then not
 * known here). oauth4webapi has checked that `iat` is there, and `iss` and `aud` against the
 * server and the client; it checks no `nonce` in a refresh. The claims are named in the message,
 * never their values.
 */
export function assertSameIdentity(first: string, refreshed: IdTokenClaims): void {
  const original = keptIdTokenClaims(first);
  if (original === undefined) {
    throw new OAuthResponseError(
      "id_token_mismatch",
      "the session's ID token cannot be read to compare the new one with",
    );
  }
  const differing = [
    original.iss !== refreshed.iss && "iss",
    original.sub !== refreshed.sub && "sub",
    audiences(original.aud) !== audiences(refreshed.aud) && "aud",
    original.azp !== refreshed.azp && "azp",
    !(refreshed.iat >= original.iat) && "iat",
    refreshed.auth_time !== undefined &&
      original.auth_time !== undefined &&
      original.auth_time !== refreshed.auth_time &&
      "auth_time",
    refreshed.nonce !== undefined && original.nonce !== undefined && original.nonce !== refreshed.nonce && "nonce",
  ].filter((claim) => claim !== false);
  if (differing.length > 0) {
    throw new OAuthResponseError(
      "id_token_mismatch",
      `the refreshed ID token's ${differing.join(", ")} do not match the session's ID token (OpenID Connect Core §12.2)`,
    );
  }
}

/**
 * Refuses (`max_age_exceeded`) the ID token of a login that asked for `max_age` seconds when it
 * has no `auth_time`, or when the user authenticated longer ago than that, give or take the
 * clock tolerance.
 */
export function assertAuthenticatedWithin(claims: IdTokenClaims | undefined, maxAge: number, nowMs: number): void {
  const authTime = claims?.auth_time;
  if (typeof authTime !== "number" || !Number.isFinite(authTime)) {
    throw new OAuthResponseError("max_age_exceeded", "the login asked for max_age and the ID token has no auth_time");
  }
  const ageSeconds = Math.floor(nowMs / 1000) - authTime;
  if (ageSeconds > maxAge + CLOCK_TOLERANCE_SECONDS) {
    throw new OAuthResponseError(
      "max_age_exceeded",
      `the user authenticated ${ageSeconds} s ago, longer than the login's max_age of ${maxAge} s`,
    );
  }
}
