/**
 * Verification: parse what the delivery claims, check its timestamp window, then compare
 * every candidate signature in constant time against every configured secret's digest. A
 * timestamp the body carries (Linear) is read and checked only once a signature matched.
 * `verify` works on every runtime; `verifySync` where the crypto port is synchronous (Node).
 */

import { crypto } from "#crypto";
import { checkedClock } from "../clock.js";
import { correlated, correlationIdOf, loggable } from "../correlation.js";
import type { ContentParts, CryptoPort, Ed25519Key, HmacKey } from "../crypto/port.js";
import { InterlockConfigError, WebhookVerificationError } from "../errors.js";
import { type EventHook, emit, monotonicNow, type WebhookRejectedEvent, type WebhookVerifiedEvent } from "../events.js";
import { type HeaderReader, type HeadersInput, headerReader } from "../headers.js";
import { assertOptionNames, optionNames } from "../option-names.js";
import { positiveIntegerOption } from "../store/validate.js";
import { contentEncodingRefusal, type RawBody, rawBytes } from "./body.js";
import { importVerificationKeys, schemeOption, secretList, type VerificationKeys, type WebhookSecret } from "./keys.js";
import { WebhookRefusal } from "./refusal.js";
import { claimedIdIn, type ParsedDelivery, refuse, type TimestampUnit, type WebhookScheme } from "./scheme.js";
import { newVerifiedWebhook, type VerifiedWebhook } from "./verified.js";

/** How a verifier checks deliveries. */
export interface WebhookVerifierOptions {
  /** The provider's scheme: a preset (`stripe`, `github`, …) or `hmacScheme(…)`. */
  scheme: WebhookScheme;
  /** One secret, or several while rotating: a delivery signed with any of them is accepted. */
  secret: WebhookSecret | readonly WebhookSecret[];
  /**
   * Largest accepted distance between the signed timestamp and now, either way, in seconds.
   * Default 300; at most a year (`MAX_TOLERANCE_SECONDS`).
   */
  toleranceSeconds?: number;
  /**
   * Current time in milliseconds since the epoch. Default `Date.now`. A reading that is not a
   * finite number fails the verification with `InterlockConfigError`, never passes the window.
   */
  now?: () => number;
  /** Largest accepted body in bytes. Default 25 MiB (GitHub's own cap on payloads). */
  maxBodyBytes?: number;
  /** Most candidate signatures looked at in one delivery. Default 10. */
  maxSignatures?: number;
  /** Told about every verified and rejected delivery. */
  onEvent?: EventHook<WebhookVerifiedEvent | WebhookRejectedEvent>;
}

/** The default timestamp tolerance: 300 s, either way. */
export const DEFAULT_TOLERANCE_SECONDS = 300;
/**
 * The largest timestamp tolerance: a year. A window that wide already protects next to nothing,
 * so anything past it is a mistake (a value in the wrong unit), refused rather than accepted.
 */
export const MAX_TOLERANCE_SECONDS = 31_536_000;
/** The default largest body: 25 MiB, GitHub's own cap on payloads. */
export const DEFAULT_MAX_BODY_BYTES = 25 * 1024 * 1024;
/** The default most candidate signatures looked at in one delivery: 10. */
export const DEFAULT_MAX_SIGNATURES = 10;

/** What `createWebhookVerifier` makes: one per scheme and set of secrets, made at start-up. */
export interface WebhookVerifier {
  /** The scheme it verifies. */
  readonly scheme: WebhookScheme;
  /** The tolerance window in seconds, for replay-window checks by de-duplication. */
  readonly toleranceSeconds: number;
  /** The largest body accepted, in bytes: adapters stop reading a request body past it. */
  readonly maxBodyBytes: number;
  /** Verifies a delivery; rejects with a `WebhookVerificationError` and nothing else. */
  verify<T = unknown>(headers: HeadersInput, body: RawBody): Promise<VerifiedWebhook<T>>;
  /** The same, synchronously; throws `InterlockConfigError` where the runtime hashes only asynchronously. */
  verifySync<T = unknown>(headers: HeadersInput, body: RawBody): VerifiedWebhook<T>;
  /**
   * Refuses a delivery from its headers alone, before its body is read: sent content-encoded,
   * and, where the scheme's `parse` reads no body (`parsesHeadersOnly`: every preset), signature
   * headers missing or malformed, too many signatures, or a timestamp outside the window. The
   * refusal `check` would give, with its `webhook.rejected` event; undefined when the headers
   * give no reason to refuse, which verifies nothing: the delivery still goes through `check`.
   */
  checkHeaders(headers: HeadersInput): WebhookRefusal | undefined;
  /**
   * Verifies without throwing for a refused delivery: resolves to the `VerifiedWebhook` or a
   * `WebhookRefusal` (tell them apart by `ok`). Cheaper under a flood of forged deliveries.
   */
  check<T = unknown>(headers: HeadersInput, body: RawBody): Promise<VerifiedWebhook<T> | WebhookRefusal>;
  /** `check`, synchronously (Node). */
  checkSync<T = unknown>(headers: HeadersInput, body: RawBody): VerifiedWebhook<T> | WebhookRefusal;
}

