/**
 * A token store set up wrong fails the same way on every retry: an InterlockConfigError naming
 * the fix, never a StoreUnavailableError to retry forever. Redis: an ACL user without a command or
 * key the scripts use, a wrong password, a TLS certificate the client does not trust, and on a
 * Cluster the same refused while it learns the slots, or a single client on a node. PostgreSQL:
 * a role without grants on the table; and migrate() works for a least-privilege role that may
 * use the table but not create it. Real outages stay StoreUnavailableError.
 */

import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import tls from "node:tls";
import { inspect } from "node:util";
import { InterlockConfigError, StoreUnavailableError } from "@interlock/core";
import { configErrorOf, refusedPort } from "@interlock/test-harness";
import { clusterAclUser as clusterAclUserOn } from "@interlock/test-harness/redis-acl";
import { selfSignedCertificate } from "@interlock/test-harness/tls";
import { Cluster, Redis, type RedisOptions, ReplyError } from "ioredis";
import pg from "pg";
import { afterAll, describe, expect, inject, it, onTestFinished } from "vitest";
import { migrate, migrationSql, PostgresTokenStore } from "../src/postgres.js";
import { RedisTokenStore } from "../src/redis.js";

/** ioredis' options, less the one whose declared type says `undefined` where its constructor's does not. */
type ClientOptions = Omit<RedisOptions, "replyMapping">;

const LONG = 60_000;
const uniqueName = (label: string) => `${label}_${process.pid}_${randomBytes(4).toString("hex")}`;

/** Expects `operation` to reject with a configuration error naming `fix`, its cause's message matching `cause`. */
async function configError(operation: Promise<unknown>, fix: RegExp, cause: RegExp) {
  const error = await configErrorOf(operation, fix);
  expect((error.cause as Error).message).toMatch(cause);
  return error;
}

