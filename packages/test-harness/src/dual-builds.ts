/**
 * Both builds of a package loaded in one process, as in an ESM app whose CommonJS dependency
 * requires the package (or the reverse): two copies of every module, each over core's build of
 * its own format. What the packages' `dual-copy` tests share. They run against `dist/`: a build
 * older than its source would test the code before the change, so it is refused, not passed.
 */
import { readdirSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { beforeAll, expect } from "vitest";

type Core = typeof import("@interlock/core");

/** One of a package's two builds. */
export type Build = "ESM" | "CJS";

/** Each build asked of the other's: what the dual-copy tests run over, `[made, asked]`. */
export const EACH_WAY: ReadonlyArray<[made: Build, asked: Build]> = [
  ["ESM", "CJS"],
  ["CJS", "ESM"],
];

/** Each build of the package, and the core each one extends. */
export interface BothBuilds<P> {
  ESM: P;
  CJS: P;
  /** The ESM copy's core: the one the test imports (`esmCore`); the CommonJS copy's: core's CommonJS build. */
  cores: { ESM: Core; CJS: Core };
}

/**
 * Loads `packages/<name>`'s ESM and CommonJS builds (its exports map's "import" and "require"
 * entries), after checking that they, and core's, are newer than their sources. `esmCore` is
 * the core the test file imports: the one the ESM build's `import "@interlock/core"` gets too.
 */
export async function loadBothBuilds<P>(name: string, esmCore: Core): Promise<BothBuilds<P>> {
  const packageDir = new URL(`../../${name}/`, import.meta.url);
  assertBuiltAfterSource(name);
  if (name !== "core") assertBuiltAfterSource("core");
  const require = createRequire(new URL("package.json", packageDir));
  // Imported by its file URL: the ESM build as it is, not the source the test project aliases the package to.
  const esm = (await import(new URL("dist/index.js", packageDir).href)) as P;
  const cjs = require("./dist/index.cjs") as P;
  const cjsCore = require("@interlock/core") as Core;
  if (cjsCore.InterlockError === esmCore.InterlockError) throw new Error("both builds were given the same core");
  return { ESM: esm, CJS: cjs, cores: { ESM: esmCore, CJS: cjsCore } };
}

/**
 * `loadBothBuilds` in a `beforeAll` of the calling test file, its builds filled into the object
 * returned here (read them in the tests; `cores` may be taken at once). `distinct` picks an
 * export each build must have a copy of its own of: the proof two builds were loaded.
 */
export function bothBuildsBeforeAll<P>(name: string, esmCore: Core, distinct: (build: P) => unknown): BothBuilds<P> {
  const builds = { cores: {} } as BothBuilds<P>;
  beforeAll(async () => {
    const loaded = await loadBothBuilds<P>(name, esmCore);
    Object.assign(builds.cores, loaded.cores);
    builds.ESM = loaded.ESM;
    builds.CJS = loaded.CJS;
    expect(distinct(builds.CJS)).not.toBe(distinct(builds.ESM));
  });
  return builds;
}

/** Throws, saying how to build it, when `packages/<name>/dist` is older than any file under its `src/`. */
function assertBuiltAfterSource(name: string): void {
  const dir = new URL(`../../${name}/`, import.meta.url);
  const mtime = (path: string) => statSync(new URL(path, dir)).mtimeMs;
  const sources = readdirSync(new URL("src/", dir), { recursive: true, encoding: "utf8" });
  const newestSource = Math.max(...sources.map((file) => mtime(`src/${file}`)));
  if (Math.min(mtime("dist/index.js"), mtime("dist/index.cjs")) < newestSource) {
    throw new Error(
      `${fileURLToPath(new URL("dist", dir))} is older than its src: run \`pnpm --filter @interlock/${name} run build\` first`,
    );
  }
}
