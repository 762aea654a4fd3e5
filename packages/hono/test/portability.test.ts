/**
 * The adapter promises Node, Bun, Deno and Workers, so its source may use web standards only:
 * no `node:` modules, no Node globals. (test/bun.test.ts runs it on Bun.)
 */
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const srcDir = fileURLToPath(new URL("../src/", import.meta.url));
const sources = readdirSync(srcDir, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts"));

const FORBIDDEN: Array<[string, RegExp]> = [
  ["a node: import", /\bfrom\s*["']node:|\bimport\(\s*["']node:|\brequire\(/],
  ["a bare Node built-in import", /\bfrom\s*["'](?:buffer|crypto|fs|http|https|net|os|path|stream|url|util|zlib)["']/],
  ["Buffer", /\bBuffer\b/],
  ["process", /\bprocess\./],
  ["setImmediate", /\bsetImmediate\b/],
];

describe("web standards only", () => {
  it("has sources to check", () => {
    expect(sources).toContain("index.ts");
  });

  it.each(sources)("src/%s uses no Node-only module or global", (file) => {
    const code = readFileSync(`${srcDir}${file}`, "utf8");
    for (const [what, pattern] of FORBIDDEN) expect(code, `${file} has ${what}`).not.toMatch(pattern);
  });
});
