/**
 * The backend-for-frontend login both OAuth examples (this one and ../oauth-hono) serve the same way, and one test block
 * for it, driven over HTTP against a real authorization server (oidc-provider) with its login
 * and consent pages filled in by a minimal browser: the login end to end, the cookies it sets,
 * refusals of a replayed or foreign callback, a token refreshed on a 401, and the logout.
 */
import { freePort } from "@interlock/test-harness";
import { Browser, startAuthorizationServer, type TestAuthorizationServer } from "@interlock/test-harness/oauth";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

export const CLIENT = { clientId: "bff-app", clientSecret: "bff-app-secret" };
export const TOKEN_KEY = "mE3Yk8cH0uT7qJ2wR5nV9xB1zL4sP6dF8gA0iO3eU2Y";

interface StartOptions {
  port: number;
  host: string;
  issuer: string;
  clientId: string;
  clientSecret: string;
  encryptionKeys: Array<{ id: string; key: string }>;
}

/** Boots the provider and then the example (via its `start`) on a port the provider knows. */
export function describeBffLogin(
  name: string,
  start: (options: StartOptions) => Promise<{ url: string; close(): Promise<void> }>,
) {
  let provider: TestAuthorizationServer;
  let app: { url: string; close(): Promise<void> };

  beforeAll(async () => {
    const port = await freePort();
    provider = await startAuthorizationServer({
      clients: [
        {
          client_id: CLIENT.clientId,
          client_secret: CLIENT.clientSecret,
          redirect_uris: [`http://127.0.0.1:${port}/callback`],
          grant_types: ["authorization_code", "refresh_token"],
          response_types: ["code"],
        },
      ],
    });
    app = await start({
      port,
      host: "127.0.0.1",
      issuer: provider.issuer,
      ...CLIENT,
      encryptionKeys: [{ id: "k1", key: TOKEN_KEY }],
    });
  });
  afterAll(async () => {
    await app?.close();
    await provider?.close();
  });

  /** Logs `account` in through the app and the provider; returns the browser and the callback's response. */
  async function logIn(account: string, returnTo = "/") {
    const browser = new Browser();
    const started = await browser.request(`${app.url}/login?returnTo=${encodeURIComponent(returnTo)}`);
    expect(started.status).toBe(302);
    const authorize = new URL(started.headers.get("location")!);
    expect(authorize.origin).toBe(provider.issuer);
    expect(authorize.searchParams.get("code_challenge_method")).toBe("S256");
    const loginCookie = started.headers.getSetCookie().find((c) => c.startsWith("login_state="))!;
    expect(loginCookie).toMatch(/HttpOnly/i);
    expect(loginCookie).toMatch(/SameSite=Lax/i);

    const form = await browser.follow(authorize.href, { stopAt: `${app.url}/callback` });
    expect(form.url).toContain("/interaction/"); // the provider's own login page
    const back = await browser.signIn(form, account, { stopAt: `${app.url}/callback` });
    expect(back.status).toBe(0);
    const callback = await browser.request(back.url);
    return { browser, callback, callbackUrl: back.url };
  }

  describe(`OAuth login on ${name} (backend-for-frontend)`, () => {
    it("logs in end to end over HTTP: an opaque HttpOnly session cookie, the tokens stay on the server", async () => {
      const { browser, callback } = await logIn("alice", "/");
      expect(callback.status).toBe(302);
      expect(callback.headers.get("location")).toBe("/");
      const setCookies = callback.headers.getSetCookie();
      const session = setCookies.find((c) => c.startsWith("sid="))!;
      expect(session).toMatch(/HttpOnly/i);
      expect(session).toMatch(/SameSite=Lax/i);
      expect(session).toMatch(/Path=\//i);
      expect(session).not.toMatch(/Secure/i); // plain http here; see the https test below
      expect(browser.cookie("sid")).toMatch(/^[0-9a-f-]{36}$/);
      expect(setCookies.some((c) => /^login_state=;/.test(c))).toBe(true); // the login cookie is cleared
      expect(browser.cookie("login_state")).toBeUndefined();

      const home = await browser.follow(`${app.url}/`);
      expect(home.status).toBe(200);
      expect(home.body).toContain("Signed in as User alice");
      const profile = await browser.request(`${app.url}/api/profile`);
      expect(profile.status).toBe(200);
      const body = await profile.text();
      expect(JSON.parse(body)).toMatchObject({ sub: "alice", name: "User alice" });
      expect(body).not.toMatch(/token/i);
    });

    it("refuses a replayed callback and a callback this browser did not start", async () => {
      const { browser, callbackUrl, callback } = await logIn("bob");
      expect(callback.status).toBe(302);
      // Replayed with the login cookie it came with: that login is already completed.
      browser.setCookie("login_state", new URL(callbackUrl).searchParams.get("state")!);
      const replay = await browser.request(callbackUrl);
      expect(replay.status).toBe(400);
      expect(replay.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(await replay.json()).toMatchObject({ code: "state_unknown", status: 400 });

      // An attacker's own callback URL, opened in another browser (login CSRF).
      const attacker = await logIn("mallory");
      const victim = new Browser();
      const forged = await victim.request(attacker.callbackUrl);
      expect(forged.status).toBe(400);
      expect(await forged.json()).toMatchObject({ code: "state_mismatch" });
      expect(victim.cookie("sid")).toBeUndefined();
    });

    it("answers 401 problem+json without a session", async () => {
      const response = await new Browser().request(`${app.url}/api/profile`);
      expect(response.status).toBe(401);
      expect(await response.json()).toMatchObject({ code: "login_required" });
    });

    it("takes a session cookie sent empty, or not decodable, for no session: never a 500", async () => {
      // Any client can send these; the session id of either is no session.
      for (const value of ["", "%E0"]) {
        const browser = new Browser();
        browser.setCookie("sid", value);
        // The login link, or (once the id was tried and found to be no session) a redirect to it.
        const home = await browser.request(`${app.url}/`);
        const page = home.status === 302 ? home.headers.get("location") : await home.text();
        expect(`${home.status} ${page}`).toMatch(/^(200 <a href="\/login">Log in<\/a>|302 \/login)$/);
        const profile = await browser.request(`${app.url}/api/profile`);
        expect(profile.status).toBe(401);
        expect(await profile.json()).toMatchObject({ code: "login_required" });
        expect((await browser.request(`${app.url}/logout`, { method: "POST" })).status).toBe(303);
      }
      // A login cookie sent empty: a callback this browser did not start.
      const stranger = new Browser();
      stranger.setCookie("login_state", "");
      const callback = await stranger.request(`${app.url}/callback?code=c&state=s`);
      expect(callback.status).toBe(400);
      expect(await callback.json()).toMatchObject({ status: 400 });
    });

    it("keeps a session whatever other cookie the browser sends (one with a stray %, say)", async () => {
      const { browser } = await logIn("erin");
      browser.setCookie("theme", "100%"); // another app's on this host: not percent-encoding
      const home = await browser.follow(`${app.url}/`);
      expect(home.status).toBe(200);
      expect(home.body).toContain("Signed in as User erin");
    });

    it("an access token the API refuses is refreshed once and the call retried", async () => {
      const { browser } = await logIn("carol");
      // Ask the provider which access token the session holds, then make it stop working there.
      const refreshes = provider.tokenRequests("refresh_token");
      const userinfo = provider.requests("/me");
      expect((await browser.request(`${app.url}/api/profile`)).status).toBe(200);
      const current = lastAccessToken(provider);
      await provider.dropAccessToken(current);

      const again = await browser.request(`${app.url}/api/profile`);
      expect(again.status).toBe(200);
      expect(await again.json()).toMatchObject({ sub: "carol" });
      expect(provider.tokenRequests("refresh_token") - refreshes).toBe(1);
      expect(provider.requests("/me") - userinfo).toBe(3); // ok, refused, retried
    });

    it("logs out: the session is revoked at the provider and its cookie cleared", async () => {
      const { browser } = await logIn("dave");
      expect((await browser.request(`${app.url}/api/profile`)).status).toBe(200);
      const token = lastAccessToken(provider);
      const revocations = provider.requests("/token/revocation");

      const out = await browser.request(`${app.url}/logout`, { method: "POST" });
      expect(out.status).toBe(303);
      expect(out.headers.getSetCookie().some((c) => /^sid=;/.test(c))).toBe(true);
      expect(provider.requests("/token/revocation") - revocations).toBe(2);
      expect((await fetch(`${provider.issuer}/me`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(
        401,
      );
      expect((await browser.request(`${app.url}/api/profile`)).status).toBe(401);
    });

    it("marks the cookies Secure behind an https proxy", async () => {
      const browser = new Browser();
      const response = await browser.request(`${app.url}/login`, { headers: { "x-forwarded-proto": "https" } });
      expect(response.status).toBe(302);
      expect(response.headers.getSetCookie().find((c) => c.startsWith("login_state="))).toMatch(/;\s*Secure/i);
    });
  });
}

/** The access token the provider issued last (its own record of it, not the app's). */
function lastAccessToken(provider: TestAuthorizationServer): string {
  const token = provider.issuedAccessTokens().at(-1);
  if (token === undefined) throw new Error("the provider issued no access token");
  return token;
}
