/**
 * A user's tokens, kept server-side under the app's session id: refreshed before they expire (or
 * when a resource server refuses them), one refresh at a time per session in any number of
 * processes, and written back compare-and-set. With rotating refresh tokens this matters twice:
 * two refreshes with the same refresh token look like theft to the server, which then revokes
 * the whole grant; and a refresh whose new refresh token is not stored loses the session (so a
 * refresh the store cannot take is kept in memory and written back later, see `Unwritten`).
 * Refresh tokens never leave the store unencrypted.
 */

import { assertOptionNames, InterlockConfigError, optionNames } from "@interlock/core";
import * as oauth from "oauth4webapi";
import { clientInternals, type OAuthClient, TOKEN_RESPONSE_CHECKS } from "./client.js";
import { clientSpace, sha256Hex } from "./client-space.js";
import type { EncryptionKey, Keyring } from "./encryption.js";
import { eventCode, LoginRequiredError, type LoginRequiredReason, OAuthError, OAuthResponseError } from "./errors.js";
import { assertSameIdentity } from "./id-token.js";
import { type GrantTokens, revocationEvent, revokeGrant, revokeOrphans, tokensAnswered } from "./revocation.js";
import { isEntryKey, type TokenStore } from "./store/contract.js";
import { exclusive, type HeldLock, SingleFlight } from "./store/lock.js";
import { defaultTokenStore } from "./store/memory.js";
import {
  DEFAULT_LOCK_TTL_MS,
  type GetAccessTokenOptions,
  isTransient,
  lockTtlOption,
  prefixOption,
  rejectedOption,
  staleOrThrow,
  type TokenSource,
} from "./token-source.js";
import {
  assertStoredTokens,
  type Freshness,
  freshnessOptions,
  type IdTokenClaims,
  isDue,
  isExpired,
  publicTokens,
  RecordCodec,
  type StoredTokens,
  scheduleRefresh,
  type TokenSet,
  tokenSetFrom,
} from "./tokens.js";
import { keptLateAnswer, type LateAnswer, lateAnswerWithin } from "./transport.js";

/** How session tokens are sealed, kept and refreshed. */
export interface SessionTokensOptions extends Partial<Freshness> {
  /**
   * Keys that seal every token set in the store (AES-256-GCM); required, so refresh tokens are
   * never kept in clear. See `createKeyring` and `generateEncryptionKey`.
   */
  encryptionKeys: readonly EncryptionKey[] | Keyring;
  /** Where token sets are kept. Default: a memory store (one process). Use a shared store for several instances. */
  store?: TokenStore;
  /** How long a session's tokens are kept after their last write (login or refresh), in ms. Default 30 days. */
  sessionTtlMs?: number;
  /**
   * Lease on the lock a refresh holds across processes, in ms: at least the longest a refresh can
   * take (the client's `timeoutMs` for the token request, plus, for the store, 8 times its
   * `operationTimeoutMs` and 1 s), or `createSessionTokens` refuses it. Default 30 s, or that, if longer.
   */
  lockTtlMs?: number;
  /** Put before every store key. Default `"oauth:"`. */
  keyPrefix?: string;
}

/** What `revoke` did at the server. */
export interface RevokeResult {
  /**
   * True when the authorization server revoked the refresh token or the access token (RFC 7009),
   * or answered `invalid_token` for one (it is no longer valid there); false when it has no
   * revocation endpoint, or revokes neither type of token (`unsupported_token_type`).
   */
  revoked: boolean;
}

/** Users' tokens kept server-side under your session ids, from `createSessionTokens`. */
export interface SessionTokens {
  /** Keeps a login's tokens under `sessionId` (replacing any there). */
  save(sessionId: string, tokens: TokenSet): Promise<void>;
  /**
   * The session's tokens, without refreshing: as stored, or as refreshed here when the store has
   * not taken them yet (they are written back first); undefined when there are none.
   */
  get(sessionId: string): Promise<TokenSet | undefined>;
  /** A valid access token for the session, refreshed when due; `LoginRequiredError` when there is none. */
  getAccessToken(sessionId: string, options?: GetAccessTokenOptions): Promise<string>;
  /** Refreshes now (unless another caller just did) and returns the new token set. */
  refresh(sessionId: string): Promise<TokenSet>;
  /**
   * Logs the session out of the authorization server: deletes its tokens, then revokes the
   * refresh token and the access token (RFC 7009). Nothing stored: `{ revoked: false }`. The
   * tokens are deleted here whatever the server answers; an error means revoking them there
   * failed (retries included), and the server may still honour them.
   */
  revoke(sessionId: string): Promise<RevokeResult>;
  /** The session as a `TokenSource`, for `authorizedFetch`. */
  tokens(sessionId: string): TokenSource;
}

