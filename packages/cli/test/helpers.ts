/**
 * The CLI as users run it: `node dist/cli.js …` spawned as a real process, and real HTTP
 * servers on 127.0.0.1 for it to talk to.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { CliIo } from "../src/io.js";

export { refusedPort } from "@interlock/test-harness";

export const CLI = fileURLToPath(new URL("../dist/cli.js", import.meta.url));
if (!existsSync(CLI)) {
  throw new Error(`${CLI} is missing: build first (pnpm build; the root pnpm test builds before it runs vitest)`);
}

/** The environment a spawned CLI gets: this one without variables that change its output. */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const { INTERLOCK_DEBUG: _, ...env } = process.env;
  return { ...env, ...extra };
}

export interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `interlock send url` of an empty JSON delivery, signed for GitHub with the secret "s", then `extra`. */
export const sendGithub = (url: string, ...extra: string[]): Promise<Finished> =>
  interlock(["send", url, "--scheme", "github", "--secret", "s", "--body", "{}", ...extra]);

/** Runs `interlock …args` to its end. */
export function interlock(
  args: readonly string[],
  options: { stdin?: string | Uint8Array; env?: Record<string, string>; cwd?: string } = {},
): Promise<Finished> {
  const child = spawn(process.execPath, [CLI, ...args], { env: childEnv(options.env), cwd: options.cwd });
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
  child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
  child.stdin.end(options.stdin ?? "");
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) =>
      resolve({ code, stdout: Buffer.concat(stdout).toString(), stderr: Buffer.concat(stderr).toString() }),
    );
  });
}

/** The JSON objects of `--json` output, one per line (every line must parse). */
export function jsonLines(text: string): Array<Record<string, unknown>> {
  return text
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** A long-running `interlock …args` (listen): its stdout lines as they come, and a way to stop it. */
export class Running {
  readonly child: ChildProcessWithoutNullStreams;
  readonly lines: string[] = [];
  stderr = "";
  readonly #waiters = new Set<() => void>();
  readonly #exited: Promise<number | null>;

  constructor(args: readonly string[], env: Record<string, string> = {}) {
    this.child = spawn(process.execPath, [CLI, ...args], { env: childEnv(env) });
    this.child.stderr.on("data", (chunk: Buffer) => {
      this.stderr += chunk.toString();
    });
    createInterface({ input: this.child.stdout }).on("line", (line) => {
      this.lines.push(line);
      for (const wake of this.#waiters) wake();
    });
    this.#exited = new Promise((resolve) => this.child.once("exit", (code) => resolve(code)));
  }

  /** Resolves with the `count`th line (from 1), waiting for it; rejects if the process ends first. */
  async line(count: number): Promise<string> {
    while (this.lines.length < count) {
      const more = new Promise<void>((resolve) => this.#waiters.add(resolve));
      const ended = this.#exited.then((code) => {
        throw new Error(`interlock exited (${code}) after ${this.lines.length} lines; stderr: ${this.stderr}`);
      });
      await Promise.race([more, ended]);
      this.#waiters.clear();
    }
    return this.lines[count - 1] as string;
  }

  /** Sends SIGINT (Ctrl+C) and resolves with the exit code. */
  stop(): Promise<number | null> {
    if (this.child.exitCode === null) this.child.kill("SIGINT");
    return this.#exited;
  }
}

export interface Recorded {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface TestServer {
  url: string;
  requests: Recorded[];
  close(): Promise<void>;
}

/** An HTTP server on 127.0.0.1 that records every request (raw body included), then lets `answer` reply. */
export async function recordingServer(
  answer: (request: Recorded, response: ServerResponse, index: number) => void = (_, response) =>
    response.writeHead(204).end(),
): Promise<TestServer> {
  const requests: Recorded[] = [];
  const server = createServer(async (request: IncomingMessage, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const recorded = {
      method: request.method ?? "",
      url: request.url ?? "",
      headers: request.headers,
      body: Buffer.concat(chunks),
    };
    requests.push(recorded);
    answer(recorded, response, requests.length - 1);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** `interlock send url` signed for GitHub with `gh-secret` (what `githubListen` verifies), then `extra`. */
export const sendToGithubListener = (url: string, ...extra: string[]): Promise<Finished> =>
  interlock(["send", url, "--scheme", "github", "--secret", "gh-secret", ...extra]);

/** `listen` on a free port for GitHub deliveries signed with `gh-secret`, then `extra` options. */
export const githubListen = (...extra: string[]): string[] => [
  "listen",
  "--port",
  "0",
  "--scheme",
  "github",
  "--secret",
  "gh-secret",
  ...extra,
];

/** A temporary directory for body files; `remove` deletes it. */
export async function tempDir(): Promise<{
  path: string;
  file(name: string, content: string | Uint8Array): Promise<string>;
  remove(): Promise<void>;
}> {
  const path = await mkdtemp(join(tmpdir(), "interlock-cli-"));
  return {
    path,
    async file(name, content) {
      const file = join(path, name);
      await writeFile(file, content);
      return file;
    },
    remove: () => rm(path, { recursive: true, force: true }),
  };
}

/** An in-process `CliIo` that keeps what the command writes. */
export function memoryIo(
  options: { stdin?: string; env?: Record<string, string>; signal?: AbortSignal } = {},
): CliIo & {
  out: () => string;
  err: () => string;
} {
  let out = "";
  let err = "";
  return {
    stdout: { write: (text: string) => (out += text) },
    stderr: { write: (text: string) => (err += text) },
    stdin: (async function* () {
      if (options.stdin !== undefined) yield options.stdin;
    })(),
    env: options.env ?? {},
    ...(options.signal ? { signal: options.signal } : {}),
    out: () => out,
    err: () => err,
  };
}
