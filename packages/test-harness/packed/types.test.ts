/**
 * The packages' types as a user's TypeScript sees them: a small file per package using its
 * README's API, and the README examples readme.test.ts runs, themselves; compiled in the packed
 * project with `strict` and `skipLibCheck: false` (so every shipped .d.ts is checked too), once under
 * `"moduleResolution": "node16"` (Node ESM) and once under `"bundler"`. A type that resolves
 * only inside the monorepo, a declaration importing an undeclared package, or a README example
 * that no longer compiles fails here.
 *
 * Each mode with one of the two compilers users have: node16 with TypeScript 5.9 (the
 * JavaScript compiler, which also writes the declarations), bundler with TypeScript 7 (the
 * native one, about ten times faster here). Both compilers, and both resolutions, check every
 * shipped .d.ts and README example.
 *
 * And two programs of their own, each from a folder of files beside this test (`PROGRAMS`): a
 * project with both ESM and CommonJS files, and one whose resolution reads no `exports` map.
 */

import { execFile } from "node:child_process";
import { copyFileSync, cpSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { appExample, coreVerifyExample, FRAMEWORKS, webExample } from "./readme.js";
import { packedApp } from "./ready.js";

const run = promisify(execFile);
const app = await packedApp();
const resolve = createRequire(import.meta.url).resolve;
const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));

/**
 * Errors in third-party declarations, not ours: with Express 5 and Koa in one project, npm
 * hoists Express's content-disposition 2 (which has its own types) over the
 * @types/content-disposition that @types/koa means by "content-disposition"; and
 * @hono/node-server's types import hono/ws, whose types use the DOM's WebSocket events, which a
 * Node project's `lib` (no "DOM") does not have.
 */
const THIRD_PARTY = [
  /^node_modules\/@types\/koa\/index\.d\.ts\(\d+,\d+\): error TS2694: Namespace '"[^"]*\/node_modules\/content-disposition\/dist\/index"' has no exported member 'Options'\.$/,
  /^node_modules\/hono\/dist\/types\/helper\/websocket\/index\.d\.ts\(\d+,\d+\): error (TS2304: Cannot find name '(CloseEvent|BinaryType)'|TS2315: Type 'MessageEvent' is not generic)\.$/,
];

const MODES = {
  node16: { module: "node16", moduleResolution: "node16" },
  bundler: { module: "esnext", moduleResolution: "bundler" },
} as const;

const TYPESCRIPT_5 = { name: "TypeScript 5.9", tsc: resolve("typescript/bin/tsc") };

/** The compiler each mode is checked with (see above). */
const COMPILERS: Record<keyof typeof MODES, { name: string; tsc: string }> = {
  node16: TYPESCRIPT_5,
  // Its package exports no bin path: the bin is found beside its package.json.
  bundler: { name: "TypeScript 7", tsc: join(dirname(resolve("typescript-native/package.json")), "bin/tsc") },
};

/**
 * The programs of their own, by the folder beside this test that holds their files, compiled
 * with TypeScript 5.9. `mixed`: `.mts` and `.cts` files in one project, whose program sees both
 * builds' declarations of core and of an adapter (each with its augmentation of the framework's
 * request). `node10`: a CommonJS project as `tsc --init` with `"module": "commonjs"` leaves it,
 * its resolution node10, which reads no `exports` map: a subpath's types come from
 * `typesVersions`. (TypeScript 7 has no node10: it resolves such a project as a bundler does.)
 */
const PROGRAMS = {
  mixed: MODES.node16,
  node10: { module: "commonjs" },
} as const;

const COMPILER_OPTIONS = {
  target: "es2022",
  lib: ["es2023"],
  types: ["node"],
  strict: true,
  skipLibCheck: false,
  noEmit: true,
  esModuleInterop: true,
};

beforeAll(() => {
  const src = join(app, "types");
  mkdirSync(src, { recursive: true });
  for (const file of readdirSync(fixtures)) copyFileSync(join(fixtures, file), join(src, file));
  for (const framework of FRAMEWORKS) writeFileSync(join(src, `${framework}-readme.ts`), appExample(framework));
  writeFileSync(join(src, "core-readme.ts"), `${coreVerifyExample()}\n`);
  writeFileSync(join(src, "web-readme.ts"), webExample());
  for (const [mode, resolution] of Object.entries(MODES)) {
    const compilerOptions = { ...resolution, ...COMPILER_OPTIONS };
    writeFileSync(join(app, `tsconfig.${mode}.json`), JSON.stringify({ compilerOptions, include: ["types"] }));
  }
  for (const [program, resolution] of Object.entries(PROGRAMS)) {
    cpSync(fileURLToPath(new URL(`./${program}/`, import.meta.url)), join(app, program), { recursive: true });
    const compilerOptions = { ...resolution, ...COMPILER_OPTIONS };
    writeFileSync(join(app, `tsconfig.${program}.json`), JSON.stringify({ compilerOptions, include: [program] }));
  }
});

/** `tsc -p tsconfig.<config>.json` in the packed project: its errors, but for third parties' (`THIRD_PARTY`). */
async function compileErrors(tsc: string, config: string): Promise<string[]> {
  const result = await run(process.execPath, [tsc, "-p", `tsconfig.${config}.json`, "--pretty", "false"], {
    cwd: app,
  }).catch((error: { stdout: string; stderr: string }) => error);
  return `${result.stdout}${result.stderr}`
    .split("\n")
    .filter((line) => line.trim() !== "" && !THIRD_PARTY.some((known) => known.test(line)));
}

describe.concurrent("tsc --noEmit in the packed project", () => {
  for (const mode of Object.keys(MODES) as (keyof typeof MODES)[]) {
    const { name, tsc } = COMPILERS[mode];
    it(`compiles every package's README usage with "moduleResolution": "${mode}" (${name})`, async () => {
      expect(await compileErrors(tsc, mode)).toEqual([]);
    });
  }

  it(`compiles a project of .mts and .cts files, whose program sees both builds' declarations (${TYPESCRIPT_5.name})`, async () => {
    expect(await compileErrors(TYPESCRIPT_5.tsc, "mixed")).toEqual([]);
  });

  it(`compiles a CommonJS project's imports of subpaths under "moduleResolution": "node10" (${TYPESCRIPT_5.name})`, async () => {
    expect(await compileErrors(TYPESCRIPT_5.tsc, "node10")).toEqual([]);
  });
});