/** How long a session's tokens are kept by default after their last write: 30 days. */
export const DEFAULT_SESSION_TTL_MS = 30 * 24 * 60 * 60_000;
const MAX_SESSION_ID_LENGTH = 256;

/**
 * Writes of unwritten tokens per call before they wait for the next one. A write is lost to
 * another writer's only when that writer wrote the old tokens again (each loss is someone's write).
 */
const WRITE_BACK_ATTEMPTS = 3;

/**
 * Store calls a refresh makes under its lock before the token request: taking the lock, reading
 * the session, and one write of tokens an earlier refresh here left unwritten (see `Unwritten`).
 */
const CALLS_BEFORE_REQUEST = 3;

/**
 * Store calls that write a refresh's new tokens back (`writeBack`), the last of which must land
 * before the lock's lease ends: up to `WRITE_BACK_ATTEMPTS` writes, a lost one read before the next.
 */
const WRITE_BACK_CALLS = 2 * WRITE_BACK_ATTEMPTS - 1;

/** This process's own time under the lock besides those: sealing the tokens, timers late on a busy event loop. */
const OWN_WORK_MS = 1_000;

/** The longest a store call is taken to last when the store does not say: the Redis and PostgreSQL stores' default. */
const UNSTATED_STORE_CALL_MS = 2_000;

/**
 * The longest one call to `store` lasts, in ms: its `operationTimeoutMs`, after which it
 * rejects. A store that does not say (one of the app's own) is taken to be as bounded as the
 * Redis and PostgreSQL stores by default.
 */
function storeCallMs(store: TokenStore): number {
  const stated = store.operationTimeoutMs;
  if (stated === undefined) return UNSTATED_STORE_CALL_MS;
  if (typeof stated !== "number" || !Number.isFinite(stated) || stated < 0) {
    throw new InterlockConfigError(
      `the ${store.name} token store's operationTimeoutMs must be a number of ms, 0 or more`,
    );
  }
  return stated;
}

/**
 * How long, in ms, writing a refresh's new tokens back can take under its lock (`WRITE_BACK_CALLS`
 * calls to a store whose calls last `callMs` at most, and this process's own work): a refresh
 * answered later than that before the lease ends is given up (see `settleLate`).
 */
const writeBackMs = (callMs: number): number => OWN_WORK_MS + WRITE_BACK_CALLS * callMs;

/**
 * The refresh lock's lease: `lockTtlMs`, refused when shorter than the longest a refresh can take
 * (one token request, sent once and bounded by the client's timeouts, and the store calls around
 * it, each bounded by the store's `operationTimeoutMs`: `callMs`); by default 30 s, or that if
 * longer. A lease that ended mid-refresh, before the new refresh token is written, would let
 * another process take the lock, read the old one and send it: with rotation the server sees it
 * twice and revokes the grant. The configuration is refused rather than the refresh cut off when
 * the lease ends: a token request aborted after it left may have rotated the refresh token at the
 * server already, and the answer lost with it held the only copy of the new one, so the session
 * would end all the same. (The refresh fetches nothing else: discovery is done before the lock,
 * and the ID token, received over TLS from the token endpoint, needs no JWKS.)
 */
function refreshLockTtl(lockTtlMs: number | undefined, longestRequestMs: number, callMs: number): number {
  const storeMs = CALLS_BEFORE_REQUEST * callMs + writeBackMs(callMs);
  const neededMs = longestRequestMs + storeMs;
  if (!Number.isFinite(neededMs)) {
    throw new InterlockConfigError(
      "session tokens need a bounded token request: the client's retry turns off both timeoutMs and deadlineMs, so a refresh could outlast any lockTtlMs",
    );
  }
  if (lockTtlMs === undefined) return Math.max(DEFAULT_LOCK_TTL_MS, Math.ceil(neededMs));
  const checked = lockTtlOption(lockTtlMs);
  if (checked < neededMs) {
    throw new InterlockConfigError(
      `lockTtlMs (${checked} ms) must be at least the longest a refresh can take: ${longestRequestMs} ms for ` +
        `the token request (its attempt timeout, retry.timeoutMs when set, else the client's timeoutMs; or retry.deadlineMs if shorter) ` +
        `plus ${Math.ceil(storeMs)} ms for the store (${CALLS_BEFORE_REQUEST + WRITE_BACK_CALLS} calls of up to ${callMs} ms, ` +
        `its operationTimeoutMs, and ${OWN_WORK_MS} ms). Raise lockTtlMs, or lower timeoutMs or the store's operationTimeoutMs`,
    );
  }
  return checked;
}

