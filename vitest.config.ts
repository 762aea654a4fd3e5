import { availableParallelism } from "node:os";
import { defineConfig } from "vitest/config";
import projects from "./vitest.workspace.ts";

export default defineConfig({
  test: {
    // Each project's test time limit is set in vitest.workspace.ts: projects do not inherit it from here.
    projects,
    // Vitest runs one worker fewer than the cores: on a 2-core machine (CI's), one, so every file
    // waited for the one before. Most tests wait on sockets, servers and child processes, so one
    // worker more than the cores keeps them busy: on 2 cores, the whole run took 301 s with one
    // worker, 185 s with two (of a smaller suite), and 338 s with two, 290 s with three, 311 s
    // with four (the suite of December 2026, 244 files).
    maxWorkers: availableParallelism() + 1,
  },
});
