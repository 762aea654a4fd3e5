/**
 * A user's tokens kept server-side under a session id, against oidc-provider, which rotates the
 * refresh token on every refresh and revokes the whole grant when a used one comes back.
 */

import { createHash } from "node:crypto";
import { InterlockConfigError, StoreUnavailableError } from "@interlock/core";
import { startAuthorizationServer } from "@interlock/test-harness/oauth";
import { Cluster, Redis } from "ioredis";
import * as oauth from "oauth4webapi";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it, onTestFinished, vi } from "vitest";
import { clientSpace, sha256Hex } from "../src/client-space.js";
import {
  createLogin,
  createOAuthClient,
  createSessionTokens,
  type FetchLike,
  LoginRequiredError,
  MemoryTokenStore,
  type OAuthEvent,
  OAuthResponseError,
  type SessionTokensOptions,
  TokenDecryptionError,
  type TokenSet,
  type TokenStore,
} from "../src/index.js";
import { migrate, PostgresTokenStore } from "../src/postgres.js";
import { RedisTokenStore } from "../src/redis.js";
import { RecordCodec } from "../src/tokens.js";
import {
  authorize,
  introspect,
  keyring,
  loggedInTokens,
  REDIRECT_URI,
  resolvable,
  revokeAtServer,
  sayingOperationTimeout,
  urlOf,
  useAuthorizationServer,
  WEB_APP,
  WEB_APP_REGISTRATION,
  webAppKey,
  webClient,
} from "./helpers.js";

const server = useAuthorizationServer();
const refreshes = () => server().tokenRequests("refresh_token");
let sessionCounter = 0;
const newSessionId = () => `s-${process.pid}-${++sessionCounter}-${Date.now().toString(36)}`;

function sessions(options: Partial<SessionTokensOptions> = {}, now?: () => number) {
  return createSessionTokens(webClient(server(), now === undefined ? {} : { now }), {
    encryptionKeys: keyring,
    ...options,
  });
}

const userinfo = (accessToken: string) =>
  fetch(`${server().issuer}/me`, { headers: { authorization: `Bearer ${accessToken}` } });

// The shared stores the two "processes" below use (each with its own connection).
const redisClients: Array<Redis | Cluster> = [];
const pools: pg.Pool[] = [];
const table = `oauth_sessions_${process.pid}_${Date.now().toString(36)}`;
beforeAll(async () => {
  const pool = new pg.Pool({ connectionString: inject("databaseUrl"), max: 2 });
  pools.push(pool);
  await migrate(pool, { table });
});
afterAll(async () => {
  for (const client of redisClients) client.disconnect();
  await pools[0]?.query(`DROP TABLE IF EXISTS "${table}"`);
  await Promise.all(pools.map((pool) => pool.end()));
});

const memory = new MemoryTokenStore();
/** The stores' own options (the memory store has none of these). */
type SharedStoreOptions = { operationTimeoutMs?: number };
const sharedStores: Record<string, (options?: SharedStoreOptions) => TokenStore> = {
  memory: () => memory,
  redis: (options) => {
    const client = new Redis(inject("redisUrl"));
    redisClients.push(client);
    return new RedisTokenStore(client, { prefix: `test:sessions:${process.pid}:`, ...options });
  },
  // A session and its refresh lock are two keys, as a rule in different slots: each operation names one.
  "redis cluster": (options) => {
    const client = new Cluster(inject("redisClusterNodes"));
    redisClients.push(client);
    return new RedisTokenStore(client, { prefix: `test:sessions-cluster:${process.pid}:`, ...options });
  },
  postgres: (options) => {
    const pool = new pg.Pool({ connectionString: inject("databaseUrl"), max: 4 });
    pools.push(pool);
    return new PostgresTokenStore(pool, { table, ...options });
  },
};