/** Why a session without a refresh token ends, and what its `LoginRequiredError` says. */
type WithoutRefresh = "expired" | "token_rejected";
const WITHOUT_REFRESH: Record<WithoutRefresh, string> = {
  expired: "the access token expired",
  token_rejected: "a resource server refused the access token",
};

/** Why a refresh that failed ends the session, and what its `LoginRequiredError` says. */
type EndingRefresh = "refresh_rejected" | "identity_changed" | "refresh_answer_refused";
const ENDING_REFRESH: Record<EndingRefresh, string> = {
  refresh_rejected: "the authorization server refused the refresh token",
  identity_changed: "the refresh answered with an ID token about another user or authentication",
  refresh_answer_refused:
    "the refresh's answer was refused after the authorization server rotated the refresh token: the one kept is used up",
};

/**
 * The refresh failures no later refresh can mend: `invalid_grant` (the refresh token expired, was
 * revoked or already used), an ID token that is not about the session's user and authentication
 * (`id_token_mismatch`), and any other refusal of an answer (`answered`, its tokens) that brings a
 * new refresh token: the server rotated, so the one kept (`used`) is used up, and sent again it
 * would look like theft (RFC 9700 §4.14.2). Kept, a session whose refresh token does not rotate
 * would answer that error on every call until it expired; its new tokens were never stored.
 */
function endingRefreshError(
  error: unknown,
  answered: GrantTokens | undefined,
  used: string | undefined,
): EndingRefresh | undefined {
  if (error instanceof OAuthError && error.code === "invalid_grant") return "refresh_rejected";
  if (error instanceof OAuthResponseError && error.code === "id_token_mismatch") return "identity_changed";
  const rotated = answered?.refreshToken !== undefined && answered.refreshToken !== used;
  return rotated ? "refresh_answer_refused" : undefined;
}

/** A session's store keys (see `sessionKeys`). */
interface SessionKeys {
  /** Its tokens. */
  tokens: string;
  /** Its refresh lock. */
  lock: string;
}

const noSession = () => new LoginRequiredError("no_session", "no tokens for this session");

interface Current {
  tokens: StoredTokens;
  version: string;
}

/**
 * A refresh's new tokens that the store has not taken yet (it failed, or timed out). The server
 * has already rotated the refresh token, so these are the only copy of the session's grant: the
 * old ones in the store would be answered as a reuse, and the grant revoked. This process keeps
 * them in memory, one set per session, hands them out, refreshes with them, and writes them back
 * compare-and-set on the session's next call. They are forgotten once written, once the session
 * is gone from the store (logged out, ended, expired: they are then revoked at the server, see
 * `letGo`), or once another write took its place.
 */
interface Unwritten {
  tokens: StoredTokens;
  /** The version of the store's entry these tokens replace. */
  replaces: string;
  /**
   * The refresh token the refresh used up, when the server rotated it: an entry that still holds
   * it is older than these tokens. Undefined when the server kept it (RFC 6749 §6 lets it): every
   * later entry holds it too, and only the version tells an older one.
   */
  usedRefreshToken: string | undefined;
  /** When they would have expired in the store, had they been written (ms since the epoch). */
  keptUntil: number;
}

/**
 * A session this process ended (its refresh refused, its token expired: see `endSession`) whose
 * store entry the store failed to delete. That entry is no session here until the store drops it
 * or another write replaces it (a login saved, another process's refresh): its refresh token may
 * be used up (rotated by the server in an answer this client refused), and sent again it would
 * look like theft and revoke the grant (RFC 9700 §4.14.2). Other processes read the entry until
 * the store takes the delete, which this process tries again each time it reads the entry.
 */
