/**
 * Requests to the authorization server go through @interlock/client: reads, client credentials
 * grants and revocations are retried on transient failures; code exchanges and refresh grants
 * never are. A proxy in front of the real server (oidc-provider) injects the failures and counts
 * what arrives.
 */

import { inspect } from "node:util";
import {
  CircuitOpenError,
  type ClientEvent,
  RetryAfterTooLongError,
  RetryLimitError,
  type Sleep,
  TimeoutError,
} from "@interlock/client";
import { InterlockConfigError } from "@interlock/core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  authorizedFetch,
  createClientCredentials,
  createLogin,
  createSessionTokens,
  LoginRequiredError,
  type OAuthClientOptions,
  OAuthError,
  OAuthResponseError,
} from "../src/index.js";
import { type FaultyProxy, startFaultyProxy } from "./faulty-proxy.js";
import {
  authorize,
  introspect,
  keyring,
  loggedInTokens,
  REDIRECT_URI,
  SERVICE,
  serviceClient,
  startResourceServer,
  useAuthorizationServer,
  WEB_APP,
  webClient,
} from "./helpers.js";

const server = useAuthorizationServer();
const DISCOVERY = "/.well-known/openid-configuration";
const isToken = (grant: string) => (r: { path: string; grantType: string | undefined }) =>
  r.path === "/token" && r.grantType === grant;

let proxy: FaultyProxy;
beforeAll(async () => {
  proxy = await startFaultyProxy(server().issuer);
});
afterAll(() => proxy?.close());
afterEach(() => {
  // No request to the authorization server ever carries an Idempotency-Key.
  expect(proxy.received.filter((r) => r.headers["idempotency-key"] !== undefined)).toEqual([]);
});

/** Waits recorded and skipped: with no attempt timeout and no deadline, the only waits are the ones before a retry. */
function recordingSleep(): { sleep: Sleep; waits: number[] } {
  const waits: number[] = [];
  const sleep: Sleep = (ms, signal) => {
    waits.push(ms);
    return signal.aborted ? Promise.reject(signal.reason) : Promise.resolve();
  };
  return { sleep, waits };
}

/** A client whose requests to the server go through the proxy; no attempt timeout, waits recorded. */
function viaProxy(options: Partial<OAuthClientOptions> = {}) {
  const { sleep, waits } = recordingSleep();
  const events: ClientEvent[] = [];
  const client = serviceClient(server(), {
    fetch: proxy.fetch,
    retry: { timeoutMs: false, deadlineMs: false, sleep, onEvent: (e) => events.push(e) },
    ...options,
  });
  return { client, waits, events };
}

async function failure(promise: Promise<unknown>): Promise<OAuthResponseError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(OAuthResponseError);
  return error as OAuthResponseError;
}

