import { describe, expect, it } from "vitest";
import { createLogin } from "../src/index.js";
import { authorize, REDIRECT_URI, useAuthorizationServer, webClient } from "./helpers.js";

const server = useAuthorizationServer();

describe("Authorization Code + PKCE against oidc-provider", () => {
  it("logs in over HTTP", async () => {
    const login = createLogin(webClient(server()), { redirectUri: REDIRECT_URI, scope: "openid profile" });
    const start = await login.begin({ returnTo: "/dashboard" });
    const callback = await authorize(start);
    const result = await login.complete(callback, { state: start.state });
    expect(result.claims?.sub).toBe("alice");
    expect(result.returnTo).toBe("/dashboard");
    expect(result.tokens.refreshToken).toBeTypeOf("string");
  });
});
