/**
 * The OAuth client: who we are (client id and authentication), which authorization server we
 * talk to (discovered once, or given), and the one transport every request to it goes through.
 * The flows (login, client credentials, sessions) take a client; the protocol itself is
 * oauth4webapi's.
 */

import {
  assertOptionNames,
  checkedClock,
  choiceOption,
  emit,
  InterlockConfigError,
  InterlockError,
  monotonicNow,
  optionNames,
} from "@interlock/core";
import * as oauth from "oauth4webapi";
import { eventCode, type OAuthEndpoint, OAuthError, OAuthResponseError } from "./errors.js";
import type { OAuthEvent, OAuthEventHook, TokenGrant } from "./events.js";
import { assertTokenSyntax } from "./tokens.js";
import { createTransport, longestSingleRequestMs, type OAuthRetryOptions, type Transport } from "./transport.js";

/** A fetch-shaped function: global `fetch`, undici's, or `createClient()` from `@interlock/client`. */
export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** Authorization server metadata (RFC 8414 / OpenID Connect Discovery), as far as this package reads it. */
export interface AuthorizationServerMetadata {
  /** The server's issuer identifier. */
  issuer: string;
  /** Where the browser is sent to log in. */
  authorization_endpoint?: string;
  /** Where codes, refresh tokens and client credentials are exchanged for tokens. */
  token_endpoint?: string;
  /** Where tokens are revoked (RFC 7009). */
  revocation_endpoint?: string;
  /** The OpenID Connect UserInfo endpoint. */
  userinfo_endpoint?: string;
  /** Where the browser is sent to log out (OpenID Connect RP-Initiated Logout). */
  end_session_endpoint?: string;
  /** The server's signing keys, for ID tokens. */
  jwks_uri?: string;
  /** The PKCE methods the server accepts (`S256`). */
  code_challenge_methods_supported?: string[];
  /** Whether the server adds `iss` to its authorization responses (RFC 9207). */
  authorization_response_iss_parameter_supported?: boolean;
  /** Any other metadata the server publishes. */
  [parameter: string]: unknown;
}

/** How the client authenticates to the token endpoint: HTTP Basic, a form parameter, or not at all (public clients). */
export type ClientAuthenticationMethod = "client_secret_basic" | "client_secret_post" | "none";

/** Who the client is and which server it talks to. */
export interface OAuthClientOptions {
  /** The authorization server's issuer identifier, e.g. `https://id.example.com`. */
  issuer: string | URL;
  /** The client id the authorization server issued. */
  clientId: string;
  /** The client secret of a confidential client. */
  clientSecret?: string;
  /** Default `client_secret_basic` with a secret, `none` without. */
  clientAuthentication?: ClientAuthenticationMethod;
  /**
   * The server's metadata, for servers without discovery. Default: fetched once from
   * `/.well-known/openid-configuration` (or `oauth-authorization-server`, see `discovery`).
   */
  metadata?: AuthorizationServerMetadata;
  /** Which well-known document to discover: `"oidc"` (default) or `"oauth2"` (RFC 8414). */
  discovery?: "oidc" | "oauth2";
  /**
   * What sends the requests to the authorization server, underneath the retries (see `retry`).
   * Default: global `fetch`.
   */
  fetch?: FetchLike;
  /** Longest wait for one attempt of a request to the authorization server, in ms. Default 10,000. */
  timeoutMs?: number;
  /**
   * How requests to the authorization server are retried, through `@interlock/client`: reads
   * (discovery, JWKS), client credentials grants and revocations on transient failures (network
   * errors, 408/425/429/5xx, `Retry-After` honoured); code exchanges and refresh grants never.
   * Default: 3 attempts, each bounded by `timeoutMs`, the client's other defaults (backoff with
   * jitter, retry budget, circuit breaker). Revocations have a breaker and a budget of their
   * own, and so do the requests sent once: a revocation endpoint that fails stops no token
   * request. `false`: `fetch` is called once, for a fetch that retries by itself.
   */
  retry?: OAuthRetryOptions | false;
  /**
   * Milliseconds since the epoch, for token expiry; tests move it. Default: the system clock
   * (`Date.now()`) for the times tokens carry and stores keep, and monotonic time since a token
   * came for how long this process keeps using one it holds (and for the lifetimes of the
   * default memory store's entries, its locks' leases among them). Given, every time this package
   * keeps is read from it, and a login's `max_age` is judged on it; an ID token's `exp`, `iat`
   * and `nbf` are checked on the system clock, as the authorization server dates them.
   */
  now?: () => number;
  /**
   * Allow `http:` for a server that is not on a loopback address (127.0.0.0/8, `localhost`, `[::1]`,
   * always allowed). For local development only: tokens and secrets would cross the network in clear.
   */
  allowInsecureRequests?: boolean;
  /** Receives every decision of the flows made with this client (see `OAuthEvent`); what it throws is ignored. */
  onEvent?: OAuthEventHook;
}

