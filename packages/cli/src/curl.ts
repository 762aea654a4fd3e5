/** A `curl` command that sends a signed delivery, quoted for POSIX shells. */

import { usageError } from "./errors.js";
import type { BodySource } from "./inputs.js";

/** Single-quotes `text` for sh, bash and zsh: nothing inside is expanded. */
export function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/**
 * `curl -i URL -H … --data-binary @file` (or `--data-raw '…'` for a body given inline). Both
 * send the bytes unchanged: plain `-d @file` would strip the file's newlines and break the
 * signature.
 */
export function curlCommand(url: URL, headers: Iterable<readonly [string, string]>, body: BodySource): string {
  const parts = [`curl -i ${shellQuote(url.href)}`];
  // curl drops a header given as `Name: ` (empty): `Name;` is how it sends one with no value.
  for (const [name, value] of headers) parts.push(`-H ${shellQuote(value === "" ? `${name};` : `${name}: ${value}`)}`);
  parts.push(
    body.file === undefined
      ? `--data-raw ${shellQuote(inlineText(body.bytes))}`
      : `--data-binary @${shellQuote(curlPath(body.file))}`,
  );
  return parts.join(" \\\n  ");
}

/**
 * The longest argument Linux passes to a program (`MAX_ARG_STRLEN`, 128 KiB with its final NUL):
 * past it the shell refuses the whole command ("Argument list too long").
 */
const MAX_ARGUMENT_BYTES = 128 * 1024 - 1;

/** The file as curl reads `@path`: `@-` would be curl's standard input, not the file named "-". */
function curlPath(file: string): string {
  return file === "-" ? "./-" : file;
}

/** A body read from stdin or given inline, as text a shell argument can hold. */
function inlineText(bytes: Uint8Array): string {
  if (bytes.length > MAX_ARGUMENT_BYTES) {
    throw usageError(
      `--curl cannot put this body on a command line (${bytes.length} bytes; one argument holds at most ${MAX_ARGUMENT_BYTES}): pass it as --body @file`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    text = "\0";
  }
  if (text.includes("\0")) {
    throw usageError("--curl cannot put this body on a command line (it is binary): pass it as --body @file");
  }
  return text;
}
