/**
 * Client Credentials against oidc-provider: one token per (issuer, client, scopes), cached,
 * renewed a margin before it expires, one request at a time however many callers ask, and the
 * server's refusals as typed errors. Every request is counted at the server.
 */

import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { inspect } from "node:util";
import { InterlockConfigError } from "@interlock/core";
import { Events } from "oauth2-mock-server";
import { afterAll, describe, expect, it, onTestFinished, vi } from "vitest";
import {
  createClientCredentials,
  createOAuthClient,
  MemoryTokenStore,
  OAuthError,
  type OAuthEvent,
  OAuthResponseError,
  type TokenStore,
} from "../src/index.js";
import {
  introspect,
  keyring,
  SERVICE,
  serviceClient,
  useAuthorizationServer,
  useMockServer,
  WEB_APP,
} from "./helpers.js";

const server = useAuthorizationServer({ clientCredentials: 300 });
const mock = useMockServer();
const grants = () => server().tokenRequests("client_credentials");

describe("client credentials against oidc-provider", () => {
  it("caches the token and asks for a new one refreshMarginMs before it expires (injected clock)", async () => {
    let now = Date.now();
    const client = serviceClient(server(), { now: () => now });
    const tokens = createClientCredentials(client, { scope: "api:read", refreshMarginMs: 30_000 });
    const before = grants();

    const first = await tokens.getToken();
    expect(first).toMatchObject({ tokenType: "bearer", scope: "api:read", expiresAt: now + 300_000 });
    expect(await introspect(server(), first.accessToken)).toMatchObject({ active: true, client_id: "service" });
    expect(grants()).toBe(before + 1);

    now += 100_000;
    expect(await tokens.getAccessToken()).toBe(first.accessToken);
    now += 169_000; // 269 s: one second before the margin
    expect(await tokens.getAccessToken()).toBe(first.accessToken);
    expect(grants()).toBe(before + 1);

    now += 2_000; // 271 s: inside the 30 s margin, the token still valid for 29 s
    const second = await tokens.getAccessToken();
    expect(second).not.toBe(first.accessToken);
    expect(grants()).toBe(before + 2);
    expect(await introspect(server(), second)).toMatchObject({ active: true });
    expect(await tokens.getAccessToken()).toBe(second);
    expect(grants()).toBe(before + 2);
  });

  it("renews a short-lived token at half its life when the margin is longer than that", async () => {
    let now = Date.now();
    const tokens = createClientCredentials(serviceClient(server(), { now: () => now }), {
      refreshMarginMs: 10 * 60_000, // longer than the 5-minute token
    });
    const first = await tokens.getAccessToken();
    now += 149_000;
    expect(await tokens.getAccessToken()).toBe(first);
    now += 2_000;
    expect(await tokens.getAccessToken()).not.toBe(first);
  });

  it("100 concurrent callers cause exactly one token request", async () => {
    const events: OAuthEvent[] = [];
    const tokens = createClientCredentials(serviceClient(server(), { onEvent: (e) => events.push(e) }), {
      scope: "api:write",
    });
    const before = grants();
    const httpBefore = server().requests("/token");
    const all = await Promise.all(Array.from({ length: 100 }, () => tokens.getAccessToken()));
    expect(new Set(all).size).toBe(1);
    expect(grants()).toBe(before + 1);
    expect(server().requests("/token")).toBe(httpBefore + 1);
    expect(await introspect(server(), all[0]!)).toMatchObject({ active: true, scope: "api:write" });
    expect(events).toEqual([
      { type: "oauth.token.requested", grant: "client_credentials", outcome: "issued", durationMs: expect.any(Number) },
    ]);
  });

  it("providers sharing a store share one token per (issuer, client, scopes)", async () => {
    const store = new MemoryTokenStore();
    const before = grants();
    const a = createClientCredentials(serviceClient(server()), { store, scope: ["api:read", "api:write"] });
    const b = createClientCredentials(serviceClient(server()), { store, scope: "api:write api:read" });
    const other = createClientCredentials(serviceClient(server()), { store, scope: "api:read" });
    const [ta, tb, tOther] = await Promise.all([a.getAccessToken(), b.getAccessToken(), other.getAccessToken()]);
    expect(ta).toBe(tb); // the same scopes in another order
    expect(tOther).not.toBe(ta);
    expect(grants()).toBe(before + 2);
  });

  it("a token a resource server refused is replaced once, however many callers report it", async () => {
    const tokens = createClientCredentials(serviceClient(server()));
    const first = await tokens.getAccessToken();
    const before = grants();
    const replaced = await Promise.all(Array.from({ length: 20 }, () => tokens.getAccessToken({ rejected: first })));
    expect(new Set(replaced).size).toBe(1);
    expect(replaced[0]).not.toBe(first);
    expect(grants()).toBe(before + 1);
    // A late report of the old token does not cause another request.
    expect(await tokens.getAccessToken({ rejected: first })).toBe(replaced[0]);
    expect(grants()).toBe(before + 1);
  });

  it("invalid_client: a wrong secret", async () => {
    const tokens = createClientCredentials(serviceClient(server(), { clientSecret: "wrong" }));
    const error = await tokens.getAccessToken().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OAuthError);
    expect(error).toMatchObject({ code: "invalid_client", status: 502, responseStatus: 401 });
    expect((error as Error).message).not.toContain("wrong");
  });

  it("invalid_client with client_secret_post too", async () => {
    const tokens = createClientCredentials(
      serviceClient(server(), { clientSecret: "wrong", clientAuthentication: "client_secret_post" }),
    );
    await expect(tokens.getAccessToken()).rejects.toMatchObject({ code: "invalid_client" });
  });

  it("invalid_scope: a scope the client may not ask for", async () => {
    const events: OAuthEvent[] = [];
    const client = serviceClient(server(), { onEvent: (e) => events.push(e) });
    const tokens = createClientCredentials(client, { scope: "api:read api:admin" });
    const error = await tokens.getAccessToken().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OAuthError);
    expect(error).toMatchObject({ code: "invalid_scope", status: 502, responseStatus: 400 });
    expect(events).toMatchObject([
      { type: "oauth.token.requested", grant: "client_credentials", outcome: "invalid_scope" },
    ]);
  });

  it("a client not allowed this grant: the server's own code (oidc-provider says invalid_request)", async () => {
    const client = createOAuthClient({ issuer: server().issuer, ...WEB_APP });
    const error = await createClientCredentials(client)
      .getAccessToken()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OAuthError);
    expect(error).toMatchObject({
      code: "invalid_request",
      description: "requested grant type is not allowed for this client",
      responseStatus: 400,
    });
  });

  it("refuses params the grant or the client sets itself, naming the option to use instead; nothing is sent", async () => {
    const before = grants();
    const refused: Array<[Record<string, string>, RegExp]> = [
      // RFC 6749 §2.3: one authentication method per request (a second one alongside HTTP Basic).
      [
        { client_secret: "zzz" },
        /params: "client_secret" is set by the client's clientSecret and clientAuthentication/,
      ],
      [{ client_id: "other" }, /"client_id" is set by the client's clientId option/],
      [{ client_assertion: "jwt" }, /"client_assertion" is set by the client's clientAuthentication option/],
      [{ client_assertion_type: "x" }, /"client_assertion_type" is set by the client's clientAuthentication/],
      [{ grant_type: "password" }, /"grant_type" is set by the client credentials grant itself/],
      [{ scope: "api:read" }, /"scope" is set by the scope option/],
      [{ resource: "https://api.example" }, /"resource" is set by the resource option/],
    ];
    for (const [params, message] of refused) {
      expect(() => createClientCredentials(serviceClient(server()), { params })).toThrow(InterlockConfigError);
      expect(() => createClientCredentials(serviceClient(server()), { params })).toThrow(message);
    }
    expect(() => createClientCredentials(serviceClient(server()), { params: { audience: 1 as never } })).toThrow(
      /"audience" must be a string/,
    );
    expect(grants()).toBe(before);
    // Others are sent as given.
    const tokens = createClientCredentials(serviceClient(server()), { scope: "api:read", params: { audience: "x" } });
    expect(await tokens.getAccessToken()).toBeTypeOf("string");
  });

  it("an event hook that throws changes nothing", async () => {
    const client = serviceClient(server(), {
      onEvent: () => {
        throw new Error("logger down");
      },
    });
    await expect(createClientCredentials(client).getAccessToken()).resolves.toBeTypeOf("string");
  });

  it("a now that answers no finite number fails the call with InterlockConfigError, before a token is asked for", async () => {
    // An unbound method or an unset fake: undefined or NaN passes every comparison it is in, so a
    // token would never be due and the default store's lock would be free to every caller. The
    // client checks it whatever the store (an app's own store never reads it).
    for (const [reading, options] of [
      [undefined, {}],
      [Number.NaN, {}],
      [undefined, { store: new MemoryTokenStore() }],
      [Number.NaN, { store: new MemoryTokenStore() }],
    ] as const) {
      const tokens = createClientCredentials(serviceClient(server(), { now: () => reading as never }), options);
      const before = grants();
      const calls = await Promise.allSettled([tokens.getAccessToken(), tokens.getAccessToken()]);
      for (const call of calls) {
        expect(call).toMatchObject({ status: "rejected", reason: { name: "InterlockConfigError" } });
        expect(String((call as PromiseRejectedResult).reason.message)).toMatch(/^now\(\) returned /);
      }
      expect(grants()).toBe(before); // refused before the server is asked
    }
  });

  it("a failed request is not cached: the next call asks again", async () => {
    const tokens = createClientCredentials(serviceClient(server()), { scope: "api:admin" });
    const before = grants();
    await expect(tokens.getAccessToken()).rejects.toBeInstanceOf(OAuthError);
    await expect(tokens.getAccessToken()).rejects.toBeInstanceOf(OAuthError);
    expect(grants()).toBe(before + 2);
  });
});

describe("client credentials against oauth2-mock-server (injected failures)", () => {
  const client = (options = {}) => createOAuthClient({ issuer: mock().issuer.url!, ...SERVICE, ...options });
  const inject = (statusCode: number, body: Record<string, unknown> | "") =>
    mock().service.once(Events.BeforeResponse, (response) => {
      response.statusCode = statusCode;
      response.body = body;
    });

  it("two clients of one server never share a cached token, even with the same request and store", async () => {
    const store = new MemoryTokenStore();
    let issued = 0;
    const count = () => issued++;
    mock().service.on(Events.BeforeResponse, count);
    try {
      const service = createClientCredentials(client(), { store, scope: "api:read" });
      const other = createClientCredentials(client({ clientId: "other-service", clientSecret: "other-secret" }), {
        store,
        scope: "api:read",
      });
      await service.getAccessToken();
      await other.getAccessToken();
    } finally {
      mock().service.off(Events.BeforeResponse, count);
    }
    expect(issued).toBe(2); // one token request per client
  });

  it("a store that fails to cache the token for a reason other than being down is an error, not swallowed", async () => {
    const memory = new MemoryTokenStore();
    const broken = new Error("the store refused the value");
    const store: TokenStore = {
      name: "broken",
      get: (key) => memory.get(key),
      delete: (key, expect) => memory.delete(key, expect),
      set: (key, value, options) => (key.includes(":lock:") ? memory.set(key, value, options) : Promise.reject(broken)),
    };
    const tokens = createClientCredentials(client(), { store });
    await expect(tokens.getAccessToken()).rejects.toBe(broken);
  });

  it("a cached token that does not open is no token: a new one is asked for and replaces it", async () => {
    const memory = new MemoryTokenStore();
    const written: string[] = [];
    const store: TokenStore = {
      name: "noting",
      get: (key) => memory.get(key),
      delete: (key, expect) => memory.delete(key, expect),
      set: (key, value, options) => {
        written.push(key);
        return memory.set(key, value, options);
      },
    };
    let issued = 0;
    const count = () => issued++;
    mock().service.on(Events.BeforeResponse, count);
    try {
      // A rolling deploy that adds encryptionKeys: old and new instances share the store.
      await createClientCredentials(client(), { store }).getAccessToken();
      await createClientCredentials(client(), { store, encryptionKeys: keyring }).getAccessToken(); // unsealed: not trusted
      await createClientCredentials(client(), { store }).getAccessToken(); // sealed: no key to open it
      const cached = written.find((key) => !key.includes(":lock:"))!;
      await memory.set(cached, '{"accessToken":', { ttlMs: 60_000 }); // altered
      await createClientCredentials(client(), { store }).getAccessToken();
      expect(issued).toBe(4);
      await createClientCredentials(client(), { store }).getAccessToken(); // the last one, cached
      expect(issued).toBe(4);
    } finally {
      mock().service.off(Events.BeforeResponse, count);
    }
  });

  it("RFC 6749 §5.2 errors arrive typed, with the server's description", async () => {
    for (const [status, code] of [
      [400, "invalid_request"],
      [401, "invalid_client"],
      [400, "invalid_grant"],
      [400, "unauthorized_client"],
      [400, "unsupported_grant_type"],
      [400, "invalid_scope"],
      [400, "invalid_target"],
      [400, "an_extension_error"],
    ] as const) {
      inject(status, { error: code, error_description: `injected ${code}`, error_uri: "https://docs.example/e" });
      const error = await createClientCredentials(client())
        .getAccessToken()
        .catch((e: unknown) => e);
      expect(error, code).toBeInstanceOf(OAuthError);
      expect(error).toMatchObject({
        code,
        responseStatus: status,
        description: `injected ${code}`,
        uri: "https://docs.example/e",
      });
      expect((error as OAuthError).toProblem()).toMatchObject({ code, type: `urn:interlock:problem:${code}` });
      // The server's own words stay on `description` only: the message names the code and where it
      // came from (a server may echo the request there, the client's secret included), and the
      // problem for the app's client leaves them out.
      expect((error as OAuthError).message).toBe(`authorization server answered ${code} at its token endpoint`);
      expect(JSON.stringify((error as OAuthError).toProblem())).not.toContain("injected");
    }
  });

  it("5xx and 429 are server_unavailable (503), whatever the body (one attempt: retry false)", async () => {
    for (const [status, body] of [
      [503, { error: "temporarily_unavailable" }],
      [500, { error: "server_error" }],
      [502, ""],
      [429, { error: "slow_down" }],
    ] as const) {
      inject(status, body);
      const error = await createClientCredentials(client({ retry: false }))
        .getAccessToken()
        .catch((e: unknown) => e);
      expect(error, String(status)).toBeInstanceOf(OAuthResponseError);
      expect(error).toMatchObject({ code: "server_unavailable", status: 503, responseStatus: status });
    }
  });

  it("a server that echoes the request in its error_description: the description holds it, the message does not", async () => {
    let credentials = "";
    mock().service.once(Events.BeforeResponse, (response, request) => {
      credentials = request.headers.authorization ?? "";
      response.statusCode = 400;
      response.body = { error: "invalid_grant", error_description: `bad request: ${credentials}` };
    });
    const error = (await createClientCredentials(client())
      .getAccessToken()
      .catch((e: unknown) => e)) as OAuthError;
    expect(error).toBeInstanceOf(OAuthError);
    expect(credentials).toMatch(/^Basic /); // the client's secret, encoded
    expect(error.description).toBe(`bad request: ${credentials}`);
    expect(error.message).toBe("authorization server answered invalid_grant at its token endpoint");
    // Logged whole, it leaves the description out too.
    expect(inspect(error, { depth: 10 })).not.toContain(credentials.slice("Basic ".length));
    expect(JSON.stringify(error)).not.toContain(credentials.slice("Basic ".length));
  });

  it("a 429 whose error_description echoes the request: logged whole, the error leaves it out, its cause included", async () => {
    let credentials = "";
    mock().service.once(Events.BeforeResponse, (response, request) => {
      credentials = request.headers.authorization ?? "";
      response.statusCode = 429;
      response.body = { error: "slow_down", error_description: `slow down: ${credentials}` };
    });
    const error = await createClientCredentials(client({ retry: false }))
      .getAccessToken()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OAuthResponseError);
    expect(error).toMatchObject({ code: "server_unavailable", responseStatus: 429 });
    expect(credentials).toMatch(/^Basic /); // the client's secret, encoded
    // What a logger prints of it, to the bottom of its causes.
    const logged = inspect(error, { depth: Number.POSITIVE_INFINITY, showHidden: true });
    expect(logged).not.toContain(credentials.slice("Basic ".length));
    expect(logged).toContain("slow_down"); // what the server said is still said
    // Its words too, where only asked for: on the cause's description, as on any OAuthError.
    const cause = (error as Error).cause as OAuthError;
    expect(cause).toBeInstanceOf(OAuthError);
    expect(cause.description).toBe(`slow down: ${credentials}`);
  });

  it("a 200 that is not a token response is invalid_response (502)", async () => {
    for (const body of [{ token_type: "Bearer" }, { access_token: 42, token_type: "Bearer" }, ""] as const) {
      inject(200, body);
      const error = await createClientCredentials(client())
        .getAccessToken()
        .catch((e: unknown) => e);
      expect(error, JSON.stringify(body)).toBeInstanceOf(OAuthResponseError);
      expect(error).toMatchObject({ code: "invalid_response", status: 502 });
    }
  });

  it("a token of a type this client cannot present (DPoP, RFC 6749 §7.1) is invalid_response, never sent as Bearer", async () => {
    inject(200, { access_token: "dpop-bound", token_type: "DPoP", expires_in: 3600 });
    const error = await createClientCredentials(client())
      .getAccessToken()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OAuthResponseError);
    expect(error).toMatchObject({ code: "invalid_response", status: 502 });
    expect((error as Error).message).toContain("DPoP");
    expect(inspect(error, { depth: Number.POSITIVE_INFINITY, showHidden: true })).not.toContain("dpop-bound");
  });

  it("a token that is not 1*VSCHAR (RFC 6749 Appendix A.12, A.17) is invalid_response, its value in no error; | and spaces are taken", async () => {
    for (const [field, token] of [
      ["access_token", "secret\r\nX-Injected: 1"],
      ["access_token", "secret-\u00e9-\u0442\u043e\u043a\u0435\u043d"],
      ["access_token", "secret\u0000nul"],
      ["access_token", "secret\ttab"],
      ["refresh_token", "secret\nrefresh"],
    ] as const) {
      inject(200, { access_token: "fine", token_type: "Bearer", expires_in: 3600, [field]: token });
      const error = await createClientCredentials(client())
        .getAccessToken()
        .catch((e: unknown) => e);
      expect(error, JSON.stringify(token)).toBeInstanceOf(OAuthResponseError);
      expect(error).toMatchObject({ code: "invalid_response", status: 502 });
      expect((error as Error).message).toContain(field);
      expect(inspect(error, { depth: Number.POSITIVE_INFINITY, showHidden: true })).not.toContain("secret");
    }
    // RFC 6750's b64token is not asked for: Facebook's app tokens hold "|".
    for (const token of ["1234|app-secret-part", "two words", "~!#$%&'()*+,-./:;<=>?@[\\]^_`{}"]) {
      inject(200, { access_token: token, token_type: "Bearer", expires_in: 3600 });
      expect(await createClientCredentials(client()).getAccessToken()).toBe(token);
    }
  });

  it("a token response refused for a bad field keeps its tokens out of the error, its cause included", async () => {
    const tokens = { access_token: "secret-access", refresh_token: "secret-refresh", id_token: "secret-id" };
    for (const body of [
      { ...tokens, token_type: "MAC" }, // a token type oauth4webapi does not know
      { ...tokens, token_type: "Bearer", id_token: undefined, expires_in: "soon" },
      { ...tokens, token_type: "Bearer", id_token: undefined, scope: ["api:read"] },
      { ...tokens, token_type: "Bearer" }, // an ID token that is no JWT
    ]) {
      inject(200, body);
      const error = await createClientCredentials(client())
        .getAccessToken()
        .catch((e: unknown) => e);
      expect(error, JSON.stringify(body)).toBeInstanceOf(OAuthResponseError);
      expect(error).toMatchObject({ code: "invalid_response", status: 502 });
      // What a logger prints of it, to the bottom of its causes.
      const logged = inspect(error, { depth: Number.POSITIVE_INFINITY, showHidden: true });
      expect(logged).not.toContain("secret-");
      expect(logged).toMatch(/OperationProcessingError|UnsupportedOperationError/); // what failed is still said
    }
  });

  it("a lifetime no store could keep (expires_in of 10^13 s): the token is used, cached for a year at most", async () => {
    inject(200, { access_token: "long-lived", token_type: "Bearer", expires_in: 1e13 });
    const store = new MemoryTokenStore();
    expect(await createClientCredentials(client(), { store }).getAccessToken()).toBe("long-lived");
    // From the store: the mock server would have answered a token of its own.
    expect(await createClientCredentials(client(), { store }).getAccessToken()).toBe("long-lived");
  });

  it("a lifetime past any clock (expires_in of 10^306 s, Infinity in ms): cached as well, one request for two instances", async () => {
    inject(200, { access_token: "longer-lived", token_type: "Bearer", expires_in: 1e306 });
    const store = new MemoryTokenStore();
    let issued = 0;
    const count = () => issued++;
    mock().service.on(Events.BeforeResponse, count);
    try {
      expect(await createClientCredentials(client(), { store }).getAccessToken()).toBe("longer-lived");
      expect(await createClientCredentials(client(), { store }).getAccessToken()).toBe("longer-lived");
    } finally {
      mock().service.off(Events.BeforeResponse, count);
    }
    expect(issued).toBe(1);
  });

  it("keeps using a due but unexpired token while the server fails, until it expires", async () => {
    let now = Date.now();
    const events: OAuthEvent[] = [];
    const tokens = createClientCredentials(
      client({ now: () => now, onEvent: (e: OAuthEvent) => events.push(e), retry: false }),
      {
        refreshMarginMs: 60_000,
      },
    );
    const first = await tokens.getAccessToken(); // the mock's tokens live an hour
    now += 3_590_000; // due (inside the margin), valid for 10 more seconds
    inject(503, { error: "temporarily_unavailable" });
    expect(await tokens.getAccessToken()).toBe(first);
    expect(events.at(-1)).toEqual({
      type: "oauth.token.stale_used",
      grant: "client_credentials",
      code: "server_unavailable",
    });
    now += 20_000; // expired now
    inject(503, { error: "temporarily_unavailable" });
    await expect(tokens.getAccessToken()).rejects.toMatchObject({ code: "server_unavailable" });
    // The server is back: a new token is asked for (the mock signs the same claims the same way
    // within a second, so the request is counted rather than the token compared).
    let issued = 0;
    mock().service.once(Events.BeforeResponse, () => issued++);
    await expect(tokens.getAccessToken()).resolves.toBeTypeOf("string");
    expect(issued).toBe(1);
  });

  it("a token answered without expires_in is used while the server fails only for its assumed lifetime (assumedLifetimeMs)", async () => {
    let now = Date.now();
    const events: OAuthEvent[] = [];
    const tokens = createClientCredentials(
      client({ now: () => now, onEvent: (e: OAuthEvent) => events.push(e), retry: false }),
      { assumedLifetimeMs: 300_000, refreshMarginMs: 60_000 },
    );
    inject(200, { access_token: "no-lifetime", token_type: "Bearer" });
    expect(await tokens.getAccessToken()).toBe("no-lifetime");
    now += 270_000; // due (inside the margin), 30 s left of the 5 minutes assumed
    inject(503, { error: "temporarily_unavailable" });
    expect(await tokens.getAccessToken()).toBe("no-lifetime");
    expect(events.at(-1)).toMatchObject({ type: "oauth.token.stale_used", grant: "client_credentials" });
    now += 60_000; // past the assumed lifetime: taken as expired, not handed out for as long as the server is down
    inject(503, { error: "temporarily_unavailable" });
    await expect(tokens.getAccessToken()).rejects.toMatchObject({ code: "server_unavailable" });
  });

  it("a server that says it is down in a 4xx error (temporarily_unavailable, server_error): the due token is still used", async () => {
    for (const code of ["temporarily_unavailable", "server_error"]) {
      let now = Date.now();
      const events: OAuthEvent[] = [];
      const tokens = createClientCredentials(client({ now: () => now, onEvent: (e: OAuthEvent) => events.push(e) }));
      const first = await tokens.getAccessToken();
      now += 3_590_000; // due, valid for 10 more seconds
      inject(400, { error: code });
      expect(await tokens.getAccessToken(), code).toBe(first);
      expect(events.at(-1)).toEqual({ type: "oauth.token.stale_used", grant: "client_credentials", code });
      now += 20_000; // expired now: the server's own error, as it said it
      inject(400, { error: code });
      await expect(tokens.getAccessToken()).rejects.toMatchObject({ code, status: 503, responseStatus: 400 });
    }
  });

  it("a process with no token of its own rides an outage out with the due, unexpired token another process stored", async () => {
    let now = Date.now();
    const store = new MemoryTokenStore();
    const events: OAuthEvent[] = [];
    const first = createClientCredentials(client({ now: () => now, retry: false }), { store });
    inject(200, { access_token: "shared-1", token_type: "Bearer", expires_in: 600 });
    expect(await first.getAccessToken()).toBe("shared-1");
    now += 540_000; // due (inside the 60 s margin), valid for 60 more seconds
    // An instance started (or scaled out) during the outage: the store's token is the only one.
    const started = createClientCredentials(
      client({ now: () => now, retry: false, onEvent: (e: OAuthEvent) => events.push(e) }),
      { store },
    );
    inject(503, { error: "temporarily_unavailable" });
    expect(await started.getAccessToken()).toBe("shared-1");
    expect(events.at(-1)).toEqual({
      type: "oauth.token.stale_used",
      grant: "client_credentials",
      code: "server_unavailable",
    });
    // Never the token a resource server refused.
    inject(503, { error: "temporarily_unavailable" });
    await expect(started.getAccessToken({ rejected: "shared-1" })).rejects.toMatchObject({
      code: "server_unavailable",
    });
    now += 70_000; // expired now
    inject(503, { error: "temporarily_unavailable" });
    await expect(started.getAccessToken()).rejects.toMatchObject({ code: "server_unavailable" });
  });

  it("a process whose own token is older than the store's rides an outage out with the store's, the newest", async () => {
    let now = Date.now();
    const store = new MemoryTokenStore();
    const older = createClientCredentials(client({ now: () => now, retry: false }), { store });
    const newer = createClientCredentials(client({ now: () => now, retry: false }), { store });
    inject(200, { access_token: "older", token_type: "Bearer", expires_in: 600 });
    expect(await older.getAccessToken()).toBe("older");
    now += 540_000; // "older" due: the other process renews it
    inject(200, { access_token: "newer", token_type: "Bearer", expires_in: 600 });
    expect(await newer.getAccessToken()).toBe("newer");
    now += 540_000; // "older" expired 8 minutes ago; "newer" due, valid for 60 more seconds
    inject(503, { error: "temporarily_unavailable" });
    expect(await older.getAccessToken()).toBe("newer");
  });

  it("a server that never answers is server_unavailable after timeoutMs", async () => {
    const silent = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    afterAll(() => {
      silent.closeAllConnections();
      silent.close();
    });
    const issuer = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const hanging = createOAuthClient({
      issuer,
      ...SERVICE,
      timeoutMs: 300,
      metadata: { issuer, token_endpoint: `${issuer}/token` },
    });
    const error = await createClientCredentials(hanging)
      .getAccessToken()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OAuthResponseError);
    expect(error).toMatchObject({ code: "server_unavailable" });
    expect((error as Error).message).toContain("no answer in 300 ms");
  });

  it("refuses bad options", () => {
    expect(() => createClientCredentials(client(), { refreshMarginMs: -1 })).toThrow(InterlockConfigError);
    expect(() => createClientCredentials(client(), { lockTtlMs: 0 })).toThrow(InterlockConfigError);
    expect(() => createClientCredentials({} as never)).toThrow(InterlockConfigError);
  });
});

