/**
 * The Redis store. Each operation is one Lua script on one key: one round trip, atomic on the
 * server, and safe on Redis Cluster. The client is the user's: the store defines its scripts
 * on it and never connects, disconnects or reconfigures it.
 */

import { randomUUID } from "node:crypto";
import {
  assertClaim,
  assertComplete,
  assertKey,
  assertOptionNames,
  boundedStoreCall,
  type ClaimOptions,
  type ClaimResult,
  type CompleteOptions,
  deadlineStoreCall,
  InterlockConfigError,
  type InterlockStore,
  isRedisCluster,
  optionNames,
  positiveIntegerOption,
  type RedisNeeds,
  redisClientKeyPrefix,
  redisNeeds,
  redisReplyError,
  redisUnavailableError,
  refuseTransaction,
  ServerClock,
  type ServerTimedReply,
  type StoredRecord,
  type StoredResponse,
  StoreUnavailableError,
  timeoutOption,
  watchRedisNodes,
} from "@interlock/core";
import { assertPrefix, redisKey } from "./keys.js";
import {
  CLAIMED,
  COMPLETED,
  callScript,
  defineScripts,
  IN_FLIGHT,
  LATE,
  type Operation,
  PROBE,
  type ReplyItem,
  refusedFlags,
  type ScriptingClient,
} from "./scripts.js";

/** The Redis store's key prefix, timeout and record bound. */
export interface RedisStoreOptions {
  /** Put before every key; lets several apps share one Redis. Default `"interlock:"`. */
  prefix?: string;
  /**
   * Longest wait for any one operation, in ms. Default 2,000. ioredis queues commands while
   * it reconnects and never times a command out unless told to: without this bound an outage
   * would hang requests instead of failing them (503).
   */
  operationTimeoutMs?: number;
  /**
   * Largest record (body plus header text) kept, in bytes. Default 1 MiB; at most 256 MiB. Keep
   * it below the server's `proto-max-bulk-len` (512 MB by default).
   */
  maxRecordBytes?: number;
}

const REDIS_STORE_OPTION_NAMES = optionNames<RedisStoreOptions>({
  prefix: true,
  operationTimeoutMs: true,
  maxRecordBytes: true,
});

/** The key prefix used when none is given. */
export const DEFAULT_PREFIX = "interlock:";
/** The default bound on every operation: 2 s. */
export const DEFAULT_OPERATION_TIMEOUT_MS = 2_000;
/** The default largest record: 1 MiB. */
export const DEFAULT_MAX_RECORD_BYTES = 1024 * 1024;
// Redis refuses a bulk string past its proto-max-bulk-len (512 MB by default), and only when
// `complete` sends it, after the handler ran: bounded well below it, as the postgres store is.
const MAX_RECORD_LIMIT = 256 * 1024 * 1024;

function maxRecordBytesOption(value: number | undefined): number {
  const bytes = positiveIntegerOption("maxRecordBytes", value, DEFAULT_MAX_RECORD_BYTES);
  if (bytes > MAX_RECORD_LIMIT) {
    throw new InterlockConfigError(`maxRecordBytes must be at most ${MAX_RECORD_LIMIT} (256 MiB)`);
  }
  return bytes;
}

/**
 * Every command the store sends (EVAL, EVALSHA) or its scripts call (scripts.ts): what its ACL
 * user needs (on a Cluster, with what ioredis sends itself: core's `redisNeeds`).
 */
const COMMANDS = ["EVAL", "EVALSHA", "TIME", "HMGET", "HSET", "PEXPIRE", "PTTL", "DEL"] as const;

const text = (item: ReplyItem) => (Buffer.isBuffer(item) ? item.toString("utf8") : String(item));

/** A record from a claim reply: [COMPLETED, now, fingerprint, status, headers, body, createdAt, completedAt]. */
function toRecord(reply: ReplyItem[]): StoredRecord {
  const [, , fingerprint, status, headers, body, createdAt, completedAt] = reply;
  return {
    status: Number(status),
    headers: JSON.parse(text(headers ?? null)) as Array<[string, string]>,
    // A copy: the reply buffer may be a view on a larger socket chunk.
    body: Buffer.isBuffer(body) ? new Uint8Array(body) : new Uint8Array(),
    fingerprint: text(fingerprint ?? null),
    createdAt: Number(createdAt),
    completedAt: Number(completedAt),
  };
}

/** An integer reply as a number: the client's `stringNumbers` option turns integers into strings. */
const integer = (reply: unknown) => Number(reply);

/** A claim reply's outcome and the server's time: [outcome, now, ...]. */
function timedClaim(reply: unknown): ServerTimedReply {
  if (!Array.isArray(reply)) throw new Error(`unexpected claim reply ${JSON.stringify(reply)}`);
  return { serverMs: Number(reply[1]), late: integer(reply[0]) === LATE };
}

