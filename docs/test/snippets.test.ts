/**
 * Every TypeScript block in the guides compiles against the packages' source and the real
 * frameworks and drivers: an option renamed, a function that does not exist or a wrong type
 * in a guide fails here. Each block is a module of its own, as a reader would paste it.
 */

import { dirname, join } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { docsDir, fileNameOf, guideFiles, read, repoRoot, shown, typeScriptBlocks } from "./markdown.js";
import { entrySource, publishedPackages } from "./packages.js";

interface Snippet {
  /** Where the block is, for messages: `docs/webhooks/stripe.md:42`. */
  source: string;
  /** The virtual file it is compiled as, in `docs/` so `docs/node_modules` resolves its imports. */
  file: string;
  code: string;
}

function snippets(): Snippet[] {
  return guideFiles().flatMap((page) => {
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

function diagnose(list: Snippet[]): string[] {
  const options = compilerOptions();
  const byFile = new Map(list.map((snippet) => [snippet.file, snippet]));
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile, directoryExists } = host;
  const folders = new Set(list.map((snippet) => dirname(snippet.file)));
  host.directoryExists = (dir) => folders.has(dir) || directoryExists?.call(host, dir) === true;
  host.fileExists = (file) => byFile.has(file) || fileExists.call(host, file);
  host.readFile = (file) => byFile.get(file)?.code ?? readFile.call(host, file);
  host.getSourceFile = (file, language, ...rest) => {
    const snippet = byFile.get(file);
    if (snippet) return ts.createSourceFile(file, snippet.code, language, true);
    return getSourceFile.call(host, file, language, ...rest);
  };
  const program = ts.createProgram([...byFile.keys()], options, host);
  return ts.getPreEmitDiagnostics(program).map((diagnostic) => {
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n");
    const snippet = diagnostic.file && byFile.get(diagnostic.file.fileName);
    if (!snippet || !diagnostic.file || diagnostic.start === undefined) {
      return `${diagnostic.file ? shown(diagnostic.file.fileName) : "(program)"}: ${message}`;
    }
    const { line, character } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
    const [page, fence] = snippet.source.split(":");
    return `${page}:${Number(fence) + line + 1}:${character + 1}: ${message}`;
  });
}

describe("TypeScript in the guides", () => {
  const list = snippets();

  it("the guides have TypeScript blocks to check", () => {
    expect(list.length).toBeGreaterThan(20);
  });

  it("every block compiles against the packages and the real frameworks", () => {
    expect(diagnose(list)).toEqual([]);
  });
});
