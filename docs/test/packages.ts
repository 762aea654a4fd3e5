/** The published `@interlock/*` packages as their manifests describe them, and the examples. */

import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { read, repoRoot } from "./markdown.js";

export interface PublishedPackage {
  name: string;
  dir: string;
  /** Subpaths of the `exports` map that are modules (`.`, `./testing`), not `./package.json`. */
  entries: string[];
}

/**
 * The source file an export is built from: `src/index.ts` for `.`; for `./x`, `src/x.ts`, or
 * `src/x/index.ts` (the two layouts the packages' tsup entries use).
 */
export function entrySource(pkg: PublishedPackage, entry: string): string {
  if (entry === ".") return join(pkg.dir, "src/index.ts");
  const file = join(pkg.dir, "src", `${entry.slice(2)}.ts`);
  return existsSync(file) ? file : join(pkg.dir, "src", entry.slice(2), "index.ts");
}

export function publishedPackages(): PublishedPackage[] {
  const root = join(repoRoot, "packages");
  return readdirSync(root)
    .map((name) => join(root, name))
    .filter((dir) => existsSync(join(dir, "package.json")))
    .map((dir) => ({ dir, manifest: JSON.parse(read(join(dir, "package.json"))) }))
    .filter(({ manifest }) => manifest.private !== true)
    .map(({ dir, manifest }) => ({
      name: manifest.name as string,
      dir,
      entries: Object.keys(manifest.exports ?? { ".": null }).filter((subpath) => !subpath.endsWith(".json")),
    }));
}

/** The published packages' READMEs: what npm shows on each package's page. */
export function packageReadmes(): string[] {
  return publishedPackages().map((pkg) => join(pkg.dir, "README.md"));
}

/** Every README users copy from: the repository's, the published packages' and the examples'. */
export function readmes(): string[] {
  return [join(repoRoot, "README.md"), ...packageReadmes(), ...exampleReadmes()];
}

/** The reference integrations' READMEs, which the site shows as pages. */
export function exampleReadmes(): string[] {
  const root = join(repoRoot, "examples");
  return readdirSync(root)
    .map((name) => join(root, name, "README.md"))
    .filter((path) => existsSync(path));
}
