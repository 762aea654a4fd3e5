/**
 * A misspelt option is refused, by every factory and every call that takes options, with the name
 * it most likely meant: ignored, it would leave the default in force (a `lockTTLMs` the refresh
 * lock never gets, a `rejected` token handed back again, a `transacton`… of a store's own).
 * No authorization server: the metadata is given and `fetch` answers token requests itself.
 */
import {
  asyncConfigRefusal as asyncRefusal,
  looseOptions as loose,
  configRefusal as refusal,
} from "@interlock/test-harness/option-names";
import { describe, expect, it } from "vitest";
import {
  authorizedFetch,
  createClientCredentials,
  createKeyring,
  createLogin,
  createOAuthClient,
  createSessionTokens,
  LoginError,
  memoryTokenStore,
  type OAuthClientOptions,
} from "../src/index.js";
import { migrate, migrationSql, type PgQueryable, postgresTokenStore } from "../src/postgres.js";
import { redisTokenStore } from "../src/redis.js";

const issuer = "https://id.example";
const metadata = {
  issuer,
  authorization_endpoint: `${issuer}/authorize`,
  token_endpoint: `${issuer}/token`,
};
/** A token endpoint: every grant answers a fresh bearer token. */
let issued = 0;
const tokenEndpoint = async () =>
  Response.json({ access_token: `at-${++issued}`, token_type: "bearer", expires_in: 3600 });
const base: OAuthClientOptions = {
  issuer,
  clientId: "service",
  clientSecret: "secret",
  metadata,
  fetch: tokenEndpoint,
};
const client = createOAuthClient(base);
const keyring = createKeyring([{ id: "k1", key: "q0bGqnQ8JmpbKDYvD5o3m7W6kKcJxQmH3f6C8h8zL1E" }]);

/** A pg pool that answers every query with no rows. */
const pool: PgQueryable = { query: async () => ({ rows: [], rowCount: 0 }) };
/** An ioredis client as far as the token store's set-up reads it. */
const redis = { defineCommand: () => {} };

describe("createOAuthClient", () => {
  it("refuses a misspelt option, and one in retry", () => {
    expect(refusal(() => createOAuthClient(loose({ ...base, clientSecrets: "s" })))).toBe(
      'createOAuthClient() has no option "clientSecrets": did you mean "clientSecret"?',
    );
    expect(refusal(() => createOAuthClient(loose({ ...base, retry: { maxAttempt: 5 } })))).toBe(
      'createOAuthClient() retry has no option "maxAttempt": did you mean "maxAttempts"?',
    );
    // The client's own groups, checked by the client the retries go through.
    expect(refusal(() => createOAuthClient(loose({ ...base, retry: { backoff: { capMS: 5 } } })))).toBe(
      'createClient() backoff has no option "capMS": did you mean "capMs"?',
    );
  });

  it("refuses in retry the client options it decides itself, rather than override them unseen", () => {
    for (const name of ["fetch", "idempotencyKey", "retryMethods"]) {
      expect(refusal(() => createOAuthClient(loose({ ...base, retry: { [name]: undefined } })))).toBe(
        `createOAuthClient() retry has no option "${name}"`,
      );
    }
  });

  it("takes every option it has, every client-authentication variant, and every client option in retry", () => {
    expect(() =>
      createOAuthClient({
        ...base,
        clientAuthentication: "client_secret_post",
        discovery: "oauth2",
        timeoutMs: 5_000,
        retry: {
          maxAttempts: 2,
          timeoutMs: 1_000,
          deadlineMs: 5_000,
          retryOn: () => true,
          backoff: { strategy: "full", baseMs: 10, capMs: 100 },
          maxRetryAfterMs: 1_000,
          budget: { capacity: 5, retryCost: 1, successRefund: 0.1 },
          breaker: { mode: "ratio", threshold: 0.5, windowMs: 1_000, minimumCalls: 5, halfOpenAfterMs: 100 },
          maxOrigins: 10,
          onEvent: () => {},
          random: Math.random,
          now: Date.now,
          sleep: async () => {},
        },
        now: Date.now,
        allowInsecureRequests: false,
        onEvent: () => {},
      }),
    ).not.toThrow();
    expect(() => createOAuthClient({ ...base, clientAuthentication: "client_secret_basic" })).not.toThrow();
    const { clientSecret: _, ...publicClient } = base;
    expect(() => createOAuthClient({ ...publicClient, clientAuthentication: "none", retry: false })).not.toThrow();
  });
});

describe("createLogin and its calls", () => {
  const loginOptions = {
    redirectUri: "https://app.example/callback",
    scope: "openid profile",
    store: memoryTokenStore(),
    encryptionKeys: keyring,
    pendingTtlMs: 60_000,
    params: { prompt: "login" },
    keyPrefix: "app:",
  };

  it("createLogin", () => {
    expect(refusal(() => createLogin(client, loose({ ...loginOptions, pendingTTLMs: 1 })))).toBe(
      'createLogin() has no option "pendingTTLMs": did you mean "pendingTtlMs"?',
    );
    expect(() => createLogin(client, loginOptions)).not.toThrow();
  });

  it("login.begin", async () => {
    const login = createLogin(client, loginOptions);
    expect(await asyncRefusal(login.begin(loose({ returnTO: "/home" })))).toBe(
      'login.begin() has no option "returnTO": did you mean "returnTo"?',
    );
    const started = await login.begin({ returnTo: "/home", params: { login_hint: "ada" }, maxAge: 60 });
    expect(started.url.searchParams.get("max_age")).toBe("60");
  });

  it("login.complete, before it looks at the callback", async () => {
    const login = createLogin(client, loginOptions);
    const { state } = await login.begin();
    expect(await asyncRefusal(login.complete(`?state=${state}&code=c`, loose({ sate: state })))).toBe(
      'login.complete() has no option "sate": did you mean "state"?',
    );
    // The state is taken: the callback is refused for itself (another browser's state), not for the options.
    await expect(login.complete(`?state=${state}&code=c`, { state: "another" })).rejects.toThrow(LoginError);
  });
});

