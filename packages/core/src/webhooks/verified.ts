import type { ContentParts, HmacKey } from "../crypto/port.js";
import { utf8 } from "../encoding.js";
import { WebhookPayloadError } from "../errors.js";
import type { ParsedDelivery, WebhookScheme } from "./scheme.js";

const NOT_DECODED = Symbol("not decoded");

/**
 * What only this module holds, and `newVerifiedWebhook` passes to the constructor: the class is
 * exported (for `instanceof` and its type), and a constructor anyone could call would let any
 * code make a "verified" delivery whose signature nobody checked.
 */
const MADE_BY_VERIFIER: unique symbol = Symbol("made by a verifier");

let madeHere: (value: object) => boolean;
let readHmacKey: (webhook: VerifiedWebhook<unknown>) => HmacKey | undefined;
let readDeliveryContent: (webhook: VerifiedWebhook<unknown>) => ContentParts;
let readVerifiedZoomPayload: (webhook: VerifiedWebhook<unknown>) => { payload: unknown } | undefined;

/**
 * The name of the scheme whose deliveries keep a copy of their bytes as verified: Zoom's, whose
 * challenge `answerZoomUrlValidation` answers from them (see `verifiedZoomPayloadOf`). The zoom
 * preset is named with it: this module does not import that one (it imports this one).
 */
export const ZOOM_SCHEME_NAME = "zoom";

/**
 * What a copy of core answers another about the deliveries its verifier made. An app that loads
 * core's ESM build and its CommonJS build (an ESM app with a CommonJS adapter, or the reverse)
 * has two copies of `VerifiedWebhook`, and each reads only its own deliveries' private fields.
 * Only what holding a delivery gives already: never its key, which stays in the copy it is in.
 * The shape is part of the registry key's version (`v1`): copies of other versions read it.
 */
export interface DeliveryMaker {
  /** Whether this copy's verifier made `value` (its prototype can be given to anything). */
  made(value: object): boolean;
  /** `deliveryContentOf` of a delivery this copy made. */
  deliveryContent(delivery: object): ContentParts;
  /** This copy's `answerZoomUrlValidation`, given a delivery this copy made: keyed in this copy. */
  answerZoomUrlValidation(delivery: object): Promise<unknown>;
}

/**
 * This copy's `DeliveryMaker`. The zoom module puts its `answerZoomUrlValidation` in, the one
 * use of a delivery's key: this module does not import it (it imports this one).
 */
export const THIS_COPY: DeliveryMaker = {
  made: (value) => madeHere(value),
  deliveryContent: (delivery) => readDeliveryContent(delivery as VerifiedWebhook<unknown>),
  // Until the zoom module is evaluated, which the package's entry point always does.
  answerZoomUrlValidation: () =>
    Promise.reject(new TypeError("the copy of core that verified this delivery has no answerZoomUrlValidation")),
};

const MAKERS_KEY = Symbol.for("@interlock/core.verifiedWebhookMakers.v1");

/**
 * Every copy's `DeliveryMaker` in the process, by its `VerifiedWebhook.prototype`: one entry a
 * copy, set as its class is defined, none a delivery (verifying stays as cheap as it was). Weak,
 * so a copy a dev server reloads leaves nothing behind. Code that writes to it on purpose can
 * vouch for an object of its own, as it could replace the verifier itself; nothing reaches it by
 * accident, and what it holds hands out no key.
 */
const MAKERS: WeakMap<object, DeliveryMaker> = processWideMakers();

function processWideMakers(): WeakMap<object, DeliveryMaker> {
  const global = globalThis as { [MAKERS_KEY]?: WeakMap<object, DeliveryMaker> };
  const existing = global[MAKERS_KEY];
  if (existing !== undefined) return existing;
  const makers = new WeakMap<object, DeliveryMaker>();
  try {
    // Not writable and not configurable: no later code swaps the copies' registry for its own.
    Object.defineProperty(global, MAKERS_KEY, { value: makers });
  } catch {
    // A frozen global object: this copy knows its own deliveries only.
  }
  return makers;
}

/**
 * The other copy of core loaded in the process (its other build) whose verifier made `value`,
 * or undefined: for a delivery of this copy, and for anything no verifier made.
 */
export function otherCopyThatMade(value: unknown): DeliveryMaker | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const maker = MAKERS.get(Object.getPrototypeOf(value));
  return maker !== undefined && maker !== THIS_COPY && maker.made(value) ? maker : undefined;
}

/**
 * The HMAC key of the secret that verified a delivery (undefined for an Ed25519 signature), for
 * answering Zoom's challenge under the secret it was signed with. Internal to core: a key object
 * can be exported to the secret's bytes, so a delivery must not hand it to whoever holds it.
 */
export function matchedHmacKeyOf(webhook: VerifiedWebhook<unknown>): HmacKey | undefined {
  return readHmacKey(webhook);
}

