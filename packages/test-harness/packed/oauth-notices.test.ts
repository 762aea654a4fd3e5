/**
 * `@interlock/oauth`'s CommonJS build carries a copy of oauth4webapi, whose MIT License asks that
 * its copyright and permission notice go with every copy: the tarball holds the license whole
 * (THIRD_PARTY_NOTICES.md), and the bundled copy names it in a legal comment (`/*!`), which
 * bundlers and minifiers after it keep.
 */

import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, inject, it } from "vitest";
import { packedApp } from "./ready.js";

const run = promisify(execFile);
const app = await packedApp();
const installed = join(app, "node_modules/@interlock/oauth");
/** oauth4webapi as npm installed it for the packed `@interlock/oauth`. */
const oauth4webapi = dirname(createRequire(join(installed, "package.json")).resolve("oauth4webapi/package.json"));
const { version } = JSON.parse(readFileSync(join(oauth4webapi, "package.json"), "utf8"));

describe("@interlock/oauth ships oauth4webapi's notice with the copy its CommonJS build carries", () => {
  it("packs THIRD_PARTY_NOTICES.md, holding oauth4webapi's license whole", async () => {
    const { stdout } = await run("tar", ["-tzf", inject("tarballs")["@interlock/oauth"] as string]);
    expect(stdout.split("\n")).toContain("package/THIRD_PARTY_NOTICES.md");
    const notices = readFileSync(join(installed, "THIRD_PARTY_NOTICES.md"), "utf8");
    expect(notices).toContain(readFileSync(join(oauth4webapi, "LICENSE.md"), "utf8"));
  });

  it("names the copy's version, copyright and license in a legal comment of the CommonJS build", () => {
    const build = readFileSync(join(installed, "dist/index.cjs"), "utf8");
    expect(build).toContain(`oauth4webapi v${version} | Copyright (c) 2022 Filip Skokan | MIT License`);
  });
});
