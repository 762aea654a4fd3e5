/**
 * Token sets as the flows hand them out and as the store keeps them: when each one is due for a
 * refresh, and how it is written (JSON, sealed when a keyring is configured).
 */

import { InterlockConfigError, monotonicNow } from "@interlock/core";
import type { TokenEndpointResponse } from "oauth4webapi";
import { createKeyring, type EncryptionKey, type Keyring } from "./encryption.js";
import { OAuthResponseError, TokenDecryptionError } from "./errors.js";

/** What a token endpoint granted. Times are milliseconds since the epoch. */
export interface TokenSet {
  /** The access token, for `Authorization: Bearer`. */
  accessToken: string;
  /** Lower case, as oauth4webapi normalises it: `"bearer"`, the one type taken (see `TOKEN_RESPONSE_CHECKS`). */
  tokenType: string;
  /** When the access token expires; undefined when the server did not say (`expires_in`). */
  expiresAt: number | undefined;
  /** The refresh token, when the server issued one. */
  refreshToken: string | undefined;
  /**
   * The scope granted: as the server said, or, when its response left it out, the scope the
   * client asked for (RFC 6749 §5.1) or, on a refresh, the scope granted before (§6). Undefined
   * when the server said nothing and nothing was asked for.
   */
  scope: string | undefined;
  /** The OpenID Connect ID token, when one was issued (for `id_token_hint` at logout). */
  idToken: string | undefined;
}

/** Claims of a validated ID token. */
export interface IdTokenClaims {
  /** The issuer. */
  iss: string;
  /** The user's identifier at the issuer: the stable key for your user record. */
  sub: string;
  /** The audience: your client id. */
  aud: string | string[];
  /** Issued at, in seconds since the epoch. */
  iat: number;
  /** Expires at, in seconds since the epoch. */
  exp: number;
  /** The nonce the login sent, checked. */
  nonce?: string;
  /** When the user authenticated, in seconds since the epoch. */
  auth_time?: number;
  /** Any other claim. */
  [claim: string]: unknown;
}

/** When a token is due: `refreshMarginMs` before it expires, but never before half its life. */
export interface Freshness {
  /** How long before expiry a token is renewed, in ms. Default 60 s. */
  refreshMarginMs: number;
  /** Lifetime assumed when the server gives no `expires_in`. */
  assumedLifetimeMs: number;
}

/** Tokens are renewed this long before they expire by default: 60 s. */
export const DEFAULT_REFRESH_MARGIN_MS = 60_000;
/** The lifetime assumed for a token the server gave no `expires_in` by default: 5 minutes. */
export const DEFAULT_ASSUMED_LIFETIME_MS = 5 * 60_000;

/**
 * The longest a token is taken to live, and kept in a store: a year. oauth4webapi takes any finite
 * `expires_in`, and past about 10^305 s its milliseconds are Infinity, which JSON writes as null:
 * a record no store could give back. Such a token is renewed after a year instead.
 */
export const MAX_LIFETIME_MS = 365 * 24 * 60 * 60 * 1000;

export function freshnessOptions(options: Partial<Freshness>): Freshness {
  const refreshMarginMs = options.refreshMarginMs ?? DEFAULT_REFRESH_MARGIN_MS;
  const assumedLifetimeMs = options.assumedLifetimeMs ?? DEFAULT_ASSUMED_LIFETIME_MS;
  if (!Number.isSafeInteger(refreshMarginMs) || refreshMarginMs < 0) {
    throw new InterlockConfigError("refreshMarginMs must be a whole number of ms, 0 or more");
  }
  if (!Number.isSafeInteger(assumedLifetimeMs) || assumedLifetimeMs <= 0) {
    throw new InterlockConfigError("assumedLifetimeMs must be a positive whole number of ms");
  }
  return { refreshMarginMs, assumedLifetimeMs };
}

/** A token set with the moment it is due for renewal. */
export interface StoredTokens extends TokenSet {
  refreshAt: number;
  /**
   * When a token the server gave no `expires_in` is taken to expire: `assumedLifetimeMs` after it
   * came (ms since the epoch). Undefined when `expiresAt` says.
   */
  assumedExpiresAt: number | undefined;
}

