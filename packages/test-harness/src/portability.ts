/**
 * For packages that promise Node, Bun, Deno and Workers: their source may use web standards
 * only (one check, registered with vitest by every such package's tests), and the other
 * runtimes their tests drive.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

/** The repository's `node_modules/.bin`, where the other runtimes are installed as dev dependencies. */
const REPOSITORY_BIN = fileURLToPath(new URL("../../../node_modules/.bin/", import.meta.url));

/**
 * The absolute path of a runtime the repository installs (`bun`, `deno`). A missing one fails
 * the run with how to install it: tests never skip because it is missing.
 */
export function installedRuntime(name: string): string {
  const path = join(REPOSITORY_BIN, name);
  if (!existsSync(path)) {
    throw new Error(
      `${name} is missing from node_modules/.bin: run \`npx -y pnpm@12.4.2 install\` at the repository root`,
    );
  }
  return path;
}

/** What a web-standards-only source must not contain, with the words a failure says. */
export const NODE_ONLY: ReadonlyArray<readonly [string, RegExp]> = [
  ["a node: import", /\bfrom\s*["']node:|\bimport\(\s*["']node:|\brequire\(/],
  ["a bare Node built-in import", /\bfrom\s*["'](?:buffer|crypto|fs|http|https|net|os|path|stream|url|util|zlib)["']/],
  ["Buffer", /\bBuffer\b/],
  ["process", /\bprocess\./],
  ["setImmediate", /\bsetImmediate\b/],
];

/** Registers one test per `.ts` file under `srcDir`: no Node-only module or global in it. */
export function describeWebStandardsOnly(srcDir: string): void {
  const sources = readdirSync(srcDir, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts"));
  describe("web standards only", () => {
    it("has sources to check", () => {
      expect(sources).toContain("index.ts");
    });

    it.each(sources)("src/%s uses no Node-only module or global", (file) => {
      const code = readFileSync(join(srcDir, file), "utf8");
      for (const [what, pattern] of NODE_ONLY) expect(code, `${file} has ${what}`).not.toMatch(pattern);
    });
  });
}
