/**
 * The wrappers promise Node, Bun, Deno and Workers (README: "web standards only"), so their
 * source may use web standards only: no `node:` modules, no Node globals. (test/bun.test.ts,
 * test/deno.test.ts and test/workers.test.ts run the built package there.)
 */
import { fileURLToPath } from "node:url";
import { describeWebStandardsOnly } from "@interlock/test-harness/portability";

describeWebStandardsOnly(fileURLToPath(new URL("../src/", import.meta.url)));
