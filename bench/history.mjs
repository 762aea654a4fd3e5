/**
 * Each target's verdicts across the committed runs of a benchmark: how often it was met, and its
 * value's median and range. One run is one draw: on this shared 2-core VM a ratio moves by up to
 * 0.2 between full runs with nothing changed on the measured path (bench/README.md, "Reading the
 * numbers"), so whether a target is met in truth, or missed by a margin no run closes, shows
 * across runs, not in the latest table alone.
 *
 *   node bench/history.mjs                 http.md, as the last 14 commits that changed it left it
 *   node bench/history.mjs --last 40       more (or fewer) commits
 *   node bench/history.mjs --file client   results/client.md instead
 *
 * Reads the versions of results/<file>.md in git history (a shallow clone has few or none), and
 * their "## Targets" tables, whose rows are `| target | value | verdict |`.
 */

import { option } from "./args.mjs";
import { git } from "./provenance.mjs";
import { median } from "./stats.mjs";

/** Commits that changed the file, newest first; one that changed only its prose repeats a run, counted once. */
const LAST = Number(option("--last", 14));
const FILE = `bench/results/${option("--file", "http")}.md`;
if (!Number.isInteger(LAST) || LAST < 1)
  throw new Error(`--last takes a whole number of commits, not ${option("--last")}`);

/** The target rows of one version of the results file: `{ target, value, met }`. */
function targetRows(markdown) {
  const section = markdown.split(/^## Targets$/m)[1]?.split(/^## /m)[0] ?? "";
  const rows = [];
  for (const line of section.split("\n")) {
    const cells = line.split("|").map((cell) => cell.trim());
    // | target | value | verdict |  →  ["", target, value, verdict, ""]
    if (cells.length !== 5 || cells[1] === "target" || cells[1].startsWith("---")) continue;
    const verdict = cells[3];
    const met =
      verdict === "✅" || verdict === "met" ? true : verdict === "❌" || verdict === "MISSED" ? false : undefined;
    if (met === undefined) continue;
    rows.push({ target: cells[1], value: targetValue(cells[2]), met });
  }
  return rows;
}

/**
 * A target's value: its first number; where we are compared with a peer, ours over theirs (the
 * "÷ theirs" figure, or, in tables older than it, "0.97 vs 0.25 of the bare app" divided out).
 */
function targetValue(cell) {
  const quotient = cell.match(/÷ theirs (\d+(?:\.\d+)?)/);
  if (quotient) return Number(quotient[1]);
  const versus = cell.match(/^(\d+(?:\.\d+)?) vs (\d+(?:\.\d+)?)/);
  if (versus) return Number(versus[1]) / Number(versus[2]);
  return Number(cell.match(/-?\d+(?:\.\d+)?/)?.[0]);
}

function main() {
  const commits = git("log", `--max-count=${LAST}`, "--format=%h %cs", "--", FILE)
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [commit, date] = line.split(" ");
      return { commit, date };
    });
  if (commits.length === 0) {
    console.log(`No committed version of ${FILE} in this checkout's history (a shallow clone?).`);
    return;
  }
  /** target → its verdicts, newest first. */
  const byTarget = new Map();
  const runsSeen = new Set();
  let runs = 0;
  for (const { commit } of commits) {
    const markdown = git("show", `${commit}:${FILE}`);
    const run = markdown.match(/^.* · commit .*$/m)?.[0];
    if (run !== undefined && runsSeen.has(run)) continue;
    if (run !== undefined) runsSeen.add(run);
    runs++;
    for (const row of targetRows(markdown)) {
      if (!byTarget.has(row.target)) byTarget.set(row.target, []);
      byTarget.get(row.target).push(row);
    }
  }
  const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : "—");
  const oldest = commits.at(-1);
  const newest = commits[0];
  console.log(
    `${FILE}: ${runs} runs in the last ${commits.length} commits that changed it, ${oldest.commit} (${oldest.date}) to ${newest.commit} (${newest.date}).\n`,
  );
  console.log("| target | runs | met | median | lowest | highest | latest |");
  console.log("|---|---:|---:|---:|---:|---:|---:|");
  for (const [target, verdicts] of byTarget) {
    const values = verdicts.map((verdict) => verdict.value);
    const met = verdicts.filter((verdict) => verdict.met).length;
    console.log(
      `| ${target} | ${verdicts.length} | ${met} | ${f2(median(values))} | ${f2(Math.min(...values))} | ${f2(Math.max(...values))} | ${f2(values[0])} ${verdicts[0].met ? "✅" : "❌"} |`,
    );
  }
}

main();
