/**
 * The packages as a user gets them: `pnpm pack` of every published package (what `changeset
 * publish` uploads, `workspace:` ranges rewritten), then one fresh project outside the
 * repository, in the system's temporary folder, that installs the tarballs with npm next to the
 * peers the examples use, at the versions the lockfile holds. Nothing of the monorepo (its
 * node_modules, its tsconfig, its path aliases) is visible from there.
 *
 * An unreachable registry fails the run with what to do: the check never silently skips.
 *
 * The packing and the install (half a minute, mostly waiting on the registry) run in the
 * background: Vitest runs every project's global setup, one after another, before any test
 * starts, and the other projects' tests need none of this. This project's test files wait for
 * it (`packedApp()` in ready.ts), told of it by a file the setup writes when it is done.
 */

import { execFile } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { promisify } from "node:util";
import type { TestProject } from "vitest/node";
import { lockedVersion } from "./lockfile.js";
import { type PublishedPackage, publishedPackages, repoRoot } from "./packages.js";
import type { PackedOutcome } from "./ready.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** The project that installs the tarballs: run `node` and `tsc` here, once `packedApp()` says it is ready. */
    packedApp: string;
    /** Each published package's tarball, by package name. */
    tarballs: Record<string, string>;
    /** Where the setup says how the packing and the install ended (ready.ts reads it). */
    packedOutcome: string;
  }
}

const run = promisify(execFile);

/** The peers (and their types) the packages and the examples need, from the importer that pins them. */
const PEERS: Array<[name: string, importer: string]> = [
  ["express", "packages/express"],
  ["@types/express", "packages/express"],
  ["fastify", "packages/fastify"],
  ["koa", "packages/koa"],
  ["@types/koa", "packages/koa"],
  ["hono", "packages/hono"],
  ["@hono/node-server", "packages/hono"],
  // The Koa README's example also uses a router and a body parser.
  ["@koa/router", "docs"],
  ["@koa/bodyparser", "packages/koa"],
  ["ioredis", "packages/redis"],
  ["pg", "packages/postgres"],
  ["@types/pg", "packages/postgres"],
  ["@opentelemetry/api", "packages/opentelemetry"],
  ["@types/node", "."],
  // `@interlock/core/testing` registers its suites with vitest: its optional peer.
  ["vitest", "."],
];

/**
 * The environment without what `pnpm test` and vitest add (the running script's npm_package_*
 * and npm_lifecycle_*, pnpm's user agent): npm must not take itself for a script of this
 * repository. A registry set in the environment (npm_config_registry) is kept.
 */
function cleanEnv(): NodeJS.ProcessEnv {
  const added =
    /^(npm_package_|npm_lifecycle_|npm_config_user_agent$|npm_(node_)?execpath$|npm_command$|pnpm_|VITEST|NODE_OPTIONS$)/i;
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !added.test(name)));
}

function assertBuilt(packages: PublishedPackage[]): void {
  const unbuilt = packages.filter((pkg) => !existsSync(join(pkg.dir, "dist")));
  if (unbuilt.length > 0) {
    throw new Error(
      `packed: ${unbuilt.map((pkg) => pkg.name).join(", ")} not built: run \`pnpm build\` (the root \`pnpm test\` does) first`,
    );
  }
}

/**
 * pnpm as the README runs it, through npx at the version the repository names (`packageManager`):
 * a fresh machine has Node and npm but no pnpm on its PATH.
 */
function pnpmThroughNpx(): string[] {
  const { packageManager } = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as {
    packageManager: string;
  };
  return ["-y", packageManager];
}

/** The tarball `pnpm pack` makes of each package, by package name. */
function tarballPaths(packages: PublishedPackage[], destination: string): Record<string, string> {
  return Object.fromEntries(
    packages.map((pkg) => [
      pkg.name,
      join(destination, `${pkg.name.replace(/^@/, "").replace("/", "-")}-${pkg.version}.tgz`),
    ]),
  );
}

