/**
 * Every relative link in the guides (and in the READMEs the site shows) leads to a
 * file that exists, and every `#anchor` to a heading of that file as GitHub names it. The
 * built site's links are checked in site.test.ts.
 */

import { existsSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { anchorsOf, guideFiles, isExternal, linksOf, read, repoRoot, shown } from "./markdown.js";
import { exampleReadmes, packageReadmes } from "./packages.js";

/** The guides, and every README the site shows: the packages' and the examples'. */
const pages = [...guideFiles(), ...packageReadmes(), ...exampleReadmes()];

describe("relative links in the Markdown", () => {
  it.each(pages.map((page) => [shown(page), page]))("%s", (_name, page) => {
    const broken: string[] = [];
    for (const { target, line } of linksOf(read(page))) {
      if (isExternal(target)) continue;
      const [path = "", anchor] = target.split("#");
      const file = path === "" ? page : resolve(dirname(page), decodeURI(path));
      const where = `${shown(page)}:${line} → ${target}`;
      if (!existsSync(file)) broken.push(`${where}: no such file`);
      else if (!statSync(file).isFile()) broken.push(`${where}: a directory (the site can only link files)`);
      else if (!file.startsWith(repoRoot)) broken.push(`${where}: outside the repository`);
      else if (anchor !== undefined && file.endsWith(".md") && !anchorsOf(read(file)).has(anchor)) {
        broken.push(`${where}: no heading makes #${anchor}`);
      }
    }
    expect(broken).toEqual([]);
  });
});
