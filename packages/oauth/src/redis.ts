/**
 * `@interlock/oauth/redis`: the token store on Redis (ioredis `Redis` or `Cluster`). Each
 * operation is one Lua script on one key: atomic on the server, one round trip, and safe on Redis
 * Cluster. A value lives in a hash (`value`, `version`, and `calls`: see TRACE) that expires with
 * its ttl. The client is the caller's: the store defines its scripts on it and never connects,
 * closes or reconfigures it.
 */

import { boundedStoreCall, InterlockConfigError, timeoutOption } from "@interlock/core";
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

// ARGV: none. Reply: [value, version], both nil when there is no live value.
const GET = `return redis.call('HMGET', KEYS[1], 'value', 'version')`;

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
const TRACE = (call: string) => `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
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

// ARGV: value, new version (the call's id: made for this call), ttlMs, mode ('any' | 'absent' |
// 'version'), expected version, traceTtlMs. A copy of a set that ran answers its version, as the
// first run did: not "another writer won", and not a second write over a newer value.
const SET = `${TRACE("ARGV[2]")}
if ran then return ARGV[2] end
if ARGV[4] == 'absent' and h[1] then return false end
if ARGV[4] == 'version' and h[1] ~= ARGV[5] then return false end
redis.call('HSET', KEYS[1], 'value', ARGV[1], 'version', ARGV[2], 'calls', traced(ARGV[6]))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return ARGV[2]`;

// ARGV: expected version ('' for any), call id, traceTtlMs. The value goes; the trace stays, for
// traceTtlMs (no value or version: absent to every other script), so that a copy of this delete
// answers 1, as the first run did, not 0 because the value is gone, and deletes nothing newer.
const DELETE = `${TRACE("ARGV[2]")}
if ran then return 1 end
if not h[1] or (ARGV[1] ~= '' and h[1] ~= ARGV[1]) then return 0 end
local trace = traced(ARGV[3])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'calls', trace)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`;

// Versioned names: a later version of these scripts gets new names instead of replacing these
// on a client that two versions of the package share.
const SCRIPTS = {
  get: ["interlockOAuthGet1", GET],
  set: ["interlockOAuthSet3", SET],
  delete: ["interlockOAuthDel3", DELETE],
} as const;

type Operation = keyof typeof SCRIPTS;
type Scripted = Record<string, (key: string, ...args: Array<string | number>) => Promise<unknown>>;

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

  constructor(client: RedisScriptingClient, options: RedisTokenStoreOptions = {}) {
    if (typeof client?.defineCommand !== "function") {
      throw new InterlockConfigError("the redis token store needs an ioredis Redis or Cluster client");
    }
    this.prefix = options.prefix ?? DEFAULT_REDIS_PREFIX;
    if (typeof this.prefix !== "string") throw new InterlockConfigError("prefix must be a string");
    this.operationTimeoutMs = timeoutOption("operationTimeoutMs", options.operationTimeoutMs, 2_000);
    for (const [name, lua] of Object.values(SCRIPTS)) client.defineCommand(name, { lua, numberOfKeys: 1 });
    this.#client = client as unknown as Scripted;
  }

  async get(key: string): Promise<TokenStoreEntry | undefined> {
    assertEntryKey(key);
    const [value, version] = (await this.#run("get", key, [])) as [string | null, string | null];
    return value === null || version === null ? undefined : { value, version };
  }

  async set(key: string, value: string, options: TokenStoreSetOptions): Promise<string | undefined> {
    assertSet(key, value, options);
    const { expect } = options;
    const mode = expect === undefined ? "any" : expect === null ? "absent" : "version";
    const args = [value, newVersion(), options.ttlMs, mode, expect ?? "", this.operationTimeoutMs];
    const reply = await this.#run("set", key, args);
    return typeof reply === "string" ? reply : undefined;
  }

  async delete(key: string, expect?: string): Promise<boolean> {
    assertEntryKey(key);
    // Number(): a client with ioredis' stringNumbers option answers integers as strings.
    const args = [expect ?? "", crypto.randomUUID(), this.operationTimeoutMs];
    return Number(await this.#run("delete", key, args)) === 1;
  }

  /** One script call, bounded by `operationTimeoutMs`; any failure is a `StoreUnavailableError`. */
  async #run(operation: Operation, key: string, args: Array<string | number>): Promise<unknown> {
    return boundedStoreCall(this.name, operation, this.operationTimeoutMs, () => {
      const command = this.#client[SCRIPTS[operation][0]]!;
      return command.call(this.#client, this.prefix + key, ...args);
    });
  }
}

/** A token store on the caller's ioredis `Redis` or `Cluster` client. */
export function redisTokenStore(client: RedisScriptingClient, options?: RedisTokenStoreOptions): RedisTokenStore {
  return new RedisTokenStore(client, options);
}
