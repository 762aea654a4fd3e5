/**
 * The wrappers and core on Cloudflare Workers, for real: a worker with withWebhook and
 * withIdempotency (test/fixtures/workers-app.ts) bundled from the packed, built packages as
 * Wrangler bundles a worker, served by workerd without `nodejs_compat`, through the test
 * harness's rows. A missing workerd fails the run; it is never skipped. Then the same worker's
 * read routes (test/app.ts's `readRoutes`) through read-routes.ts's rows, in a worker of their own.
 * Then a delivery's lease renewal (test/fixtures/workers-lease.ts), with `nodejs_compat` off and on,
 * and on without the global `navigator`.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { signWebhook, standardWebhooks } from "@interlock/core";
import { createPackedApp, type PackedApp } from "@interlock/test-harness/packed-app";
import { SUITE_SECRET } from "@interlock/test-harness/secret";
import {
  bundleFromApp,
  type RunningWorker,
  startInEveryTimerConfiguration,
  startWorkerd,
  TIMER_CONFIGURATION_NAMES,
  TIMER_CONFIGURATIONS,
  type TimerConfiguration,
} from "@interlock/test-harness/workerd";
import { describeWorkerApp } from "@interlock/test-harness/workers-app";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeReadRoutes } from "./read-routes.js";

const entry = fileURLToPath(new URL("./fixtures/workers-app.ts", import.meta.url));

describeWorkerApp("web", { entry, packages: ["core", "web"] });

// The worker's own store and secret: Standard Webhooks with SUITE_SECRET, as the rows sign.
describeReadRoutes("web on Cloudflare Workers (workerd, no nodejs_compat)", async () => {
  const app = createPackedApp(["core", "web"]);
  try {
    await bundleFromApp(entry, app.dir, app.dir);
    const worker = await startWorkerd(app.dir);
    return {
      url: worker.url,
      async close() {
        await worker.close();
        app.remove();
      },
    };
  } catch (error) {
    app.remove();
    throw error;
  }
});

// A timer on Workers fires only while the request that set it runs: a delivery's lease must be
// renewed by a timer of its own request's, not by one an earlier delivery set and took with it.
describe("web on Cloudflare Workers (workerd): a delivery's lease renewal", () => {
  let app: PackedApp;
  let workers: Record<TimerConfiguration, RunningWorker> | undefined;

  beforeAll(async () => {
    app = createPackedApp(["core", "web"]);
    await bundleFromApp(fileURLToPath(new URL("./fixtures/workers-lease.ts", import.meta.url)), app.dir, app.dir);
    workers = await startInEveryTimerConfiguration(app.dir);
  }, 60_000);
  afterAll(async () => {
    await Promise.all(Object.values(workers ?? {}).map((worker) => worker.close()));
    app?.remove();
  });

  it.each(TIMER_CONFIGURATION_NAMES)(
    "%s: after an earlier delivery ended, a redelivery during a handler that outlasts its lease gets 409, its lease renewed",
    async (mode) => {
      const { url } = (workers as Record<TimerConfiguration, RunningWorker>)[mode];
      const process = "nodejsCompat" in TIMER_CONFIGURATIONS[mode] ? "object" : "undefined";
      const deliver = async (id: string, ms: number) => {
        const body = JSON.stringify({ ms });
        const { headers } = await signWebhook({ scheme: standardWebhooks, secret: SUITE_SECRET, body, id });
        return fetch(`${url}/webhooks`, {
          method: "POST",
          headers: { ...headers, "content-type": "application/json" },
          body,
        });
      };

      // A delivery that has ended: a timer it set ended with it.
      expect((await deliver("msg_lease_first", 0)).status).toBe(200);
      const slow = deliver("msg_lease_slow", 2_500);
      await sleep(1_500); // past the 1 s lease: only its renewals hold it now
      const redelivery = await deliver("msg_lease_slow", 2_500);
      expect(redelivery.status).toBe(409);
      expect(await redelivery.json()).toMatchObject({ code: "request_in_flight" });
      const done = await slow;
      expect([done.status, await done.json()]).toEqual([200, { id: "msg_lease_slow", run: 2 }]);
      const state = (await (await fetch(`${url}/state`)).json()) as { runs: number; extended: number; process: string };
      expect(state).toMatchObject({ runs: 2, process });
      expect(state.extended).toBeGreaterThan(0);
    },
  );
});
