import { defineConfig } from "tsup";
import { packageBuild } from "../../tsup.base";

export default [
  // The library: ESM + CJS + types. Its clean keeps the executable, built alongside.
  packageBuild({ platform: "node", external: [], clean: ["!cli.js", "!cli.js.map"] }),
  // The executable: ESM, shebang kept (tsup marks it executable), importing the library
  // entry next to it at run time rather than bundling a second copy.
  defineConfig({
    entry: { cli: "src/cli.ts" },
    format: ["esm"],
    platform: "node",
    target: "es2022",
    sourcemap: true,
    clean: false,
    external: ["@interlock/core", "./index.js"],
  }),
];
