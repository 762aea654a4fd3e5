/**
 * The package's entry is its semver promise: it holds what the README's "As a library" section
 * documents, and nothing else (the commands' helpers are imported from their modules by tests).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import * as entry from "../src/index.js";

const read = (path: string) => readFileSync(new URL(path, import.meta.url), "utf8");

/** Every name `src/index.ts` exports, types included. */
function exportedNames(): string[] {
  const lists = [...read("../src/index.ts").matchAll(/export (?:type )?\{([^}]*)\}/g)].map((match) => match[1] ?? "");
  return lists.flatMap((list) =>
    list
      .split(",")
      .map((name) => name.replace(/^\s*type\s+/, "").trim())
      .filter((name) => name !== ""),
  );
}

describe("the @interlock/cli entry", () => {
  it("exports the commands' functions and CliError, and no helper", () => {
    expect(Object.keys(entry).sort()).toEqual([
      "CliError",
      "listen",
      "makeSecret",
      "run",
      "send",
      "signDelivery",
      "verifyDelivery",
    ]);
  });

  it("every export, types included, is named in the README's As a library section", () => {
    const readme = read("../README.md");
    const section = readme.slice(readme.indexOf("## As a library"), readme.indexOf("## Decisions"));
    const names = exportedNames();
    expect(names).toContain("RetryPolicy");
    expect(names.filter((name) => !section.includes(`\`${name}`))).toEqual([]);
  });
});