/** `store`, calling `locked` when it takes a lock (a set that expects no value). */
function tellingLocks(store: TokenStore, locked: () => void): TokenStore {
  return new Proxy(store, {
    get(target, property) {
      if (property === "set") {
        return async (...args: Parameters<TokenStore["set"]>) => {
          const taken = await target.set(...args);
          if (args[2].expect === null && taken !== undefined) locked();
          return taken;
        };
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

describe("session tokens", () => {
  it("keeps a login's tokens sealed: neither token is in the store in clear", async () => {
    const store = new MemoryTokenStore();
    const tokens = await loggedInTokens(server());
    const id = newSessionId();
    await sessions({ store }).save(id, tokens);
    const raw = (await store.get(await webAppKey(server(), "session", id)))!.value;
    expect(raw).toMatch(/^v1\.k1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    expect(raw).not.toContain(tokens.refreshToken!);
    expect(raw).not.toContain(tokens.accessToken);
    expect(await sessions({ store }).get(id)).toEqual(tokens);
  });

  it("keeps two clients' tokens apart on one store under one session id (two providers of one app)", async () => {
    const store = new MemoryTokenStore();
    const id = newSessionId();
    const other = createSessionTokens(webClient(server(), { clientId: "other-app" }), {
      store,
      encryptionKeys: keyring,
    });
    const ours = await loggedInTokens(server());
    const theirs = { ...ours, accessToken: "other-access", refreshToken: "other-refresh" };
    await sessions({ store }).save(id, ours);
    await other.save(id, theirs);
    expect(await sessions({ store }).get(id)).toEqual(ours);
    expect(await other.get(id)).toEqual(theirs);
  });

  it("refuses to be made without encryption keys", () => {
    expect(() => createSessionTokens(webClient(server()), {} as SessionTokensOptions)).toThrow(InterlockConfigError);
  });

  it("refreshes when due (injected clock): a rotated refresh token, stored, and working", async () => {
    let now = Date.now();
    const store = new MemoryTokenStore({ now: () => now });
    const manager = sessions({ store, refreshMarginMs: 60_000 }, () => now);
    const tokens = await loggedInTokens(server());
    const id = newSessionId();
    await manager.save(id, tokens);

    const before = refreshes();
    expect(await manager.getAccessToken(id)).toBe(tokens.accessToken);
    now += 3_539_000; // 59 s before the margin
    expect(await manager.getAccessToken(id)).toBe(tokens.accessToken);
    expect(refreshes()).toBe(before);

    now += 2_000; // inside the last minute
    const fresh = await manager.getAccessToken(id);
    expect(fresh).not.toBe(tokens.accessToken);
    expect(refreshes()).toBe(before + 1);
    const stored = (await manager.get(id))!;
    expect(stored.accessToken).toBe(fresh);
    expect(stored.refreshToken).not.toBe(tokens.refreshToken); // rotated
    expect(stored.idToken).toBeTypeOf("string");
    expect(await (await userinfo(fresh)).json()).toMatchObject({ sub: "alice" });
    expect(await introspect(server(), stored.refreshToken!, WEB_APP)).toMatchObject({ active: true });
    // The old refresh token is used up.
    expect(await introspect(server(), tokens.refreshToken!, WEB_APP)).toMatchObject({ active: false });
  });

  it("the server revokes the whole grant when a used refresh token comes back (what a lost race costs)", async () => {
    // Without the library: two refreshes with one refresh token, as two unsynchronised processes would.
    const tokens = await loggedInTokens(server());
    const as = await oauth.processDiscoveryResponse(
      new URL(server().issuer),
      await oauth.discoveryRequest(new URL(server().issuer), { [oauth.allowInsecureRequests]: true }),
    );
    const client = { client_id: WEB_APP.clientId };
    const auth = oauth.ClientSecretBasic(WEB_APP.clientSecret);
    const refresh = (token: string) =>
      oauth.refreshTokenGrantRequest(as, client, auth, token, { [oauth.allowInsecureRequests]: true });
    const first = await oauth.processRefreshTokenResponse(as, client, await refresh(tokens.refreshToken!));
    const second = await oauth
      .processRefreshTokenResponse(as, client, await refresh(tokens.refreshToken!))
      .catch((e: unknown) => e);
    expect(second).toMatchObject({ error: "invalid_grant" });
    // The winner's new tokens died with the grant.
    expect(await introspect(server(), first.refresh_token!, WEB_APP)).toMatchObject({ active: false });
    expect((await userinfo(first.access_token)).status).toBe(401);
  });

  describe.each(Object.keys(sharedStores))("two processes sharing a %s store", (name) => {
    it("two parallel refreshes: one request to the server, and a working token for both", async () => {
      // Two managers with their own connections and no shared memory, as two processes have. A's
      // network is slow (its token request leaves 400 ms late), and B's refresh starts once A's
      // token request has begun, so while A holds the session's lock (not after a fixed sleep: on
      // a loaded machine that timer fired after A had finished, and B found the new token).
      const aHoldsTheLock = resolvable();
      const slow = (input: string | URL | Request, init?: RequestInit) => {
        const isToken = urlOf(input).endsWith("/token");
        if (isToken) aHoldsTheLock.resolve();
        return new Promise<Response>((resolve, reject) =>
          setTimeout(() => fetch(input, init).then(resolve, reject), isToken ? 400 : 0),
        );
      };
      const eventsOf = { a: [] as OAuthEvent[], b: [] as OAuthEvent[] };
      const a = createSessionTokens(webClient(server(), { fetch: slow, onEvent: (e) => eventsOf.a.push(e) }), {
        encryptionKeys: keyring,
        store: sharedStores[name]!(),
      });
      const b = createSessionTokens(webClient(server(), { onEvent: (e) => eventsOf.b.push(e) }), {
        encryptionKeys: keyring,
        store: sharedStores[name]!(),
      });
      const tokens = await loggedInTokens(server());
      const id = newSessionId();
      await a.save(id, tokens);
      expect(await b.get(id)).toEqual(tokens);
      const before = refreshes();

      const refreshedByA = a.refresh(id);
      await aHoldsTheLock.promise;
      const [fromA, fromB] = await Promise.all([refreshedByA, b.refresh(id)]);
      expect(refreshes()).toBe(before + 1);
      expect(fromB).toEqual(fromA);
      expect(fromA.refreshToken).not.toBe(tokens.refreshToken);
      expect(await b.get(id)).toEqual(fromA);
      expect(eventsOf.a).toMatchObject([{ type: "oauth.token.requested", grant: "refresh_token", outcome: "issued" }]);
      expect(eventsOf.b).toEqual([
        { type: "oauth.token.shared", grant: "refresh_token", waitedMs: expect.any(Number) },
      ]);

      // The token both got works, and so does the stored refresh token: the chain is intact.
      expect((await userinfo(fromA.accessToken)).status).toBe(200);
      const next = await b.refresh(id);
      expect(refreshes()).toBe(before + 2);
      expect((await userinfo(next.accessToken)).status).toBe(200);
      expect(await introspect(server(), next.refreshToken!, WEB_APP)).toMatchObject({ active: true });
    });

    it("a process that still has to discover the server does not hold the lock meanwhile: one refresh", async () => {
      // A has never talked to the server, and its discovery takes longer than the lock's lease (the
      // server asks it to come back in 3 s): were it made under the lock, B would take the lock once
      // the lease ran out and refresh, then A send the same refresh token again (and the server
      // revoke the grant).
      // A's second look at the server waits (1 s at most) until B holds the refresh lock: on a
      // loaded machine, A's retry could otherwise end its whole refresh before B has even read the
      // session, and B's refresh, then later than A's, rightly be a second one.
      const bLocked = resolvable();
      let discoveries = 0;
      const busyAtFirst: FetchLike = async (input, init) => {
        const discovery = urlOf(input).includes("/.well-known/");
        if (discovery && discoveries++ === 0) {
          return new Response(null, { status: 503, headers: { "retry-after": "3" } });
        }
        if (discovery) await Promise.race([bLocked.promise, new Promise((resolve) => setTimeout(resolve, 1_000))]);
        return fetch(input, init);
      };
      // The shortest lease the timeouts allow, under 3 s: 800 ms for the token request, and, for the
      // store, 1 s and 8 calls of up to its operationTimeoutMs (125 ms here; none for the memory store).
      const storeA = sharedStores[name]!({ operationTimeoutMs: 125 });
      const leaseMs = 1_800 + 8 * (storeA.operationTimeoutMs ?? 0);
      const options = { encryptionKeys: keyring, lockTtlMs: leaseMs };
      const a = createSessionTokens(webClient(server(), { fetch: busyAtFirst, timeoutMs: 800 }), {
        ...options,
        store: storeA,
      });
      const bClient = webClient(server(), { timeoutMs: 800 });
      await bClient.metadata();
      const b = createSessionTokens(bClient, {
        ...options,
        store: tellingLocks(sharedStores[name]!({ operationTimeoutMs: 125 }), bLocked.resolve),
      });
      const tokens = await loggedInTokens(server());
      const id = newSessionId();
      await a.save(id, tokens);
      expect(await b.get(id)).toEqual(tokens); // B's store connected and its key space known before the race
      const before = refreshes();

      const refreshedByA = a.refresh(id);
      await new Promise((resolve) => setTimeout(resolve, leaseMs + 100)); // past A's lease, were it holding one
      const [fromA, fromB] = await Promise.all([refreshedByA, b.refresh(id)]);
      expect(discoveries).toBe(2);
      expect(refreshes()).toBe(before + 1);
      expect(fromA).toEqual(fromB);
      expect(await introspect(server(), (await b.get(id))!.refreshToken!, WEB_APP)).toMatchObject({ active: true });
    });

    it("refreshes called at once from two processes, however they interleave, leave a working chain", async () => {
      const a = sessions({ store: sharedStores[name]!() });
      const b = sessions({ store: sharedStores[name]!() });
      const tokens = await loggedInTokens(server());
      const id = newSessionId();
      await a.save(id, tokens);
      const before = refreshes();
      const results = await Promise.all([a.refresh(id), b.refresh(id), a.refresh(id), b.refresh(id)]);
      // Each refresh the server saw made one distinct token set; a caller that came late refreshed
      // the newest refresh token, never a used one (which would have revoked the grant).
      const distinct = new Set(results.map((r) => r.refreshToken));
      expect(refreshes() - before).toBe(distinct.size);
      const stored = (await a.get(id))!;
      expect((await userinfo(stored.accessToken)).status).toBe(200);
      expect(await introspect(server(), stored.refreshToken!, WEB_APP)).toMatchObject({ active: true });
    });

    it("20 callers in each of two processes asking for a due token: one refresh", async () => {
      let now = Date.now();
      const clock = () => now;
      const a = sessions({ store: sharedStores[name]!() }, clock);
      const b = sessions({ store: sharedStores[name]!() }, clock);
      const tokens = await loggedInTokens(server());
      const id = newSessionId();
      await a.save(id, tokens);
      now += 3_590_000; // due
      const before = refreshes();
      const all = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? a : b).getAccessToken(id)));
      expect(refreshes()).toBe(before + 1);
      expect(new Set(all).size).toBe(1);
      expect(all[0]).not.toBe(tokens.accessToken);
      expect((await userinfo(all[0]!)).status).toBe(200);
    });
  });

  it("refuses a refresh lock shorter than a refresh can take (lockTtlMs vs timeoutMs)", () => {
    const make = (clientOptions: Parameters<typeof webClient>[1], lockTtlMs: number) => () =>
      createSessionTokens(webClient(server(), clientOptions), { encryptionKeys: keyring, lockTtlMs });
    // The token request (timeoutMs, default 10 s) and 1 s for the store must fit in the lease.
    expect(make({}, 10_999)).toThrow(InterlockConfigError);
    expect(make({}, 10_999)).toThrow(/lockTtlMs \(10999 ms\).*10000 ms.*timeoutMs/);
    expect(make({}, 11_000)).not.toThrow();
    expect(make({ timeoutMs: 60_000 }, 30_000)).toThrow(/lockTtlMs.*timeoutMs/);
    expect(make({ retry: false, timeoutMs: 2_000 }, 3_000)).not.toThrow();
    // A shorter deadline bounds the request too; with neither bound, no lease is long enough.
    expect(make({ timeoutMs: 60_000, retry: { deadlineMs: 5_000 } }, 6_000)).not.toThrow();
    expect(make({ retry: { timeoutMs: false, deadlineMs: false } }, 3_600_000)).toThrow(InterlockConfigError);
    expect(() =>
      createSessionTokens(webClient(server(), { retry: { timeoutMs: false, deadlineMs: false } }), {
        encryptionKeys: keyring,
      }),
    ).toThrow(/timeoutMs and deadlineMs/);
  });

  it("refuses a refresh lock too short for the store's calls, each up to its operationTimeoutMs: the new tokens must be written within the lease", () => {
    const make = (store: TokenStore, lockTtlMs: number) => () =>
      createSessionTokens(webClient(server(), { timeoutMs: 1_000 }), { encryptionKeys: keyring, store, lockTtlMs });
    const saying = (operationTimeoutMs: number | undefined) =>
      sayingOperationTimeout(new MemoryTokenStore(), operationTimeoutMs);
    // 1 s for the token request; for the store, 1 s and 8 calls (the lock, the session read, one
    // write of unwritten tokens; then up to 3 writes of the new ones, a read after each lost one).
    expect(make(saying(2_000), 2_000)).toThrow(InterlockConfigError);
    expect(make(saying(2_000), 17_999)).toThrow(
      /lockTtlMs \(17999 ms\).*1000 ms for the token request.*17000 ms for the store \(8 calls of up to 2000 ms, its operationTimeoutMs/,
    );
    expect(make(saying(2_000), 18_000)).not.toThrow();
    // A store that does not say is taken to be bounded as the Redis and PostgreSQL stores are by default.
    expect(make(saying(undefined), 17_999)).toThrow(InterlockConfigError);
    expect(make(saying(undefined), 18_000)).not.toThrow();
    const redis = new Redis(inject("redisUrl"), { lazyConnect: true });
    redisClients.push(redis);
    expect(make(new RedisTokenStore(redis, { operationTimeoutMs: 100 }), 2_799)).toThrow(InterlockConfigError);
    expect(make(new RedisTokenStore(redis, { operationTimeoutMs: 100 }), 2_800)).not.toThrow();
    // The memory store answers in this process, at once.
    expect(make(new MemoryTokenStore(), 2_000)).not.toThrow();
    for (const nonsense of [-1, Number.NaN, Number.POSITIVE_INFINITY, "2000"]) {
      expect(make(saying(nonsense as number), 3_600_000)).toThrow(/the saying token store's operationTimeoutMs/);
    }
  });

  it("the default lease outlasts the longest refresh: 30 s, or longer with a longer timeoutMs or slower store calls", async () => {
    const leases: number[] = [];
    const memory = new MemoryTokenStore();
    const recording = (operationTimeoutMs: number | undefined): TokenStore => ({
      name: "recording",
      operationTimeoutMs,
      get: (key) => memory.get(key),
      set: (key, value, options) => {
        if (key.includes(":lock:")) leases.push(options.ttlMs);
        return memory.set(key, value, options);
      },
      delete: (key, expect) => memory.delete(key, expect),
    });
    const cases: Array<[timeoutMs: number, operationTimeoutMs: number | undefined]> = [
      [10_000, 0],
      [45_000, 0],
      [10_000, 2_000],
      [20_000, 2_000], // 20 s, 1 s, and 8 store calls of 2 s
      [20_000, undefined], // a store that does not say: 2 s
    ];
    for (const [timeoutMs, operationTimeoutMs] of cases) {
      const manager = createSessionTokens(webClient(server(), { timeoutMs }), {
        encryptionKeys: keyring,
        store: recording(operationTimeoutMs),
      });
      const id = newSessionId();
      await manager.save(id, await loggedInTokens(server()));
      await manager.refresh(id);
    }
    expect(leases).toEqual([30_000, 46_000, 30_000, 37_000, 37_000]);
  });

  it("a refused refresh token (invalid_grant) ends the session: LoginRequiredError, tokens deleted", async () => {
    const store = new MemoryTokenStore();
    const events: OAuthEvent[] = [];
    const manager = createSessionTokens(webClient(server(), { onEvent: (e) => events.push(e) }), {
      encryptionKeys: keyring,
      store,
    });
    const tokens = await loggedInTokens(server());
    const id = newSessionId();
    await manager.save(id, tokens);
    await revokeAtServer(server(), tokens.refreshToken!, "refresh_token", WEB_APP); // an admin ends the grant

    const error = await manager.refresh(id).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LoginRequiredError);
    expect(error).toMatchObject({ code: "login_required", status: 401, reason: "refresh_rejected" });
    expect((error as Error).cause).toMatchObject({ code: "invalid_grant" });
    expect(await store.get(await webAppKey(server(), "session", id))).toBeUndefined();
    await expect(manager.getAccessToken(id)).rejects.toMatchObject({ reason: "no_session" });
    expect(events).toMatchObject([
      { type: "oauth.token.requested", grant: "refresh_token", outcome: "invalid_grant" },
      { type: "oauth.session.ended", reason: "refresh_rejected" },
    ]);
  });

  /**
   * A session manager whose client reads the real server's answers to refresh grants as `change`
   * makes them (the server has rotated the refresh token by then, and honours only the one
   * answered); `answered` holds the refresh tokens the server answered, and `tokensRevoked`
   * settles with the first `oauth.login.tokens_revoked`. The session's tokens are kept in `store`,
   * on the clock `now`.
   */
  function refreshAnswersChanged(
    change: (body: Record<string, unknown>) => void,
    { store, now }: { store?: TokenStore; now?: () => number } = {},
  ) {
    const answered: string[] = [];
    const changing: FetchLike = async (input, init) => {
      const response = await fetch(input, init);
      if (!String(init?.body ?? "").includes("grant_type=refresh_token") || !response.ok) return response;
      const body = (await response.json()) as Record<string, unknown>;
      answered.push(body.refresh_token as string);
      change(body);
      return Response.json(body, { status: response.status });
    };
    const events: OAuthEvent[] = [];
    const tokensRevoked = resolvable<OAuthEvent>();
    const onEvent = (event: OAuthEvent) => {
      events.push(event);
      if (event.type === "oauth.login.tokens_revoked") tokensRevoked.resolve(event);
    };
    const client = webClient(server(), { fetch: changing, onEvent, ...(now === undefined ? {} : { now }) });
    const manager = createSessionTokens(client, { encryptionKeys: keyring, ...(store === undefined ? {} : { store }) });
    return { manager, answered, events, tokensRevoked: tokensRevoked.promise };
  }

  it("a refresh answer refused after the server rotated the refresh token ends the session: its tokens revoked, the used one never sent again", async () => {
    // oauth4webapi refuses an expires_in that is no number: the answer's tokens are never stored.
    const { manager, answered, events, tokensRevoked } = refreshAnswersChanged((body) => {
      body.expires_in = null;
    });
    const tokens = await loggedInTokens(server());
    const id = newSessionId();
    await manager.save(id, tokens);
    const before = refreshes();

    const error = await manager.refresh(id).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LoginRequiredError);
    expect(error).toMatchObject({ code: "login_required", status: 401, reason: "refresh_answer_refused" });
    expect((error as Error).cause).toMatchObject({ code: "invalid_response" });
    expect(await manager.get(id)).toBeUndefined();
    // Kept, the session would send the used-up refresh token next, and the server revoke the grant.
    await expect(manager.getAccessToken(id)).rejects.toMatchObject({ reason: "no_session" });
    expect(refreshes()).toBe(before + 1);
    // The grant's only live refresh token, the one answered, is revoked: nothing holds it.
    expect(await tokensRevoked).toEqual({
      type: "oauth.login.tokens_revoked",
      reason: "refresh_refused",
      revoked: true,
    });
    expect(answered).toHaveLength(1);
    expect(answered[0]).not.toBe(tokens.refreshToken);
    expect(await introspect(server(), answered[0]!, WEB_APP)).toMatchObject({ active: false });
    expect(events).toMatchObject([
      { type: "oauth.token.requested", grant: "refresh_token", outcome: "invalid_response" },
      { type: "oauth.session.ended", reason: "refresh_answer_refused" },
      { type: "oauth.login.tokens_revoked" },
    ]);
  });

  it("a refresh answered with an ID token about another user ends the session (identity_changed): the tokens answered are revoked", async () => {
    const other = await loggedInTokens(server(), "bob");
    const { manager, answered, events, tokensRevoked } = refreshAnswersChanged((body) => {
      body.id_token = other.idToken;
    });
    const id = newSessionId();
    await manager.save(id, await loggedInTokens(server(), "alice"));

    const error = await manager.refresh(id).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LoginRequiredError);
    expect(error).toMatchObject({ reason: "identity_changed" });
    expect((error as Error).cause).toMatchObject({ code: "id_token_mismatch" });
    expect(await manager.get(id)).toBeUndefined();
    expect(await tokensRevoked).toEqual({
      type: "oauth.login.tokens_revoked",
      reason: "refresh_refused",
      revoked: true,
    });
    expect(await introspect(server(), answered[0]!, WEB_APP)).toMatchObject({ active: false });
    expect(events).toMatchObject([
      { type: "oauth.token.requested", grant: "refresh_token", outcome: "id_token_mismatch" },
      { type: "oauth.session.ended", reason: "identity_changed" },
      { type: "oauth.login.tokens_revoked" },
    ]);
  });

  /** A memory store whose deletes fail (`StoreUnavailableError`, a connection reset) while `failing` says so. */
  function deletesFailing(failing: () => boolean): TokenStore & { inner: MemoryTokenStore } {
    const inner = new MemoryTokenStore();
    return {
      name: "blip",
      inner,
      get: (key) => inner.get(key),
      set: (key, value, options) => inner.set(key, value, options),
      delete: async (key, expect) => {
        if (failing()) throw new StoreUnavailableError("blip", "connection reset");
        return inner.delete(key, expect);
      },
    };
  }

  it.each([
    [
      "refresh_answer_refused",
      (body: Record<string, unknown>) => {
        body.expires_in = null; // refused by oauth4webapi: the server rotated, the used refresh token is dead
      },
      "invalid_response",
    ],
    [
      "identity_changed",
      (body: Record<string, unknown>, bobs: string) => {
        body.id_token = bobs; // an ID token about another user
      },
      "id_token_mismatch",
    ],
  ])(
    "a refresh that ends the session (%s) ends it though the store fails the delete: the old access token not handed out, the used refresh token never sent again",
    async (reason, change, refusal) => {
      const bobs = (await loggedInTokens(server(), "bob")).idToken!;
      let failing = true;
      const store = deletesFailing(() => failing);
      let now = Date.now();
      const { manager, events, tokensRevoked } = refreshAnswersChanged((body) => change(body, bobs), {
        store,
        now: () => now,
      });
      const tokens = await loggedInTokens(server(), "alice");
      const id = newSessionId();
      await manager.save(id, tokens);
      const key = await webAppKey(server(), "session", id);
      now += 3_590_000; // due, not expired: a failure worth waiting out would hand out the access token
      const before = refreshes();

      // Not the store's error (transient: the old access token handed out, the session kept):
      // the session ended, the refusal as its cause.
      const error = await manager.getAccessToken(id).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LoginRequiredError);
      expect(error).toMatchObject({ reason });
      expect((error as Error).cause).toMatchObject({ code: refusal });
      expect(await store.inner.get(key)).toBeDefined(); // the store kept the entry, used-up refresh token and all
      // No session here while the store keeps it: its refresh token is never sent again.
      await expect(manager.getAccessToken(id)).rejects.toMatchObject({ reason: "no_session" });
      expect(await manager.get(id)).toBeUndefined();
      expect(refreshes()).toBe(before + 1);
      // Each read tries the delete again; once the store takes it, the entry is gone for every process.
      failing = false;
      await expect(manager.getAccessToken(id)).rejects.toMatchObject({ reason: "no_session" });
      expect(await store.inner.get(key)).toBeUndefined();
      expect(refreshes()).toBe(before + 1);
      expect(await tokensRevoked).toMatchObject({ reason: "refresh_refused", revoked: true });
      expect(events).toMatchObject([
        { type: "oauth.token.requested", grant: "refresh_token", outcome: refusal },
        { type: "oauth.session.ended", reason, error: "store_unavailable" },
        { type: "oauth.login.tokens_revoked" },
      ]);
    },
  );

  it("a session ended here whose delete the store failed is used again once a login is saved over it", async () => {
    const store = deletesFailing(() => true);
    const { manager } = refreshAnswersChanged(
      (body) => {
        body.expires_in = null;
      },
      { store },
    );
    const id = newSessionId();
    await manager.save(id, await loggedInTokens(server()));
    await expect(manager.refresh(id)).rejects.toMatchObject({ reason: "refresh_answer_refused" });
    await expect(manager.getAccessToken(id)).rejects.toMatchObject({ reason: "no_session" });

    const login = await loggedInTokens(server());
    await manager.save(id, login); // a newer write: the entry is no longer the one ended
    expect(await manager.getAccessToken(id)).toBe(login.accessToken);
    expect(await manager.get(id)).toEqual(login);
  });

  it("revoke(): tokens deleted here and revoked at the server (RFC 7009)", async () => {
    const manager = sessions();
    const tokens = await loggedInTokens(server());
    const id = newSessionId();
    await manager.save(id, tokens);
    const revocations = server().requests("/token/revocation");

    expect(await manager.revoke(id)).toEqual({ revoked: true });
    expect(server().requests("/token/revocation")).toBe(revocations + 2); // refresh token, then access token
    expect(await manager.get(id)).toBeUndefined();
    expect(await introspect(server(), tokens.refreshToken!, WEB_APP)).toMatchObject({ active: false });
    expect(await introspect(server(), tokens.accessToken, WEB_APP)).toMatchObject({ active: false });
    expect((await userinfo(tokens.accessToken)).status).toBe(401);
    // Nothing left to revoke.
    expect(await manager.revoke(id)).toEqual({ revoked: false });
  });

  it("revoke(): a server that does not revoke access tokens (unsupported_token_type, RFC 7009 §2.2.1) still ends the grant", async () => {
    // The real server, except that it refuses to revoke access tokens, as RFC 7009 lets it.
    const noAccessTokenRevocation: FetchLike = async (input, init) => {
      const request = new Request(input, init);
      const form = new URLSearchParams(await request.clone().text());
      if (new URL(request.url).pathname === "/token/revocation" && form.get("token_type_hint") === "access_token") {
        return Response.json({ error: "unsupported_token_type" }, { status: 400 });
      }
      return fetch(request);
    };
    const events: OAuthEvent[] = [];
    const client = webClient(server(), { fetch: noAccessTokenRevocation, onEvent: (e) => events.push(e) });
    const manager = createSessionTokens(client, { encryptionKeys: keyring });
    const tokens = await loggedInTokens(server());
    const id = newSessionId();
    await manager.save(id, tokens);

    expect(await manager.revoke(id)).toEqual({ revoked: true });
    expect(await introspect(server(), tokens.refreshToken!, WEB_APP)).toMatchObject({ active: false });
    expect(await manager.get(id)).toBeUndefined();
    expect(events).toContainEqual({ type: "oauth.session.revoked", revoked: true });

    // Without a refresh token, nothing was revoked: the same answer as a server without the endpoint.
    const withoutRefresh = newSessionId();
    await manager.save(withoutRefresh, { ...(await loggedInTokens(server())), refreshToken: undefined });
    expect(await manager.revoke(withoutRefresh)).toEqual({ revoked: false });
    expect(await manager.get(withoutRefresh)).toBeUndefined();
  });

  /**
   * The real server's revocation endpoint, answering as Google and Salesforce do: `invalid_token`
   * (400) for a token it no longer holds active, not 200 (RFC 7009 §2.2). With `firstAnswerLate`,
   * the first revocation reaches the server, which revokes the token, and its answer never comes
   * back (the attempt times out). `answers` notes each revocation: the token's type and the answer.
   */
  function revokingAsGoogle({ firstAnswerLate = false } = {}): { fetch: FetchLike; answers: string[] } {
    const answers: string[] = [];
    let late = firstAnswerLate;
    const googleLike: FetchLike = async (input, init) => {
      const request = new Request(input, init);
      if (new URL(request.url).pathname !== "/token/revocation") return fetch(request);
      const form = new URLSearchParams(await request.clone().text());
      const hint = form.get("token_type_hint");
      if ((await introspect(server(), form.get("token")!, WEB_APP)).active !== true) {
        answers.push(`${hint} invalid_token`);
        return Response.json({ error: "invalid_token", error_description: "Token revoked" }, { status: 400 });
      }
      const response = await fetch(request);
      if (!late) {
        answers.push(`${hint} ${response.status}`);
        return response;
      }
      late = false;
      answers.push(`${hint} ${response.status}, too late`);
      return new Promise((_resolve, reject) => {
        request.signal.addEventListener("abort", () => reject(request.signal.reason), { once: true });
      });
    };
    return { fetch: googleLike, answers };
  }

  it("revoke(): a server that answers invalid_token for the access token it revoked with the refresh token (RFC 7009 §2.1) ended the grant: no error", async () => {
    const { fetch: googleLike, answers } = revokingAsGoogle();
    const events: OAuthEvent[] = [];
    const client = webClient(server(), { fetch: googleLike, onEvent: (e) => events.push(e) });
    const manager = createSessionTokens(client, { encryptionKeys: keyring });
    const tokens = await loggedInTokens(server());
    const id = newSessionId();
    await manager.save(id, tokens);

    expect(await manager.revoke(id)).toEqual({ revoked: true });
    expect(answers).toEqual(["refresh_token 200", "access_token invalid_token"]); // the access token went with the grant
    expect(await introspect(server(), tokens.refreshToken!, WEB_APP)).toMatchObject({ active: false });
    expect(await manager.get(id)).toBeUndefined();
    // What the server said is still told.
    expect(events).toEqual([{ type: "oauth.session.revoked", revoked: true, error: "invalid_token" }]);
  });

  it("revoke(): a revocation retried after its attempt that timed out revoked the token is answered invalid_token: revoked, the access token's revocation sent next, no error", async () => {
    const { fetch: googleLike, answers } = revokingAsGoogle({ firstAnswerLate: true });
    const events: OAuthEvent[] = [];
    const client = webClient(server(), { fetch: googleLike, timeoutMs: 300, onEvent: (e) => events.push(e) });
    const manager = createSessionTokens(client, { encryptionKeys: keyring });
    const tokens = await loggedInTokens(server());
    const id = newSessionId();
    await manager.save(id, tokens);

    expect(await manager.revoke(id)).toEqual({ revoked: true });
    expect(answers).toEqual([
      "refresh_token 200, too late",
      "refresh_token invalid_token", // the retry: no longer valid, which is what revoking it was for
      "access_token invalid_token",
    ]);
    expect(await introspect(server(), tokens.refreshToken!, WEB_APP)).toMatchObject({ active: false });
    expect(await introspect(server(), tokens.accessToken, WEB_APP)).toMatchObject({ active: false });
    expect(events).toEqual([{ type: "oauth.session.revoked", revoked: true, error: "invalid_token" }]);
  });

  it("revoke(): a revocation the server fails throws, and its event says the session ended here without it", async () => {
    const failingRevocation: FetchLike = async (input, init) => {
      const request = new Request(input, init);
      if (new URL(request.url).pathname === "/token/revocation") return new Response("down", { status: 503 });
      return fetch(request);
    };
    const events: OAuthEvent[] = [];
    const client = webClient(server(), { fetch: failingRevocation, onEvent: (e) => events.push(e), retry: false });
    const manager = createSessionTokens(client, { encryptionKeys: keyring });
    const tokens = await loggedInTokens(server());
    const id = newSessionId();
    await manager.save(id, tokens);

    await expect(manager.revoke(id)).rejects.toMatchObject({ code: "server_unavailable" });
    expect(await manager.get(id)).toBeUndefined(); // deleted here first, whatever the server says
    expect(events).toEqual([{ type: "oauth.session.revoked", revoked: false, error: "server_unavailable" }]);
    // The grant lives on at the server: the app was told (the error), and so are its metrics (the event).
    expect(await introspect(server(), tokens.refreshToken!, WEB_APP)).toMatchObject({ active: true });
  });

  it("revoke(): a delete the store reports failed (it may still land) still revokes at the server, then throws the store's error", async () => {
    const inner = new MemoryTokenStore();
    // A PostgreSQL DELETE that timed out on the client and ran on the server all the same.
    const store: TokenStore = {
      name: "landed-late",
      get: (key) => inner.get(key),
      set: (key, value, options) => inner.set(key, value, options),
      delete: async (key, expect) => {
        await inner.delete(key, expect);
        throw new StoreUnavailableError("postgres", "delete failed: Query read timeout");
      },
    };
    const manager = sessions({ store });
    const tokens = await loggedInTokens(server());
    const id = newSessionId();
    await manager.save(id, tokens);

    await expect(manager.revoke(id)).rejects.toBeInstanceOf(StoreUnavailableError);
    // The grant is over at the server, though the app's retry finds nothing left to revoke.
    expect(await introspect(server(), tokens.refreshToken!, WEB_APP)).toMatchObject({ active: false });
    expect(await manager.revoke(id)).toEqual({ revoked: false });
  });

  it("without a refresh token: the access token is used until it expires, then LoginRequiredError", async () => {
    let now = Date.now();
    const manager = sessions({}, () => now);
    const { refreshToken: _, ...tokens } = await loggedInTokens(server());
    const id = newSessionId();
    await manager.save(id, { ...tokens, refreshToken: undefined });
    now += 3_590_000; // due, not expired
    expect(await manager.getAccessToken(id)).toBe(tokens.accessToken);
    now += 20_000; // expired
    await expect(manager.getAccessToken(id)).rejects.toMatchObject({ code: "login_required", reason: "expired" });
    expect(await manager.get(id)).toBeUndefined();
  });

  it("without a refresh token: an access token a resource server refused ends the session (token_rejected)", async () => {
    const events: OAuthEvent[] = [];
    const manager = createSessionTokens(webClient(server(), { onEvent: (e) => events.push(e) }), {
      encryptionKeys: keyring,
    });
    const { refreshToken: _, ...tokens } = await loggedInTokens(server());
    const id = newSessionId();
    await manager.save(id, { ...tokens, refreshToken: undefined });
    const requestsBefore = server().tokenRequests();
    // Another token is not there to be had: answering the refused one again would only be refused again.
    await expect(manager.getAccessToken(id, { rejected: tokens.accessToken })).rejects.toMatchObject({
      code: "login_required",
      reason: "token_rejected",
    });
    expect(await manager.get(id)).toBeUndefined();
    expect(events).toContainEqual({ type: "oauth.session.ended", reason: "token_rejected" });
    expect(server().tokenRequests()).toBe(requestsBefore);
  });

  it("without a refresh token nor expires_in (a GitHub OAuth App's token): one store read per call, long after its assumed lifetime, and no lock", async () => {
    let now = Date.now();
    const calls: string[] = [];
    const inner = new MemoryTokenStore();
    const store: TokenStore = {
      name: "counting",
      get: (key) => {
        calls.push("get");
        return inner.get(key);
      },
      set: (key, value, options) => {
        calls.push(options.expect === null ? "lock" : "set");
        return inner.set(key, value, options);
      },
      delete: (key, expect) => {
        calls.push("delete");
        return inner.delete(key, expect);
      },
    };
    const manager = sessions({ store }, () => now);
    const tokens = await loggedInTokens(server());
    const id = newSessionId();
    await manager.save(id, { ...tokens, expiresAt: undefined, refreshToken: undefined });
    const requestsBefore = server().tokenRequests();
    for (const laterMs of [60_000, 6 * 60_000, 600 * 60_000]) {
      now += laterMs; // the 5 minutes assumed (assumedLifetimeMs) are long gone after the first
      calls.length = 0;
      expect(await manager.getAccessToken(id)).toBe(tokens.accessToken);
      expect(calls).toEqual(["get"]);
    }
    expect(server().tokenRequests()).toBe(requestsBefore);
    // Refused by a resource server, it still ends the session.
    await expect(manager.getAccessToken(id, { rejected: tokens.accessToken })).rejects.toMatchObject({
      reason: "token_rejected",
    });
    expect(await manager.get(id)).toBeUndefined();
  });

  it("a session id no saved session can have (a forged cookie) is no session, not a configuration error", async () => {
    const manager = sessions();
    for (const id of ["x".repeat(300), "a\u0000b"]) {
      expect(await manager.get(id)).toBeUndefined();
      await expect(manager.getAccessToken(id)).rejects.toMatchObject({ code: "login_required", reason: "no_session" });
      await expect(manager.tokens(id).getAccessToken()).rejects.toBeInstanceOf(LoginRequiredError);
      await expect(manager.refresh(id)).rejects.toMatchObject({ reason: "no_session" });
      expect(await manager.revoke(id)).toEqual({ revoked: false });
      // Saving under one is the app's own mistake.
      await expect(manager.save(id, await loggedInTokens(server()))).rejects.toBeInstanceOf(InterlockConfigError);
    }
  });

  it("an unknown session is LoginRequiredError(no_session); a tampered record is refused", async () => {
    const store = new MemoryTokenStore();
    const manager = sessions({ store });
    await expect(manager.getAccessToken("nobody")).rejects.toMatchObject({ reason: "no_session" });
    expect(await manager.get("nobody")).toBeUndefined();

    const id = newSessionId();
    await manager.save(id, await loggedInTokens(server()));
    const key = await webAppKey(server(), "session", id);
    const sealed = (await store.get(key))!.value;
    // Another session's sealed record copied here does not open: the store key is authenticated.
    await store.set(await webAppKey(server(), "session", "other"), sealed, { ttlMs: 60_000 });
    await expect(manager.getAccessToken("other")).rejects.toBeInstanceOf(TokenDecryptionError);
    await store.set(key, JSON.stringify({ accessToken: "planted", tokenType: "bearer", refreshAt: 0 }), {
      ttlMs: 60_000,
    });
    await expect(manager.getAccessToken(id)).rejects.toBeInstanceOf(TokenDecryptionError);
    expect(() => manager.tokens("")).toThrow(InterlockConfigError);
  });

  it("keeps using an unexpired token while the authorization server is down", async () => {
    const own = await startAuthorizationServer({ clients: [WEB_APP_REGISTRATION] });
    let now = Date.now();
    const manager = createSessionTokens(webClient(own, { now: () => now, timeoutMs: 1_000 }), {
      encryptionKeys: keyring,
    });
    const tokens = await loggedInTokens(own);
    const id = newSessionId();
    await manager.save(id, tokens);
    await own.close();
    now += 3_590_000; // due, 10 s left
    expect(await manager.getAccessToken(id)).toBe(tokens.accessToken);
    now += 20_000;
    const error = await manager.getAccessToken(id).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OAuthResponseError);
    expect(error).toMatchObject({ code: "server_unavailable" });
    expect(await manager.get(id)).toEqual(tokens); // nothing lost: it refreshes once the server is back
  });

  /**
   * A session saved with an hour-long access token (unless `expiresAt` says otherwise) and a
   * refresh token, on a client whose token endpoint `answer`s every request (no server: the
   * answer is the test's), at the clock `now()`, in `store`.
   */
  async function sessionAnswered(
    answer: () => Response,
    now: () => number = Date.now,
    saved: Pick<Partial<TokenSet>, "expiresAt"> & { store?: TokenStore } = {},
  ) {
    const expiresAt = "expiresAt" in saved ? saved.expiresAt : now() + 3_600_000;
    const store = saved.store ?? new MemoryTokenStore();
    const issuer = "https://as.example";
    const events: OAuthEvent[] = [];
    const client = createOAuthClient({
      issuer,
      ...WEB_APP,
      metadata: { issuer, token_endpoint: `${issuer}/token` },
      fetch: async () => answer(),
      now,
      onEvent: (event) => events.push(event),
    });
    const manager = createSessionTokens(client, { encryptionKeys: keyring, store });
    const id = newSessionId();
    const tokens = {
      accessToken: "AT",
      tokenType: "bearer",
      expiresAt,
      refreshToken: "RT",
      scope: undefined,
      idToken: undefined,
    };
    await manager.save(id, tokens);
    return { client, manager, id, tokens, events };
  }

  it("a token saved without expires_in is used while the server is down only for its assumed lifetime, then the server's error", async () => {
    let now = Date.now();
    const down = () => Response.json({ error: "temporarily_unavailable" }, { status: 400 });
    const { manager, id, tokens, events } = await sessionAnswered(down, () => now, { expiresAt: undefined });
    now += 270_000; // due (inside the 60 s margin), 30 s left of the 5 minutes assumed
    expect(await manager.getAccessToken(id)).toBe("AT");
    expect(events.at(-1)).toMatchObject({ type: "oauth.token.stale_used", grant: "refresh_token" });
    now += 60_000; // past the assumed lifetime: taken as expired, not handed out for as long as the server is down
    await expect(manager.getAccessToken(id)).rejects.toMatchObject({ code: "temporarily_unavailable", status: 503 });
    expect(await manager.get(id)).toEqual(tokens); // the session stays: the server refused nothing
  });

  it("a session the previous version stored without expires_in (no assumed lifetime kept) is read, and used while the server is down until it is due", async () => {
    let now = Date.now();
    const store = new MemoryTokenStore();
    const down = () => Response.json({ error: "temporarily_unavailable" }, { status: 400 });
    const { client, manager, id } = await sessionAnswered(down, () => now, { expiresAt: undefined, store });
    // The record as the previous version wrote it: the tokens and when they are due, nothing more.
    const key = `oauth:session:${await clientSpace(client)}:${await sha256Hex(id)}`;
    const previous = { accessToken: "OLD", tokenType: "bearer", refreshToken: "RT", refreshAt: now + 240_000 };
    await store.set(key, await new RecordCodec(keyring).write(key, previous), { ttlMs: 60_000 });
    expect(await manager.getAccessToken(id)).toBe("OLD");
    now += 240_000; // due: its assumed lifetime is taken to end then, the earliest it could
    await expect(manager.getAccessToken(id)).rejects.toMatchObject({ code: "temporarily_unavailable", status: 503 });
    expect(await manager.get(id)).toMatchObject({ accessToken: "OLD", expiresAt: undefined });
  });

  it("keeps using an unexpired token while the server says in its error answer that it is down (temporarily_unavailable)", async () => {
    let now = Date.now();
    const { manager, id, tokens, events } = await sessionAnswered(
      () => Response.json({ error: "temporarily_unavailable" }, { status: 400 }),
      () => now,
    );
    now += 3_590_000; // due, 10 s left
    expect(await manager.getAccessToken(id)).toBe("AT");
    expect(events.at(-1)).toEqual({
      type: "oauth.token.stale_used",
      grant: "refresh_token",
      code: "temporarily_unavailable",
    });
    now += 20_000;
    await expect(manager.getAccessToken(id)).rejects.toMatchObject({ code: "temporarily_unavailable", status: 503 });
    expect(await manager.get(id)).toEqual(tokens); // the session stays: the server refused nothing
  });

  it("a refresh answered with a lifetime past any clock (expires_in of 10^306 s, Infinity in ms): stored, and read back", async () => {
    let now = Date.now();
    const { manager, id } = await sessionAnswered(
      () => Response.json({ access_token: "AT2", token_type: "Bearer", refresh_token: "RT2", expires_in: 1e306 }),
      () => now,
    );
    now += 3_590_000; // due: refreshed, and the used refresh token is gone
    expect(await manager.getAccessToken(id)).toBe("AT2");
    expect(await manager.getAccessToken(id)).toBe("AT2"); // from the store
    expect(await manager.get(id)).toMatchObject({ accessToken: "AT2", refreshToken: "RT2" });
  });

  // The refresh token was not rotated, so the session's is still good: it stays, for the next refresh.
  it.each([
    ["without a refresh token", {}],
    ["with the session's own refresh token", { refresh_token: "RT" }],
  ])(
    "a refresh answered with a DPoP-bound token (token_type DPoP) %s is invalid_response: not stored, never sent as Bearer, the session kept",
    async (_case, refreshToken) => {
      const { manager, id, tokens, events } = await sessionAnswered(() =>
        Response.json({ access_token: "DPOP-AT", token_type: "DPoP", expires_in: 60, ...refreshToken }),
      );
      await expect(manager.refresh(id)).rejects.toMatchObject({ code: "invalid_response", status: 502 });
      expect(await manager.get(id)).toEqual(tokens);
      expect(events.map((event) => event.type)).toEqual(["oauth.token.requested"]);
    },
  );
});

