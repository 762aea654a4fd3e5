/**
 * The adapter and core on Cloudflare Workers, for real: a Hono app (test/fixtures/workers-app.ts)
 * bundled from the packed, built packages as Wrangler bundles a worker, served by workerd
 * without `nodejs_compat`, through the test harness's rows. A missing workerd fails the run; it
 * is never skipped. Then lease renewal (test/fixtures/workers-lease.ts), with `nodejs_compat`
 * off and on, and on without the global `navigator`.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { createPackedApp, type PackedApp } from "@interlock/test-harness/packed-app";
import {
  bundleFromApp,
  type RunningWorker,
  startInEveryTimerConfiguration,
  TIMER_CONFIGURATION_NAMES,
  TIMER_CONFIGURATIONS,
  type TimerConfiguration,
} from "@interlock/test-harness/workerd";
import { describeWorkerApp } from "@interlock/test-harness/workers-app";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const linked = { hono: here("../node_modules/hono") };

describeWorkerApp("hono", { entry: here("./fixtures/workers-app.ts"), packages: ["core", "hono"], linked });

// A timer on Workers fires only while the request that set it runs: a lease must be renewed by a
// timer of its own request's, not by one an earlier request set and took with it when it ended.
describe("hono on Cloudflare Workers (workerd): lease renewal", () => {
  let app: PackedApp;
  let workers: Record<TimerConfiguration, RunningWorker> | undefined;

  beforeAll(async () => {
    app = createPackedApp(["core", "hono"], linked);
    await bundleFromApp(here("./fixtures/workers-lease.ts"), app.dir, app.dir);
    workers = await startInEveryTimerConfiguration(app.dir);
  }, 60_000);
  afterAll(async () => {
    await Promise.all(Object.values(workers ?? {}).map((worker) => worker.close()));
    app?.remove();
  });

  it.each(TIMER_CONFIGURATION_NAMES)(
    "%s: after an earlier request ended, a retry during a handler that outlasts its lease gets 409, its lease renewed",
    async (mode) => {
      const { url } = (workers as Record<TimerConfiguration, RunningWorker>)[mode];
      const process = "nodejsCompat" in TIMER_CONFIGURATIONS[mode] ? "object" : "undefined";
      const post = (key: string, ms: number) =>
        fetch(`${url}/work?ms=${ms}`, {
          method: "POST",
          headers: { "content-type": "application/json", "idempotency-key": key },
          body: "{}",
        });

      // A request that has ended: a timer it set ended with it.
      expect((await post("lease-first", 0)).status).toBe(201);
      const slow = post("lease-slow", 2_500);
      await sleep(1_500); // past the 1 s lease: only its renewals hold it now
      const retry = await post("lease-slow", 2_500);
      expect(retry.status).toBe(409);
      expect(await retry.json()).toMatchObject({ code: "request_in_flight" });
      const done = await slow;
      expect([done.status, await done.json()]).toEqual([201, { run: 2 }]);
      const state = (await (await fetch(`${url}/state`)).json()) as { runs: number; extended: number; process: string };
      expect(state).toMatchObject({ runs: 2, process });
      expect(state.extended).toBeGreaterThan(0);
    },
  );
});
