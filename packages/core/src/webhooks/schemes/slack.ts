/**
 * Slack: `X-Slack-Signature: v0=<hex>` over `v0:{X-Slack-Request-Timestamp}:{body}`, keyed by
 * the signing secret. Slash commands and interactivity send form bodies, Events API sends
 * JSON; the payload decoder takes both. The Events API id (`event_id`) is in the body.
 */

import { stringField } from "../scheme.js";
import { bodyText, hmacScheme } from "./hmac.js";

function decodeSlackPayload(body: Uint8Array): unknown {
  const text = bodyText(body);
  if (text.trimStart().startsWith("{")) return JSON.parse(text);
  return Object.fromEntries(new URLSearchParams(text));
}

/** Slack: `X-Slack-Signature` over `v0:{timestamp}:{body}`; the Events API id is the payload's `event_id`. */
export const slack = hmacScheme({
  name: "slack",
  signatureHeader: "x-slack-signature",
  timestampHeader: "x-slack-request-timestamp",
  prefix: "v0=",
  template: "v0:{ts}:{body}",
  decodePayload: decodeSlackPayload,
  payloadId: (payload) => stringField(payload, "event_id"),
});
