import type { HmacKey } from "../crypto/port.js";
import { utf8 } from "../encoding.js";
import type { ParsedDelivery, WebhookScheme } from "./scheme.js";

const NOT_DECODED = Symbol("not decoded");

let readHmacKey: (webhook: VerifiedWebhook<unknown>) => HmacKey | undefined;

/**
 * The HMAC key of the secret that verified a delivery (undefined for an Ed25519 signature), for
 * answering Zoom's challenge under the secret it was signed with. Internal to core: a key object
 * can be exported to the secret's bytes, so a delivery must not hand it to whoever holds it.
 */
export function matchedHmacKeyOf(webhook: VerifiedWebhook<unknown>): HmacKey | undefined {
  return readHmacKey(webhook);
}

/**
 * A delivery whose signature matched. The payload is decoded on first use (JSON by default),
 * so a server that only needs the bytes never pays for parsing.
 */
export class VerifiedWebhook<T = unknown> {
  /** Always true: tells a verified delivery from a `WebhookRefusal` in `check` results. */
  readonly ok = true as const;
  /** The scheme that verified it. */
  readonly scheme: string;
  /** The signed timestamp in seconds since the epoch, when the scheme signs one. */
  readonly timestamp: number | undefined;
  /** The raw body, exactly as verified. */
  readonly body: Uint8Array;
  readonly #scheme: WebhookScheme;
  readonly #headerId: string | undefined;
  readonly #hmacKey: HmacKey | undefined;
  #payload: unknown = NOT_DECODED;

  /** @internal Made by a verifier, with the key of the HMAC that matched (none for Ed25519). */
  constructor(scheme: WebhookScheme, parsed: ParsedDelivery, body: Uint8Array, hmacKey: HmacKey | undefined) {
    this.#hmacKey = hmacKey;
    this.#scheme = scheme;
    this.scheme = scheme.name;
    this.timestamp = parsed.timestampMs === undefined ? undefined : parsed.timestampMs / 1000;
    this.body = body;
    this.#headerId = parsed.id;
  }

  /**
   * The delivery's id: from its header, or for schemes whose id lives in the body (Stripe,
   * Paddle, Slack Events) from the payload. Undefined when the delivery carries none.
   */
  get id(): string | undefined {
    if (this.#headerId !== undefined || !this.#scheme.payloadId) return this.#headerId;
    try {
      return this.#scheme.payloadId(this.payload);
    } catch {
      return undefined;
    }
  }

  /**
   * Whether `id` is covered by the signature. When it is not (GitHub, Shopify, Linear), an
   * attacker can send a valid body under another id; de-duplication must bind more than it.
   * False for a delivery without an id: no id is covered.
   */
  get idCovered(): boolean {
    if (this.#headerId !== undefined) return this.#scheme.idCovered;
    return this.#scheme.payloadId !== undefined && this.id !== undefined; // an id in the signed body
  }

  /** The decoded payload; throws `SyntaxError` when the body is not what the scheme decodes. */
  get payload(): T {
    if (this.#payload === NOT_DECODED) {
      this.#payload = this.#scheme.decodePayload
        ? this.#scheme.decodePayload(this.body)
        : JSON.parse(utf8.decode(this.body));
    }
    return this.#payload as T;
  }

  // The key stays out of reach of anything holding a delivery: no method reads it, only the
  // module-level `matchedHmacKeyOf`, which the package does not export.
  static {
    readHmacKey = (webhook) => webhook.#hmacKey;
  }

  /** The body as UTF-8 text. */
  text(): string {
    return utf8.decode(this.body);
  }
}
