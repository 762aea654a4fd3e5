/** PKCE (RFC 7636) with the S256 method only: `plain` protects nothing the S256 method does not. */

import { InterlockConfigError } from "@interlock/core";
import * as oauth from "oauth4webapi";

/** RFC 7636 §4.1: 43–128 characters of `A-Z a-z 0-9 - . _ ~`. */
const VERIFIER = /^[A-Za-z0-9\-._~]{43,128}$/;

export function isCodeVerifier(value: unknown): value is string {
  return typeof value === "string" && VERIFIER.test(value);
}

/** A new code verifier: 32 random bytes as base64url, 43 characters. */
export function generateCodeVerifier(): string {
  return oauth.generateRandomCodeVerifier();
}

/** The S256 challenge of a verifier: BASE64URL(SHA-256(verifier)). */
export async function codeChallenge(verifier: string): Promise<string> {
  if (!isCodeVerifier(verifier)) {
    throw new InterlockConfigError("a code verifier is 43-128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636 §4.1)");
  }
  return oauth.calculatePKCECodeChallenge(verifier);
}
