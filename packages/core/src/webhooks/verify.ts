/**
 * Verification: parse what the delivery claims, check its timestamp window, then compare
 * every candidate signature in constant time against every configured secret's digest.
 * `verify` works on every runtime; `verifySync` where the crypto port is synchronous (Node).
 */

import { crypto } from "#crypto";
import type { ContentParts, Ed25519Key } from "../crypto/port.js";
import { InterlockConfigError, WebhookVerificationError } from "../errors.js";
import { type EventHook, emit, monotonicNow, type WebhookRejectedEvent, type WebhookVerifiedEvent } from "../events.js";
import { type HeadersInput, headerReader } from "../headers.js";
import { type RawBody, rawBytes } from "./body.js";
import { importVerificationKeys, secretList, type VerificationKeys, type WebhookSecret } from "./keys.js";
import { type ParsedDelivery, refuse, type WebhookScheme } from "./scheme.js";
import { VerifiedWebhook } from "./verified.js";

export interface WebhookVerifierOptions {
  scheme: WebhookScheme;
  /** One secret, or several while rotating: a delivery signed with any of them is accepted. */
  secret: WebhookSecret | readonly WebhookSecret[];
  /** Largest accepted distance between the signed timestamp and now, either way, in seconds. Default 300. */
  tolerance?: number;
  /** Current time in milliseconds since the epoch. Default `Date.now`. */
  now?: () => number;
  /** Largest accepted body in bytes. Default 25 MiB (GitHub's own cap on payloads). */
  maxBodyBytes?: number;
  /** Most candidate signatures looked at in one delivery. Default 10. */
  maxSignatures?: number;
  /** Told about every verified and rejected delivery. */
  onEvent?: EventHook<WebhookVerifiedEvent | WebhookRejectedEvent>;
}

export const DEFAULT_TOLERANCE_SECONDS = 300;
export const DEFAULT_MAX_BODY_BYTES = 25 * 1024 * 1024;
export const DEFAULT_MAX_SIGNATURES = 10;

export interface WebhookVerifier {
  readonly scheme: WebhookScheme;
  /** The tolerance window in seconds, for replay-window checks by de-duplication. */
  readonly tolerance: number;
  /** Verifies a delivery; rejects with a `WebhookVerificationError` and nothing else. */
  verify<T = unknown>(headers: HeadersInput, body: RawBody): Promise<VerifiedWebhook<T>>;
  /** The same, synchronously; throws `InterlockConfigError` where the runtime hashes only asynchronously. */
  verifySync<T = unknown>(headers: HeadersInput, body: RawBody): VerifiedWebhook<T>;
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !(value > 0) || !Number.isFinite(value)) {
    throw new InterlockConfigError(`${name} must be a positive finite number`);
  }
  return value;
}

