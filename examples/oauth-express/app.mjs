// OAuth login for a server-side app on Express, the backend-for-frontend way: the browser never
// sees a token. It gets an opaque session id in an HttpOnly cookie; the tokens stay here, sealed
// in the token store, and this server calls the API on the user's behalf. Copy what you need.
import {
  authorizedFetch,
  createLogin,
  createOAuthClient,
  createSessionTokens,
  LoginError,
  LoginRequiredError,
  memoryTokenStore,
  OAuthError,
  OAuthResponseError,
} from "@interlock/oauth";
import express from "express";

const SESSION_COOKIE = "sid";
const LOGIN_COOKIE = "login_state";

/**
 * The request's cookies, by name. Any client can send a cookie, and another app on this host can
 * set one: a cookie sent empty, or whose value is not percent-encoding (`100%`), is left out, so
 * that it reads as no cookie instead of failing the request (the session methods refuse an empty
 * session id as a bug).
 */
function cookies(req) {
  const found = {};
  for (const pair of (req.headers.cookie ?? "").split(";")) {
    const at = pair.indexOf("=");
    const value = at > 0 ? decodedCookie(pair.slice(at + 1).trim()) : undefined;
    if (value) found[pair.slice(0, at).trim()] = value;
  }
  return found;
}

function decodedCookie(text) {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined; // a URIError: not a value this app set
  }
}

/**
 * @param {object} options
 * @param {string} options.issuer        the authorization server
 * @param {string} options.clientId
 * @param {string} options.clientSecret
 * @param {string} options.baseUrl       this app's public URL: the callback is `${baseUrl}/callback`
 * @param {import("@interlock/oauth").EncryptionKey[]} options.encryptionKeys  seal the tokens at rest
 * @param {import("@interlock/oauth").TokenStore} [options.store]  memory by default: one process only
 * @param {string} [options.scope]
 */
export function createApp({
  issuer,
  clientId,
  clientSecret,
  baseUrl,
  encryptionKeys,
  store = memoryTokenStore(),
  scope = "openid profile",
}) {
  const oauth = createOAuthClient({ issuer, clientId, clientSecret });
  const login = createLogin(oauth, { redirectUri: new URL("/callback", baseUrl), scope, store, encryptionKeys });
  const sessions = createSessionTokens(oauth, { store, encryptionKeys });

  const app = express();
  app.disable("x-powered-by");
  // Behind a TLS-terminating proxy on this machine, req.secure follows its X-Forwarded-Proto:
  // cookies are then marked Secure.
  app.set("trust proxy", "loopback");
  const cookie = (req, maxAge) => ({ httpOnly: true, sameSite: "lax", secure: req.secure, path: "/", maxAge });

  /** Calls the API (here the provider's userinfo endpoint) with the session's token. */
  async function profile(sessionId) {
    const { userinfo_endpoint } = await oauth.metadata();
    const api = authorizedFetch({ tokens: sessions.tokens(sessionId) });
    const response = await api(userinfo_endpoint);
    if (!response.ok) throw new LoginRequiredError("refresh_rejected", `the API answered ${response.status}`);
    return response.json();
  }

  app.get("/", async (req, res) => {
    const sessionId = cookies(req)[SESSION_COOKIE];
    if (sessionId === undefined) return res.type("html").send('<a href="/login">Log in</a>');
    try {
      const me = await profile(sessionId);
      res
        .type("html")
        .send(
          `<p>Signed in as ${escapeHtml(me.name ?? me.sub)}</p><form method="post" action="/logout"><button>Log out</button></form>`,
        );
    } catch (error) {
      if (!(error instanceof LoginRequiredError)) throw error;
      res.clearCookie(SESSION_COOKIE, cookie(req)).redirect("/login");
    }
  });

  app.get("/login", async (req, res) => {
    const { url, state, expiresAt } = await login.begin({ returnTo: String(req.query.returnTo ?? "/") });
    // The state goes to this browser too: the callback must come back to the browser that started it.
    res.cookie(LOGIN_COOKIE, state, cookie(req, expiresAt - Date.now()));
    res.redirect(url.href);
  });

  app.get("/callback", async (req, res) => {
    const { tokens, returnTo } = await login.complete(new URL(req.originalUrl, baseUrl), {
      state: cookies(req)[LOGIN_COOKIE],
    });
    const sessionId = crypto.randomUUID(); // opaque: it names the tokens, it is not one
    await sessions.save(sessionId, tokens);
    res.clearCookie(LOGIN_COOKIE, cookie(req));
    res.cookie(SESSION_COOKIE, sessionId, cookie(req));
    res.redirect(returnTo ?? "/");
  });

  app.get("/api/profile", async (req, res) => {
    const sessionId = cookies(req)[SESSION_COOKIE];
    if (sessionId === undefined) throw new LoginRequiredError("no_session", "not logged in");
    res.json(await profile(sessionId));
  });

  app.post("/logout", async (req, res) => {
    const sessionId = cookies(req)[SESSION_COOKIE];
    if (sessionId !== undefined) await sessions.revoke(sessionId); // gone here, revoked at the server
    res.clearCookie(SESSION_COOKIE, cookie(req)).redirect(303, "/");
  });

  // Refusals as RFC 9457 problem+json: a bad callback (400), no usable session (401), the
  // authorization server refusing or failing (its status).
  app.use((error, req, res, next) => {
    const known =
      error instanceof LoginError ||
      error instanceof LoginRequiredError ||
      error instanceof OAuthError ||
      error instanceof OAuthResponseError;
    if (!known) return next(error);
    if (error instanceof LoginRequiredError) res.clearCookie(SESSION_COOKIE, cookie(req));
    res.status(error.status).type("application/problem+json").send(JSON.stringify(error.toProblem()));
  });

  return app;
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
