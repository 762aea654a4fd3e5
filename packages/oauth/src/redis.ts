/**
 * `@interlock/oauth/redis`: the token store on Redis (ioredis `Redis` or `Cluster`). Each
 * operation is one Lua script on one key: atomic on the server, one round trip, and safe on Redis
 * Cluster. A value lives in a hash (`value`, `version`) that expires with its ttl. The client is
 * the caller's: the store defines its scripts on it and never connects, closes or reconfigures it.
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

// ARGV: value, new version, ttlMs, mode ('any' | 'absent' | 'version'), expected version. The
// new version is made for this call: finding it means this very set ran already, and ioredis
// resent it after a dropped connection lost the reply; the copy answers as the first run did,
// not "another writer won".
const SET = `local current = redis.call('HGET', KEYS[1], 'version')
if current == ARGV[2] then return ARGV[2] end
if ARGV[4] == 'absent' and current then return false end
if ARGV[4] == 'version' and current ~= ARGV[5] then return false end
redis.call('HSET', KEYS[1], 'value', ARGV[1], 'version', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return ARGV[2]`;

// ARGV: expected version ('' for any), call id, traceTtlMs. The value goes, and in its place a
// trace of this call (`deleted`, no value or version: absent to every other script) for
// traceTtlMs, the store's operation timeout, so that a copy ioredis resends after a dropped
// connection lost the reply answers 1, as the first run did, not 0 because the value is gone.
const DELETE = `local h = redis.call('HMGET', KEYS[1], 'version', 'deleted')
if h[2] == ARGV[2] then return 1 end
if not h[1] or (ARGV[1] ~= '' and h[1] ~= ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'deleted', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`;

// Versioned names: a later version of these scripts gets new names instead of replacing these
// on a client that two versions of the package share.
const SCRIPTS = {
  get: ["interlockOAuthGet1", GET],
  set: ["interlockOAuthSet2", SET],
  delete: ["interlockOAuthDel2", DELETE],
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
    const reply = await this.#run("set", key, [value, newVersion(), options.ttlMs, mode, expect ?? ""]);
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