/** One verification in progress, for the event that reports it. */
interface Attempt {
  started: number;
  /** The id the delivery claims, once its headers parsed (not yet verified). */
  claimedId: string | undefined;
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

export function createWebhookVerifier(options: WebhookVerifierOptions): WebhookVerifier {
  const { scheme, onEvent } = options;
  const tolerance = positive("tolerance", options.tolerance, DEFAULT_TOLERANCE_SECONDS);
  const toleranceMs = tolerance * 1000;
  const maxBodyBytes = positive("maxBodyBytes", options.maxBodyBytes, DEFAULT_MAX_BODY_BYTES);
  const maxSignatures = positive("maxSignatures", options.maxSignatures, DEFAULT_MAX_SIGNATURES);
  const now = options.now ?? Date.now;
  const keys: VerificationKeys = importVerificationKeys(scheme, secretList(options.secret));

  function prepare(attempt: Attempt, headers: HeadersInput, input: RawBody): Prepared {
    const body = rawBytes(input, scheme.name);
    if (body.length > maxBodyBytes) refuse(scheme.name, "body_too_large", `body exceeds ${maxBodyBytes} bytes`);
    const parsed = scheme.parse(headerReader(headers), body);
    attempt.claimedId = parsed.id;
    if (parsed.signatures.length > maxSignatures) {
      refuse(scheme.name, "malformed_header", `more than ${maxSignatures} signatures`);
    }
    if (parsed.timestampMs !== undefined) {
      const age = now() - parsed.timestampMs;
      if (age > toleranceMs) refuse(scheme.name, "timestamp_too_old", `timestamp is more than ${tolerance}s old`);
      if (age < -toleranceMs) refuse(scheme.name, "timestamp_in_future", `timestamp is more than ${tolerance}s ahead`);
    }
    const decodable = parsed.signatures.some((s) => s.bytes !== undefined);
    return { parsed, body, content: decodable ? scheme.signedContent(parsed, body) : undefined };
  }

  // Every candidate against every digest, with no early exit: which secret matched, and
  // where in the list, is not revealed by timing. Returns the first matching candidate.
  function firstMatch(
    prepared: Prepared,
    digests: readonly Uint8Array[],
    edPairs: readonly EdPair[],
    edResults: readonly boolean[],
  ): Uint8Array | undefined {
    let matched: Uint8Array | undefined;
    for (const digest of digests) {
      for (const candidate of prepared.parsed.signatures) {
        if (
          candidate.kind === "hmac" &&
          candidate.bytes !== undefined &&
          crypto.timingSafeEqual(digest, candidate.bytes)
        ) {
          matched ??= candidate.bytes;
        }
      }
    }
    edResults.forEach((ok, i) => {
      if (ok) matched ??= (edPairs[i] as EdPair).signature;
    });
    return matched;
  }

  function edPairsOf(prepared: Prepared): EdPair[] {
    const signatures = prepared.parsed.signatures.filter((s) => s.kind === "ed25519" && s.bytes !== undefined);
    return keys.ed25519.flatMap((key) => signatures.map((s) => ({ key, signature: s.bytes as Uint8Array })));
  }

  function hasHmacCandidate(prepared: Prepared): boolean {
    return prepared.parsed.signatures.some((s) => s.kind === "hmac" && s.bytes !== undefined);
  }

  function settle<T>(prepared: Prepared, matched: Uint8Array | undefined, attempt: Attempt): VerifiedWebhook<T> {
    if (matched === undefined) refuse(scheme.name, "no_matching_signature", "no signature matched");
    const result = new VerifiedWebhook<T>(scheme, prepared.parsed, prepared.body, matched);
    if (onEvent) {
      emit(onEvent, {
        type: "webhook.verified",
        scheme: scheme.name,
        id: result.id,
        idCovered: result.idCovered,
        durationMs: monotonicNow() - attempt.started,
      });
    }
    return result;
  }

  function rejected(error: unknown, attempt: Attempt): never {
    if (onEvent && error instanceof WebhookVerificationError) {
      emit(onEvent, {
        type: "webhook.rejected",
        scheme: scheme.name,
        id: attempt.claimedId,
        code: error.code,
        durationMs: monotonicNow() - attempt.started,
      });
    }
    throw error;
  }

  return {
    scheme,
    tolerance,
    async verify<T>(headers: HeadersInput, body: RawBody) {
      const attempt: Attempt = { started: onEvent ? monotonicNow() : 0, claimedId: undefined };
      try {
        const prepared = prepare(attempt, headers, body);
        const content = prepared.content;
        if (content === undefined) return settle<T>(prepared, undefined, attempt);
        const edPairs = edPairsOf(prepared);
        const [digests, edResults] = await Promise.all([
          hasHmacCandidate(prepared) ? Promise.all(keys.hmac.map((key) => crypto.hmac(key, content))) : [],
          Promise.all(edPairs.map((p) => crypto.ed25519Verify(p.key, content, p.signature))),
        ]);
        return settle<T>(prepared, firstMatch(prepared, digests, edPairs, edResults), attempt);
      } catch (error) {
        return rejected(error, attempt);
      }
    },
    verifySync<T>(headers: HeadersInput, body: RawBody) {
      const { hmacSync, ed25519VerifySync } = crypto;
      if (!hmacSync || !ed25519VerifySync) {
        throw new InterlockConfigError(
          `verifySync needs synchronous crypto; this runtime has ${crypto.name} crypto: use verify()`,
        );
      }
      const attempt: Attempt = { started: onEvent ? monotonicNow() : 0, claimedId: undefined };
      try {
        const prepared = prepare(attempt, headers, body);
        const content = prepared.content;
        if (content === undefined) return settle<T>(prepared, undefined, attempt);
        const edPairs = edPairsOf(prepared);
        const digests = hasHmacCandidate(prepared) ? keys.hmac.map((key) => hmacSync(key, content)) : [];
        const edResults = edPairs.map((p) => ed25519VerifySync(p.key, content, p.signature));
        return settle<T>(prepared, firstMatch(prepared, digests, edPairs, edResults), attempt);
      } catch (error) {
        return rejected(error, attempt);
      }
    },
  };
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
