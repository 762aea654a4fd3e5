/**
 * Worker scripts for the multi-process tests: a TypeScript fixture bundled, with core's source,
 * into one ES module Node runs as a child process.
 */

import { mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { build, type Options } from "tsup";

/**
 * ES modules from `entry` (an output name to its source) in `outDir`, with what every bundle the
 * harness makes shares (no config file, no declarations, no maps, nothing cleaned); `options`
 * says the rest (platform, target, what stays external, resolution).
 */
export async function buildModules(
  entry: Record<string, string>,
  outDir: string,
  extension: ".js" | ".mjs",
  options: Options,
): Promise<void> {
  await build({
    entry,
    outDir,
    format: ["esm"],
    outExtension: () => ({ js: extension }),
    target: "es2022",
    config: false,
    silent: true,
    dts: false,
    sourcemap: false,
    clean: false,
    ...options,
  });
}

/** Core's source, bundled in place of its built package (whose dist a test run may not have yet). */
const CORE_SOURCE: Record<string, string> = {
  "@interlock/core": fileURLToPath(new URL("../../core/src/index.ts", import.meta.url)),
  "#crypto": fileURLToPath(new URL("../../core/src/crypto/node.ts", import.meta.url)),
};

/**
 * Bundles `entry` into `outDir/worker.mjs` and returns that path. `external` packages are left
 * as imports: they resolve from `outDir` when the worker runs, so put `outDir` inside the
 * package that depends on them.
 */
export async function bundleWorker(entry: string, outDir: string, external: string[]): Promise<string> {
  await mkdir(outDir, { recursive: true });
  await buildModules({ worker: entry }, outDir, ".mjs", {
    platform: "node",
    target: "node20",
    external,
    noExternal: [/^@interlock\//, /^#crypto$/],
    esbuildPlugins: [
      {
        name: "core-source",
        setup(b) {
          b.onResolve({ filter: /^(@interlock\/core|#crypto)$/ }, (args) => ({
            path: CORE_SOURCE[args.path] as string,
          }));
        },
      },
    ],
  });
  return `${outDir}/worker.mjs`;
}
