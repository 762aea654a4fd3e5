// Where a benchmark's numbers come from: the commit measured, and whether the sources it
// measures had uncommitted changes. One helper for every bench script's report header.
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const repo = fileURLToPath(new URL("..", import.meta.url));

function git(...args) {
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
