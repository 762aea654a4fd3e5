/**
 * Linear: `Linear-Signature: <hex HMAC-SHA256 of the body>`. Linear signs no timestamp
 * header; instead the JSON body carries `webhookTimestamp` in milliseconds, which the
 * signature covers, and which this scheme checks against the tolerance window once the
 * signature matched (a forged body is never parsed). `Linear-Delivery` (the delivery id) is not covered by the signature.
 */

import { utf8 } from "../../encoding.js";
import { assertOptionNames, optionNames } from "../../option-names.js";
import { refuse, type WebhookScheme } from "../scheme.js";
import { hmacScheme } from "./hmac.js";

/** Options of `linearScheme`. */
export interface LinearSchemeOptions {
  /**
   * Refuse a body without a numeric `webhookTimestamp`. Default true: Linear always sends
   * one, and without it a captured delivery could be replayed at any time.
   */
  requireTimestamp?: boolean;
}

const base = hmacScheme({
  name: "linear",
  signatureHeader: "linear-signature",
  timestampHeader: false,
  idHeader: "linear-delivery",
  template: "{body}",
});

function webhookTimestampOf(body: Uint8Array): number | undefined {
  try {
    const value = (JSON.parse(utf8.decode(body)) as { webhookTimestamp?: unknown })?.webhookTimestamp;
    return typeof value === "number" && Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  } catch {
    return undefined;
  }
}

const LINEAR_SCHEME_OPTION_NAMES = optionNames<LinearSchemeOptions>({ requireTimestamp: true });

/** The Linear scheme with options; `linear` is `linearScheme()`. */
export function linearScheme(options: LinearSchemeOptions = {}): WebhookScheme {
  assertOptionNames("linearScheme()", options, LINEAR_SCHEME_OPTION_NAMES);
  const requireTimestamp = options.requireTimestamp ?? true;
  return {
    ...base,
    timestamp: "body",
    bodyTimestamp(body) {
      const timestampMs = webhookTimestampOf(body);
      if (timestampMs === undefined && requireTimestamp) {
        refuse("linear", "invalid_timestamp", "the body has no numeric webhookTimestamp");
      }
      return timestampMs;
    },
  };
}

/** Linear: `Linear-Signature` over the body, whose `webhookTimestamp` (ms) is checked; `Linear-Delivery` is the (unsigned) id. */
export const linear: WebhookScheme = linearScheme();
