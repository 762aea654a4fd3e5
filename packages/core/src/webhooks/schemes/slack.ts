/**
 * Slack: `X-Slack-Signature: v0=<hex>` over `v0:{X-Slack-Request-Timestamp}:{body}`, keyed by
 * the signing secret. Slash commands and interactivity send form bodies, Events API sends
 * JSON; the payload decoder takes both. The Events API id (`event_id`) is in the body.
 */

import { stringField } from "../scheme.js";
import { decodeJsonOrForm } from "./form-body.js";
import { hmacScheme } from "./hmac.js";

/** Slack: `X-Slack-Signature` over `v0:{timestamp}:{body}`; the Events API id is the payload's `event_id`. */
export const slack = hmacScheme({
  name: "slack",
  signatureHeader: "x-slack-signature",
  timestampHeader: "x-slack-request-timestamp",
  prefix: "v0=",
  template: "v0:{ts}:{body}",
  decodePayload: (body) => decodeJsonOrForm(body),
  payloadId: (payload) => stringField(payload, "event_id"),
});
