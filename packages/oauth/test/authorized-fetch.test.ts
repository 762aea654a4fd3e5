/**
 * authorizedFetch against a resource server that checks every token by introspection at
 * oidc-provider: a 401 makes exactly one refresh and one retry, counted at both servers.
 */

import { InterlockConfigError } from "@interlock/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { authorizedFetch, createClientCredentials, createSessionTokens, type FetchLike } from "../src/index.js";
import {
  keyring,
  loggedInTokens,
  type ResourceServer,
  revokeAtServer,
  SERVICE,
  serviceClient,
  startResourceServer,
  useAuthorizationServer,
  WEB_APP,
  webClient,
} from "./helpers.js";

const server = useAuthorizationServer();
let api: ResourceServer;
let serviceApi: ResourceServer;
let refusingApi: ResourceServer;
beforeAll(async () => {
  api = await startResourceServer(server(), WEB_APP);
  serviceApi = await startResourceServer(server(), SERVICE);
  refusingApi = await startResourceServer(server(), WEB_APP, { always401: true });
});
afterAll(() => Promise.all([api?.close(), serviceApi?.close(), refusingApi?.close()]));

let sessionCounter = 0;
async function userSession() {
  const sessions = createSessionTokens(webClient(server()), { encryptionKeys: keyring });
  const id = `fetch-${++sessionCounter}`;
  const tokens = await loggedInTokens(server(), "alice");
  await sessions.save(id, tokens);
  return { sessions, id, tokens };
}

describe("authorizedFetch", () => {
  it("sends the session's access token as a bearer token", async () => {
    const { sessions, id } = await userSession();
    const call = authorizedFetch({ tokens: sessions.tokens(id) });
    const response = await call(`${api.url}/me`, { headers: { "x-test": "kept" } });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ sub: "alice", method: "GET", test: "kept" });
  });

  it("a 401 triggers exactly one refresh and one retry, with the same method, headers and body", async () => {
    const { sessions, id, tokens } = await userSession();
    // The access token dies early at the server, while the session still thinks it valid.
    await server().dropAccessToken(tokens.accessToken);
    const call = authorizedFetch({ tokens: sessions.tokens(id) });
    const refreshes = server().tokenRequests("refresh_token");
    const requests = api.requests;

    const response = await call(`${api.url}/orders`, {
      method: "POST",
      headers: { "x-test": "retried", "content-type": "application/json" },
      body: JSON.stringify({ sku: "book-1" }),
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      sub: "alice",
      clientId: "web-app",
      method: "POST",
      body: '{"sku":"book-1"}',
      test: "retried",
    });
    expect(api.requests - requests).toBe(2); // the refused one and the retry
    expect(server().tokenRequests("refresh_token") - refreshes).toBe(1);
    expect((await sessions.get(id))!.accessToken).not.toBe(tokens.accessToken);
  });

  it("a second 401 is returned as it is: no second refresh, no third request", async () => {
    const { sessions, id } = await userSession();
    const call = authorizedFetch({ tokens: sessions.tokens(id) });
    const refreshes = server().tokenRequests("refresh_token");
    const requests = refusingApi.requests;
    const response = await call(`${refusingApi.url}/anything`);
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toBe('Bearer error="invalid_token"');
    expect(refusingApi.requests - requests).toBe(2);
    expect(server().tokenRequests("refresh_token") - refreshes).toBe(1);
  });

  // RFC 6750 §3.1: only a refusal of the token itself is helped by another token.
  for (const [challenge, renewed] of [
    ['Bearer error="insufficient_scope", scope="orders:write"', false],
    ['Bearer realm="api", error="invalid_request", error_description="malformed"', false],
    // Case-insensitive scheme and names, a token value, and a Basic challenge before it.
    ['Basic realm="site", BEARER ERROR=insufficient_scope', false],
    // A quoted string that reads like a param and holds a comma is one value.
    ['Bearer realm="api, error=\\"invalid_token\\"", error="insufficient_scope"', false],
    ['Newauth realm="apps", type=1, title="Login to \\"apps\\"", Bearer error="invalid_token"', true],
    ['Bearer realm="example"', true], // no error: the server saw no valid token
    ['bearer error="invalid_token", error_description="The access token expired"', true],
    ['Bearer error="unterminated', true], // malformed: read as no error
    [null, true], // no challenge at all
  ] as const) {
    it(`a 401 with ${challenge === null ? "no WWW-Authenticate" : challenge} is ${renewed ? "renewed once" : "returned as is"}`, async () => {
      const refusing = await startResourceServer(server(), WEB_APP, { always401: true, challenge });
      try {
        const { sessions, id } = await userSession();
        const refreshes = server().tokenRequests("refresh_token");
        const response = await authorizedFetch({ tokens: sessions.tokens(id) })(`${refusing.url}/orders`, {
          method: "POST",
          body: "{}",
        });
        expect(response.status).toBe(401);
        expect(response.headers.get("www-authenticate")).toBe(challenge);
        expect(refusing.requests).toBe(renewed ? 2 : 1);
        expect(server().tokenRequests("refresh_token") - refreshes).toBe(renewed ? 1 : 0);
      } finally {
        await refusing.close();
      }
    });
  }

  it("10 concurrent calls refused with the same token: one refresh between them", async () => {
    const { sessions, id, tokens } = await userSession();
    await server().dropAccessToken(tokens.accessToken);
    const call = authorizedFetch({ tokens: sessions.tokens(id) });
    const refreshes = server().tokenRequests("refresh_token");
    const responses = await Promise.all(Array.from({ length: 10 }, () => call(`${api.url}/me`)));
    expect(responses.map((r) => r.status)).toEqual(Array(10).fill(200));
    expect(server().tokenRequests("refresh_token") - refreshes).toBe(1);
  });

  it("with client credentials: a refused token is replaced by a new one, once", async () => {
    const tokens = createClientCredentials(serviceClient(server()), { scope: "api:read" });
    const first = await tokens.getAccessToken();
    await revokeAtServer(server(), first, "access_token", SERVICE);
    const grants = server().tokenRequests("client_credentials");
    const response = await authorizedFetch({ tokens })(`${serviceApi.url}/jobs`);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ clientId: "service" });
    expect(server().tokenRequests("client_credentials") - grants).toBe(1);
    expect(await tokens.getAccessToken()).not.toBe(first);
  });

  it("sends every request through the fetch it is given, and can leave 401s alone", async () => {
    const { sessions, id, tokens } = await userSession();
    await server().dropAccessToken(tokens.accessToken);
    const sent: string[] = [];
    const transport: FetchLike = (input, init) => {
      sent.push(new Request(input, init).headers.get("authorization")!);
      return fetch(input, init);
    };
    const once = authorizedFetch({ tokens: sessions.tokens(id), fetch: transport, retryOnUnauthorized: false });
    expect((await once(`${api.url}/me`)).status).toBe(401);
    expect(sent).toEqual([`Bearer ${tokens.accessToken}`]);
  });

  it("refuses bad options", () => {
    expect(() => authorizedFetch({} as never)).toThrow(InterlockConfigError);
    expect(() => authorizedFetch({ tokens: { getAccessToken: async () => "t" }, fetch: 42 as never })).toThrow(
      InterlockConfigError,
    );
  });
});
