/**
 * Worker processes for the multi-process tests: bundles fixtures/worker.ts (with the store's
 * and core's source) into one file Node runs, and drives each process over IPC, matching
 * replies to requests by id, so one worker can serve several commands at once.
 */

import { type ChildProcess, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { bundleWorker } from "@interlock/test-harness/bundle";
import { inject } from "vitest";
import type { Commands, WorkerMessage, WorkerRequest } from "./fixtures/protocol.js";

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

/**
 * Bundles the TypeScript worker and returns the script's path. Inside the package, so the
 * bundle resolves ioredis from the package's own node_modules; in a directory of its own, so
 * test files building at the same time never see each other's half-written output.
 */
export async function buildWorker(): Promise<{ script: string; remove: () => Promise<void> }> {
  const outDir = here(`../node_modules/.cache/interlock-redis-worker/${randomBytes(6).toString("hex")}`);
  const script = await bundleWorker(here("./fixtures/worker.ts"), outDir, ["ioredis"]);
  return { script, remove: () => rm(outDir, { recursive: true, force: true }) };
}

export class Worker {
  readonly #child: ChildProcess;
  readonly ready: Promise<void>;
  readonly #exited: Promise<void>;
  readonly #pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  #ids = 0;

  constructor(
    script: string,
    prefix: string,
    readonly name: string,
  ) {
    const env = { ...process.env, REDIS_URL: inject("redisUrl"), PREFIX: prefix, WORKER_NAME: name };
    this.#child = fork(script, { env, stdio: ["ignore", "inherit", "inherit", "ipc"] });
    this.#exited = new Promise((resolve) => this.#child.once("exit", () => resolve()));
    // A worker that dies fails whatever it still owed, instead of leaving the test waiting.
    void this.#exited.then(() => {
      for (const { reject } of this.#pending.values()) reject(new Error(`worker ${name} exited`));
      this.#pending.clear();
    });
    this.ready = new Promise((resolve, reject) => {
      void this.#exited.then(() => reject(new Error(`worker ${name} exited before ready`)));
      this.#child.on("message", (message: WorkerMessage) => {
        if (message.type === "ready") return resolve();
        const pending = this.#pending.get(message.id);
        this.#pending.delete(message.id);
        if (message.ok) pending?.resolve(message.value);
        else pending?.reject(new Error(`worker ${name}: ${message.error}`));
      });
    });
  }

  request<C extends keyof Commands>(command: C, args: Commands[C][0]): Promise<Commands[C][1]> {
    const request = { id: ++this.#ids, command, args } as WorkerRequest;
    return new Promise((resolve, reject) => {
      this.#pending.set(request.id, { resolve: resolve as (value: unknown) => void, reject });
      this.#child.send(request);
    });
  }

  claim(keys: string[], options: { lockTtlMs: number; complete: boolean }) {
    return this.request("claim", { keys, ...options });
  }

  kill(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill("SIGKILL");
    return this.#exited;
  }
}

/** Starts worker processes on a prefix, and stops them (and removes the bundle) after the file. */
export function workerPool() {
  let built: Awaited<ReturnType<typeof buildWorker>> | undefined;
  const started: Worker[] = [];
  return {
    async build() {
      built = await buildWorker();
    },
    /** `count` workers on `prefix`, named `${label}0`, `${label}1`, … */
    async start(prefix: string, count: number, label = "w"): Promise<Worker[]> {
      if (!built) throw new Error("build() the worker first");
      const workers = Array.from({ length: count }, (_, i) => new Worker(built!.script, prefix, `${label}${i}`));
      started.push(...workers);
      await Promise.all(workers.map((worker) => worker.ready));
      return workers;
    },
    async stop() {
      await Promise.all(started.splice(0).map((worker) => worker.kill()));
      await built?.remove();
    },
  };
}
