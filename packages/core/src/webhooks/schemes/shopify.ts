/**
 * Shopify: `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256 of the body>`, keyed by the app's
 * client secret. No timestamp is signed, and no header is: the delivery's id is
 * `X-Shopify-Event-Id` when sent (one per event: Shopify's documented key for spotting a
 * duplicate delivery of one event, whatever webhook carried it), else `X-Shopify-Webhook-Id`
 * (one per webhook). Either way it is unsigned, so the receiver binds a hash of the body into
 * the de-duplication key.
 */

import { optionalHeader, type WebhookScheme } from "../scheme.js";
import { hmacScheme } from "./hmac.js";

const NAME = "shopify";
const EVENT_ID_HEADER = "x-shopify-event-id";
const WEBHOOK_ID_HEADER = "x-shopify-webhook-id";

const webhookIdScheme = hmacScheme({
  name: NAME,
  signatureHeader: "x-shopify-hmac-sha256",
  encoding: "base64",
  timestampHeader: false,
  idHeader: WEBHOOK_ID_HEADER,
  template: "{body}",
});

/**
 * Shopify: base64 `X-Shopify-Hmac-Sha256` over the body. The (unsigned) id is
 * `X-Shopify-Event-Id`, falling back to `X-Shopify-Webhook-Id` when no event id is sent.
 */
export const shopify: WebhookScheme = {
  ...webhookIdScheme,
  idHeaders: [EVENT_ID_HEADER, WEBHOOK_ID_HEADER],
  parse(read, body) {
    const parsed = webhookIdScheme.parse(read, body);
    const eventId = optionalHeader(NAME, read, EVENT_ID_HEADER);
    return eventId === undefined ? parsed : { ...parsed, id: eventId };
  },
};
