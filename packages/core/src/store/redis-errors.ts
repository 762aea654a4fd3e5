/**
 * Telling a Redis store set up wrong from Redis being down. A setup mistake (an ACL user without
 * a command or key the scripts use, a wrong password, a command renamed away, a single client
 * pointed at a Cluster node, a TLS certificate the client does not trust) fails the same way on
 * every retry: it must reach the app's error handling as an `InterlockConfigError` naming the
 * fix, the original as its `cause`, rather than be answered as an outage (a 503 to retry
 * forever, or a pass under `failOpen`).
 *
 * Shared by @interlock/redis's store and @interlock/oauth's Redis token store, which does not
 * depend on it. No Redis client is imported: only its reply errors' words, its socket and a
 * Cluster's events are read.
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

/**
 * What an ioredis `Cluster` sends besides a store's own commands, as ACL rules name them:
 * `CLUSTER SLOTS` to learn which node serves which key, `CLUSTER INFO` for its ready check
 * (unless `enableReadyCheck: false`). A refused `CLUSTER SLOTS` shows only as an event (see
 * `watchRedisNodes`); a refused `CLUSTER INFO` not even as that (ioredis reconnects, telling no
 * one): they are here for the ACL a fix names.
 */
const CLUSTER_COMMANDS = ["CLUSTER|SLOTS", "CLUSTER|INFO"] as const;

/**
 * Whether the client is an ioredis `Cluster`.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function isRedisCluster(client: unknown): boolean {
  return (client as { isCluster?: unknown } | null)?.isCluster === true;
}

/**
 * What a store on `client` needs from the server: its own `commands`, and on a Cluster the ones
 * ioredis sends itself (`CLUSTER SLOTS`, `CLUSTER INFO`), with `cluster` told.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function redisNeeds(client: unknown, needs: Omit<RedisNeeds, "cluster">): RedisNeeds {
  const cluster = isRedisCluster(client);
  return { ...needs, commands: cluster ? [...needs.commands, ...CLUSTER_COMMANDS] : needs.commands, cluster };
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

/** The error a Cluster's node last refused it with, since its slots were last learnt: see `watchRedisNodes`. */
interface NodeRefusal {
  last: Error | undefined;
}

/** Per Cluster client, however many stores share it: one pair of listeners each. */
const nodeRefusals = new WeakMap<object, NodeRefusal>();

/**
 * Keeps what a Cluster's nodes refuse it with, for `redisUnavailableError`; does nothing on a
 * single `Redis`. A Cluster whose password is wrong, or whose ACL user may not run
 * `CLUSTER SLOTS`, never learns the slots and sends no command: it tells why only by events, and
 * the store would see nothing but its own timeout. ioredis emits each node's refusal as
 * 'node error' (the failed refresh then as 'error'). 'node error', not 'error': ioredis emits it
 * to listeners only, while any 'error' listener would silence the "Unhandled error event" log it
 * prints for an app that has none. A refresh that succeeds ('refresh') forgets the refusals
 * before it.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function watchRedisNodes(client: unknown): void {
  const events = client as { on?: (event: string, listener: (error?: unknown) => void) => unknown };
  if (!isRedisCluster(client) || typeof events.on !== "function" || nodeRefusals.has(events)) return;
  const refusal: NodeRefusal = { last: undefined };
  nodeRefusals.set(events, refusal);
  events.on("node error", (error) => {
    if (error instanceof Error) refusal.last = error;
  });
  events.on("refresh", () => {
    refusal.last = undefined;
  });
}

/**
 * The setup mistake a Cluster's node last refused it with (see `watchRedisNodes`), as an
 * `InterlockConfigError`; undefined when there is none (no refusal, or one that is an outage: a
 * node that is down).
 */
function nodeRefusal(client: unknown, needs: RedisNeeds): InterlockConfigError | undefined {
  const last = typeof client === "object" && client !== null ? nodeRefusals.get(client)?.last : undefined;
  const mistake = last === undefined ? undefined : redisReplyError(last, needs);
  return mistake instanceof InterlockConfigError ? mistake : undefined;
}

/**
 * Why the client's connection failed, if it did: the error its current socket was destroyed
 * with (`stream.errored`). ioredis keeps no error of its own and reports one only as an 'error'
 * event, and a listener of ours would silence its "Unhandled error event" log for users who
 * have none. Undefined on a `Cluster` (no one socket: its nodes' refusals are read from its
 * events, see `watchRedisNodes`), a connected client, or while a new connection is being made.
 */
function connectionError(client: unknown): Error | undefined {
  const errored = (client as { stream?: { errored?: unknown } } | null)?.stream?.errored;
  return errored instanceof Error ? errored : undefined;
}

/**
 * An operation's failure as its caller gets it: a `StoreUnavailableError` told more by the
 * client; anything else as it is. A timeout (no cause) on a Cluster whose node refused it with a
 * setup mistake (a wrong password, an ACL without `cluster|slots`: see `watchRedisNodes`) is
 * that mistake, an `InterlockConfigError`. A certificate the client does not trust, or one
 * issued to another host, is no outage either (its own TLS settings fail every attempt): an
 * `InterlockConfigError` naming the fix. Any other connection error becomes the cause of an
 * error that had none (a timeout: ioredis kept the command queued while it reconnected, so the
 * caller would otherwise see only "no answer").
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function redisUnavailableError(error: unknown, client: unknown, storeNeeds: RedisNeeds | string): unknown {
  if (!(error instanceof StoreUnavailableError)) return error;
  // A store of an earlier release, beside this core, passes its label alone (and watches no nodes).
  const needs = typeof storeNeeds === "string" ? { label: storeNeeds, commands: [], keyPrefix: "" } : storeNeeds;
  const refused = error.cause === undefined ? nodeRefusal(client, needs) : undefined;
  if (refused !== undefined) return refused;
  const { label } = needs;
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
