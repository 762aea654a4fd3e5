/**
 * A TypeDoc plugin for this repository's site. It lets one TypeScript program
 * (`entryPointStrategy: "resolve"`, a few seconds) give the site what the "packages" strategy
 * gives with one program per package (many times slower):
 *
 * - a module from `packages/<dir>/src/index.ts` is named after its package (`@interlock/core`),
 *   one from `src/<sub>.ts` or `src/<sub>/index.ts` after the export it is built into
 *   (`@interlock/core/testing`, `@interlock/oauth/redis`);
 * - a package's main module shows its README.md, and relative links to that README (from the
 *   guides or another README) lead to the module's page;
 * - a module without a doc comment of its own is summed up by its package's description.
 *
 * And it names each guide after its first `# heading` (unless front matter names it), so the
 * Markdown needs no front matter to read well on GitHub.
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Comment, Converter, MinimalSourceFile, ReflectionKind } from "typedoc";

/** @param {import("typedoc").Application} app */
export function load(app) {
  app.converter.on(Converter.EVENT_CREATE_DOCUMENT, (_context, document) => {
    const heading = firstHeading(document.content);
    if (heading !== undefined && namedAfterItsFile(document)) document.name = heading;
  });

  app.converter.on(Converter.EVENT_RESOLVE_BEGIN, (context) => {
    const { project } = context;
    for (const module of project.getReflectionsByKind(ReflectionKind.Module)) {
      const id = project.getSymbolIdFromReflection(module);
      const entry = id === undefined ? null : /^src\/(.+?)(\/index)?\.ts$/.exec(id.packagePath);
      if (id?.fileName === undefined || !entry) continue;
      const packageDir = id.fileName.slice(0, -id.packagePath.length);
      const manifest = JSON.parse(readFileSync(join(packageDir, "package.json"), "utf8"));
      const subpath = entry[1] === "index" ? "." : entry[1];
      module.name = subpath === "." ? manifest.name : `${manifest.name}/${subpath}`;
      if (!module.hasComment() && manifest.description) {
        module.comment = new Comment([{ kind: "text", text: manifest.description }]);
      }
      if (subpath === ".") showReadme(app, project, module, join(packageDir, "README.md"));
    }
  });
}

/**
 * Whether TypeDoc named the document after its file (`idempotency`, `webhooks/README`), not
 * after a name the front matter gave it (`children: { Express: … }`).
 */
function namedAfterItsFile(document) {
  const path = document.project.files.getReflectionPath(document);
  return path === undefined || path.replace(/\.md$/, "").endsWith(document.name);
}

/** The text of a Markdown document's first level-1 heading, if it opens with one. */
function firstHeading(content) {
  const first = content[0];
  const match = first?.kind === "text" ? /^\s*# ([^\n]+)/.exec(first.text) : null;
  return match?.[1]?.trim();
}

function showReadme(app, project, module, path) {
  let text;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return; // a package without a README keeps its summary only
  }
  module.readme = app.converter.parseRawComment(new MinimalSourceFile(text, path), project.files).content;
  project.files.registerReflectionPath(path, module);
}
