/**
 * What RFC 6749 and OpenID Connect leave to the client, against real servers: a token response
 * without `scope` (RFC 6749 §5.1, §6), a refreshed ID token about someone else (OIDC Core §12.2),
 * and `max_age` (OIDC Core §3.1.2.1, §3.1.3.7). oidc-provider answers as the specifications
 * say; oauth2-mock-server is made to answer what they allow (no `scope`) or forbid.
 */

import { inspect } from "node:util";
import { InterlockConfigError } from "@interlock/core";
import { Browser } from "@interlock/test-harness/oauth";
import { Events, type MutableToken } from "oauth2-mock-server";
import { describe, expect, it } from "vitest";
import { keptIdTokenClaims } from "../src/id-token.js";
import {
  createClientCredentials,
  createLogin,
  createOAuthClient,
  createSessionTokens,
  LoginRequiredError,
  type LoginStart,
  MemoryTokenStore,
  type OAuthEvent,
  OAuthResponseError,
} from "../src/index.js";
import {
  authorize,
  keyring,
  REDIRECT_URI,
  resolvable,
  SERVICE,
  urlOf,
  useAuthorizationServer,
  useMockServer,
  WEB_APP,
  webClient,
} from "./helpers.js";

const server = useAuthorizationServer();
const mock = useMockServer();

// client_secret_post: the mock takes the audience of its ID tokens from HTTP Basic without
// decoding it, and oauth4webapi form-encodes the client id there ("web-app" as "web%2Dapp").
const mockClient = (credentials = WEB_APP, options = {}) =>
  createOAuthClient({
    issuer: mock().issuer.url!,
    ...credentials,
    clientAuthentication: "client_secret_post",
    ...options,
  });

/** The mock's token responses leave `scope` out, as RFC 6749 §5.1 allows, while `run` runs. */
async function withoutScope<T>(run: () => Promise<T>): Promise<T> {
  const drop = (response: { body: unknown }) => {
    delete (response.body as Record<string, unknown>).scope;
  };
  mock().service.on(Events.BeforeResponse, drop);
  try {
    return await run();
  } finally {
    mock().service.off(Events.BeforeResponse, drop);
  }
}

/** The mock changes the ID tokens it issues for `grantType` while `run` runs (its access tokens have `amr`). */
async function withIdTokens<T>(
  grantType: string,
  change: (claims: Record<string, unknown>) => void,
  run: () => Promise<T>,
): Promise<T> {
  const edit = (token: MutableToken, req: { body?: unknown }) => {
    const isIdToken = !("amr" in token.payload);
    if (isIdToken && (req.body as Record<string, unknown>).grant_type === grantType) change(token.payload);
  };
  mock().service.on(Events.BeforeTokenSigning, edit);
  try {
    return await run();
  } finally {
    mock().service.off(Events.BeforeTokenSigning, edit);
  }
}

/** The mock's authorization endpoint logs the user in at once; the browser stops at the callback. */
async function mockCallback(start: LoginStart): Promise<string> {
  const page = await new Browser().follow(start.url.href, { stopAt: REDIRECT_URI });
  expect(page.status).toBe(0);
  return page.url;
}

async function mockLogin(scope: string, options: { authTime?: number | undefined } = {}) {
  const login = createLogin(mockClient(), { redirectUri: REDIRECT_URI, scope });
  const start = await login.begin();
  const setAuthTime = (claims: Record<string, unknown>) => {
    if (options.authTime !== undefined) claims.auth_time = options.authTime;
  };
  return withIdTokens("authorization_code", setAuthTime, async () =>
    login.complete(await mockCallback(start), { state: start.state }),
  );
}

