// Where a benchmark's numbers come from: the commit measured, and whether the sources it
// measures had uncommitted changes. One helper for every bench script's report header.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const repo = fileURLToPath(new URL("..", import.meta.url));

/** A git command's output in this checkout, trimmed; "" when git fails (no checkout, no git). */
export function git(...args) {
  try {
    return execFileSync("git", args, { cwd: repo, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return "";
  }
}

/** "abc1234", "abc1234 + uncommitted changes in packages/", or "unknown" outside a checkout. */
export function measuredCommit(sources = "packages/") {
  const commit = git("rev-parse", "--short", "HEAD");
  if (!commit) return "unknown";
  const dirty = git("status", "--porcelain", "--", sources) !== "";
  return `${commit}${dirty ? ` + uncommitted changes in ${sources}` : ""}`;
}

/**
 * The results file a run writes under results/: `http.md` on Node 20, the Node this machine and
 * CI run and the one every earlier table was measured on; `http-node26.md` on Node 26, and so
 * on, so a run on another Node adds its own table instead of replacing the reference one.
 */
export function resultsFile(name) {
  const major = Number.parseInt(process.versions.node, 10);
  return major === REFERENCE_NODE_MAJOR ? `${name}.md` : `${name}-node${major}.md`;
}

const REFERENCE_NODE_MAJOR = 20;

/**
 * Writes a run's table to results/ under `resultsFile(name)`, or says why it did not: a partial
 * run (`partial` names what made it one: "quick", "partial") leaves the committed table as it was.
 */
export function writeResults(script, name, markdown, partial) {
  const file = resultsFile(name);
  if (partial) {
    process.stderr.write(`bench:${script}: ${partial} run, results/${file} left as it was\n`);
    return;
  }
  const dir = fileURLToPath(new URL("./results/", import.meta.url));
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}${file}`, markdown);
  process.stderr.write(`bench:${script}: wrote bench/results/${file}\n`);
}
