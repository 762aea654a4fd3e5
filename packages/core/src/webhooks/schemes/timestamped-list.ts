/**
 * The family Stripe and Paddle belong to: one header holding a timestamp and one or more hex
 * HMAC-SHA256 signatures as `key=value` items, over `{timestamp}{joiner}{body}`. Items with
 * other keys (Stripe's legacy `v0`, future versions) are ignored.
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
      // One pass over the header by index: no array of items, no per-item copies.
      for (let start = 0; start <= value.length; ) {
        let end = value.indexOf(itemSeparator, start);
        if (end === -1) end = value.length;
        const eq = value.indexOf("=", start);
        if (eq <= start || eq >= end) {
          // An empty item (a trailing or doubled separator) says nothing: stripe-node skips it.
          if (value.slice(start, end).trim() !== "") {
            refuse(name, "malformed_header", `${header} items must be key=value`);
          }
          start = end + itemSeparator.length;
          continue;
        }
        const key = value.slice(start, eq).trim();
        const text = value.slice(eq + 1, end).trim();
        if (key === timestampKey) {
          if (timestamp !== undefined) refuse(name, "malformed_header", `${header} has two timestamps`);
          timestamp = text;
        } else if (key === signatureKey) {
          signatures.push({ kind: "hmac", bytes: decodeHex(text) });
        } else {
          others++;
        }
        start = end + itemSeparator.length;
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
