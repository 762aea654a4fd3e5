/**
 * Throwaway Redis servers for tests: one standalone server, and a local 3-master Redis Cluster.
 * Nothing is persisted (`--save "" --appendonly no`) and each server lives in its own temp
 * directory, removed when it stops. `REDIS_URL` points the standalone server at an existing
 * Redis instead; the cluster is always local.
 */

import { type ChildProcess, execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ChildServer, freePort, requireBinary, startServer } from "./process.js";

const INSTALL = "Install it: apt-get install -y redis-server (Debian/Ubuntu) or brew install redis";
const HOST = "127.0.0.1";

export interface RedisServer {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** True when the server came from `REDIS_URL`: stop, restart and pause are then refused. */
  readonly external: boolean;
  /** Stops the server and removes its directory. */
  stop(): Promise<void>;
  /**
   * An outage, then recovery: stops the server, runs `whileDown` (the test's checks during the
   * outage), then starts a fresh, empty server on the same port.
   */
  restart(whileDown?: () => Promise<void>): Promise<void>;
  /** Freezes the process (SIGSTOP): connections stay open but nothing is answered. */
  pause(): void;
  /** Thaws a paused server (SIGCONT). */
  resume(): void;
}

export interface RedisNode {
  host: string;
  port: number;
}

export interface RedisCluster {
  /** The masters, each owning a third of the slots. */
  readonly nodes: RedisNode[];
  stop(): Promise<void>;
}

/**
 * Sends one command over a plain socket and returns the reply's text (simple or bulk string,
 * or integer). Enough to probe a server without a client library.
 */
export function redisCommand(port: number, args: string[], host = HOST, timeoutMs = 1_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, host);
    let data = Buffer.alloc(0);
    const finish = (outcome: string | Error) => {
      socket.destroy();
      outcome instanceof Error ? reject(outcome) : resolve(outcome);
    };
    socket.setTimeout(timeoutMs, () => finish(new Error(`redis :${port} did not answer ${args[0]}`)));
    socket.on("error", finish);
    socket.on("close", () => finish(new Error(`redis :${port} closed the connection`)));
    socket.on("connect", () => {
      socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`);
    });
    socket.on("data", (chunk) => {
      data = Buffer.concat([data, chunk]);
      const reply = parseReply(data);
      if (reply !== undefined) finish(reply);
    });
  });
}

/** A complete reply, or undefined while more bytes are needed. */
function parseReply(data: Buffer): string | Error | undefined {
  const end = data.indexOf("\r\n");
  if (end < 0) return undefined;
  const line = data.toString("utf8", 1, end);
  const type = String.fromCharCode(data[0]!);
  if (type === "+" || type === ":") return line;
  if (type === "-") return new Error(line);
  if (type !== "$") return new Error(`unexpected reply type ${type}`);
  const length = Number(line);
  if (length < 0) return "";
  return data.length < end + 4 + length ? undefined : data.toString("utf8", end + 2, end + 2 + length);
}

/**
 * Ready once the server answering on `port` is `child` itself. A free port may be taken by
 * another process between the search and the start: this child then fails to bind, and the
 * other process (another test's Redis) would answer PING in its place.
 */
const answersAs = (port: number) => async (child: ChildProcess) =>
  (await redisCommand(port, ["INFO", "server"])).includes(`process_id:${child.pid}\r\n`);

/** Starts a server on a port `pick` finds free, and on another if a process took that one first. */
async function onFreePort<T>(pick: () => Promise<number>, start: (port: number) => Promise<T>): Promise<[number, T]> {
  for (let attempt = 1; ; attempt++) {
    const port = await pick();
    try {
      return [port, await start(port)];
    } catch (error) {
      if (attempt === 3) throw error;
    }
  }
}

/** Spawns `redis-server` on `port` with its data directory `dir`, ready once it answers PING. */
function spawnRedis(port: number, dir: string, extra: string[] = []): Promise<ChildServer> {
  const bin = requireBinary("redis-server", INSTALL);
  const args = ["--port", String(port), "--bind", HOST, "--dir", dir, "--save", "", "--appendonly", "no"];
  return startServer(bin, [...args, "--loglevel", "warning", ...extra], answersAs(port), {
    label: `redis-server :${port}`,
  });
}

function externalServer(url: string): RedisServer {
  const parsed = new URL(url);
  const refuse = () => {
    throw new Error("the Redis server came from REDIS_URL: start a local one to stop or pause it");
  };
  return {
    url,
    host: parsed.hostname,
    port: Number(parsed.port || 6379),
    external: true,
    stop: async () => {},
    restart: async () => refuse(),
    pause: refuse,
    resume: refuse,
  };
}

/**
 * A standalone Redis. Uses `REDIS_URL` when set, unless `local` asks for a server of our own
 * (tests that stop or freeze the server, or count every command it runs).
 */
export async function startRedis(options: { local?: boolean } = {}): Promise<RedisServer> {
  const fromEnv = process.env.REDIS_URL;
  if (fromEnv && !options.local) return externalServer(fromEnv);
  const dir = await mkdtemp(join(tmpdir(), "interlock-redis-"));
  const [port, started] = await onFreePort(freePort, (port) => spawnRedis(port, dir)).catch(async (error: unknown) => {
    await rm(dir, { recursive: true, force: true });
    throw error;
  });
  let child = started;
  const signal = (name: NodeJS.Signals) => () => void child.process.kill(name);
  return {
    url: `redis://${HOST}:${port}`,
    host: HOST,
    port,
    external: false,
    async stop() {
      child.process.kill("SIGCONT"); // a paused server could not act on SIGTERM
      await child.stop();
      await rm(dir, { recursive: true, force: true });
    },
    async restart(whileDown) {
      child.process.kill("SIGCONT");
      await child.stop();
      try {
        await whileDown?.();
      } finally {
        child = await spawnRedis(port, dir);
      }
    },
    pause: signal("SIGSTOP"),
    resume: signal("SIGCONT"),
  };
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, HOST, () => server.close(() => resolve(true)));
  });
}

