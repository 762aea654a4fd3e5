import { trimOws } from "../headers.js";

/**
 * The Idempotency-Key header (draft-ietf-httpapi-idempotency-key-header): an RFC 9651
 * sf-string, e.g. `"8e03978e-40d5-43e8-bc93-6894a57f9324"`. Stripe's clients send the bare
 * value without quotes, so a bare token of visible ASCII is accepted too. Lists are refused:
 * one request has one key.
 */

export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;

const VISIBLE_ASCII = /^[\x21-\x7e]+$/;

/** The key inside a header value, or undefined when the value is not a valid key. */
export function parseIdempotencyKey(value: string): string | undefined {
  const text = trimOws(value);
  const key = text.startsWith('"') ? parseSfString(text) : parseBareToken(text);
  if (key === undefined || key.length === 0 || key.length > MAX_IDEMPOTENCY_KEY_LENGTH) return undefined;
  // Quoted spaces alone are no key: a client's blank key means it has none.
  if (key.charCodeAt(0) === 0x20 && key.trim() === "") return undefined;
  return key;
}

function parseBareToken(text: string): string | undefined {
  // A comma would make it a list, a quote or space a malformed string.
  if (!VISIBLE_ASCII.test(text) || /[",]/.test(text)) return undefined;
  return text;
}

/** RFC 9651 §4.2.5: printable ASCII between quotes; `\` escapes only `"` and `\`. No parameters. */
function parseSfString(text: string): string | undefined {
  let out = "";
  for (let i = 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c /* \ */) {
      const next = text[++i];
      if (next !== '"' && next !== "\\") return undefined;
      out += next;
    } else if (c === 0x22 /* " */) {
      return i === text.length - 1 ? out : undefined;
    } else if (c < 0x20 || c > 0x7e) {
      return undefined;
    } else {
      out += text[i];
    }
  }
  return undefined; // no closing quote
}
