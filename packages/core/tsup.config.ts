import { defineConfig, type Options } from "tsup";

// The crypto port is its own entry and stays external: `#crypto` is resolved by the
// consumer's runtime through the `imports` map in package.json (Node's `crypto` under the
// "node" condition, Web Crypto under "workerd" / "worker" / "browser" / "deno" / "bun").
const shared = {
  dts: true,
  sourcemap: true,
  target: "es2022",
  platform: "neutral",
  external: ["#crypto", "node:crypto", "vitest"],
  treeshake: true,
} satisfies Options;

const runtime = { index: "src/index.ts", "crypto/node": "src/crypto/node.ts", "crypto/web": "src/crypto/web.ts" };

// `./testing` is ESM only: it imports vitest, which throws when required, so a CJS build of it
// could never load. It is built with the ESM runtime entries, sharing their chunks: the suites
// and the user's `@interlock/core` import are one copy of core, so `instanceof` holds. Each
// build cleans only its own files: the two run side by side into one directory.
export default defineConfig([
  {
    ...shared,
    entry: { ...runtime, testing: "src/testing/index.ts" },
    format: ["esm"],
    clean: ["**/*.js", "**/*.js.map", "**/*.d.ts"],
  },
  { ...shared, entry: runtime, format: ["cjs"], clean: ["**/*.cjs", "**/*.cjs.map", "**/*.d.cts"] },
]);