/** A free port whose cluster bus port (port + 10000, on every Redis version) is free too. */
async function freeClusterPort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await freePort();
    if (port + 10_000 <= 65_535 && (await isFree(port + 10_000))) return port;
  }
  throw new Error("no free port pair for a Redis Cluster node");
}

function redisCli(args: string[]): Promise<string> {
  const bin = requireBinary("redis-cli", INSTALL);
  return new Promise((resolve, reject) => {
    execFile(bin, args, { encoding: "utf8", timeout: 30_000 }, (error, stdout, stderr) =>
      error
        ? reject(new Error(`redis-cli ${args.join(" ")} failed: ${error.message}\n${stdout}${stderr}`))
        : resolve(stdout),
    );
  });
}

async function waitFor(label: string, check: () => Promise<boolean>, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${label} did not happen within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * A local Redis Cluster of `masters` masters and no replicas, every slot assigned, ready when
 * each node reports `cluster_state:ok`.
 */
export async function startRedisCluster(options: { masters?: number } = {}): Promise<RedisCluster> {
  const masters = options.masters ?? 3;
  const ports: number[] = [];
  const dirs = await Promise.all(
    Array.from({ length: masters }, () => mkdtemp(join(tmpdir(), "interlock-redis-cluster-"))),
  );
  const children: ChildServer[] = [];
  const stop = async () => {
    await Promise.all(children.map((child) => child.stop()));
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  };
  try {
    const clusterArgs = (dir: string) => [
      ...["--cluster-enabled", "yes", "--cluster-config-file", join(dir, "nodes.conf")],
      ...["--cluster-node-timeout", "2000"],
    ];
    // One at a time: two concurrent searches could settle on the same port.
    for (const dir of dirs) {
      const [port, child] = await onFreePort(freeClusterPort, (port) => spawnRedis(port, dir, clusterArgs(dir)));
      ports.push(port);
      children.push(child);
    }
    const addresses = ports.map((port) => `${HOST}:${port}`);
    await redisCli(["--cluster", "create", ...addresses, "--cluster-replicas", "0", "--cluster-yes"]);
    const ok = async () => {
      const infos = await Promise.all(ports.map((port) => redisCommand(port, ["CLUSTER", "INFO"])));
      return infos.every(
        (info) => info.includes("cluster_state:ok") && info.includes(`cluster_known_nodes:${masters}`),
      );
    };
    await waitFor("cluster_state:ok on every node", ok);
  } catch (error) {
    await stop();
    throw error;
  }
  return { nodes: ports.map((port) => ({ host: HOST, port })), stop };
}
