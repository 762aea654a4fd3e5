import type { Args, CommandSpec } from "./args.js";
import type { CliIo } from "./io.js";

/** A command: its spec (options and help) and what it does, returning the exit code. */
export interface Command extends CommandSpec {
  /** Runs the command; resolves with the exit code. */
  run(args: Args, io: CliIo): Promise<number>;
}
