/**
 * Cloudflare's runtime for the packages that promise Workers: `workerd`, installed from npm
 * (the binary comes in @cloudflare/workerd-linux-64), serving a worker bundled from the packed,
 * built packages on 127.0.0.1, without `nodejs_compat`: only what Workers give every worker.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { buildModules } from "./bundle.js";

const require = createRequire(import.meta.url);

interface WorkerdPackage {
  /** The binary's absolute path. */
  default: string;
  /** The newest compatibility date this workerd supports. */
  compatibilityDate: string;
}

function workerdPackage(): WorkerdPackage {
  try {
    return require("workerd") as WorkerdPackage;
  } catch (error) {
    throw new Error(
      "workerd is missing from @interlock/test-harness's node_modules: run `npx -y pnpm@12.4.2 install` at the repository root",
      { cause: error },
    );
  }
}

/**
 * Bundles `entry` into `outDir/worker.js` as one ES module, the way Wrangler does (the
 * `workerd`, `worker` and `browser` conditions unless told), with every `@interlock/*` package
 * and `hono` resolved from `appDir` (see createPackedApp), never from the workspace; only the
 * test harness's own modules come from here.
 */
export async function bundleFromApp(
  entry: string,
  appDir: string,
  outDir: string,
  conditions = ["workerd", "worker", "browser"],
): Promise<string> {
  const fromApp = Symbol("resolved from the app");
  await buildModules({ worker: entry }, outDir, ".js", {
    platform: "neutral",
    noExternal: [/.*/],
    esbuildOptions(options) {
      options.conditions = conditions;
      options.mainFields = ["module", "main"];
    },
    esbuildPlugins: [
      {
        name: "packed-app",
        setup(b) {
          b.onResolve({ filter: /^(@interlock\/[a-z-]+|hono)(\/.*)?$/ }, (args) =>
            // The harness is no package users install: a fixture's import of it (the suites' secret) is bundled from here.
            args.pluginData === fromApp || args.path.startsWith("@interlock/test-harness/")
              ? undefined
              : b.resolve(args.path, { kind: args.kind, resolveDir: appDir, pluginData: fromApp }),
          );
        },
      },
    ],
  });
  return join(outDir, "worker.js");
}

export interface RunningWorker {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  close(): Promise<void>;
}

/** How startWorkerd serves a worker. */
export interface WorkerdOptions {
  /**
   * Serve with `nodejs_compat` (`process`, `Buffer`, `node:` modules, and timers of Node's
   * shape), as Workers do by default from the 2026-08-04 compatibility date. Default false: web
   * standards only.
   */
  nodejsCompat?: boolean;
  /**
   * More compatibility flags, after the ones `nodejsCompat` chooses: a switch Workers document
   * (`no_global_navigator`, say) that a test serves the worker with. Default none.
   */
  compatibilityFlags?: readonly string[];
}

/**
 * The config: the worker on a free loopback port; its outbound fetch may reach loopback only.
 * Compatibility dates from 2026-08-04 on turn `nodejs_compat` on by default (`process`,
 * `Buffer`, `node:` modules): unless asked for, the flags turn it off, so the packages get web
 * standards only. `extraFlags` follow those.
 */
function config(compatibilityDate: string, nodejsCompat: boolean, extraFlags: readonly string[]): string {
  const flags = [nodejsCompat ? '"nodejs_compat"' : '"no_nodejs_compat", "no_nodejs_compat_v2"']
    .concat(extraFlags.map((flag) => JSON.stringify(flag)))
    .join(", ");
  return `using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "main", worker = .worker),
    (name = "loopback", network = (allow = ["local"])),
  ],
  sockets = [(name = "http", address = "127.0.0.1:0", http = (), service = "main")],
);

const worker :Workerd.Worker = (
  modules = [(name = "worker.js", esModule = embed "worker.js")],
  compatibilityDate = "${compatibilityDate}",
  compatibilityFlags = [${flags}],
  globalOutbound = "loopback",
);
`;
}

/**
 * Serves `dir/worker.js` (see bundleFromApp) with workerd and resolves once it listens. One
 * process, one worker instance: module state, a MemoryStore among it, lives across requests.
 */
export async function startWorkerd(dir: string, options: WorkerdOptions = {}): Promise<RunningWorker> {
  const workerd = workerdPackage();
  const configPath = join(dir, "config.capnp");
  writeFileSync(
    configPath,
    config(workerd.compatibilityDate, options.nodejsCompat === true, options.compatibilityFlags ?? []),
  );
  // workerd reports each socket's port on the control file descriptor, as JSON lines.
  const child: ChildProcess = spawn(workerd.default, ["serve", configPath, "--control-fd=3"], {
    cwd: dir,
    stdio: ["ignore", "inherit", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<never>((_, reject) =>
    child.once("exit", (code) => reject(new Error(`workerd exited (${code}) before listening:\n${stderr}`))),
  );
  const control = createInterface({ input: child.stdio[3] as Readable });
  const listening = new Promise<number>((resolve) =>
    control.on("line", (line) => {
      const event = JSON.parse(line) as { event: string; socket?: string; port?: number };
      if (event.event === "listen" && event.socket === "http") resolve(event.port as number);
    }),
  );
  const port = await Promise.race([listening, exited]);
  exited.catch(() => {}); // once listening, an exit is close()'s
  return {
    url: `http://127.0.0.1:${port}`,
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exit = new Promise((resolve) => child.once("exit", resolve));
      child.kill();
      await exit;
    },
  };
}

/**
 * The ways Workers run a worker that bear on how long its timers live: without `nodejs_compat`
 * (a timer is a number), with it (a timer of Node's shape, `unref` and all, still the request's
 * that set it), and with it but without the global `navigator` (`no_global_navigator`, a
 * documented switch), where Workers must be told by other means.
 */
export const TIMER_CONFIGURATIONS = {
  plain: {},
  nodejs_compat: { nodejsCompat: true },
  "nodejs_compat, no_global_navigator": { nodejsCompat: true, compatibilityFlags: ["no_global_navigator"] },
} as const satisfies Record<string, WorkerdOptions>;

export type TimerConfiguration = keyof typeof TIMER_CONFIGURATIONS;

/** Each of TIMER_CONFIGURATIONS, by name. */
export const TIMER_CONFIGURATION_NAMES = Object.keys(TIMER_CONFIGURATIONS) as TimerConfiguration[];

/**
 * The worker bundled in `dir` served once in each of TIMER_CONFIGURATIONS, one after the other
 * (each start writes its configuration to `dir`). Those started are closed if one fails to start.
 */
export async function startInEveryTimerConfiguration(dir: string): Promise<Record<TimerConfiguration, RunningWorker>> {
  const workers: Partial<Record<TimerConfiguration, RunningWorker>> = {};
  try {
    for (const name of TIMER_CONFIGURATION_NAMES) workers[name] = await startWorkerd(dir, TIMER_CONFIGURATIONS[name]);
  } catch (error) {
    await Promise.all(Object.values(workers).map((worker) => worker.close()));
    throw error;
  }
  return workers as Record<TimerConfiguration, RunningWorker>;
}