describe("a token response without scope (RFC 6749 §5.1, §6)", () => {
  it("a login's tokens carry the scope the login asked for", async () => {
    const { tokens } = await withoutScope(() => mockLogin("openid profile"));
    expect(tokens.idToken).toBeTypeOf("string"); // a real login: the ID token was validated
    expect(tokens.scope).toBe("openid profile");
  });

  it("a login's tokens carry the scope a login's own params asked for", async () => {
    const login = createLogin(mockClient(), { redirectUri: REDIRECT_URI, scope: "openid" });
    const start = await login.begin({ params: { scope: "openid email" } });
    const result = await withoutScope(async () => login.complete(await mockCallback(start), { state: start.state }));
    expect(result.tokens.scope).toBe("openid email");
  });

  it("client credentials carry the scope asked for; without one asked, it stays unknown", async () => {
    const scoped = createClientCredentials(mockClient(SERVICE), { scope: ["api:write", "api:read"] });
    expect((await withoutScope(() => scoped.getToken())).scope).toBe("api:read api:write");
    const unscoped = createClientCredentials(mockClient(SERVICE));
    expect((await withoutScope(() => unscoped.getToken())).scope).toBeUndefined();
  });

  it("a scope the server did send is kept as sent", async () => {
    const scoped = createClientCredentials(mockClient(SERVICE), { scope: "api:read" });
    expect((await scoped.getToken()).scope).toBe("api:read"); // the mock echoes the request's
  });

  it("a refresh answered without a refresh token (no rotation, RFC 6749 §6) keeps the one the session had", async () => {
    const { tokens } = await mockLogin("openid");
    const sessions = createSessionTokens(mockClient(), { encryptionKeys: keyring });
    await sessions.save("not-rotated", tokens);
    let answered = 0;
    const drop = (response: { body: unknown }) => {
      delete (response.body as Record<string, unknown>).refresh_token;
      answered++;
    };
    mock().service.on(Events.BeforeResponse, drop);
    const refreshed = await sessions
      .refresh("not-rotated")
      .finally(() => mock().service.off(Events.BeforeResponse, drop));
    expect(answered).toBe(1); // the refresh reached the server (the mock may sign the same access token again)
    expect(refreshed.refreshToken).toBe(tokens.refreshToken);
    expect((await sessions.get("not-rotated"))?.refreshToken).toBe(tokens.refreshToken);
  });

  it("a refresh without scope keeps the scope granted before", async () => {
    const { tokens } = await mockLogin("openid profile");
    const sessions = createSessionTokens(mockClient(), { encryptionKeys: keyring });
    await sessions.save("scoped", { ...tokens, scope: "openid profile" });
    const refreshed = await withoutScope(() => sessions.refresh("scoped"));
    expect(refreshed.refreshToken).not.toBe(tokens.refreshToken);
    expect(refreshed.scope).toBe("openid profile");
  });
});

describe("an OpenID Connect login answered without an ID token (OIDC Core §3.1.3.3), with another nonce, or a token it cannot use", () => {
  /** A login's callback, completed while the mock answers the code exchange as `change` makes it. */
  async function completeWith(change: { response?: (body: Record<string, unknown>) => void; nonce?: string }) {
    const events: OAuthEvent[] = [];
    const revoked = resolvable<OAuthEvent>();
    const onEvent = (event: OAuthEvent) => {
      events.push(event);
      if (event.type === "oauth.login.tokens_revoked") revoked.resolve(event);
    };
    const login = createLogin(mockClient(WEB_APP, { onEvent }), { redirectUri: REDIRECT_URI, scope: "openid" });
    const start = await login.begin();
    const callback = await mockCallback(start);
    const edit = (response: { body: unknown }) => change.response?.(response.body as Record<string, unknown>);
    mock().service.on(Events.BeforeResponse, edit);
    const outcome = await withIdTokens(
      "authorization_code",
      (claims) => {
        if (change.nonce !== undefined) claims.nonce = change.nonce;
      },
      () => login.complete(callback, { state: start.state }),
    )
      .catch((e: unknown) => e)
      .finally(() => mock().service.off(Events.BeforeResponse, edit));
    return { outcome, events, tokensRevoked: revoked.promise };
  }

  it.each([
    ["without an ID token", { response: (body: Record<string, unknown>) => delete body.id_token }],
    ["with an ID token for another login's nonce", { nonce: "another-login" }],
  ])("is refused (invalid_response) %s, not completed as plain OAuth without claims", async (_case, change) => {
    let revocations = 0;
    const revoking = () => {
      revocations++;
    };
    mock().service.on(Events.BeforeRevoke, revoking);
    try {
      const { outcome, events, tokensRevoked } = await completeWith(change);
      expect(outcome).toBeInstanceOf(OAuthResponseError);
      expect(outcome).toMatchObject({ code: "invalid_response", status: 502 });
      // The login ends refused, as one refused before the exchange does: started = completed + refused.
      expect(events.slice(-2)).toEqual([
        expect.objectContaining({ type: "oauth.token.requested", outcome: "invalid_response" }),
        { type: "oauth.login.refused", code: "invalid_response" },
      ]);
      // The tokens the server issued with the answer refused are revoked: nothing will hold them.
      expect(await tokensRevoked).toEqual({ type: "oauth.login.tokens_revoked", reason: "refused", revoked: true });
      expect(revocations).toBe(2); // the refresh token, and the access token
    } finally {
      mock().service.off(Events.BeforeRevoke, revoking);
    }
  });

  it("a DPoP-bound token (token_type DPoP) is refused and revoked: the login presents tokens as Bearer only (RFC 6749 §7.1)", async () => {
    const { outcome, tokensRevoked } = await completeWith({
      response: (body) => {
        body.token_type = "DPoP";
      },
    });
    expect(outcome).toBeInstanceOf(OAuthResponseError);
    expect(outcome).toMatchObject({ code: "invalid_response", status: 502 });
    expect(await tokensRevoked).toMatchObject({ type: "oauth.login.tokens_revoked", reason: "refused", revoked: true });
  });

  it.each([
    ["an access token", "access_token"],
    ["a refresh token", "refresh_token"],
  ])(
    "%s that is not 1*VSCHAR (RFC 6749 Appendix A) is refused (invalid_response) and revoked, its value in no error",
    async (_case, field) => {
      let revocations = 0;
      const revoking = () => {
        revocations++;
      };
      mock().service.on(Events.BeforeRevoke, revoking);
      try {
        const { outcome, tokensRevoked } = await completeWith({
          response: (body) => {
            body[field] = "hostile\r\nX-Injected: 1";
          },
        });
        expect(outcome).toBeInstanceOf(OAuthResponseError);
        expect(outcome).toMatchObject({ code: "invalid_response", status: 502 });
        expect((outcome as Error).message).toContain(field);
        expect(inspect(outcome, { depth: Number.POSITIVE_INFINITY, showHidden: true })).not.toContain("hostile");
        expect(await tokensRevoked).toEqual({ type: "oauth.login.tokens_revoked", reason: "refused", revoked: true });
        expect(revocations).toBe(2); // the refresh token, and the access token
      } finally {
        mock().service.off(Events.BeforeRevoke, revoking);
      }
    },
  );

  it("the same ID token with the login's own nonce completes (the case above is refused for its nonce alone)", async () => {
    const { outcome, events } = await completeWith({});
    expect(outcome).toMatchObject({ claims: { sub: expect.any(String) } });
    expect(events.at(-1)).toEqual({ type: "oauth.login.completed" });
  });
});