describe("redis token store set up wrong", () => {
  const clients: Redis[] = [];
  afterAll(() => {
    for (const client of clients) client.disconnect();
  });
  const client = (options: ClientOptions) => {
    const made = new Redis(options);
    made.on("error", () => {});
    clients.push(made);
    return made;
  };
  const url = new URL(inject("redisUrl"));
  const server = { host: url.hostname, port: Number(url.port) };
  const admin = client(server);

  /** An ACL user of its own on the shared server, with `rules`; deleted after the test. */
  async function aclUser(rules: string[]) {
    const name = uniqueName("oauth");
    await admin.call("ACL", "SETUSER", name, "reset", "on", ">user-pw", ...rules);
    onTestFinished(async () => {
      await admin.call("ACL", "DELUSER", name);
    });
    return (options: ClientOptions = {}) =>
      client({ ...server, username: name, password: "user-pw", enableReadyCheck: false, ...options });
  }

  /** The ACL the README documents for the token store. */
  const documented = ["+eval", "+evalsha", "+time", "+hmget", "+hset", "+pexpire", "+del"];

  it("an ACL user without a command the scripts call: the ACL to grant, for every operation", async () => {
    const prefix = `test:oauth:acl:${uniqueName("p")}:`;
    const connect = await aclUser([`~${prefix}*`, "+eval", "+evalsha"]);
    const store = new RedisTokenStore(connect(), { prefix });
    const fix = new RegExp(`ACL SETUSER <user> ${documented.join(" ").replaceAll("+", "\\+")} ~${prefix}\\*`);
    const refused = /can't run this command|^NOPERM/;
    await configError(store.get("k"), fix, refused);
    await configError(store.set("k", "v", { ttlMs: LONG }), fix, refused);
    await configError(store.delete("k"), fix, refused);
  });

  it("the README's ACL is enough, and the key pattern must cover the client's keyPrefix too", async () => {
    const prefix = `test:oauth:min:${uniqueName("p")}:`;
    const connect = await aclUser([`~${prefix}*`, ...documented]);
    const store = new RedisTokenStore(connect(), { prefix });
    const version = await store.set("k", "v", { ttlMs: LONG });
    expect(await store.get("k")).toEqual({ value: "v", version });
    expect(await store.delete("k", version)).toBe(true);

    const prefixed = new RedisTokenStore(connect({ keyPrefix: "app:" }), { prefix });
    await configError(prefixed.get("k"), new RegExp(`~app:${prefix}\\*`), /^NOPERM/);
  });

  it("a wrong password: check the client's options", async () => {
    const connect = await aclUser(["~*", "+@all"]);
    const store = new RedisTokenStore(connect({ password: "wrong" }));
    await configError(store.get("k"), /refused the client's username or password/, /^WRONGPASS/);
  });

  it("a server certificate the client does not trust: give the client its CA", async () => {
    const context = selfSignedCertificate("db.example");
    const tlsServer = tls.createServer(context, (socket) => socket.on("error", () => {}));
    tlsServer.on("tlsClientError", () => {});
    await new Promise<void>((resolve) => tlsServer.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = tlsServer.address() as AddressInfo;
      // No reconnection within the test: the connection's error stays the one to see.
      const untrusted = client({ host: "127.0.0.1", port, tls: {}, retryStrategy: () => LONG });
      const store = new RedisTokenStore(untrusted, { operationTimeoutMs: 500 });
      const error = await configError(store.get("k"), /not trusted.*tls: \{ ca \}/, /self.signed/);
      expect((error.cause as { code?: string }).code).toBe("DEPTH_ZERO_SELF_SIGNED_CERT");
    } finally {
      tlsServer.close();
    }
  });

  it("errors keep none of the command's arguments (a session key, a sealed value) on their cause", async () => {
    const prefix = `test:oauth:args:${uniqueName("p")}:`;
    const key = "session:space:cookie-value";
    await admin.set(`${prefix}${key}`, "not a hash"); // WRONGTYPE: an outage, from the server
    const outage = await new RedisTokenStore(admin, { prefix })
      .set(key, "sealed-value", { ttlMs: LONG })
      .catch((e: unknown) => e);
    expect(outage).toBeInstanceOf(StoreUnavailableError);
    const connect = await aclUser([`~${prefix}*`, "+eval", "+evalsha"]);
    const mistake = await configErrorOf(
      new RedisTokenStore(connect(), { prefix }).set(key, "sealed-value", { ttlMs: LONG }),
      /ACL/,
    );
    for (const error of [outage as Error, mistake]) {
      expect(error.cause).toBeInstanceOf(Error);
      expect(error.cause).not.toHaveProperty("command");
      expect(inspect(error, { depth: 10 })).not.toMatch(/cookie-value|sealed-value/);
    }
  });

  it("a server that refuses connections is an outage, the refusal as its cause", async () => {
    const down = client({ host: "127.0.0.1", port: await refusedPort(), retryStrategy: () => LONG });
    const store = new RedisTokenStore(down, { operationTimeoutMs: 300 });
    const error = await store.set("k", "v", { ttlMs: LONG }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect((error as Error).cause).toMatchObject({ code: "ECONNREFUSED" });
  });
});

describe("redis token store on a Cluster set up wrong", () => {
  const clients: Array<Redis | Cluster> = [];
  afterAll(() => {
    for (const client of clients) client.disconnect();
  });
  function track<C extends Redis | Cluster>(client: C): C {
    clients.push(client);
    return client;
  }
  const nodes = inject("redisClusterNodes");
  /** An ACL user of its own on every node of the shared cluster, with `rules`; deleted after the test. */
  const clusterAclUser = (rules: string[]) => clusterAclUserOn(nodes, "oauth", rules);

  /** A Cluster client as `username`, with the 'error' listener an app has. */
  const connect = (username: string, password = "user-pw", options: { enableReadyCheck?: boolean } = {}) => {
    const cluster = track(
      new Cluster(nodes, { ...options, redisOptions: { username, password, enableReadyCheck: false } }),
    );
    cluster.on("error", () => {});
    return cluster;
  };

  /** The ACL the README documents for the token store on a Cluster: its scripts' commands, then ioredis' own. */
  const documented = ["+eval", "+evalsha", "+time", "+hmget", "+hset", "+pexpire", "+del"];
  const documentedCluster = ["+cluster|slots", "+cluster|info"];

  it("a wrong password: check the client's options, though ioredis tells it only by events", async () => {
    const user = await clusterAclUser(["~*", "+@all"]);
    const cluster = connect(user, "wrong");
    const listeners = cluster.listenerCount("error");
    const store = new RedisTokenStore(cluster, { operationTimeoutMs: 500 });
    // The store listens to 'node error' only: a listener of its own on 'error' would silence
    // ioredis' "Unhandled error event" log for an app that has none.
    expect(cluster.listenerCount("error")).toBe(listeners);
    await configError(store.get("k"), /refused the client's username or password/, /^WRONGPASS/);
    await configError(store.set("k", "v", { ttlMs: LONG }), /refused the client's username or password/, /^WRONGPASS/);
  });

  it("the single server's ACL: CLUSTER SLOTS refused, the ACL to grant names the Cluster's commands", async () => {
    const prefix = `test:oauth:cluster-acl:${uniqueName("p")}:`;
    const user = await clusterAclUser([`~${prefix}*`, ...documented]);
    const store = new RedisTokenStore(connect(user), { prefix, operationTimeoutMs: 500 });
    const acl = `ACL SETUSER <user> ${[...documented, ...documentedCluster].join(" ")} ~${prefix}*`;
    const fix = new RegExp(acl.replace(/[*+<>{}|]/g, "\\$&"));
    await configError(store.get("k"), fix, /^NOPERM .*cluster\|slots/);
    await configError(store.delete("k"), fix, /^NOPERM .*cluster\|slots/);
  });

  it("the README's Cluster ACL is enough, with ioredis' ready check or without", async () => {
    const prefix = `test:oauth:cluster-min:${uniqueName("p")}:`;
    const user = await clusterAclUser([`~${prefix}*`, ...documented, ...documentedCluster]);
    for (const enableReadyCheck of [true, false]) {
      const store = new RedisTokenStore(connect(user, "user-pw", { enableReadyCheck }), { prefix });
      // Keys on every master.
      for (const key of Array.from({ length: 6 }, (_, i) => `k-${enableReadyCheck}-${i}`)) {
        const version = await store.set(key, "v", { ttlMs: LONG });
        expect(await store.get(key)).toEqual({ value: "v", version });
        expect(await store.delete(key, version)).toBe(true);
      }
    }
  });

  it("a single Redis client pointed at a cluster node: MOVED for another node's keys, pass a Cluster", async () => {
    const node = track(new Redis(nodes[0]!.port, nodes[0]!.host));
    const store = new RedisTokenStore(node, { prefix: `test:oauth:moved:${uniqueName("p")}:` });
    const fix = /the server is a Redis Cluster node: pass an ioredis Cluster client/;
    let redirected = 0;
    for (let i = 0; i < 12; i++) {
      const outcome = await store.get(`k-${i}`).catch((error: unknown) => error);
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

  it("while a redirection a Cluster client passes on stays an outage (autopipelining, while a slot moves)", async () => {
    /** A client whose every script call gets MOVED back; `isCluster` as an ioredis `Cluster` says it. */
    const redirecting = (isCluster: boolean) =>
      new Proxy(
        { defineCommand() {}, on() {}, isCluster },
        {
          get: (target, property) =>
            property in target
              ? target[property as keyof typeof target]
              : () => Promise.reject(new ReplyError("MOVED 12037 127.0.0.1:7002")),
        },
      );
    await expect(new RedisTokenStore(redirecting(true)).get("k")).rejects.toBeInstanceOf(StoreUnavailableError);
    await configError(new RedisTokenStore(redirecting(false)).get("k"), /pass an ioredis Cluster client/, /^MOVED/);
  });
});

describe("postgres token store set up wrong", () => {
  const pools: pg.Pool[] = [];
  const pool = (connectionString = inject("databaseUrl")) => {
    const made = new pg.Pool({ connectionString, max: 2 });
    made.on("error", () => {});
    pools.push(made);
    return made;
  };
  const admin = pool();
  const tables: string[] = [];
  afterAll(async () => {
    for (const table of tables) await admin.query(`DROP TABLE IF EXISTS "${table}"`);
    await Promise.all(pools.map((p) => p.end()));
  });

  /** A login role of its own, with no privileges until the test grants them; dropped after the test. */
  async function newRole() {
    const name = uniqueName("r_oauth");
    await admin.query(`CREATE ROLE "${name}" LOGIN PASSWORD 'role-pw'`);
    const url = new URL(inject("databaseUrl"));
    url.username = name;
    url.password = "role-pw";
    const rolePool = pool(url.href);
    onTestFinished(async () => {
      await rolePool.end();
      pools.splice(pools.indexOf(rolePool), 1);
      await admin.query(`DROP OWNED BY "${name}"; DROP ROLE "${name}"`);
    });
    return { name, pool: rolePool };
  }

  async function migratedTable() {
    const table = uniqueName("tokens");
    tables.push(table);
    await migrate(admin, { table });
    return table;
  }

  it("migrate() by a role that may use the table but not create it: done, nothing to create", async () => {
    const table = await migratedTable();
    const role = await newRole();
    await admin.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON "${table}" TO "${role.name}"`);
    await migrate(role.pool, { table });
    const store = new PostgresTokenStore(role.pool, { table });
    const version = await store.set("k", "v", { ttlMs: LONG });
    expect(await store.get("k")).toEqual({ value: "v", version });
  });

  it("migrate() by such a role at start-up, while the owner's migration is under way: done once the owner commits", async () => {
    const role = await newRole();
    const table = uniqueName("racing");
    tables.push(table);
    const owner = await admin.connect();
    try {
      // The owner's migration (a deploy's migration job), with its grant, not yet committed.
      await owner.query("BEGIN");
      await owner.query(migrationSql({ table }));
      await owner.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON "${table}" TO "${role.name}"`);
      // The role's check finds no table yet, so it migrates too, and waits for the owner's lock.
      const migrating = migrate(role.pool, { table, timeoutMs: 10_000 }).then(
        () => "migrated",
        (error: Error) => error,
      );
      for (let i = 0; ; i++) {
        const { rows } = await admin.query(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'advisory'",
        );
        if (rows[0].n > 0) break;
        if (i === 500) throw new Error("no migration ever waited for the advisory lock");
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await owner.query("COMMIT");
      // PostgreSQL checks CREATE on the schema before IF NOT EXISTS finds the owner's table.
      expect(await migrating).toBe("migrated");
    } finally {
      owner.release();
    }
  });

  it("migrate() by a role that may not create a missing table: run it as the schema owner", async () => {
    const role = await newRole();
    const table = uniqueName("never");
    await configError(
      migrate(role.pool, { table }),
      /may not create "never_.*run migrate\(\) as the schema owner/,
      /permission denied/,
    );
  });

  it("a role without grants on the table: the GRANT to run, for every operation", async () => {
    const table = await migratedTable();
    const role = await newRole();
    const store = new PostgresTokenStore(role.pool, { table });
    const grant = new RegExp(`GRANT SELECT, INSERT, UPDATE, DELETE ON "${table}"`);
    await configError(store.get("k"), grant, /permission denied/);
    await configError(store.set("k", "v", { ttlMs: LONG }), grant, /permission denied/);
    await configError(store.delete("k"), grant, /permission denied/);
    await configError(store.purgeExpired(), grant, /permission denied/);
  });
});
