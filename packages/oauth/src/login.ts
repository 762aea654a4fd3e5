/**
 * Authorization Code + PKCE for a server-side app (the backend-for-frontend pattern): the app
 * keeps the pending login and the tokens, the browser only carries the `state` (in a short-lived
 * cookie) and, after the login, an opaque session id.
 *
 * `begin` makes the authorization URL (S256 challenge, `state`, and `nonce` when OpenID Connect is
 * asked for) and keeps the verifier server-side for `pendingTtlMs`. `complete` checks the callback
 * (the browser's own state, a known and unused login, the issuer), then exchanges the code with the
 * verifier. A login completes once: its pending entry is deleted, compare-and-set, before the code
 * is exchanged, so a replayed or concurrent callback is refused.
 */

import { assertOptionNames, InterlockConfigError, optionNames } from "@interlock/core";
import * as oauth from "oauth4webapi";
import { clientInternals, type OAuthClient, TOKEN_RESPONSE_CHECKS, typedError } from "./client.js";
import { clientSpace, sha256Hex } from "./client-space.js";
import type { EncryptionKey, Keyring } from "./encryption.js";
import { eventCode, LoginError, OAuthResponseError } from "./errors.js";
import { assertAuthenticatedWithin } from "./id-token.js";
import { CLIENT_PARAMS, extraParams, type ReservedParams } from "./params.js";
import { codeChallenge, generateCodeVerifier, isCodeVerifier } from "./pkce.js";
import { type GrantTokens, grantTokensIn, revokeOrphans, tokensAnswered } from "./revocation.js";
import { isEntryKey, type TokenStore } from "./store/contract.js";
import { defaultTokenStore } from "./store/memory.js";
import { prefixOption } from "./token-source.js";
import { type IdTokenClaims, RecordCodec, type TokenSet, tokenSetFrom } from "./tokens.js";
import { keptLateAnswer, type LateAnswer, lateAnswerWithin } from "./transport.js";

/** Where a login sends the user back, what it asks for, and where pending logins wait. */
export interface LoginOptions {
  /**
   * The app's callback URL, as registered with the authorization server: it is sent exactly as
   * given (a `URL` object as its `href`), since the server compares the two as strings.
   */
  redirectUri: string | URL;
  /**
   * Default `"openid"`. Include `offline_access` where the server wants it for a refresh token.
   * The scope a login sends (this one, or its `params`' own) decides OpenID Connect: with
   * `openid`, a `nonce` and a required ID token; without, neither.
   */
  scope?: string;
  /** Where pending logins wait. Default: a memory store (one process). Use a shared store for several instances. */
  store?: TokenStore;
  /** Seal pending logins (they hold the PKCE verifier) in the store; see `createKeyring`. */
  encryptionKeys?: readonly EncryptionKey[] | Keyring;
  /** How long a login may take, from `begin` to the callback, in ms. Default 10 minutes. */
  pendingTtlMs?: number;
  /** Extra authorization request parameters for every login (`prompt`, `audience`, `resource`, …). */
  params?: Record<string, string>;
  /** Put before every store key. Default `"oauth:"`. */
  keyPrefix?: string;
}

/** Options of one login. */
export interface BeginLoginOptions {
  /** Where to send the user after the login: kept only if it is a path on this site (`/…`, not `//…`). */
  returnTo?: string;
  /** Extra authorization request parameters for this login (`login_hint`, `prompt`, …). */
  params?: Record<string, string>;
  /**
   * The longest ago, in seconds, the user may have authenticated at the server: sent as `max_age`
   * (OpenID Connect), which makes the server ask the user to log in again when their session there
   * is older. The ID token must then carry `auth_time`, no older than that (30 s of clock
   * tolerance); otherwise `complete` fails with `OAuthResponseError` `max_age_exceeded`. A
   * `max_age` given in `params` is checked the same way.
   */
  maxAge?: number;
}

/** A started login: redirect the browser to `url`, and keep `state` in a cookie. */
export interface LoginStart {
  /** Redirect the browser here. */
  url: URL;
  /** Put it in a short-lived HttpOnly, SameSite=Lax cookie and hand it back to `complete`. */
  state: string;
  /** When the pending login expires (ms since the epoch): the cookie's lifetime. */
  expiresAt: number;
}

