/** What a command runs with: its streams, environment and stop signal, so tests can run it in-process. */

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
  /** Read by `--secret-env NAME`. */
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
