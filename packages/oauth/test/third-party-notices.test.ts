/**
 * The CommonJS build carries a copy of oauth4webapi (tsup.config.ts), whose MIT License asks that
 * its copyright and permission notice go with every copy: the package ships them, for the version
 * it pins, in a file its `files` list publishes.
 */

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";

const read = (path: string) => readFileSync(new URL(path, new URL("../", import.meta.url)), "utf8");
const manifest = JSON.parse(read("package.json"));
const oauth4webapi = dirname(createRequire(import.meta.url).resolve("oauth4webapi/package.json"));

describe("THIRD_PARTY_NOTICES.md", () => {
  it("holds oauth4webapi's license whole, for the version the package pins", () => {
    const notices = read("THIRD_PARTY_NOTICES.md");
    expect(notices).toContain(readFileSync(join(oauth4webapi, "LICENSE.md"), "utf8"));
    const pinned = manifest.dependencies.oauth4webapi;
    expect(pinned).toBe(JSON.parse(readFileSync(join(oauth4webapi, "package.json"), "utf8")).version);
    expect(notices).toContain(`oauth4webapi](https://github.com/panva/oauth4webapi) ${pinned}`);
  });

  it("is published", () => {
    expect(manifest.files).toContain("THIRD_PARTY_NOTICES.md");
  });
});
