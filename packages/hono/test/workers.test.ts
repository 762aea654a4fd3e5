/**
 * The adapter and core on Cloudflare Workers, for real: a Hono app (test/fixtures/workers-app.ts)
 * bundled from the packed, built packages as Wrangler bundles a worker, served by workerd
 * without `nodejs_compat`, through the test harness's rows. A missing workerd fails the run; it
 * is never skipped.
 */
import { fileURLToPath } from "node:url";
import { describeWorkerApp } from "@interlock/test-harness/workers-app";

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

describeWorkerApp("hono", {
  entry: here("./fixtures/workers-app.ts"),
  packages: ["core", "hono"],
  linked: { hono: here("../node_modules/hono") },
});
