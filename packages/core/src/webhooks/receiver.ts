/**
 * Replay de-duplication around a webhook handler. After a valid signature the receiver claims
 * `wh:<scheme>:<id>` in the store: the first delivery runs the handler, a duplicate does not.
 * A handler failure releases the claim so the provider's redelivery is processed; only
 * success completes it. Where the id is not covered by the signature (GitHub, Shopify,
 * Linear), the key also binds a hash of the body (Linear's without its signed `webhookTimestamp`),
 * so another valid body sent under that id cannot suppress the real delivery it belongs to, while
 * a redelivery re-signed (a rotated secret, a fresh timestamp) is still a duplicate.
 */

import { checkedClock } from "../clock.js";
import { correlated, correlationIdOf, loggable } from "../correlation.js";
import {
  BodyError,
  type BodyErrorCode,
  IdempotencyError,
  InterlockConfigError,
  type InterlockError,
  WebhookVerificationError,
} from "../errors.js";
import {
  type EventHook,
  emit,
  monotonicNow,
  type WebhookDuplicateEvent,
  type WebhookEvent,
  type WebhookHandlerFailedEvent,
  type WebhookProcessedEvent,
  type WebhookRejectedEvent,
  type WebhookStoreUnavailableEvent,
} from "../events.js";
import { sha256Hex } from "../hash.js";
import { type HeadersInput, headerReader } from "../headers.js";
import { type HttpResponse, jsonResponse, problemResponse } from "../http.js";
import { assertOptionNames, optionNames } from "../option-names.js";
import type { InterlockStore, StoredResponse } from "../store/contract.js";
import { type HeldLease, LeaseKeeper, type LeaseRenewal, renewalsOf } from "../store/lease.js";
import { asUnavailable, positiveMs, releaseClaim, storeOption, unstorable } from "../store/validate.js";
import type { RawBody } from "./body.js";
import { keyDigests, secretList } from "./keys.js";
import { WebhookRefusal } from "./refusal.js";
import { claimedIdIn, keySpaceName } from "./scheme.js";
import { noteKeySpace } from "./shared-keys.js";
import { deliveryContentOf, type VerifiedWebhook } from "./verified.js";
import {
  createClaimsVerifier,
  eventIdOf,
  type HeaderClaims,
  VERIFIER_OPTION_NAMES,
  type WebhookVerifier,
  type WebhookVerifierOptions,
} from "./verify.js";

/** The verifier's options, plus the store and how long deliveries are remembered. */
export interface WebhookReceiverOptions extends Omit<WebhookVerifierOptions, "onEvent"> {
  /** Where deliveries are claimed and remembered. */
  store: InterlockStore;
  /**
   * How long a processed delivery is remembered, in ms. Default 7 days (providers redeliver
   * for up to 3). Must be longer than twice the timestamp tolerance (the window it accepts,
   * either way of now), or a replay could slip in after its id is forgotten but while its
   * timestamp is still accepted. A delivery is remembered longer when the clock was set back
   * while its handler ran: to past the end of its timestamp window on the clock as set.
   */
  retentionMs?: number;
  /** Lease on a delivery being processed, in ms: a crashed worker blocks it this long. Default 60 s. */
  lockTtlMs?: number;
  /**
   * Renew the lease while the handler runs, every third of `lockTtlMs`. Default true (unlike the
   * idempotency engine's): a handler that outlives its lease would otherwise lose its claim, and
   * the provider's retry (Svix retries after 5 s, then 5 min) would run the handler a second time
   * beside the first, the double run a receiver exists to prevent. A crashed process stops
   * renewing, so its delivery is still free within `lockTtlMs`. Renewal stops once the delivery
   * has been held for `maxMs` (with `true`, 10 minutes, `DEFAULT_IDEMPOTENCY_RENEWAL_MAX_MS`), so
   * a handler that never returns cannot block its delivery for good: the lease then runs out and
   * a redelivery may run beside it. `false` renews nothing: a handler's claim lasts `lockTtlMs`.
   */
  extendLease?: boolean | LeaseRenewal;
  /**
   * Keeps this receiver's deliveries apart from other receivers' on a shared store. Needed by
   * receivers with different secrets (other accounts, tenants or providers under one scheme
   * name), whose delivery ids may meet, and by endpoints that can be sent the same event: one
   * provider account with an endpoint (and secret) per service, each of which must process it
   * once. 1 to 64 visible ASCII characters other than `:`.
   * Default: none, one space per scheme (a delivery processed by any receiver of that scheme
   * on the store is a duplicate to the others). A second receiver made on the same store object
   * in the same space whose secrets share no key with the first's is reported once as a process
   * warning (`INTERLOCK_SHARED_DELIVERY_KEYS`); one that shares a secret (rotation) is not.
   */
  namespace?: string;
  /** Told about every verification, duplicate, success, failure and store outage. */
  onEvent?: EventHook<WebhookEvent>;
}