/** `pnpm pack` of each package named in `tarballs`, into `destination`: each tarball at its path there. */
async function pack(tarballs: Record<string, string>, destination: string): Promise<void> {
  const filters = Object.keys(tarballs).flatMap((name) => ["--filter", name]);
  await run("npx", [...pnpmThroughNpx(), "-r", ...filters, "pack", "--pack-destination", destination], {
    cwd: repoRoot,
    env: cleanEnv(),
  });
  const files = readdirSync(destination);
  for (const path of Object.values(tarballs)) {
    if (!files.includes(basename(path))) {
      throw new Error(`packed: \`pnpm pack\` made no ${basename(path)} (made: ${files.join(", ")})`);
    }
  }
}

/** Fails first, and by name, when the registry cannot be reached: npm's own error then is a puzzle (ERESOLVE). */
async function assertRegistryReachable(app: string): Promise<void> {
  try {
    await run("npm", ["ping"], { cwd: app, env: cleanEnv(), timeout: 30_000 });
  } catch (error) {
    const { stderr } = error as { stderr?: string };
    throw new Error(
      "packed: the npm registry is unreachable (`npm ping` failed), and this check installs the peers (express, " +
        "fastify, …) from it. Restore network access, or point npm at a mirror (`npm config set registry <url>`, " +
        `or npm_config_registry).\n${stderr ?? error}`,
    );
  }
}

async function install(app: string, tarballs: string[]): Promise<void> {
  const peers = PEERS.map(([name, importer]) => `${name}@${lockedVersion(importer, name)}`);
  const args = ["install", "--no-audit", "--no-fund", "--save-exact", "--fetch-retries=1", ...tarballs, ...peers];
  try {
    await run("npm", args, { cwd: app, env: cleanEnv(), maxBuffer: 16 * 1024 * 1024 });
  } catch (error) {
    const { stderr } = error as { stderr?: string };
    throw new Error(`packed: \`npm ${args.join(" ")}\` failed in ${app}:\n${(stderr ?? String(error)).slice(-4000)}`);
  }
}

/** Packs, installs, and checks npm installed these very versions. */
async function prepare(
  packages: PublishedPackage[],
  app: string,
  tarballDir: string,
  tarballs: Record<string, string>,
): Promise<void> {
  await Promise.all([pack(tarballs, tarballDir), assertRegistryReachable(app)]);
  await install(app, Object.values(tarballs));
  for (const pkg of packages) {
    const installed = JSON.parse(readFileSync(join(app, "node_modules", pkg.name, "package.json"), "utf8"));
    if (installed.version !== pkg.version) throw new Error(`packed: npm installed ${pkg.name}@${installed.version}`);
  }
}

export default function setup({ provide }: TestProject) {
  const packages = publishedPackages();
  assertBuilt(packages);
  const work = mkdtempSync(join(tmpdir(), "interlock-packed-"));
  const tarballDir = join(work, "tarballs");
  const app = join(work, "app");
  mkdirSync(tarballDir);
  mkdirSync(app);
  // "type": "module": the TypeScript checks compile ESM files under node16, as a Node ESM app does.
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "packed-app", private: true, type: "module" }));
  const tarballs = tarballPaths(packages, tarballDir);
  const outcome = join(work, "outcome.json");
  provide("packedApp", app);
  provide("tarballs", tarballs);
  provide("packedOutcome", outcome);
  const preparing = prepare(packages, app, tarballDir, tarballs).then(
    () => writeOutcome(outcome, { ready: true }),
    (error: unknown) =>
      writeOutcome(outcome, { ready: false, error: error instanceof Error ? error.message : String(error) }),
  );
  return async () => {
    await preparing;
    rmSync(work, { recursive: true, force: true });
  };
}

/** Written whole, then renamed: a reader never sees half of it. */
function writeOutcome(path: string, outcome: PackedOutcome): void {
  writeFileSync(`${path}.tmp`, JSON.stringify(outcome));
  renameSync(`${path}.tmp`, path);
}
