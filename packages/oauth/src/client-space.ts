/**
 * Store keys per OAuth client. One token store often serves several clients (a login with two
 * providers, two apps on one Redis), and the app's session ids are its own, the same for every
 * provider: keyed by the session id alone, one provider's tokens would overwrite another's, and
 * its refresh token be sent to the other's token endpoint. So every key names its client.
 */

import { encodeHex } from "@interlock/core";
import type { OAuthClient } from "./client.js";

/** SHA-256 of `text`, in hex (Web Crypto: every runtime the package runs on has it). */
export async function sha256Hex(text: string): Promise<string> {
  return encodeHex(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text))));
}

/** The key part that names `client`: its issuer and client id, hashed (16 hex digits: app configuration, not an adversary's choice). */
export async function clientSpace(client: OAuthClient): Promise<string> {
  return (await sha256Hex(JSON.stringify([client.issuer, client.clientId]))).slice(0, 16);
}