/** A configured OAuth client; pass it to `createLogin`, `createClientCredentials`, `createSessionTokens`. */
export interface OAuthClient {
  /** The issuer identifier, as given. */
  readonly issuer: string;
  /** The client id. */
  readonly clientId: string;
  /** The authorization server's metadata, discovered on first use and kept. */
  metadata(): Promise<AuthorizationServerMetadata>;
}

/** What the flows use of a client; not part of the public API. */
export interface ClientInternals {
  readonly client: oauth.Client;
  readonly auth: oauth.ClientAuth;
  /** Transport options for every oauth4webapi call. */
  readonly http: HttpOptions;
  /** Wall time: the times token sets carry and stores keep (a store's other readers judge them). */
  readonly now: () => number;
  /** Whether the app gave `now`: then tokens held in memory are judged on it too (see tokens.ts' `HeldTokens`). */
  readonly nowGiven: boolean;
  /**
   * The longest a token request sent once (a refresh grant) can take with the configured
   * timeouts, in ms; `Infinity` when nothing bounds it.
   */
  readonly longestSingleRequestMs: number;
  server(): Promise<oauth.AuthorizationServer>;
  /**
   * Runs one protocol exchange, every failure turned into a typed error; a token request (`grant`)
   * is reported as an `oauth.token.requested` event. Without `grant`: a revocation request (the
   * only other exchange), as its errors say. With `late`, the exchange reads the answer to a
   * request already reported (it timed out), and is reported as `oauth.token.answered_late`.
   */
  exchange<T>(run: (server: oauth.AuthorizationServer) => Promise<T>, grant?: TokenGrant, late?: "late"): Promise<T>;
  emit(event: OAuthEvent): void;
}

interface HttpOptions {
  [oauth.customFetch]: Transport;
  [oauth.allowInsecureRequests]: boolean;
}

const internals = new WeakMap<OAuthClient, ClientInternals>();

export function clientInternals(client: OAuthClient): ClientInternals {
  const found = internals.get(client);
  if (found === undefined) throw new InterlockConfigError("expected a client made by createOAuthClient()");
  return found;
}

/**
 * How far the clocks of this app and the authorization server may disagree, in seconds, for every
 * time claim of an ID token: oauth4webapi's `exp` / `iat` checks and the `max_age` check of a login.
 */
export const CLOCK_TOLERANCE_SECONDS = 30;

/**
 * What every token response is checked for besides oauth4webapi's own checks, as it reads the
 * response: so a refusal here is handled as its refusals are (a login revokes the tokens of an
 * answer it refused, a refresh whose refused answer rotated ends its session). A `token_type`
 * other than Bearer is refused (`invalid_response`), and so is a Bearer answer whose tokens are
 * not 1*VSCHAR (`assertTokenSyntax`). oauth4webapi takes DPoP too (RFC 9449), for the clients
 * that send DPoP proofs; this package sends none and presents every token as `Bearer`, and a
 * client must not use a token of a type it does not understand (RFC 6749 §7.1). Any other type
 * oauth4webapi refuses.
 */
export const TOKEN_RESPONSE_CHECKS: oauth.ProcessTokenResponseOptions = {
  recognizedTokenTypes: {
    bearer: (_response, body) => assertTokenSyntax(body),
    dpop: () => {
      throw new OAuthResponseError(
        "invalid_response",
        "the token endpoint answered a DPoP-bound token (token_type DPoP), and this client sends bearer tokens only",
      );
    },
  },
};

/** The default bound on one request to the authorization server: 10 s. */
export const DEFAULT_TIMEOUT_MS = 10_000;

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/i;

function issuerUrl(value: string | URL, allowInsecure: boolean): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InterlockConfigError("issuer must be an absolute URL");
  }
  if (url.protocol === "http:" && !allowInsecure && !LOOPBACK.test(url.hostname)) {
    throw new InterlockConfigError(
      "issuer must use https (http is allowed on loopback addresses, or with allowInsecureRequests for development)",
    );
  }
  if (url.protocol !== "https:" && url.protocol !== "http:")
    throw new InterlockConfigError("issuer must be an https URL");
  if (url.search !== "" || url.hash !== "") throw new InterlockConfigError("issuer must have no query or fragment");
  return url;
}

