/**
 * A refresh whose new tokens the store does not take: the write fails, times out, or reaches the
 * store late. oidc-provider rotates the refresh token on every refresh and revokes the whole grant
 * when a used one comes back, so a new refresh token that is dropped (and the old one sent again)
 * logs the user out. Against the real stores: memory (its write failing), Redis (its write
 * reaching Redis after the store gave up, which the script refuses) and PostgreSQL (its write
 * blocked by a row lock past the store's timeout, then carried out). And a refresh whose answer
 * comes after its timeout: the request is not abandoned, its answer is kept.
 */

import { StoreUnavailableError } from "@interlock/core";
import { startRedisProxy } from "@interlock/test-harness";
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it, onTestFinished } from "vitest";
import { clientSpace, sha256Hex } from "../src/client-space.js";
import {
  createOAuthClient,
  createSessionTokens,
  type FetchLike,
  MemoryTokenStore,
  type OAuthEvent,
  type SessionTokens,
  type TokenSet,
  type TokenStore,
} from "../src/index.js";
import { migrate, PostgresTokenStore } from "../src/postgres.js";
import { RedisTokenStore } from "../src/redis.js";
import {
  introspect,
  keyring,
  loggedInTokens,
  resolvable,
  sayingOperationTimeout,
  useAuthorizationServer,
  WEB_APP,
  webClient,
} from "./helpers.js";

const server = useAuthorizationServer();
const refreshes = () => server().tokenRequests("refresh_token");
let sessionCounter = 0;
const newSessionId = () => `unwritten-${process.pid}-${++sessionCounter}-${Date.now().toString(36)}`;
/** The session's store key (keys name the client and hash the session id: client-space.ts, sessions.ts). */
const sessionKey = async (id: string) =>
  `oauth:session:${await clientSpace(webClient(server()))}:${await sha256Hex(id)}`;
const userinfo = (accessToken: string) =>
  fetch(`${server().issuer}/me`, { headers: { authorization: `Bearer ${accessToken}` } });

/** A store whose session writes fail (StoreUnavailableError) while `failing` says so; reads and locks work. */
class FailingWrites implements TokenStore {
  readonly name = "failing";
  /** How many session writes to fail next; Infinity: until set back to 0. */
  failing = 0;
  constructor(readonly inner: TokenStore) {}
  get operationTimeoutMs() {
    return this.inner.operationTimeoutMs;
  }
  get(key: string) {
    return this.inner.get(key);
  }
  async set(key: string, value: string, options: Parameters<TokenStore["set"]>[2]) {
    if (key.startsWith("oauth:session:") && this.failing > 0) {
      this.failing--;
      throw new StoreUnavailableError("failing", "the write did not reach the store");
    }
    return this.inner.set(key, value, options);
  }
  delete(key: string, expect?: string) {
    return this.inner.delete(key, expect);
  }
}

/**
 * The shortest refresh lease `dueSession`'s client allows with a store whose calls time out after
 * 300 ms: 1 s for the token request, and, for the store, 8 calls and 1 s.
 */
const SHORTEST_LEASE_300_MS_STORE = 1_000 + 8 * 300 + 1_000;

/** Waits `ms`, or rejects with the signal's reason once it aborts, as fetch does for an answer still to come. */
function answerAfter(ms: number, signal: AbortSignal | null | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    onTestFinished(() => clearTimeout(timer));
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    });
  });
}

/**
 * A logged-in session, due for a refresh (the manager's clock moved to 10 s before the access
 * token expires); `onRefresh` runs when the refresh request leaves, before the server sees it.
 * With `firstAnswerMs`, the first refresh reaches the server at once (which rotates the refresh
 * token) and its answer takes that long to come back. With `change`, the client reads the
 * server's 2xx refresh answers as it makes them.
 */
