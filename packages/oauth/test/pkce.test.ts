import { InterlockConfigError } from "@interlock/core";
import { describe, expect, it } from "vitest";
import { codeChallenge, generateCodeVerifier } from "../src/index.js";

describe("PKCE (RFC 7636)", () => {
  it("matches the Appendix B example: verifier to S256 challenge", async () => {
    expect(await codeChallenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")).toBe(
      "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
    );
  });

  it("makes verifiers of 43 unreserved characters, different every time", () => {
    const verifiers = new Set(Array.from({ length: 100 }, () => generateCodeVerifier()));
    expect(verifiers.size).toBe(100);
    for (const verifier of verifiers) expect(verifier).toMatch(/^[A-Za-z0-9\-._~]{43}$/);
  });

  it("accepts the whole alphabet at both length limits, and refuses anything else", async () => {
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
    await expect(codeChallenge(alphabet.slice(0, 43))).resolves.toMatch(/^[A-Za-z0-9_-]{43}$/);
    await expect(codeChallenge(alphabet.repeat(2).slice(0, 128))).resolves.toMatch(/^[A-Za-z0-9_-]{43}$/);
    for (const bad of [
      alphabet.slice(0, 42),
      alphabet.repeat(2).slice(0, 129),
      `${"a".repeat(42)}+`,
      `${"a".repeat(42)}=`,
    ]) {
      await expect(codeChallenge(bad)).rejects.toBeInstanceOf(InterlockConfigError);
    }
  });
});
