/**
 * The Lua behind every operation. Each runs atomically on the server, touches one key
 * (KEYS[1], so it is cluster-safe) and is one round trip: ioredis sends EVALSHA and falls
 * back to EVAL by itself when the server does not know the script yet (first use on a
 * connection, after SCRIPT FLUSH or a failover).
 *
 * Layout of the key: a hash with `state` = `lock` (fields token, fingerprint, createdAt;
 * expires after the lease), `done` (the same plus call, status, headers, body, completedAt;
 * expires after the retention) or `released` (call; expires after the operation timeout). Leases use key expiry and timestamps use the
 * server's `TIME`, so clock skew between app processes cannot shorten or stretch a lease.
 *
 * A claim also carries a deadline on the server's clock and answers the server's time, from
 * which the store estimates that clock (core's `ServerClock`): a claim that first runs after its
 * caller was told "unavailable" (it sat in ioredis' queue while it reconnected, or was resent on
 * a new connection) takes no lock that nobody holds. Before its first reply the store knows no
 * bound, so it first probes (the claim with a deadline that has passed: a read) and then claims.
 *
 * A full Redis (`maxmemory` with `noeviction`) refuses a script's first write that needs memory.
 * For a claim that is right: a new key is refused (503) before any handler runs. For the scripts
 * that finish or give up a claim already admitted it is not: its handler has run, and a refused
 * `complete` would lose the record and let the retry run the handler again once the lease ends.
 * So those declare `allow-oom` (Redis 7's script flags). Servers before Redis 7 read the flag line
 * as Lua and refuse it; the store then runs the same script without it (see `refusedFlags`).
 */

import { createHash } from "node:crypto";

/** First element of a claim reply. */
export const CLAIMED = 0;
export const IN_FLIGHT = 1;
export const COMPLETED = 2;
/** The claim reached the server after its deadline and took nothing. */
export const LATE = 3;

/**
 * A claim's deadline that has always passed: the claim only reads. It answers "completed" or
 * "in flight" as usual, and on a free key refuses as late, with the server's time. The store
 * sends it as a probe before its clock has a sample, instead of a claim with no deadline.
 */
export const PROBE = 0;

/** Milliseconds since the epoch on the server's clock. */
const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/** Reads what decides whether a complete, release or extend may act. */
const LOCK = `local lock = redis.call('HMGET', KEYS[1], 'state', 'token', 'call')`;

/** After LOCK: ends the script with 0 unless ARGV[1] is the token of the live lock. */
const OWNED = `if lock[1] ~= 'lock' or lock[2] ~= ARGV[1] then return 0 end`;

/**
 * After LOCK: ends the script with 1 when the key holds what this very call left (`state`,
 * with ARGV[2], the call's id, new for every call, in `call`). ioredis resends a command whose
 * reply a dropped connection lost, and that copy must answer as the first run did, not 0
 * because the lock it acted on is gone.
 */
const RAN = (state: string) => `if lock[1] == '${state}' and lock[3] == ARGV[2] then return 1 end`;

// ARGV: token, fingerprint, lockTtlMs, deadline (ms on the server's clock; PROBE to only read;
// '' for none, which the store never sends since a claim sent before the store's first reply,
// queued while Redis was down, could take a lock long after its caller gave up). Reply:
// [outcome, now, ...]: the server's time second, for the store's clock. A lock holding this
// claim's own token (new for every claim) is the claim run before: ioredis resends a command
// whose reply a dropped connection lost, and that copy must answer "claimed", not "in flight"
// behind the lock it took itself. Past the deadline the caller was told "unavailable" and has
// moved on: a lock taken now would make the key "in flight" for a whole lease, held by nobody.
// So would the lock the first run took, when the copy comes past the deadline (ioredis waited
// to reconnect): the copy removes it, as the release the store sends after a timed-out claim
// would have, had the client been connected to send it.
const CLAIM = `${NOW}
local h = redis.call('HMGET', KEYS[1], 'state', 'fingerprint', 'status', 'headers', 'body', 'createdAt', 'completedAt', 'token')
if h[1] == 'done' then
  return {${COMPLETED}, now, h[2], tonumber(h[3]), h[4], h[5], tonumber(h[6]), tonumber(h[7])}
end
local late = ARGV[4] ~= '' and now > tonumber(ARGV[4])
if h[1] == 'lock' and h[8] == ARGV[1] then
  if late then
    redis.call('DEL', KEYS[1])
    return {${LATE}, now}
  end
  return {${CLAIMED}, now}
end
if h[1] == 'lock' then
  return {${IN_FLIGHT}, now, h[2], now + redis.call('PTTL', KEYS[1])}
end
if late then return {${LATE}, now} end
if h[1] == 'released' then redis.call('DEL', KEYS[1]) end
redis.call('HSET', KEYS[1], 'state', 'lock', 'token', ARGV[1], 'fingerprint', ARGV[2], 'createdAt', now)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {${CLAIMED}, now}`;