interface Ended {
  /** The version of the entry ended. */
  version: string;
  /** When the store drops that entry at the latest (ms since the epoch): it was written before it ended. */
  keptUntil: number;
}

/** Whether `held` replaces the store's entry `stored`: the one it was refreshed from, or a copy of it written since. */
const replacesEntry = (held: Unwritten, stored: Current): boolean =>
  stored.version === held.replaces ||
  (held.usedRefreshToken !== undefined && stored.tokens.refreshToken === held.usedRefreshToken);

const SESSION_TOKENS_OPTION_NAMES = optionNames<SessionTokensOptions>({
  encryptionKeys: true,
  store: true,
  sessionTtlMs: true,
  lockTtlMs: true,
  keyPrefix: true,
  refreshMarginMs: true,
  assumedLifetimeMs: true,
});

/**
 * Keeps users' tokens server-side, sealed with `encryptionKeys` (required), and refreshes them
 * when due, one refresh at a time per session in any number of processes.
 */
export function createSessionTokens(client: OAuthClient, options: SessionTokensOptions): SessionTokens {
  assertOptionNames("createSessionTokens()", options, SESSION_TOKENS_OPTION_NAMES);
  const internals = clientInternals(client);
  if (options?.encryptionKeys === undefined) {
    throw new InterlockConfigError("session tokens need encryptionKeys: refresh tokens are never stored in clear");
  }
  const codec = new RecordCodec(options.encryptionKeys);
  const freshness = freshnessOptions(options);
  const prefix = prefixOption(options.keyPrefix);
  const store = options.store ?? defaultTokenStore(internals);
  const callMs = storeCallMs(store);
  const lockTtlMs = refreshLockTtl(options.lockTtlMs, internals.longestSingleRequestMs, callMs);
  const sessionTtlMs = options.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS;
  if (!Number.isSafeInteger(sessionTtlMs) || sessionTtlMs <= 0) {
    throw new InterlockConfigError("sessionTtlMs must be a positive whole number of ms");
  }
  const flights = new SingleFlight<StoredTokens>();
  /** Tokens refreshed here that the store has not taken yet, by store key, oldest first (see `Unwritten`). */
  const unwritten = new Map<string, Unwritten>();
  /** Unwritten tokens let go of and revoked at the server: two calls that find their session gone revoke them once. */
  const revoking = new WeakSet<Unwritten>();
  /** Sessions this process ended that the store failed to delete, by store key, oldest first (see `Ended`). */
  const ended = new Map<string, Ended>();

  // Whose sessions these are (see client-space.ts): set before any key is made (`inSpace`).
  const spaceOf = clientSpace(client);
  let space = "";
  const inSpace = async () => {
    if (space === "") space = await spaceOf;
  };
  /**
   * Whether `sessionId` can be a saved session's id: not over 256 characters, no NUL or lone
   * surrogate (one that is comes from a forged cookie, not from a bug of the app's, which a missing
   * or empty id is). Lone surrogates would also hash like U+FFFD: two ids, one session.
   */
  const isSessionId = (sessionId: string): boolean => {
    if (typeof sessionId !== "string" || sessionId.length === 0) {
      throw new InterlockConfigError("a session id must be a non-empty string");
    }
    return sessionId.length <= MAX_SESSION_ID_LENGTH && isEntryKey(sessionId);
  };
  /**
   * A session's store keys, its tokens' and its refresh lock's. They hold the id's SHA-256, never
   * the id: it is the app's session cookie, a credential, and keys are no secret (MONITOR, slow
   * logs, the store's own errors show them).
   */
  const sessionKeys = async (sessionId: string): Promise<SessionKeys> => {
    const hashed = await sha256Hex(sessionId);
    return { tokens: `${prefix}session:${space}:${hashed}`, lock: `${prefix}lock:session:${space}:${hashed}` };
  };
  /** The keys of a session id looked up; undefined for one no saved session can have. */
  const lookupKeysOf = async (sessionId: string): Promise<SessionKeys | undefined> =>
    isSessionId(sessionId) ? sessionKeys(sessionId) : undefined;
  /** The keys of a session id saved under: one no session can have is the app's mistake. */
  const keysOf = (sessionId: string): Promise<SessionKeys> => {
    if (!isSessionId(sessionId)) {
      throw new InterlockConfigError(
        `a session id must be 1..${MAX_SESSION_ID_LENGTH} characters, without NUL or lone surrogates`,
      );
    }
    return sessionKeys(sessionId);
  };

  async function readStored(key: string): Promise<Current | undefined> {
    const entry = await store.get(key);
    if (entry === undefined) return undefined;
    return { tokens: assertStoredTokens(await codec.read(key, entry.value)), version: entry.version };
  }

  /**
   * The session's tokens: the store's, or the unwritten ones this process holds in their place,
   * written back first (and, while the store fails the write, handed out from memory).
   */
  async function read(key: string | undefined): Promise<Current | undefined> {
    if (key === undefined) return undefined;
    const stored = await readStored(key);
    forgetExpired();
    if (await endedHere(key, stored)) return undefined;
    const held = unwritten.get(key);
    if (held === undefined) return stored;
    if (stored === undefined || !replacesEntry(held, stored)) {
      // Logged out or ended (another process), or written over since: by a save, by a refresh in
      // another process, or by our own write that reached the store after it failed. The store is the truth.
      letGo(key, held, stored);
      return stored;
    }
    try {
      return await writeBack(key, held, stored.version);
    } catch (error) {
      if (!isTransient(error)) throw error;
      return { tokens: held.tokens, version: stored.version };
    }
  }

  /**
   * Writes `held` over the store's entry it replaces (version `expect`), compare-and-set. Lost to
   * another writer, the store is the truth, unless its entry still holds the refresh token `held`'s
   * refresh used up: then it is older (another call here wrote the unwritten tokens this refresh
   * started from, or the app saved the old ones again), and `held` goes over it. Rejects when the
   * store fails; `held` stays.
   */
  async function writeBack(key: string, held: Unwritten, expect: string): Promise<Current> {
    let version = expect;
    for (let attempt = 1; ; attempt++) {
      const written = await store.set(key, await codec.write(key, held.tokens), {
        ttlMs: sessionTtlMs,
        expect: version,
      });
      if (written !== undefined) {
        forget(key, held);
        return { tokens: held.tokens, version: written };
      }
      const stored = await readStored(key);
      if (stored === undefined || !replacesEntry(held, stored)) {
        // The session was revoked (logged out) or ended meanwhile (while the refresh was on its
        // way, say), or another process refreshed it (our lease ran out): the compare-and-set
        // kept the store from being overwritten.
        letGo(key, held, stored);
        if (stored === undefined) throw noSession();
        return stored;
      }
      if (attempt === WRITE_BACK_ATTEMPTS) return { tokens: held.tokens, version: stored.version };
      version = stored.version;
    }
  }

  /** Holds a refresh's new tokens until the store takes them: the session's newest, replacing any it held. */
  function hold(key: string, held: Unwritten): void {
    unwritten.delete(key); // re-inserted last: the map stays in the order of keptUntil
    unwritten.set(key, held);
  }

  /** Forgets the session's unwritten tokens; with `held`, only if they are still those (not newer ones). */
  function forget(key: string, held?: Unwritten): void {
    if (held === undefined || unwritten.get(key) === held) unwritten.delete(key);
  }

  /**
   * Forgets `held`, which does not replace the store's entry `stored` (the store is the truth).
   * With no entry left (logged out, ended), nothing will ever hold these tokens, yet the server
   * issued them, and a rotating one honours no other refresh token of the grant: they are revoked
   * there (RFC 7009), in the background, as a login's are when it ends without them. Not so when
   * another write took their place: revoking a token may end its whole grant (RFC 7009 §2.1; some
   * servers revoke every token the user gave the client), which may be the entry's now.
   */
  function letGo(key: string, held: Unwritten, stored: Current | undefined): void {
    forget(key, held);
    if (stored !== undefined || revoking.has(held)) return;
    revoking.add(held);
    void revokeOrphans(internals, held.tokens, "session_ended");
  }

  /** Forgets unwritten tokens, and ended sessions, past the session's lifetime: the store would have dropped them too. */
  function forgetExpired(): void {
    const now = internals.now();
    for (const kept of [unwritten, ended]) {
      for (const [key, { keptUntil }] of kept) {
        if (keptUntil > now) break;
        kept.delete(key);
      }
    }
  }

  /**
   * Ends a session whose tokens can no longer be used: deleted (if still `version`), and
   * `LoginRequiredError`, its `cause` the refusal that ended it, else the store's error. Ended here
   * even when the store fails the delete: no later call would mend them, and one would send the
   * refresh token again, used up when the server rotated it in an answer refused. So the entry
   * stays ended for this process (see `Ended`), and the event names the store's error.
   */
  async function endSession(
    key: string,
    version: string,
    reason: LoginRequiredReason,
    message: string,
    cause?: unknown,
  ): Promise<never> {
    const unstored = await store.delete(key, version).then(
      () => undefined,
      (error: unknown) => ({ error }),
    );
    forget(key);
    if (unstored !== undefined) {
      ended.delete(key); // re-inserted last: the map stays in the order of keptUntil
      ended.set(key, { version, keptUntil: internals.now() + sessionTtlMs });
    }
    const error = unstored === undefined ? {} : { error: eventCode(unstored.error) };
    internals.emit({ type: "oauth.session.ended", reason, ...error });
    const why = cause ?? unstored?.error;
    throw new LoginRequiredError(reason, message, why === undefined ? undefined : { cause: why });
  }

  /**
   * Whether `stored` is the entry of a session this process ended that the store did not delete
   * (see `Ended`): then it is no session, and the delete is tried again. Any other entry, or
   * none, lets the ended one go: the delete landed, the entry expired, or a newer write replaced it.
   */
  async function endedHere(key: string, stored: Current | undefined): Promise<boolean> {
    const end = ended.get(key);
    if (end === undefined) return false;
    if (stored?.version !== end.version) {
      ended.delete(key);
      return false;
    }
    await store.delete(key, end.version).then(
      () => ended.delete(key),
      () => {}, // still there: ended all the same, and tried again on the next read
    );
    return true;
  }

  async function readOrLogin(key: string | undefined): Promise<Current> {
    const current = await read(key);
    if (current === undefined) throw noSession();
    return current;
  }

  /** A saved session's keys and tokens; `LoginRequiredError` when there is none under `sessionId`. */
  async function existing(sessionId: string): Promise<{ keys: SessionKeys; current: Current }> {
    const keys = await lookupKeysOf(sessionId);
    if (keys === undefined) throw noSession();
    return { keys, current: await readOrLogin(keys.tokens) };
  }

  /** The token request, under the session's lock: `seen` is the entry as it is now. */
  async function refreshNow(
    key: string,
    seen: Current,
    rejected: string | undefined,
    lock: HeldLock,
  ): Promise<StoredTokens> {
    const { tokens } = seen;
    if (tokens.refreshToken === undefined) {
      // Nothing to refresh with: the token is used until it expires, or until a resource server
      // refuses it. One without expires_in, until refused: its assumed lifetime only says when to
      // look again, and ending it then would log such users out every few minutes.
      const ended = unusableWithoutRefresh(tokens, rejected);
      if (ended === undefined) return tokens;
      return endSession(key, seen.version, ended, `${WITHOUT_REFRESH[ended]} and there is no refresh token`);
    }
    const usedRefreshToken = tokens.refreshToken;
    const { http, late } = keptLateAnswer(internals.http);
    let issued: Response | undefined;
    let response: oauth.TokenEndpointResponse;
    try {
      response = await internals.exchange(async (as) => {
        const answer = await oauth.refreshTokenGrantRequest(
          as,
          internals.client,
          internals.auth,
          usedRefreshToken,
          http,
        );
        issued = answer.clone(); // read only if the answer is refused below
        return processRefresh(as, answer, tokens);
      }, "refresh_token");
    } catch (error) {
      const answer = late();
      if (answer !== undefined) lock.holdUntil(settleLate(key, seen, answer, lock));
      return refreshFailed(key, seen, error, issued);
    }
    return keepRefreshed(key, seen, response);
  }

  /**
   * A refresh that failed (`error`), answered `issued` if it was answered: it ends the session
   * when no later refresh can mend it (see `endingRefreshError`), else is thrown, the session
   * kept. The tokens of a 2xx answer refused so are revoked at the server (RFC 7009), in the
   * background, as a login's refused ones are: never stored, nothing will ever hold them, and with
   * a rotating server they are the grant's only live ones.
   */
  async function refreshFailed(
    key: string,
    seen: Current,
    error: unknown,
    issued: Response | undefined,
  ): Promise<never> {
    const answered = issued === undefined ? undefined : await tokensAnswered(issued);
    const ended = endingRefreshError(error, answered, seen.tokens.refreshToken);
    if (ended === undefined) throw error;
    if (answered !== undefined) void revokeOrphans(internals, answered, "refresh_refused");
    return endSession(key, seen.version, ended, ENDING_REFRESH[ended], error);
  }

  /**
   * Waits, under the session's lock, for the answer to a refresh grant that timed out after it
   * was sent: the server may have rotated the refresh token, and the answer then holds the only
   * copy of the new one. Sending the old one again (the next refresh, here or in another
   * process) would look like theft and revoke the grant. New tokens are kept as a refresh in
   * time keeps them; a refusal ends the session (and revokes what the answer brought) as it would
   * have (`refreshFailed`); no answer by the time the lock's lease has only the write-back's time
   * left (`writeBackMs`) is given up, and the lock released. The caller had its answer already:
   * what this one comes to is told by events, and its rejection only releases the lock.
   */
  async function settleLate(key: string, seen: Current, late: LateAnswer, lock: HeldLock): Promise<void> {
    const leftMs = Math.max(0, lock.expiresAt - globalThis.performance.now() - writeBackMs(callMs));
    const { answer, done } = lateAnswerWithin(late, leftMs, "refresh grant");
    let issued: Response | undefined;
    let response: oauth.TokenEndpointResponse;
    try {
      response = await internals.exchange(
        async (as) => {
          const answered = await answer;
          issued = answered.clone(); // read only if the answer is refused below
          return processRefresh(as, answered, seen.tokens);
        },
        "refresh_token",
        "late",
      );
    } catch (error) {
      return refreshFailed(key, seen, error, issued);
    } finally {
      done();
    }
    await keepRefreshed(key, seen, response);
  }

  /** The refresh grant's answer as tokens, checked (OpenID Connect Core §12.2: a new ID token is about the same user). */
  async function processRefresh(
    as: oauth.AuthorizationServer,
    answer: Response,
    tokens: StoredTokens,
  ): Promise<oauth.TokenEndpointResponse> {
    const refreshed = await oauth.processRefreshTokenResponse(as, internals.client, answer, TOKEN_RESPONSE_CHECKS);
    const claims = oauth.getValidatedIdTokenClaims(refreshed) as IdTokenClaims | undefined;
    if (claims !== undefined && tokens.idToken !== undefined) assertSameIdentity(tokens.idToken, claims);
    return refreshed;
  }

  /** A refresh's new tokens, held in memory, then written back over `seen`. */
  async function keepRefreshed(
    key: string,
    seen: Current,
    response: oauth.TokenEndpointResponse,
  ): Promise<StoredTokens> {
    const usedRefreshToken = seen.tokens.refreshToken;
    const now = internals.now();
    const next = scheduleRefresh(tokenSetFrom(response, now, { previous: seen.tokens }), now, freshness);
    // From here until the store takes them, the new tokens are the only copy of the grant: held
    // in memory first, so that a write the store fails loses nothing.
    const rotated = next.refreshToken !== usedRefreshToken;
    const held: Unwritten = {
      tokens: next,
      replaces: seen.version,
      usedRefreshToken: rotated ? usedRefreshToken : undefined,
      keptUntil: now + sessionTtlMs,
    };
    hold(key, held);
    try {
      return (await writeBack(key, held, seen.version)).tokens;
    } catch (error) {
      if (error instanceof LoginRequiredError) throw error;
      internals.emit({ type: "oauth.session.write_failed", code: eventCode(error) });
      if (!isTransient(error)) throw error;
      return next;
    }
  }

  /** Renews the session's tokens unless another caller has since `seen`, in one caller at a time. */
  function renew(keys: SessionKeys, seen: Current, rejected: string | undefined): Promise<StoredTokens> {
    const key = keys.tokens;
    // Callers share a renewal only when it refuses what each of them refuses: one that reports a
    // token refused would otherwise be handed that token by a renewal started without it. (A
    // store key holds no NUL.)
    const flight = rejected === undefined ? key : `${key}\0${rejected}`;
    return flights.run(flight, async () => {
      // The server's metadata before the lock, not under it: a discovery that takes long (a slow
      // server, its retries) would use up the lease, and another process would take the lock and
      // send the refresh token this one is about to send too (the server then revokes the grant).
      await internals.server();
      let latest = seen;
      return exclusive({
        store,
        lockKey: keys.lock,
        lockTtlMs,
        ready: async () => {
          latest = await readOrLogin(key);
          const { tokens } = latest;
          const renewed = latest.version !== seen.version;
          return renewed && tokens.accessToken !== rejected && !isExpired(tokens, internals.now()) ? tokens : undefined;
        },
        produce: (lock) => refreshNow(key, latest, rejected, lock),
        onShared: (waitedMs) => internals.emit({ type: "oauth.token.shared", grant: "refresh_token", waitedMs }),
      });
    });
  }

  async function getTokens(sessionId: string, rejected: string | undefined): Promise<StoredTokens> {
    await inSpace();
    const { keys, current } = await existing(sessionId);
    const { tokens } = current;
    if (!isDue(tokens, internals.now()) && tokens.accessToken !== rejected) return tokens;
    // Nothing to refresh with: a token neither refused nor expired is used as it is (see
    // `refreshNow`), without the refresh lock, however long ago its assumed lifetime ended.
    if (tokens.refreshToken === undefined && unusableWithoutRefresh(tokens, rejected) === undefined) return tokens;
    try {
      return await renew(keys, current, rejected);
    } catch (error) {
      // The server is down but the token has not expired: use it, the next call tries again.
      return staleOrThrow(error, tokens, rejected, internals.now(), internals, "refresh_token");
    }
  }

  /** `getAccessToken(sessionId, options)`, as the store and a session's `tokens(…)` both answer it. */
  async function accessTokenOf(sessionId: string, getOptions: GetAccessTokenOptions | undefined): Promise<string> {
    return (await getTokens(sessionId, rejectedOption("getAccessToken()", getOptions))).accessToken;
  }

  function unusableWithoutRefresh(tokens: StoredTokens, rejected: string | undefined): WithoutRefresh | undefined {
    if (tokens.accessToken === rejected) return "token_rejected";
    return isExpired(tokens, internals.now()) ? "expired" : undefined;
  }

  return {
    async save(sessionId, tokens) {
      await inSpace();
      if (typeof tokens?.accessToken !== "string") throw new InterlockConfigError("save needs a token set");
      const key = (await keysOf(sessionId)).tokens;
      const stored = scheduleRefresh(tokens, internals.now(), freshness);
      await store.set(key, await codec.write(key, stored), { ttlMs: sessionTtlMs });
    },

    async get(sessionId) {
      await inSpace();
      const current = await read((await lookupKeysOf(sessionId))?.tokens);
      return current === undefined ? undefined : publicTokens(current.tokens);
    },

    getAccessToken: accessTokenOf,

    async refresh(sessionId) {
      await inSpace();
      const { keys, current } = await existing(sessionId);
      return publicTokens(await renew(keys, current, undefined));
    },

    async revoke(sessionId) {
      await inSpace();
      const key = (await lookupKeysOf(sessionId))?.tokens;
      const current = await read(key);
      if (key === undefined || current === undefined) return { revoked: false };
      // Gone from the store first: nothing in this app uses these tokens any more, whatever the
      // server says. A delete the store reports failed may still land (a PostgreSQL statement
      // that timed out runs on), and a retried revoke would then find nothing to revoke: the
      // tokens read here are revoked at the server all the same, and the store's error thrown after.
      const unstored = await store.delete(key).then(
        () => undefined,
        (error: unknown) => ({ error }),
      );
      forget(key);
      const outcome = await revokeAtServer(current.tokens);
      if (unstored !== undefined) throw unstored.error;
      return outcome;
    },

    tokens(sessionId) {
      isSessionId(sessionId);
      return { getAccessToken: (getOptions) => accessTokenOf(sessionId, getOptions) };
    },
  };

  /** Revokes a session's tokens at the server (RFC 7009), telling `oauth.session.revoked`. */
  async function revokeAtServer(tokens: TokenSet): Promise<{ revoked: boolean }> {
    const revocation = await revokeGrant(internals, tokens);
    // The session ended here all the same: when a request failed, say so, and that the server may not know.
    internals.emit({ type: "oauth.session.revoked", ...revocationEvent(revocation) });
    if (revocation.failure !== undefined) throw revocation.failure.error;
    return { revoked: revocation.revoked };
  }
}
