/**
 * A package's app on another runtime (Bun, Deno), run from the packed, built packages: a
 * throwaway app (packed-app.ts) with the package's test fixtures copied in, which the runtime
 * runs as TypeScript itself. A fixture serves its app with runtime-app.ts, installed in that app
 * as `@interlock/test-harness/runtime-app`. For the scenario table, the fixture's handlers call
 * back into the vitest process over HTTP, so the table's bookkeeping stays here.
 *
 * Only the fixture that builds the app is the package's; this is the rest.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { cpSync, mkdirSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { type SchemeName, schemes, type VerifiedWebhook } from "@interlock/core";
import {
  type CreateScenarioApp,
  describeAdapterScenarios,
  type ScenarioApp,
  type ScenarioAppOptions,
  type ScenarioHandlers,
} from "@interlock/core/testing";
import { afterAll, beforeAll } from "vitest";
import { buildModules } from "./bundle.js";
import { createPackedApp, type PackedApp } from "./packed-app.js";
import { installedRuntime } from "./portability.js";
import type { ScenarioServerConfig } from "./runtime-app.js";

const RUNTIME_APP = fileURLToPath(new URL("./runtime-app.ts", import.meta.url));

/** What `usePackedFixtures` makes: the packed packages, the files copied in, the runtime half installed. */
export interface PackedFixtures {
  /** Interlock package folder names to install from their tarballs ("core", "web"). */
  packages: string[];
  /** Other dependencies, linked: a name to the folder it is installed in (see createPackedApp). */
  linked?: Record<string, string>;
  /** Files to copy in: a path in the app to the absolute path of the file. */
  files: Record<string, string>;
}

/**
 * runtime-app.ts as JavaScript (Deno strips no types under `node_modules`), installed in the app
 * as `@interlock/test-harness/runtime-app`, importing the app's own packed @interlock/core.
 */
async function installRuntimeApp(appDir: string): Promise<void> {
  const outDir = join(appDir, "node_modules/@interlock/test-harness");
  await buildModules({ "runtime-app": RUNTIME_APP }, outDir, ".js", {
    platform: "neutral",
    external: [/^@interlock\/core(\/.*)?$/],
  });
  writeFileSync(
    join(outDir, "package.json"),
    JSON.stringify({
      name: "@interlock/test-harness",
      type: "module",
      exports: { "./runtime-app": "./runtime-app.js" },
    }),
  );
}

/**
 * For the test file that calls it: a throwaway app with `packages` installed from their packed
 * tarballs (exactly the files users get), `linked` linked, and `files` copied in. Resolves to
 * the app's folder once `beforeAll` has made it.
 */
export function usePackedFixtures({ packages, linked = {}, files }: PackedFixtures): () => string {
  let app: PackedApp | undefined;
  beforeAll(async () => {
    app = createPackedApp(packages, linked);
    for (const [to, from] of Object.entries(files)) {
      mkdirSync(dirname(join(app.dir, to)), { recursive: true });
      cpSync(from, join(app.dir, to));
    }
    await installRuntimeApp(app.dir);
  }, 60_000);
  afterAll(() => app?.remove());
  return () => {
    if (app === undefined) throw new Error("the packed app is made in beforeAll");
    return app.dir;
  };
}

export interface RuntimeCommand {
  /** "bun" or "deno": what the app must report it ran on (with core on Web Crypto). */
  runtime: string;
  command: string;
  args: string[];
  cwd: string;
}

/** Bun on `file` (a path in the packed app at `appDir`). */
export function bunCommand(appDir: string, file: string): RuntimeCommand {
  return { runtime: "bun", command: installedRuntime("bun"), args: [file], cwd: appDir };
}

/** Deno on `file` (a path in the packed app at `appDir`), allowed loopback, env and reads only. */
export function denoCommand(appDir: string, file: string): RuntimeCommand {
  return {
    runtime: "deno",
    command: installedRuntime("deno"),
    // --sloppy-imports: the sources import "../app.js" as TypeScript compiled to .js would.
    args: ["run", "--quiet", "--sloppy-imports", "--allow-net=127.0.0.1", "--allow-env", "--allow-read", file],
    cwd: appDir,
  };
}

export interface RuntimeServer {
  child: ChildProcess;
  url: string;
}

/** Starts an app on another runtime and waits for the URL it prints (runtime-app.ts, `serveOnRuntime`). */
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

async function jsonOf(request: IncomingMessage): Promise<{ body?: unknown }> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString());
}

async function call(handlers: ScenarioHandlers, path: string | undefined, input: { body?: unknown }) {
  if (path !== "/webhook") return handlers.payment(input.body);
  await handlers.webhook(input as VerifiedWebhook);
  return {};
}

/**
 * The table's handlers on 127.0.0.1, for runtime-app.ts's `remoteHandlers` to call; the exports
 * handler's chunks are written as the handler yields them, in one streamed answer.
 */
function handlerEndpoint(handlers: ScenarioHandlers): Promise<ScenarioApp> {
  const server = createServer(async (request, response) => {
    try {
      const input = await jsonOf(request);
      if (request.url === "/exportRows") {
        for await (const chunk of handlers.exportRows(input.body)) {
          if (!response.headersSent) response.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
          response.write(chunk);
        }
        response.end();
        return;
      }
      const output = await call(handlers, request.url, input);
      response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(output));
    } catch {
      // Failed before its answer began: a 500; once streaming, the answer is cut off.
      if (response.headersSent) response.destroy();
      else response.writeHead(500).end();
    }
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        close: () => new Promise<void>((done) => server.close(() => done())),
      }),
    ),
  );
}

function schemeName(options: ScenarioAppOptions): SchemeName {
  const found = Object.entries(schemes).find(([, scheme]) => scheme === options.webhook.scheme);
  if (!found) throw new Error("the scenario's scheme is not a preset");
  return found[0] as SchemeName;
}

/** The row's options as JSON for the runtime (runtime-app.ts rebuilds them); `handlers` is the endpoint. */
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
      ...(idempotency.methods === undefined ? {} : { methods: [...idempotency.methods] }),
    },
  };
}

/** What an app declares to the scenario table about its adapter (see `ScenarioApp`). */
export type ScenarioDeclarations = Pick<ScenarioApp, "storesStreamedAnswers">;

/**
 * The scenario app as `command` (called per app) serves it: a fixture that calls
 * `serveScenarioApp`, its handlers those of the options, in this process; `declared` is what
 * the app tells the table about its adapter, as the same app served on Node does.
 */
export function runtimeScenarioApp(
  command: () => RuntimeCommand,
  declared: ScenarioDeclarations = {},
): CreateScenarioApp {
  return async (options) => {
    const endpoint = await handlerEndpoint(options.handlers);
    const server = await startRuntimeServer(command(), configFor(options, endpoint.url)).catch(async (error) => {
      await endpoint.close();
      throw error;
    });
    return {
      ...declared,
      url: server.url,
      async close() {
        await stopRuntimeServer(server);
        await endpoint.close();
      },
    };
  };
}

/** The whole scenario table, each row's app served by `command` (see `runtimeScenarioApp`). */
export function describeScenariosOn(
  name: string,
  command: () => RuntimeCommand,
  declared: ScenarioDeclarations = {},
): void {
  describeAdapterScenarios(name, runtimeScenarioApp(command, declared));
}
