/**
 * Command lines: `node:util`'s `parseArgs` (no dependency) driven by one spec per command,
 * which also writes that command's `--help`. Values come out typed and range-checked, and every
 * mistake is a `usage` error that names the option.
 */

import { parseArgs } from "node:util";
import { shownName, usageError, valueStart } from "./errors.js";
import { isBlank } from "./inputs.js";

/** One option of a command. */
export interface OptionSpec {
  /** A string takes a value; a boolean is a flag. */
  type: "string" | "boolean";
  /** A one-letter alias, such as `H` for `--header`. */
  short?: string;
  /** May be given several times; the values are collected in order. */
  multiple?: boolean;
  /** The value's placeholder in `--help`, such as `NAME` or `URL`. */
  value?: string;
  /** What it does, for `--help`. */
  description: string;
  /**
   * Whether a blank value (empty or only whitespace) is the command's to judge: a body may be
   * empty, and a blank secret is `missing_secret`. Otherwise the parser refuses it as a usage
   * error: `--id ''` is a mistake (an unset shell variable), never a value to send.
   */
  blankAllowed?: boolean;
}

/** A command's name, help and options: the one source of its parser and its `--help`. */
export interface CommandSpec {
  /** The word after `interlock`. */
  name: string;
  /** One line, for the command list. */
  summary: string;
  /** What follows `interlock <name>`, such as `<url> [options]`. */
  usage: string;
  /** A paragraph or two under the usage line. */
  description: string;
  /** Names of the positional arguments, all required. */
  positionals: readonly string[];
  /** Its options by long name (without `--`). */
  options: Record<string, OptionSpec>;
  /** Command lines shown under `--help`. */
  examples: readonly string[];
}

/** Options every command takes. */
export const COMMON_OPTIONS: Record<string, OptionSpec> = {
  json: { type: "boolean", description: "print one JSON object per line, for scripts" },
  help: { type: "boolean", short: "h", description: "show this help" },
};

/** The accepted range of a whole-number option. */
export interface IntegerRange {
  /** The smallest value accepted. */
  min: number;
  /** The largest value accepted. */
  max: number;
}

type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

/** A command line parsed against its spec: typed, range-checked values. */
export interface Args {
  /** The positional arguments, in order. */
  readonly positionals: readonly string[];
  /** Whether a boolean option was given. */
  flag(name: string): boolean;
  /** A string option's value (the last one, if given twice). */
  string(name: string): string | undefined;
  /** A repeatable option's values, in order. */
  strings(name: string): string[];
  /** A whole number within `range`, or `fallback` when the option is absent. */
  integer(name: string, fallback: number, range: IntegerRange): number;
  /** A whole number within `range`, or undefined when the option is absent. */
  optionalInteger(name: string, range: IntegerRange): number | undefined;
}

function argsOf(values: Values, positionals: readonly string[]): Args {
  const string = (name: string): string | undefined => {
    const value = values[name];
    return typeof value === "string" ? value : undefined;
  };
  const integer = (name: string, fallback: number, range: IntegerRange): number => {
    const text = string(name);
    if (text === undefined) return fallback;
    const digits = /^[0-9]+$/.test(text);
    const value = digits ? Number(text) : Number.NaN;
    if (!Number.isSafeInteger(value) || value < range.min || value > range.max) {
      // A number out of range is shown whole; anything else by its start, as any value in the
      // wrong place (a secret given here by mistake).
      const shown = digits ? text : valueStart(text);
      throw usageError(`--${name} must be a whole number from ${range.min} to ${range.max}, got "${shown}"`);
    }
    return value;
  };
  return {
    positionals,
    flag: (name) => values[name] === true,
    string,
    strings(name) {
      const value = values[name];
      return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
    },
    integer,
    optionalInteger: (name, range) => (string(name) === undefined ? undefined : integer(name, 0, range)),
  };
}