/** A completed login. */
export interface LoginResult {
  /** The tokens the code was exchanged for: keep them server-side (`createSessionTokens`). */
  tokens: TokenSet;
  /** The validated ID token's claims (OpenID Connect); undefined for plain OAuth. */
  claims: IdTokenClaims | undefined;
  /** The `returnTo` given to `begin`, when it was a path on this site. */
  returnTo: string | undefined;
}

/** What `complete` checks the callback against. */
export interface CompleteLoginOptions {
  /** The state this browser started with (from its cookie). */
  state: string | undefined;
}

/** Authorization Code + PKCE for a server-side app, from `createLogin`. */
export interface Login {
  /** Starts a login: the authorization URL, with the PKCE verifier kept server-side. */
  begin(options?: BeginLoginOptions): Promise<LoginStart>;
  /**
   * `callback` is the callback URL the browser came back to: whole, its path and query (a
   * framework's `req.url`), or its query parameters.
   */
  complete(callback: URL | string | URLSearchParams, options: CompleteLoginOptions): Promise<LoginResult>;
}

interface PendingLogin {
  verifier: string;
  nonce?: string;
  /** The scope the login asked for: a token response without `scope` granted it (RFC 6749 §5.1). */
  scope?: string;
  /** The `max_age` the login sent, in seconds. */
  maxAge?: number;
  redirectUri: string;
  returnTo?: string;
}

/** How long a login may take by default, from `begin` to the callback: 10 minutes. */
export const DEFAULT_PENDING_TTL_MS = 10 * 60_000;

/** What a login's `params` may not set: the client's parameters, and the login's own. */
const RESERVED: ReservedParams = new Map([
  ...CLIENT_PARAMS,
  ["redirect_uri", "the redirectUri option"],
  ...["response_type", "state", "nonce", "code_challenge", "code_challenge_method"].map(
    (name) => [name, "the login itself"] as const,
  ),
]);

const LOGIN_OPTION_NAMES = optionNames<LoginOptions>({
  redirectUri: true,
  scope: true,
  store: true,
  encryptionKeys: true,
  pendingTtlMs: true,
  params: true,
  keyPrefix: true,
});
const BEGIN_OPTION_NAMES = optionNames<BeginLoginOptions>({ returnTo: true, params: true, maxAge: true });
const COMPLETE_OPTION_NAMES = optionNames<CompleteLoginOptions>({ state: true });

/** `max_age` in whole seconds, 0 or more (0 asks the server to authenticate the user again). */
function maxAgeOption(value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new InterlockConfigError("maxAge (max_age) must be a whole number of seconds, 0 or more");
  }
  return value;
}

/** Whether a scope parameter asks for OpenID Connect: `openid` among its space-separated values (RFC 6749 §3.3). */
const isOpenIdScope = (scope: string | null): boolean => scope?.split(" ").includes("openid") === true;

