import { packageBuild } from "../../tsup.base";

const entry = { index: "src/index.ts", redis: "src/redis.ts", postgres: "src/postgres.ts" };

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
  }),
];
