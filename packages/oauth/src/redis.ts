/**
 * `@interlock/oauth/redis`: the token store on Redis (ioredis `Redis` or `Cluster`). Each
 * operation is one Lua script on one key: atomic on the server, one round trip, and safe on Redis
 * Cluster. A value lives in a hash (`value`, `version`, and `calls`: see TRACE) that expires with
 * its ttl. Every write carries a deadline on the server's clock, past which it changes nothing
 * (see IN_TIME). The client is the caller's: the store defines its scripts on it (and on a
 * Cluster listens to its 'node error' and 'refresh' events: core's watchRedisNodes) and never
 * connects, closes or reconfigures it.
 */

import {
  assertOptionNames,
  deadlineStoreCall,
  InterlockConfigError,
  optionNames,
  type RedisNeeds,
  redisClientKeyPrefix,
  redisNeeds,
  redisReplyError,
  redisUnavailableError,
  ServerClock,
  type ServerTimedReply,
  timeoutOption,
  watchRedisNodes,
} from "@interlock/core";
import {
  assertEntryKey,
  assertSet,
  newVersion,
  type TokenStore,
  type TokenStoreEntry,
  type TokenStoreSetOptions,
} from "./store/contract.js";

/**
 * What the store needs from an ioredis `Redis` or `Cluster`: `defineCommand`, then the commands it
 * defines. Structural, so users need no ioredis types of ours.
 */
export interface RedisScriptingClient {
  /** ioredis' `defineCommand`: registers a Lua script as a command on the client. */
  defineCommand(name: string, definition: { lua: string; numberOfKeys?: number }): void;
}

/** The Redis token store's key prefix and timeout. */
export interface RedisTokenStoreOptions {
  /** Put before every key; lets several apps share one Redis. Default `"interlock:oauth:"`. */
  prefix?: string;
  /**
   * Longest wait for one operation, in ms. Default 2,000. ioredis queues commands while it
   * reconnects and never times one out by itself: without a bound an outage would hang callers.
   */
  operationTimeoutMs?: number;
}

const REDIS_TOKEN_STORE_OPTION_NAMES = optionNames<RedisTokenStoreOptions>({ prefix: true, operationTimeoutMs: true });

// The server's time, in whole ms since the epoch: every reply carries it first, for the store's
// ServerClock (core), which estimates from it the deadlines writes carry.
const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

// ARGV: none. Reply: [now, value, version], value and version nil when there is no live value.
const GET = `${NOW}
local h = redis.call('HMGET', KEYS[1], 'value', 'version')
return {now, h[1], h[2]}`;

/**
 * The calls that wrote this key lately, by id, for the copy of a call ioredis resends after a
 * dropped connection lost the reply: that copy must answer as the first run did and change
 * nothing, even when another writer wrote since (a plain set would overwrite the newer value). A
 * field of the key's hash, `calls`, holds "id untilMs" pairs: each lasts the store's operation
 * timeout (on the server's clock), the longest the caller waits for the reply, or less when the
 * value's ttl is shorter (the trace goes with the key). After this prelude,
 * `ran` tells whether CALL (the call's id) is among them, `calls` holds the live ones and
 * `traced(ms)` adds CALL's own for ms. Needs `version` first in HMGET, then `calls`.
 */
const TRACE = (call: string) => `${NOW}
local h = redis.call('HMGET', KEYS[1], 'version', 'calls')
local calls, ran = {}, false
for id, untilMs in string.gmatch(h[2] or '', '([^ ]+) (%d+)') do
  if tonumber(untilMs) > now then
    calls[#calls + 1] = id .. ' ' .. untilMs
    if id == ${call} then ran = true end
  end
end
local function traced(ms)
  calls[#calls + 1] = ${call} .. ' ' .. (now + tonumber(ms))
  return table.concat(calls, ' ')
end`;

/**
 * Ends the script with [now, 'late'] when the call's deadline (ARGV[n]: ms on the server's clock,
 * '' for none) has passed: its caller was already told it failed and has moved on, so a write
 * now (a first run that sat in ioredis' queue or on a slow path) would overwrite or delete what
 * was written since. Goes right before the write: an answer that changes nothing needs no check.
 */