/** Parses `argv` (the words after the command name) against `spec`. */
export function parseCommandLine(spec: CommandSpec, argv: readonly string[]): Args {
  const options = Object.fromEntries(
    Object.entries({ ...spec.options, ...COMMON_OPTIONS }).map(([name, { type, short, multiple }]) => [
      name,
      { type, ...(short ? { short } : {}), ...(multiple ? { multiple } : {}) },
    ]),
  );
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
  } catch (error) {
    throw usageError(parseErrorMessage(error, spec));
  }
  const args = argsOf(parsed.values, parsed.positionals);
  if (args.flag("help")) return args;
  refuseBlankValues(spec, parsed.values);
  const expected = spec.positionals;
  if (parsed.positionals.length < expected.length) {
    throw usageError(`missing <${expected[parsed.positionals.length]}>: usage is interlock ${spec.name} ${spec.usage}`);
  }
  if (parsed.positionals.length > expected.length) {
    // Named by its place, shown by its start: a secret pasted without its option lands here.
    const extra = valueStart(parsed.positionals[expected.length] as string);
    throw usageError(
      `unexpected argument ${expected.length + 1} ("${extra}"): usage is interlock ${spec.name} ${spec.usage}`,
    );
  }
  return args;
}

/** A usage error for the first blank value of an option that does not allow one. */
function refuseBlankValues(spec: CommandSpec, values: Values): void {
  for (const [name, value] of Object.entries(values)) {
    if (spec.options[name]?.blankAllowed) continue;
    const blank = (Array.isArray(value) ? value : [value]).find((v) => typeof v === "string" && isBlank(v));
    if (blank !== undefined) throw usageError(`--${name} needs a value, got ${JSON.stringify(blank)}`);
  }
}

/** Node's parseArgs messages, shortened to their first line. */
function parseErrorMessage(error: unknown, spec: CommandSpec): string {
  const message = error instanceof Error ? (error.message.split("\n")[0] ?? "") : String(error);
  const code = (error as { code?: unknown }).code;
  const quoted = /'([^']+)'/.exec(message)?.[1];
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && quoted) return unknownOption(quoted, spec);
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && quoted && message.includes("ambiguous")) {
    const name = quoted.split(" ")[0];
    return `${name} needs a value; for a value that starts with "-" write ${name}=VALUE`;
  }
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && quoted) {
    const [name, placeholder] = quoted.split(" ");
    return placeholder ? `${name} needs a value` : `${name} takes no value`;
  }
  return message.charAt(0).toLowerCase() + message.slice(1);
}

/**
 * An unknown option, as `parseArgs` names it (`--name`, or `-x` of a group of short ones): a
 * word whole (a typo, such as `--colour`); a value glued to an option that takes one
 * (`--secretSECRET`) as that option and the value's start; anything else by its start.
 */
function unknownOption(option: string, spec: CommandSpec): string {
  const name = option.replace(/^--?/, "");
  const dashes = option.slice(0, option.length - name.length);
  if (shownName(name) === name || dashes === "-") return `unknown option ${option}`;
  const glued = Object.entries(spec.options)
    .filter(([known, { type }]) => type === "string" && name.startsWith(known))
    .map(([known]) => known)
    .sort((a, b) => b.length - a.length)[0];
  if (glued === undefined) return `unknown option ${dashes}${shownName(name)}`;
  const value = valueStart(name.slice(glued.length));
  return `unknown option --${glued} followed by "${value}": write --${glued} VALUE or --${glued}=VALUE`;
}

/** The `--help` text of a command. */
export function commandHelp(spec: CommandSpec): string {
  const rows = Object.entries({ ...spec.options, ...COMMON_OPTIONS }).map(([name, option]) => {
    const flag = `${option.short ? `-${option.short}, ` : "    "}--${name}${option.value ? ` ${option.value}` : ""}`;
    const repeat = option.multiple ? " (repeatable)" : "";
    return [flag, option.description + repeat] as const;
  });
  const width = Math.max(...rows.map(([flag]) => flag.length)) + 2;
  return [
    `Usage: interlock ${spec.name} ${spec.usage}`,
    "",
    spec.description,
    "",
    "Options:",
    ...rows.map(([flag, text]) => `  ${flag.padEnd(width)}${text}`),
    "",
    "Examples:",
    ...spec.examples.map((example) => `  ${example}`),
    "",
  ].join("\n");
}
