/**
 * A Redis store set up wrong (an ACL user without a command or key the scripts use, a wrong or
 * missing password, a command renamed away, a TLS certificate the client does not trust) fails
 * the same way on every retry: an InterlockConfigError naming the fix, so it reaches the app's
 * error handling and never passes as an outage under failOpen. Real outages stay
 * StoreUnavailableError, with the connection's error as their cause.
 */

import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import type { AddressInfo } from "node:net";
import tls from "node:tls";
import { createIdempotency, InterlockConfigError, StoreUnavailableError } from "@interlock/core";
import {
  type ChildServer,
  configErrorOf,
  freePort,
  redisCommand,
  refusedPort,
  requireBinary,
  startServer,
} from "@interlock/test-harness";
import { clusterAclUser as clusterAclUserOn } from "@interlock/test-harness/redis-acl";
import { selfSignedCertificate } from "@interlock/test-harness/tls";
import { Cluster, Redis, type RedisOptions, ReplyError } from "ioredis";
import { afterAll, describe, expect, inject, it, onTestFinished } from "vitest";
import type { RedisStore } from "../src/index.js";
import { redisClient, storeOn, track, uniquePrefix } from "./helpers.js";

/** ioredis' options, less the one whose declared type says `undefined` where its constructor's does not. */
type ClientOptions = Omit<RedisOptions, "replyMapping">;

const LONG = 60_000;
const response = { status: 200, headers: [] as Array<[string, string]>, body: new Uint8Array([1]) };
const claim = (store: RedisStore, key = "k") => store.claim(key, { fingerprint: "fp", lockTtlMs: LONG });

/** The ACL the README documents: exactly what the store's scripts need. */
const DOCUMENTED_COMMANDS = ["+eval", "+evalsha", "+time", "+hmget", "+hset", "+pexpire", "+pttl", "+del"];
/** What the README adds for a Cluster client: its slot refresh and its ready check. */
const DOCUMENTED_CLUSTER_COMMANDS = ["+cluster|slots", "+cluster|info"];

/** Expects `operation` to reject with a configuration error naming `fix`, its cause's message matching `cause`. */
async function configError(operation: Promise<unknown>, fix: RegExp, cause: RegExp) {
  const error = await configErrorOf(operation, fix);
  expect((error.cause as Error).message).toMatch(cause);
  return error;
}

const admin = redisClient();

/** An ACL user of its own on the shared server, with `rules`; deleted after the test. */
async function aclUser(rules: string[]) {
  const name = `store_${randomBytes(4).toString("hex")}`;
  await admin.call("ACL", "SETUSER", name, "reset", "on", ">user-pw", ...rules);
  onTestFinished(async () => {
    await admin.call("ACL", "DELUSER", name);
  });
  const url = new URL(inject("redisUrl"));
  const connect = (options: ClientOptions = {}) => {
    const client = track(
      new Redis(Number(url.port), url.hostname, { username: name, password: "user-pw", ...options }),
    );
    client.on("error", () => {});
    return client;
  };
  return { name, connect };
}