/** What a token response is read against: the request it answers, or the tokens a refresh renews. */
export interface GrantContext {
  /** The scope the request asked for, if it asked for one. */
  requestedScope?: string | undefined;
  /** The token set a refresh renews. */
  previous?: TokenSet | undefined;
}

/**
 * An access token or refresh token as RFC 6749 writes them (Appendix A.12, A.17): 1*VSCHAR, one
 * or more characters from space to `~` (%x20-7E). Not RFC 6750's narrower `b64token`: servers
 * issue tokens outside it (Facebook's app tokens hold `|`), and resource servers take them.
 */
const TOKEN_SYNTAX = /^[\x20-\x7e]+$/;

/**
 * Refuses (`invalid_response`) a token response whose access token or refresh token is not
 * 1*VSCHAR (`TOKEN_SYNTAX`). Taken, such a token would be kept until it expired and fail every
 * request made with it: one with a line break or a NUL cannot go in an `Authorization` header,
 * and fetch refuses it with a `TypeError` that quotes it. The message names the field, never the
 * token.
 */
export function assertTokenSyntax(response: TokenEndpointResponse): void {
  for (const field of ["access_token", "refresh_token"] as const) {
    const token = response[field];
    if (token !== undefined && !TOKEN_SYNTAX.test(token)) {
      throw new OAuthResponseError(
        "invalid_response",
        `the token endpoint answered a ${field} that is not 1*VSCHAR (RFC 6749 Appendix A)`,
      );
    }
  }
}

/**
 * The token set a response grants, received at `now`. What the response leaves out is what the
 * client already knows: a `scope` left out is the one requested (RFC 6749 §5.1), or on a refresh
 * the one granted before (§6); a refresh that sent no new refresh token or ID token keeps the old.
 */
export function tokenSetFrom(response: TokenEndpointResponse, now: number, context: GrantContext = {}): TokenSet {
  const { previous } = context;
  const lifetimeMs =
    response.expires_in === undefined
      ? undefined
      : Math.min(MAX_LIFETIME_MS, Math.max(0, Math.floor(response.expires_in * 1000)));
  return {
    accessToken: response.access_token,
    tokenType: response.token_type,
    expiresAt: lifetimeMs === undefined ? undefined : now + lifetimeMs,
    refreshToken: response.refresh_token ?? previous?.refreshToken,
    scope: response.scope ?? previous?.scope ?? context.requestedScope,
    idToken: response.id_token ?? previous?.idToken,
  };
}

/**
 * `tokens` with the moment they are due: `refreshMarginMs` before expiry, never before half their
 * life; and, when the server gave no `expires_in`, the moment their assumed lifetime ends.
 */
export function scheduleRefresh(tokens: TokenSet, now: number, freshness: Freshness): StoredTokens {
  const { expiresAt } = tokens;
  const lifetimeMs = expiresAt === undefined ? freshness.assumedLifetimeMs : Math.max(0, expiresAt - now);
  const dueInMs = Math.max(lifetimeMs - freshness.refreshMarginMs, Math.floor(lifetimeMs / 2));
  return {
    ...publicTokens(tokens as StoredTokens),
    refreshAt: now + dueInMs,
    assumedExpiresAt: expiresAt === undefined ? now + lifetimeMs : undefined,
  };
}

export const isDue = (tokens: StoredTokens, now: number): boolean => now >= tokens.refreshAt;

/** Whether the access token expired, as the server said (`expires_in`): one it said nothing of never does. */
export const isExpired = (tokens: TokenSet, now: number): boolean =>
  tokens.expiresAt !== undefined && now >= tokens.expiresAt;

/**
 * When the access token is past its lifetime: the one the server said, or, when it said nothing,
 * the one assumed for it (`assumedLifetimeMs`). A record stored before the assumed lifetime was
 * kept with it has neither: it is taken to end when due, the earliest that lifetime can end.
 */
export const outlivedAt = (tokens: StoredTokens): number =>
  tokens.expiresAt ?? tokens.assumedExpiresAt ?? tokens.refreshAt;

