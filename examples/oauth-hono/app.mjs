// OAuth login for a server-side app on Hono, the backend-for-frontend way: the browser never
// sees a token. It gets an opaque session id in an HttpOnly cookie; the tokens stay here, sealed
// in the token store, and this server calls the API on the user's behalf. Web standards only (no
// `node:` imports), so the same file runs on Node, Bun, Deno and Workers. Copy what you need.
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
import { Hono } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { html } from "hono/html";
import { checkedAtStart, hostFrom, originFrom, portFrom, StartupError } from "../shared/config.mjs";

const SESSION_COOKIE = "sid";
const LOGIN_COOKIE = "login_state";

/**
 * A cookie's value. Any client can send `sid=`: a cookie sent empty reads as no cookie, instead
 * of failing the request (the session methods refuse an empty session id as a bug).
 */
const cookieOf = (c, name) => getCookie(c, name) || undefined;

/**
 * @param {object} options
 * @param {string} options.issuer        the authorization server
 * @param {string} options.clientId
 * @param {string} options.clientSecret
 * @param {string} options.baseUrl       this app's public URL: the callback is `${baseUrl}/callback`
 * @param {import("@interlock/oauth").EncryptionKey[]} options.encryptionKeys  seal the tokens at rest
 * @param {import("@interlock/oauth").TokenStore} [options.store]  memory by default: one process (one isolate) only
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

  // Secure when the request came over https: directly, or through a TLS-terminating proxy.
  const cookie = (c, maxAge) => ({
    httpOnly: true,
    sameSite: "Lax",
    secure: new URL(c.req.url).protocol === "https:" || c.req.header("x-forwarded-proto") === "https",
    path: "/",
    ...(maxAge === undefined ? {} : { maxAge: Math.floor(maxAge / 1000) }),
  });

  /** Calls the API (here the provider's userinfo endpoint) with the session's token. */
  async function profile(sessionId) {
    const { userinfo_endpoint } = await oauth.metadata();
    const api = authorizedFetch({ tokens: sessions.tokens(sessionId) });
    const response = await api(userinfo_endpoint);
    if (!response.ok) throw new LoginRequiredError("refresh_rejected", `the API answered ${response.status}`);
    return response.json();
  }

  const app = new Hono();

  app.get("/", async (c) => {
    const sessionId = cookieOf(c, SESSION_COOKIE);
    if (sessionId === undefined) return c.html(html`<a href="/login">Log in</a>`);
    try {
      const me = await profile(sessionId);
      return c.html(
        html`<p>Signed in as ${me.name ?? me.sub}</p><form method="post" action="/logout"><button>Log out</button></form>`,
      );
    } catch (error) {
      if (!(error instanceof LoginRequiredError)) throw error;
      deleteCookie(c, SESSION_COOKIE, cookie(c));
      return c.redirect("/login");
    }
  });

  app.get("/login", async (c) => {
    const { url, state, expiresAt } = await login.begin({ returnTo: c.req.query("returnTo") ?? "/" });
    // The state goes to this browser too: the callback must come back to the browser that started it.
    setCookie(c, LOGIN_COOKIE, state, cookie(c, expiresAt - Date.now()));
    return c.redirect(url.href);
  });

  app.get("/callback", async (c) => {
    const { tokens, returnTo } = await login.complete(new URL(c.req.url), { state: cookieOf(c, LOGIN_COOKIE) });
    const sessionId = crypto.randomUUID(); // opaque: it names the tokens, it is not one
    await sessions.save(sessionId, tokens);
    deleteCookie(c, LOGIN_COOKIE, cookie(c));
    setCookie(c, SESSION_COOKIE, sessionId, cookie(c));
    return c.redirect(returnTo ?? "/");
  });

  app.get("/api/profile", async (c) => {
    const sessionId = cookieOf(c, SESSION_COOKIE);
    if (sessionId === undefined) throw new LoginRequiredError("no_session", "not logged in");
    return c.json(await profile(sessionId));
  });

  app.post("/logout", async (c) => {
    const sessionId = cookieOf(c, SESSION_COOKIE);
    if (sessionId !== undefined) await sessions.revoke(sessionId); // gone here, revoked at the server
    deleteCookie(c, SESSION_COOKIE, cookie(c));
    return c.redirect("/", 303);
  });

  // Refusals as RFC 9457 problem+json: a bad callback (400), no usable session (401), the
  // authorization server refusing or failing (its status).
  app.onError((error, c) => {
    const known =
      error instanceof LoginError ||
      error instanceof LoginRequiredError ||
      error instanceof OAuthError ||
      error instanceof OAuthResponseError;
    if (!known) throw error;
    if (error instanceof LoginRequiredError) deleteCookie(c, SESSION_COOKIE, cookie(c));
    return c.body(JSON.stringify(error.toProblem()), error.status, { "content-type": "application/problem+json" });
  });

  return app;
}

// Bun, Deno and Workers serve this default export; Node uses server.mjs. Configuration comes from
// the Worker's bindings or the process environment.
let served;
export default {
  // Where Bun listens: PORT and HOST read as server.mjs reads them on Node (Bun would take
  // PORT=abc for its default, 3000), loopback unless HOST says otherwise (Bun's own default is
  // every interface). `deno serve` takes --port and --host instead; Workers ignore both. Getters:
  // read when Bun serves this, not when server.mjs imports the file on Node.
  get port() {
    return checkedAtStart(() => portFrom(globalThis.process?.env ?? {}, "PORT", undefined));
  },
  get hostname() {
    return checkedAtStart(() => hostFrom(globalThis.process?.env ?? {}));
  },
  fetch(request, env, ctx) {
    served ??= createApp(servedConfigFrom(env));
    return served.fetch(request, env, ctx);
  },
};

// Bun and Deno run this file as their main module: its configuration is checked as they start,
// not on the first request. Workers get theirs (the bindings) with a request: checked then.
if (import.meta.main) checkedAtStart(servedConfigFrom);

/**
 * configFrom's settings with BASE_URL required, for the default export. Bun, Deno and Workers
 * know no address of their own to call back to, and a request's URL carries the Host its client
 * chose: the first request's would be every later login's redirect_uri, for the life of the
 * process. (node server.mjs calls back to the address it listens on instead.)
 */
export function servedConfigFrom(env) {
  const config = configFrom(env);
  if (config.baseUrl === undefined) {
    throw new StartupError(
      "Set BASE_URL to this app's public origin: the login comes back to its /callback (see README.md).",
    );
  }
  return config;
}

/**
 * The app's settings from the Workers bindings (`env`) or the process environment, `baseUrl` only
 * when BASE_URL is set; node server.mjs uses it too.
 */
export function configFrom(env) {
  const read = (name) =>
    (typeof env?.[name] === "string" ? env[name] : undefined) ??
    globalThis.process?.env?.[name] ??
    globalThis.Deno?.env.get(name);
  const baseUrl = originFrom({ BASE_URL: read("BASE_URL") }, "BASE_URL"); // ISSUER: createOAuthClient checks it
  const [issuer, clientId, clientSecret, tokenKey] = ["ISSUER", "CLIENT_ID", "CLIENT_SECRET", "TOKEN_KEY"].map(read);
  if (!issuer || !clientId || !clientSecret || !tokenKey) {
    throw new StartupError("Set ISSUER, CLIENT_ID, CLIENT_SECRET and TOKEN_KEY (see README.md).");
  }
  const encryptionKeys = [{ id: "k1", key: tokenKey }];
  return { issuer, clientId, clientSecret, encryptionKeys, ...(baseUrl ? { baseUrl } : {}) };
}
