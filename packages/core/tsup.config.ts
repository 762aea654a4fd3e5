import { defineConfig } from "tsup";

// The crypto port is its own entry and stays external: `#crypto` is resolved by the
// consumer's runtime through the `imports` map in package.json (Node's `crypto` under the
// "node" condition, Web Crypto under "workerd" / "worker" / "browser" / "deno" / "bun").
export default defineConfig({
  entry: {
    index: "src/index.ts",
    testing: "src/testing/index.ts",
    "crypto/node": "src/crypto/node.ts",
    "crypto/web": "src/crypto/web.ts",
  },
  format: ["esm", "cjs"],
  dts: true,
  clean: true,
  sourcemap: true,
  target: "es2022",
  platform: "neutral",
  external: ["#crypto", "node:crypto", "vitest"],
  treeshake: true,
});