const AUTHENTICATION_METHODS: readonly ClientAuthenticationMethod[] = [
  "client_secret_basic",
  "client_secret_post",
  "none",
];

function clientAuth(options: OAuthClientOptions): oauth.ClientAuth {
  // Checked before the messages below name it: a value refused is named by its type and length
  // only unless it is a short word (choiceOption), as it may be a secret passed in the wrong place.
  const method = choiceOption(
    "clientAuthentication",
    options.clientAuthentication,
    AUTHENTICATION_METHODS,
    options.clientSecret === undefined ? "none" : "client_secret_basic",
  );
  if (method === "none") {
    if (options.clientSecret !== undefined) {
      throw new InterlockConfigError('clientAuthentication "none" takes no clientSecret');
    }
    return oauth.None();
  }
  if (typeof options.clientSecret !== "string" || options.clientSecret === "") {
    throw new InterlockConfigError(`clientAuthentication "${method}" needs a clientSecret`);
  }
  return method === "client_secret_basic"
    ? oauth.ClientSecretBasic(options.clientSecret)
    : oauth.ClientSecretPost(options.clientSecret);
}

/**
 * The options whose shape nothing else checks when the client is made (`now` is, by
 * `checkedClock`): `onEvent` is first called later (a mistake would be a hook failure at every
 * event), `allowInsecureRequests` is only compared with `true` (`"true"` would be taken for not
 * set), `metadata` is read below. Refused as typed errors at start-up; no message quotes what was
 * given.
 */
function assertOptionShapes(options: OAuthClientOptions): void {
  if (options.onEvent !== undefined && typeof options.onEvent !== "function") {
    throw new InterlockConfigError("onEvent must be a function");
  }
  if (options.allowInsecureRequests !== undefined && typeof options.allowInsecureRequests !== "boolean") {
    throw new InterlockConfigError("allowInsecureRequests must be true or false");
  }
  const { metadata } = options;
  if (metadata !== undefined && (typeof metadata !== "object" || metadata === null)) {
    throw new InterlockConfigError("metadata must be the server's metadata, an object");
  }
}

const CLIENT_OPTION_NAMES = optionNames<OAuthClientOptions>({
  issuer: true,
  clientId: true,
  clientSecret: true,
  clientAuthentication: true,
  metadata: true,
  discovery: true,
  fetch: true,
  timeoutMs: true,
  retry: true,
  now: true,
  allowInsecureRequests: true,
  onEvent: true,
});