/** What `receive` resolves to: the delivery was processed now, before, or is being processed. */
export type WebhookReceipt<R> =
  | {
      /** The handler ran and succeeded: acknowledge (2xx). */
      outcome: "processed";
      /** The verified delivery. */
      event: VerifiedWebhook;
      /** What the handler returned. */
      result: R;
    }
  | {
      /** Processed before: acknowledge (2xx) without running the handler. */
      outcome: "duplicate";
      /** The verified delivery. */
      event: VerifiedWebhook;
    }
  | {
      /** Another worker is processing it now: answer 409 so the provider retries later. */
      outcome: "in_flight";
      /** The verified delivery. */
      event: VerifiedWebhook;
      /** Seconds to put in `Retry-After`: the lease, `lockTtlMs`. */
      retryAfterSeconds: number;
    };

/** A claimed delivery, owned by the request processing it. */
export interface WebhookTicket {
  /** The verified delivery it claims. */
  readonly event: VerifiedWebhook;
}

/** The receiver's answer to `begin`, for adapters. */
export type WebhookDecision =
  | {
      /** First valid copy: run the handler, then `finish(ticket, { status })` or `abort(ticket)`. */
      action: "process";
      /** The verified delivery, for the handler. */
      event: VerifiedWebhook;
      /** The claim, to hand to `finish` or `abort`. */
      ticket: WebhookTicket;
    }
  | WebhookRespondDecision;

/**
 * A decision answered without running the handler: an error (a refusal, an in-flight copy, a
 * store outage) or a duplicate. `outcome` tells them apart.
 */
export type WebhookRespondDecision = WebhookErrorDecision | WebhookDuplicateDecision;

/**
 * A delivery the handler will not see because of an error: what an adapter's `onError` gets.
 * Always carries the typed error.
 */
export interface WebhookErrorDecision {
  /** Answer with `response` and do not run the handler. */
  action: "respond";
  /**
   * Why the handler does not run: the delivery was refused, a copy of it is being processed,
   * or the store could not be reached.
   */
  outcome: "rejected" | "in_flight" | "store_unavailable";
  /** The complete problem+json response to send. */
  response: HttpResponse;
  /** The verified delivery, for an in-flight copy and a store outage; undefined for a refusal. */
  event: VerifiedWebhook | undefined;
  /** The typed error behind the answer, with its `code`. */
  error: InterlockError;
}

/** A delivery processed before: acknowledged 200 without running the handler. Not an error. */
export interface WebhookDuplicateDecision {
  /** Answer with `response` and do not run the handler. */
  action: "respond";
  /** Processed before. */
  outcome: "duplicate";
  /** The complete response to send: 200 `{"duplicate": true, "id": …}`. */
  response: HttpResponse;
  /** The verified delivery. */
  event: VerifiedWebhook;
  /** No error: a duplicate is acknowledged. */
  error: undefined;
}