describe("a refreshed ID token is about the same user and authentication (OIDC Core §12.2)", () => {
  async function sessionWith(authTime?: number) {
    const events: OAuthEvent[] = [];
    const revoked = resolvable<OAuthEvent>();
    const onEvent = (event: OAuthEvent) => {
      events.push(event);
      if (event.type === "oauth.login.tokens_revoked") revoked.resolve(event);
    };
    const store = new MemoryTokenStore();
    const sessions = createSessionTokens(mockClient(WEB_APP, { onEvent }), { encryptionKeys: keyring, store });
    const { tokens } = await mockLogin("openid", { authTime });
    await sessions.save("user", tokens);
    return { sessions, tokens, events, store, tokensRevoked: revoked.promise };
  }

  it("a refreshed ID token for the same user is taken", async () => {
    const authTime = Math.floor(Date.now() / 1000) - 60;
    const { sessions, tokens } = await sessionWith(authTime);
    const refreshed = await withIdTokens(
      "refresh_token",
      (claims) => {
        claims.auth_time = authTime;
        claims.aud = [WEB_APP.clientId]; // the same audience, as a list
      },
      () => sessions.refresh("user"),
    );
    expect(refreshed.idToken).toBeTypeOf("string");
    expect(refreshed.idToken).not.toBe(tokens.idToken);
    expect(await sessions.get("user")).toEqual(refreshed);
  });

  type Change = (claims: Record<string, unknown>) => void;
  for (const [what, claim, authTime, change] of [
    ["another sub", "sub", undefined, (claims) => Object.assign(claims, { sub: "mallory" })],
    // Several audiences come with azp, as OIDC Core §2 wants (oauth4webapi checks it).
    [
      "another aud",
      "aud",
      undefined,
      (claims) => Object.assign(claims, { aud: [WEB_APP.clientId, "another-client"], azp: WEB_APP.clientId }),
    ],
    ["another auth_time", "auth_time", 1_700_000_000, (claims) => Object.assign(claims, { auth_time: 1_700_000_500 })],
    // "if no azp Claim was present in the original ID Token, one MUST NOT be present in the new ID Token"
    [
      "an azp the first one did not have",
      "azp",
      undefined,
      (claims) => Object.assign(claims, { azp: WEB_APP.clientId }),
    ],
    // "its iat Claim MUST represent the time that the new ID Token is issued": not before the first one's
    ["an iat before the first one's", "iat", undefined, (claims) => Object.assign(claims, { iat: 1_700_000_000 })],
    // Errata: "it SHOULD NOT have a nonce Claim ... if it is present, it MUST be the same as in the ID Token
    // issued at the time of the original authentication"
    ["another nonce", "nonce", undefined, (claims) => Object.assign(claims, { nonce: "attacker-chosen-nonce" })],
  ] as Array<[string, string, number | undefined, Change]>) {
    it(`refuses a refreshed ID token with ${what} (id_token_mismatch): nothing stored, the session ends, the tokens answered revoked`, async () => {
      const { sessions, tokens, events, tokensRevoked } = await sessionWith(authTime);
      const before = await sessions.get("user");
      expect(before?.idToken).toBe(tokens.idToken);
      const error = await withIdTokens("refresh_token", change, () => sessions.refresh("user")).catch(
        (e: unknown) => e,
      );
      // Kept, a session whose refresh token does not rotate would fail this way on every call.
      expect(error).toBeInstanceOf(LoginRequiredError);
      expect(error).toMatchObject({ code: "login_required", reason: "identity_changed", status: 401 });
      const cause = (error as Error).cause;
      expect(cause).toBeInstanceOf(OAuthResponseError);
      expect(cause).toMatchObject({ code: "id_token_mismatch", status: 502 });
      expect((cause as Error).message).toContain(claim);
      expect(await sessions.get("user")).toBeUndefined();
      // Never stored, the refresh's tokens are revoked: nothing will hold them.
      expect(await tokensRevoked).toEqual({
        type: "oauth.login.tokens_revoked",
        reason: "refresh_refused",
        revoked: true,
      });
      expect(events).toMatchObject([
        { type: "oauth.token.requested", grant: "refresh_token", outcome: "id_token_mismatch" },
        { type: "oauth.session.ended", reason: "identity_changed" },
        { type: "oauth.login.tokens_revoked" },
      ]);
    });
  }

  it("a refreshed ID token without auth_time is taken: §12.2 compares auth_time only if the new one has it", async () => {
    const authTime = Math.floor(Date.now() / 1000) - 60;
    const { sessions, events } = await sessionWith(authTime);
    const refreshed = await withIdTokens(
      "refresh_token",
      (claims) => delete claims.auth_time,
      () => sessions.refresh("user"),
    );
    expect(refreshed.idToken).toBeTypeOf("string");
    expect(await sessions.get("user")).toEqual(refreshed);
    expect(events).toEqual([
      { type: "oauth.token.requested", grant: "refresh_token", outcome: "issued", durationMs: expect.any(Number) },
    ]);
  });

  it("a refreshed ID token with the login's nonce, or without nonce (as §12.2 wants), is taken", async () => {
    const { sessions, tokens } = await sessionWith();
    const loginNonce = keptIdTokenClaims(tokens.idToken!)?.nonce;
    expect(loginNonce).toBeTypeOf("string");
    for (const [nonce, change] of [
      [loginNonce, (claims: Record<string, unknown>) => Object.assign(claims, { nonce: loginNonce })],
      [undefined, (claims: Record<string, unknown>) => delete claims.nonce],
    ] as const) {
      const refreshed = await withIdTokens("refresh_token", change, () => sessions.refresh("user"));
      expect(await sessions.get("user")).toEqual(refreshed);
      expect(keptIdTokenClaims(refreshed.idToken!)?.nonce).toBe(nonce);
    }
  });

  it("a refreshed ID token with auth_time, after a login whose ID token had none, is taken", async () => {
    const { sessions } = await sessionWith();
    const refreshed = await withIdTokens(
      "refresh_token",
      (claims) => Object.assign(claims, { auth_time: Math.floor(Date.now() / 1000) }),
      () => sessions.refresh("user"),
    );
    expect(await sessions.get("user")).toEqual(refreshed);
  });

  it("refuses a refreshed ID token when the session's own cannot be read to compare: the session ends", async () => {
    const { sessions, tokens } = await sessionWith();
    await sessions.save("user", { ...tokens, idToken: "not-a-jwt" });
    const error = await sessions.refresh("user").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LoginRequiredError);
    expect(error).toMatchObject({ reason: "identity_changed" });
    expect((error as Error).cause).toMatchObject({ code: "id_token_mismatch" });
    expect(await sessions.get("user")).toBeUndefined();
  });

  it("refreshes with oidc-provider keep the user and auth_time: taken", async () => {
    const login = createLogin(webClient(server()), { redirectUri: REDIRECT_URI, scope: "openid" });
    const start = await login.begin({ maxAge: 600 }); // oidc-provider then puts auth_time in every ID token
    const { tokens, claims } = await login.complete(await authorize(start), { state: start.state });
    expect(claims?.auth_time).toBeTypeOf("number");
    const seen: unknown[] = [];
    const spy = async (input: string | URL | Request, init?: RequestInit) => {
      const response = await fetch(input, init);
      if (urlOf(input).endsWith("/token")) seen.push(await response.clone().json());
      return response;
    };
    const sessions = createSessionTokens(webClient(server(), { fetch: spy }), { encryptionKeys: keyring });
    await sessions.save("op-user", tokens);
    const refreshed = await sessions.refresh("op-user");
    expect(seen).toMatchObject([{ id_token: expect.any(String) }]); // compared, and taken
    expect(refreshed.accessToken).not.toBe(tokens.accessToken);
    expect(refreshed.idToken).toBe((seen[0] as { id_token: string }).id_token);
  });
});