/** `inner`, noting every key it is asked to write (set, and so every lock) or read. */
function keyNoting(inner: TokenStore): TokenStore & { keys: Set<string> } {
  const keys = new Set<string>();
  const noted = (key: string) => {
    keys.add(key);
    return key;
  };
  return {
    name: inner.name,
    keys,
    get: (key) => inner.get(noted(key)),
    set: (key, value, options) => inner.set(noted(key), value, options),
    delete: (key, expect) => inner.delete(noted(key), expect),
  };
}

describe.each(Object.keys(sharedStores))("store keys hold no session id or login state: %s store", (name) => {
  it("a session's keys and its pending login's hold their ids' SHA-256, never the ids (a cookie's value)", async () => {
    const store = keyNoting(sharedStores[name]!());
    const login = createLogin(webClient(server()), { redirectUri: REDIRECT_URI, store, encryptionKeys: keyring });
    const start = await login.begin();
    const { tokens } = await login.complete(await authorize(start), { state: start.state });
    const id = `cookie-${newSessionId()}`;
    const manager = sessions({ store });
    await manager.save(id, tokens);
    await manager.refresh(id); // under the session's lock
    expect(await manager.get(id)).toBeDefined();
    expect(await manager.revoke(id)).toEqual({ revoked: true });

    const keys = [...store.keys];
    expect(keys).toContain(await webAppKey(server(), "session", id));
    expect(keys).toContain(await webAppKey(server(), "login", start.state));
    const hashed = createHash("sha256").update(id).digest("hex");
    expect(keys.some((key) => key.includes("lock:session:") && key.endsWith(`:${hashed}`))).toBe(true);
    for (const key of keys) {
      expect(key).not.toContain(id);
      expect(key).not.toContain(start.state);
    }
  });
});