/**
 * `toleranceSeconds`: a positive number of seconds, at most `MAX_TOLERANCE_SECONDS`, or the
 * default when not given.
 */
function toleranceOption(value: number | undefined): number {
  if (value === undefined) return DEFAULT_TOLERANCE_SECONDS;
  if (typeof value !== "number" || !(value > 0) || !Number.isFinite(value)) {
    throw new InterlockConfigError("toleranceSeconds must be a positive finite number of seconds");
  }
  if (value > MAX_TOLERANCE_SECONDS) {
    throw new InterlockConfigError(`toleranceSeconds must be at most ${MAX_TOLERANCE_SECONDS} (a year), not ${value}`);
  }
  return value;
}

/** One verification in progress, for the event that reports it. */
interface Attempt {
  started: number;
  /** The id the delivery claims, once its headers parsed (not yet verified). */
  claimedId: string | undefined;
  /** The delivery's headers, and the request's correlation id: read only when someone listens to events. */
  read: HeaderReader | undefined;
  correlationId: string | undefined;
}

interface EdPair {
  key: Ed25519Key;
  signature: Uint8Array;
}

interface Prepared {
  parsed: ParsedDelivery;
  body: Uint8Array;
  /** Undefined when no candidate decoded: nothing can match, so nothing is hashed. */
  content: ContentParts | undefined;
}

interface SyncCrypto {
  hmacSync: NonNullable<CryptoPort["hmacSync"]>;
  ed25519VerifySync: NonNullable<CryptoPort["ed25519VerifySync"]>;
}

/** A candidate signature matched: with the HMAC key that computed it (none for Ed25519). */
interface Match {
  hmacKey: HmacKey | undefined;
}

const NO_PAIRS: readonly EdPair[] = [];
/** The body `parse` is given before the body is read, for a scheme whose `parse` reads none. */
const NO_BODY = new Uint8Array();
const NO_RESULTS: readonly boolean[] = [];

/** Every option `createWebhookVerifier` takes. */
export const VERIFIER_OPTION_NAMES = optionNames<WebhookVerifierOptions>({
  scheme: true,
  secret: true,
  toleranceSeconds: true,
  now: true,
  maxBodyBytes: true,
  maxSignatures: true,
  onEvent: true,
});

/**
 * Makes a verifier. Secrets are decoded and imported once, here: an unusable one throws
 * `WebhookVerificationError` (`invalid_secret`), a bad option `InterlockConfigError`.
 */
export function createWebhookVerifier(options: WebhookVerifierOptions): WebhookVerifier {
  return createClaimsVerifier(options).verifier;
}

/**
 * What a delivery's headers claim, parsed by `checkClaims` before its body is read, for
 * `checkClaimed` to verify the delivery on once the body is in.
 */
export type HeaderClaims = ParsedDelivery;

/**
 * A verifier, and the two steps of its `checkHeaders` then `check` that hand the claims the
 * headers gave from the first to the second: a receiver that reads the body only once the
 * headers pass then parses them once, not twice (the parse, its base64 signatures and the
 * Content-Encoding check were a tenth of a Standard Webhooks delivery's verification).
 * @internal For core's receiver.
 */
export interface ClaimsVerifier {
  readonly verifier: WebhookVerifier;
  /**
   * `checkHeaders`, answering with the claims when the scheme's parse reads only headers and
   * they pass (undefined for a scheme whose parse needs the body).
   */
  checkClaims(headers: HeadersInput): WebhookRefusal | HeaderClaims | undefined;
  /**
   * `check`, of the delivery whose headers gave `claims` (`checkClaims`) without parsing them
   * again, or of the whole delivery when `claims` is undefined. The outcome itself where the
   * runtime hashes synchronously (Node): a promise there only cost the receiver a turn.
   */
  checkClaimed<T = unknown>(
    headers: HeadersInput,
    body: RawBody,
    claims: HeaderClaims | undefined,
  ): VerifiedWebhook<T> | WebhookRefusal | Promise<VerifiedWebhook<T> | WebhookRefusal>;
}