/** What `createWebhookReceiver` makes: verification plus de-duplication around a handler. */
export interface WebhookReceiver {
  /** The verifier it checks deliveries with. */
  readonly verifier: WebhookVerifier;
  /**
   * Verifies, de-duplicates and runs `handler` at most once per delivery. Throws
   * `WebhookVerificationError` for a refused delivery, `StoreUnavailableError` when the store
   * cannot be reached (answer 503 with its `retryAfterSeconds` in `Retry-After`: the provider
   * retries), and the handler's own error when it fails (after releasing the claim). The body
   * may be a `WebhookBodyReader`, called only once the headers pass (see `begin`).
   */
  receive<R>(
    headers: HeadersInput,
    body: RawBody | WebhookBodyReader,
    handler: (event: VerifiedWebhook) => R | Promise<R>,
  ): Promise<WebhookReceipt<Awaited<R>>>;
  /**
   * The two steps an adapter needs around a framework's own handler. Never throws for bad
   * input: refusals, duplicates, in-flight copies and an unreachable store come back as the
   * response to send (problem+json for errors, 200 for a duplicate). Given a
   * `WebhookBodyReader`, the body is read only once the headers pass `checkHeaders`, so a
   * delivery they refuse is answered unread; a `BodyError` the reader returns or throws is
   * refused as `refuse` does.
   */
  begin(headers: HeadersInput, body: RawBody | WebhookBodyReader): Promise<WebhookDecision>;
  /**
   * For adapters that read the body in a step of their own (Fastify's `preParsing`): the refusal
   * the headers alone give (the verifier's `checkHeaders`), as a decision with its
   * `webhook.rejected` event; undefined when the body is needed to decide. The next `begin` with
   * the same headers object and the bytes verifies the claims parsed here, without parsing them again.
   */
  checkHeaders(headers: HeadersInput): WebhookErrorDecision | undefined;
  /** The handler answered `status`: 2xx records the delivery as processed, anything else releases it. */
  finish(ticket: WebhookTicket, response: { status: number }): Promise<void>;
  /** The handler threw: releases the delivery so the provider's retry is processed. */
  abort(ticket: WebhookTicket): Promise<void>;
  /**
   * The provider left before the answer was whole (it closed a response the handler had begun
   * and not ended): the lease is renewed no more, so the delivery lapses within `lockTtlMs`
   * unless the handler settles it first (its later `finish` is then recorded as usual, or
   * refused by the store once the lease has lapsed). A redelivery meanwhile gets 409, then is
   * processed: a handler that stops at the close holds the delivery no longer than its lease, not
   * for `extendLease`'s `maxMs`. Does not settle the ticket; idempotent; never throws.
   */
  cutOff(ticket: WebhookTicket): void;
  /**
   * For adapters that refuse a delivery before `begin` (a body over their limit, cut off by a
   * client that went away, or that a parser already consumed): the problem+json decision, with
   * its `webhook.rejected` event. Pass the request's `headers` so the event carries its
   * correlation id, as `begin`'s do.
   */
  refuse(code: EarlyRefusalCode, message: string, headers?: HeadersInput): WebhookErrorDecision;
}

/**
 * Reads a delivery's body for `begin`, called only once its headers pass: the bytes, or the
 * `BodyError` that stopped the read (too large, cut off, already consumed by a parser).
 */
export type WebhookBodyReader = () => RawBody | BodyError | PromiseLike<RawBody | BodyError>;

/** What `read` gives, with a `BodyError` it throws given back like one it returns. */
async function readBody(read: WebhookBodyReader): Promise<RawBody | BodyError> {
  try {
    return await read();
  } catch (error) {
    if (error instanceof BodyError) return error;
    throw error;
  }
}

/** What an adapter refuses before `begin`: the body's problems, and a body sent content-encoded. */
export type EarlyRefusalCode = BodyErrorCode | "unsupported_content_encoding";