/** A client for one authorization server. Nothing is fetched until a flow needs it. */
export function createOAuthClient(options: OAuthClientOptions): OAuthClient {
  assertOptionNames("createOAuthClient()", options, CLIENT_OPTION_NAMES);
  if (typeof options?.clientId !== "string" || options.clientId === "") {
    throw new InterlockConfigError("clientId is required");
  }
  assertOptionShapes(options);
  const issuer = issuerUrl(options.issuer, options.allowInsecureRequests === true);
  const discovery = choiceOption("discovery", options.discovery, ["oidc", "oauth2"], "oidc");
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) throw new InterlockConfigError("timeoutMs must be positive");
  const fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  if (typeof fetchImpl !== "function") throw new InterlockConfigError("fetch must be a function");
  // Read at every call, not kept: the system clock as it is set now. A given `now` is read through
  // a check: one answering `undefined` or `NaN` would pass every comparison it is in (a token
  // never due, a memory store's refresh lock free to two callers), so the call fails instead.
  const now = checkedClock("now", options.now) ?? (() => Date.now());

  const http: HttpOptions = {
    [oauth.customFetch]: createTransport(fetchImpl, timeoutMs, options.retry === undefined ? {} : options.retry),
    // oauth4webapi refuses http outright; issuerUrl() has already decided whether it may be used.
    [oauth.allowInsecureRequests]: issuer.protocol === "http:",
  };
  // No clockSkew from `now`: an ID token's exp/iat/nbf are the server's dates, checked on the
  // system clock, so a test that moves `now` ahead (to make tokens due) still takes fresh ones.
  const client: oauth.Client = { client_id: options.clientId, [oauth.clockTolerance]: CLOCK_TOLERANCE_SECONDS };
  const auth = clientAuth(options);

  let known: Promise<oauth.AuthorizationServer> | undefined;
  if (options.metadata !== undefined) {
    const given = options.metadata.issuer;
    if (typeof given !== "string" || !URL.canParse(given) || new URL(given).href !== issuer.href) {
      throw new InterlockConfigError("metadata.issuer must be the issuer");
    }
    known = Promise.resolve(options.metadata as oauth.AuthorizationServer);
  }

  const report = (event: OAuthEvent) => emit(options.onEvent, event);
  const exchange = async <T>(
    run: (server: oauth.AuthorizationServer) => Promise<T>,
    grant?: TokenGrant,
    late?: "late",
  ) => {
    const as = await server();
    const started = monotonicNow();
    const type = late ? "oauth.token.answered_late" : "oauth.token.requested";
    const requested = (outcome: string) =>
      grant && report({ type, grant, outcome, durationMs: monotonicNow() - started });
    try {
      const result = await run(as);
      requested("issued");
      return result;
    } catch (error) {
      const typed = await typedError(error, grant === undefined ? "revocation" : "token");
      requested(eventCode(typed));
      throw typed;
    }
  };

  // Discovered once; a failed discovery is not kept, so the next call tries again.
  const server = (): Promise<oauth.AuthorizationServer> => {
    if (known !== undefined) return known;
    const discovering = (async () => {
      const started = monotonicNow();
      try {
        const response = await oauth.discoveryRequest(issuer, { ...http, algorithm: discovery });
        return await oauth.processDiscoveryResponse(issuer, response);
      } catch (error) {
        known = undefined;
        const typed = await typedError(error, "discovery");
        report({ type: "oauth.discovery.failed", code: eventCode(typed), durationMs: monotonicNow() - started });
        throw typed;
      }
    })();
    known = discovering;
    return discovering;
  };

  const instance: OAuthClient = {
    issuer: String(options.issuer),
    clientId: options.clientId,
    metadata: async () => ({ ...(await server()) }) as AuthorizationServerMetadata,
  };
  internals.set(instance, {
    client,
    auth,
    http,
    now,
    nowGiven: options.now !== undefined,
    longestSingleRequestMs: longestSingleRequestMs(timeoutMs, options.retry ?? {}),
    server,
    exchange,
    emit: report,
  });
  return instance;
}

/**
 * The OAuth error in an answer's JSON body: one whose `error` is a string of one character or
 * more (RFC 6749 §5.2: 1*NQSCHAR), as oauth4webapi reads one. A body without it is no OAuth
 * error, and the answer is read for its status.
 */
async function oauthErrorBody(response: Response): Promise<Record<string, unknown> | undefined> {
  try {
    const body: unknown = await response.clone().json();
    const error = typeof body === "object" && body !== null ? (body as { error?: unknown }).error : undefined;
    if (typeof error === "string" && error !== "") return body as Record<string, unknown>;
  } catch {
    // Not JSON: no OAuth error in it.
  }
  return undefined;
}

const text = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined);

function fromBody(body: Record<string, unknown>, responseStatus: number, endpoint: OAuthEndpoint): OAuthError {
  return new OAuthError(body.error as string, {
    description: text(body.error_description),
    uri: text(body.error_uri),
    responseStatus,
    endpoint,
  });
}

/** oauth4webapi's errors (and a failing transport's) from a request to `endpoint`, as this package's typed errors. */
export async function typedError(error: unknown, endpoint: OAuthEndpoint): Promise<unknown> {
  if (error instanceof InterlockError) return error;
  if (error instanceof oauth.ResponseBodyError) {
    // As an OAuthError, even as a 429's cause: oauth4webapi's error holds the server's description
    // and whole body, which a logged error would print (a server may echo the client's secret).
    const refusal = fromBody(error.cause, error.status, endpoint);
    return error.status === 429 ? unavailable(429, refusal.code, refusal) : refusal;
  }
  if (error instanceof oauth.AuthorizationResponseError) {
    return new OAuthError(error.error, {
      description: error.error_description,
      uri: error.cause.get("error_uri") ?? undefined,
      endpoint,
    });
  }
  if (error instanceof oauth.WWWAuthenticateChallengeError) return challenged(error, endpoint);
  if (error instanceof oauth.OperationProcessingError) {
    const response = error.cause instanceof Response ? error.cause : undefined;
    if (response !== undefined && answeredOtherwise(error, response)) {
      const { status } = response;
      const body = await oauthErrorBody(response);
      if (status >= 500 || status === 429) return unavailable(status, text(body?.error), withoutPayload(error));
      if (body !== undefined) return fromBody(body, status, endpoint);
      return new OAuthResponseError("invalid_response", `authorization server answered an unexpected ${status}`, {
        responseStatus: status,
        cause: withoutPayload(error),
      });
    }
    return refused(error);
  }
  if (error instanceof oauth.UnsupportedOperationError) return refused(error);
  return error;
}