const IN_TIME = (n: number) => `if ARGV[${n}] ~= '' and now > tonumber(ARGV[${n}]) then return {now, 'late'} end`;

// ARGV: value, new version (the call's id: made for this call), ttlMs, mode ('any' | 'absent' |
// 'version'), expected version, traceTtlMs, deadline. Reply: [now, 'written', version],
// [now, 'lost'] (another value is there) or [now, 'late']. A copy of a set that ran answers its
// version, as the first run did: not "another writer won", and not a second write over a newer value.
const SET = `${TRACE("ARGV[2]")}
if ran then return {now, 'written', ARGV[2]} end
if ARGV[4] == 'absent' and h[1] then return {now, 'lost'} end
if ARGV[4] == 'version' and h[1] ~= ARGV[5] then return {now, 'lost'} end
${IN_TIME(7)}
redis.call('HSET', KEYS[1], 'value', ARGV[1], 'version', ARGV[2], 'calls', traced(ARGV[6]))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {now, 'written', ARGV[2]}`;

// ARGV: expected version ('' for any), call id, traceTtlMs, deadline. Reply: [now, 'deleted'],
// [now, 'lost'] (no value, or another one) or [now, 'late']. The value goes; the trace stays, for
// traceTtlMs (no value or version: absent to every other script), so that a copy of this delete
// answers 'deleted', as the first run did, not 'lost' because the value is gone, and deletes nothing newer.
const DELETE = `${TRACE("ARGV[2]")}
if ran then return {now, 'deleted'} end
if not h[1] or (ARGV[1] ~= '' and h[1] ~= ARGV[1]) then return {now, 'lost'} end
${IN_TIME(4)}
local trace = traced(ARGV[3])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'calls', trace)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {now, 'deleted'}`;

// Versioned names: a later version of these scripts gets new names instead of replacing these
// on a client that two versions of the package share.
const SCRIPTS = {
  get: ["interlockOAuthGet2", GET],
  set: ["interlockOAuthSet4", SET],
  delete: ["interlockOAuthDel4", DELETE],
} as const;

type Operation = keyof typeof SCRIPTS;

/**
 * The server's time (first in every reply; Number(): a client with ioredis' stringNumbers option
 * answers integers as strings) and whether the script refused as late.
 */
function timedReply(reply: unknown[]): ServerTimedReply {
  if (!Array.isArray(reply)) throw new Error(`unexpected reply ${JSON.stringify(reply)}`);
  return { serverMs: Number(reply[0]), late: reply[1] === "late" };
}

type Scripted = Record<string, (key: string, ...args: Array<string | number>) => Promise<unknown>>;

/**
 * Every command the store sends (EVAL, EVALSHA) or its scripts call: what its ACL user needs (on
 * a Cluster, with what ioredis sends itself: core's `redisNeeds`).
 */
const COMMANDS = ["EVAL", "EVALSHA", "TIME", "HMGET", "HSET", "PEXPIRE", "DEL"] as const;

/** The key prefix used when none is given. */
export const DEFAULT_REDIS_PREFIX = "interlock:oauth:";

/** A `TokenStore` on your ioredis client: one atomic script per operation; the client stays yours. */
export class RedisTokenStore implements TokenStore {
  readonly name = "redis";
  /** Put before every key. */
  readonly prefix: string;
  /** The bound on every operation, in ms. */
  readonly operationTimeoutMs: number;
  readonly #client: Scripted;
  /** The server's clock as the replies tell it: where each write's deadline comes from. */
  readonly #clock = new ServerClock();
  /** What the store needs from the server, for the fix a setup mistake names. */
  readonly #needs: RedisNeeds;