/**
 * Whether the access token is past its lifetime (`outlivedAt`). A due token is ridden out with,
 * while the server or the store is down, only until then.
 */
export const isOutlived = (tokens: StoredTokens, now: number): boolean => now >= outlivedAt(tokens);

/**
 * Tokens held in this process's memory, with the wall time and the monotonic time at which it
 * got them. Their times are wall times (a store's other readers judge them so), but how long
 * this process keeps using them runs on monotonic time since (`heldNow`): a system clock set
 * back (an NTP step, a VM resumed from a snapshot) cannot keep an expired token in use for as
 * long as the step, nor a clock set forward end a good one early.
 */
export interface HeldTokens {
  readonly tokens: StoredTokens;
  readonly wallAt: number;
  readonly monotonicAt: number;
}

/** `tokens`, held from now: `wallNow` is the wall time they were judged at when they came. */
export const holdTokens = (tokens: StoredTokens, wallNow: number): HeldTokens => ({
  tokens,
  wallAt: wallNow,
  monotonicAt: monotonicNow(),
});

/**
 * The wall time now for `held`, judged as when it came plus the monotonic time since; `now`,
 * the app's own, instead when it gave one (tests move it).
 */
export function heldNow(held: HeldTokens, now: (() => number) | undefined): number {
  return now === undefined ? held.wallAt + (monotonicNow() - held.monotonicAt) : now();
}

/** The token set without bookkeeping, as handed to users. */
export function publicTokens(tokens: TokenSet & { refreshAt?: number }): TokenSet {
  const { accessToken, tokenType, expiresAt, refreshToken, scope, idToken } = tokens;
  return { accessToken, tokenType, expiresAt, refreshToken, scope, idToken };
}

/** A record read back from a store has the shape of stored tokens (a corrupt one is refused, never used). */
export function assertStoredTokens(value: unknown): StoredTokens {
  const tokens = value as StoredTokens;
  const optional = (field: unknown, type: string) => field === undefined || field === null || typeof field === type;
  if (
    typeof tokens?.accessToken !== "string" ||
    typeof tokens.tokenType !== "string" ||
    typeof tokens.refreshAt !== "number" ||
    !optional(tokens.expiresAt, "number") ||
    !optional(tokens.refreshToken, "string") ||
    !optional(tokens.scope, "string") ||
    !optional(tokens.idToken, "string") ||
    !optional(tokens.assumedExpiresAt, "number")
  ) {
    throw new TokenDecryptionError("a stored token record is malformed");
  }
  // JSON has no undefined: absent fields come back missing, and are put back as undefined.
  return { ...publicTokens(tokens), refreshAt: tokens.refreshAt, assumedExpiresAt: tokens.assumedExpiresAt };
}

/**
 * Writes and reads the records the flows keep in a store: JSON, sealed with the keyring when
 * there is one (then nothing unsealed is accepted back, so a value written into the store by
 * someone else is refused rather than trusted).
 */
export class RecordCodec {
  readonly #keyring: Keyring | undefined;

  constructor(keys: readonly EncryptionKey[] | Keyring | undefined) {
    this.#keyring = keys === undefined ? undefined : Array.isArray(keys) ? createKeyring(keys) : (keys as Keyring);
  }

  get encrypted(): boolean {
    return this.#keyring !== undefined;
  }

  async write(storeKey: string, record: object): Promise<string> {
    const json = JSON.stringify(record);
    return this.#keyring === undefined ? json : this.#keyring.seal(json, storeKey);
  }

  async read<T>(storeKey: string, value: string): Promise<T> {
    if (this.#keyring !== undefined) return JSON.parse(await this.#keyring.open(value, storeKey)) as T;
    if (!value.startsWith("{")) {
      throw new TokenDecryptionError("a stored value is encrypted, and no encryption keys are configured");
    }
    try {
      return JSON.parse(value) as T;
    } catch {
      // Refused as an altered sealed value is. No cause: JSON.parse's message quotes the value.
      throw new TokenDecryptionError("a stored value is not the JSON record written there");
    }
  }
}