/** A path on this site, or nothing: a login must not become an open redirect. */
export function safeReturnTo(value: string | undefined): string | undefined {
  if (typeof value !== "string" || !value.startsWith("/") || value.startsWith("//") || value.startsWith("/\\")) {
    return undefined;
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused.
  return /[\u0000-\u001f\u007f]/.test(value) ? undefined : value;
}

/** Equal strings, compared in time independent of where they differ. */
function sameText(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return difference === 0;
}

/**
 * The redirect URI exactly as given: the server compares it with the registered one by simple
 * string comparison (RFC 6749 §3.1.2.3, RFC 9700 §2.1), which a URL parsed and printed again
 * can fail (`https://app.example` becomes `https://app.example/`, a default port goes, a host is
 * lower-cased): the login would be refused as a redirect URI that is not registered. A fragment
 * is refused: the endpoint URI must not include one (RFC 6749 §3.1.2).
 */
function redirectUriOption(value: string | URL): string {
  const text = value instanceof URL ? value.href : value;
  if (typeof text !== "string" || !URL.canParse(text)) {
    throw new InterlockConfigError("redirectUri must be an absolute URL");
  }
  // Printed again, a URL has a `#` exactly when it has a fragment, an empty one (`hash` "") too.
  if (new URL(text).href.includes("#")) {
    throw new InterlockConfigError("redirectUri must have no fragment (RFC 6749 §3.1.2)");
  }
  return text;
}

/**
 * Where the browser is sent to log in: the server's `authorization_endpoint`, checked as
 * oauth4webapi checks the endpoints it calls itself (an absolute URL, `https` unless the client
 * allows `http`): metadata without a usable one is `invalid_response`, not a `TypeError`.
 */
function authorizationEndpoint(server: oauth.AuthorizationServer, allowHttp: boolean): URL {
  const endpoint = server.authorization_endpoint;
  if (typeof endpoint !== "string" || !URL.canParse(endpoint)) {
    throw new OAuthResponseError("invalid_response", "the authorization server has no valid authorization_endpoint");
  }
  const url = new URL(endpoint);
  if (url.protocol !== "https:" && !(allowHttp && url.protocol === "http:")) {
    throw new OAuthResponseError("invalid_response", "the authorization server's authorization_endpoint is not https");
  }
  return url;
}

/**
 * The authorization response's parameters (RFC 6749 §4.1.2, §4.1.2.1; RFC 9207), which it carries
 * once at most (RFC 6749 §3.1): a callback that repeats one is no answer a server gives.
 */
const RESPONSE_PARAMETERS = ["code", "state", "iss", "error", "error_description", "error_uri"] as const;

function callbackParameters(callback: URL | string | URLSearchParams): URLSearchParams {
  if (callback instanceof URLSearchParams) return callback;
  if (callback instanceof URL) return callback.searchParams;
  if (typeof callback === "string") {
    if (URL.canParse(callback)) return new URL(callback).searchParams;
    // A path and its query, as a framework gives the request's URL (Express `req.url` and
    // `req.originalUrl`, Fastify `request.url`, Koa `ctx.url`): read as parameters, its path
    // would swallow the first one's name ("/callback?code").
    if (callback.startsWith("/")) return new URL(callback, "http://callback.invalid").searchParams;
    return new URLSearchParams(callback.startsWith("?") ? callback.slice(1) : callback);
  }
  throw new LoginError("invalid_callback", "the callback must be a URL or its query parameters");
}

/** The login flow for `client`: `begin` before redirecting the browser, `complete` on its callback. */
export function createLogin(client: OAuthClient, options: LoginOptions): Login {
  assertOptionNames("createLogin()", options, LOGIN_OPTION_NAMES);
  const internals = clientInternals(client);
  const redirectUri = redirectUriOption(options?.redirectUri);
  const scope = options.scope ?? "openid";
  if (typeof scope !== "string") throw new InterlockConfigError("scope must be a space-separated string");
  const store = options.store ?? defaultTokenStore(internals);
  const codec = new RecordCodec(options.encryptionKeys);
  const pendingTtlMs = options.pendingTtlMs ?? DEFAULT_PENDING_TTL_MS;
  if (!Number.isSafeInteger(pendingTtlMs) || pendingTtlMs <= 0) {
    throw new InterlockConfigError("pendingTtlMs must be a positive whole number of ms");
  }
  const defaults = extraParams(options.params, "params", RESERVED);
  const prefix = prefixOption(options.keyPrefix);
  // Whose logins these are (see client-space.ts): a callback of one client never takes another's pending login.
  const space = clientSpace(client);
  // The state as keys hold it: its SHA-256. Keys are no secret (MONITOR, slow logs, the store's
  // own errors show them), and the state is what ties a callback to the browser that began it.
  const pendingKey = async (state: string) => `${prefix}login:${await space}:${await sha256Hex(state)}`;

  async function begin(beginOptions: BeginLoginOptions = {}): Promise<LoginStart> {
    assertOptionNames("login.begin()", beginOptions, BEGIN_OPTION_NAMES);
    const url = authorizationEndpoint(await internals.server(), internals.http[oauth.allowInsecureRequests]);
    const state = oauth.generateRandomState();
    const verifier = generateCodeVerifier();
    const pending: PendingLogin = { verifier, redirectUri };
    const returnTo = safeReturnTo(beginOptions.returnTo);
    if (returnTo !== undefined) pending.returnTo = returnTo;

    const query = url.searchParams;
    for (const [name, value] of [...defaults, ...extraParams(beginOptions.params, "begin params", RESERVED)]) {
      query.set(name, value);
    }
    if (!query.has("scope")) query.set("scope", scope);
    const requestedScope = query.get("scope");
    // OpenID Connect or not is the scope sent, the option's or a login's own `params`: a nonce
    // without `openid` is a malformed request (oidc-provider refuses it, invalid_request), and a
    // login that asks for `openid` must get an ID token bound to it by its nonce.
    if (isOpenIdScope(requestedScope)) pending.nonce = oauth.generateRandomNonce();
    if (beginOptions.maxAge !== undefined) query.set("max_age", String(maxAgeOption(beginOptions.maxAge)));
    query.set("response_type", "code");
    query.set("client_id", client.clientId);
    query.set("redirect_uri", redirectUri);
    query.set("state", state);
    if (pending.nonce !== undefined) query.set("nonce", pending.nonce);
    query.set("code_challenge", await codeChallenge(verifier));
    query.set("code_challenge_method", "S256");
    if (requestedScope) pending.scope = requestedScope;
    const maxAge = query.get("max_age");
    if (maxAge !== null) pending.maxAge = maxAgeOption(maxAge === "" ? Number.NaN : Number(maxAge));

    const key = await pendingKey(state);
    const stored = await store.set(key, await codec.write(key, pending), { ttlMs: pendingTtlMs, expect: null });
    // A fresh 256-bit state cannot already be there; if it is, something else wrote it.
    if (stored === undefined) throw new LoginError("state_unknown", "a login with this state already exists");
    internals.emit({ type: "oauth.login.started" });
    return { url, state, expiresAt: internals.now() + pendingTtlMs };
  }

  /** Takes the pending login out of the store: exactly one callback gets it. */
  async function claimPending(state: string): Promise<PendingLogin> {
    // The state is the browser's input: one no store could hold was never issued, and is no
    // configuration error of ours (a 500).
    if (!isEntryKey(state)) {
      throw new LoginError("state_unknown", "no pending login for this state: it is not one a login issues");
    }
    const key = await pendingKey(state);
    const entry = await store.get(key);
    if (entry === undefined || !(await store.delete(key, entry.version))) {
      throw new LoginError("state_unknown", "no pending login for this state: unknown, expired or already completed");
    }
    const pending = await codec.read<PendingLogin>(key, entry.value);
    if (!isCodeVerifier(pending?.verifier) || typeof pending.redirectUri !== "string") {
      throw new LoginError("state_unknown", "the pending login for this state is malformed");
    }
    return pending;
  }

  function checkIssuer(server: oauth.AuthorizationServer, parameters: URLSearchParams): void {
    // RFC 9207: a server that says it sends `iss` must send its own; without it the response may
    // come from another server the user was sent to (mix-up).
    const iss = parameters.get("iss");
    if (iss === null && server.authorization_response_iss_parameter_supported === true) {
      throw new LoginError("issuer_mismatch", "the callback has no iss, and the server always sends it");
    }
    if (iss !== null && iss !== server.issuer) {
      throw new LoginError("issuer_mismatch", "the callback's iss is not this authorization server");
    }
  }

  async function complete(
    callback: URL | string | URLSearchParams,
    completeOptions: CompleteLoginOptions,
  ): Promise<LoginResult> {
    try {
      const result = await exchangeCallback(callback, completeOptions);
      internals.emit({ type: "oauth.login.completed" });
      return result;
    } catch (error) {
      // Every callback ends in one of the two events, so started = completed + refused: one the
      // token response failed (a missing ID token, a bad nonce, the server down) is refused too.
      internals.emit({ type: "oauth.login.refused", code: eventCode(error) });
      throw error;
    }
  }

  async function exchangeCallback(
    callback: URL | string | URLSearchParams,
    completeOptions: CompleteLoginOptions,
  ): Promise<LoginResult> {
    // Checked here, not before: a callback refused for it still ends in `oauth.login.refused`.
    assertOptionNames("login.complete()", completeOptions, COMPLETE_OPTION_NAMES);
    const parameters = callbackParameters(callback);
    // Before anything reads one of them, and before the pending login is used up: oauth4webapi
    // would refuse a repeated code only inside the exchange, as the server's fault.
    const repeated = RESPONSE_PARAMETERS.find((name) => parameters.getAll(name).length > 1);
    if (repeated !== undefined) throw new LoginError("invalid_callback", `the callback has ${repeated} more than once`);
    const state = parameters.get("state");
    if (state === null || state === "") throw new LoginError("state_missing", "the callback has no state");
    const expected = completeOptions?.state;
    if (typeof expected !== "string" || !sameText(expected, state)) {
      throw new LoginError("state_mismatch", "the callback's state is not the one this browser's login started with");
    }
    const pending = await claimPending(state);
    const server = await internals.server();
    checkIssuer(server, parameters);

    let validated: URLSearchParams;
    try {
      validated = oauth.validateAuthResponse(server, internals.client, parameters, state);
    } catch (error) {
      // An error the server redirected back with (access_denied, …) is the server's answer.
      if (error instanceof oauth.AuthorizationResponseError) throw await typedError(error, "authorization");
      throw new LoginError("invalid_callback", `the callback is not a valid authorization response`);
    }
    if (!validated.get("code")) throw new LoginError("invalid_callback", "the callback has no code");

    const { http, late } = keptLateAnswer(internals.http);
    let issued: Response | undefined;
    let response: oauth.TokenEndpointResponse;
    try {
      response = await internals.exchange(async (as) => {
        const answer = await oauth.authorizationCodeGrantRequest(
          as,
          internals.client,
          internals.auth,
          validated,
          pending.redirectUri,
          pending.verifier,
          http,
        );
        issued = answer.clone(); // read only if the answer is refused below
        return pending.nonce === undefined
          ? oauth.processAuthorizationCodeResponse(as, internals.client, answer, TOKEN_RESPONSE_CHECKS)
          : oauth.processAuthorizationCodeResponse(as, internals.client, answer, {
              ...TOKEN_RESPONSE_CHECKS,
              expectedNonce: pending.nonce,
              requireIdToken: true,
            });
      }, "authorization_code");
    } catch (error) {
      const lateAnswer = late();
      if (lateAnswer !== undefined) void revokeLate(lateAnswer);
      else if (issued !== undefined) void revokeRefused(tokensAnswered(issued));
      throw error;
    }
    const claims = oauth.getValidatedIdTokenClaims(response) as IdTokenClaims | undefined;
    if (pending.maxAge !== undefined) {
      try {
        assertAuthenticatedWithin(claims, pending.maxAge, internals.now());
      } catch (error) {
        void revokeRefused(grantTokensIn(response));
        throw error;
      }
    }
    const tokens = tokenSetFrom(response, internals.now(), { requestedScope: pending.scope });
    return { tokens, claims, returnTo: pending.returnTo };
  }

  /**
   * Revokes the tokens of a code exchange this login refused (an ID token without its nonce, an
   * authentication older than `max_age`, …): the server issued them, and nothing will hold them.
   */
  async function revokeRefused(issued: GrantTokens | undefined | Promise<GrantTokens | undefined>): Promise<void> {
    const tokens = await issued;
    if (tokens !== undefined) await revokeOrphans(internals, tokens, "refused");
  }

  /**
   * Reads, for as long again as the exchange could take, the answer to a code exchange that timed
   * out after it was sent, and revokes the tokens it brings: the caller was answered with the
   * timeout, and a login completes once, so nothing will hold them. Told as
   * `oauth.token.answered_late`, then `oauth.login.tokens_revoked`.
   */
  async function revokeLate(late: LateAnswer): Promise<void> {
    const { answer, done } = lateAnswerWithin(late, internals.longestSingleRequestMs, "code exchange");
    try {
      const tokens = await internals.exchange(
        async (as) => {
          const response = await answer;
          // Anything but tokens is checked as an answer in time would be, for the server's error.
          const processed = async () =>
            grantTokensIn(await oauth.processAuthorizationCodeResponse(as, internals.client, response));
          return (await tokensAnswered(response)) ?? processed();
        },
        "authorization_code",
        "late",
      );
      if (tokens !== undefined) await revokeOrphans(internals, tokens, "late");
    } catch {
      // Told by `oauth.token.answered_late`: no tokens came, so none are left without a holder.
    } finally {
      done();
    }
  }

  return { begin, complete };
}