describe("a refresh answered with a token that is not 1*VSCHAR (RFC 6749 Appendix A.12, A.17)", () => {
  /** A session logged in at the mock, and its refresh while the mock's refresh answers are as `change` makes them. */
  async function refreshAnswered(change: (body: Record<string, unknown>) => void) {
    const events: OAuthEvent[] = [];
    const revoked = resolvable<OAuthEvent>();
    const onEvent = (event: OAuthEvent) => {
      events.push(event);
      if (event.type === "oauth.login.tokens_revoked") revoked.resolve(event);
    };
    const sessions = createSessionTokens(mockClient(WEB_APP, { onEvent }), { encryptionKeys: keyring });
    const { tokens } = await mockLogin("openid");
    await sessions.save("user", tokens);
    const edit = (response: { body: unknown }, request: { body?: unknown }) => {
      if ((request.body as Record<string, unknown>).grant_type === "refresh_token") {
        change(response.body as Record<string, unknown>);
      }
    };
    mock().service.on(Events.BeforeResponse, edit);
    const outcome = await sessions
      .refresh("user")
      .catch((e: unknown) => e)
      .finally(() => mock().service.off(Events.BeforeResponse, edit));
    return { sessions, tokens, outcome, events, tokensRevoked: revoked.promise };
  }

  it("a new refresh token that is not: the server rotated, so the session ends (refresh_answer_refused) and the answer's tokens are revoked", async () => {
    const { sessions, outcome, tokensRevoked } = await refreshAnswered((body) => {
      body.refresh_token = "hostile\u0000refresh";
    });
    expect(outcome).toBeInstanceOf(LoginRequiredError);
    expect(outcome).toMatchObject({ reason: "refresh_answer_refused" });
    const cause = (outcome as Error).cause;
    expect(cause).toBeInstanceOf(OAuthResponseError);
    expect(cause).toMatchObject({ code: "invalid_response", status: 502 });
    expect(inspect(outcome, { depth: Number.POSITIVE_INFINITY, showHidden: true })).not.toContain("hostile");
    expect(await sessions.get("user")).toBeUndefined();
    expect(await tokensRevoked).toEqual({
      type: "oauth.login.tokens_revoked",
      reason: "refresh_refused",
      revoked: true,
    });
  });

  it("an access token that is not, with no new refresh token: the refusal is thrown, the session kept", async () => {
    const { sessions, tokens, outcome, events } = await refreshAnswered((body) => {
      body.access_token = "hostile\r\nX-Injected: 1";
      delete body.refresh_token;
    });
    expect(outcome).toBeInstanceOf(OAuthResponseError);
    expect(outcome).toMatchObject({ code: "invalid_response", status: 502 });
    expect((outcome as Error).message).toContain("access_token");
    expect(inspect(outcome, { depth: Number.POSITIVE_INFINITY, showHidden: true })).not.toContain("hostile");
    expect(await sessions.get("user")).toEqual(tokens);
    expect(events).toMatchObject([
      { type: "oauth.token.requested", grant: "refresh_token", outcome: "invalid_response" },
    ]);
  });
});

