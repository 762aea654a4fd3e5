/** The authorization server the tests run against, its clients, and a browser that logs in. */

import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import {
  Browser,
  type Page,
  startAuthorizationServer,
  type TestAuthorizationServer,
} from "@interlock/test-harness/oauth";
import { OAuth2Server } from "oauth2-mock-server";
import { afterAll, beforeAll, expect } from "vitest";
import { clientSpace, sha256Hex } from "../src/client-space.js";
import {
  createKeyring,
  createLogin,
  createOAuthClient,
  type LoginStart,
  type OAuthClientOptions,
  type TokenStore,
} from "../src/index.js";

/** Nothing serves it: the browser stops there and the test hands the URL to `complete`. */
export const REDIRECT_URI = "http://127.0.0.1:9/callback";

export const WEB_APP = { clientId: "web-app", clientSecret: "web-app-secret" };
export const SERVICE = { clientId: "service", clientSecret: "service-secret" };

/** `WEB_APP` as the authorization server registers it: a server-side app that logs users in. */
export const WEB_APP_REGISTRATION = {
  client_id: WEB_APP.clientId,
  client_secret: WEB_APP.clientSecret,
  redirect_uris: [REDIRECT_URI],
  grant_types: ["authorization_code", "refresh_token"],
  response_types: ["code"],
};

export const keyring = createKeyring([{ id: "k1", key: "q0bGqnQ8JmpbKDYvD5o3m7W6kKcJxQmH3f6C8h8zL1E" }]);

/** A promise and the function that resolves it: for a test to wait for a moment a hook or a fetch sees. */
export function resolvable<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve: (value: T) => void = () => {};
  const promise = new Promise<T>((settle) => {
    resolve = settle;
  });
  return { promise, resolve };
}

/**
 * `inner`, saying that its calls last `operationTimeoutMs` at most, as the Redis and PostgreSQL
 * stores say of theirs (undefined: saying nothing, as a store of an app's own may).
 */
export function sayingOperationTimeout(inner: TokenStore, operationTimeoutMs: number | undefined): TokenStore {
  return {
    name: "saying",
    operationTimeoutMs,
    get: (key) => inner.get(key),
    set: (key, value, options) => inner.set(key, value, options),
    delete: (key, expect) => inner.delete(key, expect),
  };
}

/** The URL a fetch was called with, as text. */
export const urlOf = (input: string | URL | Request): string => String(input instanceof Request ? input.url : input);

/** A fresh oidc-provider for this test file, closed after it. */
export function useAuthorizationServer(ttl: { accessToken?: number; clientCredentials?: number } = {}) {
  let server: TestAuthorizationServer;
  beforeAll(async () => {
    server = await startAuthorizationServer({
      ttl,
      clients: [
        WEB_APP_REGISTRATION,
        {
          client_id: SERVICE.clientId,
          client_secret: SERVICE.clientSecret,
          grant_types: ["client_credentials"],
          response_types: [],
          redirect_uris: [],
          scope: "api:read api:write",
        },
      ],
    });
  });
  afterAll(() => server?.close());
  return () => server;
}

/**
 * The store key under which the web app's client keeps a session (`session`) or a pending login
 * (`login`) of `id` (the session id, or the login's state) on `server`, with the default key
 * prefix: keys name the client (client-space.ts) and hold the id's SHA-256, never the id.
 */
export async function webAppKey(
  server: TestAuthorizationServer,
  kind: "session" | "login",
  id: string,
): Promise<string> {
  return `oauth:${kind}:${await clientSpace(webClient(server))}:${await sha256Hex(id)}`;
}

export function webClient(server: TestAuthorizationServer, options: Partial<OAuthClientOptions> = {}) {
  return createOAuthClient({ issuer: server.issuer, ...WEB_APP, ...options });
}

export function serviceClient(server: TestAuthorizationServer, options: Partial<OAuthClientOptions> = {}) {
  return createOAuthClient({ issuer: server.issuer, ...SERVICE, ...options });
}

