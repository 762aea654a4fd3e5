/** The client: discovery (once), metadata given instead, transport, and configuration refused early. */

import { InterlockConfigError } from "@interlock/core";
import { refusedPort } from "@interlock/test-harness";
import { Events } from "oauth2-mock-server";
import { describe, expect, it } from "vitest";
import {
  createClientCredentials,
  createLogin,
  createOAuthClient,
  type FetchLike,
  type OAuthEvent,
  OAuthResponseError,
} from "../src/index.js";
import { REDIRECT_URI, SERVICE, serviceClient, urlOf, useAuthorizationServer, useMockServer } from "./helpers.js";

const server = useAuthorizationServer();
const mock = useMockServer();
const DISCOVERY = "/.well-known/openid-configuration";

describe("createOAuthClient", () => {
  it("discovers the server once, however many flows and callers use the client", async () => {
    const client = serviceClient(server());
    const before = server().requests(DISCOVERY);
    const tokens = createClientCredentials(client);
    const login = createLogin(client, { redirectUri: REDIRECT_URI });
    await Promise.all([tokens.getAccessToken(), login.begin(), client.metadata(), client.metadata()]);
    expect(server().requests(DISCOVERY) - before).toBe(1);
    expect(await client.metadata()).toMatchObject({
      issuer: server().issuer,
      token_endpoint: `${server().issuer}/token`,
      authorization_response_iss_parameter_supported: true,
    });
  });

  it("sends every request to the server through the fetch it is given", async () => {
    const seen: string[] = [];
    const transport: FetchLike = (input, init) => {
      seen.push(`${init?.method ?? "GET"} ${new URL(urlOf(input)).pathname}`);
      return fetch(input, init);
    };
    await createClientCredentials(serviceClient(server(), { fetch: transport })).getAccessToken();
    expect(seen).toEqual([`GET ${DISCOVERY}`, "POST /token"]);
  });

  it("uses metadata it is given instead of discovering", async () => {
    const issuer = server().issuer;
    const before = server().requests(DISCOVERY);
    const client = createOAuthClient({ issuer, ...SERVICE, metadata: { issuer, token_endpoint: `${issuer}/token` } });
    await expect(createClientCredentials(client).getAccessToken()).resolves.toBeTypeOf("string");
    expect(server().requests(DISCOVERY)).toBe(before);
    expect(() =>
      createOAuthClient({ issuer, ...SERVICE, metadata: { issuer: "https://other.example", token_endpoint: "x" } }),
    ).toThrow(InterlockConfigError);
  });

  it("refuses discovery metadata that names another issuer (invalid_response)", async () => {
    mock().service.once(Events.BeforeWellKnownOpenIdConfiguration, (response) => {
      (response.body as Record<string, unknown>).issuer = "https://impostor.example";
    });
    const events: OAuthEvent[] = [];
    const client = createOAuthClient({ issuer: mock().issuer.url!, ...SERVICE, onEvent: (e) => events.push(e) });
    const error = await client.metadata().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OAuthResponseError);
    expect(error).toMatchObject({ code: "invalid_response", status: 502 });
    // A failed discovery is not kept: the next call discovers again, and succeeds.
    await expect(client.metadata()).resolves.toMatchObject({ issuer: mock().issuer.url });
    // One event, for the failure.
    expect(events).toEqual([
      { type: "oauth.discovery.failed", code: "invalid_response", durationMs: expect.any(Number) },
    ]);
  });

  it("a failing discovery is server_unavailable, and an unreachable server too", async () => {
    mock().service.once(Events.BeforeWellKnownOpenIdConfiguration, (response) => {
      response.statusCode = 503;
    });
    const client = createOAuthClient({ issuer: mock().issuer.url!, ...SERVICE, retry: false });
    await expect(client.metadata()).rejects.toMatchObject({ code: "server_unavailable", responseStatus: 503 });
    const events: OAuthEvent[] = [];
    const nobody = createOAuthClient({
      issuer: `http://127.0.0.1:${await refusedPort()}`,
      ...SERVICE,
      onEvent: (e) => events.push(e),
    });
    const error = await createClientCredentials(nobody)
      .getAccessToken()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OAuthResponseError);
    expect(error).toMatchObject({ code: "server_unavailable", status: 503 });
    expect(events).toEqual([
      { type: "oauth.discovery.failed", code: "server_unavailable", durationMs: expect.any(Number) },
    ]);
  });

  it("allows http only on loopback addresses unless told to", () => {
    for (const issuer of [
      "http://127.0.0.1:8080",
      "http://localhost:3000",
      "http://[::1]:3000",
      "https://id.example",
    ]) {
      expect(() => createOAuthClient({ issuer, ...SERVICE }), issuer).not.toThrow();
    }
    expect(() => createOAuthClient({ issuer: "http://id.example", ...SERVICE })).toThrow(InterlockConfigError);
    expect(() =>
      createOAuthClient({ issuer: "http://id.example", ...SERVICE, allowInsecureRequests: true }),
    ).not.toThrow();
  });

  it("refuses bad configuration when it is made", () => {
    const issuer = "https://id.example";
    const bad = [
      { issuer: "not a url", clientId: "a" },
      { issuer: "ftp://id.example", clientId: "a" },
      { issuer: "https://id.example?x=1", clientId: "a" },
      { issuer, clientId: "" },
      { issuer, clientId: "a", clientAuthentication: "client_secret_basic" as const },
      { issuer, clientId: "a", clientSecret: "s", clientAuthentication: "none" as const },
      { issuer, clientId: "a", clientSecret: "s", clientAuthentication: "private_key_jwt" as never },
      { issuer, clientId: "a", timeoutMs: 0 },
      { issuer, clientId: "a", fetch: "fetch" as never },
      { issuer, clientId: "a", discovery: "openid" as never },
      { issuer, clientId: "a", now: 1_700_000_000_000 as never },
      { issuer, clientId: "a", onEvent: "console.log" as never },
      { issuer, clientId: "a", allowInsecureRequests: "true" as never },
      { issuer, clientId: "a", metadata: null as never },
    ];
    for (const options of bad) {
      expect(() => createOAuthClient(options), JSON.stringify(options)).toThrow(InterlockConfigError);
    }
  });

  it("a secret passed as a choice (clientAuthentication, discovery) is refused without being quoted", () => {
    const issuer = "https://id.example";
    const secret = "prod-client-secret-9f8e7d";
    for (const options of [
      { clientSecret: "s", clientAuthentication: secret },
      { clientAuthentication: secret }, // no clientSecret: refused as a choice, not as a method lacking a secret
      { discovery: secret },
    ]) {
      const make = () => createOAuthClient({ issuer, clientId: "a", ...(options as object) });
      expect(make, JSON.stringify(options)).toThrow(InterlockConfigError);
      expect(make, JSON.stringify(options)).toThrow(/ must be ".*" or ".*", not a string of 25 characters$/);
    }
    // A short word, a misspelt choice, is shown as given.
    expect(() =>
      createOAuthClient({
        issuer,
        clientId: "a",
        clientSecret: "s",
        clientAuthentication: "client_secret_basik" as never,
      }),
    ).toThrow(
      'clientAuthentication must be "client_secret_basic", "client_secret_post" or "none", not "client_secret_basik"',
    );
  });
});