/** How long a processed delivery is remembered by default: 7 days (providers redeliver for up to 3). */
export const DEFAULT_WEBHOOK_RETENTION_MS = 7 * 24 * 60 * 60 * 1000;
/** The default lease on a delivery being processed: 60 s. */
export const DEFAULT_WEBHOOK_LOCK_TTL_MS = 60_000;

/** How long past its tolerance a timestamp in whole seconds is still accepted (just under this): see `checkWindow`. */
const WHOLE_SECOND_MS = 1000;

/** A 2xx status: a whole number from 200 to 299, and nothing else (not NaN, not "200"). */
const isSuccess = (status: unknown): boolean =>
  typeof status === "number" && Number.isInteger(status) && status >= 200 && status < 300;

/** What a processed delivery leaves in the store: only the fact that it was processed. */
const PROCESSED: StoredResponse = { status: 200, headers: [], body: new Uint8Array() };

interface Ticket extends WebhookTicket {
  readonly key: string;
  readonly token: string;
  /** When the claim was won, and how long it took (timed only when someone listens to events). */
  readonly started: number;
  readonly claimMs: number;
  readonly correlationId: string | undefined;
  /** The delivery's id as its events carry it (`eventIdOf`), read only when someone listens to events. */
  readonly id: string | undefined;
  /** The lease being renewed (`extendLease`). */
  readonly lease: HeldLease | undefined;
  settled: boolean;
}

/** What a delivery is claimed under in the store. */
export interface DeliveryClaim {
  /** The key the delivery is claimed under. */
  key: string;
  /**
   * What the claim is stored with: 32 hex digits of the SHA-256 of what the key binds (the
   * body as the scheme's `deliveryContent` gives it, with an unsigned id; the signed timestamp
   * and the body, with no id); empty when the key is the signed id alone, which already names
   * the delivery (nothing decides on a delivery's fingerprint: a copy in flight is a copy).
   */
  fingerprint: string;
}

/**
 * The store key and fingerprint for a verified delivery: `wh:<scheme>:<id>` when the id is
 * signed, `wh:<scheme>:<id>:<body hash>` when it is not (the hash of the scheme's
 * `deliveryContent`: Linear's body without its `webhookTimestamp`), `wh:<scheme>:signed:<hash of the
 * timestamp and body>` when there is none; in a receiver's `namespace`, `wh@<namespace>:` in place of `wh:`.
 */
export async function deliveryKey(event: VerifiedWebhook, namespace?: string): Promise<DeliveryClaim> {
  return claimOf(event, namespace);
}

/**
 * `deliveryKey`, without a promise for a signed id that goes into the key as it is (almost
 * every delivery): no signature to hash, so the receiver claims without waiting a turn.
 */
function claimOf(event: VerifiedWebhook, namespace: string | undefined): DeliveryClaim | Promise<DeliveryClaim> {
  const space = keySpace(event.scheme, namespace);
  const id = event.id;
  if (id !== undefined && event.idCovered && storableAsIs(id)) return { key: `${space}:${id}`, fingerprint: "" };
  return hashedClaim(event, space, id);
}

async function hashedClaim(event: VerifiedWebhook, space: string, id: string | undefined): Promise<DeliveryClaim> {
  if (id !== undefined && event.idCovered) return { key: `${space}:${await keyPart(id)}`, fingerprint: "" };
  if (id === undefined) {
    // No id: the delivery is what its signature covers, its timestamp and body. Not the
    // signature itself: a sender rotating its secret signs with old and new, and a copy that
    // carries only one of the two (a replay trimmed, a redelivery) is still the same delivery.
    const fingerprint = (await sha256Hex([`${event.timestamp ?? ""}:`, event.body])).slice(0, 32);
    return { key: `${space}:signed:${fingerprint}`, fingerprint };
  }
  // An unsigned id binds the body, not the signature: a redelivery re-signed with a rotated
  // secret, or with a fresh timestamp, is the same delivery, and must stay a duplicate. The body
  // as the scheme identifies a delivery by (Linear's without the timestamp it signs in it), and
  // whole for every other scheme, as keys recorded before were made.
  const fingerprint = (await sha256Hex(deliveryContentOf(event))).slice(0, 32);
  return { key: `${space}:${await keyPart(id)}:${fingerprint}`, fingerprint };
}