describe("retried: reads and client credentials grants", () => {
  it("a client credentials grant answered 503 with Retry-After is sent again after that wait: one token", async () => {
    const { client, waits, events } = viaProxy();
    await client.metadata();
    const before = proxy.count("/token", "client_credentials");
    const issued = server().tokenRequests("client_credentials");
    proxy.inject(isToken("client_credentials"), { status: 503, headers: { "retry-after": "1" } });

    await expect(createClientCredentials(client).getAccessToken()).resolves.toBeTypeOf("string");
    expect(proxy.count("/token", "client_credentials") - before).toBe(2);
    expect(server().tokenRequests("client_credentials") - issued).toBe(1);
    const retry = events.find((e) => e.type === "client.retry");
    expect(retry).toMatchObject({ method: "POST", status: 503, retryAfterMs: 1000, key: undefined });
    expect(retry?.type === "client.retry" && retry.delayMs).toBeGreaterThanOrEqual(1000);
    expect(waits).toEqual([retry?.type === "client.retry" && retry.delayMs]);
  });

  it("a connection reset on a client credentials grant is retried", async () => {
    const { client } = viaProxy();
    await client.metadata();
    const before = proxy.count("/token", "client_credentials");
    proxy.inject(isToken("client_credentials"), { reset: true });
    await expect(createClientCredentials(client).getAccessToken()).resolves.toBeTypeOf("string");
    expect(proxy.count("/token", "client_credentials") - before).toBe(2);
  });

  it("a discovery answered 503 once is retried", async () => {
    const { client } = viaProxy();
    const before = proxy.count(DISCOVERY);
    proxy.inject((r) => r.path === DISCOVERY, { status: 503, headers: { "retry-after": "0" } });
    await expect(client.metadata()).resolves.toMatchObject({ issuer: server().issuer });
    expect(proxy.count(DISCOVERY) - before).toBe(2);
  });

  it("gives up after maxAttempts: server_unavailable with the last status, the client's error as cause", async () => {
    const { client } = viaProxy();
    await client.metadata();
    const before = proxy.count("/token", "client_credentials");
    for (let i = 0; i < 3; i++) proxy.inject(isToken("client_credentials"), { status: 503 });
    const error = await failure(createClientCredentials(client).getAccessToken());
    expect(error).toMatchObject({ code: "server_unavailable", status: 503, responseStatus: 503 });
    expect(error.message).toBe("authorization server answered 503; gave up after 3 attempts");
    expect(error.cause).toBeInstanceOf(RetryLimitError);
    expect(proxy.count("/token", "client_credentials") - before).toBe(3);
  });

  it("a Retry-After longer than allowed ends at once: server_unavailable, RetryAfterTooLongError as cause", async () => {
    const { client } = viaProxy();
    await client.metadata();
    const before = proxy.count("/token", "client_credentials");
    proxy.inject(isToken("client_credentials"), { status: 503, headers: { "retry-after": "120" } });
    const error = await failure(createClientCredentials(client).getAccessToken());
    expect(error).toMatchObject({ code: "server_unavailable", responseStatus: 503 });
    expect(error.cause).toBeInstanceOf(RetryAfterTooLongError);
    expect(proxy.count("/token", "client_credentials") - before).toBe(1);
  });

  it("an open circuit fails fast, without a request: server_unavailable, CircuitOpenError as cause", async () => {
    const { sleep } = recordingSleep();
    const client = serviceClient(server(), {
      fetch: proxy.fetch,
      retry: { timeoutMs: false, deadlineMs: false, sleep, maxAttempts: 1, breaker: { failures: 1 } },
    });
    await client.metadata();
    const tokens = createClientCredentials(client);
    proxy.inject(isToken("client_credentials"), { status: 500 });
    await failure(tokens.getAccessToken()); // opens the circuit
    const before = proxy.count("/token");
    const error = await failure(tokens.getAccessToken());
    expect(error).toMatchObject({ code: "server_unavailable", status: 503 });
    expect(error.cause).toBeInstanceOf(CircuitOpenError);
    expect(proxy.count("/token")).toBe(before);
  });

  it("an attempt without an answer in timeoutMs is retried, then server_unavailable names the timeout", async () => {
    // A fetch that never answers, whose signal the client aborts at each attempt's timeout.
    const attempts: number[] = [];
    const counting = serviceClient(server(), {
      timeoutMs: 50,
      retry: {
        backoff: { baseMs: 1, capMs: 1 },
        onEvent: (e) => e.type === "client.attempt" && attempts.push(e.attempt),
      },
      metadata: { issuer: server().issuer, token_endpoint: `${server().issuer}/token` },
      fetch: (_input, init) =>
        new Promise((_resolve, reject) => init?.signal?.addEventListener("abort", () => reject(init.signal?.reason))),
    });
    const error = await failure(createClientCredentials(counting).getAccessToken());
    expect(error.message).toBe("authorization server unreachable: no answer in 50 ms; gave up after 3 attempts");
    expect((error.cause as RetryLimitError).cause).toBeInstanceOf(TimeoutError);
    expect(attempts).toEqual([1, 2, 3]);
  });
});

