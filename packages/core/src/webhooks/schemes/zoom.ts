/**
 * Zoom: `x-zm-signature: v0=<hex>` over `v0:{x-zm-request-timestamp}:{body}`, keyed by the
 * app's secret token. Zoom also validates an endpoint by sending an `endpoint.url_validation`
 * event whose `plainToken` must be answered with its HMAC: see `answerZoomUrlValidation`.
 */

import { crypto } from "#crypto";
import type { HmacKey } from "../../crypto/port.js";
import { encodeHex } from "../../encoding.js";
import { InterlockConfigError } from "../../errors.js";
import { importSigningKey, type WebhookSecret } from "../keys.js";
import {
  matchedHmacKeyOf,
  otherCopyThatMade,
  THIS_COPY,
  VerifiedWebhook,
  verifiedZoomPayloadOf,
  ZOOM_SCHEME_NAME,
} from "../verified.js";
import { hmacScheme } from "./hmac.js";

/** Zoom: `x-zm-signature: v0=…` over `v0:{timestamp}:{body}`; no delivery id. */
export const zoom = hmacScheme({
  name: ZOOM_SCHEME_NAME,
  signatureHeader: "x-zm-signature",
  timestampHeader: "x-zm-request-timestamp",
  prefix: "v0=",
  template: "v0:{ts}:{body}",
});

/** The JSON body that answers Zoom's `endpoint.url_validation` challenge. */
export interface ZoomUrlValidationResponse {
  /** The token Zoom sent. */
  plainToken: string;
  /** Its HMAC-SHA256 under the app's secret token, in hex. */
  encryptedToken: string;
}

/**
 * The JSON answer to Zoom's `endpoint.url_validation` challenge, or undefined when the delivery
 * is another event. The challenge is signed like any other event: verify it first.
 *
 * Given the verified delivery alone (`req.webhook` in the adapters), the answer is keyed with
 * the secret token that signed the challenge. Zoom signs it with the token the app has now and
 * checks the answer with that same token, so while rotating (several secrets configured, in
 * either order) this is the one form that answers right. The token answered is the one in the
 * bytes the delivery verified, whatever its `payload` or `body` have become since: code handed a
 * delivery gets no HMAC of a text of its choosing. Given a payload and a secret token,
 * the answer is keyed with that token (text, or its bytes as a `Uint8Array`). Without a token,
 * anything but a delivery the `zoom` scheme verified is refused with `InterlockConfigError`,
 * whatever its event. A delivery of another copy of core loaded in the process (its other build,
 * as a CommonJS adapter in an ESM app has) is answered by that copy, which holds its key.
 */
export function answerZoomUrlValidation(delivery: VerifiedWebhook): Promise<ZoomUrlValidationResponse | undefined>;
export function answerZoomUrlValidation(
  payload: unknown,
  secretToken: WebhookSecret,
): Promise<ZoomUrlValidationResponse | undefined>;
export async function answerZoomUrlValidation(
  deliveryOrPayload: unknown,
  secretToken?: WebhookSecret,
): Promise<ZoomUrlValidationResponse | undefined> {
  const delivery = deliveryOrPayload instanceof VerifiedWebhook ? deliveryOrPayload : undefined;
  // Another copy's delivery: its private fields, the key among them, are that copy's to read.
  const madeBy = secretToken === undefined ? otherCopyThatMade(delivery) : undefined;
  if (madeBy !== undefined) {
    return (await madeBy.answerZoomUrlValidation(delivery as VerifiedWebhook)) as ZoomUrlValidationResponse | undefined;
  }
  // Checked before the event is: a wrong argument is refused on every event, not only on the
  // challenge, which Zoom sends when the endpoint is saved, and would otherwise go unanswered.
  const verified = secretToken === undefined ? verifiedByZoom(delivery) : undefined;
  // With a token, the caller's payload (or delivery's): whoever holds the token can sign anything.
  const plainToken = plainTokenOf(verified ? verified.payload : delivery ? delivery.payload : deliveryOrPayload);
  if (plainToken === undefined) return undefined;
  const key = verified?.key ?? importSigningKey(zoom, secretToken as WebhookSecret).key;
  const digest = await crypto.hmac(key as HmacKey, [plainToken]);
  return { plainToken, encryptedToken: encodeHex(digest) };
}

// What another copy of core calls for a delivery of this copy's (see `DeliveryMaker`).
THIS_COPY.answerZoomUrlValidation = answerZoomUrlValidation;

/** The challenge's `plainToken`, or undefined for any other event. */
function plainTokenOf(payload: unknown): string | undefined {
  if (payload === null || typeof payload !== "object") return undefined;
  const { event, payload: inner } = payload as { event?: unknown; payload?: { plainToken?: unknown } };
  const plainToken = inner?.plainToken;
  return event === "endpoint.url_validation" && typeof plainToken === "string" ? plainToken : undefined;
}

/**
 * The key of the secret token that signed a delivery the `zoom` scheme verified, and its payload
 * as verified: both read from what only the delivery holds, never from its public `scheme`,
 * `payload` or `body`, which anything holding it can relabel, replace or write to.
 */
function verifiedByZoom(delivery: VerifiedWebhook | undefined): { key: HmacKey; payload: unknown } {
  const key = delivery === undefined ? undefined : matchedHmacKeyOf(delivery);
  const verified = key === undefined ? undefined : verifiedZoomPayloadOf(delivery as VerifiedWebhook);
  if (verified === undefined) {
    throw new InterlockConfigError(
      "answerZoomUrlValidation takes a delivery the zoom scheme verified, or a payload and the secret token",
    );
  }
  return { key: key as HmacKey, payload: verified.payload };
}
