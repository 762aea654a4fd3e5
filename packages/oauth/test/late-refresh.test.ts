/**
 * A refresh grant that times out after it was sent. oidc-provider rotates the refresh token on
 * every refresh, the moment it takes the request, and revokes the whole grant when a used one
 * comes back: an answer abandoned at the timeout held the only copy of the new refresh token, and
 * the next refresh (with the old one) logged the user out. The answer is now still waited for,
 * under the session's refresh lock, until shortly before the lock's lease ends.
 */

import { afterEach, describe, expect, it } from "vitest";
import {
  createSessionTokens,
  type FetchLike,
  MemoryTokenStore,
  type OAuthEvent,
  type SessionTokens,
  type TokenSet,
} from "../src/index.js";
import { introspect, keyring, loggedInTokens, useAuthorizationServer, WEB_APP, webClient } from "./helpers.js";

const server = useAuthorizationServer();
const refreshes = () => server().tokenRequests("refresh_token");
const userinfo = (accessToken: string) =>
  fetch(`${server().issuer}/me`, { headers: { authorization: `Bearer ${accessToken}` } });
let sessionCounter = 0;

const timers = new Set<NodeJS.Timeout>();
afterEach(() => {
  for (const timer of timers) clearTimeout(timer);
  timers.clear();
});

/** Waits `ms`, or rejects with the signal's reason once it aborts, as fetch does for a body still to come. */
function answerAfter(ms: number, signal: AbortSignal | null | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    timers.add(timer);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    });
  });
}

/**
 * A logged-in session due for a refresh, whose next refresh grant reaches the server at once (and
 * rotates the refresh token there) but whose answer takes `answerMs` to come back.
 */
async function slowRefreshSession(answerMs: number, lockTtlMs: number) {
  const id = `late-${process.pid}-${++sessionCounter}`;
  let now = Date.now();
  let slow = true;
  const events: OAuthEvent[] = [];
  const slowAnswer: FetchLike = async (input, init) => {
    const response = await fetch(input, init);
    if (slow && String(init?.body ?? "").includes("grant_type=refresh_token")) {
      slow = false;
      await answerAfter(answerMs, init?.signal);
    }
    return response;
  };
  const client = webClient(server(), {
    fetch: slowAnswer,
    now: () => now,
    timeoutMs: 1_000,
    retry: false,
    onEvent: (event) => events.push(event),
  });
  const sessions = createSessionTokens(client, { encryptionKeys: keyring, store: new MemoryTokenStore(), lockTtlMs });
  const tokens = await loggedInTokens(server(), "alice", "openid offline_access");
  await sessions.save(id, tokens);
  now += 3_590_000; // 10 s before the access token expires: due
  return { id, sessions, tokens, events };
}

/** The grant is alive: `accessToken` works, the old refresh token is used up, and refreshing goes on. */
async function assertGrantIntact(sessions: SessionTokens, id: string, before: TokenSet, accessToken: string) {
  expect((await userinfo(accessToken)).status).toBe(200);
  expect(await introspect(server(), before.refreshToken!, WEB_APP)).toMatchObject({ active: false });
  const next = await sessions.refresh(id);
  expect((await userinfo(next.accessToken)).status).toBe(200);
  expect(await introspect(server(), next.refreshToken!, WEB_APP)).toMatchObject({ active: true });
}

describe("a refresh grant that timed out after it was sent", () => {
  it("its late answer is kept: a caller meanwhile waits for it instead of sending the used refresh token, and the grant lives on", async () => {
    const { id, sessions, tokens, events } = await slowRefreshSession(1_500, 4_000);
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

  it("no answer before the lock's lease nears its end: given up (server_unavailable), and the lock released within its lease", async () => {
    // A lease of 2.5 s: the answer is waited for until 1 s (the store's allowance) before it ends.
    const { id, sessions, events } = await slowRefreshSession(60_000, 2_500);

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
});
