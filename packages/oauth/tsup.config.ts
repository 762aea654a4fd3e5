import { readdir, readFile, writeFile } from "node:fs/promises";
import { packageBuild } from "../../tsup.base";

const entry = { index: "src/index.ts", redis: "src/redis.ts", postgres: "src/postgres.ts" };

/**
 * The CJS maps name oauth4webapi's sources by where the build found them, the monorepo's
 * `../../../node_modules/.pnpm/…`: a path out of the published package that only means something
 * on the machine that built it. Named instead where the dependency sits in an installed tree
 * (`../node_modules/oauth4webapi/…`); the maps carry the sources' text either way.
 */
async function relabelBundledSources(): Promise<void> {
  const dist = new URL("./dist/", import.meta.url);
  for (const file of (await readdir(dist)).filter((name) => name.endsWith(".cjs.map"))) {
    const map = JSON.parse(await readFile(new URL(file, dist), "utf8"));
    map.sources = map.sources.map((source: string) =>
      source.replace(/^(\.\.\/)+node_modules\/\.pnpm\/[^/]+\/node_modules\//, "../node_modules/"),
    );
    await writeFile(new URL(file, dist), JSON.stringify(map));
  }
}

// oauth4webapi is ESM only. The ESM build imports it (one copy, updated with the dependency);
// the CJS build carries it inside, so `require` works on every Node 20 (require(esm) needs 20.19).
// Each build cleans only its own files: the two run side by side into one directory.
export default [
  packageBuild({
    platform: "neutral",
    entry,
    format: ["esm"],
    external: ["oauth4webapi", "ioredis", "pg"],
    clean: ["**/*.js", "**/*.js.map", "**/*.d.ts"],
  }),
  packageBuild({
    platform: "neutral",
    entry,
    format: ["cjs"],
    external: ["ioredis", "pg"],
    noExternal: ["oauth4webapi"],
    clean: ["**/*.cjs", "**/*.cjs.map", "**/*.d.cts"],
    onSuccess: relabelBundledSources,
  }),
];