/** The longest delivery id a key holds as it is: every provider's ids are far shorter. */
const MAX_PLAIN_ID_LENGTH = 256;

/**
 * The id as it goes into the key: as it is, or `#` and its hash when no store key could hold it
 * (too long, a NUL or a lone surrogate), which would otherwise fail every claim, and so every
 * redelivery, as the store being down. (JSON keeps lone surrogates apart before hashing.)
 */
async function keyPart(id: string): Promise<string> {
  if (storableAsIs(id)) return id;
  return `#${await sha256Hex([JSON.stringify(id)])}`;
}

const storableAsIs = (id: string): boolean => id.length <= MAX_PLAIN_ID_LENGTH && !unstorable(id);

/**
 * The start of every key of a scheme's deliveries. `wh@` starts no key without a namespace
 * (they start `wh:`), and neither a namespace nor a scheme's name holds a `:` (`keySpaceName`):
 * no two (namespace, scheme) spaces share a key.
 */
function keySpace(scheme: string, namespace: string | undefined): string {
  return namespace === undefined ? `wh:${scheme}` : `wh@${namespace}:${scheme}`;
}

function namespaceOption(value: string | undefined): string | undefined {
  return value === undefined ? undefined : keySpaceName("namespace", value);
}

/** The receiver's options its verifier takes (the verifier refuses any other). */
function verifierOptions(options: WebhookReceiverOptions): WebhookVerifierOptions {
  const picked: Record<string, unknown> = {};
  for (const name of VERIFIER_OPTION_NAMES) {
    if (name in options) picked[name] = (options as unknown as Record<string, unknown>)[name];
  }
  return picked as unknown as WebhookVerifierOptions;
}

/** The options `createWebhookReceiver` takes beyond its verifier's. */
const RECEIVER_OWN_OPTION_NAMES = optionNames<Omit<WebhookReceiverOptions, keyof WebhookVerifierOptions>>({
  store: true,
  retentionMs: true,
  lockTtlMs: true,
  extendLease: true,
  namespace: true,
});

/**
 * Every option `createWebhookReceiver` takes: adapters add their own to check an app's options whole.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export const WEBHOOK_RECEIVER_OPTION_NAMES: readonly string[] = [
  ...VERIFIER_OPTION_NAMES,
  ...RECEIVER_OWN_OPTION_NAMES,
];

/**
 * Makes a receiver: verification, then a claim in the store so each delivery's handler runs
 * once. Refuses (`InterlockConfigError`) a `retentionMs` not longer than twice the tolerance and a second,
 * and a scheme whose name cannot name a key space (`keySpaceName`). Warns once when another
 * receiver on this store object shares its key space with secrets that share no key with its
 * own (`noteKeySpace`).
 */
