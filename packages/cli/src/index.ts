/**
 * `@interlock/cli`: the `interlock` command, and the functions behind it for scripts and tests.
 * Every signature and verification is @interlock/core's; this package adds the command line,
 * HTTP, retries and output.
 *
 * The entry holds what the README's "As a library" presents, and nothing else: every export is
 * a promise kept across minor versions. The helpers behind the commands (argument parsing,
 * retries, curl quoting, exit codes) are the command line's own, and stay in their modules.
 */

export {
  type DeliveryReport,
  type ForwardReport,
  type Listener,
  type ListenOptions,
  listen,
  type Verdict,
} from "./commands/listen.js";
export { type MadeSecret, type MakeSecretOptions, makeSecret } from "./commands/secret.js";
export { type AttemptReport, type SendOptions, type SendSummary, send } from "./commands/send.js";
export {
  type DeliveryVerification,
  type VerifyDeliveryOptions,
  type VerifyHint,
  type VerifyHintCode,
  verifyDelivery,
} from "./commands/verify.js";
export { type SignDeliveryOptions, type SignedDelivery, signDelivery } from "./delivery.js";
export { CliError, type CliErrorCode, type ExitCode } from "./errors.js";
export type { CliIo, OutputStream } from "./io.js";
export { run } from "./main.js";
export type { RetryPolicy } from "./retry.js";
