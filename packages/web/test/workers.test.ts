/**
 * The wrappers and core on Cloudflare Workers, for real: a worker with withWebhook and
 * withIdempotency (test/fixtures/workers-app.ts) bundled from the packed, built packages as
 * Wrangler bundles a worker, served by workerd without `nodejs_compat`, through the test
 * harness's rows. A missing workerd fails the run; it is never skipped.
 */
import { fileURLToPath } from "node:url";
import { describeWorkerApp } from "@interlock/test-harness/workers-app";

describeWorkerApp("web", {
  entry: fileURLToPath(new URL("./fixtures/workers-app.ts", import.meta.url)),
  packages: ["core", "web"],
});
