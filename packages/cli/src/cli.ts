#!/usr/bin/env node
/**
 * The `interlock` executable: runs the command line; Ctrl+C (or SIGTERM) stops `listen` cleanly,
 * and a closed output pipe stops any command.
 */

import { getEventListeners } from "node:events";
import { run } from "./index.js";
// Bundled into the executable (a few lines): the library entry does not export it.
import { processIo } from "./io.js";

const stop = new AbortController();

/**
 * A command that waits on the stop signal (`listen`) stops cleanly; any other (a `send --repeat`,
 * a `--body -` waiting on stdin) ends at once, as it would without this handler.
 */
function onSignal(signal: NodeJS.Signals): void {
  if (getEventListeners(stop.signal, "abort").length > 0) {
    stop.abort();
    return;
  }
  process.off("SIGINT", onSignal).off("SIGTERM", onSignal);
  process.kill(process.pid, signal);
}
process.once("SIGINT", onSignal).once("SIGTERM", onSignal);

/**
 * The reader of our output went away (`interlock send … | head -1`): stop at once, as SIGPIPE
 * ends a program (Node ignores that signal, so a write fails with EPIPE instead), with the
 * status a shell reports for it and no stack trace.
 */
const SIGPIPE_STATUS = 141;
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(SIGPIPE_STATUS);
  throw error;
});

run(process.argv.slice(2), processIo(stop.signal)).then((code) => {
  process.exitCode = code;
});
