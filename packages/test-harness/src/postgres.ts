/**
 * A throwaway PostgreSQL for the tests: `initdb` into a temp directory, `postgres` on a free
 * 127.0.0.1 port (as the `postgres` user when running as root: PostgreSQL refuses root), and a
 * test database. `DATABASE_URL` points the tests at an existing server instead.
 */

import { execFile } from "node:child_process";
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { type ChildServer, freePort, onProcessExit, requireBinary, run, startServer } from "./process.js";

export interface PostgresServer {
  /** Connection string of the test database. */
  readonly url: string;
  readonly port: number;
  /** True when `DATABASE_URL` named the server: the harness neither stops nor restarts it. */
  readonly external: boolean;
  /** Stops the server and removes its data directory. */
  stop(): Promise<void>;
  /**
   * Stops the server (fast shutdown: sessions are terminated), runs `whileDown`, then starts it
   * again on the same port and data directory.
   */
  restart(options?: { whileDown?: () => Promise<void> }): Promise<void>;
}

export interface StartPostgresOptions {
  /** Start a throwaway server even when `DATABASE_URL` is set (for tests that stop the server). */
  throwaway?: boolean;
  /** Name of the database to create. Default `interlock_test`. */
  database?: string;
}

const INSTALL =
  "Install the PostgreSQL server (Debian/Ubuntu: `apt-get install -y postgresql-15`; macOS: " +
  "`brew install postgresql@15`), or set DATABASE_URL to a server to test against (started with " +
  "`shared_preload_libraries=pg_stat_statements`).";

const SERVER_USER = "postgres";

/** Where server binaries may live besides PATH: `pg_config --bindir`, then Debian's versioned dirs. */
function binaryDirs(): string[] {
  const dirs: string[] = [];
  try {
    dirs.push(run("pg_config", ["--bindir"]).trim());
  } catch {
    // No pg_config: look in the usual places.
  }
  const debian = "/usr/lib/postgresql";
  if (existsSync(debian)) {
    const versions = readdirSync(debian).sort((a, b) => Number(b) - Number(a));
    dirs.push(...versions.map((version) => join(debian, version, "bin")));
  }
  return dirs;
}

/** initdb, postgres, pg_isready and psql from one installation. */
function binaries() {
  const bin = dirname(requireBinary("initdb", INSTALL, binaryDirs()));
  const at = (name: string) => requireBinary(name, INSTALL, [bin]);
  // Prefer the siblings of initdb: PATH may hold another version's client wrappers.
  const sibling = (name: string) => (existsSync(join(bin, name)) ? join(bin, name) : at(name));
  return {
    initdb: join(bin, "initdb"),
    postgres: sibling("postgres"),
    isReady: sibling("pg_isready"),
    psql: sibling("psql"),
  };
}

const asRoot = () => process.getuid?.() === 0;

function execAsync(command: string, args: string[]): Promise<boolean> {
  return new Promise((resolve) => execFile(command, args, { timeout: 5_000 }, (error) => resolve(!error)));
}

/** Starts a throwaway PostgreSQL, or returns the one `DATABASE_URL` names. */
export async function startPostgres(options: StartPostgresOptions = {}): Promise<PostgresServer> {
  const external = process.env.DATABASE_URL;
  if (external && !options.throwaway) return externalServer(external);

  const bin = binaries();
  const root = mkdtempSync(join(tmpdir(), "interlock-pg-"));
  const data = join(root, "data");
  mkdirSync(data, { mode: 0o700 });
  if (asRoot()) {
    const uid = Number(run("id", ["-u", SERVER_USER]));
    const gid = Number(run("id", ["-g", SERVER_USER]));
    chownSync(root, uid, gid);
    chownSync(data, uid, gid);
  }
  run(bin.initdb, ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"], {
    user: SERVER_USER,
  });

  const port = await freePort();
  const args = [
    ["-D", data, "-p", String(port), "-k", root, "-h", "127.0.0.1"],
    ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
    ["-c", "shared_preload_libraries=pg_stat_statements", "-c", "max_connections=300"],
  ].flat();
  const ready = () => execAsync(bin.isReady, ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-t", "1"]);

  let server: ChildServer | undefined;
  let postmaster: number | undefined;
  // The harness kills `runuser` when the test process exits, but not the postmaster under it.
  const forgetPostmaster = onProcessExit(() => postmaster !== undefined && signal(postmaster, "SIGQUIT"));

  const start = async () => {
    server = await startServer(bin.postgres, args, ready, { user: SERVER_USER, label: "postgres", timeoutMs: 30_000 });
    postmaster = Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0]);
  };
  const halt = async () => {
    const current = server;
    if (current === undefined) return;
    server = undefined;
    const exited = new Promise<void>((resolve) => {
      if (current.process.exitCode !== null || current.process.signalCode !== null) resolve();
      else current.process.once("exit", () => resolve());
    });
    // SIGINT is PostgreSQL's fast shutdown. SIGTERM (what `stop` sends to `runuser`) would be a
    // smart shutdown that waits for every pooled connection to leave.
    if (postmaster !== undefined) signal(postmaster, "SIGINT");
    postmaster = undefined;
    const timer = setTimeout(() => void current.stop(), 10_000);
    await exited;
    clearTimeout(timer);
  };

  try {
    await start();
  } catch (error) {
    forgetPostmaster();
    rmSync(root, { recursive: true, force: true });
    throw error;
  }
  const database = options.database ?? "interlock_test";
  run(bin.psql, [
    "-h",
    "127.0.0.1",
    "-p",
    String(port),
    "-U",
    "postgres",
    "-d",
    "postgres",
    "-q",
    "-c",
    `CREATE DATABASE "${database}"`,
  ]);

  return {
    url: `postgres://postgres@127.0.0.1:${port}/${database}`,
    port,
    external: false,
    stop: async () => {
      await halt();
      forgetPostmaster();
      rmSync(root, { recursive: true, force: true });
    },
    restart: async ({ whileDown } = {}) => {
      await halt();
      await whileDown?.();
      await start();
    },
  };
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Already gone.
  }
}

function externalServer(url: string): PostgresServer {
  return {
    url,
    port: Number(new URL(url).port || 5432),
    external: true,
    stop: async () => {},
    restart: async () => {
      throw new Error("cannot restart the server DATABASE_URL names: start a throwaway one ({ throwaway: true })");
    },
  };
}

/**
 * Runs `body` and returns the warnings `pg` gave meanwhile for a query handed to a client still
 * executing one (deprecated in pg 8, gone in pg 9): a store on a single `pg.Client` must queue
 * its own statements and never cause one.
 */
export async function busyClientWarnings(body: () => Promise<void>): Promise<string[]> {
  const warnings: string[] = [];
  const onWarning = (warning: Error) => {
    if (warning.message.includes("already executing a query")) warnings.push(warning.message);
  };
  process.on("warning", onWarning);
  try {
    await body();
    await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
  } finally {
    process.off("warning", onWarning);
  }
  return warnings;
}
