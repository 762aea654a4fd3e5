/**
 * Every TypeScript block in the guides and the READMEs (the repository's, the published
 * packages' and the examples') compiles against the packages' source and the real
 * frameworks and drivers: an option renamed, a function that does not exist or a wrong type
 * in a guide fails here. Each block is a module of its own, as a reader would paste it.
 */

import { dirname, join } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { docsDir, fileNameOf, guideFiles, read, repoRoot, shown, typeScriptBlocks } from "./markdown.js";
import { entrySource, publishedPackages, readmes } from "./packages.js";

interface Snippet {
  /** Where the block is, for messages: `docs/webhooks/stripe.md:42`. */
  source: string;
  /** The virtual file it is compiled as, in `docs/` so `docs/node_modules` resolves its imports. */
  file: string;
  code: string;
}

function snippets(): Snippet[] {
  return [...guideFiles(), ...readmes()].flatMap((page) => {
    const folder = join(docsDir, ".snippets", shown(page).replaceAll("/", "_"));
    return typeScriptBlocks(read(page)).map((block, index) => ({
      source: `${shown(page)}:${block.line}`,
      // A block that names its file (`// table-store.ts`) is compiled under that name, so the
      // page's other blocks can import it.
      file: join(folder, fileNameOf(block) ?? `block-${index}.ts`),
      // A block without import or export is still compiled as a module of its own.
      code: /^\s*(import|export)\s/m.test(block.code) ? block.code : `${block.code}\nexport {};\n`,
    }));
  });
}

/** The repository's compiler options, with every `@interlock/*` import mapped to its source, and Nest's decorators. */
function compilerOptions(): ts.CompilerOptions {
  const configPath = join(repoRoot, "tsconfig.base.json");
  const config = ts.readConfigFile(configPath, ts.sys.readFile).config;
  const { options } = ts.parseJsonConfigFileContent(config, ts.sys, dirname(configPath));
  const paths: Record<string, string[]> = { "#crypto": [join(repoRoot, "packages/core/src/crypto/node.ts")] };
  for (const pkg of publishedPackages()) {
    for (const entry of pkg.entries) {
      const sub = entry === "." ? "" : entry.slice(1);
      paths[`${pkg.name}${sub}`] = [entrySource(pkg, entry)];
    }
  }
  // Nest's decorators (the NestJS guide) are TypeScript's legacy ones, with the metadata Nest reads.
  return {
    ...options,
    noEmit: true,
    declaration: false,
    types: ["node"],
    paths,
    experimentalDecorators: true,
    emitDecoratorMetadata: true,
  };
}

/**
 * A compiler host that serves the snippets from memory, and every other file (the packages'
 * sources, the frameworks' types) parsed once for all the programs that read it.
 */
function snippetHost(options: ts.CompilerOptions, byFile: Map<string, Snippet>): ts.CompilerHost {
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile, directoryExists } = host;
  const parsed = new Map<string, ts.SourceFile | undefined>();
  const folders = new Set([...byFile.values()].map((snippet) => dirname(snippet.file)));
  host.directoryExists = (dir) => folders.has(dir) || directoryExists?.call(host, dir) === true;
  host.fileExists = (file) => byFile.has(file) || fileExists.call(host, file);
  host.readFile = (file) => byFile.get(file)?.code ?? readFile.call(host, file);
  host.getSourceFile = (file, language, ...rest) => {
    const snippet = byFile.get(file);
    if (snippet) return ts.createSourceFile(file, snippet.code, language, true);
    if (!parsed.has(file)) parsed.set(file, getSourceFile.call(host, file, language, ...rest));
    return parsed.get(file);
  };
  return host;
}

/** The page's own lines in a diagnostic: `docs/webhooks/stripe.md:48:7: Cannot find name 'fulfil'.` */
function describeDiagnostic(diagnostic: ts.Diagnostic, byFile: Map<string, Snippet>): string {
  const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n");
  const snippet = diagnostic.file && byFile.get(diagnostic.file.fileName);
  if (!snippet || !diagnostic.file || diagnostic.start === undefined) {
    return `${diagnostic.file ? shown(diagnostic.file.fileName) : "(program)"}: ${message}`;
  }
  const { line, character } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
  const [page, fence] = snippet.source.split(":");
  return `${page}:${Number(fence) + line + 1}:${character + 1}: ${message}`;
}

/** The snippets grouped by the page they come from (each page's blocks share a folder). */
function byPage(list: Snippet[]): Snippet[][] {
  const pages = new Map<string, Snippet[]>();
  for (const snippet of list) pages.set(dirname(snippet.file), [...(pages.get(dirname(snippet.file)) ?? []), snippet]);
  return [...pages.values()];
}

/**
 * Each page is compiled as a project of its own, as a reader pastes it: a page's blocks see
 * each other (by file name), but not another page's global augmentations (`@koa/bodyparser`
 * declares `http.IncomingMessage.rawBody` a string, which an Express page never sees).
 * Only the blocks themselves are checked; the packages' sources have their own typecheck.
 */
function diagnose(list: Snippet[]): string[] {
  const options = compilerOptions();
  const byFile = new Map(list.map((snippet) => [snippet.file, snippet]));
  const host = snippetHost(options, byFile);
  return byPage(list).flatMap((blocks) => {
    const program = ts.createProgram(
      blocks.map((snippet) => snippet.file),
      options,
      host,
    );
    const diagnostics = [
      ...program.getOptionsDiagnostics(),
      ...program.getGlobalDiagnostics(),
      ...blocks.flatMap((snippet) => {
        const file = program.getSourceFile(snippet.file);
        return file ? [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)] : [];
      }),
    ];
    return diagnostics.map((diagnostic) => describeDiagnostic(diagnostic, byFile));
  });
}

describe("TypeScript in the guides and the READMEs", () => {
  const list = snippets();

  it("the guides and the READMEs have TypeScript blocks to check", () => {
    expect(list.length).toBeGreaterThan(20);
    expect(list.filter((snippet) => snippet.source.startsWith("packages/")).length).toBeGreaterThan(20);
  });

  it("every block compiles against the packages and the real frameworks", () => {
    expect(diagnose(list)).toEqual([]);
  });
});
