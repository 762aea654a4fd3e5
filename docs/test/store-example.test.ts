/**
 * The store that docs/stores.md teaches, run through the suites that page tells its readers
 * to run: the blocks that name their files (`// table-store.ts`, `// memory-table.ts`,
 * `// table-store.test.ts`) are written out as those files and the test file is imported
 * here, so its `describe*` calls register with this run. A store in the guide that breaks
 * the contract fails here.
 */

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { docsDir, fileNameOf, read, typeScriptBlocks } from "./markdown.js";

const page = join(docsDir, "stores.md");
const files = new Map(
  typeScriptBlocks(read(page)).flatMap((block) => {
    const name = fileNameOf(block);
    return name === undefined ? [] : [[name, block.code] as const];
  }),
);

it("the guide's example store is complete: the store, its test table and its test", () => {
  expect([...files.keys()].sort()).toEqual(["memory-table.ts", "table-store.test.ts", "table-store.ts"]);
});

const folder = mkdtempSync(join(tmpdir(), "interlock-docs-store-"));
afterAll(() => rmSync(folder, { recursive: true, force: true }));
for (const [name, code] of files) writeFileSync(join(folder, name), code);
await import(join(folder, "table-store.test.ts"));
