/**
 * A real OAuth 2.0 / OpenID Connect authorization server for the tests (oidc-provider) on
 * 127.0.0.1, and a minimal browser that drives its login over HTTP: cookies, manual redirects,
 * and the provider's development login and consent forms.
 *
 * The server enforces PKCE (S256) for every client, rotates refresh tokens on every use and
 * revokes the whole grant when a used refresh token comes back, issues a refresh token to any
 * client allowed the grant, and counts what it was asked, so tests count at the server rather
 * than believe the client.
 */

import { generateKeyPairSync } from "node:crypto";
import type { EventEmitter } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import Provider from "oidc-provider";

/** Client metadata as oidc-provider registers it (RFC 7591 names). */
export interface TestClientMetadata {
  client_id: string;
  client_secret?: string;
  redirect_uris?: string[];
  grant_types?: string[];
  response_types?: string[];
  token_endpoint_auth_method?: string;
  /** Scopes the client may ask for with client credentials. */
  scope?: string;
  [property: string]: unknown;
}

export interface AuthorizationServerOptions {
  clients: TestClientMetadata[];
  /** Port to listen on (127.0.0.1). Default: a free one. */
  port?: number;
  /** Lifetimes in seconds. */
  ttl?: { accessToken?: number; clientCredentials?: number; refreshToken?: number };
  /** Scopes the server knows besides `openid` and `offline_access`. Default `api:read api:write api:admin`. */
  scopes?: string[];
}

export interface TestAuthorizationServer {
  readonly issuer: string;
  readonly provider: Provider;
  /** Token endpoint requests answered so far, of one grant type or all. */
  tokenRequests(grantType?: string): number;
  /** HTTP requests received so far for a path (`/token`, `/me`, `/token/revocation`, …). */
  requests(path: string): number;
  /**
   * Makes a user's access token stop working, as if it had expired early, while its grant and
   * refresh token stay good. (Revocation at the server would end the whole grant.)
   */
  dropAccessToken(value: string): Promise<void>;
  /** Every user access token the server issued, in order (its own record, not a client's). */
  issuedAccessTokens(): string[];
  close(): Promise<void>;
}