describe("retried: revocations (RFC 7009 §2.2: revoking a revoked token is answered as the first time)", () => {
  /**
   * A logged-in session on a client whose requests go through the proxy, the client's events
   * recorded (its waits are real: session tokens need the attempt timeout, which a recording sleep would end at once).
   */
  async function sessionViaProxy(id: string) {
    const events: ClientEvent[] = [];
    const client = webClient(server(), { fetch: proxy.fetch, retry: { onEvent: (e) => events.push(e) } });
    const manager = createSessionTokens(client, { encryptionKeys: keyring });
    const tokens = await loggedInTokens(server(), "alice", "openid offline_access");
    await manager.save(id, tokens);
    await client.metadata();
    return { manager, tokens, events };
  }
  const isRevocation = (r: { path: string }) => r.path === "/token/revocation";

  it("a revocation answered 503 with Retry-After is sent again after that wait (§2.2.1: the token still exists): the grant revoked", async () => {
    const { manager, tokens, events } = await sessionViaProxy("retry-revoke");
    const before = proxy.count("/token/revocation");
    const down = { status: 503, headers: { "retry-after": "1" }, body: '{"error":"temporarily_unavailable"}' };
    proxy.inject(isRevocation, down);

    expect(await manager.revoke("retry-revoke")).toEqual({ revoked: true });
    expect(proxy.count("/token/revocation") - before).toBe(3); // the refresh token twice, then the access token
    const retries = events.filter((e) => e.type === "client.retry");
    expect(retries).toMatchObject([{ method: "POST", status: 503, retryAfterMs: 1_000, key: undefined }]);
    expect(retries[0]?.type === "client.retry" && retries[0].delayMs).toBeGreaterThanOrEqual(1_000);
    expect(await introspect(server(), tokens.refreshToken!, WEB_APP)).toMatchObject({ active: false });
  });

  it("a connection reset on a revocation is retried", async () => {
    const { manager, tokens } = await sessionViaProxy("retry-revoke-reset");
    const before = proxy.count("/token/revocation");
    proxy.inject(isRevocation, { reset: true });
    expect(await manager.revoke("retry-revoke-reset")).toEqual({ revoked: true });
    expect(proxy.count("/token/revocation") - before).toBe(3);
    expect(await introspect(server(), tokens.refreshToken!, WEB_APP)).toMatchObject({ active: false });
  });

  it("gives up after maxAttempts: server_unavailable, and the grant lives on at the server", async () => {
    const { manager, tokens } = await sessionViaProxy("retry-revoke-down");
    const before = proxy.count("/token/revocation");
    for (let i = 0; i < 3; i++) proxy.inject(isRevocation, { status: 503 });
    const error = await failure(manager.revoke("retry-revoke-down"));
    expect(error).toMatchObject({ code: "server_unavailable", responseStatus: 503 });
    expect(error.message).toBe("authorization server answered 503; gave up after 3 attempts");
    expect(proxy.count("/token/revocation") - before).toBe(3);
    expect(await introspect(server(), tokens.refreshToken!, WEB_APP)).toMatchObject({ active: true });
  });

  it("revocations have a breaker of their own: a revocation endpoint that fails stops no client credentials grant", async () => {
    const client = serviceClient(server(), {
      fetch: proxy.fetch,
      retry: { backoff: { baseMs: 1, capMs: 1 }, breaker: { failures: 3 } },
    });
    const manager = createSessionTokens(client, { encryptionKeys: keyring });
    await client.metadata();
    for (const id of ["breaker-a", "breaker-b"]) {
      const tokens = { accessToken: `AT-${id}`, tokenType: "bearer", refreshToken: `RT-${id}` };
      await manager.save(id, { ...tokens, expiresAt: Date.now() + 3_600_000, scope: undefined, idToken: undefined });
    }
    const before = proxy.count("/token/revocation");
    for (let i = 0; i < 3; i++) proxy.inject(isRevocation, { status: 503 });

    // The first logout's 3 attempts open the revocations' breaker; the second's fails fast.
    await failure(manager.revoke("breaker-a"));
    expect((await failure(manager.revoke("breaker-b"))).cause).toBeInstanceOf(CircuitOpenError);
    expect(proxy.count("/token/revocation") - before).toBe(3);
    // The token endpoint's breaker saw none of it.
    await expect(createClientCredentials(client).getAccessToken()).resolves.toBeTypeOf("string");
  });
});

