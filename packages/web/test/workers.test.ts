/**
 * The wrappers and core on Cloudflare Workers, for real: a worker with withWebhook and
 * withIdempotency (test/fixtures/workers-app.ts) bundled from the packed, built packages as
 * Wrangler bundles a worker, served by workerd without `nodejs_compat`, through the test
 * harness's rows. A missing workerd fails the run; it is never skipped. Then the same worker's
 * read routes (test/app.ts's `readRoutes`) through read-routes.ts's rows, in a worker of their own.
 */
import { fileURLToPath } from "node:url";
import { createPackedApp } from "@interlock/test-harness/packed-app";
import { bundleFromApp, startWorkerd } from "@interlock/test-harness/workerd";
import { describeWorkerApp } from "@interlock/test-harness/workers-app";
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
