import { crypto } from "#crypto";
import type { ContentParts } from "./crypto/port.js";

/**
 * Hex SHA-256 of the parts. Synchronous where the runtime hashes synchronously (Node), so hot
 * paths skip a promise; callers `await` the result either way.
 */
export function sha256Hex(content: ContentParts): string | Promise<string> {
  return crypto.sha256HexSync ? crypto.sha256HexSync(content) : crypto.sha256Hex(content);
}