/** `createWebhookVerifier`, with the steps a receiver uses besides (`ClaimsVerifier`). @internal */
export function createClaimsVerifier(options: WebhookVerifierOptions): ClaimsVerifier {
  assertOptionNames("createWebhookVerifier()", options, VERIFIER_OPTION_NAMES);
  const { onEvent } = options;
  const scheme = schemeOption(options.scheme);
  const toleranceSeconds = toleranceOption(options.toleranceSeconds);
  const toleranceMs = toleranceSeconds * 1000;
  // Counts, not amounts: 0.5 would refuse every delivery, not configure anything.
  const maxBodyBytes = positiveIntegerOption("maxBodyBytes", options.maxBodyBytes, DEFAULT_MAX_BODY_BYTES);
  const maxSignatures = positiveIntegerOption("maxSignatures", options.maxSignatures, DEFAULT_MAX_SIGNATURES);
  const now = checkedClock("now", options.now) ?? Date.now;
  const keys: VerificationKeys = importVerificationKeys(scheme, secretList(options.secret));
  const { hmacSync, ed25519VerifySync } = crypto;
  const sync: SyncCrypto | undefined = hmacSync && ed25519VerifySync ? { hmacSync, ed25519VerifySync } : undefined;

  function checkWindow(timestampMs: number | undefined, unit: TimestampUnit): void {
    if (timestampMs === undefined) return;
    // A timestamp in whole seconds is compared with now in whole seconds (rounded down), as
    // stripe-node and standardwebhooks do: a delivery they accept 300.5 s after it was signed,
    // with a 300 s tolerance, is accepted here too. A millisecond timestamp is compared exactly.
    const at = now();
    const age = (unit === "seconds" ? Math.floor(at / 1000) * 1000 : at) - timestampMs;
    if (age > toleranceMs) refuse(scheme.name, "timestamp_too_old", `timestamp is more than ${toleranceSeconds}s old`);
    if (age < -toleranceMs)
      refuse(scheme.name, "timestamp_in_future", `timestamp is more than ${toleranceSeconds}s ahead`);
  }

  function refuseEncoded(headers: HeadersInput): void {
    const encoded = contentEncodingRefusal(headers);
    if (encoded !== undefined) refuse(scheme.name, "unsupported_content_encoding", encoded);
  }

  /** What the delivery claims, within the signature count and the timestamp window. */
  function parseClaims(attempt: Attempt, headers: HeadersInput, body: Uint8Array): ParsedDelivery {
    return withinBounds(attempt, scheme.parse(headerReader(headers), body));
  }

  /** The claims, if within the signature count and the timestamp window: checked on each use, as time passes. */
  function withinBounds(attempt: Attempt, parsed: ParsedDelivery): ParsedDelivery {
    attempt.claimedId = parsed.id;
    if (parsed.signatures.length > maxSignatures) {
      refuse(scheme.name, "malformed_header", `more than ${maxSignatures} signatures`);
    }
    checkWindow(parsed.timestampMs, scheme.timestampUnit ?? "seconds");
    return parsed;
  }

  /** The delivery ready to hash; `claims`, from its headers' check, are not parsed again (nor the encoding checked). */
  function prepare(attempt: Attempt, headers: HeadersInput, input: RawBody, claims?: HeaderClaims): Prepared {
    const body = rawBytes(input, scheme.name);
    if (claims === undefined) refuseEncoded(headers);
    if (body.length > maxBodyBytes) refuse(scheme.name, "body_too_large", `body exceeds ${maxBodyBytes} bytes`);
    const parsed = claims === undefined ? parseClaims(attempt, headers, body) : withinBounds(attempt, claims);
    const decodable = parsed.signatures.some((s) => s.bytes !== undefined);
    return { parsed, body, content: decodable ? scheme.signedContent(parsed, body) : undefined };
  }

  /** The header checks of `prepare` that read no body, for `checkHeaders`: the claims, when `parse` reads no body. */
  function prepareHeaders(attempt: Attempt, headers: HeadersInput): HeaderClaims | undefined {
    refuseEncoded(headers);
    return scheme.parsesHeadersOnly === true ? parseClaims(attempt, headers, NO_BODY) : undefined;
  }

  // Every candidate against every digest, with no early exit: which secret matched, and
  // where in the list, is not revealed by timing. Returns the first match: for an HMAC, with
  // the key that made it (what Zoom's challenge answer is keyed with).
  function firstMatch(
    prepared: Prepared,
    digests: readonly Uint8Array[],
    edResults: readonly boolean[],
  ): Match | undefined {
    let matched: Match | undefined;
    for (let i = 0; i < digests.length; i++) {
      const digest = digests[i] as Uint8Array;
      for (const candidate of prepared.parsed.signatures) {
        if (
          candidate.kind === "hmac" &&
          candidate.bytes !== undefined &&
          crypto.timingSafeEqual(digest, candidate.bytes)
        ) {
          matched ??= { hmacKey: keys.hmac[i] };
        }
      }
    }
    if (edResults.includes(true)) matched ??= { hmacKey: undefined };
    return matched;
  }

  function edPairsOf(prepared: Prepared): readonly EdPair[] {
    if (keys.ed25519.length === 0) return NO_PAIRS;
    const signatures = prepared.parsed.signatures.filter((s) => s.kind === "ed25519" && s.bytes !== undefined);
    return keys.ed25519.flatMap((key) => signatures.map((s) => ({ key, signature: s.bytes as Uint8Array })));
  }

  function hasHmacCandidate(prepared: Prepared): boolean {
    return prepared.parsed.signatures.some((s) => s.kind === "hmac" && s.bytes !== undefined);
  }

  function settle<T>(
    prepared: Prepared,
    matched: Match | undefined,
    attempt: Attempt,
  ): VerifiedWebhook<T> | WebhookRefusal {
    if (matched === undefined) {
      return refused(attempt, new WebhookRefusal("no_matching_signature", "no signature matched", scheme.name));
    }
    const parsed = withBodyTimestamp(prepared, attempt);
    if (parsed instanceof WebhookRefusal) return parsed;
    const result = newVerifiedWebhook<T>(scheme, parsed, prepared.body, matched.hmacKey);
    if (onEvent) {
      const event: WebhookVerifiedEvent = {
        type: "webhook.verified",
        scheme: scheme.name,
        id: eventIdOf(result),
        idCovered: result.idCovered,
        durationMs: monotonicNow() - attempt.started,
      };
      emit(onEvent, correlated(event, attempt.correlationId));
    }
    return result;
  }

  /**
   * The delivery with the timestamp its body carries (Linear), read and checked only once a
   * signature matched: decoding a body costs far more than hashing it (megabytes of nested
   * JSON take seconds), and a forged delivery must cost no more than its HMAC.
   */
  function withBodyTimestamp(prepared: Prepared, attempt: Attempt): ParsedDelivery | WebhookRefusal {
    if (scheme.bodyTimestamp === undefined) return prepared.parsed;
    return refusing(attempt, () => {
      const timestampMs = scheme.bodyTimestamp?.(prepared.body);
      if (timestampMs === undefined) return prepared.parsed;
      checkWindow(timestampMs, "milliseconds");
      return { ...prepared.parsed, timestamp: String(timestampMs), timestampMs };
    });
  }

  function refused(attempt: Attempt, refusal: WebhookRefusal): WebhookRefusal {
    if (onEvent) {
      const event: WebhookRejectedEvent = {
        type: "webhook.rejected",
        scheme: scheme.name,
        // The sender's header, unverified: carried only when it is a plain short id. Read from
        // the scheme's id headers alone when the refusal came before `parse` read them (a
        // signature header missing, a body over the limit).
        id: loggable(attempt.claimedId ?? (attempt.read && claimedIdIn(scheme, attempt.read))),
        code: refusal.code,
        durationMs: monotonicNow() - attempt.started,
      };
      emit(onEvent, correlated(event, attempt.correlationId));
    }
    return refusal;
  }

  /** Runs checks that refuse by throwing (the scheme's, `refuse`): a refusal is caught here, once. */
  function refusing<T>(attempt: Attempt, checks: () => T): T | WebhookRefusal {
    try {
      return checks();
    } catch (error) {
      if (error instanceof WebhookVerificationError) return refused(attempt, WebhookRefusal.from(error, scheme.name));
      throw error;
    }
  }

  const prepareOrRefuse = (
    attempt: Attempt,
    headers: HeadersInput,
    body: RawBody,
    claims: HeaderClaims | undefined,
  ): Prepared | WebhookRefusal => refusing(attempt, () => prepare(attempt, headers, body, claims));

  function newAttempt(headers: HeadersInput): Attempt {
    if (!onEvent) return { started: 0, claimedId: undefined, read: undefined, correlationId: undefined };
    const read = headerReader(headers);
    return { started: monotonicNow(), claimedId: undefined, read, correlationId: correlationIdOf(read) };
  }

  function checkWith<T>(
    sync: SyncCrypto,
    headers: HeadersInput,
    body: RawBody,
    claims?: HeaderClaims,
  ): VerifiedWebhook<T> | WebhookRefusal {
    const attempt = newAttempt(headers);
    const prepared = prepareOrRefuse(attempt, headers, body, claims);
    if (prepared instanceof WebhookRefusal) return prepared;
    const content = prepared.content;
    if (content === undefined) return settle<T>(prepared, undefined, attempt);
    const edPairs = edPairsOf(prepared);
    const digests = hasHmacCandidate(prepared) ? keys.hmac.map((key) => sync.hmacSync(key, content)) : [];
    const edResults =
      edPairs.length === 0 ? NO_RESULTS : edPairs.map((p) => sync.ed25519VerifySync(p.key, content, p.signature));
    return settle<T>(prepared, firstMatch(prepared, digests, edResults), attempt);
  }

  async function checkAsync<T>(
    headers: HeadersInput,
    body: RawBody,
    claims?: HeaderClaims,
  ): Promise<VerifiedWebhook<T> | WebhookRefusal> {
    const attempt = newAttempt(headers);
    const prepared = prepareOrRefuse(attempt, headers, body, claims);
    if (prepared instanceof WebhookRefusal) return prepared;
    const content = prepared.content;
    if (content === undefined) return settle<T>(prepared, undefined, attempt);
    const edPairs = edPairsOf(prepared);
    const [digests, edResults] = await Promise.all([
      hasHmacCandidate(prepared) ? Promise.all(keys.hmac.map((key) => crypto.hmac(key, content))) : [],
      Promise.all(edPairs.map((p) => crypto.ed25519Verify(p.key, content, p.signature))),
    ]);
    return settle<T>(prepared, firstMatch(prepared, digests, edResults), attempt);
  }

  function checkSync<T>(headers: HeadersInput, body: RawBody): VerifiedWebhook<T> | WebhookRefusal {
    if (!sync) {
      throw new InterlockConfigError(
        `checkSync and verifySync need synchronous crypto; this runtime has ${crypto.name} crypto: use check() or verify()`,
      );
    }
    return checkWith<T>(sync, headers, body);
  }

  // Where the port hashes synchronously (Node), a promise per digest only adds microtask
  // turns: the synchronous check runs, and the asynchronous API wraps it in its one promise.
  function checkClaimed<T>(
    headers: HeadersInput,
    body: RawBody,
    claims: HeaderClaims | undefined,
  ): VerifiedWebhook<T> | WebhookRefusal | Promise<VerifiedWebhook<T> | WebhookRefusal> {
    return sync ? checkWith<T>(sync, headers, body, claims) : checkAsync<T>(headers, body, claims);
  }

  function checkClaims(headers: HeadersInput): WebhookRefusal | HeaderClaims | undefined {
    const attempt = newAttempt(headers);
    return refusing(attempt, () => prepareHeaders(attempt, headers));
  }

  const verifier: WebhookVerifier = {
    scheme,
    toleranceSeconds,
    maxBodyBytes,
    check: async <T>(headers: HeadersInput, body: RawBody) => checkClaimed<T>(headers, body, undefined),
    checkSync,
    checkHeaders(headers: HeadersInput): WebhookRefusal | undefined {
      const claims = checkClaims(headers);
      return claims instanceof WebhookRefusal ? claims : undefined;
    },
    async verify<T>(headers: HeadersInput, body: RawBody) {
      const checking = checkClaimed<T>(headers, body, undefined);
      const result = checking instanceof Promise ? await checking : checking;
      if (!result.ok) throw result.error;
      return result;
    },
    verifySync<T>(headers: HeadersInput, body: RawBody) {
      const result = checkSync<T>(headers, body);
      if (!result.ok) throw result.error;
      return result;
    },
  };
  return { verifier, checkClaims, checkClaimed };
}

/**
 * The id a verified delivery's events carry: a signed id as it is. One the signature does not
 * cover (GitHub's, Shopify's, Linear's) is the sender's text, under which anyone holding one
 * signed body can send it again, so it is carried as a refused delivery's is: only when it is 1
 * to 200 visible ASCII characters (`loggable`). The handler's `VerifiedWebhook.id` is the id as
 * sent, either way, and so is the de-duplication key's.
 * @internal For core's receiver.
 */
export function eventIdOf(delivery: VerifiedWebhook): string | undefined {
  return delivery.idCovered ? delivery.id : loggable(delivery.id);
}

/** One-shot verification. A server verifying many deliveries should keep one `createWebhookVerifier`. */
export function verifyWebhook<T = unknown>(
  headers: HeadersInput,
  body: RawBody,
  options: WebhookVerifierOptions,
): Promise<VerifiedWebhook<T>> {
  try {
    return createWebhookVerifier(options).verify<T>(headers, body);
  } catch (error) {
    return Promise.reject(error);
  }
}
