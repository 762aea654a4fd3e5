/**
 * The scenario table on another runtime (test/bun.test.ts, test/deno.test.ts): the runtime
 * serves test/fixtures/scenario-server.ts, whose handlers call back here over HTTP so the
 * table's bookkeeping stays in the vitest process. Then test/fixtures/dropped-server.ts.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { cpSync, mkdirSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { type SchemeName, schemes, type VerifiedWebhook } from "@interlock/core";
import { describeAdapterScenarios, type ScenarioAppOptions, type ScenarioHandlers } from "@interlock/core/testing";
import { createPackedApp, type PackedApp } from "@interlock/test-harness/packed-app";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ScenarioServerConfig } from "./fixtures/scenario-server.js";
import { type Served, serveNode } from "./serve.js";

async function call(handlers: ScenarioHandlers, path: string | undefined, input: { body?: unknown }) {
  if (path !== "/webhook") return handlers.payment(input.body);
  await handlers.webhook(input as VerifiedWebhook);
  return {};
}

/** The table's handlers, called by the runtime's app over HTTP. */
function handlerEndpoint(handlers: ScenarioHandlers): Promise<Served> {
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const input = JSON.parse(Buffer.concat(chunks).toString());
    try {
      const output = await call(handlers, req.url, input);
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(output));
    } catch {
      res.writeHead(500).end();
    }
  });
  return serveNode(server);
}

function schemeName(options: ScenarioAppOptions): SchemeName {
  const found = Object.entries(schemes).find(([, scheme]) => scheme === options.webhook.scheme);
  if (!found) throw new Error("the scenario's scheme is not a preset");
  return found[0] as SchemeName;
}

function configFor(options: ScenarioAppOptions, handlers: string): ScenarioServerConfig {
  const { webhook, idempotency } = options;
  return {
    handlers,
    store: webhook.store.name === "memory" ? "memory" : "unreachable",
    webhook: {
      scheme: schemeName(options),
      secret: ([] as unknown[]).concat(webhook.secret) as string[],
      ...(webhook.lockTtlMs === undefined ? {} : { lockTtlMs: webhook.lockTtlMs }),
    },
    idempotency: {
      ...(idempotency.lockTtlMs === undefined ? {} : { lockTtlMs: idempotency.lockTtlMs }),
      ...(typeof idempotency.required === "boolean" ? { required: idempotency.required } : {}),
    },
  };
}

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

/**
 * For the test file that calls it: a throwaway app with @interlock/core and @interlock/hono
 * installed from their packed tarballs and hono linked, exactly the files users get, with
 * test/app.ts and these `fixtures` copied in at the same relative paths as here (the runtime
 * runs their TypeScript itself). Resolves to the app's folder once `beforeAll` has made it.
 */
export function usePackedFixtures(fixtures: readonly string[]): () => string {
  let app: PackedApp | undefined;
  beforeAll(() => {
    app = createPackedApp(["core", "hono"], { hono: here("../node_modules/hono") });
    mkdirSync(join(app.dir, "fixtures"));
    cpSync(here("./app.ts"), join(app.dir, "app.ts"));
    for (const fixture of fixtures) cpSync(here(`./fixtures/${fixture}`), join(app.dir, "fixtures", fixture));
  }, 60_000);
  afterAll(() => app?.remove());
  return () => {
    if (app === undefined) throw new Error("the packed app is made in beforeAll");
    return app.dir;
  };
}

export interface RuntimeServer {
  child: ChildProcess;
  url: string;
}

export interface RuntimeCommand {
  /** "bun" or "deno": what the app must report it ran on (with core on Web Crypto). */
  runtime: string;
  command: string;
  args: string[];
  cwd: string;
}

/** Starts an app on another runtime and waits for the URL it prints. */
export async function startRuntimeServer(
  { runtime, command, args, cwd }: RuntimeCommand,
  config: ScenarioServerConfig | null,
): Promise<RuntimeServer> {
  // Its own process group, which stopRuntimeServer ends whole: the npm package's `deno` is a
  // Node launcher that runs the binary as its child, which a signal to the launcher alone orphans.
  const child = spawn(command, args, {
    cwd,
    env: { ...process.env, INTERLOCK_SCENARIO: JSON.stringify(config) },
    stdio: ["ignore", "pipe", "inherit"],
    detached: true,
  });
  const exited = new Promise<never>((_, reject) =>
    child.once("exit", (code) => reject(new Error(`${runtime} exited (${code}) before serving`))),
  );
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const first = new Promise<string>((resolve) => lines.once("line", resolve));
  const started = JSON.parse(await Promise.race([first, exited])) as {
    url: string;
    runtime: { name: string; crypto: string };
  };
  if (started.runtime.name !== runtime || started.runtime.crypto !== "web") {
    await stopRuntimeServer({ child, url: started.url });
    throw new Error(`expected ${runtime} with Web Crypto, got ${JSON.stringify(started.runtime)}`);
  }
  return { child, url: started.url };
}

/** Ends the runtime's process group, launcher and runtime alike, and waits for the launcher's exit. */
export async function stopRuntimeServer({ child }: RuntimeServer): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exit = new Promise((resolve) => child.once("exit", resolve));
  process.kill(-(child.pid as number), "SIGTERM");
  await exit;
}

/** The whole scenario table, each row's app served by `command` (called per row). */
export function describeScenariosOn(name: string, command: () => RuntimeCommand): void {
  describeAdapterScenarios(name, async (options) => {
    const endpoint = await handlerEndpoint(options.handlers);
    const server = await startRuntimeServer(command(), configFor(options, endpoint.url)).catch(async (error) => {
      await endpoint.close();
      throw error;
    });
    return {
      url: server.url,
      async close() {
        await stopRuntimeServer(server);
        await endpoint.close();
      },
    };
  });
}

/**
 * test/fixtures/dropped-server.ts served by `command`: an outer middleware drops the recorded
 * answer unread, and the key still settles (stored within `maxRecordBytes`, released past it).
 */
export function describeDroppedAnswersOn(name: string, command: () => RuntimeCommand): void {
  describe(`${name}: an answer an outer middleware drops unread`, () => {
    let server: RuntimeServer;
    beforeAll(async () => {
      server = await startRuntimeServer(command(), null);
    }, 60_000);
    afterAll(async () => {
      if (server) await stopRuntimeServer(server);
    });
    const send = (path: string) =>
      fetch(`${server.url}${path}`, { method: "POST", headers: { "idempotency-key": "k" }, body: "{}" });

    it("is stored all the same: the retry is a replay, through the outer middleware again", async () => {
      const first = await send("/dropped");
      expect([first.status, await first.text()]).toEqual([201, "custom page"]);
      const retry = await send("/dropped");
      expect([retry.status, await retry.text(), retry.headers.get("idempotent-replayed")]).toEqual([
        201,
        "custom page",
        "true",
      ]);
    });

    it("past maxRecordBytes, its key is released: the retry runs the route again", async () => {
      expect(await (await send("/dropped-large")).text()).toBe("custom page");
      const retry = await send("/dropped-large");
      expect([retry.status, await retry.text(), retry.headers.get("idempotent-replayed")]).toEqual([
        200,
        "custom page",
        null,
      ]);
    });
  });
}