/**
 * The payload of a delivery the zoom scheme verified (by the name its scheme had then), decoded
 * from the copy of its bytes it kept as verified; undefined for a delivery of any other scheme.
 * For answering Zoom's challenge: never from the public `payload` or `body`, which anything
 * holding the delivery can replace or write to, and would then have the app's key sign a text of
 * its choosing. Internal to core, as `matchedHmacKeyOf` is. Read what it needs of the payload at
 * once: the same object is the delivery's `payload` from then on, unless it was decoded before.
 */
export function verifiedZoomPayloadOf(webhook: VerifiedWebhook<unknown>): { payload: unknown } | undefined {
  return readVerifiedZoomPayload(webhook);
}

/**
 * What identifies a delivery, for the de-duplication key of one whose id is not signed: its
 * scheme's `deliveryContent` of the body, or the body whole. Internal to core, as the scheme is.
 */
export function deliveryContentOf(webhook: VerifiedWebhook<unknown>): ContentParts {
  // This copy's own deliveries first: every delivery whose id is unsigned comes through here.
  const maker = madeHere(webhook) ? undefined : otherCopyThatMade(webhook);
  return maker === undefined ? readDeliveryContent(webhook) : (maker.deliveryContent(webhook) as ContentParts);
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
 * what a verifier made and nothing else (not of an object given its prototype): a verifier of
 * this copy of core or of another loaded in the process (core's other build, which an adapter
 * loaded as CommonJS in an ESM app uses).
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
  /** A Zoom delivery's bytes as verified (see `verifiedZoomPayloadOf`); undefined for any other scheme. */
  readonly #zoomBytes: Uint8Array | undefined;
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
    // A copy: `body` is the caller's array, writable by anything that holds it. Only Zoom's
    // deliveries pay for one, and only a copy of their bytes: no other scheme's, nothing decoded.
    this.#zoomBytes = scheme.name === ZOOM_SCHEME_NAME ? new Uint8Array(body) : undefined;
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

  /**
   * The decoded payload. Throws a `WebhookPayloadError` (400 `payload_not_decodable`, the
   * decoder's `SyntaxError` as its `cause`) when the body is not what the scheme decodes: let it
   * through, and the adapter answers it as problem+json and releases the delivery. Anything else
   * a scheme's own `decodePayload` throws is a bug of the decoder's, thrown as it is.
   */
  get payload(): T {
    if (this.#payload === NOT_DECODED) this.#payload = this.#decode(this.body);
    return this.#payload as T;
  }

  #decode(body: Uint8Array): unknown {
    const decode = this.#scheme.decodePayload;
    try {
      return decode ? decode(body) : JSON.parse(utf8.decode(body));
    } catch (error) {
      // A decoder says "not what I decode" as JSON.parse does; any other throw is its bug, not the
      // sender's, and must not pass for a 400 the provider soon stops retrying, logged nowhere.
      if (!(error instanceof SyntaxError)) throw error;
      // Not the decoder's message: JSON.parse's quotes the body, and a detail goes out to the sender.
      const what = decode ? `what the ${this.scheme} scheme decodes` : "valid JSON";
      throw new WebhookPayloadError(this.scheme, `the delivery's body is not ${what}`, { cause: error });
    }
  }

  // The key stays out of reach of anything holding a delivery: no method reads it, only the
  // module-level `matchedHmacKeyOf`, which the package does not export (nor `deliveryContentOf`,
  // which reads the scheme the same way, nor `verifiedZoomPayloadOf`, what the key signs).
  static {
    madeHere = (value) => #hmacKey in value;
    readHmacKey = (webhook) => webhook.#hmacKey;
    readVerifiedZoomPayload = (webhook) => {
      const bytes = webhook.#zoomBytes;
      if (bytes === undefined) return undefined;
      const payload = webhook.#decode(bytes);
      // The delivery's own `payload` next: a handler answers the challenge, then reads it.
      if (webhook.#payload === NOT_DECODED) webhook.#payload = payload;
      return { payload };
    };
    readDeliveryContent = (webhook) => {
      // A scheme of the app's own that throws here keys the delivery on its whole body, as one
      // without `deliveryContent`, rather than fail every copy of it.
      try {
        return webhook.#scheme.deliveryContent?.(webhook.body) ?? [webhook.body];
      } catch {
        return [webhook.body];
      }
    };
    MAKERS.set(VerifiedWebhook.prototype, THIS_COPY);
  }

  /**
   * Made by the constructor, which only a verifier calls: `Object.create(VerifiedWebhook.prototype)`
   * has the prototype, but not the private fields the constructor adds. A delivery of another
   * copy of core has that copy's fields, which only that copy can see: it is asked.
   */
  static [Symbol.hasInstance](value: unknown): boolean {
    if (typeof value !== "object" || value === null) return false;
    return #hmacKey in value || otherCopyThatMade(value) !== undefined;
  }

  /** The body as UTF-8 text. */
  text(): string {
    return utf8.decode(this.body);
  }
}