async function dueSession(
  store: TokenStore,
  onRefresh: (id: string) => Promise<void> | void = () => {},
  {
    firstAnswerMs,
    lockTtlMs = 2_000,
    change,
  }: { firstAnswerMs?: number; lockTtlMs?: number; change?: (body: Record<string, unknown>) => void } = {},
) {
  const id = newSessionId();
  let now = Date.now();
  let slowAnswer = firstAnswerMs;
  const events: OAuthEvent[] = [];
  const refreshing: FetchLike = async (input, init) => {
    if (!String(init?.body ?? "").includes("grant_type=refresh_token")) return fetch(input, init);
    await onRefresh(id);
    const response = await fetch(input, init);
    const delayMs = slowAnswer;
    slowAnswer = undefined;
    if (delayMs !== undefined) await answerAfter(delayMs, init?.signal);
    if (change === undefined || !response.ok) return response;
    const body = (await response.json()) as Record<string, unknown>;
    change(body);
    return Response.json(body, { status: response.status });
  };
  const client = webClient(server(), {
    fetch: refreshing,
    now: () => now,
    timeoutMs: 1_000,
    onEvent: (event) => events.push(event),
  });
  const sessions = createSessionTokens(client, { encryptionKeys: keyring, store, lockTtlMs });
  const tokens = await loggedInTokens(server(), "alice", "openid offline_access");
  await sessions.save(id, tokens);
  now += 3_590_000;
  return {
    id,
    sessions,
    tokens,
    events,
    elapse: (ms: number) => {
      now += ms;
    },
  };
}

/** What another process sharing the store sees there: the stored token set, not this process's memory. */
const storedIn = (store: TokenStore, id: string) =>
  createSessionTokens(webClient(server()), { encryptionKeys: keyring, store }).get(id);

/** The grant is alive: the new tokens work, the old refresh token is used up, and refreshing goes on. */
async function assertGrantIntact(sessions: SessionTokens, id: string, before: TokenSet, after: string) {
  expect((await userinfo(after)).status).toBe(200);
  expect(await introspect(server(), before.refreshToken!, WEB_APP)).toMatchObject({ active: false });
  const next = await sessions.refresh(id);
  expect((await userinfo(next.accessToken)).status).toBe(200);
  expect(await introspect(server(), next.refreshToken!, WEB_APP)).toMatchObject({ active: true });
}

