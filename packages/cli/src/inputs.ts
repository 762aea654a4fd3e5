/** What commands read besides their options: the body, the secrets and extra headers. */

import { readFile } from "node:fs/promises";
import { HTTP_TOKEN, trimOws, type WebhookSecret, WebhookVerificationError } from "@interlock/core";
import { CliError, usageError, valueStart } from "./errors.js";
import { checkHeaderValue } from "./http.js";

/** A body and, when it was read from a file, that file's path as given (for `--curl`). */
export interface BodySource {
  /** The body's bytes, as read. */
  bytes: Uint8Array;
  /** The file it was read from; undefined for stdin or a literal. */
  file: string | undefined;
}

/**
 * `--body`: `@path` reads a file, `-` reads standard input to its end, anything else is the
 * body itself (as UTF-8). The bytes are used exactly as read: no newline is added or removed.
 */
export async function readBody(spec: string, stdin: AsyncIterable<Uint8Array | string>): Promise<BodySource> {
  if (spec === "-") return { bytes: await readAll(stdin), file: undefined };
  if (!spec.startsWith("@")) return { bytes: new TextEncoder().encode(spec), file: undefined };
  const file = spec.slice(1);
  if (file === "") throw usageError('--body @ needs a file name, as in --body @event.json ("-" reads stdin)');
  return { bytes: await readBodyFile(file), file };
}

async function readBodyFile(file: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(file));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new CliError("file_not_found", `no such file: ${file}`, { cause: error });
    const reason =
      code === "EISDIR" ? "it is a directory" : code === "EACCES" ? "permission denied" : (error as Error).message;
    throw new CliError("file_unreadable", `cannot read ${file}: ${reason}`, { cause: error });
  }
}

async function readAll(stream: AsyncIterable<Uint8Array | string>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === "string" ? new TextEncoder().encode(chunk) : chunk);
  return Buffer.concat(chunks);
}

/** Where `--secret`, `--secret-hex`, `--secret-env` and `--secret-hex-env` put the secrets, as given. */
export interface SecretSources {
  /** `--secret` values: the secret as the provider shows it. */
  literal: readonly string[];
  /** `--secret-hex` values: the secret's bytes, in hex. */
  hex: readonly string[];
  /** `--secret-env` names: environment variables holding the secret as the provider shows it. */
  envNames: readonly string[];
  /** `--secret-hex-env` names: environment variables holding the secret's bytes, in hex. */
  hexEnvNames: readonly string[];
}

/**
 * The secrets from `--secret`, `--secret-hex`, `--secret-env NAME` and `--secret-hex-env NAME`
 * (the last two keep them out of shell history), in that order. Several are allowed: a sender
 * signs with each (schemes that carry several signatures), a listener accepts any (rotation).
 */
export function readSecrets(
  sources: SecretSources,
  env: Readonly<Record<string, string | undefined>>,
  scheme: string,
): WebhookSecret[] {
  const fromEnv = sources.envNames.map((name, index, names) => {
    const value = envSecret(env, name, "--secret-env", index, names.length);
    refuseEdgeWhitespace(value, `the environment variable ${name}`, scheme);
    return value;
  });
  const fromHexEnv = sources.hexEnvNames.map((name, index, names) =>
    secretBytes(
      envSecret(env, name, "--secret-hex-env", index, names.length),
      `the environment variable ${name}`,
      scheme,
    ),
  );
  if (sources.literal.some(isBlank)) throw new CliError("missing_secret", "--secret is empty");
  for (const secret of sources.literal) refuseEdgeWhitespace(secret, "--secret", scheme);
  const fromHex = sources.hex.map((text) => secretBytes(text, "--secret-hex", scheme));
  const secrets = [...sources.literal, ...fromHex, ...fromEnv, ...fromHexEnv];
  if (secrets.length === 0) {
    throw new CliError(
      "missing_secret",
      "no secret: pass --secret SECRET, --secret-hex HEX, --secret-env NAME or --secret-hex-env NAME",
    );
  }
  return secrets;
}