function toClaimResult(reply: unknown, token: string): ClaimResult {
  const items = reply as ReplyItem[];
  switch (integer(items[0])) {
    case CLAIMED:
      return { state: "claimed", token };
    case IN_FLIGHT:
      return { state: "in_flight", fingerprint: text(items[2] ?? null), lockExpiresAt: Number(items[3]) };
    case COMPLETED:
      return { state: "completed", record: toRecord(items) };
    default:
      throw new Error(`unexpected claim reply ${JSON.stringify(items[0])}`);
  }
}

/** Whether ioredis has a connection up (`status` "ready"); a client that tells no status is taken as connected. */
function connected(client: ScriptingClient): boolean {
  const { status } = client as { status?: unknown };
  return status === undefined || status === "ready";
}

/**
 * An `InterlockStore` on your ioredis client: one atomic script per operation, leases and
 * timestamps on the server's clock, keys hash-tagged for Redis Cluster. The client stays yours.
 */
export class RedisStore implements InterlockStore {
  readonly name = "redis";
  readonly maxRecordBytes: number;
  /** Put before every key. */
  readonly prefix: string;
  /** The bound on every operation, in ms. */
  readonly operationTimeoutMs: number;
  readonly #client: ScriptingClient;
  /** The client's `keyPrefix` when the scripts were defined: part of every key on the server. */
  readonly #clientPrefix: string;
  /** The server's clock as claim replies tell it: where each claim's deadline comes from. */
  readonly #clock = new ServerClock();
  /** What the store needs from the server, for the fix a setup mistake names. */
  readonly #needs: RedisNeeds;
  /** The server refused a script's flag line (before Redis 7): scripts go without it. */
  #flagsRefused = false;

