/**
 * The documentation site, built as `pnpm run docs` builds it (TypeDoc with typedoc.json, as a
 * spawned process) into a temporary folder, with its JSON model alongside. Checked: TypeDoc
 * reports nothing, every published package and export is in it and documented, every guide
 * is a page, and every link in every page (and in the navigation TypeDoc renders from a script)
 * leads to a file and anchor that exist.
 */

import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { promisify } from "node:util";
import { inflateSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { guideFiles, isExternal, read, repoRoot, shown } from "./markdown.js";
import { entrySource, exampleReadmes, publishedPackages } from "./packages.js";

/** The parts of TypeDoc's JSON model these tests read. */
interface Reflection {
  id: number;
  name: string;
  kind: number;
  variant?: string;
  comment?: unknown;
  readme?: unknown;
  signatures?: Reflection[];
  getSignature?: Reflection;
  children?: Reflection[];
  documents?: Reflection[];
  inheritedFrom?: { target: number };
}

const Kind = { Module: 2, Reference: 4194304, Constructor: 512 } as const;

const run = promisify(execFile);
const out = mkdtempSync(join(tmpdir(), "interlock-site-"));
const site = join(out, "site");
let build: { exitCode: number; output: string };
let project: Reflection;

beforeAll(async () => {
  const typedoc = join(repoRoot, "node_modules/typedoc/bin/typedoc");
  // typedoc.json turns warnings into errors, which stops TypeDoc before it writes anything;
  // here they stay warnings, so every test below checks the site for its own reason, and the
  // first test fails on any warning exactly as `pnpm run docs` would.
  const lenient = ["--treatWarningsAsErrors", "false", "--treatValidationWarningsAsErrors", "false"];
  const args = [typedoc, ...lenient, "--out", site, "--json", join(out, "api.json")];
  const env = { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0" };
  build = await run(process.execPath, args, { cwd: repoRoot, env }).then(
    ({ stdout, stderr }) => ({ exitCode: 0, output: stdout + stderr }),
    (error: { code?: number; stdout?: string; stderr?: string }) => ({
      exitCode: error.code ?? 1,
      output: (error.stdout ?? "") + (error.stderr ?? ""),
    }),
  );
  const model = join(out, "api.json");
  if (existsSync(model)) project = JSON.parse(readFileSync(model, "utf8"));
});

afterAll(() => rmSync(out, { recursive: true, force: true }));

const config = JSON.parse(read(join(repoRoot, "typedoc.json")));
const packages = publishedPackages();

/** `@interlock/core` for `.`, `@interlock/core/testing` for `./testing`. */
const moduleName = (name: string, entry: string) => (entry === "." ? name : `${name}${entry.slice(1)}`);
const modules = () => (project.children ?? []).filter((child) => child.kind === Kind.Module);

describe("building the site", () => {
  it("TypeDoc reports no warning and no error", () => {
    const problems = build.output.split("\n").filter((line) => /\[(warning|error)\]/.test(line));
    expect(problems).toEqual([]);
    expect(build.exitCode).toBe(0);
    expect(existsSync(join(site, "index.html"))).toBe(true);
  });

  it("the configuration covers every published package and fails on anything undocumented", () => {
    const entryPoints = packages.flatMap((pkg) =>
      pkg.entries.map((entry) => relative(repoRoot, entrySource(pkg, entry))),
    );
    expect([...config.entryPoints].sort()).toEqual(entryPoints.sort());
    expect([...config.packagesRequiringDocumentation].sort()).toEqual(packages.map((pkg) => pkg.name).sort());
    expect(config.validation).toMatchObject({ notDocumented: true, invalidLink: true });
    expect(config.treatWarningsAsErrors).toBe(true);
  });
});

describe("the API reference", () => {
  it("has a module for every export of every published package, with its README on the main one", () => {
    const expected = packages.flatMap((pkg) => pkg.entries.map((entry) => moduleName(pkg.name, entry)));
    expect(
      modules()
        .map((module) => module.name)
        .sort(),
    ).toEqual(expected.sort());
    for (const pkg of packages) {
      const main = modules().find((module) => module.name === pkg.name);
      expect(main?.readme, `${pkg.name}'s README`).toBeDefined();
    }
  });

  it("every export, and every member of an exported class or interface, has a doc comment", () => {
    const documented = (reflection: Reflection) =>
      reflection.comment !== undefined ||
      (reflection.signatures ?? []).some((signature) => signature.comment !== undefined) ||
      reflection.getSignature?.comment !== undefined;
    const missing: string[] = [];
    for (const module of modules()) {
      expect(module.comment ?? module.readme, `${module.name}'s summary`).toBeDefined();
      for (const exported of module.children ?? []) {
        // A re-export of another module's declaration is documented where it is declared.
        if (exported.kind === Kind.Reference) continue;
        if (!documented(exported)) missing.push(`${module.name}: ${exported.name}`);
        for (const member of exported.children ?? []) {
          // Members inherited from the platform (Error's `message`, `stack`) carry its docs, not ours.
          if (member.kind === Kind.Constructor || member.inheritedFrom) continue;
          if (!documented(member)) missing.push(`${module.name}: ${exported.name}.${member.name}`);
        }
      }
    }
    expect(missing).toEqual([]);
  });
});

describe("the guides in the site", () => {
  /** Every document in the site, at any depth, by name. */
  function documentNames(reflection: Reflection = project): string[] {
    const documents = [...(reflection.documents ?? []), ...(reflection.children ?? [])].filter(
      (child) => child.variant === "document",
    );
    return documents.flatMap((document) => [document.name, ...documentNames(document)]);
  }

  const titleOf = (path: string) => /^# (.+)$/m.exec(read(path))?.[1];

  it("every guide and example README is a page, titled by its heading or its front matter", () => {
    const names = new Set(documentNames());
    const index = join(repoRoot, "docs/README.md");
    const missing = guideFiles()
      .filter((path) => path !== index)
      .filter((path) => !names.has(titleOf(path) ?? ""))
      .map(shown);
    expect(missing).toEqual([]);
    // The examples are named in the front matter of docs/examples.md.
    expect(exampleReadmes().length).toBeGreaterThan(0);
    expect(names.size).toBe(guideFiles().length - 1 + exampleReadmes().length);
  });

  it("the front page is docs/README.md", () => {
    expect(readFileSync(join(site, "index.html"), "utf8")).toContain("Interlock documentation");
  });
});

describe("links in the built site", () => {
  /** Every HTML file in the site. */
  function pages(dir = site): string[] {
    return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) return pages(path);
      return entry.name.endsWith(".html") ? [path] : [];
    });
  }

  const ids = new Map<string, Set<string>>();
  function idsOf(file: string): Set<string> {
    let found = ids.get(file);
    if (!found) {
      found = new Set([...readFileSync(file, "utf8").matchAll(/\b(?:id|name)="([^"]+)"/g)].map((m) => m[1] as string));
      ids.set(file, found);
    }
    return found;
  }

  /** Why `target`, linked from `from`, does not resolve; undefined when it does. */
  function brokenLink(from: string, target: string): string | undefined {
    const [path = "", anchor] = decodeURI(target.replace(/&amp;/g, "&")).split("#");
    const file = path === "" ? from : resolve(dirname(from), path.split("?")[0] as string);
    if (!file.startsWith(site)) return "leaves the site";
    if (!existsSync(file)) return "no such file";
    if (anchor && !idsOf(file).has(anchor)) return `no #${anchor} there`;
    return undefined;
  }

  it("every href and src in every page resolves, anchors included", () => {
    const list = pages();
    expect(list.length).toBeGreaterThan(50);
    const broken: string[] = [];
    for (const page of list) {
      for (const match of readFileSync(page, "utf8").matchAll(/\b(?:href|src)="([^"]*)"/g)) {
        const target = match[1] as string;
        if (target === "" || isExternal(target)) continue;
        const why = brokenLink(page, target);
        if (why) broken.push(`${relative(site, page)} → ${target}: ${why}`);
      }
    }
    expect(broken).toEqual([]);
  });

  it("every entry of the navigation (rendered by a script) resolves", () => {
    const script = readFileSync(join(site, "assets/navigation.js"), "utf8");
    const data = /window\.navigationData = "([^"]+)"/.exec(script)?.[1];
    expect(data).toBeDefined();
    interface NavigationNode {
      path?: string;
      children?: NavigationNode[];
    }
    const nodes = JSON.parse(inflateSync(Buffer.from(data as string, "base64")).toString("utf8")) as NavigationNode[];
    const paths: string[] = [];
    const walk = (list: NavigationNode[]) => {
      for (const node of list) {
        if (node.path) paths.push(node.path);
        walk(node.children ?? []);
      }
    };
    walk(nodes);
    expect(paths.length).toBeGreaterThan(20);
    const index = join(site, "index.html");
    const broken = paths.flatMap((path) => {
      const why = brokenLink(index, path);
      return why ? [`${path}: ${why}`] : [];
    });
    expect(broken).toEqual([]);
  });
});