/** Starts the server; it listens before it is returned. */
export async function startAuthorizationServer(options: AuthorizationServerOptions): Promise<TestAuthorizationServer> {
  const paths = new Map<string, number>();
  const grants = new Map<string, number>();
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    paths.set(path, (paths.get(path) ?? 0) + 1);
    handler!(req, res);
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, "127.0.0.1", resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: "jwk" }), alg: "RS256", use: "sig", kid: "test-key" };
  const ttl = options.ttl ?? {};
  const provider = new Provider(issuer, {
    clients: options.clients as never,
    jwks: { keys: [jwk] as never },
    cookies: { keys: ["interlock-test-cookie-key"] },
    scopes: ["openid", "offline_access", ...(options.scopes ?? ["api:read", "api:write", "api:admin"])],
    claims: { openid: ["sub"], profile: ["name"], email: ["email"] },
    findAccount: async (_ctx: unknown, sub: string) => ({
      accountId: sub,
      claims: async () => ({ sub, name: `User ${sub}`, email: `${sub}@example.test` }),
    }),
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
      userinfo: { enabled: true },
    },
    pkce: { required: () => true },
    // Every refresh rotates; a refresh token used twice revokes the grant (oidc-provider's reuse detection).
    rotateRefreshToken: true,
    issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(type: string): boolean }) =>
      client.grantTypeAllowed("refresh_token"),
    ttl: {
      AccessToken: ttl.accessToken ?? 3600,
      ClientCredentials: ttl.clientCredentials ?? 3600,
      RefreshToken: ttl.refreshToken ?? 86_400,
      AuthorizationCode: 60,
      Interaction: 600,
      Session: 3600,
      Grant: 86_400,
      IdToken: 3600,
    },
  } as never);
  // Every token endpoint answer, granted or refused, by grant type (events the typings do not list).
  type GrantContext = { oidc: { params?: { grant_type?: unknown } } };
  const count = (ctx: GrantContext) => {
    const type = String(ctx.oidc.params?.grant_type ?? "unknown");
    grants.set(type, (grants.get(type) ?? 0) + 1);
  };
  const events = provider as unknown as EventEmitter;
  events.on("grant.success", count);
  events.on("grant.error", count);
  // Opaque tokens are their own id, and are saved once, when issued.
  const issued: string[] = [];
  provider.on("access_token.saved", (token) => issued.push(token.jti));
  handler = provider.callback();

  return {
    issuer,
    provider,
    tokenRequests: (grantType) =>
      grantType === undefined ? [...grants.values()].reduce((a, b) => a + b, 0) : (grants.get(grantType) ?? 0),
    requests: (path) => paths.get(path) ?? 0,
    issuedAccessTokens: () => [...issued],
    dropAccessToken: async (value) => {
      const token = await provider.AccessToken.find(value);
      if (token === undefined) throw new Error("no such access token");
      await token.destroy();
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

/** One page the browser ended on. */
export interface Page {
  url: string;
  status: number;
  headers: Headers;
  body: string;
}

interface Cookie {
  value: string;
  path: string;
}

/**
 * Just enough of a browser: one cookie jar for 127.0.0.1 (cookies do not care about ports,
 * so the app's and the server's cookies share it, as in a real browser), redirects followed
 * by hand, and the provider's login and consent forms filled in.
 */
export class Browser {
  readonly #cookies = new Map<string, Cookie>();

  /** The value of a cookie, for tests that look at it. */
  cookie(name: string): string | undefined {
    return this.#cookies.get(name)?.value;
  }

  /** All Set-Cookie attributes of the last response that set `name` are not kept: only name, value and path. */
  setCookie(name: string, value: string, path = "/"): void {
    this.#cookies.set(name, { value, path });
  }

  /** One request, no redirect followed; cookies sent and stored. */
  async request(url: string, init: RequestInit = {}): Promise<Response> {
    const target = new URL(url);
    const headers = new Headers(init.headers);
    const cookies = [...this.#cookies.entries()]
      .filter(([, cookie]) => target.pathname.startsWith(cookie.path))
      .map(([name, cookie]) => `${name}=${cookie.value}`);
    if (cookies.length > 0) headers.set("cookie", cookies.join("; "));
    const response = await fetch(url, { ...init, headers, redirect: "manual" });
    for (const line of response.headers.getSetCookie()) this.#store(line);
    return response;
  }

  #store(line: string): void {
    const [pair, ...attributes] = line.split(";").map((part) => part.trim());
    const at = pair!.indexOf("=");
    const name = pair!.slice(0, at);
    const value = pair!.slice(at + 1);
    let path = "/";
    let expired = value === "";
    for (const attribute of attributes) {
      const [key, val = ""] = attribute.split("=");
      const lower = key!.toLowerCase();
      if (lower === "path") path = val;
      if (lower === "max-age" && Number(val) <= 0) expired = true;
      if (lower === "expires" && Date.parse(val) <= Date.now()) expired = true;
    }
    if (expired) this.#cookies.delete(name);
    else this.#cookies.set(name, { value, path });
  }

  /**
   * GETs `url` and follows redirects until a page that is not one, or until the next URL starts
   * with `stopAt` (a callback nothing serves in the test): that URL is then returned unvisited,
   * with status 0.
   */
  async follow(url: string, options: { stopAt?: string; init?: RequestInit } = {}): Promise<Page> {
    let current = url;
    let init = options.init;
    for (let hops = 0; hops < 20; hops++) {
      if (options.stopAt !== undefined && current.startsWith(options.stopAt)) {
        return { url: current, status: 0, headers: new Headers(), body: "" };
      }
      const response = await this.request(current, init);
      const location = response.headers.get("location");
      if (response.status >= 300 && response.status < 400 && location !== null) {
        await response.body?.cancel();
        current = new URL(location, current).href;
        init = undefined; // 302/303 after a POST: the browser GETs the next one
        continue;
      }
      return { url: current, status: response.status, headers: response.headers, body: await response.text() };
    }
    throw new Error(`too many redirects from ${url}`);
  }

  /**
   * Fills in the provider's development login (as `account`) and consent forms, starting from
   * `page`, until the browser leaves them; returns where it ended (see `follow` for `stopAt`).
   */
  async signIn(page: Page, account: string, options: { stopAt?: string } = {}): Promise<Page> {
    let current = page;
    for (let forms = 0; forms < 4; forms++) {
      const form = /<form[^>]*action="([^"]+)"[^>]*method="post"/i.exec(current.body);
      const prompt = /name="prompt" value="(login|consent)"/.exec(current.body)?.[1];
      if (current.status !== 200 || form === null || prompt === undefined) return current;
      const body = new URLSearchParams({ prompt });
      if (prompt === "login") {
        body.set("login", account);
        body.set("password", "any");
      }
      const action = new URL(form[1]!.replace(/&amp;/g, "&"), current.url).href;
      current = await this.follow(action, {
        ...options,
        init: {
          method: "POST",
          body,
          headers: { "content-type": "application/x-www-form-urlencoded" },
        },
      });
    }
    throw new Error("the login did not finish after 4 forms");
  }
}
