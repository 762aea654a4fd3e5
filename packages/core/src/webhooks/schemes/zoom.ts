/**
 * Zoom: `x-zm-signature: v0=<hex>` over `v0:{x-zm-request-timestamp}:{body}`, keyed by the
 * app's secret token. Zoom also validates an endpoint by sending an `endpoint.url_validation`
 * event whose `plainToken` must be answered with its HMAC: see `answerZoomUrlValidation`.
 */

import { crypto } from "#crypto";
import { encodeHex } from "../../encoding.js";
import { importSigningKey, type WebhookSecret } from "../keys.js";
import { hmacScheme } from "./hmac.js";

/** Zoom: `x-zm-signature: v0=…` over `v0:{timestamp}:{body}`; no delivery id. */
export const zoom = hmacScheme({
  name: "zoom",
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
 * The JSON answer to Zoom's `endpoint.url_validation` challenge, given the verified payload,
 * or undefined when the payload is another event. Verify the delivery first: the challenge is
 * signed like any other event. The secret token is taken as the verifier takes it: text, or
 * its bytes as a `Uint8Array`.
 */
export async function answerZoomUrlValidation(
  payload: unknown,
  secretToken: WebhookSecret,
): Promise<ZoomUrlValidationResponse | undefined> {
  if (payload === null || typeof payload !== "object") return undefined;
  const { event, payload: inner } = payload as { event?: unknown; payload?: { plainToken?: unknown } };
  const plainToken = inner?.plainToken;
  if (event !== "endpoint.url_validation" || typeof plainToken !== "string") return undefined;
  const { key } = importSigningKey(zoom, secretToken);
  const digest = await crypto.hmac(key as Parameters<typeof crypto.hmac>[0], [plainToken]);
  return { plainToken, encryptedToken: encodeHex(digest) };
}
