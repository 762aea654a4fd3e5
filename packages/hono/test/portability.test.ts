/**
 * The adapter promises Node, Bun, Deno and Workers, so its source may use web standards only:
 * no `node:` modules, no Node globals. (test/bun.test.ts runs it on Bun.)
 */
import { fileURLToPath } from "node:url";
import { describeWebStandardsOnly } from "@interlock/test-harness/portability";

describeWebStandardsOnly(fileURLToPath(new URL("../src/", import.meta.url)));