describe("a refresh whose tokens the store did not take: the new tokens are kept, never the old ones used again", () => {
  it("memory: the write fails; the new access token is handed out, and written back on the next call", async () => {
    const store = new FailingWrites(new MemoryTokenStore());
    const { id, sessions, tokens, events } = await dueSession(store, () => {
      store.failing = 1; // the write after the token request
    });
    const before = refreshes();

    const first = await sessions.getAccessToken(id);
    expect(first).not.toBe(tokens.accessToken); // the refreshed one, not the old one
    expect(refreshes()).toBe(before + 1);
    expect(await storedIn(store, id)).toEqual(tokens); // not written yet
    expect(events).toContainEqual({ type: "oauth.session.write_failed", code: "store_unavailable" });
    expect(events.map((e) => e.type)).not.toContain("oauth.token.stale_used");

    const second = await sessions.getAccessToken(id);
    expect(second).toBe(first);
    expect(refreshes()).toBe(before + 1);
    const stored = (await storedIn(store, id))!;
    expect(stored.accessToken).toBe(first); // written back
    expect(stored.refreshToken).not.toBe(tokens.refreshToken);
    await assertGrantIntact(sessions, id, tokens, first);
  });

  it("memory: while the store keeps failing, a refresh uses the unwritten refresh token, never the old one", async () => {
    const store = new FailingWrites(new MemoryTokenStore());
    const { id, sessions, tokens, events, elapse } = await dueSession(store, () => {
      store.failing = Number.POSITIVE_INFINITY;
    });
    const before = refreshes();
    const first = await sessions.getAccessToken(id);
    expect((await sessions.get(id))?.accessToken).toBe(first); // this process's view
    elapse(3_590_000); // the unwritten tokens are due in turn

    const second = await sessions.getAccessToken(id);
    expect(second).not.toBe(first);
    expect(refreshes()).toBe(before + 2);
    expect(events.filter((e) => e.type === "oauth.token.requested")).toMatchObject([
      { outcome: "issued" },
      { outcome: "issued" }, // not invalid_grant: the old refresh token was not sent again
    ]);
    expect(await storedIn(store, id)).toEqual(tokens); // still nothing written

    store.failing = 0;
    expect(await sessions.getAccessToken(id)).toBe(second);
    expect((await storedIn(store, id))?.accessToken).toBe(second);
    await assertGrantIntact(sessions, id, tokens, second);
  });

  it("memory: a login saved meanwhile wins over the unwritten tokens (the store is the truth)", async () => {
    const store = new FailingWrites(new MemoryTokenStore());
    const { id, sessions } = await dueSession(store, () => {
      store.failing = 1;
    });
    await sessions.getAccessToken(id);
    const again = await loggedInTokens(server(), "alice", "openid offline_access");
    await sessions.save(id, again); // the user logged in again, in another tab

    const before = refreshes();
    expect(await sessions.getAccessToken(id)).toBe(again.accessToken);
    expect(await storedIn(store, id)).toEqual(again);
    expect(refreshes()).toBe(before);
  });

  it("memory: the old tokens saved again meanwhile are replaced by the unwritten ones, whose refresh token is the live one", async () => {
    const store = new FailingWrites(new MemoryTokenStore());
    const { id, sessions, tokens } = await dueSession(store, () => {
      store.failing = 1;
    });
    const first = await sessions.getAccessToken(id);
    const key = await sessionKey(id);
    await store.inner.set(key, (await store.inner.get(key))!.value, { ttlMs: 60_000 });

    expect(await sessions.getAccessToken(id)).toBe(first);
    expect((await storedIn(store, id))?.accessToken).toBe(first);
    await assertGrantIntact(sessions, id, tokens, first);
  });

  it("memory: revoke() revokes the unwritten refresh token, the one the server honours", async () => {
    const store = new FailingWrites(new MemoryTokenStore());
    const { id, sessions } = await dueSession(store, () => {
      store.failing = Number.POSITIVE_INFINITY;
    });
    await sessions.getAccessToken(id);
    const unwritten = (await sessions.get(id))!;
    expect(await introspect(server(), unwritten.refreshToken!, WEB_APP)).toMatchObject({ active: true });

    expect(await sessions.revoke(id)).toEqual({ revoked: true });
    expect(await introspect(server(), unwritten.refreshToken!, WEB_APP)).toMatchObject({ active: false });
    store.failing = 0;
    expect(await sessions.get(id)).toBeUndefined();
    await expect(sessions.getAccessToken(id)).rejects.toMatchObject({ reason: "no_session" });
  });

  it("memory: a process that stops before the write loses the new tokens: the next refresh is refused (as documented)", async () => {
    const store = new FailingWrites(new MemoryTokenStore());
    const { id, sessions, tokens } = await dueSession(store, () => {
      store.failing = 1;
    });
    await sessions.getAccessToken(id);
    // Another process (or this one restarted) has only the store, and its old refresh token.
    const later = Date.now() + 3_590_000;
    const restarted = createSessionTokens(webClient(server(), { now: () => later }), {
      encryptionKeys: keyring,
      store,
    });
    await expect(restarted.getAccessToken(id)).rejects.toMatchObject({ reason: "refresh_rejected" });
    expect(await introspect(server(), tokens.refreshToken!, WEB_APP)).toMatchObject({ active: false });
  });
});

