/** The `interlock` command line: picks the command, runs it, and turns any failure into one line and an exit code. */

import { version } from "../package.json";
import { commandHelp, parseCommandLine } from "./args.js";
import type { Command } from "./command.js";
import { listenCommand } from "./commands/listen.js";
import { secretCommand } from "./commands/secret.js";
import { sendCommand } from "./commands/send.js";
import { signCommand } from "./commands/sign.js";
import { verifyCommand } from "./commands/verify.js";
import { EXIT, exitCodeOf, shownName, usageError } from "./errors.js";
import { type CliIo, processIo, reportError } from "./io.js";

/** The package's version, as `interlock --version` prints it. */
export const VERSION: string = version;

/** Every command: `secret`, `sign`, `verify`, `send` and `listen`. */
export const COMMANDS: readonly Command[] = [secretCommand, signCommand, verifyCommand, sendCommand, listenCommand];

/** `interlock --help`. */
export function generalHelp(): string {
  const width = Math.max(...COMMANDS.map((command) => command.name.length)) + 2;
  return [
    "Usage: interlock <command> [options]",
    "",
    "Make, sign, verify, send and receive webhook deliveries with @interlock/core's provider schemes.",
    "",
    "Commands:",
    ...COMMANDS.map((command) => `  ${command.name.padEnd(width)}${command.summary}`),
    "",
    "Run interlock <command> --help for a command's options and examples.",
    "Every command takes --json (one JSON object per line). Exit codes: 0 done, 1 a delivery was",
    "not acknowledged (send) or is not valid (verify), 2 bad command line, 3 bad secret, 4 unreadable",
    "body or headers file, 5 network, 70 a bug in the CLI (please report it), 130 Ctrl+C (listen",
    "stops cleanly, 0), 141 the output's reader went away.",
    "",
  ].join("\n");
}

const HELP = new Set(["--help", "-h", "help"]);

/** Runs the command line `argv` (the words after `interlock`); resolves with the exit code. */
export async function run(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    io.stderr.write(generalHelp());
    return EXIT.usage;
  }
  if (name === "--version" || name === "-v") {
    io.stdout.write(`${VERSION}\n`);
    return EXIT.ok;
  }
  const topic = HELP.has(name) ? rest[0] : name;
  const command = COMMANDS.find((candidate) => candidate.name === topic);
  try {
    if (topic === undefined) {
      io.stdout.write(generalHelp());
      return EXIT.ok;
    }
    if (!command) {
      // A word is shown whole (a typo); anything else by its start: a secret pasted as the first word.
      const names = COMMANDS.map((c) => c.name).join(", ");
      throw usageError(`unknown command "${shownName(topic)}": use one of ${names}`);
    }
    if (HELP.has(name)) {
      io.stdout.write(commandHelp(command));
      return EXIT.ok;
    }
    const args = parseCommandLine(command, rest);
    if (args.flag("help")) {
      io.stdout.write(commandHelp(command));
      return EXIT.ok;
    }
    return await command.run(args, io);
  } catch (error) {
    reportError(io, { command: command?.name, error, json: argv.includes("--json") });
    return exitCodeOf(error);
  }
}