/** Drives the login a `begin` started, as a browser would, up to the callback URL. */
export async function authorize(start: LoginStart, account = "alice"): Promise<string> {
  const browser = new Browser();
  const first: Page = await browser.follow(start.url.href, { stopAt: REDIRECT_URI });
  const last = await browser.signIn(first, account, { stopAt: REDIRECT_URI });
  expect(last.status, last.body).toBe(0); // stopped at the callback
  return last.url;
}

type Credentials = { clientId: string; clientSecret: string };

/** Asks the server whether it still honours `token` (RFC 7662), as the client the token was issued to. */
export async function introspect(
  server: TestAuthorizationServer,
  token: string,
  as: Credentials = SERVICE,
): Promise<Record<string, unknown>> {
  const response = await fetch(`${server.issuer}/token/introspection`, {
    method: "POST",
    headers: {
      authorization: `Basic ${btoa(`${as.clientId}:${as.clientSecret}`)}`,
      "content-type": "application/x-www-form-urlencoded",
    },
    body: new URLSearchParams({ token }),
  });
  expect(response.status).toBe(200);
  return (await response.json()) as Record<string, unknown>;
}

/** oauth2-mock-server on 127.0.0.1, for the answers oidc-provider never gives (5xx, odd bodies). */
export function useMockServer() {
  let mock: OAuth2Server;
  beforeAll(async () => {
    mock = new OAuth2Server();
    await mock.issuer.keys.generate("RS256");
    await mock.start(0, "127.0.0.1");
    mock.issuer.url = `http://127.0.0.1:${mock.address().port}`;
  });
  afterAll(() => mock?.stop());
  return () => mock;
}

/** Revokes one token at the server (RFC 7009), as the client it was issued to, the way an admin would. */
export async function revokeAtServer(server: TestAuthorizationServer, token: string, hint: string, as: Credentials) {
  const response = await fetch(`${server.issuer}/token/revocation`, {
    method: "POST",
    headers: {
      authorization: `Basic ${btoa(`${as.clientId}:${as.clientSecret}`)}`,
      "content-type": "application/x-www-form-urlencoded",
    },
    body: new URLSearchParams({ token, token_type_hint: hint }),
  });
  expect(response.status).toBe(200);
}

/** A user logged in through the real login: the token set the callback produced. */
export async function loggedInTokens(server: TestAuthorizationServer, account = "alice", scope = "openid profile") {
  const login = createLogin(webClient(server), { redirectUri: REDIRECT_URI, scope });
  const start = await login.begin();
  return (await login.complete(await authorize(start, account), { state: start.state })).tokens;
}

export interface ResourceServer {
  url: string;
  /** Requests received so far. */
  readonly requests: number;
  close(): Promise<void>;
}

/**
 * An API on 127.0.0.1 that checks each bearer token by introspection at the authorization server
 * (as `as`): 401 with a Bearer challenge when it is not active, else 200 with what it received.
 * `always401` refuses every request, valid or not, with `challenge` as its `WWW-Authenticate`
 * (default `Bearer error="invalid_token"`; null for none); `refuseFirst` refuses that many first
 * requests the same way, as if their token had been revoked behind the client's back.
 */
export async function startResourceServer(
  server: TestAuthorizationServer,
  as: Credentials,
  options: { always401?: boolean; refuseFirst?: number; challenge?: string | null } = {},
): Promise<ResourceServer> {
  let requests = 0;
  const api = createServer(async (req, res) => {
    requests++;
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
    const claims = token === undefined ? { active: false } : await introspect(server, token, as);
    const scripted = options.always401 || requests <= (options.refuseFirst ?? 0);
    if (scripted || claims.active !== true) {
      const challenge = scripted ? options.challenge : undefined;
      if (challenge === null) res.writeHead(401).end();
      else res.writeHead(401, { "www-authenticate": challenge ?? 'Bearer error="invalid_token"' }).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        sub: claims.sub,
        clientId: claims.client_id,
        method: req.method,
        body: Buffer.concat(chunks).toString(),
        test: req.headers["x-test"],
      }),
    );
  });
  await new Promise<void>((resolve) => api.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(api.address() as AddressInfo).port}`,
    get requests() {
      return requests;
    },
    close: () =>
      new Promise<void>((resolve) => {
        api.closeAllConnections();
        api.close(() => resolve());
      }),
  };
}