  /** `client` is an ioredis `Redis` or `Cluster`, connected or lazy; it stays the caller's. */
  constructor(client: ScriptingClient, options: RedisStoreOptions = {}) {
    assertOptionNames("redisStore()", options, REDIS_STORE_OPTION_NAMES);
    if (typeof client?.defineCommand !== "function") {
      throw new InterlockConfigError("redis store needs an ioredis Redis or Cluster client");
    }
    this.prefix = assertPrefix(options.prefix ?? DEFAULT_PREFIX);
    this.operationTimeoutMs = timeoutOption(
      "operationTimeoutMs",
      options.operationTimeoutMs,
      DEFAULT_OPERATION_TIMEOUT_MS,
    );
    this.maxRecordBytes = maxRecordBytesOption(options.maxRecordBytes);
    this.#client = client;
    // A script keeps the prefix its client had when it was defined (below), as the store does.
    this.#clientPrefix = clusterSafeKeyPrefix(client);
    this.#needs = redisNeeds(client, {
      label: "redis store",
      commands: COMMANDS,
      keyPrefix: this.#clientPrefix + this.prefix,
    });
    // A Cluster's wrong password or ACL shows only by its events: core's redisUnavailableError reads them.
    watchRedisNodes(client);
    defineScripts(client);
  }

  /**
   * The Redis key that holds `key`'s lock and record, as operators type it in `redis-cli`: with
   * the client's own `keyPrefix`, if it has one, before the store's `prefix`.
   */
  keyFor(key: string): string {
    return this.#clientPrefix + this.#key(key);
  }

  /** The key as the store hands it to ioredis, which adds its `keyPrefix` itself. */
  #key(key: string): string {
    return redisKey(this.prefix, key);
  }

  async claim(key: string, options: ClaimOptions): Promise<ClaimResult> {
    assertClaim(key, options);
    // The token is made here so a winner needs nothing more from the server than "claimed".
    const token = randomUUID();
    const redisKey = this.#key(key);
    const args = [token, options.fingerprint, options.lockTtlMs];
    // With a deadline on the server's clock: a claim that first runs after its caller was told
    // "unavailable" must take no lock (see scripts.ts). Before the clock's first sample, a probe
    // first: the claim script with the deadline `PROBE`, already past, so it only reads (answers
    // "completed" or "in flight", or refuses as late on a free key) and tells the server's time.
    // Not a `TIME`: on a Cluster that goes to any node, perhaps one that is down; the probe asks
    // the node that will judge the claim's deadline. Only until the first reply: one round trip
    // per claim after it.
    const probe = async () => {
      const reply = await this.#script("claim", redisKey, [...args, PROBE]);
      const { serverMs, late } = timedClaim(reply);
      return { serverMs, answer: late ? undefined : reply };
    };
    try {
      const reply = await deadlineStoreCall(
        this.#clock,
        { store: this.name, operation: "claim", timeoutMs: this.operationTimeoutMs },
        (notAfter) => this.#script("claim", redisKey, [...args, notAfter ?? ""]),
        timedClaim,
        probe,
      );
      return toClaimResult(reply, token);
    } catch (error) {
      // The deadline errs late (it is built on an upper bound of the server's clock, see core's
      // ServerClock): a claim may still run in the few ms past its caller's timeout, or be resent
      // by ioredis after a lost reply, and hold the key for a lease with nobody behind it. Its
      // release, fenced by this claim's own token, follows it on the connection and undoes it;
      // a claim that never ran makes it a no-op. Not awaited: the caller's answer is already known.
      // Only on a connected client: while ioredis reconnects, the claim waits in its offline
      // queue or is resent once back, past its deadline either way, and a release queued behind
      // each claim refused meanwhile would double what the queue holds for as long as Redis is down.
      if (error instanceof StoreUnavailableError && connected(this.#client)) this.release(key, token).catch(() => {});
      throw redisUnavailableError(error, this.#client, this.#needs);
    }
  }

  async complete(key: string, token: string, response: StoredResponse, options: CompleteOptions): Promise<boolean> {
    assertComplete(this, key, response, options);
    refuseTransaction(this.name, options);
    const headers = JSON.stringify(response.headers.map(([name, value]) => [name, value]));
    // Copied now: a command can sit in ioredis' queue after a timeout, and the caller may
    // reuse its buffer by then.
    // The call's own id lets a copy that ioredis resends after a lost reply recognise its record.
    const args = [token, randomUUID(), response.status, headers, Buffer.from(response.body), options.ttlMs];
    return this.#run("complete", key, args, (reply) => integer(reply) === 1);
  }

  async release(key: string, token: string): Promise<boolean> {
    assertKey(key);
    const args = [token, randomUUID(), this.operationTimeoutMs];
    return this.#run("release", key, args, (reply) => integer(reply) === 1);
  }

  async extend(key: string, token: string, lockTtlMs: number): Promise<boolean> {
    assertClaim(key, { fingerprint: "", lockTtlMs });
    return this.#run("extend", key, [token, lockTtlMs], (reply) => integer(reply) === 1);
  }

  /**
   * One script call, bounded by `operationTimeoutMs`. Anything but a well-formed reply in
   * time — a connection error, a Redis error, a command still queued while ioredis
   * reconnects, a server that stopped answering — is a `StoreUnavailableError`: the caller
   * fails closed, never with a false win and never hanging. A setup mistake (core's
   * redis-errors.ts) is an `InterlockConfigError` instead.
   */
  async #run<T>(
    operation: Operation,
    key: string,
    args: Array<string | number | Buffer>,
    parse: (reply: unknown) => T,
  ): Promise<T> {
    // A synchronous throw (a closed client, say) is caught like a rejection.
    const reply = await boundedStoreCall(this.name, operation, this.operationTimeoutMs, () =>
      this.#script(operation, this.#key(key), args),
    ).catch((error: unknown) => {
      throw redisUnavailableError(error, this.#client, this.#needs);
    });
    return parse(reply);
  }

  /**
   * One script call, its setup mistakes made `InterlockConfigError`s here (core's
   * `redisReplyError`): core's bounded calls pass those through as they are, and would make any
   * other error an outage. Async, so a synchronous throw (a closed client, say) rejects like any
   * failure.
   */
  async #script(operation: Operation, redisKey: string, args: Array<string | number | Buffer>): Promise<unknown> {
    try {
      return await this.#callScript(operation, redisKey, args);
    } catch (error) {
      throw redisReplyError(error, this.#needs);
    }
  }

  /**
   * The script with its Redis 7 flag line (scripts.ts), or without it once the server refused
   * one: a server before Redis 7 refuses it without running anything, so the same call is made
   * again at once, and every later call goes without. Learnt per store, on the first refusal.
   */
  async #callScript(operation: Operation, redisKey: string, args: Array<string | number | Buffer>): Promise<unknown> {
    if (!this.#flagsRefused) {
      try {
        return await callScript(this.#client, operation, redisKey, args, true);
      } catch (error) {
        if (!refusedFlags(error)) throw error;
        this.#flagsRefused = true;
      }
    }
    return callScript(this.#client, operation, redisKey, args, false);
  }
}

/**
 * The client's `keyPrefix`. On a Cluster one with a brace is refused, as the store's `prefix` is
 * (`assertPrefix`): before the store's own tag, it would become the hash tag and put every key
 * in one slot. On a single Redis there are no slots, and it is left alone.
 */
function clusterSafeKeyPrefix(client: ScriptingClient): string {
  const keyPrefix = redisClientKeyPrefix(client);
  if (isRedisCluster(client) && /[{}]/.test(keyPrefix)) {
    throw new InterlockConfigError(
      `redis store: the Cluster client's keyPrefix ${JSON.stringify(keyPrefix)} has a \`{\` or \`}\`: it would put every key in one slot`,
    );
  }
  return keyPrefix;
}

/** A Redis store on the caller's ioredis `Redis` or `Cluster` client. */
export function redisStore(client: ScriptingClient, options?: RedisStoreOptions): RedisStore {
  return new RedisStore(client, options);
}