export function createWebhookReceiver(options: WebhookReceiverOptions): WebhookReceiver {
  assertOptionNames("createWebhookReceiver()", options, WEBHOOK_RECEIVER_OPTION_NAMES);
  const { onEvent } = options;
  const store = storeOption(options.store);
  const retentionMs = positiveMs("retentionMs", options.retentionMs, DEFAULT_WEBHOOK_RETENTION_MS);
  const lockTtlMs = positiveMs("lockTtlMs", options.lockTtlMs, DEFAULT_WEBHOOK_LOCK_TTL_MS);
  // On unless turned off: a delivery's handler must not run twice at once (see `extendLease`).
  const leases = new LeaseKeeper(store, lockTtlMs, renewalsOf(options.extendLease, lockTtlMs));
  const namespace = namespaceOption(options.namespace);
  const claimsVerifier = createClaimsVerifier(verifierOptions(options));
  const { verifier } = claimsVerifier;
  // Any scheme object, the user's own included: its name goes into every key.
  const schemeName = keySpaceName("the scheme's name", verifier.scheme.name);
  // The window is two-sided: a delivery signed `toleranceSeconds` ahead of the clock is accepted
  // until `toleranceSeconds` after its time, so for twice the tolerance after it was first received,
  // and a second more: a timestamp in whole seconds is compared with now rounded down (as the
  // providers' own libraries do), which accepts it until just under a second past its edge.
  if (retentionMs <= 2 * verifier.toleranceSeconds * 1000 + WHOLE_SECOND_MS) {
    throw new InterlockConfigError(
      `retentionMs (${retentionMs}) must be longer than twice toleranceSeconds (${verifier.toleranceSeconds}s, ` +
        "either way) plus one second: otherwise a delivery replayed after its id is forgotten could still pass the timestamp check",
    );
  }
  noteKeySpace(
    store,
    keySpace(schemeName, namespace),
    keyDigests(verifier.scheme, secretList(options.secret)),
    schemeName,
    namespace,
  );
  const retryAfterSeconds = Math.ceil(lockTtlMs / 1000);
  const wallNow = checkedClock("now", options.now) ?? Date.now; // the clock the verifier checks timestamps on
  const toleranceMs = verifier.toleranceSeconds * 1000;

  /**
   * How long a processed delivery is remembered: the retention, which covers its timestamp
   * window from when it was verified; or, when the clock was set back while the handler ran,
   * longer, to past that window's end on the clock the timestamp is checked against.
   */
  function retentionFor(event: VerifiedWebhook): number {
    if (event.timestamp === undefined) return retentionMs;
    return Math.max(retentionMs, Math.ceil(event.timestamp * 1000 + toleranceMs + WHOLE_SECOND_MS - wallNow()) + 1);
  }

  /** The answer to an error: its problem+json, with the error behind it. */
  function respondError(
    outcome: WebhookErrorDecision["outcome"],
    error: InterlockError,
    event?: VerifiedWebhook,
  ): WebhookErrorDecision {
    return { action: "respond", outcome, response: problemResponse(error), event, error };
  }

  /** The answer to a delivery processed before: 200, no error. */
  function respondDuplicate(event: VerifiedWebhook): WebhookDuplicateDecision {
    const response = jsonResponse(200, { duplicate: true, id: event.id ?? null });
    return { action: "respond", outcome: "duplicate", response, event, error: undefined };
  }

  // Fastify checks a delivery's headers in preParsing, then begins it in preHandler with the same
  // headers object and the bytes read meanwhile: the claims the check parsed are kept for that
  // begin, not parsed again (as a body reader's are). One delivery's are kept: another's check in
  // between only means they are parsed again. The window is checked again on use.
  let checkedHeaders: HeadersInput | undefined;
  let checkedClaims: HeaderClaims | undefined;

  function checkHeaders(headers: HeadersInput): WebhookErrorDecision | undefined {
    const claims = claimsVerifier.checkClaims(headers);
    if (claims instanceof WebhookRefusal) return respondError("rejected", claims.error);
    checkedHeaders = claims === undefined ? undefined : headers;
    checkedClaims = claims;
    return undefined;
  }

  function begin(headers: HeadersInput, input: RawBody | WebhookBodyReader): Promise<WebhookDecision> {
    if (typeof input === "function") return readThenDecide(headers, input);
    if (headers !== checkedHeaders) return decide(headers, input);
    const claims = checkedClaims;
    checkedHeaders = checkedClaims = undefined;
    return decide(headers, input, claims);
  }

  /**
   * Reads the body only once the headers pass: a delivery they refuse costs no body. The claims
   * the headers gave are verified with the body, not parsed from the headers a second time.
   */
  async function readThenDecide(headers: HeadersInput, read: WebhookBodyReader): Promise<WebhookDecision> {
    const claims = claimsVerifier.checkClaims(headers);
    if (claims instanceof WebhookRefusal) return respondError("rejected", claims.error);
    const body = await readBody(read);
    return body instanceof BodyError ? refuse(body.code, body.message, headers) : decide(headers, body, claims);
  }

  async function decide(headers: HeadersInput, body: RawBody, claims?: HeaderClaims): Promise<WebhookDecision> {
    const checking = claimsVerifier.checkClaimed(headers, body, claims);
    const checked = checking instanceof Promise ? await checking : checking;
    if (!checked.ok) return respondError("rejected", checked.error);
    const event = checked;
    const delivery = claimOf(event, namespace);
    const { key, fingerprint } = delivery instanceof Promise ? await delivery : delivery;
    const correlationId = onEvent ? correlationIdOf(headerReader(headers)) : undefined;
    const id = onEvent ? eventIdOf(event) : undefined;
    const claimStarted = onEvent ? monotonicNow() : 0;
    let claim: Awaited<ReturnType<InterlockStore["claim"]>>;
    try {
      claim = await store.claim(key, { fingerprint, lockTtlMs });
    } catch (error) {
      // A store set up wrong throws here, its error as it is: no outage, no 503 to retry.
      const unavailable = asUnavailable(store, error);
      if (onEvent) {
        const storeMs = monotonicNow() - claimStarted;
        const down: WebhookStoreUnavailableEvent = {
          type: "webhook.store_unavailable",
          scheme: event.scheme,
          id,
          operation: "claim",
          storeMs,
          error: unavailable.message,
        };
        emit(onEvent, correlated(down, correlationId));
      }
      return respondError("store_unavailable", unavailable, event);
    }
    const claimed = onEvent ? monotonicNow() : 0;
    if (claim.state === "claimed") {
      const ticket: Ticket = {
        event,
        key,
        token: claim.token,
        started: claimed,
        claimMs: claimed - claimStarted,
        correlationId,
        id,
        lease: leases.hold(key, claim.token),
        settled: false,
      };
      return { action: "process", event, ticket };
    }
    if (onEvent) {
      const duplicate: WebhookDuplicateEvent = {
        type: "webhook.duplicate",
        scheme: event.scheme,
        id,
        state: claim.state,
        storeMs: claimed - claimStarted,
      };
      emit(onEvent, correlated(duplicate, correlationId));
    }
    if (claim.state === "completed") return respondDuplicate(event);
    // The same code as an idempotent request's copy (one meaning: retry later), titled for a delivery.
    const inFlight = new IdempotencyError("request_in_flight", "this delivery is being processed; retry later", {
      retryAfterSeconds,
      title: "A copy of this delivery is still being processed",
    });
    return respondError("in_flight", inFlight, event);
  }

  /**
   * Settles a ticket once, stopping its lease's renewal: the first `finish` or `abort` wins,
   * later ones do nothing. `receive` settles through them too, however its handler ends.
   */
  function settle(publicTicket: WebhookTicket): Ticket | undefined {
    const ticket = publicTicket as Ticket;
    if (ticket.settled) return undefined;
    ticket.settled = true;
    leases.release(ticket.lease);
    return ticket;
  }

  /** Releases the claim of a delivery whose handler threw (`status` undefined) or answered `status`, outside 2xx. */
  async function release(ticket: Ticket, status?: number): Promise<void> {
    const releasing = onEvent ? monotonicNow() : 0;
    const { released } = await releaseClaim(store, ticket.key, ticket.token);
    if (!onEvent) return;
    const now = monotonicNow();
    const failed: WebhookHandlerFailedEvent = {
      type: "webhook.handler_failed",
      scheme: ticket.event.scheme,
      id: ticket.id,
      durationMs: now - ticket.started,
      released,
      claimMs: ticket.claimMs,
      storeMs: now - releasing,
    };
    if (status !== undefined) failed.status = status;
    emit(onEvent, correlated(failed, ticket.correlationId));
  }

  async function finish(publicTicket: WebhookTicket, response: { status: number }): Promise<void> {
    const ticket = settle(publicTicket);
    if (!ticket) return;
    // Success is tested for, not failure: NaN, undefined or "200" fails every comparison, and
    // a `status < 200 || status >= 300` test recorded such a delivery as processed.
    if (!isSuccess(response.status)) return release(ticket, response.status);
    // The handler succeeded: the delivery is processed and is acknowledged even if the
    // record cannot be written (a redelivery may then run again: at-least-once, never lost).
    const completing = onEvent ? monotonicNow() : 0;
    // A store that failed, thrown or rejected, recorded nothing (caught here: no promise of
    // `.catch` on every delivery).
    let recorded: boolean;
    try {
      recorded = await store.complete(ticket.key, ticket.token, PROCESSED, { ttlMs: retentionFor(ticket.event) });
    } catch {
      recorded = false;
    }
    if (!onEvent) return;
    const now = monotonicNow();
    const processed: WebhookProcessedEvent = {
      type: "webhook.processed",
      scheme: ticket.event.scheme,
      id: ticket.id,
      durationMs: now - ticket.started,
      recorded,
      claimMs: ticket.claimMs,
      storeMs: now - completing,
    };
    emit(onEvent, correlated(processed, ticket.correlationId));
  }

  async function abort(publicTicket: WebhookTicket): Promise<void> {
    const ticket = settle(publicTicket);
    if (ticket) await release(ticket);
  }

  function cutOff(publicTicket: WebhookTicket): void {
    // Not `settle`: the handler may still end its answer, which `finish` records.
    leases.release((publicTicket as Ticket | undefined)?.lease);
  }

  function refuse(code: EarlyRefusalCode, message: string, headers?: HeadersInput): WebhookErrorDecision {
    const error = new WebhookVerificationError(code, message, verifier.scheme.name);
    if (onEvent) {
      // The id it claims, unverified, read from the scheme's id headers alone as the verifier's
      // refusals read it: refused before `begin`, the delivery's headers were never parsed.
      const read = headers === undefined ? undefined : headerReader(headers);
      const rejected: WebhookRejectedEvent = {
        type: "webhook.rejected",
        scheme: verifier.scheme.name,
        id: read && loggable(claimedIdIn(verifier.scheme, read)),
        code,
        durationMs: 0,
      };
      emit(onEvent, correlated(rejected, read && correlationIdOf(read)));
    }
    return respondError("rejected", error);
  }

  return {
    verifier,
    begin,
    checkHeaders,
    finish,
    abort,
    cutOff,
    refuse,
    async receive<R>(
      headers: HeadersInput,
      body: RawBody | WebhookBodyReader,
      handler: (event: VerifiedWebhook) => R | Promise<R>,
    ): Promise<WebhookReceipt<Awaited<R>>> {
      const decision = await begin(headers, body);
      if (decision.action === "respond") {
        if (decision.outcome === "duplicate") return { outcome: "duplicate", event: decision.event };
        // An in-flight copy was verified before its claim: its event is always set.
        if (decision.outcome === "in_flight")
          return { outcome: "in_flight", event: decision.event as VerifiedWebhook, retryAfterSeconds };
        throw decision.error;
      }
      let result: Awaited<R>;
      try {
        result = await handler(decision.event);
      } catch (error) {
        await abort(decision.ticket);
        throw error;
      }
      await finish(decision.ticket, { status: 200 });
      return { outcome: "processed", event: decision.event, result };
    },
  };
}