describe("an ID token's times are checked on the system clock, whatever the client's now says", () => {
  const HOUR_MS = 3_600_000;

  /** A login whose ID token the mock dates `issuedMs` (its iat and nbf), valid for 10 minutes. */
  async function loginWithIdTokenIssuedAt(now: () => number, issuedMs: number) {
    const login = createLogin(mockClient(WEB_APP, { now }), { redirectUri: REDIRECT_URI, scope: "openid" });
    const start = await login.begin();
    const dated = (claims: Record<string, unknown>) => {
      claims.iat = Math.floor(issuedMs / 1000);
      claims.nbf = claims.iat;
      claims.exp = Math.floor(issuedMs / 1000) + 600;
    };
    return withIdTokens("authorization_code", dated, async () =>
      login.complete(await mockCallback(start), { state: start.state }).catch((error: unknown) => error),
    );
  }

  it("a fresh ID token is taken by an app whose now is two hours ahead (a test moving time to make tokens due)", async () => {
    const outcome = await loginWithIdTokenIssuedAt(() => Date.now() + 2 * HOUR_MS, Date.now());
    expect(outcome).toMatchObject({ claims: { sub: expect.any(String) } });
  });

  it("an ID token expired by the system clock is refused, though the app's now, two hours behind, would take it", async () => {
    const outcome = await loginWithIdTokenIssuedAt(() => Date.now() - 2 * HOUR_MS, Date.now() - HOUR_MS);
    expect(outcome).toBeInstanceOf(OAuthResponseError);
    expect(outcome).toMatchObject({ code: "invalid_response" });
  });
});

