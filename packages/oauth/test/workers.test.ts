/**
 * The OAuth flows on Cloudflare Workers, for real: test/fixtures/workers-oauth.ts bundled from
 * the packed, built packages (core, client, oauth; oauth4webapi as installed) as Wrangler bundles
 * a worker, served by workerd (installed from npm) without `nodejs_compat`, against this file's
 * oidc-provider on 127.0.0.1. The server counts what it was asked; the browser that logs in runs
 * here, the login's two halves and everything else run in the worker. A missing workerd fails
 * the run; it is never skipped.
 */
import { fileURLToPath } from "node:url";
import { createPackedApp, type PackedApp } from "@interlock/test-harness/packed-app";
import { bundleFromApp, type RunningWorker, startWorkerd } from "@interlock/test-harness/workerd";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { WorkerSetup } from "./fixtures/workers-oauth.js";
import {
  authorize,
  introspect,
  REDIRECT_URI,
  SERVICE,
  startResourceServer,
  useAuthorizationServer,
  WEB_APP,
} from "./helpers.js";

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

const server = useAuthorizationServer();
let app: PackedApp;
let worker: RunningWorker;

beforeAll(async () => {
  app = createPackedApp(["core", "client", "oauth"], { oauth4webapi: here("../node_modules/oauth4webapi") });
  await bundleFromApp(here("./fixtures/workers-oauth.ts"), app.dir, app.dir);
  worker = await startWorkerd(app.dir);
  const setup: WorkerSetup = {
    issuer: server().issuer,
    web: WEB_APP,
    service: SERVICE,
    redirectUri: REDIRECT_URI,
    encryptionKey: "q0bGqnQ8JmpbKDYvD5o3m7W6kKcJxQmH3f6C8h8zL1E",
  };
  const answer = await fetch(`${worker.url}/setup`, { method: "POST", body: JSON.stringify(setup) });
  expect(answer.status).toBe(204);
}, 60_000);
afterAll(async () => {
  await worker?.close();
  app?.remove();
});

/** Runs one route of the worker; a failure inside it fails here with its name, code and stack. */
async function inWorker(path: string, body: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const response = await fetch(`${worker.url}${path}`, { method: "POST", body: JSON.stringify(body) });
  const answer = (await response.json()) as Record<string, unknown>;
  expect(answer.error, JSON.stringify(answer.error, null, 2)).toBeUndefined();
  expect(response.status).toBe(200);
  return answer;
}

// Each test goes on from the state the one before left, in the worker and at the server.
describe("oauth on Cloudflare Workers (workerd, no nodejs_compat)", () => {
  it("runs in workerd, with no Node globals", async () => {
    const runtime = await (await fetch(`${worker.url}/runtime`)).json();
    expect(runtime).toEqual({ userAgent: "Cloudflare-Workers", process: "undefined", Buffer: "undefined" });
  });

  it("client credentials: discovery, then one token, which the second call takes from the cache", async () => {
    const { issuer, first, second, scope } = await inWorker("/client-credentials");
    expect(issuer).toBe(server().issuer);
    expect(server().requests("/.well-known/openid-configuration")).toBe(1);
    expect(second).toBe(first);
    expect(scope).toBe("api:read");
    expect(server().tokenRequests("client_credentials")).toBe(1);
    expect(await introspect(server(), first as string)).toMatchObject({ active: true, client_id: SERVICE.clientId });
  });

  it("login: begin() sends to the server with PKCE (S256) and state; complete() exchanges the code", async () => {
    const { url, state } = await inWorker("/login/begin");
    const authorization = new URL(url as string);
    expect(authorization.origin).toBe(new URL(server().issuer).origin);
    expect(Object.fromEntries(authorization.searchParams)).toMatchObject({
      response_type: "code",
      client_id: WEB_APP.clientId,
      redirect_uri: REDIRECT_URI,
      code_challenge_method: "S256",
      code_challenge: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      state,
    });

    // Nothing in the URL lets the server's browser leg reach the worker: the callback comes back here.
    const callback = await authorize({ url: authorization, state: state as string, expiresAt: 0 });
    const result = await inWorker("/login/complete", { callback, state: state as string });
    expect(result).toMatchObject({ sub: "alice", returnTo: "/account", hasRefreshToken: true });
    expect(server().tokenRequests("authorization_code")).toBe(1);
    expect(await introspect(server(), result.accessToken as string, WEB_APP)).toMatchObject({
      active: true,
      sub: "alice",
    });
  });

  it("sessions: the refresh rotates the tokens through the memory store, refresh token sealed with AES-GCM", async () => {
    const before = server().tokenRequests("refresh_token");
    const result = await inWorker("/session/refresh");
    expect(result).toMatchObject({ changed: true, readBack: true, refreshTokenRotated: true });
    expect(result.stored).toMatch(/^v1\.k1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    expect(result.stored).not.toContain(result.refreshToken);
    expect(result.stored).not.toContain(result.accessToken);
    expect(server().tokenRequests("refresh_token")).toBe(before + 1);
    expect(await introspect(server(), result.accessToken as string, WEB_APP)).toMatchObject({
      active: true,
      sub: "alice",
    });
  });

  it("authorizedFetch: a 401 invalid_token renews the token once and the call is sent again", async () => {
    const api = await startResourceServer(server(), SERVICE, { refuseFirst: 1 });
    try {
      const cached = server().tokenRequests("client_credentials");
      const result = await inWorker("/authorized-fetch", { url: `${api.url}/payments` });
      expect(result).toMatchObject({
        status: 200,
        body: { clientId: SERVICE.clientId, method: "POST", body: '{"amount":1}' },
      });
      expect(api.requests).toBe(2);
      expect(server().tokenRequests("client_credentials")).toBe(cached + 1);
      // The renewed token is the cached one now, and the resource server took it.
      expect(await introspect(server(), result.cachedToken as string)).toMatchObject({ active: true });
    } finally {
      await api.close();
    }
  });
});