describe("redis: a session write that reaches Redis after the store gave up", () => {
  const clients: Redis[] = [];
  afterAll(() => {
    for (const client of clients) client.disconnect();
  });

  it("is refused there; the new tokens are handed out, and written back on the next call", async () => {
    const proxy = await startRedisProxy(Number(new URL(inject("redisUrl")).port));
    onTestFinished(() => proxy.close());
    const slow = new Redis(`redis://127.0.0.1:${proxy.port}`);
    const direct = new Redis(inject("redisUrl"));
    clients.push(slow, direct);
    slow.on("error", () => {});
    const prefix = `test:unwritten:${process.pid}:${Date.now().toString(36)}:`;
    const store = new RedisTokenStore(slow, { prefix, operationTimeoutMs: 300 });
    const check = new RedisTokenStore(direct, { prefix });
    let held: ReturnType<typeof proxy.hold> | undefined;
    const { id, sessions, tokens, events } = await dueSession(
      store,
      async (sessionId) => {
        held = proxy.hold(await sessionKey(sessionId)); // the next command naming the session: the write
      },
      { lockTtlMs: SHORTEST_LEASE_300_MS_STORE },
    );
    const before = refreshes();

    const first = await sessions.getAccessToken(id);
    expect(first).not.toBe(tokens.accessToken);
    expect(events).toContainEqual({ type: "oauth.session.write_failed", code: "store_unavailable" });
    await held!.held;
    await new Promise((resolve) => setTimeout(resolve, 600)); // past the write's deadline
    await held!.deliver();
    expect(await storedIn(check, id)).toEqual(tokens); // the late write changed nothing

    expect(await sessions.getAccessToken(id)).toBe(first);
    expect((await storedIn(check, id))?.accessToken).toBe(first);
    expect(refreshes()).toBe(before + 1);
    await assertGrantIntact(sessions, id, tokens, first);
  });
});

describe("postgres: a session write blocked past the store's timeout, then carried out", () => {
  const table = `oauth_unwritten_${process.pid}_${Date.now().toString(36)}`;
  const pools: pg.Pool[] = [];
  const pool = () => {
    const made = new pg.Pool({ connectionString: inject("databaseUrl"), max: 4 });
    made.on("error", () => {});
    pools.push(made);
    return made;
  };
  beforeAll(async () => {
    await migrate(pool(), { table });
  });
  afterAll(async () => {
    await pools[0]?.query(`DROP TABLE IF EXISTS "${table}"`);
    await Promise.all(pools.map((p) => p.end()));
  });

  it("the new tokens are handed out; the write that landed late is taken as written", async () => {
    const blocker = await pool().connect();
    onTestFinished(() => blocker.release());
    const store = new PostgresTokenStore(pool(), { table, operationTimeoutMs: 300 });
    const { id, sessions, tokens, events } = await dueSession(
      store,
      async (sessionId) => {
        // Another transaction holds the session's row: the write waits for it, past the store's timeout.
        await blocker.query("BEGIN");
        await blocker.query(`SELECT 1 FROM "${table}" WHERE key = $1 FOR UPDATE`, [await sessionKey(sessionId)]);
      },
      { lockTtlMs: SHORTEST_LEASE_300_MS_STORE },
    );
    const before = refreshes();

    const first = await sessions.getAccessToken(id);
    expect(first).not.toBe(tokens.accessToken);
    expect(events).toContainEqual({ type: "oauth.session.write_failed", code: "store_unavailable" });
    await blocker.query("COMMIT"); // the waiting write now runs, compare-and-set, and lands
    let landed: TokenSet | undefined;
    for (let i = 0; i < 50 && landed?.accessToken !== first; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      landed = await storedIn(store, id);
    }
    expect(landed?.accessToken).toBe(first);

    expect(await sessions.getAccessToken(id)).toBe(first);
    expect(refreshes()).toBe(before + 1);
    await assertGrantIntact(sessions, id, tokens, first);
  });
});

