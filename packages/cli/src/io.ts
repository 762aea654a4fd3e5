/** What a command runs with: its streams, environment and stop signal, so tests can run it in-process. */

import { CliError, describeError, errorCodeOf, exitCodeOf } from "./errors.js";

/** A stream a command writes text to: `process.stdout`, `process.stderr`, or your own in tests. */
export interface OutputStream {
  /** Writes text, as `process.stdout.write` does. */
  write(text: string): unknown;
  /** True when the stream is a terminal (Node sets it on `process.stderr`). */
  readonly isTTY?: boolean;
}

/** Where a command reads and writes: `processIo()` for the real process, your own in tests. */
export interface CliIo {
  /** Results: lines of text, or JSON with `--json`. */
  stdout: OutputStream;
  /** Errors and the progress line. */
  stderr: OutputStream;
  /** Read by `--body -`. */
  stdin: AsyncIterable<Uint8Array | string>;
  /** Read by `--secret-env NAME` and `--secret-hex-env NAME`. */
  env: Readonly<Record<string, string | undefined>>;
  /** Stops a running `listen`; without one it runs until the process ends. */
  signal?: AbortSignal;
}

/** The process's own streams and environment. */
export function processIo(signal?: AbortSignal): CliIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    ...(signal ? { signal } : {}),
  };
}

const nullForUndefined = (_key: string, value: unknown): unknown => (value === undefined ? null : value);

/** Writes records as JSON lines (`--json`) or as text lines for people. */
export class Printer {
  readonly json: boolean;
  readonly #out: OutputStream;

  constructor(out: OutputStream, json: boolean) {
    this.#out = out;
    this.json = json;
  }

  /** One record: `record` as a JSON line (absent values as null, so every line has every field), or `text()`. */
  print(record: Record<string, unknown>, text: () => string): void {
    this.#out.write(`${this.json ? JSON.stringify(record, nullForUndefined) : text()}\n`);
  }
}

/** A failure to report on stderr, and how. */
interface ErrorReport {
  /** The command it happened in, for the text line's prefix. */
  command: string | undefined;
  /** What failed. */
  error: unknown;
  /** `--json`: one JSON object rather than a line of text. */
  json: boolean;
  /** What was being done, before the error's own message, for an error the command carries on after. */
  during?: string;
  /** The command carries on: no exit code (null in JSON). */
  carriesOn?: boolean;
}

/**
 * One line on stderr: text, or a JSON object with `--json` (its `exitCode` null when the
 * command carries on, as `listen` does after a request it could not answer). A stack only
 * with INTERLOCK_DEBUG set.
 */
export function reportError(io: CliIo, { command, error, json, during, carriesOn = false }: ErrorReport): void {
  const message = during === undefined ? describeError(error) : `${during}: ${describeError(error)}`;
  const prefix = command ? `interlock ${command}` : "interlock";
  if (json) {
    const exitCode = carriesOn ? null : exitCodeOf(error);
    const line = { type: "error", code: errorCodeOf(error), message, exitCode };
    io.stderr.write(`${JSON.stringify(line)}\n`);
  } else {
    const usage = error instanceof CliError && error.code === "usage" ? ` (see ${prefix} --help)` : "";
    io.stderr.write(`${prefix}: ${message}${usage}\n`);
  }
  if (io.env.INTERLOCK_DEBUG && error instanceof Error && error.stack) io.stderr.write(`${error.stack}\n`);
}