/**
 * An error status that came with a `WWW-Authenticate` challenge (oauth4webapi reads that before
 * the body): a 401 refusing the client's authentication, or any refusal a server or a gateway in
 * front of it answers with one; a 429 or 5xx is unavailable, as without a challenge. Its cause
 * is never oauth4webapi's error whole: that carries every parameter of every challenge
 * (`error_description`, `realm`, …), and a gateway may echo the refused request there, the
 * client's secret included.
 */
async function challenged(error: oauth.WWWAuthenticateChallengeError, endpoint: OAuthEndpoint): Promise<Error> {
  const { status } = error;
  const refusal = await challengeRefusal(error, endpoint);
  if (status >= 500 || status === 429) return unavailable(status, refusal?.code, refusal ?? withoutPayload(error));
  return (
    refusal ??
    new OAuthResponseError("invalid_response", `unexpected ${status} challenge`, {
      responseStatus: status,
      cause: withoutPayload(error),
    })
  );
}

/** The OAuth error a challenged answer names: in its body, else in a challenge's `error`, else `invalid_client` for a 401. */
async function challengeRefusal(
  error: oauth.WWWAuthenticateChallengeError,
  endpoint: OAuthEndpoint,
): Promise<OAuthError | undefined> {
  const body = await oauthErrorBody(error.response);
  if (body !== undefined) return fromBody(body, error.status, endpoint);
  const parameters = error.cause.find((challenge) => challenge.parameters.error)?.parameters;
  const code = parameters?.error ?? (error.status === 401 ? "invalid_client" : undefined);
  if (code === undefined) return undefined;
  return new OAuthError(code, {
    description: parameters?.error_description,
    uri: parameters?.error_uri,
    responseStatus: error.status,
    endpoint,
  });
}

/**
 * Rate limited (429) or failing (5xx): transient, whatever error code came with it. The code is
 * named; the server's description never is (see `OAuthError`).
 */
function unavailable(status: number, code: string | undefined, cause: Error): OAuthResponseError {
  const detail = code === undefined ? "" : ` (${code})`;
  return new OAuthResponseError("server_unavailable", `authorization server answered ${status}${detail}`, {
    responseStatus: status,
    cause,
  });
}

/**
 * Whether oauth4webapi refused a response for its status rather than its content: one it does
 * not expect (`RESPONSE_IS_NOT_CONFORM`), or an error status whose Content-Type is not exactly
 * `application/json` (it compares case-sensitively, where RFC 9110 §8.3.1 says media types are
 * not, and reads no HTML page a proxy answers with). Its body and status say what happened.
 */
function answeredOtherwise(error: oauth.OperationProcessingError, response: Response): boolean {
  if (error.code === oauth.RESPONSE_IS_NOT_CONFORM) return true;
  return error.code === oauth.RESPONSE_IS_NOT_JSON && response.status >= 400;
}

/** A response oauth4webapi refused, as `invalid_response`. */
function refused(error: oauth.OperationProcessingError | oauth.UnsupportedOperationError): OAuthResponseError {
  return new OAuthResponseError("invalid_response", `authorization server response refused: ${error.message}`, {
    cause: withoutPayload(error),
  });
}

/**
 * oauth4webapi's error as a cause, without the cause it carries: for a token response that fails
 * a check (a `token_type` it does not know, an `expires_in` that is no number), that is the whole
 * response body, access, refresh and ID tokens included; for a malformed ID token, the token; for
 * an answer refused for its status, the response, whose headers print with it; for a challenge,
 * every parameter of it. Kept as a cause, it would be in every log of the error. What failed
 * stays: name, message and code.
 */
function withoutPayload(
  error: oauth.OperationProcessingError | oauth.UnsupportedOperationError | oauth.WWWAuthenticateChallengeError,
): Error {
  const copy = Object.assign(new Error(error.message), { name: error.name, code: error.code });
  if (error.stack !== undefined) copy.stack = error.stack;
  return copy;
}