describe("a store set up wrong is a configuration error naming the fix", () => {
  it("an ACL user without a command the scripts call: the ACL to grant, for every operation", async () => {
    const prefix = uniquePrefix("acl");
    const user = await aclUser([`~${prefix}*`, "+eval", "+evalsha"]);
    const store = storeOn(user.connect({ enableReadyCheck: false }), { prefix });
    const acl = `ACL SETUSER <user> ${DOCUMENTED_COMMANDS.join(" ")} ~${prefix}*`;
    const refused = /can't run this command|^NOPERM/;
    const fix = new RegExp(acl.replace(/[*+<>{}]/g, "\\$&"));
    await configError(claim(store), fix, refused);
    await configError(store.complete("k", "t", response, { ttlMs: LONG }), fix, refused);
    await configError(store.release("k", "t"), fix, refused);
    await configError(store.extend("k", "t", LONG), fix, refused);

    // Through the idempotency engine: the error as it is, even under failOpen (no pass, so the
    // handler never runs unprotected).
    const engine = createIdempotency({ store, principal: false, failOpen: true });
    const request = { method: "POST", route: "/pay", path: "/pay", headers: { "idempotency-key": "k" }, body: "{}" };
    await expect(engine.begin(request)).rejects.toBeInstanceOf(InterlockConfigError);
  });

  it("an ACL user whose key pattern misses the client's keyPrefix plus the store's prefix: NOPERM, the pattern to grant", async () => {
    const prefix = uniquePrefix("keys");
    const user = await aclUser([`~${prefix}*`, ...DOCUMENTED_COMMANDS]);
    // The client's own keyPrefix comes first on the server: the pattern must cover both.
    const store = storeOn(user.connect({ enableReadyCheck: false, keyPrefix: "app:" }), { prefix });
    const error = await configError(claim(store), /ACL SETUSER <user> .* ~app:test:keys:/, /^NOPERM/);
    expect(error.message).toContain(`~app:${prefix}*`);
  });

  it("the README's ACL is enough for every operation, and ioredis connects without +info", async () => {
    const prefix = uniquePrefix("minimal");
    const user = await aclUser([`~${prefix}*`, ...DOCUMENTED_COMMANDS]);
    for (const enableReadyCheck of [false, true]) {
      const store = storeOn(user.connect({ enableReadyCheck }), { prefix });
      const key = `k-${enableReadyCheck}`;
      const won = await claim(store, key);
      expect(won.state).toBe("claimed");
      const { token } = won as { token: string };
      expect(await claim(store, key)).toMatchObject({ state: "in_flight" });
      expect(await store.extend(key, token, LONG)).toBe(true);
      expect(await store.complete(key, token, response, { ttlMs: LONG })).toBe(true);
      expect(await claim(store, key)).toMatchObject({ state: "completed" });
      const other = (await claim(store, `${key}:released`)) as { token: string };
      expect(await store.release(`${key}:released`, other.token)).toBe(true);
    }
  });

  it("a wrong password: check the client's options", async () => {
    const user = await aclUser(["~*", "+@all"]);
    const store = storeOn(user.connect({ password: "wrong" }));
    await configError(claim(store), /refused the client's username or password/, /^WRONGPASS/);
  });

  describe("on a server with TIME and EVALSHA renamed away, then a password", () => {
    let server: ChildServer;
    let port: number;
    afterAll(() => server?.stop());

    const client = (options: ClientOptions = {}) => {
      const made = track(new Redis(port, "127.0.0.1", options));
      made.on("error", () => {});
      return made;
    };

    it("a command a script calls, or the store sends, that the server does not have: the commands it needs", async () => {
      port = await freePort();
      const bin = requireBinary("redis-server", "Install it: apt-get install -y redis-server");
      const renamed = ["--rename-command", "TIME", "", "--rename-command", "EVALSHA", ""];
      server = await startServer(
        bin,
        ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", ...renamed],
        async (child) => (await redisCommand(port, ["INFO", "server"])).includes(`process_id:${child.pid}\r\n`),
        { label: `redis-server :${port} (renamed commands)` },
      );
      const store = storeOn(client());
      const needs = /does not have a command the store needs .*EVAL, EVALSHA, TIME, HMGET, HSET, PEXPIRE, PTTL, DEL/;
      // ioredis sends a script's first call on a connection as EVAL: its TIME is unknown.
      await configError(claim(store), needs, /^ERR Unknown Redis command called from script/);
      // Then as EVALSHA, which is unknown itself.
      await configError(claim(store), needs, /^ERR unknown command/);
    });

    it("a password the client does not give: set it in the client's options", async () => {
      await redisCommand(port, ["CONFIG", "SET", "requirepass", "server-pw"]);
      for (const enableReadyCheck of [false, true]) {
        const store = storeOn(client({ enableReadyCheck }));
        await configError(claim(store), /asks for a password and the client gives none/, /^NOAUTH/);
      }
    });

    it("a Cluster client without the password: the same, though ioredis tells it only by events", async () => {
      // A Cluster client learns the slots first (CLUSTER SLOTS), refused here as on a cluster
      // node that asks for a password: it then sends no command, and the claim gets no answer.
      const cluster = track(new Cluster([{ host: "127.0.0.1", port }]));
      cluster.on("error", () => {});
      const store = storeOn(cluster, { operationTimeoutMs: 500 });
      await configError(claim(store), /asks for a password and the client gives none/, /^NOAUTH/);
    });
  });

  it("a server certificate the client does not trust, or issued to another host: give the client its CA", async () => {
    const server = await selfSignedTlsServer();
    try {
      // No reconnection within the test: the connection's error stays the one to see.
      const options = { host: "127.0.0.1", port: server.port, retryStrategy: () => LONG };
      const untrusted = track(new Redis({ ...options, tls: {} }));
      untrusted.on("error", () => {});
      const fix = /not trusted, or names another host; give the client the CA .*tls: \{ ca \}/;
      const error = await configError(claim(storeOn(untrusted, { operationTimeoutMs: 500 })), fix, /self.signed/);
      expect((error.cause as { code?: string }).code).toBe("DEPTH_ZERO_SELF_SIGNED_CERT");

      // Trusted, but issued to another name than the one connected to.
      const otherHost = track(new Redis({ ...options, tls: { ca: server.certificate } }));
      otherHost.on("error", () => {});
      const wrongName = await configError(claim(storeOn(otherHost, { operationTimeoutMs: 500 })), fix, /altnames/i);
      expect((wrongName.cause as { code?: string }).code).toBe("ERR_TLS_CERT_ALTNAME_INVALID");
    } finally {
      server.close();
    }
  });
});

describe("a Cluster client set up wrong is a configuration error too", () => {
  const nodes = inject("redisClusterNodes");
  /** An ACL user of its own on every node of the shared cluster, with `rules`; deleted after the test. */
  const clusterAclUser = (rules: string[]) => clusterAclUserOn(nodes, "store", rules);

  /** A Cluster client as `username`, with the 'error' listener an app has. */
  const connect = (username: string, password = "user-pw", options: { enableReadyCheck?: boolean } = {}) => {
    const cluster = track(
      new Cluster(nodes, { ...options, redisOptions: { username, password, enableReadyCheck: false } }),
    );
    cluster.on("error", () => {});
    return cluster;
  };

  it("a wrong password: check the client's options, and no pass under failOpen", async () => {
    const user = await clusterAclUser(["~*", "+@all"]);
    const cluster = connect(user, "wrong");
    const listeners = cluster.listenerCount("error");
    const store = storeOn(cluster, { operationTimeoutMs: 500 });
    // The store listens to 'node error' only: a listener of its own on 'error' would silence
    // ioredis' "Unhandled error event" log for an app that has none.
    expect(cluster.listenerCount("error")).toBe(listeners);
    await configError(claim(store), /refused the client's username or password/, /^WRONGPASS/);
    const engine = createIdempotency({ store, principal: false, failOpen: true });
    const request = { method: "POST", route: "/pay", path: "/pay", headers: { "idempotency-key": "k" }, body: "{}" };
    await expect(engine.begin(request)).rejects.toBeInstanceOf(InterlockConfigError);
  });

  it("the single server's ACL: CLUSTER SLOTS refused, the ACL to grant names the Cluster's commands", async () => {
    const prefix = uniquePrefix("cluster-acl");
    const user = await clusterAclUser([`~${prefix}*`, ...DOCUMENTED_COMMANDS]);
    const store = storeOn(connect(user), { prefix, operationTimeoutMs: 500 });
    const acl = `ACL SETUSER <user> ${[...DOCUMENTED_COMMANDS, ...DOCUMENTED_CLUSTER_COMMANDS].join(" ")} ~${prefix}*`;
    const fix = new RegExp(acl.replace(/[*+<>{}|]/g, "\\$&"));
    await configError(claim(store), fix, /^NOPERM .*cluster\|slots/);
    await configError(store.release("k", "t"), fix, /^NOPERM .*cluster\|slots/);
  });

  it("the README's Cluster ACL is enough for every operation, with ioredis' ready check or without", async () => {
    const prefix = uniquePrefix("cluster-minimal");
    const user = await clusterAclUser([`~${prefix}*`, ...DOCUMENTED_COMMANDS, ...DOCUMENTED_CLUSTER_COMMANDS]);
    for (const enableReadyCheck of [true, false]) {
      const store = storeOn(connect(user, "user-pw", { enableReadyCheck }), { prefix });
      // Keys on every master.
      for (const key of Array.from({ length: 6 }, (_, i) => `k-${enableReadyCheck}-${i}`)) {
        const won = (await claim(store, key)) as { token: string };
        expect(await claim(store, key)).toMatchObject({ state: "in_flight" });
        expect(await store.extend(key, won.token, LONG)).toBe(true);
        expect(await store.complete(key, won.token, response, { ttlMs: LONG })).toBe(true);
        expect(await claim(store, key)).toMatchObject({ state: "completed" });
        const other = (await claim(store, `${key}:released`)) as { token: string };
        expect(await store.release(`${key}:released`, other.token)).toBe(true);
      }
    }
  });

  it("a single Redis client pointed at a cluster node: MOVED for another node's keys, pass a Cluster", async () => {
    const store = storeOn(redisClient(`redis://${nodes[0]!.host}:${nodes[0]!.port}`));
    const fix = /the server is a Redis Cluster node: pass an ioredis Cluster client/;
    let redirected = 0;
    for (let i = 0; i < 12; i++) {
      const outcome = await claim(store, `k-${i}`).catch((error: unknown) => error);
      if (!(outcome instanceof Error)) continue;
      expect(outcome).toBeInstanceOf(InterlockConfigError);
      expect(outcome.message).toMatch(fix);
      expect((outcome.cause as Error).message).toMatch(/^MOVED \d+ 127\.0\.0\.1:\d+$/);
      redirected++;
    }
    // Twelve keys over three masters: some on the node connected to, most elsewhere.
    expect(redirected).toBeGreaterThan(0);
    expect(redirected).toBeLessThan(12);
  });
});

/**
 * A client whose every script call gets `message` back from the server: the words other Redis
 * versions and Valkey use for the same setup mistakes, which the local Redis 7.0 cannot produce.
 * `isCluster` as an ioredis `Cluster` says it.
 */
function answering(message: string, isCluster = false): RedisStore {
  const refuse = () => Promise.reject(new ReplyError(message));
  const client = new Proxy(
    { defineCommand() {}, on() {}, isCluster },
    {
      get: (target, property) => (property in target ? target[property as keyof typeof target] : refuse),
    },
  );
  return storeOn(client as unknown as Redis);
}

describe("a setup mistake in another server's words is still a configuration error", () => {
  const acl = /the Redis user may not run a command or use a key the store needs; grant them: ACL SETUSER/;
  const commands = /does not have a command the store needs/;
  it.each([
    // Redis 7.2 and later, and Valkey: a command the ACL user lacks, called from a script.
    [
      "ERR ACL failure in script: User store_1 has no permissions to run the 'time' command script: 3c9e, on @user_script:1.",
      acl,
    ],
    [
      "ERR ACL failure in script: User store_1 has no permissions to access the 'k' key script: 3c9e, on @user_script:3.",
      acl,
    ],
    // Redis 6.2 wraps what a script's call was refused with in its own words.
    [
      "ERR Error running script (call to f_3c9e): @user_script:1: @user_script: 1: The user executing the script can't run this command or subcommand",
      acl,
    ],
    [
      "ERR Error running script (call to f_3c9e): @user_script:1: @user_script: 1: Unknown Redis command called from Lua script",
      commands,
    ],
    // Valkey: a command renamed away, called from a script.
    ["ERR Unknown command called from script script: 3c9e, on @user_script:1.", commands],
  ])("%s", async (message, fix) => {
    const cause = new RegExp(`^${message.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`);
    await configError(claim(answering(message)), fix, cause);
    await configError(answering(message).complete("k", "t", response, { ttlMs: LONG }), fix, cause);
  });

  it("while a script's ordinary failure stays an outage", async () => {
    const wrongType =
      "ERR Error running script (call to f_3c9e): @user_script:2: WRONGTYPE Operation against a key holding the wrong kind of value";
    await expect(claim(answering(wrongType))).rejects.toBeInstanceOf(StoreUnavailableError);
  });

  it("while a redirection a Cluster client passes on stays an outage (autopipelining, while a slot moves)", async () => {
    const moved = "MOVED 12037 127.0.0.1:7002";
    await expect(claim(answering(moved, true))).rejects.toBeInstanceOf(StoreUnavailableError);
    await configError(claim(answering(moved)), /pass an ioredis Cluster client/, /^MOVED/);
  });
});

describe("a Cluster's node refusals count until its next slot refresh", () => {
  /** A Cluster client, to the store, that answers no command: its events are all there is. */
  function silentCluster() {
    const events = new EventEmitter();
    const unanswered = () => new Promise(() => {});
    const client = new Proxy(Object.assign(events, { isCluster: true, status: "connecting", defineCommand() {} }), {
      get: (target, property, receiver) =>
        typeof property === "string" && property.startsWith("interlock")
          ? unanswered
          : Reflect.get(target, property, receiver),
    });
    return { events, store: storeOn(client as unknown as Cluster, { operationTimeoutMs: 100 }) };
  }

  it("a refusal no retry mends, until a refresh succeeds; a node that is down stays an outage", async () => {
    const { events, store } = silentCluster();
    await expect(claim(store)).rejects.toBeInstanceOf(StoreUnavailableError);
    events.emit("node error", new ReplyError("WRONGPASS invalid username-password pair"), "127.0.0.1:7000");
    await configError(claim(store), /refused the client's username or password/, /^WRONGPASS/);
    // The password fixed: the next refresh succeeds, and a later timeout is an outage again.
    events.emit("refresh");
    await expect(claim(store)).rejects.toBeInstanceOf(StoreUnavailableError);
    events.emit(
      "node error",
      Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }),
      "127.0.0.1:7000",
    );
    await expect(claim(store)).rejects.toBeInstanceOf(StoreUnavailableError);
  });
});

describe("an outage is still an outage", () => {
  it("a server that refuses connections: StoreUnavailableError after the timeout, the refusal as its cause", async () => {
    const client = track(new Redis(await refusedPort(), "127.0.0.1", { retryStrategy: () => LONG }));
    client.on("error", () => {});
    const store = storeOn(client, { operationTimeoutMs: 300 });
    for (const operation of [() => claim(store), () => store.release("k", "t")]) {
      const error = await operation().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StoreUnavailableError);
      expect((error as Error).message).toMatch(/got no answer in 300 ms; the connection failed: .*ECONNREFUSED/);
      expect((error as Error).cause).toMatchObject({ code: "ECONNREFUSED" });
    }
  });
});

/**
 * A TLS server that shows a self-signed certificate for "db.example": what the client then
 * thinks of the certificate is all there is to see, so no Redis behind it is needed.
 */
async function selfSignedTlsServer(): Promise<{ port: number; certificate: string; close(): void }> {
  const context = selfSignedCertificate("db.example");
  const server = tls.createServer(context, (socket) => socket.on("error", () => {}));
  server.on("tlsClientError", () => {});
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { port, certificate: context.cert, close: () => server.close() };
}