describe("a server that keeps the refresh token (RFC 6749 §6: no refresh_token in the answer)", () => {
  it("unwritten tokens never go over a newer session another process stored since", async () => {
    const issuer = "https://as.example";
    let issued = 0;
    // Every refresh answers a new access token and no refresh token: the old one stays valid.
    const keeping: FetchLike = async () =>
      Response.json({ access_token: `AT${++issued}`, token_type: "Bearer", expires_in: 3600 });
    let now = Date.now();
    const clientOf = () =>
      createOAuthClient({
        issuer,
        clientId: "c",
        clientSecret: "s",
        metadata: { issuer, token_endpoint: `${issuer}/token` },
        fetch: keeping,
        retry: false,
        now: () => now,
      });
    const shared = new MemoryTokenStore();
    const failing = new FailingWrites(shared);
    const processA = createSessionTokens(clientOf(), { encryptionKeys: keyring, store: failing });
    const processB = createSessionTokens(clientOf(), { encryptionKeys: keyring, store: shared });
    const id = newSessionId();
    await processA.save(id, {
      accessToken: "AT0",
      tokenType: "bearer",
      expiresAt: now + 3_600_000,
      refreshToken: "RT",
      scope: undefined,
      idToken: undefined,
    });
    now += 3_590_000; // due
    failing.failing = 1;
    expect(await processA.getAccessToken(id)).toBe("AT1"); // its write failed: held in A's memory
    now += 1_000;
    expect((await processB.refresh(id)).accessToken).toBe("AT2"); // newer, stored by B
    now += 1_000;
    expect((await processA.get(id))?.accessToken).toBe("AT2"); // A's older tokens stay unwritten
    expect((await processB.get(id))?.accessToken).toBe("AT2");
  });
});

