/**
 * What the docs tests read from Markdown: the guides, their fenced code blocks, their
 * relative links and the anchors their headings make. A small reader rather than a Markdown
 * library: the guides use plain CommonMark, and each rule here is one the tests rely on.
 */

import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
export const docsDir = join(repoRoot, "docs");

/** Every Markdown file under `docs/` (not `docs/api`, the generated site, nor `node_modules`). */
export function guideFiles(dir = docsDir): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== "node_modules" && path !== join(docsDir, "api")) files.push(...guideFiles(path));
    } else if (entry.name.endsWith(".md")) {
      files.push(path);
    }
  }
  return files.sort();
}

/** A path relative to the repository, for messages. */
export const shown = (path: string) => relative(repoRoot, path);

export interface CodeBlock {
  /** The info string's first word: `ts`, `sh`, … (empty when none). */
  lang: string;
  code: string;
  /** 1-based line of the opening fence. */
  line: number;
}

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)/;

/** The fenced code blocks of a Markdown text, in order. */
export function codeBlocks(text: string): CodeBlock[] {
  const blocks: CodeBlock[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i] as string);
    if (!open) continue;
    const fence = open[1] as string;
    const body: string[] = [];
    let j = i + 1;
    while (j < lines.length && !(lines[j] as string).trimStart().startsWith(fence)) body.push(lines[j++] as string);
    blocks.push({ lang: open[2] ?? "", code: body.join("\n"), line: i + 1 });
    i = j;
  }
  return blocks;
}

/** The TypeScript blocks of a Markdown text. */
export function typeScriptBlocks(text: string): CodeBlock[] {
  return codeBlocks(text).filter((block) => block.lang === "ts" || block.lang === "typescript");
}

/** The file a block says it is, by a first line such as `// table-store.ts`. */
export function fileNameOf(block: CodeBlock): string | undefined {
  return /^\/\/ ([\w.-]+\.ts)\s*$/m.exec(block.code.split("\n", 1)[0] ?? "")?.[1];
}

/**
 * The text with fenced code blocks and inline code spans blanked out (lines kept, so line
 * numbers stay right): links and headings inside code are not links and headings.
 */
export function proseOf(text: string, { keepInlineCode = false } = {}): string {
  const lines = text.split("\n");
  let fence: string | undefined;
  return lines
    .map((line) => {
      const open = FENCE.exec(line);
      if (fence === undefined && open) {
        fence = open[1];
        return "";
      }
      if (fence !== undefined) {
        if (line.trimStart().startsWith(fence)) fence = undefined;
        return "";
      }
      return keepInlineCode ? line : line.replace(/(`+).*?\1/g, (span) => " ".repeat(span.length));
    })
    .join("\n");
}

export interface Link {
  target: string;
  line: number;
}

/** Every link and image destination in the prose: `[t](dest)`, `[t]: dest`, `<a href>`, `<img src>`. */
export function linksOf(text: string): Link[] {
  const links: Link[] = [];
  proseOf(text)
    .split("\n")
    .forEach((line, index) => {
      const patterns = [/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g, /^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/g];
      patterns.push(/<(?:a|img|source)\s[^>]*?(?:href|src)="([^"]+)"/g);
      for (const pattern of patterns) {
        for (const match of line.matchAll(pattern)) links.push({ target: match[1] as string, line: index + 1 });
      }
    });
  return links;
}

/** Whether a link leaves the site: a URL with a scheme, or protocol-relative. */
export const isExternal = (target: string) => /^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith("//");

/** A heading's text as it reads: code spans, links and emphasis reduced to their text. */
function headingText(raw: string): string {
  return raw
    .replace(/`([^`]*)`/g, "$1")
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
    .replace(/[*_]{1,3}([^*_]+)[*_]{1,3}/g, "$1")
    .trim();
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
export function githubSlug(heading: string): string {
  return headingText(heading)
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc}\- ]/gu, "")
    .replace(/ /g, "-");
}

/** The anchors a Markdown file's headings make on GitHub (a repeated heading gets `-1`, `-2`, …). */
export function anchorsOf(text: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of proseOf(text, { keepInlineCode: true }).split("\n")) {
    const heading = /^ {0,3}#{1,6}\s+(.+?)\s*#*\s*$/.exec(line);
    if (!heading) continue;
    const slug = githubSlug(heading[1] as string);
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    anchors.add(count === 0 ? slug : `${slug}-${count}`);
  }
  return anchors;
}

export const read = (path: string) => readFileSync(path, "utf8");

export interface Table {
  /** The header row's cells, as written (code spans kept). */
  header: string[];
  /** The body rows, each with its cells and the 1-based line it is on. */
  rows: { cells: string[]; line: number }[];
}

/** A table row's cells: split on the pipes that are not escaped (`\|`), outer pipes dropped. */
function cellsOf(line: string): string[] {
  const cells = line
    .trim()
    .replace(/^\|/, "")
    .replace(/(?<!\\)\|$/, "")
    .split(/(?<!\\)\|/);
  return cells.map((cell) => cell.trim().replace(/\\\|/g, "|"));
}

/** The GFM tables of a section of Markdown: a header row, a `|---|` delimiter row, then rows until a line without a pipe. */
export function tablesOf(text: string): Table[] {
  const lines = proseOf(text, { keepInlineCode: true }).split("\n");
  const tables: Table[] = [];
  for (let i = 0; i + 1 < lines.length; i++) {
    const header = lines[i] as string;
    if (!header.trimStart().startsWith("|") || !/^\s*\|?\s*:?-{3,}/.test(lines[i + 1] as string)) continue;
    const table: Table = { header: cellsOf(header), rows: [] };
    let j = i + 2;
    for (; j < lines.length && (lines[j] as string).trimStart().startsWith("|"); j++) {
      table.rows.push({ cells: cellsOf(lines[j] as string), line: j + 1 });
    }
    tables.push(table);
    i = j;
  }
  return tables;
}

/** The text under a heading (`## Errors`), up to the next heading of the same or a higher level; blank lines keep line numbers. */
export function sectionOf(text: string, heading: string): string {
  const level = /^#+/.exec(heading)?.[0].length ?? 0;
  const lines = text.split("\n");
  const prose = proseOf(text, { keepInlineCode: true }).split("\n"); // a `# comment` in a code block is no heading
  const start = prose.findIndex((line) => line.trim() === heading);
  if (start === -1) throw new Error(`no heading "${heading}"`);
  const ends = new RegExp(`^#{1,${level}}\\s`);
  const after = prose.findIndex((line, index) => index > start && ends.test(line));
  const end = after === -1 ? lines.length : after;
  return lines.map((line, index) => (index > start && index < end ? line : "")).join("\n");
}
