/** The authorization server the tests run against, its clients, and a browser that logs in. */

import {
  Browser,
  type Page,
  startAuthorizationServer,
  type TestAuthorizationServer,
} from "@interlock/test-harness/oauth";
import { afterAll, beforeAll, expect } from "vitest";
import { createKeyring, createOAuthClient, type LoginStart, type OAuthClientOptions } from "../src/index.js";

/** Nothing serves it: the browser stops there and the test hands the URL to `complete`. */
export const REDIRECT_URI = "http://127.0.0.1:9/callback";

export const WEB_APP = { clientId: "web-app", clientSecret: "web-app-secret" };
export const SERVICE = { clientId: "service", clientSecret: "service-secret" };

export const keyring = createKeyring([{ id: "k1", key: "q0bGqnQ8JmpbKDYvD5o3m7W6kKcJxQmH3f6C8h8zL1E" }]);

/** A fresh oidc-provider for this test file, closed after it. */
export function useAuthorizationServer(ttl?: { accessToken?: number; clientCredentials?: number }) {
  let server: TestAuthorizationServer;
  beforeAll(async () => {
    server = await startAuthorizationServer({
      ttl,
      clients: [
        {
          client_id: WEB_APP.clientId,
          client_secret: WEB_APP.clientSecret,
          redirect_uris: [REDIRECT_URI],
          grant_types: ["authorization_code", "refresh_token"],
          response_types: ["code"],
        },
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
