/**
 * `@interlock/cli`: the `interlock` command, and the functions behind it for scripts and tests.
 * Every signature and verification is @interlock/core's; this package adds the command line,
 * HTTP, retries and output.
 */

export type { Args, CommandSpec, IntegerRange, OptionSpec } from "./args.js";
export type { Command } from "./command.js";
export {
  type DeliveryReport,
  type ForwardReport,
  type Listener,
  type ListenOptions,
  listen,
  type Verdict,
} from "./commands/listen.js";
export { type MadeSecret, type MakeSecretOptions, makeSecret } from "./commands/secret.js";
export {
  type AttemptReport,
  DEFAULT_RETRY_POLICY,
  type SendOptions,
  type SendSummary,
  send,
} from "./commands/send.js";
export { curlCommand, shellQuote } from "./curl.js";
export {
  checkDeliveryOptions,
  type SignDeliveryOptions,
  type SignedDelivery,
  STALE_AGE_SECONDS,
  signDelivery,
  tamperedBody,
} from "./delivery.js";
export { CliError, type CliErrorCode, EXIT, type ExitCode, exitCodeOf } from "./errors.js";
export { DEFAULT_TIMEOUT_MS, MAX_ANSWER_BYTES } from "./http.js";
export { type BodySource, readBody } from "./inputs.js";
export { type CliIo, type OutputStream, processIo } from "./io.js";
export { COMMANDS, generalHelp, run, VERSION } from "./main.js";
export {
  type AttemptOutcome,
  backoffDelay,
  checkRetryPolicy,
  NO_RETRIES,
  type RetryPolicy,
  withRetries,
} from "./retry.js";
export { resolveScheme, SCHEME_NAMES } from "./schemes.js";
