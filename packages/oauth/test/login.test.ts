/**
 * Authorization Code + PKCE against oidc-provider (which requires S256 PKCE of every client):
 * the whole login driven over HTTP, then every way a callback is refused.
 */

import { InterlockConfigError } from "@interlock/core";
import { Browser, startAuthorizationServer } from "@interlock/test-harness/oauth";
import * as oauth from "oauth4webapi";
import { describe, expect, it } from "vitest";
import {
  codeChallenge,
  createLogin,
  createOAuthClient,
  type FetchLike,
  generateCodeVerifier,
  LoginError,
  type LoginOptions,
  MemoryTokenStore,
  OAuthError,
  type OAuthEvent,
  OAuthResponseError,
} from "../src/index.js";
import {
  authorize,
  introspect,
  keyring,
  REDIRECT_URI,
  resolvable,
  urlOf,
  useAuthorizationServer,
  WEB_APP,
  webAppKey,
  webClient,
} from "./helpers.js";

const server = useAuthorizationServer();

function loginWith(options: Partial<LoginOptions> = {}) {
  const store = new MemoryTokenStore();
  const login = createLogin(webClient(server()), {
    redirectUri: REDIRECT_URI,
    scope: "openid profile",
    store,
    ...options,
  });
  return { login, store };
}

/** Expects `promise` to fail with a LoginError of `code`. */
async function refused(promise: Promise<unknown>, code: string) {
  const error = await promise.catch((e: unknown) => e);
  expect(error).toBeInstanceOf(LoginError);
  expect(error).toMatchObject({ code, status: 400 });
}

