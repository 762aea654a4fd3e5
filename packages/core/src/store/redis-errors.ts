/**
 * Telling a Redis store set up wrong from Redis being down. A setup mistake (an ACL user without
 * a command or key the scripts use, a wrong password, a command renamed away, a single client
 * pointed at a Cluster node, a TLS certificate the client does not trust) fails the same way on
 * every retry: it must reach the app's error handling as an `InterlockConfigError` naming the
 * fix, the original as its `cause`, rather than be answered as an outage (a 503 to retry
 * forever, or a pass under `failOpen`).
 *
 * Shared by @interlock/redis's store and @interlock/oauth's Redis token store, which does not
 * depend on it. No Redis client is imported: only its reply errors' words and socket are read.
 */

import { driverErrorSummary, InterlockConfigError, StoreUnavailableError, untrustedCertificate } from "../errors.js";

/**
 * An ioredis client's own `keyPrefix` (its `options.keyPrefix`, a string or bytes): ioredis puts
 * it before every key a store sends, scripts' keys included, so the server sees it first.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function redisClientKeyPrefix(client: unknown): string {
  const prefix = (client as { options?: { keyPrefix?: unknown } } | null)?.options?.keyPrefix;
  if (typeof prefix === "string") return prefix;
  return prefix instanceof Uint8Array ? new TextDecoder().decode(prefix) : "";
}

/**
 * What a store's scripts need from the server, for the fix an error names.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export interface RedisNeeds {
  /** The store, as messages name it: "redis store". */
  label: string;
  /** Every command the store sends or its scripts call, upper case: EVAL, EVALSHA, TIME, …. */
  commands: readonly string[];
  /** The start of every key the store touches, as the server sees it: the client's keyPrefix, then the store's prefix. */
  keyPrefix: string;
  /**
   * Whether the client is an ioredis `Cluster`; unset when the store does not tell. Only on a
   * single `Redis` client (false) is a redirection (`MOVED`, `ASK`) a setup mistake.
   */
  cluster?: boolean;
}

// An ACL user lacking a command or a key: NOPERM on a command sent (its keys included). Called
// from a script, each version words it its own way: "ERR ACL failure in script: …" (Redis 7.2+,
// Valkey), "ERR The user executing the script can't run this command …" (Redis 7.0), and the
// same words inside "ERR Error running script (call to f_…): @user_script: 1: …" (Redis 6.2).
const NO_PERMISSION = /^NOPERM\b|^ERR ACL failure in script:|The user executing the script can't (run|access)/;
// A command the server does not have: renamed or disabled with rename-command (as many managed
// services do), sent directly or called from a script ("Unknown Redis command called from script"
// on Redis 7, "Unknown command called from script" on Valkey, "… from Lua script" wrapped as
// above on Redis 6.2).
const UNKNOWN_COMMAND = /^ERR unknown command|Unknown (Redis )?command called from (Lua )?script/i;
// A Cluster node's redirection of a key it does not serve: a single `Redis` client pointed at a
// cluster node gets it for every key of another node's slots, on every retry. A `Cluster` client
// follows it, but with autopipelining passes some on while a slot moves (ioredis#2075): an
// outage that ends with the move.
const REDIRECTED = /^(MOVED|ASK) \d+ /;

/** `*`, `?`, `[`, `]` and `\` are glob characters in an ACL key pattern: escaped, the prefix matches itself. */
const aclGlob = (prefix: string) => `${prefix.replace(/[*?[\]\\]/g, "\\$&")}*`;

/**
 * The ACL rules the store needs, as `ACL SETUSER` takes them.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function neededRedisAcl({ commands, keyPrefix }: RedisNeeds): string {
  return `${commands.map((command) => `+${command.toLowerCase()}`).join(" ")} ~${aclGlob(keyPrefix)}`;
}

/** The fix for a reply error no retry mends, or undefined when `message` is not one. */
function setupMistake(message: string, needs: RedisNeeds): string | undefined {
  if (NO_PERMISSION.test(message)) {
    return `the Redis user may not run a command or use a key the store needs; grant them: ACL SETUSER <user> ${neededRedisAcl(needs)}`;
  }
  if (message.startsWith("WRONGPASS"))
    return "Redis refused the client's username or password; check them in the client's options";
  if (message.startsWith("NOAUTH")) {
    return "Redis asks for a password and the client gives none; set password (and username) in the client's options";
  }
  if (UNKNOWN_COMMAND.test(message)) {
    return `the server does not have a command the store needs (renamed or disabled with rename-command?); it needs ${needs.commands.join(", ")}`;
  }
  if (needs.cluster === false && REDIRECTED.test(message)) {
    return "the server is a Redis Cluster node: pass an ioredis Cluster client";
  }
  return undefined;
}

/**
 * A reply error no retry mends as an `InterlockConfigError` naming the fix; anything else as it is.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function redisReplyError(error: unknown, needs: RedisNeeds): unknown {
  if (!(error instanceof Error)) return error;
  const fix = setupMistake(error.message, needs);
  if (fix === undefined) return error;
  return new InterlockConfigError(`${needs.label}: ${fix} (${error.message})`, { cause: driverErrorSummary(error) });
}

/**
 * Why the client's connection failed, if it did: the error its current socket was destroyed
 * with (`stream.errored`). ioredis keeps no error of its own and reports one only as an 'error'
 * event, and a listener of ours would silence its "Unhandled error event" log for users who
 * have none. Undefined on a `Cluster` (no one socket: @interlock/redis's store reads its nodes'
 * refusals from its 'node error' event), a connected client, or while a new connection is
 * being made.
 */
function connectionError(client: unknown): Error | undefined {
  const errored = (client as { stream?: { errored?: unknown } } | null)?.stream?.errored;
  return errored instanceof Error ? errored : undefined;
}

/**
 * A `StoreUnavailableError`, told more by the client's failed connection. A certificate the
 * client does not trust, or one issued to another host, is no outage (its own TLS settings fail
 * every attempt): an `InterlockConfigError` naming the fix. Any other connection error becomes
 * the cause of an error that had none (a timeout: ioredis kept the command queued while it
 * reconnected, so the caller would otherwise see only "no answer").
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function redisUnavailableError(error: unknown, client: unknown, label: string): unknown {
  if (!(error instanceof StoreUnavailableError)) return error;
  const lost = connectionError(client);
  if (lost === undefined) return error;
  if (untrustedCertificate(lost)) {
    return new InterlockConfigError(
      `${label}: the server's TLS certificate is not trusted, or names another host; give the client the CA that signed it (tls: { ca }) and connect by a name the certificate holds (${lost.message})`,
      { cause: lost },
    );
  }
  if (error.cause !== undefined) return error;
  const detail = error.message.slice(`${error.store} store: `.length);
  return new StoreUnavailableError(error.store, `${detail}; the connection failed: ${lost.message}`, { cause: lost });
}
