import { defineConfig, type Options } from "tsup";

/**
 * The build every published package shares: ESM + CJS + declarations from `src/index.ts`, with
 * core and the package's peers left external. A package passes only what differs.
 */
export function packageBuild(options: { platform: "node" | "neutral"; external: string[] } & Partial<Options>) {
  return defineConfig({
    entry: { index: "src/index.ts" },
    format: ["esm", "cjs"],
    dts: true,
    clean: true,
    sourcemap: true,
    target: "es2022",
    ...options,
    external: ["@interlock/core", ...options.external],
  });
}