// ARGV: token, call id, status, headers (JSON), body, ttlMs. The fingerprint and createdAt
// stay, and so does the token (it tells which claim completed the key; `state` alone decides
// ownership); `call` tells a resent copy of this complete from a second complete.
const COMPLETE = `${LOCK}
${RAN("done")}
${OWNED}
${NOW}
redis.call('HSET', KEYS[1], 'state', 'done', 'call', ARGV[2], 'status', ARGV[3], 'headers', ARGV[4], 'body', ARGV[5], 'completedAt', now)
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1`;

// ARGV: token, call id, traceTtlMs. The lock goes, and in its place a trace of this call
// (`state` = `released`, `call`) for traceTtlMs, the store's operation timeout: long enough for
// a copy resent within the caller's wait to answer 1, short enough to cost nothing. A claim
// treats the trace as a free key.
const RELEASE = `${LOCK}
${RAN("released")}
${OWNED}
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'state', 'released', 'call', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`;

// ARGV: token, lockTtlMs.
const EXTEND = `${LOCK}
${OWNED}
return redis.call('PEXPIRE', KEYS[1], ARGV[2])`;

/**
 * Command names carry a digest of their Lua: two versions of this package sharing one client
 * then define two commands instead of one silently replacing the other's script.
 */
const named = (label: string, lua: string) => ({
  name: `interlock${label}_${createHash("sha1").update(lua).digest("hex").slice(0, 8)}`,
  lua,
});

/**
 * Redis 7's flag line: the script runs even when used memory is past `maxmemory`, and its writes
 * are not refused with OOM. Only on scripts that act for the live lock's owner, on the one key
 * the claim already created: a full Redis grows by the records of the claims in flight, no more.
 */
const ALLOW_OOM = "#!lua flags=allow-oom\n";

/** The scripts as sent to Redis 7 and later. The claim has no flag: a full Redis refuses new keys. */
export const SCRIPTS = {
  claim: named("Claim", CLAIM),
  complete: named("Complete", ALLOW_OOM + COMPLETE),
  release: named("Release", ALLOW_OOM + RELEASE),
  extend: named("Extend", ALLOW_OOM + EXTEND),
} as const;

/**
 * The same scripts without the flag line, for a server before Redis 7 (6.2 is supported), which
 * refuses it. There a full Redis refuses `complete` as it refuses a claim.
 */
export const UNFLAGGED_SCRIPTS = {
  claim: SCRIPTS.claim,
  complete: named("Complete", COMPLETE),
  release: named("Release", RELEASE),
  extend: named("Extend", EXTEND),
} as const;

export type Operation = keyof typeof SCRIPTS;

/**
 * Whether `error` may be a server refusing a script's flag line, before running anything: Redis
 * before 7 compiles it as Lua, where `#!` is no syntax ("Error compiling script … unexpected
 * symbol near '#'"); a compatible server may name the shebang instead. Any other compile error
 * comes back the same from the script without the line, so mistaking one costs nothing.
 */
export function refusedFlags(error: unknown): boolean {
  return error instanceof Error && /Error compiling script|shebang/i.test(error.message);
}

/**
 * A reply element in buffer mode: bulk strings as Buffers, integers as numbers (as strings on
 * a client with ioredis' `stringNumbers`), nil as null.
 */
export type ReplyItem = Buffer | number | string | null;

/**
 * What the store needs from an ioredis `Redis` or `Cluster`: `defineCommand`, and then the
 * commands it defines. Structural, so any ioredis major with the same API fits.
 */
export interface ScriptingClient {
  /** ioredis' `defineCommand`: registers a Lua script as a command on the client. */
  defineCommand(name: string, definition: { lua: string; numberOfKeys?: number }): void;
}

type Scripted = Record<string, (key: string, ...args: Array<string | number | Buffer>) => Promise<unknown>>;

/**
 * Defines the commands on the client, with and without flags (idempotent: same name, same
 * script). Defining sends nothing: ioredis loads a script on its first call.
 */
export function defineScripts(client: ScriptingClient): void {
  for (const { name, lua } of [...Object.values(SCRIPTS), ...Object.values(UNFLAGGED_SCRIPTS)]) {
    client.defineCommand(name, { lua, numberOfKeys: 1 });
  }
}

/**
 * Runs one script through its Buffer variant, so binary bodies come back byte for byte;
 * `flagged` false for a server that refused the flag line.
 */
export function callScript(
  client: ScriptingClient,
  operation: Operation,
  key: string,
  args: Array<string | number | Buffer>,
  flagged = true,
): Promise<unknown> {
  const { name } = (flagged ? SCRIPTS : UNFLAGGED_SCRIPTS)[operation];
  return (client as unknown as Scripted)[`${name}Buffer`]!(key, ...args);
}
