/** Scheme names on the command line: exactly core's presets, by the names core gives them. */

import { type SchemeName, schemes, type WebhookScheme } from "@interlock/core";
import { CliError, usageError, valueStart } from "./errors.js";

/** Every name `--scheme` accepts (`svix` is Standard Webhooks). */
export const SCHEME_NAMES = Object.keys(schemes) as SchemeName[];

const LIST = SCHEME_NAMES.join(", ");

/**
 * The preset called `name`; a `usage` error when absent, `unknown_scheme` when not a preset,
 * which shows only the start of `name`: a secret given to `--scheme` by mistake must not be printed.
 */
export function resolveScheme(name: string | undefined): WebhookScheme {
  if (name === undefined || name === "") throw usageError(`--scheme is required: one of ${LIST}`);
  if (!Object.hasOwn(schemes, name)) {
    throw new CliError("unknown_scheme", `unknown scheme "${valueStart(name)}" (--scheme): use one of ${LIST}`);
  }
  return schemes[name as SchemeName];
}
