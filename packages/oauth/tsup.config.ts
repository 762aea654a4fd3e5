import { readdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Options } from "tsup";
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

type EsbuildPlugin = NonNullable<Options["esbuildPlugins"]>[number];

/**
 * oauth4webapi's copyright notice on the copy the CJS build carries: its MIT License asks that the
 * notice go with every copy, and its build file has no comment that says it. Added as a legal
 * comment (`/*!`), which esbuild keeps (at the end of the file), as do the bundlers and minifiers
 * an app may put after it; the whole license is in THIRD_PARTY_NOTICES.md, in the package. A
 * license without a copyright line fails the build rather than ship a copy without it.
 */
const oauth4webapiNotice: EsbuildPlugin = {
  name: "oauth4webapi-notice",
  setup(build) {
    build.onLoad({ filter: /[\\/]oauth4webapi[\\/]build[\\/]index\.js$/ }, async ({ path }) => {
      const root = join(dirname(path), "..");
      const { version } = JSON.parse(await readFile(join(root, "package.json"), "utf8"));
      const copyright = /^Copyright .+$/m.exec(await readFile(join(root, "LICENSE.md"), "utf8"))?.[0];
      if (copyright === undefined) throw new Error("oauth4webapi's LICENSE.md has no copyright line");
      const notice = `/*! oauth4webapi v${version} | ${copyright} | MIT License, see THIRD_PARTY_NOTICES.md */`;
      return { contents: `${notice}\n${await readFile(path, "utf8")}`, loader: "js" };
    });
  },
};

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
    esbuildPlugins: [oauth4webapiNotice],
    clean: ["**/*.cjs", "**/*.cjs.map", "**/*.d.cts"],
    onSuccess: relabelBundledSources,
  }),
];
