/**
 * The packages' types as a user's TypeScript sees them: a small file per package using its
 * README's API, and the README examples readme.test.ts runs, themselves; compiled in the packed
 * project with `strict` and `skipLibCheck: false` (so every shipped .d.ts is checked too), once under
 * `"moduleResolution": "node16"` (Node ESM) and once under `"bundler"`. A type that resolves
 * only inside the monorepo, a declaration importing an undeclared package, or a README example
 * that no longer compiles fails here.
 */

import { execFile } from "node:child_process";
import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { appExample, coreVerifyExample, FRAMEWORKS, webExample } from "./readme.js";

const run = promisify(execFile);
const app = inject("packedApp");
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
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

beforeAll(() => {
  const src = join(app, "types");
  mkdirSync(src, { recursive: true });
  for (const file of readdirSync(fixtures)) copyFileSync(join(fixtures, file), join(src, file));
  for (const framework of FRAMEWORKS) writeFileSync(join(src, `${framework}-readme.ts`), appExample(framework));
  writeFileSync(join(src, "core-readme.ts"), `${coreVerifyExample()}\n`);
  writeFileSync(join(src, "web-readme.ts"), webExample());
  for (const [mode, resolution] of Object.entries(MODES)) {
    const compilerOptions = {
      ...resolution,
      target: "es2022",
      lib: ["es2023"],
      types: ["node"],
      strict: true,
      skipLibCheck: false,
      noEmit: true,
      esModuleInterop: true,
    };
    writeFileSync(join(app, `tsconfig.${mode}.json`), JSON.stringify({ compilerOptions, include: ["types"] }));
  }
});

describe.concurrent("tsc --noEmit in the packed project", () => {
  for (const mode of Object.keys(MODES)) {
    it(`compiles every package's README usage with "moduleResolution": "${mode}"`, async () => {
      const result = await run(process.execPath, [tsc, "-p", `tsconfig.${mode}.json`, "--pretty", "false"], {
        cwd: app,
      }).catch((error: { stdout: string; stderr: string }) => error);
      const errors = `${result.stdout}${result.stderr}`
        .split("\n")
        .filter((line) => line.trim() !== "" && !THIRD_PARTY.some((known) => known.test(line)));
      expect(errors).toEqual([]);
    });
  }
});
