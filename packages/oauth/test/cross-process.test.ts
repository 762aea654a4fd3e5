/**
 * Two real processes sharing one Redis and one authorization server: the single flight and the
 * refresh lock hold across processes, counted at the server.
 */

import { type ChildProcess, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { bundleWorker } from "@interlock/test-harness/bundle";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createKeyring, createSessionTokens } from "../src/index.js";
import { RedisTokenStore } from "../src/redis.js";
import type { WorkerReply, WorkerRequest } from "./fixtures/worker.js";
import { introspect, loggedInTokens, useAuthorizationServer, WEB_APP, webClient } from "./helpers.js";

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const server = useAuthorizationServer();
const prefix = `test:oauth-processes:${randomBytes(6).toString("hex")}:`;
const ENCRYPTION_KEY = "2A5xJ9QGbCqz4uQ0Gf8m1v3hTn6YwKp7sR0dLe2cVb4";

class Worker {
  readonly #child: ChildProcess;
  readonly ready: Promise<void>;
  readonly #pending = new Map<number, (reply: WorkerReply) => void>();
  #ids = 0;

  constructor(script: string) {
    this.#child = fork(script, {
      env: { ...process.env, REDIS_URL: inject("redisUrl"), PREFIX: prefix, ISSUER: server().issuer, ENCRYPTION_KEY },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    this.ready = new Promise((resolve, reject) => {
      this.#child.once("exit", (code) => reject(new Error(`worker exited with ${code}`)));
      this.#child.on("message", (message: WorkerReply | { ready: true }) => {
        if ("ready" in message) return resolve();
        this.#pending.get(message.id)?.(message);
        this.#pending.delete(message.id);
      });
    });
  }

  async ask(command: WorkerRequest["command"], callers: number, sessionId?: string): Promise<string[]> {
    const request: WorkerRequest = { id: ++this.#ids, command, callers, ...(sessionId ? { sessionId } : {}) };
    const reply = await new Promise<WorkerReply>((resolve) => {
      this.#pending.set(request.id, resolve);
      this.#child.send(request);
    });
    if (!reply.ok) throw new Error(reply.error);
    return reply.value;
  }

  stop(): void {
    this.#child.kill("SIGKILL");
  }
}

let outDir: string;
let workers: Worker[] = [];
const redis = new Redis(inject("redisUrl"));

beforeAll(async () => {
  outDir = here(`../node_modules/.cache/interlock-oauth-worker/${randomBytes(6).toString("hex")}`);
  const script = await bundleWorker(here("./fixtures/worker.ts"), outDir, ["ioredis", "oauth4webapi"]);
  workers = [new Worker(script), new Worker(script)];
  await Promise.all(workers.map((worker) => worker.ready));
});
afterAll(async () => {
  for (const worker of workers) worker.stop();
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
  await rm(outDir, { recursive: true, force: true });
});

describe("across two processes sharing a Redis store", () => {
  it("client credentials: 50 callers in each process, one token request at the server", async () => {
    const before = server().tokenRequests("client_credentials");
    const [a, b] = await Promise.all(workers.map((worker) => worker.ask("clientCredentials", 50)));
    expect(server().tokenRequests("client_credentials") - before).toBe(1);
    const tokens = new Set([...a!, ...b!]);
    expect(tokens.size).toBe(1);
    expect(await introspect(server(), [...tokens][0]!)).toMatchObject({ active: true, client_id: "service" });
    // The token sits in Redis, for every later process too.
    expect(await redis.keys(`${prefix}oauth:cc:*`)).toHaveLength(1);
  });

  it("session refresh: refreshes from both processes at once leave one intact refresh-token chain", async () => {
    const sessions = createSessionTokens(webClient(server()), {
      store: new RedisTokenStore(redis, { prefix }),
      encryptionKeys: createKeyring([{ id: "k1", key: ENCRYPTION_KEY }]),
    });
    const id = `cross-${randomBytes(6).toString("hex")}`;
    await sessions.save(id, await loggedInTokens(server()));
    const before = server().tokenRequests("refresh_token");

    const [a, b] = await Promise.all(workers.map((worker) => worker.ask("refresh", 10, id)));
    // Every refresh the server answered made one distinct refresh token, and each process got one
    // of them; none was refused as reused (that would have revoked the grant and failed the callers).
    const seen = new Set([...a!, ...b!]);
    expect(server().tokenRequests("refresh_token") - before).toBe(seen.size);
    expect(seen.size).toBeLessThanOrEqual(2);
    const stored = (await sessions.get(id))!;
    expect(seen.has(stored.refreshToken!)).toBe(true);
    expect(await introspect(server(), stored.refreshToken!, WEB_APP)).toMatchObject({ active: true });
    expect(
      (await fetch(`${server().issuer}/me`, { headers: { authorization: `Bearer ${stored.accessToken}` } })).status,
    ).toBe(200);
  });
});