describe("client credentials when the system clock is set (no `now` option)", () => {
  /** A token endpoint on 127.0.0.1 issuing `at-1`, `at-2`, … that each live `lifetimeS` seconds. */
  async function tokenEndpoint(lifetimeS: number) {
    let issued = 0;
    const endpoint = createServer((_request, response) => {
      issued++;
      response.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" });
      response.end(JSON.stringify({ access_token: `at-${issued}`, token_type: "Bearer", expires_in: lifetimeS }));
    });
    await new Promise<void>((resolve) => endpoint.listen(0, "127.0.0.1", resolve));
    onTestFinished(() => {
      endpoint.closeAllConnections();
      endpoint.close();
    });
    const issuer = `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}`;
    const client = createOAuthClient({ issuer, ...SERVICE, metadata: { issuer, token_endpoint: `${issuer}/token` } });
    return { client, issued: () => issued };
  }

  it("a cached token is renewed on time though the clock was set back, and kept though it was set forward", async () => {
    const { client, issued } = await tokenEndpoint(2); // due after 1 s (half its life)
    const tokens = createClientCredentials(client);
    expect(await tokens.getAccessToken()).toBe("at-1");

    const now = Date.now.bind(Date);
    const step = vi.spyOn(Date, "now").mockImplementation(() => now() + 10 * 60_000); // NTP steps it forward
    onTestFinished(() => step.mockRestore());
    expect(await tokens.getAccessToken()).toBe("at-1"); // not ended early
    expect(issued()).toBe(1);

    step.mockImplementation(() => now() - 10 * 60_000); // and back
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    // Due on monotonic time: renewed, and the default store's copy of at-1 is not handed back.
    expect(await tokens.getAccessToken()).toBe("at-2");
    expect(issued()).toBe(2);
  });
});