describe("never retried: code exchanges, refresh grants", () => {
  it("a refresh token grant answered 503 is sent once: server_unavailable, the session intact", async () => {
    const client = webClient(server(), { fetch: proxy.fetch });
    const manager = createSessionTokens(client, { encryptionKeys: keyring });
    const tokens = await loggedInTokens(server(), "alice", "openid offline_access");
    expect(tokens.refreshToken).toBeTypeOf("string");
    await manager.save("retry-refresh", tokens);
    await client.metadata();
    const saved = await manager.get("retry-refresh");
    const before = proxy.count("/token", "refresh_token");

    proxy.inject(isToken("refresh_token"), { status: 503, headers: { "retry-after": "0" } });
    const error = await failure(manager.refresh("retry-refresh"));
    expect(error).toMatchObject({ code: "server_unavailable", status: 503, responseStatus: 503 });
    expect(proxy.count("/token", "refresh_token") - before).toBe(1);
    expect(await manager.get("retry-refresh")).toEqual(saved);
    // The refresh token was never used: the next refresh works.
    await expect(manager.refresh("retry-refresh")).resolves.toMatchObject({ accessToken: expect.any(String) });
  });

  it("a connection reset on a refresh token grant is not retried either", async () => {
    const client = webClient(server(), { fetch: proxy.fetch });
    const manager = createSessionTokens(client, { encryptionKeys: keyring });
    await manager.save("retry-reset", await loggedInTokens(server(), "alice", "openid offline_access"));
    await client.metadata();
    const before = proxy.count("/token", "refresh_token");
    proxy.inject(isToken("refresh_token"), { reset: true });
    const error = await failure(manager.refresh("retry-reset"));
    expect(error).toMatchObject({ code: "server_unavailable" });
    expect(proxy.count("/token", "refresh_token") - before).toBe(1);
  });

  it("an authorization code exchange answered 503 is sent once", async () => {
    const login = createLogin(webClient(server(), { fetch: proxy.fetch }), { redirectUri: REDIRECT_URI });
    const start = await login.begin();
    const callback = await authorize(start);
    const before = proxy.count("/token", "authorization_code");
    proxy.inject(isToken("authorization_code"), { status: 503, headers: { "retry-after": "0" } });
    const error = await failure(login.complete(callback, { state: start.state }));
    expect(error).toMatchObject({ code: "server_unavailable", responseStatus: 503 });
    expect(proxy.count("/token", "authorization_code") - before).toBe(1);
  });
});