describe("a refresh grant that timed out after it was sent: its answer is still read, under the refresh lock", () => {
  it("its late answer is kept: a caller meanwhile waits for it instead of sending the used refresh token, and the grant lives on", async () => {
    const { id, sessions, tokens, events } = await dueSession(new MemoryTokenStore(), undefined, {
      firstAnswerMs: 1_500,
      lockTtlMs: 4_000,
    });
    const before = refreshes();

    await expect(sessions.refresh(id)).rejects.toMatchObject({ code: "server_unavailable" });
    expect(refreshes()).toBe(before + 1); // the server took it and rotated the refresh token
    const accessToken = await sessions.getAccessToken(id); // while the answer is still on its way

    expect(accessToken).not.toBe(tokens.accessToken);
    expect(refreshes()).toBe(before + 1); // not sent again with the used refresh token
    expect((await sessions.get(id))?.accessToken).toBe(accessToken);
    const late = events.filter((event) => event.type === "oauth.token.answered_late");
    expect(late).toMatchObject([{ grant: "refresh_token", outcome: "issued" }]);
    expect(late[0]?.type === "oauth.token.answered_late" && late[0].durationMs).toBeGreaterThan(200);
    expect(events).toContainEqual(expect.objectContaining({ type: "oauth.token.shared", grant: "refresh_token" }));
    await assertGrantIntact(sessions, id, tokens, accessToken);
  });

  it("its late answer refused after the server rotated ends the session: the tokens answered revoked, the used refresh token never sent again", async () => {
    const answered: string[] = [];
    const { id, sessions, events } = await dueSession(new MemoryTokenStore(), undefined, {
      firstAnswerMs: 1_500,
      lockTtlMs: 4_000,
      change: (body) => {
        answered.push(body.refresh_token as string);
        body.expires_in = null; // refused by oauth4webapi: not a number
      },
    });
    const before = refreshes();

    await expect(sessions.refresh(id)).rejects.toMatchObject({ code: "server_unavailable" });
    // A caller meanwhile waits for the late answer; refused, it ended the session.
    await expect(sessions.getAccessToken(id)).rejects.toMatchObject({ reason: "no_session" });
    expect(refreshes()).toBe(before + 1);
    for (let i = 0; i < 200 && !events.some((e) => e.type === "oauth.login.tokens_revoked"); i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(events.filter((e) => e.type !== "oauth.token.requested" && e.type !== "oauth.token.shared")).toMatchObject([
      { type: "oauth.token.answered_late", grant: "refresh_token", outcome: "invalid_response" },
      { type: "oauth.session.ended", reason: "refresh_answer_refused" },
      { type: "oauth.login.tokens_revoked", reason: "refresh_refused", revoked: true },
    ]);
    expect(await introspect(server(), answered[0]!, WEB_APP)).toMatchObject({ active: false });
  });

  it("no answer before the lock's lease nears its end: given up (server_unavailable), and the lock released within its lease", async () => {
    // A lease of 2.5 s: the answer is waited for until 1 s before it ends (time to write the new
    // tokens back: the memory store's calls take none, and 1 s for this process's own work).
    const { id, sessions, events } = await dueSession(new MemoryTokenStore(), undefined, {
      firstAnswerMs: 60_000,
      lockTtlMs: 2_500,
    });

    await expect(sessions.refresh(id)).rejects.toMatchObject({ code: "server_unavailable" });
    const started = performance.now();
    // The server rotated the refresh token and its answer never came: the old one is used up,
    // and the next refresh, once the lock is free, is refused. Nothing else could be done.
    await expect(sessions.getAccessToken(id)).rejects.toMatchObject({ reason: "refresh_rejected" });
    expect(performance.now() - started).toBeLessThan(2_500);
    expect(events.filter((event) => event.type === "oauth.token.answered_late")).toMatchObject([
      { grant: "refresh_token", outcome: "server_unavailable" },
    ]);
  });

  it("the answer is waited for only while the lease has room to write the new tokens back, by the store's operationTimeoutMs", async () => {
    // A store whose calls may last 400 ms: writing the new tokens back may take 5 of them (3
    // writes, a read after each lost one) and 1 s, so an answer is given up 3 s before the lease
    // ends. The lease, 5.2 s, is the shortest the timeouts allow (1 s for the token request, 1 s
    // and 8 store calls): given up 2.2 s after the lock was taken, where 1 s before the lease's
    // end (4.2 s) would leave a write taking over 1 s to land after it, and another process
    // meanwhile send the used refresh token.
    const store = sayingOperationTimeout(new MemoryTokenStore(), 400);
    const { id, sessions, events } = await dueSession(store, undefined, { firstAnswerMs: 60_000, lockTtlMs: 5_200 });
    const givenUp = () => events.some((event) => event.type === "oauth.token.answered_late");

    const started = performance.now();
    await expect(sessions.refresh(id)).rejects.toMatchObject({ code: "server_unavailable" });
    while (!givenUp()) await new Promise((resolve) => setTimeout(resolve, 10));
    const waitedMs = performance.now() - started;
    expect(waitedMs).toBeGreaterThanOrEqual(2_150);
    expect(waitedMs).toBeLessThan(3_200);
    expect(events.filter((event) => event.type === "oauth.token.answered_late")).toMatchObject([
      { grant: "refresh_token", outcome: "server_unavailable" },
    ]);
  });
});

/**
 * A rotating authorization server that revokes only the token it is given (RFC 7009 lets it: a
 * refresh token left live after a logout is a grant nothing ends), answering the client's fetch
 * (no network). Refresh tokens are numbered in the order issued; `live` holds those it honours.
 * `holdAnswer()` keeps the next refresh's answer, once the server has rotated, until the promise
 * it returns is resolved.
 */
function perTokenRevokingServer() {
  const issuer = "https://as.example";
  const live = new Set(["RT0"]);
  const revoked: string[] = [];
  const revokedEvents: OAuthEvent[] = [];
  let issued = 0;
  let held: { rotated: () => void; answer: Promise<void> } | undefined;
  const answering: FetchLike = async (input, init) => {
    const form = new URLSearchParams(String(init?.body));
    if (String(input).endsWith("/revoke")) {
      revoked.push(form.get("token")!);
      live.delete(form.get("token")!);
      return new Response(null, { status: 200 });
    }
    if (!live.delete(form.get("refresh_token")!)) return Response.json({ error: "invalid_grant" }, { status: 400 });
    const next = ++issued;
    live.add(`RT${next}`);
    const hold = held;
    held = undefined;
    hold?.rotated();
    await hold?.answer;
    return Response.json({
      access_token: `AT${next}`,
      token_type: "Bearer",
      expires_in: 3600,
      refresh_token: `RT${next}`,
    });
  };
  const client = createOAuthClient({
    issuer,
    ...WEB_APP,
    metadata: { issuer, token_endpoint: `${issuer}/token`, revocation_endpoint: `${issuer}/revoke` },
    fetch: answering,
    retry: false,
    onEvent: (event) => {
      if (event.type === "oauth.login.tokens_revoked") revokedEvents.push(event);
    },
  });
  const tokens: TokenSet = {
    accessToken: "AT0",
    tokenType: "bearer",
    expiresAt: Date.now() + 3_600_000,
    refreshToken: "RT0",
    scope: undefined,
    idToken: undefined,
  };
  return {
    client,
    tokens,
    live,
    revoked,
    revokedEvents,
    /** Holds the next refresh's answer: `rotated` settles once the server has rotated, and `answer()` lets it go. */
    holdAnswer() {
      const rotated = resolvable();
      const answer = resolvable();
      held = { rotated: () => rotated.resolve(), answer: answer.promise };
      return { rotated: rotated.promise, answer: () => answer.resolve() };
    },
  };
}

/** Resolves once `events` holds `count` events (they come in the background). */
async function eventsIn(events: OAuthEvent[], count: number): Promise<OAuthEvent[]> {
  for (let i = 0; i < 200 && events.length < count; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  return events;
}

describe("new tokens of a session gone meanwhile are revoked at the server (RFC 7009): no grant left that nothing holds", () => {
  it("revoke() while a refresh is on its way: the refresh's new tokens are revoked too, and the refresh is no_session", async () => {
    const server = perTokenRevokingServer();
    const sessions = createSessionTokens(server.client, { encryptionKeys: keyring });
    const id = newSessionId();
    await sessions.save(id, server.tokens);
    const held = server.holdAnswer();

    const refreshing = sessions.refresh(id).catch((error: unknown) => error);
    await held.rotated; // the server issued RT1, its answer still on its way
    expect(await sessions.revoke(id)).toEqual({ revoked: true }); // the user logs out
    held.answer();

    expect(await refreshing).toMatchObject({ name: "LoginRequiredError", reason: "no_session" });
    expect(await eventsIn(server.revokedEvents, 1)).toEqual([
      { type: "oauth.login.tokens_revoked", reason: "session_ended", revoked: true },
    ]);
    expect(server.revoked).toEqual(["RT0", "AT0", "RT1", "AT1"]);
    expect([...server.live]).toEqual([]);
    expect(await sessions.get(id)).toBeUndefined();
  });

  it("logged out by another process while this one holds unwritten tokens: they are revoked, not just forgotten", async () => {
    const server = perTokenRevokingServer();
    const shared = new MemoryTokenStore();
    const store = new FailingWrites(shared);
    const processA = createSessionTokens(server.client, { encryptionKeys: keyring, store });
    const processB = createSessionTokens(server.client, { encryptionKeys: keyring, store: shared });
    const id = newSessionId();
    await processA.save(id, server.tokens);
    store.failing = 1;
    expect((await processA.refresh(id)).refreshToken).toBe("RT1"); // held in A's memory only

    expect(await processB.revoke(id)).toEqual({ revoked: true }); // B revokes what the store holds: RT0, used up
    expect([...server.live]).toEqual(["RT1"]);
    expect(await processA.get(id)).toBeUndefined(); // A finds the session gone

    expect(await eventsIn(server.revokedEvents, 1)).toEqual([
      { type: "oauth.login.tokens_revoked", reason: "session_ended", revoked: true },
    ]);
    expect(server.revoked).toEqual(["RT0", "AT0", "RT1", "AT1"]);
    expect([...server.live]).toEqual([]);
  });
});
