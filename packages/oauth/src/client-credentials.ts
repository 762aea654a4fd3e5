/**
 * Client Credentials (RFC 6749 §4.4) for machine-to-machine calls: one token per (issuer, client,
 * scopes, resource), cached, renewed `refreshMarginMs` before it expires, with one token request in
 * flight however many callers ask at once: in this process (they share a promise) and, with a
 * shared store, across processes (a lock in the store; the others read the winner's token).
 */

import { assertOptionNames, InterlockConfigError, optionNames, StoreUnavailableError } from "@interlock/core";
import * as oauth from "oauth4webapi";
import { clientInternals, type OAuthClient, TOKEN_RESPONSE_CHECKS } from "./client.js";
import { sha256Hex } from "./client-space.js";
import type { EncryptionKey, Keyring } from "./encryption.js";
import { TokenDecryptionError } from "./errors.js";
import { CLIENT_PARAMS, extraParams, type ReservedParams } from "./params.js";
import type { TokenStore } from "./store/contract.js";
import { exclusive, SingleFlight } from "./store/lock.js";
import { defaultTokenStore } from "./store/memory.js";
import {
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
  type HeldTokens,
  heldNow,
  holdTokens,
  isDue,
  MAX_LIFETIME_MS,
  outlivedAt,
  publicTokens,
  RecordCodec,
  type StoredTokens,
  scheduleRefresh,
  type TokenSet,
  tokenSetFrom,
} from "./tokens.js";

/**
 * A token's time in the store, in whole ms as stores take it (a clock may tell fractions of a
 * ms), and a year at most however long `assumedLifetimeMs` is: then a later call asks for a new one.
 */
const cacheTtlMs = (lifetimeMs: number): number => Math.min(MAX_LIFETIME_MS, Math.max(1, Math.ceil(lifetimeMs)));

/** What to ask for, and where the token is cached. */
export interface ClientCredentialsOptions extends Partial<Freshness> {
  /** Scopes to ask for, as a space-separated string or a list. Default: none (the server's default). */
  scope?: string | readonly string[];
  /** RFC 8707 resource indicator: the API the token is for. */
  resource?: string;
  /** Extra token request parameters (`audience`, …). */
  params?: Record<string, string>;
  /**
   * Where tokens are cached. Default: a memory store (this process). A shared store (Redis,
   * PostgreSQL) makes every process use one token and one request at a time across all of them.
   */
  store?: TokenStore;
  /** Seal cached access tokens in the store; see `createKeyring`. */
  encryptionKeys?: readonly EncryptionKey[] | Keyring;
  /** Lease on the cross-process lock while one process requests a token. Default 30 s. */
  lockTtlMs?: number;
  /** Put before every store key. Default `"oauth:"`. */
  keyPrefix?: string;
}

export interface ClientCredentials extends TokenSource {
  /** The current token set: cached, or requested when due. */
  getToken(options?: GetAccessTokenOptions): Promise<TokenSet>;
}

function scopeText(scope: string | readonly string[] | undefined): string | undefined {
  if (scope === undefined) return undefined;
  const scopes = typeof scope === "string" ? scope.split(" ") : [...scope];
  if (scopes.some((s) => typeof s !== "string")) throw new InterlockConfigError("scope must be strings");
  const text = [...new Set(scopes.filter((s) => s !== ""))].sort().join(" ");
  return text === "" ? undefined : text;
}

/**
 * What client credentials' `params` may not set: the client's parameters (RFC 6749 §2.3: one
 * authentication method per request), the grant, and what the `scope` and `resource` options set.
 */
const RESERVED: ReservedParams = new Map([
  ...CLIENT_PARAMS,
  ["grant_type", "the client credentials grant itself"],
  ["scope", "the scope option"],
  ["resource", "the resource option"],
]);

const CLIENT_CREDENTIALS_OPTION_NAMES = optionNames<ClientCredentialsOptions>({
  scope: true,
  resource: true,
  params: true,
  store: true,
  encryptionKeys: true,
  lockTtlMs: true,
  keyPrefix: true,
  refreshMarginMs: true,
  assumedLifetimeMs: true,
});

/**
 * Client Credentials for machine-to-machine calls: one cached token, renewed before it
 * expires, one token request in flight however many callers (and, with a shared store, processes) ask.
 */
