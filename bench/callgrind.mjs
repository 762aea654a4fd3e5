// Instructions counted under valgrind's callgrind: what the `--instructions` modes of http.mjs
// and client.mjs share. A process runs under callgrind, its counters zeroed before a window of
// work and dumped after it; the dump's total over the window's requests is a request's count.
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";

/**
 * Counts the instructions a process runs in user space on every thread (the JIT's compiler and
 * the garbage collector included), not the kernel's. What they give that timings on this shared
 * 2-core machine cannot: the same work counted twice agrees within a few percent, where req/s
 * move by 15-40% between identical runs. Everything runs about 50 times slower.
 */
export const CALLGRIND_ARGS = (dir) => [
  "--tool=callgrind",
  "--smc-check=all-non-file", // V8 writes the code it runs
  `--callgrind-out-file=${dir}/callgrind.out.%p`,
  `--log-file=${dir}/valgrind.log`,
];

/** Runs a command to its end: its output, trimmed. */
export const run = (command, commandArgs) =>
  new Promise((resolve, reject) =>
    execFile(command, commandArgs, (error, stdout) => (error ? reject(error) : resolve(stdout.trim()))),
  );

/** valgrind's version, or an error that says how to get it. */
export const valgrindVersion = (what) =>
  run("valgrind", ["--version"]).catch(() => {
    throw new Error(`${what} runs under valgrind: install it (apt-get install -y valgrind)`);
  });

/** Zeroes the counters of the callgrind process `pid`. */
export const zeroCounters = (pid) => run("callgrind_control", ["--zero", String(pid)]);

/** Dumps callgrind process `pid`'s counters as its dump `n` (the first is 1) in `dir`: their total. */
export async function dumpCounters(dir, pid, n) {
  await run("callgrind_control", ["--dump", String(pid)]);
  return dumpTotal(dir, pid, n);
}

/** The instruction count of callgrind's dump `n` of process `pid`, once the dump is whole (its `totals:` line). */
async function dumpTotal(dir, pid, n) {
  const file = path.join(dir, `callgrind.out.${pid}.${n}`);
  for (let tries = 0; tries < 600; tries++) {
    const text = existsSync(file) ? readFileSync(file, "utf8") : "";
    const totals = /^totals:\s+(\d+)/m.exec(text);
    if (totals) return Number(totals[1]);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`callgrind wrote no whole dump at ${file}`);
}
