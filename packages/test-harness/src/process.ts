/** Shared pieces of the harness: free ports, required binaries, and child servers that stop with the tests. */

import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { connect, createServer } from "node:net";
import { delimiter, join } from "node:path";

/** A TCP port on 127.0.0.1 that nothing listens on right now, for a server to listen on (a server that is down: `refusedPort`). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}

/**
 * A TCP port on 127.0.0.1 that refuses connections, for tests of a server that is down: 1
 * (tcpmux), checked. Not a `freePort()` closed again: every test server here listens on a port
 * the kernel hands out, which it may hand out again at once, and a test aimed at "nothing
 * there" then reaches another test's server (a CLI test in the Node matrix, three suites side by
 * side, once failed for another reason than a refusal). None of them is ever given port 1.
 */
export async function refusedPort(): Promise<number> {
  const refused = await new Promise<boolean>((resolve) => {
    const socket = connect(REFUSED_PORT, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code === "ECONNREFUSED"));
  });
  if (!refused) {
    throw new Error(
      `127.0.0.1:${REFUSED_PORT} does not refuse connections here: the tests of an unreachable server need it to`,
    );
  }
  return REFUSED_PORT;
}

const REFUSED_PORT = 1;

/**
 * The absolute path of a server binary, looked up on PATH and in `extraDirs`. A missing
 * binary fails the run with how to install it: tests never skip because a server is missing.
 */
export function requireBinary(name: string, install: string, extraDirs: string[] = []): string {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), ...extraDirs];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    if (dir && existsSync(candidate)) return candidate;
  }
  throw new Error(`\`${name}\` was not found on PATH. ${install}`);
}

/** Runs a command to completion, returning its stdout; throws with its output on failure. */
export function run(command: string, args: string[], options: { user?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const [cmd, argv] = options.user && process.getuid?.() === 0 ? asUser(options.user, command, args) : [command, args];
  try {
    return execFileSync(cmd, argv, { encoding: "utf8", env: { ...process.env, ...options.env }, stdio: "pipe" });
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${command} ${args.join(" ")} failed: ${e.message}\n${e.stdout ?? ""}${e.stderr ?? ""}`);
  }
}

/** When running as root, PostgreSQL refuses to start: run it as another user via `runuser`. */
export function asUser(user: string, command: string, args: string[]): [string, string[]] {
  return ["runuser", ["-u", user, "--", command, ...args]];
}

/** What to do if the test process exits first: every server's, run by one `exit` listener. */
const atExit = new Set<() => void>();

/**
 * Runs `cleanup` if the test process exits (a server never outlives the tests); returns the
 * undo, for a server stopped before then. One listener for them all: a run starts a dozen
 * servers, and a listener each would pass Node's limit of ten and print a leak warning.
 */
export function onProcessExit(cleanup: () => void): () => void {
  if (atExit.size === 0) process.once("exit", runAtExit);
  atExit.add(cleanup);
  return () => {
    atExit.delete(cleanup);
    if (atExit.size === 0) process.off("exit", runAtExit);
  };
}

function runAtExit(): void {
  for (const cleanup of atExit) cleanup();
  atExit.clear();
}

export interface ChildServer {
  readonly process: ChildProcess;
  /** Stops the server (SIGTERM, then SIGKILL after a grace period) and waits for it to exit. */
  stop(): Promise<void>;
}

/**
 * Starts a long-running server; `ready` is polled (with the child, to tell it from another
 * process on the same port) until it resolves true or `timeoutMs` passes.
 */
export async function startServer(
  command: string,
  args: string[],
  ready: (child: ChildProcess) => Promise<boolean>,
  options: { user?: string; timeoutMs?: number; label: string },
): Promise<ChildServer> {
  const [cmd, argv] = options.user && process.getuid?.() === 0 ? asUser(options.user, command, args) : [command, args];
  const child = spawn(cmd, argv, { stdio: ["ignore", "pipe", "pipe"], detached: false });
  let output = "";
  child.stdout?.on("data", (chunk) => (output = (output + chunk).slice(-4000)));
  child.stderr?.on("data", (chunk) => (output = (output + chunk).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  while (!(await ready(child).catch(() => false))) {
    if (child.exitCode !== null) throw new Error(`${options.label} exited during start-up:\n${output}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`${options.label} did not become ready in time:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(timer);
  };
  // Never leave a server behind if the test process goes away.
  const forget = onProcessExit(() => child.kill("SIGKILL"));
  void exited.then(forget);
  return { process: child, stop };
}