describe("a refresh never brings back what was refused", () => {
  it("a session logged out while its refresh was in flight stays logged out: the refresh's tokens are not written back", async () => {
    const store = new MemoryTokenStore();
    const id = newSessionId();
    // Another process logs the session out while this one's refresh request is at the server.
    const logoutDuringRefresh: FetchLike = async (input, init) => {
      if (String(init?.body ?? "").includes("grant_type=refresh_token"))
        await store.delete(await webAppKey(server(), "session", id));
      return fetch(input, init);
    };
    const manager = createSessionTokens(webClient(server(), { fetch: logoutDuringRefresh }), {
      encryptionKeys: keyring,
      store,
    });
    await manager.save(id, await loggedInTokens(server()));

    await expect(manager.refresh(id)).rejects.toMatchObject({ code: "login_required", reason: "no_session" });
    expect(await store.get(await webAppKey(server(), "session", id))).toBeUndefined();
    await expect(manager.getAccessToken(id)).rejects.toMatchObject({ reason: "no_session" });
  });

  it("a session saved again with the refused token while its renewal waited is refreshed, not handed back", async () => {
    // The app saves the same token set again (a new version, the same access token) between the
    // read that saw the 401'd token and the renewal's look at the store under the lock.
    class ResavingStore extends MemoryTokenStore {
      afterNextRead: (() => Promise<unknown>) | undefined;
      override async get(key: string) {
        const entry = await super.get(key);
        const after = this.afterNextRead;
        this.afterNextRead = undefined;
        await after?.();
        return entry;
      }
    }
    const store = new ResavingStore();
    const manager = sessions({ store });
    const tokens = await loggedInTokens(server());
    const id = newSessionId();
    await manager.save(id, tokens);
    const before = refreshes();
    store.afterNextRead = () => manager.save(id, tokens);

    const renewed = await manager.getAccessToken(id, { rejected: tokens.accessToken });
    expect(renewed).not.toBe(tokens.accessToken);
    expect(refreshes()).toBe(before + 1);
    expect((await userinfo(renewed)).status).toBe(200);
  });

  it("a caller reporting a refused token does not share a renewal already under way, which would hand it back", async () => {
    // Two processes on one store. This one's refresh is looking at the store when the other
    // refreshes first (T0 → T1) and a resource server refuses T1: the caller reporting T1 must
    // not be handed what that renewal finds, T1 (it was started without T1 refused).
    class PausingStore extends MemoryTokenStore {
      sessionReads = 0;
      pauseAtRead: { read: number; meanwhile: () => Promise<void> } | undefined;
      override async get(key: string) {
        if (key.startsWith("oauth:session:") && ++this.sessionReads === this.pauseAtRead?.read) {
          const { meanwhile } = this.pauseAtRead;
          this.pauseAtRead = undefined;
          await meanwhile();
        }
        return super.get(key);
      }
    }
    const store = new PausingStore();
    const here = sessions({ store });
    const there = sessions({ store });
    const id = newSessionId();
    await here.save(id, await loggedInTokens(server(), "alice", "openid offline_access"));
    let refused: string | undefined;
    let reporting: Promise<string> | undefined;
    store.sessionReads = 0;
    // Read 1: refresh() reads the session; read 2: its renewal looks again, before taking the lock.
    store.pauseAtRead = {
      read: 2,
      meanwhile: async () => {
        refused = (await there.refresh(id)).accessToken;
        reporting = here.getAccessToken(id, { rejected: refused });
        await new Promise((resolve) => setTimeout(resolve, 50)); // the reporting caller reaches its renewal
      },
    };
    const before = refreshes();

    const first = await here.refresh(id);
    const renewed = await (reporting as Promise<string>);
    expect(renewed).not.toBe(refused);
    expect((await userinfo(first.accessToken)).status).toBe(200); // T1, or the reporting caller's, found fresh
    expect(refreshes()).toBe(before + 2); // the other process's refresh, then the reporting caller's
    expect((await userinfo(renewed)).status).toBe(200);
  });

  it("never hands back a token a resource server refused, even while the authorization server is down", async () => {
    const own = await startAuthorizationServer({ clients: [WEB_APP_REGISTRATION] });
    const manager = createSessionTokens(webClient(own, { timeoutMs: 1_000 }), { encryptionKeys: keyring });
    const tokens = await loggedInTokens(own);
    const id = newSessionId();
    await manager.save(id, tokens);
    await own.close();
    // Not due and not expired, but refused: riding out the outage with it would only get another 401.
    const error = await manager.getAccessToken(id, { rejected: tokens.accessToken }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OAuthResponseError);
    expect(error).toMatchObject({ code: "server_unavailable" });
    expect(await manager.getAccessToken(id)).toBe(tokens.accessToken); // not refused: still used
  });
});

