/**
 * The version pnpm-lock.yaml resolved for one dependency of one importer, so the packed
 * project installs the peers the repository tests against. The lockfile's importer entries
 * have one fixed shape (`importer: section: name: version:`), read line by line rather than
 * with a YAML parser the repository does not depend on.
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "./packages.js";

const DEPENDENCY_SECTIONS = new Set(["dependencies", "devDependencies", "optionalDependencies"]);

const unquote = (text: string) => text.replace(/^'(.*)'$/, "$1");

export function lockedVersion(importer: string, name: string): string {
  const lines = readFileSync(join(repoRoot, "pnpm-lock.yaml"), "utf8").split("\n");
  let topLevel = "";
  let currentImporter = "";
  let section = "";
  let dependency = "";
  for (const line of lines) {
    const indent = line.length - line.trimStart().length;
    const key = unquote(line.trim().replace(/:.*$/, ""));
    if (line.trim() === "" || line === "---") continue;
    if (indent === 0) topLevel = key;
    else if (topLevel !== "importers") continue;
    else if (indent === 2) currentImporter = key;
    else if (indent === 4) section = key;
    else if (indent === 6) dependency = key;
    else if (
      indent === 8 &&
      key === "version" &&
      currentImporter === importer &&
      DEPENDENCY_SECTIONS.has(section) &&
      dependency === name
    ) {
      // "5.3.0(supports-color@7.2.0)": the peer suffix is pnpm's, not part of the version.
      return unquote(line.trim().slice("version:".length).trim()).replace(/\(.*$/, "");
    }
  }
  throw new Error(`packed: pnpm-lock.yaml has no ${name} for the importer ${importer}`);
}
