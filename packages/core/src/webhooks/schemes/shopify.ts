/**
 * Shopify: `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256 of the body>`, keyed by the app's
 * client secret. No timestamp is signed; `X-Shopify-Webhook-Id` (one per delivery, the
 * de-duplication key Shopify recommends) is not covered by the signature.
 */

import { hmacScheme } from "./hmac.js";

/** Shopify: base64 `X-Shopify-Hmac-Sha256` over the body; `X-Shopify-Webhook-Id` is the (unsigned) id. */
export const shopify = hmacScheme({
  name: "shopify",
  signatureHeader: "x-shopify-hmac-sha256",
  encoding: "base64",
  timestampHeader: false,
  idHeader: "x-shopify-webhook-id",
  template: "{body}",
});
