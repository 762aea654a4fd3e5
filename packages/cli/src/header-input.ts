/**
 * A captured delivery's headers, as `verify` reads them: `-H "Name: value"` options and a headers
 * file (`--headers @file`, or curl's `-H @file`). The file is what `interlock sign` prints (its
 * `name: value` lines, or its `--json` object), any JSON object of headers, or a raw HTTP request
 * head. Tolerant of how a head is written down (a request line, CRLF, HTTP/2 pseudo-headers,
 * folded lines, a body after it), exact about what a receiver would see: a head's bytes read as
 * Latin-1, names case-insensitive, values without the spaces around them, a repeated header
 * joined with ", " as Node and fetch join it.
 */

import { HTTP_TOKEN, trimOws } from "@interlock/core";
import { usageError, valueStart } from "./errors.js";
import { headerStart, splitHeaderOption } from "./inputs.js";

/** Headers in order: lower-case name and value, a name repeated when it was. */
export type HeaderList = Array<[string, string]>;

// `POST /path HTTP/1.1`: the first line of a request head, ignored.
const REQUEST_LINE = /^[A-Za-z]+ \S+ HTTP\/\d(?:\.\d)?$/;

/**
 * One `-H "Name: value"` option; `-H @file` is read by the caller as a headers file. Several
 * lines in one (`-H "$(interlock sign …)"`) are refused: a value cannot hold a line break, and
 * the rest would be read as part of the first header's value.
 */
export function parseHeaderOption(text: string): [string, string] {
  const [given, value] = splitHeaderOption(text);
  const name = given.toLowerCase();
  if (/[\r\n]/.test(text.trim())) {
    throw usageError(
      `--header ${name} holds a line break: give one header per -H, or several lines as --headers @file (or --headers - from stdin)`,
    );
  }
  return [name, value];
}

function headerLine(line: string, refusal: () => string): [string, string] {
  const colon = line.indexOf(":");
  const name = colon > 0 ? line.slice(0, colon).trim() : "";
  // Shown up to its first space or colon: the rest may be a credential (`Authorization Bearer …`).
  if (!HTTP_TOKEN.test(name)) throw usageError(refusal());
  return [name.toLowerCase(), trimOws(line.slice(colon + 1))];
}

/**
 * A headers file's bytes, named `source` in errors: a JSON object when it starts with `{` (UTF-8
 * text, as JSON is), else `Name: value` lines: a request head's bytes, each read as one Latin-1
 * character, as Node's HTTP parser and fetch's `Headers` read them (a value's UTF-8 `é` is the
 * two characters `Ã©` to the app's verifier, so to this one too). A curl command (`interlock sign
 * --curl`) is refused with what to give instead.
 */
export function parseHeadersFile(bytes: Uint8Array, source: string): HeaderList {
  const content = hasUtf8Bom(bytes) ? bytes.subarray(3) : bytes;
  const text = Buffer.from(content.buffer, content.byteOffset, content.byteLength).toString("latin1");
  const start = text.trimStart();
  if (start.startsWith("{")) return jsonHeaders(utf8Text(content), source);
  if (/^curl\s/.test(start)) {
    throw usageError(
      `${source} is a curl command: give the headers as interlock sign prints them without --curl (or with --json)`,
    );
  }
  return headLines(text, source);
}

const hasUtf8Bom = (bytes: Uint8Array): boolean => bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf;

/** UTF-8 text; undefined for bytes that are not (no JSON then). */
function utf8Text(bytes: Uint8Array): string | undefined {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

/**
 * `Name: value` lines: leading blank lines and a request line first are skipped, as are HTTP/2
 * pseudo-headers (`:method: POST`, as browsers' tools show a request); a line starting with a
 * space or a tab continues the header before it (obsolete line folding, joined with one space,
 * as RFC 9112 §5.2 has a receiver do); a blank line ends the head (a body after it is ignored).
 */
function headLines(text: string, source: string): HeaderList {
  const lines = text.split(/\r?\n/);
  const headers: HeaderList = [];
  let index = 0;
  while (index < lines.length && (lines[index] as string).trim() === "") index++;
  if (index < lines.length && REQUEST_LINE.test(lines[index] as string)) index++;
  for (; index < lines.length; index++) {
    const line = lines[index] as string;
    if (line.trim() === "") break;
    const number = index + 1;
    if (/^[ \t]/.test(line)) {
      const last = headers.at(-1);
      if (last === undefined) throw usageError(`${source} line ${number} continues no header: it starts with a space`);
      last[1] = trimOws(`${last[1]} ${trimOws(line)}`);
      continue;
    }
    if (line.startsWith(":")) continue;
    headers.push(headerLine(line, () => `${source} line ${number} is not "Name: value": "${headerStart(line)}"`));
  }
  return headers;
}

/**
 * A JSON object of headers (a value a string or a list of strings), or an object holding one as
 * its `headers`: `interlock sign --json`'s line, and what request bins export.
 */
function jsonHeaders(text: string | undefined, source: string): HeaderList {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text ?? "");
  } catch {
    throw usageError(`${source} starts with "{" but is not JSON: give headers as JSON or as "Name: value" lines`);
  }
  const holder = isObject(parsed) && isObject(parsed.headers) ? parsed.headers : parsed;
  if (!isObject(holder)) throw usageError(`${source} is not a JSON object of headers`);
  const headers: HeaderList = [];
  for (const [name, value] of Object.entries(holder)) {
    if (!HTTP_TOKEN.test(name)) throw usageError(`${source} has a header name that is not one: "${valueStart(name)}"`);
    const values = Array.isArray(value) ? value : [value];
    if (!values.every((v) => typeof v === "string" || typeof v === "number")) {
      throw usageError(`${source}: the header ${name} is not a string or a list of strings`);
    }
    for (const v of values) headers.push([name.toLowerCase(), trimOws(String(v))]);
  }
  return headers;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/**
 * The headers a receiver would see: those of the file, each of them replaced by `-H` options of
 * its name (to try a fix), and a name given several times joined with ", " as Node's
 * `IncomingMessage.headers` and fetch's `Headers` join it.
 */
export function headerRecord(fromFile: HeaderList, fromOptions: HeaderList): Record<string, string> {
  const replaced = new Set(fromOptions.map(([name]) => name));
  // No prototype: a header named `__proto__` is a header like any other.
  const record: Record<string, string> = Object.create(null);
  for (const [name, value] of [...fromFile.filter(([name]) => !replaced.has(name)), ...fromOptions]) {
    record[name] = Object.hasOwn(record, name) ? `${record[name]}, ${value}` : value;
  }
  return record;
}
