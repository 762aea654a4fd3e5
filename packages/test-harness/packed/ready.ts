/**
 * The packed project, once the global setup has packed and installed the tarballs (it does so in
 * the background: global-setup.ts). Each test file awaits `packedApp()` before it reads the project.
 */

import { existsSync, readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { inject } from "vitest";

/** What the setup writes when it is done. */
export type PackedOutcome = { ready: true } | { ready: false; error: string };

/** Longer than the install has ever taken on a loaded machine; the registry's own timeouts come first. */
const WAIT_LIMIT_MS = 10 * 60_000;
const POLL_MS = 200;

/** The project that installed the tarballs; throws the setup's error when the packing or the install failed. */
export async function packedApp(): Promise<string> {
  const path = inject("packedOutcome");
  const started = Date.now();
  while (!existsSync(path)) {
    if (Date.now() - started > WAIT_LIMIT_MS) {
      throw new Error(`packed: the packing and install did not end within ${WAIT_LIMIT_MS / 60_000} minutes`);
    }
    await sleep(POLL_MS);
  }
  const outcome = JSON.parse(readFileSync(path, "utf8")) as PackedOutcome;
  if (!outcome.ready) throw new Error(outcome.error);
  return inject("packedApp");
}