describe("max_age (OIDC Core §3.1.2.1, §3.1.3.7)", () => {
  it("sends max_age, and takes an ID token whose auth_time is recent enough", async () => {
    const login = createLogin(webClient(server()), { redirectUri: REDIRECT_URI, scope: "openid" });
    const start = await login.begin({ maxAge: 300 });
    expect(start.url.searchParams.get("max_age")).toBe("300");
    const result = await login.complete(await authorize(start), { state: start.state });
    const now = Math.floor(Date.now() / 1000);
    expect(result.claims?.auth_time).toBeGreaterThan(now - 300);
  });

  it("refuses an authentication older than max_age (max_age_exceeded), 30 s of clock tolerance aside", async () => {
    // The app's clock is 331 s ahead of the server's: the user authenticated "331 s ago".
    for (const [aheadMs, refused] of [
      [329_000, false],
      [331_500, true],
    ] as const) {
      const events: OAuthEvent[] = [];
      const client = webClient(server(), { now: () => Date.now() + aheadMs, onEvent: (e) => events.push(e) });
      const login = createLogin(client, { redirectUri: REDIRECT_URI, scope: "openid" });
      const start = await login.begin({ maxAge: 300 });
      const outcome = await login.complete(await authorize(start), { state: start.state }).catch((e: unknown) => e);
      if (!refused) {
        expect(outcome).toMatchObject({ claims: { sub: "alice" } });
        continue;
      }
      expect(outcome).toBeInstanceOf(OAuthResponseError);
      expect(outcome).toMatchObject({ code: "max_age_exceeded", status: 502 });
      expect(events.at(-1)).toEqual({ type: "oauth.login.refused", code: "max_age_exceeded" });
    }
  });

  it("refuses an ID token without auth_time when the login asked for max_age, however it was asked", async () => {
    const login = createLogin(mockClient(), { redirectUri: REDIRECT_URI, scope: "openid" });
    for (const options of [{ maxAge: 600 }, { params: { max_age: "600" } }]) {
      const start = await login.begin(options);
      expect(start.url.searchParams.get("max_age")).toBe("600");
      const error = await login.complete(await mockCallback(start), { state: start.state }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OAuthResponseError);
      expect(error).toMatchObject({ code: "max_age_exceeded" });
      expect((error as Error).message).toContain("auth_time");
    }
    // Without max_age, the same ID token (no auth_time) is fine.
    const start = await login.begin();
    expect((await login.complete(await mockCallback(start), { state: start.state })).claims?.sub).toBe("johndoe");
  });

  it("refuses a max_age that is not a whole number of seconds", async () => {
    const login = createLogin(mockClient(), { redirectUri: REDIRECT_URI, scope: "openid" });
    for (const maxAge of [-1, 1.5, Number.NaN]) {
      await expect(login.begin({ maxAge })).rejects.toBeInstanceOf(InterlockConfigError);
    }
    await expect(login.begin({ params: { max_age: "soon" } })).rejects.toBeInstanceOf(InterlockConfigError);
  });
});
