import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";
import { cryptoRuntime } from "../src/index.js";

it("runs on the crypto port this project asked for", () => {
  expect(cryptoRuntime).toBe(process.env.INTERLOCK_EXPECTED_CRYPTO);
});

const withoutComments = (code: string) => code.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");

// Core must run on Bun, Deno and Workers: no Node built-ins and no Buffer outside the Node port.
it("core source touches Node only in the Node crypto port", () => {
  const src = new URL("../src/", import.meta.url).pathname;
  const files = (dir: string): string[] =>
    readdirSync(dir).flatMap((name) => {
      const path = join(dir, name);
      return statSync(path).isDirectory() ? files(path) : [path];
    });
  const offenders = files(src)
    .filter((path) => !path.endsWith(join("crypto", "node.ts")))
    .filter((path) => /from "node:|require\(|\bBuffer\b|\bprocess\./.test(withoutComments(readFileSync(path, "utf8"))));
  expect(offenders).toEqual([]);
});
