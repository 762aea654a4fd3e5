#!/usr/bin/env node
/** The `interlock` executable: runs the command line; Ctrl+C (or SIGTERM) stops `listen` cleanly. */

import { getEventListeners } from "node:events";
import { processIo, run } from "./index.js";

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

run(process.argv.slice(2), processIo(stop.signal)).then((code) => {
  process.exitCode = code;
});
