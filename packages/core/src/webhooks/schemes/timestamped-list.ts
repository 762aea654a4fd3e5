/**
 * The family Stripe and Paddle belong to: one header holding a timestamp and one or more hex
 * HMAC-SHA256 signatures as `key=value` items, over `{timestamp}{joiner}{body}`. Items with
 * other keys (Stripe's legacy `v0`, future versions) are ignored, as is anything else
 * stripe-node skips: empty items, words without `=`.
 */

import { decodeHex, encodeHex } from "../../encoding.js";
import {
  parseTimestamp,
  refuse,
  requireHeader,
  type SignatureCandidate,
  utf8Secret,
  type WebhookScheme,
} from "../scheme.js";

export interface TimestampedListOptions {
  name: string;
  /** Lower-case header name. */
  header: string;
  /** Between items: "," for Stripe, ";" for Paddle. */
  itemSeparator: string;
  timestampKey: string;
  signatureKey: string;
  /** Between the timestamp and the body in the signed content. */
  joiner: string;
  payloadId(payload: unknown): string | undefined;
}

export function timestampedListScheme(options: TimestampedListOptions): WebhookScheme {
  const { name, header, itemSeparator, timestampKey, signatureKey, joiner } = options;
  return {
    name,
    hash: "sha256",
    idCovered: true,
    timestamp: "header",
    multipleSignatures: true,
    parseSecret: (secret) => utf8Secret(name, secret),
    parsesHeadersOnly: true,
    parse(read) {
      const value = requireHeader(name, read, header);
      let timestamp: string | undefined;
      const signatures: SignatureCandidate[] = [];
      let others = 0;
      // One pass over the header by index: no array of items, only keys and values copied out.
      // `eq` is the next "=" at or after an item, found once and kept until the items pass it:
      // searched for from each item anew, a long run of items without one would be scanned to
      // its end once per item.
      let eq = value.indexOf("=");
      for (let start = 0; start <= value.length; ) {
        let end = value.indexOf(itemSeparator, start);
        if (end === -1) end = value.length;
        if (eq !== -1 && eq < start) eq = value.indexOf("=", start);
        // As stripe-node reads an item (`split("=")`): the key ends at its first "=", or with the
        // item when it has none (a key without a value), and the value at a further "=".
        const keyEnd = eq === -1 || eq > end ? end : eq;
        const key = value.slice(start, keyEnd).trim();
        if (key === timestampKey || key === signatureKey) {
          let valueEnd = end;
          if (keyEnd < end) {
            eq = value.indexOf("=", keyEnd + 1);
            if (eq !== -1 && eq < end) valueEnd = eq;
          }
          const text = value.slice(keyEnd + 1, valueEnd).trim();
          if (key === timestampKey) {
            if (timestamp !== undefined) refuse(name, "malformed_header", `${header} has two timestamps`);
            timestamp = text;
          } else {
            // Text that does not decode is a candidate that cannot match, as in stripe-node's
            // string comparison: a valid signature elsewhere in the list still verifies.
            signatures.push({ kind: "hmac", bytes: decodeHex(text) });
          }
        } else if (key !== "" && keyEnd < end) {
          others++;
        }
        // Any other item (empty, without a key, or a word without "=") says nothing: stripe-node
        // skips it too.
        start = end + itemSeparator.length;
      }
      if (timestamp === undefined && signatures.length === 0 && others === 0) {
        refuse(name, "malformed_header", `${header} has no key=value item`);
      }
      const timestampMs = parseTimestamp(name, timestamp, "seconds");
      if (signatures.length === 0) {
        const code = others > 0 ? "unsupported_version" : "malformed_header";
        refuse(name, code, `${header} has no ${signatureKey} signature`);
      }
      return { id: undefined, timestamp, timestampMs, signatures };
    },
    signedContent: ({ timestamp }, body) => [`${timestamp}${joiner}`, body],
    format({ timestamp }, signatures) {
      const items = signatures.map((s) => `${signatureKey}=${encodeHex(s.bytes)}`);
      return { [header]: [`${timestampKey}=${timestamp}`, ...items].join(itemSeparator) };
    },
    newId: () => undefined,
    payloadId: options.payloadId,
  };
}
