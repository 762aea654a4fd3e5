/**
 * The one list of test projects. Vitest 4 no longer reads this file by itself: the root
 * vitest.config.ts imports it into `test.projects`.
 *
 * Core's suite runs twice, once per crypto port, by pointing `#crypto` at each
 * implementation: Node's `crypto` (what Node resolves) and Web Crypto (what Bun, Deno and
 * Workers resolve). The packaging and examples projects run the built packages, as users get them.
 */
import { fileURLToPath } from "node:url";
import type { TestProjectConfiguration } from "vitest/config";

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

const coreWith = (port: "node" | "web"): TestProjectConfiguration => ({
  resolve: { alias: { "#crypto": here(`./packages/core/src/crypto/${port}.ts`) } },
  test: {
    name: `core (${port} crypto)`,
    root: here("./packages/core"),
    include: ["test/**/*.test.ts"],
    exclude: ["test/packaging.test.ts"],
    env: { INTERLOCK_EXPECTED_CRYPTO: port },
  },
});

export default [
  coreWith("node"),
  coreWith("web"),
  {
    test: {
      name: "examples",
      root: here("./examples"),
      include: ["*/**/*.test.ts"],
    },
  },
  {
    test: {
      name: "packaging",
      root: here("./packages/core"),
      include: ["test/packaging.test.ts"],
    },
  },
] satisfies TestProjectConfiguration[];