describe("Authorization Code + PKCE against oidc-provider", () => {
  it("logs in over HTTP: S256 challenge, state and nonce out; code, verifier and ID token back", async () => {
    const { login, store } = loginWith();
    const start = await login.begin({ returnTo: "/dashboard?tab=1" });

    const query = start.url.searchParams;
    expect(start.url.origin + start.url.pathname).toBe(`${server().issuer}/auth`);
    expect(Object.fromEntries(query)).toMatchObject({
      response_type: "code",
      client_id: "web-app",
      redirect_uri: REDIRECT_URI,
      scope: "openid profile",
      state: start.state,
      code_challenge_method: "S256",
    });
    expect(query.get("nonce")).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(start.state).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // The verifier stays on the server: the URL carries only its S256 challenge.
    const pending = JSON.parse((await store.get(await webAppKey(server(), "login", start.state)))!.value);
    expect(pending.verifier).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(query.get("code_challenge")).toBe(await codeChallenge(pending.verifier));
    expect(start.url.href).not.toContain(pending.verifier);

    const callback = await authorize(start, "alice");
    expect(new URL(callback).searchParams.get("iss")).toBe(server().issuer); // RFC 9207
    const before = server().tokenRequests("authorization_code");
    const result = await login.complete(callback, { state: start.state });

    expect(server().tokenRequests("authorization_code")).toBe(before + 1);
    expect(result.returnTo).toBe("/dashboard?tab=1");
    expect(result.claims).toMatchObject({
      iss: server().issuer,
      sub: "alice",
      aud: "web-app",
      nonce: query.get("nonce"),
    });
    expect(result.tokens).toMatchObject({ tokenType: "bearer", scope: "openid profile" });
    expect(result.tokens.refreshToken).toBeTypeOf("string");
    expect(result.tokens.idToken).toBeTypeOf("string");
    expect(result.tokens.expiresAt).toBeGreaterThan(Date.now() + 3_500_000);
    // The access token is real: the server's userinfo endpoint accepts it.
    const me = await fetch(`${server().issuer}/me`, {
      headers: { authorization: `Bearer ${result.tokens.accessToken}` },
    });
    expect(await me.json()).toMatchObject({ sub: "alice", name: "User alice" });
    // And the pending login is gone.
    expect(await store.get(await webAppKey(server(), "login", start.state))).toBeUndefined();
  });

  it("the server refuses a code exchanged with the wrong verifier (invalid_grant)", async () => {
    const { login, store } = loginWith();
    const start = await login.begin();
    const callback = await authorize(start);
    // Someone who stole the code does not have the verifier: swap in another one.
    const key = await webAppKey(server(), "login", start.state);
    const pending = JSON.parse((await store.get(key))!.value);
    await store.set(key, JSON.stringify({ ...pending, verifier: generateCodeVerifier() }), { ttlMs: 60_000 });

    const error = await login.complete(callback, { state: start.state }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OAuthError);
    expect(error).toMatchObject({ code: "invalid_grant", status: 401, responseStatus: 400 });
    expect((error as OAuthError).message).not.toContain(pending.verifier);
  });

  it("the server refuses an authorization request without a PKCE challenge", async () => {
    const url = new URL(`${server().issuer}/auth`);
    for (const [name, value] of Object.entries({
      client_id: "web-app",
      response_type: "code",
      redirect_uri: REDIRECT_URI,
      scope: "openid",
      state: oauth.generateRandomState(),
    })) {
      url.searchParams.set(name, value);
    }
    const page = await new Browser().follow(url.href, { stopAt: REDIRECT_URI });
    const answer = new URL(page.url).searchParams;
    expect(answer.get("error")).toBe("invalid_request");
    expect(answer.get("error_description")).toMatch(/requires PKCE/);
  });

  it("refuses a replayed callback: a login completes once", async () => {
    const events: OAuthEvent[] = [];
    const login = createLogin(webClient(server(), { onEvent: (e) => events.push(e) }), { redirectUri: REDIRECT_URI });
    const start = await login.begin();
    const callback = await authorize(start);
    await login.complete(callback, { state: start.state });
    const exchanges = server().tokenRequests("authorization_code");
    await refused(login.complete(callback, { state: start.state }), "state_unknown");
    expect(server().tokenRequests("authorization_code")).toBe(exchanges); // refused before any exchange
    expect(events.map((e) => [e.type, "outcome" in e ? e.outcome : "code" in e ? e.code : undefined])).toEqual([
      ["oauth.login.started", undefined],
      ["oauth.token.requested", "issued"],
      ["oauth.login.completed", undefined],
      ["oauth.login.refused", "state_unknown"],
    ]);
  });

  it("ends refused when the exchange fails: the token endpoint down (server_unavailable), the store down (error)", async () => {
    const events: OAuthEvent[] = [];
    let tokenEndpointDown = false;
    const client = webClient(server(), {
      onEvent: (e) => events.push(e),
      fetch: (input, init) =>
        tokenEndpointDown && urlOf(input).endsWith("/token")
          ? Promise.resolve(new Response("busy", { status: 503 }))
          : fetch(input, init),
    });
    class FailingStore extends MemoryTokenStore {
      failing = false;
      override get(key: string) {
        return this.failing ? Promise.reject(new Error("store unreachable")) : super.get(key);
      }
    }
    const store = new FailingStore();
    const login = createLogin(client, { redirectUri: REDIRECT_URI, store });

    const first = await login.begin();
    tokenEndpointDown = true;
    await expect(login.complete(await authorize(first), { state: first.state })).rejects.toMatchObject({
      code: "server_unavailable",
    });
    tokenEndpointDown = false;
    const second = await login.begin();
    const callback = await authorize(second);
    store.failing = true;
    await expect(login.complete(callback, { state: second.state })).rejects.toThrow("store unreachable");

    const outcomes = events.map((e) => [e.type, "outcome" in e ? e.outcome : "code" in e ? e.code : undefined]);
    expect(outcomes).toEqual([
      ["oauth.login.started", undefined],
      ["oauth.token.requested", "server_unavailable"],
      ["oauth.login.refused", "server_unavailable"],
      ["oauth.login.started", undefined],
      ["oauth.login.refused", "error"],
    ]);
  });

  it("lets exactly one of several concurrent callbacks with the same state through", async () => {
    const { login } = loginWith();
    const start = await login.begin();
    const callback = await authorize(start);
    const outcomes = await Promise.allSettled(
      Array.from({ length: 5 }, () => login.complete(callback, { state: start.state })),
    );
    expect(outcomes.filter((o) => o.status === "fulfilled")).toHaveLength(1);
    for (const outcome of outcomes.filter((o) => o.status === "rejected")) {
      expect((outcome as PromiseRejectedResult).reason).toMatchObject({ code: "state_unknown" });
    }
  });

  it("refuses an unknown state, a missing state, and a state this browser did not start", async () => {
    const { login } = loginWith();
    const start = await login.begin();
    const callback = new URL(await authorize(start));

    const unknown = new URL(callback);
    unknown.searchParams.set("state", oauth.generateRandomState());
    await refused(login.complete(unknown, { state: unknown.searchParams.get("state")! }), "state_unknown");

    const missing = new URL(callback);
    missing.searchParams.delete("state");
    await refused(login.complete(missing, { state: start.state }), "state_missing");

    // Login CSRF: an attacker's own callback, sent to a victim whose browser started another login.
    const victim = await login.begin();
    await refused(login.complete(callback, { state: victim.state }), "state_mismatch");
    await refused(login.complete(callback, { state: undefined }), "state_mismatch");
    // The refusals did not use up the real login.
    expect((await login.complete(callback, { state: start.state })).claims?.sub).toBe("alice");
  });

  it("refuses a browser state that is only part of the callback's: empty, or a prefix of it", async () => {
    const { login } = loginWith();
    const start = await login.begin();
    const callback = await authorize(start);
    // An empty cookie (cleared, or never set) and a truncated one match no login.
    for (const state of ["", start.state.slice(0, 1), start.state.slice(0, -1)]) {
      await refused(login.complete(callback, { state }), "state_mismatch");
    }
    expect((await login.complete(callback, { state: start.state })).claims?.sub).toBe("alice");
  });

  it("refuses a state no login could have issued (too long for a store key, a NUL) as unknown, a 400 and not a 500", async () => {
    const { login } = loginWith();
    for (const state of ["s".repeat(600), "bad\u0000state"]) {
      const callback = new URL(REDIRECT_URI);
      callback.searchParams.set("state", state);
      callback.searchParams.set("code", "whatever");
      await refused(login.complete(callback, { state }), "state_unknown");
    }
  });

  it("refuses a callback that repeats a parameter of the response (code, state, iss, error) before any exchange, the login kept", async () => {
    const events: OAuthEvent[] = [];
    const login = createLogin(webClient(server(), { onEvent: (e) => events.push(e) }), { redirectUri: REDIRECT_URI });
    const start = await login.begin();
    const callback = new URL(await authorize(start));
    const exchanges = server().tokenRequests("authorization_code");
    // Each added to the callback's own (it has a code, a state and an iss, and no error).
    const added: Array<[name: string, ...values: string[]]> = [
      ["code", "another-code"],
      ["state", start.state],
      ["state", "another-state"],
      ["iss", server().issuer],
      ["error", "access_denied", "access_denied"],
    ];
    for (const [name, ...values] of added) {
      const repeated = new URL(callback);
      for (const value of values) repeated.searchParams.append(name, value);
      const error = await login.complete(repeated, { state: start.state }).catch((e: unknown) => e);
      expect(error, name).toBeInstanceOf(LoginError);
      expect(error, name).toMatchObject({ code: "invalid_callback", status: 400 });
      expect((error as Error).message, name).toContain(`${name} more than once`);
    }
    expect(server().tokenRequests("authorization_code")).toBe(exchanges); // no token request was sent
    expect(events.map((e) => e.type)).not.toContain("oauth.token.requested");
    expect(events.filter((e) => e.type === "oauth.login.refused")).toHaveLength(5);
    // The refusals did not use up the real login.
    expect((await login.complete(callback, { state: start.state })).claims?.sub).toBe("alice");
  });

  it("completes a callback given as its path and query, as a framework gives the request's URL (req.url)", async () => {
    const { login } = loginWith();
    const start = await login.begin();
    const callback = new URL(await authorize(start));
    const result = await login.complete(`${callback.pathname}${callback.search}`, { state: start.state });
    expect(result.claims?.sub).toBe("alice");
  });

  it("refuses metadata whose authorization endpoint is no https URL (invalid_response), before keeping a login", async () => {
    const issuer = "https://as.example";
    for (const endpoint of ["not a url", "http://as.example/authorize", "javascript:alert(1)", undefined]) {
      const client = createOAuthClient({
        issuer,
        ...WEB_APP,
        metadata: {
          issuer,
          token_endpoint: `${issuer}/token`,
          ...(endpoint === undefined ? {} : { authorization_endpoint: endpoint }),
        },
      });
      const store = new MemoryTokenStore();
      const error = await createLogin(client, { redirectUri: REDIRECT_URI, store })
        .begin()
        .catch((e: unknown) => e);
      expect(error, String(endpoint)).toBeInstanceOf(OAuthResponseError);
      expect(error).toMatchObject({ code: "invalid_response", status: 502 });
      expect(store.size).toBe(0);
    }
  });

  it("refuses a login that took longer than pendingTtlMs", async () => {
    let now = Date.now();
    const store = new MemoryTokenStore({ now: () => now });
    const { login } = loginWith({ store, pendingTtlMs: 60_000 });
    const start = await login.begin();
    expect(start.expiresAt).toBeGreaterThan(Date.now() + 59_000);
    const callback = await authorize(start);
    now += 61_000;
    await refused(login.complete(callback, { state: start.state }), "state_unknown");
  });

  it("times a pending login in the default store on the client's now, when the app gave one", async () => {
    let now = Date.now();
    const login = createLogin(webClient(server(), { now: () => now }), {
      redirectUri: REDIRECT_URI,
      pendingTtlMs: 60_000,
    });
    const start = await login.begin();
    const callback = await authorize(start);
    now += 61_000;
    await refused(login.complete(callback, { state: start.state }), "state_unknown");
  });

  it("refuses a callback from another issuer (RFC 9207 mix-up defence)", async () => {
    const { login } = loginWith();
    const start = await login.begin();
    const callback = new URL(await authorize(start));
    callback.searchParams.set("iss", "https://evil.example");
    await refused(login.complete(callback, { state: start.state }), "issuer_mismatch");

    const again = await login.begin();
    const withoutIss = new URL(await authorize(again));
    withoutIss.searchParams.delete("iss"); // the server advertises that it always sends iss
    await refused(login.complete(withoutIss, { state: again.state }), "issuer_mismatch");
  });

  it("turns an error the server redirects back with into an OAuthError (access_denied)", async () => {
    const { login } = loginWith();
    const start = await login.begin();
    const browser = new Browser();
    const page = await browser.follow(start.url.href, { stopAt: REDIRECT_URI });
    const abort = /href="([^"]+\/abort)"/.exec(page.body)?.[1];
    expect(abort).toBeDefined();
    const back = await browser.follow(new URL(abort!, page.url).href, { stopAt: REDIRECT_URI });
    const error = await login.complete(back.url, { state: start.state }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OAuthError);
    expect(error).toMatchObject({ code: "access_denied", status: 403, responseStatus: undefined });
  });

  it("a silent login (prompt=none) without a session at the server is login_required, 401: not a server failure", async () => {
    const { login } = loginWith();
    const start = await login.begin({ params: { prompt: "none" } });
    // A new browser has no session at the server, so the server redirects straight back.
    const back = await new Browser().follow(start.url.href, { stopAt: REDIRECT_URI });
    expect(new URL(back.url).searchParams.get("error")).toBe("login_required");
    const error = await login.complete(back.url, { state: start.state }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OAuthError);
    expect(error).toMatchObject({ code: "login_required", status: 401, title: expect.stringContaining("log in") });
    expect((error as OAuthError).toProblem()).toMatchObject({ status: 401, code: "login_required" });
  });

  it("seals pending logins in a shared store when given keys: no verifier in clear", async () => {
    const { login, store } = loginWith({ encryptionKeys: keyring });
    const start = await login.begin();
    const stored = (await store.get(await webAppKey(server(), "login", start.state)))!.value;
    expect(stored).toMatch(/^v1\.k1\./);
    expect(stored).not.toContain("verifier");
    const result = await login.complete(await authorize(start), { state: start.state });
    expect(result.claims?.sub).toBe("alice");
  });

  it("plain OAuth: no nonce and no ID token without the openid scope", async () => {
    const { login } = loginWith({ scope: "api:read" });
    const start = await login.begin();
    expect(start.url.searchParams.has("nonce")).toBe(false);
    const result = await login.complete(await authorize(start), { state: start.state });
    expect(result.claims).toBeUndefined();
    expect(result.tokens.idToken).toBeUndefined();
  });

  it("OpenID Connect or not is the scope a login sends, its own params' included: a nonce only with openid", async () => {
    // The option asks for openid, this login's params for plain OAuth: no nonce (oidc-provider
    // refuses one without openid), and no ID token required.
    const plain = loginWith({ scope: "openid profile" }).login;
    const plainStart = await plain.begin({ params: { scope: "api:read" } });
    expect(plainStart.url.searchParams.has("nonce")).toBe(false);
    const plainResult = await plain.complete(await authorize(plainStart), { state: plainStart.state });
    expect(plainResult.tokens.idToken).toBeUndefined();
    expect(plainResult.tokens.scope).toBe("api:read");

    // The other way round: the ID token this login asked for is bound to it by a nonce.
    const openid = loginWith({ scope: "api:read" }).login;
    const openidStart = await openid.begin({ params: { scope: "openid" } });
    const nonce = openidStart.url.searchParams.get("nonce");
    expect(nonce).toEqual(expect.any(String));
    const openidResult = await openid.complete(await authorize(openidStart), { state: openidStart.state });
    expect(openidResult.claims).toMatchObject({ sub: "alice", nonce });
    expect(() => loginWith({ scope: ["openid"] as unknown as string })).toThrow(InterlockConfigError);
  });

  it("keeps returnTo only when it is a path on this site", async () => {
    const { login, store } = loginWith();
    for (const returnTo of [
      "https://evil.example/",
      "//evil.example",
      "/\\evil.example",
      "javascript:alert(1)",
      "/a\nb",
    ]) {
      const start = await login.begin({ returnTo });
      expect(
        JSON.parse((await store.get(await webAppKey(server(), "login", start.state)))!.value).returnTo,
        returnTo,
      ).toBeUndefined();
    }
  });

  it("sends the redirect URI exactly as given, as the server compares it (RFC 6749 §3.1.2.3)", async () => {
    // Registered without a path: parsed and printed again, the URL would gain a "/" that is not.
    const redirectUri = "http://127.0.0.1:9";
    const client = { client_id: "pathless", client_secret: "pathless-secret", redirect_uris: [redirectUri] };
    const own = await startAuthorizationServer({ clients: [{ ...client, grant_types: ["authorization_code"] }] });
    try {
      const oauthClient = createOAuthClient({
        issuer: own.issuer,
        clientId: client.client_id,
        clientSecret: client.client_secret,
      });
      const login = createLogin(oauthClient, { redirectUri, scope: "openid" });
      const start = await login.begin();
      expect(start.url.searchParams.get("redirect_uri")).toBe(redirectUri);
      const browser = new Browser();
      const first = await browser.follow(start.url.href, { stopAt: redirectUri });
      const callback = await browser.signIn(first, "alice", { stopAt: redirectUri });
      expect(callback.status, callback.body).toBe(0); // sent back, not refused
      const result = await login.complete(callback.url, { state: start.state });
      expect(result.claims?.sub).toBe("alice");
    } finally {
      await own.close();
    }
  });

  it("passes extra parameters, and refuses ones the login sets itself", async () => {
    const { login } = loginWith({ params: { prompt: "consent" } });
    const start = await login.begin({ params: { login_hint: "alice" } });
    expect(start.url.searchParams.get("prompt")).toBe("consent");
    expect(start.url.searchParams.get("login_hint")).toBe("alice");
    await expect(login.begin({ params: { state: "mine" } })).rejects.toBeInstanceOf(InterlockConfigError);
    expect(() => loginWith({ params: { code_challenge_method: "plain" } })).toThrow(InterlockConfigError);
    // The client's secret never goes into an authorization URL (RFC 6749 §2.3: the client's options authenticate it).
    expect(() => loginWith({ params: { client_secret: "zzz" } })).toThrow(/"client_secret" is set by the client's/);
    await expect(login.begin({ params: { redirect_uri: "https://evil.example/cb" } })).rejects.toThrow(
      /"redirect_uri" is set by the redirectUri option/,
    );
    expect(() => loginWith({ redirectUri: "/relative" })).toThrow(InterlockConfigError);
  });

  it("refuses a redirect URI with a fragment, an empty one too (RFC 6749 §3.1.2)", () => {
    for (const redirectUri of [`${REDIRECT_URI}#done`, `${REDIRECT_URI}#`, new URL(`${REDIRECT_URI}#`)]) {
      expect(() => loginWith({ redirectUri }), String(redirectUri)).toThrow(InterlockConfigError);
      expect(() => loginWith({ redirectUri }), String(redirectUri)).toThrow("redirectUri must have no fragment");
    }
  });
});