/**
 * The environment variable `name` that `option` (the `index`th of `count`) named: a
 * `missing_secret` when unset or blank. An unset one is shown by its start, as a value in the
 * wrong place: it may be the secret given in its place, whatever it is written in (`--secret-env
 * $SECRET`, or a secret of capitals, digits and `_`, which reads as a name). One that is set is
 * a name in the environment, shown whole.
 */
function envSecret(
  env: Readonly<Record<string, string | undefined>>,
  name: string,
  option: string,
  index: number,
  count: number,
): string {
  // Not `env[name]` alone: `toString` or `__proto__` is no variable, though every object has it.
  const value = Object.hasOwn(env, name) ? env[name] : undefined;
  if (typeof value !== "string") {
    const which = count === 1 ? option : `the ${ordinal(index + 1)} ${option}`;
    throw new CliError(
      "missing_secret",
      `the environment variable "${valueStart(name)}" (${which}) is not set: ${option} takes the name of the variable that holds the secret, not the secret`,
    );
  }
  if (isBlank(value)) {
    throw new CliError("missing_secret", `the environment variable ${name} (${option}) is empty or only whitespace`);
  }
  return value;
}

/** `1st`, `2nd`, `3rd`, `4th`, …, `11th`, …, `21st`. */
export function ordinal(n: number): string {
  const teen = n % 100 >= 11 && n % 100 <= 13;
  return `${n}${teen ? "th" : (["th", "st", "nd", "rd"][n % 10] ?? "th")}`;
}

/**
 * Core refuses a secret text with whitespace at an end too (nearly always a line break pasted
 * with it), but its advice is a library caller's (bytes as a `Uint8Array`). Refused here first,
 * the message names where the secret came from and the command line's way to give bytes.
 */
function refuseEdgeWhitespace(secret: string, source: string, scheme: string): void {
  if (secret.trim() === secret) return;
  throw new WebhookVerificationError(
    "invalid_secret",
    `${source} starts or ends with whitespace (a line break from an environment file?): remove it, or, if the ` +
      "whitespace belongs to the secret, give the secret's bytes in hex with --secret-hex-env or --secret-hex " +
      "(printf %s 'SECRET' | od -An -tx1 | tr -d ' \\n' prints them)",
    scheme,
  );
}

const HEX_BYTES = /^(?:[0-9a-fA-F]{2})+$/;

/**
 * `--secret-hex` (or `--secret-hex-env`), named in errors as `source`: the secret's bytes, which
 * core takes as they are (whitespace included).
 */
function secretBytes(text: string, source: string, scheme: string): Uint8Array {
  if (isBlank(text)) throw new CliError("missing_secret", `${source} is empty`);
  if (!HEX_BYTES.test(text)) {
    throw new WebhookVerificationError(
      "invalid_secret",
      `${source} is not hex: give two hex digits (0-9, a-f) per byte of the secret, such as 733363726574`,
      scheme,
    );
  }
  return new Uint8Array(Buffer.from(text, "hex"));
}

/** Empty or only whitespace: no value (a secret, an id, any option's), whatever its length. */
export const isBlank = (text: string): boolean => text.trim() === "";

/**
 * What an error shows of a `-H` text: up to its first space or colon, then `…` for the rest;
 * a text with neither (a secret given alone?) by its start, as any value in the wrong place.
 */
export function headerStart(text: string): string {
  const end = text.search(/[\s:]/);
  return end === -1 ? valueStart(text) : `${text.slice(0, end)} …`;
}

/** One `-H "Name: value"` text: its name as given and its value trimmed; a usage error when the name is none. */
export function splitHeaderOption(text: string): [string, string] {
  const colon = text.indexOf(":");
  const name = colon > 0 ? text.slice(0, colon).trim() : "";
  // Shown up to its first space or colon: the rest may be a credential (`Authorization Bearer …`).
  if (!HTTP_TOKEN.test(name)) throw usageError(`--header "${headerStart(text)}" is not "Name: value"`);
  return [name, trimOws(text.slice(colon + 1))];
}

/** `-H "Name: value"` options to send, as lower-cased name/value pairs. */
export function parseHeaders(list: readonly string[]): Array<[string, string]> {
  return list.map((text) => {
    const [name, value] = splitHeaderOption(text);
    checkHeaderValue(value, `--header ${name}`);
    return [name.toLowerCase(), value];
  });
}