describe("an answer whose body stalls is cut off by the same time limits", () => {
  const stall = { stallAfter: '{"access_token":"' };

  it("a client credentials grant: server_unavailable once the deadline has passed, not a hang", async () => {
    const client = serviceClient(server(), { fetch: proxy.fetch, timeoutMs: 200, retry: { deadlineMs: 400 } });
    await client.metadata();
    proxy.inject(isToken("client_credentials"), stall);
    const started = performance.now();
    const error = await failure(createClientCredentials(client).getAccessToken());
    expect(error).toMatchObject({ code: "server_unavailable", status: 503 });
    expect(error.message).toBe("authorization server's answer did not arrive within 400 ms");
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it("a refresh grant: server_unavailable within its one attempt's timeout, sent once", async () => {
    const client = webClient(server(), { fetch: proxy.fetch, timeoutMs: 300 });
    const manager = createSessionTokens(client, { encryptionKeys: keyring });
    await manager.save("stalled-refresh", await loggedInTokens(server(), "alice", "openid offline_access"));
    await client.metadata();
    const before = proxy.count("/token", "refresh_token");
    proxy.inject(isToken("refresh_token"), stall);
    const error = await failure(manager.refresh("stalled-refresh"));
    expect(error.message).toBe("authorization server's answer did not arrive within 300 ms");
    expect(proxy.count("/token", "refresh_token") - before).toBe(1);
  });

  it("retry: false: the one call is bounded by timeoutMs, its body included", async () => {
    const client = serviceClient(server(), { fetch: proxy.fetch, timeoutMs: 250, retry: false });
    await client.metadata();
    proxy.inject(isToken("client_credentials"), stall);
    const error = await failure(createClientCredentials(client).getAccessToken());
    expect(error.message).toBe("authorization server's answer did not arrive within 250 ms");
  });
});

describe("an answer larger than any a token, metadata or key set answer is (1 MiB): invalid_response, not read on", () => {
  const huge = {
    status: 200,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ access_token: "big", token_type: "Bearer", expires_in: 3600, padding: "x".repeat(1 << 21) }),
  };

  it("a client credentials grant", async () => {
    const client = serviceClient(server(), { fetch: proxy.fetch });
    await client.metadata();
    proxy.inject(isToken("client_credentials"), huge);
    const error = await failure(createClientCredentials(client).getAccessToken());
    expect(error).toMatchObject({ code: "invalid_response", status: 502, responseStatus: 200 });
    expect(error.message).toContain("larger than 1048576 bytes");
  });

  it("a refresh grant (its answer read within its one attempt)", async () => {
    const client = webClient(server(), { fetch: proxy.fetch });
    const manager = createSessionTokens(client, { encryptionKeys: keyring });
    await manager.save("huge-refresh", await loggedInTokens(server(), "alice", "openid offline_access"));
    await client.metadata();
    proxy.inject(isToken("refresh_token"), huge);
    const error = await failure(manager.refresh("huge-refresh"));
    expect(error).toMatchObject({ code: "invalid_response", status: 502, responseStatus: 200 });
  });
});

describe("retry: false", () => {
  it("calls fetch once: a 503 is server_unavailable after one request", async () => {
    const client = serviceClient(server(), { fetch: proxy.fetch, retry: false });
    await client.metadata();
    const before = proxy.count("/token", "client_credentials");
    proxy.inject(isToken("client_credentials"), { status: 503, headers: { "retry-after": "0" } });
    const error = await failure(createClientCredentials(client).getAccessToken());
    expect(error).toMatchObject({ code: "server_unavailable", responseStatus: 503 });
    expect(proxy.count("/token", "client_credentials") - before).toBe(1);
  });

  it("refuses retry options that are not options", () => {
    for (const retry of [true, 3, "yes", null]) {
      expect(() => serviceClient(server(), { retry: retry as never }), String(retry)).toThrow(InterlockConfigError);
    }
    expect(() => serviceClient(server(), { retry: { maxAttempts: 0 } })).toThrow(InterlockConfigError);
  });
});

describe("authorizedFetch", () => {
  it("sends through createClient() by default: a 503 from the API is retried", async () => {
    const api = await startResourceServer(server(), SERVICE);
    const apiProxy = await startFaultyProxy(api.url);
    try {
      const tokens = createClientCredentials(serviceClient(server()), { scope: "api:read" });
      apiProxy.inject((r) => r.path === "/things", { status: 503, headers: { "retry-after": "0" } });
      const response = await authorizedFetch({ tokens })(`${apiProxy.url}/things`);
      expect(response.status).toBe(200);
      expect(apiProxy.count("/things")).toBe(2);
      expect(api.requests).toBe(1);
    } finally {
      await apiProxy.close();
      await api.close();
    }
  });
});

