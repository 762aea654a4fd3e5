/**
 * Paddle Billing: `Paddle-Signature: ts=<seconds>;h1=<hex>[;h1=<hex>…]` over `{ts}:{body}`,
 * keyed by the notification secret; several `h1` appear while a secret is rotated. The id is
 * the payload's `notification_id` (one per delivery), else its `event_id`.
 */

import { stringField } from "../scheme.js";
import { timestampedListScheme } from "./timestamped-list.js";

/** Paddle Billing: `Paddle-Signature: ts=…;h1=…` over `{ts}:{body}`; the id is the payload's `notification_id`. */
export const paddle = timestampedListScheme({
  name: "paddle",
  header: "paddle-signature",
  itemSeparator: ";",
  timestampKey: "ts",
  signatureKey: "h1",
  joiner: ":",
  payloadId: (payload) => stringField(payload, "notification_id") ?? stringField(payload, "event_id"),
});
