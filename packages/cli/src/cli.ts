#!/usr/bin/env node
/** The `interlock` executable: runs the command line; Ctrl+C (or SIGTERM) stops `listen` cleanly. */

import { processIo, run } from "./index.js";

const stop = new AbortController();
process.once("SIGINT", () => stop.abort()).once("SIGTERM", () => stop.abort());

run(process.argv.slice(2), processIo(stop.signal)).then((code) => {
  process.exitCode = code;
});