describe("error answers whatever their Content-Type says", () => {
  // Media types are case-insensitive (RFC 9110 §8.3.1); oauth4webapi reads an error body only
  // under exactly `application/json`, and no page a proxy answers with.
  const invalidClient = JSON.stringify({ error: "invalid_client", error_description: "unknown client" });

  it("an RFC 6749 §5.2 error sent as Application/JSON is the server's error, typed, with its status", async () => {
    for (const type of ["Application/JSON", "APPLICATION/json; charset=UTF-8", "application/json"]) {
      const { client } = viaProxy();
      await client.metadata();
      proxy.inject(isToken("client_credentials"), {
        status: 401,
        headers: { "content-type": type },
        body: invalidClient,
      });
      const error = await createClientCredentials(client)
        .getAccessToken()
        .catch((e: unknown) => e);
      expect(error, type).toBeInstanceOf(OAuthError);
      expect(error, type).toMatchObject({ code: "invalid_client", description: "unknown client", responseStatus: 401 });
    }
  });

  it("a 401 whose WWW-Authenticate challenge alone names the error keeps its error_uri, as a JSON body's error does", async () => {
    const { client } = viaProxy();
    await client.metadata();
    proxy.inject(isToken("client_credentials"), {
      status: 401,
      headers: {
        "www-authenticate":
          'Bearer error="invalid_client", error_description="bad secret", error_uri="https://as.example/errors/invalid_client"',
      },
    });
    const error = await createClientCredentials(client)
      .getAccessToken()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OAuthError);
    expect(error).toMatchObject({
      code: "invalid_client",
      description: "bad secret",
      uri: "https://as.example/errors/invalid_client",
      responseStatus: 401,
    });
  });

  it("a JSON body whose error is empty is no OAuth error (RFC 6749 §5.2: 1*NQSCHAR): read for its status", async () => {
    const client = serviceClient(server(), { fetch: proxy.fetch, retry: false });
    await client.metadata();
    const empty = JSON.stringify({ error: "", error_description: "x" });
    proxy.inject(isToken("client_credentials"), {
      status: 400,
      headers: { "content-type": "application/json" },
      body: empty,
    });
    const refused = await failure(createClientCredentials(client).getAccessToken());
    expect(refused).toMatchObject({ code: "invalid_response", status: 502, responseStatus: 400 });
    expect(refused.message).toBe("authorization server answered an unexpected 400");
    proxy.inject(isToken("client_credentials"), {
      status: 503,
      headers: { "content-type": "application/json" },
      body: empty,
    });
    const down = await failure(createClientCredentials(client).getAccessToken());
    expect(down).toMatchObject({ code: "server_unavailable", status: 503, responseStatus: 503 });
    expect(down.message).toBe("authorization server answered 503");
  });

  it("a 4xx page that is no JSON is invalid_response, its status kept", async () => {
    const { client } = viaProxy();
    await client.metadata();
    const page = { status: 403, headers: { "content-type": "text/html" }, body: "<h1>Forbidden</h1>" };
    proxy.inject(isToken("client_credentials"), page);
    const error = await failure(createClientCredentials(client).getAccessToken());
    expect(error).toMatchObject({ code: "invalid_response", status: 502, responseStatus: 403 });
    expect(error.message).toBe("authorization server answered an unexpected 403");
  });

  it("a 200 that is no JSON is still refused as such", async () => {
    const { client } = viaProxy();
    await client.metadata();
    proxy.inject(isToken("client_credentials"), {
      status: 200,
      headers: { "content-type": "text/html" },
      body: "<p>hi</p>",
    });
    const error = await failure(createClientCredentials(client).getAccessToken());
    expect(error).toMatchObject({ code: "invalid_response", responseStatus: undefined });
    expect(error.message).toMatch(/content-type must be application\/json/);
  });

  it("a refresh token refused as Application/JSON ends the session: LoginRequiredError, the grant sent once", async () => {
    const client = webClient(server(), { fetch: proxy.fetch });
    const manager = createSessionTokens(client, { encryptionKeys: keyring });
    await manager.save("refused-mixed-case", await loggedInTokens(server(), "alice", "openid offline_access"));
    await client.metadata();
    const before = proxy.count("/token", "refresh_token");
    proxy.inject(isToken("refresh_token"), {
      status: 400,
      headers: { "content-type": "Application/JSON" },
      body: JSON.stringify({ error: "invalid_grant" }),
    });
    const error = await manager.refresh("refused-mixed-case").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LoginRequiredError);
    expect(error).toMatchObject({ reason: "refresh_rejected" });
    expect(await manager.get("refused-mixed-case")).toBeUndefined();
    expect(proxy.count("/token", "refresh_token") - before).toBe(1);
  });
});