describe("tokens issued for a login that ends refused are revoked at the server (RFC 7009)", () => {
  /** The token endpoint's answers as the server gave them, and the events, in order. */
  function watched(hold?: (answer: Response) => Promise<void>) {
    const events: OAuthEvent[] = [];
    const issued: Array<{ access_token: string; refresh_token?: string }> = [];
    const revoked = resolvable<OAuthEvent>();
    const fetchAndKeep: FetchLike = async (input, init) => {
      const answer = await fetch(input, init);
      if (!urlOf(input).endsWith("/token")) return answer;
      if (answer.ok) issued.push(await answer.clone().json());
      await hold?.(answer);
      return answer;
    };
    const onEvent = (event: OAuthEvent) => {
      events.push(event);
      if (event.type === "oauth.login.tokens_revoked") revoked.resolve(event);
    };
    return { events, issued, tokensRevoked: revoked.promise, fetch: fetchAndKeep, onEvent };
  }

  async function expectInactive(tokens: { access_token: string; refresh_token?: string } | undefined) {
    expect(tokens?.refresh_token).toBeTypeOf("string");
    expect(await introspect(server(), tokens!.refresh_token!, WEB_APP)).toEqual({ active: false });
    expect(await introspect(server(), tokens!.access_token, WEB_APP)).toEqual({ active: false });
  }

  it("a code exchange that timed out after it was sent: its late answer's tokens (the caller had the timeout)", async () => {
    // The answer is held back until the client has given up on it.
    const timedOut = resolvable();
    const seen = watched(() => timedOut.promise);
    const onEvent = (event: OAuthEvent) => {
      seen.onEvent(event);
      if (event.type === "oauth.token.requested") timedOut.resolve();
    };
    const client = webClient(server(), { fetch: seen.fetch, onEvent, timeoutMs: 800 });
    const login = createLogin(client, { redirectUri: REDIRECT_URI, scope: "openid profile" });
    const start = await login.begin();

    await expect(login.complete(await authorize(start), { state: start.state })).rejects.toMatchObject({
      code: "server_unavailable",
    });
    expect(await seen.tokensRevoked).toEqual({ type: "oauth.login.tokens_revoked", reason: "late", revoked: true });
    await expectInactive(seen.issued[0]);
    expect(seen.events.map((e) => [e.type, "outcome" in e ? e.outcome : "code" in e ? e.code : undefined])).toEqual([
      ["oauth.login.started", undefined],
      ["oauth.token.requested", "server_unavailable"],
      ["oauth.login.refused", "server_unavailable"],
      ["oauth.token.answered_late", "issued"],
      ["oauth.login.tokens_revoked", undefined],
    ]);
  });

  it("no late answer within as long again as the exchange could take: given up, nothing to revoke", async () => {
    const events: OAuthEvent[] = [];
    const givenUp = resolvable();
    const silent: FetchLike = (input, init) =>
      urlOf(input).endsWith("/token")
        ? new Promise<Response>((_resolve, reject) => {
            init?.signal?.addEventListener("abort", () => reject(init.signal?.reason), { once: true });
          })
        : fetch(input, init);
    const onEvent = (event: OAuthEvent) => {
      events.push(event);
      if (event.type === "oauth.token.answered_late") givenUp.resolve();
    };
    const login = createLogin(webClient(server(), { fetch: silent, onEvent, timeoutMs: 300 }), {
      redirectUri: REDIRECT_URI,
    });
    const start = await login.begin();
    const started = performance.now();
    await expect(login.complete(await authorize(start), { state: start.state })).rejects.toMatchObject({
      code: "server_unavailable",
    });
    await givenUp.promise;
    expect(performance.now() - started).toBeGreaterThanOrEqual(590); // the timeout, then as long again
    expect(events.slice(-2)).toMatchObject([
      { type: "oauth.login.refused", code: "server_unavailable" },
      { type: "oauth.token.answered_late", grant: "authorization_code", outcome: "server_unavailable" },
    ]);
    expect(events.some((e) => e.type === "oauth.login.tokens_revoked")).toBe(false);
  });

  it("an answer the login refused: an authentication older than max_age", async () => {
    const seen = watched();
    // The app's clock is 400 s ahead of the server's: the user authenticated "400 s ago".
    const client = webClient(server(), { fetch: seen.fetch, onEvent: seen.onEvent, now: () => Date.now() + 400_000 });
    const login = createLogin(client, { redirectUri: REDIRECT_URI, scope: "openid profile" });
    const start = await login.begin({ maxAge: 300 });

    await expect(login.complete(await authorize(start), { state: start.state })).rejects.toMatchObject({
      code: "max_age_exceeded",
    });
    expect(await seen.tokensRevoked).toEqual({ type: "oauth.login.tokens_revoked", reason: "refused", revoked: true });
    await expectInactive(seen.issued[0]);
  });

  it("a revocation endpoint that fails: the event says so (revoked: false, its code), and complete's own error stands", async () => {
    const seen = watched();
    const revocationDown: FetchLike = (input, init) =>
      urlOf(input).endsWith("/token/revocation")
        ? Promise.resolve(new Response("down", { status: 503 }))
        : seen.fetch(input, init);
    const client = webClient(server(), {
      fetch: revocationDown,
      onEvent: seen.onEvent,
      now: () => Date.now() + 400_000,
      retry: false,
    });
    const login = createLogin(client, { redirectUri: REDIRECT_URI, scope: "openid profile" });
    const start = await login.begin({ maxAge: 300 });

    await expect(login.complete(await authorize(start), { state: start.state })).rejects.toMatchObject({
      code: "max_age_exceeded",
    });
    expect(await seen.tokensRevoked).toEqual({
      type: "oauth.login.tokens_revoked",
      reason: "refused",
      revoked: false,
      error: "server_unavailable",
    });
    expect(await introspect(server(), seen.issued[0]!.refresh_token!, WEB_APP)).toMatchObject({ active: true });
  });

  it("a login that completes revokes nothing", async () => {
    const seen = watched();
    const client = webClient(server(), { fetch: seen.fetch, onEvent: seen.onEvent });
    const login = createLogin(client, { redirectUri: REDIRECT_URI, scope: "openid profile" });
    const start = await login.begin();
    const { tokens } = await login.complete(await authorize(start), { state: start.state });
    expect(await introspect(server(), tokens.refreshToken!, WEB_APP)).toMatchObject({ active: true });
    expect(seen.events.map((e) => e.type)).not.toContain("oauth.login.tokens_revoked");
  });
});