describe("token providers and their calls", () => {
  it("createClientCredentials, getToken and getAccessToken", async () => {
    expect(refusal(() => createClientCredentials(client, loose({ scopes: "api:read" })))).toBe(
      'createClientCredentials() has no option "scopes": did you mean "scope"?',
    );
    const tokens = createClientCredentials(client, {
      scope: "api:read",
      resource: "https://api.example",
      params: { audience: "api" },
      store: memoryTokenStore(),
      encryptionKeys: keyring,
      lockTtlMs: 10_000,
      keyPrefix: "app:",
      refreshMarginMs: 1_000,
      assumedLifetimeMs: 60_000,
    });
    const first = await tokens.getAccessToken();
    expect(await asyncRefusal(tokens.getAccessToken(loose({ reject: first })))).toBe(
      'getAccessToken() has no option "reject": did you mean "rejected"?',
    );
    expect(await asyncRefusal(tokens.getToken(loose({ refused: first })))).toBe('getToken() has no option "refused"');
    // A refused token is renewed, which the misspelt name would not have done.
    expect(await tokens.getAccessToken({ rejected: first })).not.toBe(first);
    expect((await tokens.getToken({ rejected: "an older one" })).tokenType).toBe("bearer");
  });

  it("createSessionTokens, getAccessToken and tokens(…).getAccessToken", async () => {
    expect(refusal(() => createSessionTokens(client, loose({ encryptionKeys: keyring, sessionTTL: 1 })))).toBe(
      'createSessionTokens() has no option "sessionTTL": did you mean "sessionTtlMs"?',
    );
    const sessions = createSessionTokens(client, {
      encryptionKeys: keyring,
      store: memoryTokenStore(),
      sessionTtlMs: 60_000,
      lockTtlMs: 60_000,
      keyPrefix: "app:",
      refreshMarginMs: 1_000,
      assumedLifetimeMs: 60_000,
    });
    const token = {
      accessToken: "session-at",
      tokenType: "bearer",
      expiresAt: Date.now() + 3_600_000,
      refreshToken: undefined,
      scope: undefined,
      idToken: undefined,
    };
    await sessions.save("s1", token);
    expect(await asyncRefusal(sessions.getAccessToken("s1", loose({ rejectd: "x" })))).toContain(
      'getAccessToken() has no option "rejectd": did you mean "rejected"?',
    );
    expect(await asyncRefusal(sessions.tokens("s1").getAccessToken(loose({ rejectd: "x" })))).toContain(
      'did you mean "rejected"?',
    );
    expect(await sessions.getAccessToken("s1", { rejected: "another token" })).toBe("session-at");
    expect(await sessions.tokens("s1").getAccessToken({ rejected: "another token" })).toBe("session-at");
  });

  it("authorizedFetch", () => {
    const tokens = createClientCredentials(client);
    expect(refusal(() => authorizedFetch(loose({ tokens, retryOnUnauthorised: false })))).toBe(
      'authorizedFetch() has no option "retryOnUnauthorised": did you mean "retryOnUnauthorized"?',
    );
    expect(() => authorizedFetch({ tokens, fetch: tokenEndpoint, retryOnUnauthorized: false })).not.toThrow();
  });
});

describe("token stores", () => {
  it("memoryTokenStore", () => {
    expect(refusal(() => memoryTokenStore(loose({ maxEntires: 10 })))).toBe(
      'memoryTokenStore() has no option "maxEntires": did you mean "maxEntries"?',
    );
    expect(() => memoryTokenStore({ maxEntries: 10, now: Date.now })).not.toThrow();
  });

  it("redisTokenStore", () => {
    expect(refusal(() => redisTokenStore(redis, loose({ keyPrefix: "app:" })))).toBe(
      'redisTokenStore() has no option "keyPrefix"',
    );
    expect(refusal(() => redisTokenStore(redis, loose({ operationTimeout: 100 })))).toContain(
      'did you mean "operationTimeoutMs"?',
    );
    expect(() => redisTokenStore(redis, { prefix: "app:", operationTimeoutMs: 100 })).not.toThrow();
  });

  it("postgresTokenStore and its purgeExpired, migrate, migrationSql", async () => {
    expect(refusal(() => postgresTokenStore(pool, loose({ tableName: "tokens" })))).toBe(
      'postgresTokenStore() has no option "tableName"',
    );
    const store = postgresTokenStore(pool, { table: "tokens", schema: "app", operationTimeoutMs: 100 });
    expect(await asyncRefusal(store.purgeExpired(loose({ batchsize: 10 })))).toBe(
      'purgeExpired() has no option "batchsize": did you mean "batchSize"?',
    );
    expect(await store.purgeExpired({ batchSize: 10 })).toBe(0);

    expect(refusal(() => migrationSql(loose({ shema: "app" })))).toBe(
      'migrationSql() has no option "shema": did you mean "schema"?',
    );
    expect(migrationSql({ table: "tokens", schema: "app", operationTimeoutMs: 100 })).toContain('"app"."tokens"');
    // migrate has a timeoutMs of its own, not the store's per-operation one.
    expect(await asyncRefusal(migrate(pool, loose({ operationTimeoutMs: 100 })))).toBe(
      'migrate() has no option "operationTimeoutMs"',
    );
    await expect(migrate(pool, { table: "tokens", schema: "app", timeoutMs: 1_000 })).resolves.toBeUndefined();
  });
});