  constructor(client: RedisScriptingClient, options: RedisTokenStoreOptions = {}) {
    assertOptionNames("redisTokenStore()", options, REDIS_TOKEN_STORE_OPTION_NAMES);
    if (typeof client?.defineCommand !== "function") {
      throw new InterlockConfigError("the redis token store needs an ioredis Redis or Cluster client");
    }
    this.prefix = options.prefix ?? DEFAULT_REDIS_PREFIX;
    if (typeof this.prefix !== "string") throw new InterlockConfigError("prefix must be a string");
    this.operationTimeoutMs = timeoutOption("operationTimeoutMs", options.operationTimeoutMs, 2_000);
    const keyPrefix = redisClientKeyPrefix(client) + this.prefix;
    this.#needs = redisNeeds(client, { label: "the redis token store", commands: COMMANDS, keyPrefix });
    // A Cluster's wrong password or ACL shows only by its events: core's redisUnavailableError reads them.
    watchRedisNodes(client);
    for (const [name, lua] of Object.values(SCRIPTS)) client.defineCommand(name, { lua, numberOfKeys: 1 });
    this.#client = client as unknown as Scripted;
  }

  async get(key: string): Promise<TokenStoreEntry | undefined> {
    assertEntryKey(key);
    const [, value, version] = await this.#run("get", key, []);
    return typeof value === "string" && typeof version === "string" ? { value, version } : undefined;
  }

  async set(key: string, value: string, options: TokenStoreSetOptions): Promise<string | undefined> {
    assertSet(key, value, options);
    const { expect } = options;
    const mode = expect === undefined ? "any" : expect === null ? "absent" : "version";
    const args = [value, newVersion(), options.ttlMs, mode, expect ?? "", this.operationTimeoutMs];
    const [, outcome, version] = await this.#run("set", key, args);
    return outcome === "written" && typeof version === "string" ? version : undefined;
  }

  async delete(key: string, expect?: string): Promise<boolean> {
    assertEntryKey(key);
    const args = [expect ?? "", crypto.randomUUID(), this.operationTimeoutMs];
    const [, outcome] = await this.#run("delete", key, args);
    return outcome === "deleted";
  }

  /**
   * One script call, bounded by `operationTimeoutMs`; any failure is a `StoreUnavailableError`,
   * but a setup mistake (an ACL user without a command or key, a wrong password, a command
   * renamed away, a single client pointed at a Cluster node, an untrusted TLS certificate, and on
   * a Cluster a node's refusal while it learns the slots: see core's redis-errors.ts), which is
   * an `InterlockConfigError` naming the fix.
   * A write carries its deadline on the server's clock as its last argument: past it, the
   * script answers 'late' and writes nothing, which is a `StoreUnavailableError` too. Before the
   * first reply told the store that clock, a write first reads the key (the `get` script, which
   * answers the server's time), so it never goes without a deadline: one queued while Redis was
   * down at start-up would otherwise write whenever it came back, over what was written since.
   */
  async #run(operation: Operation, key: string, args: Array<string | number>): Promise<unknown[]> {
    const call = { store: this.name, operation, timeoutMs: this.operationTimeoutMs };
    const script = (name: Operation, ...rest: Array<string | number>) => this.#script(name, key, rest);
    try {
      if (operation === "get") return await deadlineStoreCall(this.#clock, call, () => script("get"), timedReply);
      const probe = async () => ({ serverMs: timedReply(await script("get")).serverMs });
      return await deadlineStoreCall(
        this.#clock,
        call,
        (notAfter) => script(operation, ...args, notAfter ?? ""),
        timedReply,
        probe,
      );
    } catch (error) {
      throw redisUnavailableError(error, this.#client, this.#needs);
    }
  }

  /**
   * One script call, its setup mistakes made `InterlockConfigError`s here: core's bounded calls
   * pass those through as they are, and would make any other error an outage. Async, so a
   * synchronous throw (a closed client, say) rejects like any failure.
   */
  async #script(name: Operation, key: string, args: Array<string | number>): Promise<unknown[]> {
    try {
      return (await this.#client[SCRIPTS[name][0]]!.call(this.#client, this.prefix + key, ...args)) as unknown[];
    } catch (error) {
      throw redisReplyError(error, this.#needs);
    }
  }
}

/** A token store on the caller's ioredis `Redis` or `Cluster` client. */
export function redisTokenStore(client: RedisScriptingClient, options?: RedisTokenStoreOptions): RedisTokenStore {
  return new RedisTokenStore(client, options);
}
