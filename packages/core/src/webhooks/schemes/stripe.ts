/**
 * Stripe: `Stripe-Signature: t=<seconds>,v1=<hex>[,v1=<hex>…]` over `{t}.{body}`, keyed by
 * the whole `whsec_…` string. `v0` (legacy test mode) is ignored. The event id is the
 * payload's `id`, covered by the signature.
 */

import { stringField } from "../scheme.js";
import { timestampedListScheme } from "./timestamped-list.js";

/** Stripe: `Stripe-Signature: t=…,v1=…` over `{t}.{body}`; the id is the payload's `id`. */
export const stripe = timestampedListScheme({
  name: "stripe",
  header: "stripe-signature",
  itemSeparator: ",",
  timestampKey: "t",
  signatureKey: "v1",
  joiner: ".",
  payloadId: (payload) => stringField(payload, "id"),
});
