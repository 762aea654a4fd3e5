/** Drives test/fixtures/worker.mjs processes: one request at a time, answers in order. */

import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";

const script = fileURLToPath(new URL("./fixtures/worker.mjs", import.meta.url));

interface Reply {
  ok: boolean;
  error?: string;
  [field: string]: unknown;
}

export class Worker {
  readonly #replies: Array<(reply: Reply) => void> = [];
  readonly #exited: Promise<void>;

  private constructor(readonly child: ChildProcess) {
    child.on("message", (reply: Reply) => this.#replies.shift()?.(reply));
    this.#exited = new Promise((resolve) => child.once("exit", () => resolve()));
  }

  static async start(): Promise<Worker> {
    const worker = new Worker(fork(script, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] }));
    await worker.#next(); // loaded
    return worker;
  }

  #next(): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => {
      this.#replies.push(resolve);
      this.#exited.then(() => reject(new Error(`worker ${this.child.pid} exited`)));
    });
  }

  async request<T = Record<string, unknown>>(command: string, args: Record<string, unknown> = {}): Promise<T> {
    const reply = this.#next();
    this.child.send({ command, ...args });
    const answer = await reply;
    if (!answer.ok) throw new Error(`worker ${this.child.pid}: ${answer.error}`);
    return answer as T;
  }

  kill(): Promise<void> {
    this.child.kill("SIGKILL");
    return this.#exited;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    await this.request("exit").catch(() => {});
    await this.#exited;
  }
}