describe("session tokens when the system clock is set (no `now` option)", () => {
  it("a clock set an hour forward while a refresh is at the server does not let a second one of the session through", async () => {
    // Two refreshes of one session in one process that share no flight (the second, after a 401,
    // refuses the token the first was started without): only the default store's refresh lock
    // keeps them apart. The system clock steps forward past the lock's lease (a VM resumed) while
    // the first refresh's request is at the server, held there until the second has had time to
    // take the lock and send the same refresh token (then at once), which the server would take
    // for theft, revoking the grant.
    const wall = Date.now.bind(Date);
    // Watched before the default store is made: a store timed on the system clock would keep the
    // `Date.now` in place when it was made, so a spy put on later could not show it the step.
    const clock = vi.spyOn(Date, "now");
    onTestFinished(() => clock.mockRestore());
    const firstAtServer = resolvable();
    const secondAtServer = resolvable();
    let refreshRequests = 0;
    const heldAtServer: FetchLike = async (input, init) => {
      if (String(init?.body ?? "").includes("grant_type=refresh_token") && ++refreshRequests === 1) {
        clock.mockImplementation(() => wall() + 60 * 60_000);
        firstAtServer.resolve();
        await Promise.race([secondAtServer.promise, new Promise((resolve) => setTimeout(resolve, 500))]);
      } else if (String(init?.body ?? "").includes("grant_type=refresh_token")) {
        secondAtServer.resolve();
      }
      return fetch(input, init);
    };
    const manager = createSessionTokens(webClient(server(), { fetch: heldAtServer }), { encryptionKeys: keyring });
    const tokens = await loggedInTokens(server());
    const id = newSessionId();
    await manager.save(id, tokens);
    const before = refreshes();

    const refreshed = manager.refresh(id);
    await firstAtServer.promise;
    const afterUnauthorized = manager.getAccessToken(id, { rejected: tokens.accessToken });
    const [fromRefresh, accessToken] = await Promise.all([refreshed, afterUnauthorized]);
    expect(refreshRequests).toBe(1);
    expect(refreshes()).toBe(before + 1);
    expect(accessToken).toBe(fromRefresh.accessToken);
    expect(await manager.get(id)).toEqual(fromRefresh);
    expect(await introspect(server(), fromRefresh.refreshToken!, WEB_APP)).toMatchObject({ active: true });
  });
});