describe("error answers logged whole hold nothing of the request they refuse", () => {
  // A gateway in front of the token endpoint that echoes the request it refused: the client's
  // secret, sent in the Authorization header (client_secret_basic) or the form.
  const basic = Buffer.from(`${SERVICE.clientId}:${SERVICE.clientSecret}`).toString("base64");
  const echo = `refused client_id=service&client_secret=${SERVICE.clientSecret}, Basic ${basic}`;
  /** What a logger prints of an error, to the bottom of its causes. */
  const logged = (error: unknown) => inspect(error, { depth: Number.POSITIVE_INFINITY, showHidden: true });

  it("a 403 with a challenge that names no error is invalid_response; logged, it holds none of the challenge", async () => {
    const client = serviceClient(server(), { fetch: proxy.fetch, retry: false });
    await client.metadata();
    proxy.inject(isToken("client_credentials"), {
      status: 403,
      headers: { "www-authenticate": `Bearer realm="token", error_description="${echo}"` },
    });
    const error = await failure(createClientCredentials(client).getAccessToken());
    expect(error).toMatchObject({ code: "invalid_response", status: 502, responseStatus: 403 });
    expect(error.message).toBe("unexpected 403 challenge");
    expect(logged(error)).not.toContain(SERVICE.clientSecret);
    expect(logged(error)).not.toContain(basic);
    expect(logged(error)).toContain("WWWAuthenticateChallengeError"); // what failed is still said
  });

  it("a 429 or 5xx with a challenge is server_unavailable, its code named; logged, it holds none of the challenge", async () => {
    const client = serviceClient(server(), { fetch: proxy.fetch, retry: false });
    await client.metadata();
    for (const [status, challenge, message] of [
      [429, `Bearer error="slow_down", error_description="${echo}"`, "authorization server answered 429 (slow_down)"],
      [503, `Basic realm="${echo}"`, "authorization server answered 503"],
      [500, `Bearer realm="token", error_description="${echo}"`, "authorization server answered 500"],
    ] as const) {
      proxy.inject(isToken("client_credentials"), { status, headers: { "www-authenticate": challenge } });
      const error = await failure(createClientCredentials(client).getAccessToken());
      expect(error, challenge).toMatchObject({ code: "server_unavailable", status: 503, responseStatus: status });
      expect(error.message).toBe(message);
      expect(logged(error)).not.toContain(SERVICE.clientSecret);
      expect(logged(error)).not.toContain(basic);
    }
  });

  it("an answer refused for its status: logged, the error holds none of its headers", async () => {
    const client = serviceClient(server(), { fetch: proxy.fetch, retry: false });
    await client.metadata();
    for (const status of [403, 503]) {
      proxy.inject(isToken("client_credentials"), {
        status,
        headers: { "content-type": "text/html", "x-refused-request": echo },
        body: "<h1>Refused</h1>",
      });
      const error = await failure(createClientCredentials(client).getAccessToken());
      expect(error).toMatchObject({ responseStatus: status });
      expect(logged(error)).not.toContain(SERVICE.clientSecret);
      expect(logged(error)).toContain("OperationProcessingError"); // what failed is still said
    }
  });
});
