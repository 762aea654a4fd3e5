import { crypto } from "#crypto";
import type { ContentParts } from "./crypto/port.js";
import { encodeHex } from "./encoding.js";

/** Hex SHA-256 of the parts: synchronous where the runtime allows (Node), else Web Crypto. */
export async function sha256Hex(content: ContentParts): Promise<string> {
  return encodeHex(crypto.sha256Sync ? crypto.sha256Sync(content) : await crypto.sha256(content));
}
