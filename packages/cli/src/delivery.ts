/**
 * A signed delivery, made by core's `signWebhook` with the scheme's own formatting: this file
 * only decides which id and timestamp to sign with, and refuses options a scheme cannot honour
 * rather than quietly ignoring them.
 */

import { randomBytes } from "node:crypto";
import {
  assertOptionNames,
  optionNames,
  type RawBody,
  signWebhook,
  type WebhookScheme,
  type WebhookSecret,
  WebhookVerificationError,
} from "@interlock/core";
import { usageError } from "./errors.js";
import { checkHeaderValue } from "./http.js";
import { isBlank } from "./inputs.js";

/** How old `stale` makes a timestamp: past every provider's tolerance (Stripe and Standard Webhooks allow 5 minutes). */
export const STALE_AGE_SECONDS = 3600;

/** What `signDelivery` signs, and how. */
export interface SignDeliveryOptions {
  /** The provider's scheme. */
  scheme: WebhookScheme;
  /** One secret, or several to sign with each (schemes that carry several signatures). */
  secret: WebhookSecret | readonly WebhookSecret[];
  /** The body to sign, exactly. */
  body: RawBody;
  /** The delivery id, for schemes that send one in a header. Default: a new one in the provider's style. */
  id?: string;
  /** Unix time in seconds to sign with. Default: now. */
  timestamp?: number;
  /** Sign with a timestamp an hour old, which a receiver must refuse. */
  stale?: boolean;
}

/** A signed delivery, ready to send. */
export interface SignedDelivery {
  /** The scheme's name. */
  scheme: string;
  /** The id in the headers; undefined for schemes whose id is in the body (Stripe, Paddle, Slack). */
  id: string | undefined;
  /** The signed timestamp in Unix seconds; undefined for schemes that sign none in a header. */
  timestamp: number | undefined;
  /** The headers to send, lower-case, exactly as the provider formats them. */
  headers: Record<string, string>;
  /** The body that was signed. */
  body: Uint8Array;
}

const SIGN_DELIVERY_OPTION_NAMES = optionNames<SignDeliveryOptions>({
  scheme: true,
  secret: true,
  body: true,
  id: true,
  timestamp: true,
  stale: true,
});

/** Signs one delivery. */
export async function signDelivery(options: SignDeliveryOptions): Promise<SignedDelivery> {
  assertOptionNames("signDelivery()", options, SIGN_DELIVERY_OPTION_NAMES);
  checkDeliveryOptions(options);
  const { scheme, secret, body, id } = options;
  const timestamp = options.timestamp ?? nowSeconds() - (options.stale ? STALE_AGE_SECONDS : 0);
  const signed = await signWebhook({ scheme, secret, body, timestamp, ...(id === undefined ? {} : { id }) });
  checkBodyTimestamp(scheme, signed.body);
  return {
    scheme: scheme.name,
    id: signed.id,
    timestamp: scheme.timestamp === "header" ? timestamp : undefined,
    headers: signed.headers,
    body: signed.body,
  };
}

/**
 * Refuses a body every receiver of a scheme that reads its timestamp from the body (Linear's
 * `webhookTimestamp`) refuses: signed and sent, it would only test that the receiver says no.
 */
function checkBodyTimestamp(scheme: WebhookScheme, body: Uint8Array): void {
  try {
    scheme.bodyTimestamp?.(body);
  } catch (error) {
    if (!(error instanceof WebhookVerificationError)) throw error;
    throw usageError(
      `--body does not suit the ${scheme.name} scheme, whose receivers would refuse it (${error.message}): ` +
        "the timestamp is in the body, in milliseconds",
    );
  }
}

/** Refuses an id or a timestamp the scheme does not send: the delivery would not be what was asked for. */
export function checkDeliveryOptions(
  options: Pick<SignDeliveryOptions, "scheme" | "id" | "timestamp" | "stale">,
): void {
  const { scheme, id, timestamp, stale } = options;
  if (stale && timestamp !== undefined) throw usageError("--stale and --timestamp both set the timestamp: use one");
  if ((stale || timestamp !== undefined) && scheme.timestamp !== "header") {
    const where =
      scheme.timestamp === "body"
        ? "its timestamp is in the body (change it there to backdate a delivery)"
        : "it signs no timestamp, so a copy is refused as a duplicate, never as stale";
    throw usageError(`--${stale ? "stale" : "timestamp"} does not apply to the ${scheme.name} scheme: ${where}`);
  }
  if (id !== undefined && !sendsIdHeader(scheme)) {
    const where = scheme.payloadId ? "its event id is in the body" : "it has no delivery id";
    throw usageError(`--id does not apply to the ${scheme.name} scheme: ${where}`);
  }
  if (id !== undefined && isBlank(id)) throw usageError("--id needs a value: a delivery id cannot be blank");
  if (id !== undefined) checkHeaderValue(id, "--id");
}

/**
 * The id every copy of one delivery shares (a provider's redeliveries keep their id): a new one
 * in the provider's style, or undefined for schemes whose id is in the body.
 */
export function newDeliveryId(scheme: WebhookScheme): string | undefined {
  return scheme.newId(randomBytes(24));
}

// A scheme makes ids exactly when it sends them in a header (`newId` is undefined otherwise).
const sendsIdHeader = (scheme: WebhookScheme): boolean => newDeliveryId(scheme) !== undefined;

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/**
 * The body changed after signing, as if in transit: one trailing space. A JSON body still
 * parses to the same value, so the receiver's refusal is about the signature (401
 * no_matching_signature), never a parse error.
 */
export function tamperedBody(body: Uint8Array): Uint8Array {
  const changed = new Uint8Array(body.length + 1);
  changed.set(body);
  changed[body.length] = 0x20;
  return changed;
}
