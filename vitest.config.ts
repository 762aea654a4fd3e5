import { availableParallelism } from "node:os";
import { defineConfig } from "vitest/config";
import projects from "./vitest.workspace.ts";

export default defineConfig({
  test: {
    // Each project's test time limit is set in vitest.workspace.ts: projects do not inherit it from here.
    projects,
    // Vitest runs one worker fewer than the cores: on a 2-core machine (CI's), one, so every file
    // waited for the one before. Most tests wait on sockets, servers and child processes; two side
    // by side halve the suite's time there (measured: 301 s → 185 s), one per core elsewhere.
    maxWorkers: Math.max(2, availableParallelism() - 1),
  },
});
