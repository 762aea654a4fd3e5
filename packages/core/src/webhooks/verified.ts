import type { ContentParts, HmacKey } from "../crypto/port.js";
import { utf8 } from "../encoding.js";
import type { ParsedDelivery, WebhookScheme } from "./scheme.js";

const NOT_DECODED = Symbol("not decoded");

/**
 * What only this module holds, and `newVerifiedWebhook` passes to the constructor: the class is
 * exported (for `instanceof` and its type), and a constructor anyone could call would let any
 * code make a "verified" delivery whose signature nobody checked.
 */
const MADE_BY_VERIFIER: unique symbol = Symbol("made by a verifier");

let readHmacKey: (webhook: VerifiedWebhook<unknown>) => HmacKey | undefined;
let readDeliveryContent: (webhook: VerifiedWebhook<unknown>) => ContentParts;

/**
 * The HMAC key of the secret that verified a delivery (undefined for an Ed25519 signature), for
 * answering Zoom's challenge under the secret it was signed with. Internal to core: a key object
 * can be exported to the secret's bytes, so a delivery must not hand it to whoever holds it.
 */
export function matchedHmacKeyOf(webhook: VerifiedWebhook<unknown>): HmacKey | undefined {
  return readHmacKey(webhook);
}

/**
 * What identifies a delivery, for the de-duplication key of one whose id is not signed: its
 * scheme's `deliveryContent` of the body, or the body whole. Internal to core, as the scheme is.
 */
export function deliveryContentOf(webhook: VerifiedWebhook<unknown>): ContentParts {
  return readDeliveryContent(webhook);
}

/**
 * A delivery for core's verifier to hand out, once a signature matched, with the key of the HMAC
 * that matched (none for Ed25519). Internal to core: the package does not export it.
 */
export function newVerifiedWebhook<T>(
  scheme: WebhookScheme,
  parsed: ParsedDelivery,
  body: Uint8Array,
  hmacKey: HmacKey | undefined,
): VerifiedWebhook<T> {
  return new VerifiedWebhook<T>(MADE_BY_VERIFIER, scheme, parsed, body, hmacKey);
}

/**
 * A delivery whose signature matched. The payload is decoded on first use (JSON by default),
 * so a server that only needs the bytes never pays for parsing. Only a verifier makes one:
 * `new VerifiedWebhook(…)` throws a `TypeError`, and `instanceof VerifiedWebhook` is true of
 * what a verifier made and nothing else (not of an object given its prototype).
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

  /** @internal Made by a verifier only (`newVerifiedWebhook`): without its token, throws a `TypeError`. */
  constructor(
    token: typeof MADE_BY_VERIFIER,
    scheme: WebhookScheme,
    parsed: ParsedDelivery,
    body: Uint8Array,
    hmacKey: HmacKey | undefined,
  ) {
    if (token !== MADE_BY_VERIFIER) {
      throw new TypeError(
        "a VerifiedWebhook is made by a verifier (verify, check or a receiver), once a signature matched: it cannot be constructed",
      );
    }
    this.#hmacKey = hmacKey;
    this.#scheme = scheme;
    this.scheme = scheme.name;
    this.timestamp = parsed.timestampMs === undefined ? undefined : parsed.timestampMs / 1000;
    this.body = body;
    this.#headerId = parsed.id;
  }

  /**
   * The delivery's id: from its header, or for schemes whose id lives in the body (Stripe,
   * Paddle, Slack Events) from the payload. Where a scheme reads both (`hmacScheme` with an
   * `idHeader` outside its template and a `payloadId`), the payload's id, which is signed, wins
   * over the header's, which is not; the header's when the payload names none. Undefined when
   * the delivery carries none.
   */
  get id(): string | undefined {
    return this.#payloadId() ?? this.#headerId;
  }

  /**
   * Whether `id` is covered by the signature. When it is not (GitHub, Shopify, Linear), an
   * attacker can send a valid body under another id; de-duplication must bind more than it.
   * False for a delivery without an id: no id is covered.
   */
  get idCovered(): boolean {
    if (this.#payloadId() !== undefined) return true; // an id in the signed body
    return this.#headerId !== undefined && this.#scheme.idCovered;
  }

  /**
   * The id the signed payload names, unless a signed header id names the delivery already. An
   * unsigned header id never outranks it: anyone holding one delivery could otherwise send it
   * again under new ids, each a new key, and have its handler run once for each.
   */
  #payloadId(): string | undefined {
    const scheme = this.#scheme;
    if (scheme.payloadId === undefined || (this.#headerId !== undefined && scheme.idCovered)) return undefined;
    try {
      return scheme.payloadId(this.payload);
    } catch {
      return undefined;
    }
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
  // module-level `matchedHmacKeyOf`, which the package does not export (nor `deliveryContentOf`,
  // which reads the scheme the same way).
  static {
    readHmacKey = (webhook) => webhook.#hmacKey;
    readDeliveryContent = (webhook) => {
      // A scheme of the app's own that throws here keys the delivery on its whole body, as one
      // without `deliveryContent`, rather than fail every copy of it.
      try {
        return webhook.#scheme.deliveryContent?.(webhook.body) ?? [webhook.body];
      } catch {
        return [webhook.body];
      }
    };
  }

  /**
   * Made by the constructor, which only a verifier calls: `Object.create(VerifiedWebhook.prototype)`
   * has the prototype, but not the private fields the constructor adds.
   */
  static [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === "object" && value !== null && #hmacKey in value;
  }

  /** The body as UTF-8 text. */
  text(): string {
    return utf8.decode(this.body);
  }
}
