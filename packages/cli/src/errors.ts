/**
 * The CLI's own failures: each has a stable `code`, the exit code the `interlock` command ends
 * with, and (being an `InterlockError`) the HTTP status and problem+json that `listen`
 * answers a sender with when a forward fails. Core's own errors keep their classes; `exitCodeOf`
 * maps them too, so every failure ends the same way: one line on stderr, no stack trace.
 */

import { brandErrorClass, InterlockConfigError, InterlockError, WebhookVerificationError } from "@interlock/core";

/** Exit codes of the `interlock` command. */
export const EXIT = {
  /** Done; for `send`, every delivery was acknowledged with a 2xx. */
  ok: 0,
  /** `send`: at least one delivery was answered with something other than a 2xx. */
  notAcknowledged: 1,
  /** `verify`: the delivery is not valid (the same code as `notAcknowledged`: the check said no). */
  notValid: 1,
  /** The command line is wrong: an unknown command or option, a bad value, an unknown scheme. */
  usage: 2,
  /** The secret is missing or is not in the scheme's format. */
  secret: 3,
  /** The body file (`--body @file`) cannot be read. */
  input: 4,
  /** A URL cannot be reached, did not answer in time, or the listening port is taken. */
  network: 5,
  /** A bug in the CLI: please report it. */
  internal: 70,
} as const;

/** One of the `EXIT` codes. */
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** Why a command failed. */
export type CliErrorCode =
  | "usage"
  | "unknown_scheme"
  | "missing_secret"
  | "file_not_found"
  | "file_unreadable"
  | "unreachable"
  | "timeout"
  | "listen_failed"
  | "forward_failed";

const CLI_ERRORS: Record<CliErrorCode, { exitCode: ExitCode; status: number; title: string }> = {
  usage: { exitCode: EXIT.usage, status: 400, title: "The command line is not valid" },
  unknown_scheme: { exitCode: EXIT.usage, status: 400, title: "The webhook scheme is unknown" },
  missing_secret: { exitCode: EXIT.secret, status: 400, title: "No webhook secret was given" },
  file_not_found: { exitCode: EXIT.input, status: 400, title: "The file does not exist" },
  file_unreadable: { exitCode: EXIT.input, status: 400, title: "The file cannot be read" },
  unreachable: { exitCode: EXIT.network, status: 502, title: "The URL cannot be reached" },
  timeout: { exitCode: EXIT.network, status: 504, title: "The URL did not answer in time" },
  listen_failed: { exitCode: EXIT.network, status: 500, title: "The listener cannot start" },
  forward_failed: { exitCode: EXIT.network, status: 502, title: "The delivery could not be forwarded" },
};

/**
 * A failure of a command or of one of the package's functions: a bad option, a missing secret,
 * an unreadable body file, a URL that cannot be reached. Its `exitCode` is what the `interlock`
 * command ends with.
 */
export class CliError extends InterlockError {
  static {
    brandErrorClass(CliError, "@interlock/cli:CliError");
  }
  /** The class name, the same in every copy of the package: match on it (or `code`) across copies. */
  override readonly name = "CliError";
  readonly code: CliErrorCode;
  readonly status: number;
  readonly title: string;
  /** What the `interlock` command exits with for this error. */
  readonly exitCode: ExitCode;

  constructor(code: CliErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    const { exitCode, status, title } = CLI_ERRORS[code];
    this.code = code;
    this.status = status;
    this.title = title;
    this.exitCode = exitCode;
  }
}

/** A mistake on the command line. */
export const usageError = (message: string): CliError => new CliError("usage", message);

/**
 * The exit code for a failure: the CLI's own codes, core's `invalid_secret` (a secret not in
 * the scheme's format) and its configuration errors (options that do not fit together, such as
 * two secrets for a scheme that carries one signature). Anything else is a bug.
 */
export function exitCodeOf(error: unknown): ExitCode {
  if (error instanceof CliError) return error.exitCode;
  if (error instanceof WebhookVerificationError && error.code === "invalid_secret") return EXIT.secret;
  if (error instanceof InterlockConfigError) return EXIT.usage;
  return EXIT.internal;
}

/** The one line the command prints for a failure: never a stack trace, never a secret. */
export function describeError(error: unknown): string {
  if (error instanceof WebhookVerificationError && error.code === "invalid_secret") {
    return `invalid secret for the ${error.scheme ?? "chosen"} scheme: ${error.message}`;
  }
  if (error instanceof InterlockError) return error.message;
  const message = error instanceof Error ? error.message : String(error);
  return `unexpected error (please report it): ${firstLine(message)}`;
}

const VALUE_START_LENGTH = 4;

/**
 * What an error shows of a value given in the wrong place: its first 4 characters, then `…`.
 * Enough to recognise a typo or a misplaced word, not a secret pasted there by mistake (its
 * prefix, such as `whse`, is the provider's, not the secret's).
 */
export function valueStart(value: string): string {
  const characters = [...value];
  return characters.length <= VALUE_START_LENGTH ? value : `${characters.slice(0, VALUE_START_LENGTH).join("")}…`;
}

// A word as commands and options are written: a short run of letters and hyphens.
const WORD = /^[a-z][a-z-]{0,15}$/i;

/**
 * What an error shows of a name that names nothing (an unknown command or option): the name
 * whole when it is a word (a typo, such as `lisen`), anything else by its start, as `valueStart`
 * shows a value in the wrong place (a secret pasted there).
 */
export const shownName = (name: string): string => (WORD.test(name) ? name : valueStart(name));

/** A message's first line: a failure is one line of output (OpenSSL's end in a line break). */
export const firstLine = (message: string): string => message.split("\n")[0]?.trim() ?? "";

/** The stable code for a failure, for `--json` error lines. */
export function errorCodeOf(error: unknown): string {
  return error instanceof InterlockError ? error.code : "internal";
}