export function createClientCredentials(
  client: OAuthClient,
  options: ClientCredentialsOptions = {},
): ClientCredentials {
  assertOptionNames("createClientCredentials()", options, CLIENT_CREDENTIALS_OPTION_NAMES);
  const internals = clientInternals(client);
  const freshness = freshnessOptions(options);
  const lockTtlMs = lockTtlOption(options.lockTtlMs);
  const prefix = prefixOption(options.keyPrefix);
  const store = options.store ?? defaultTokenStore(internals);
  const codec = new RecordCodec(options.encryptionKeys);
  const scope = scopeText(options.scope);
  const parameters = new URLSearchParams(extraParams(options.params, "params", RESERVED));
  if (scope !== undefined) parameters.set("scope", scope);
  if (options.resource !== undefined) parameters.set("resource", options.resource);
  parameters.sort();

  // One cache entry per issuer, client and request: two providers asking the same share it.
  const identity = JSON.stringify([client.issuer, client.clientId, parameters.toString()]);
  const keys = sha256Hex(identity).then((hash) => ({ token: `${prefix}cc:${hash}`, lock: `${prefix}lock:cc:${hash}` }));
  const flights = new SingleFlight<StoredTokens>();
  /**
   * The token this process holds: judged on monotonic time since it came (tokens.ts' `HeldTokens`).
   * Its own, or a newer one another process stored (see `holdIfNewer`).
   */
  let local: HeldTokens | undefined;
  const localNow = (held: HeldTokens) => heldNow(held, internals.nowGiven ? internals.now : undefined);

  /**
   * Holds `tokens`, read from the store by a renewal, in place of this process's token when they
   * outlive it (another process renewed since, or this one holds none) and are not the ones a
   * resource server refused. Tokens the renewal does not take are due: they matter only if it
   * fails, and are then the newest token to ride the failure out with until it expires (see
   * `getToken`). The same token read again is not held again: judged anew from now, a token read
   * while the clock is set back would be used that much longer.
   */
  function holdIfNewer(tokens: StoredTokens | undefined, rejected: string | undefined): void {
    if (tokens === undefined || tokens.accessToken === rejected) return;
    if (local !== undefined && outlivedAt(tokens) <= outlivedAt(local.tokens)) return;
    local = holdTokens(tokens, internals.now());
  }

  const usable = (tokens: StoredTokens | undefined, now: number, rejected: string | undefined): boolean =>
    tokens !== undefined && !isDue(tokens, now) && tokens.accessToken !== rejected;

  /**
   * The token cached in the store. One that does not open is no token (`TokenDecryptionError`):
   * sealed with a key no longer listed, unsealed where keys are configured (instances of a rolling
   * deploy that adds `encryptionKeys` share the store), or altered. Never trusted, and, a cache
   * holding nothing another token cannot replace, never in the way: a new one is asked for and
   * written over it, where a session's would be the only copy of its grant.
   */
  async function stored(key: string): Promise<StoredTokens | undefined> {
    const entry = await store.get(key);
    if (entry === undefined) return undefined;
    try {
      return assertStoredTokens(await codec.read(key, entry.value));
    } catch (error) {
      if (error instanceof TokenDecryptionError) return undefined;
      throw error;
    }
  }

  async function request(key: string): Promise<StoredTokens> {
    const response = await internals.exchange(async (as) => {
      const http = await oauth.clientCredentialsGrantRequest(
        as,
        internals.client,
        internals.auth,
        parameters,
        internals.http,
      );
      return oauth.processClientCredentialsResponse(as, internals.client, http, TOKEN_RESPONSE_CHECKS);
    }, "client_credentials");
    const now = internals.now();
    const granted = tokenSetFrom(response, now, { requestedScope: parameters.get("scope") ?? undefined });
    const tokens = scheduleRefresh(granted, now, freshness);
    const ttlMs = cacheTtlMs((tokens.expiresAt ?? tokens.refreshAt) - now);
    try {
      await store.set(key, await codec.write(key, tokens), { ttlMs });
    } catch (error) {
      // The token is good even if the store is down; the other processes will ask for their own.
      if (!isTransient(error)) throw error;
    }
    return tokens;
  }

  /**
   * A new token, or another process's newer one from the store. `due` is the token this process
   * found due (on monotonic time): the store's copy of it is due too, whatever the system clock
   * now says of its times.
   */
  async function renew(rejected: string | undefined, due: string | undefined): Promise<StoredTokens> {
    const { token, lock } = await keys;
    try {
      return await exclusive({
        store,
        lockKey: lock,
        lockTtlMs,
        ready: async () => {
          const tokens = await stored(token);
          holdIfNewer(tokens, rejected);
          return usable(tokens, internals.now(), rejected) && tokens!.accessToken !== due ? tokens! : undefined;
        },
        produce: () => request(token),
        onShared: (waitedMs) => internals.emit({ type: "oauth.token.shared", grant: "client_credentials", waitedMs }),
      });
    } catch (error) {
      // A shared store that is down must not stop machine-to-machine calls: ask the server directly
      // (still one request at a time in this process).
      if (error instanceof StoreUnavailableError) return request(token);
      throw error;
    }
  }

  async function getToken(rejected: string | undefined): Promise<StoredTokens> {
    const held = local;
    if (held !== undefined && usable(held.tokens, localNow(held), rejected)) return held.tokens;
    try {
      const tokens = await flights.run("token", () => renew(rejected, held?.tokens.accessToken));
      if (local?.tokens !== tokens) local = holdTokens(tokens, internals.now());
      return tokens;
    } catch (error) {
      // The server (or the store) is down but the newest token we have, ours or one the store gave
      // us meanwhile (`holdIfNewer`), has not expired yet: use it.
      const newest = local;
      const now = newest === undefined ? internals.now() : localNow(newest);
      return staleOrThrow(error, newest?.tokens, rejected, now, internals, "client_credentials");
    }
  }

  return {
    getToken: async (getOptions) => publicTokens(await getToken(rejectedOption("getToken()", getOptions))),
    getAccessToken: async (getOptions) => (await getToken(rejectedOption("getAccessToken()", getOptions))).accessToken,
  };
}
