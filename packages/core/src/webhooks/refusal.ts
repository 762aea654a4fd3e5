import { type WebhookErrorCode, WebhookVerificationError, webhookErrorStatus } from "../errors.js";

/**
 * A refused delivery, as `check` returns it: the reason without the cost of an exception.
 * Forged deliveries arrive in bulk, and building and throwing an error for each costs more
 * than the HMAC that refused it; the error is made only if someone asks for it.
 */
export class WebhookRefusal {
  /** Always false: tells a refusal from a `VerifiedWebhook` in `check` results. */
  readonly ok = false as const;
  /** Why the delivery was refused. */
  readonly code: WebhookErrorCode;
  /** The scheme that refused it. */
  readonly scheme: string;
  readonly #message: string;
  #error: WebhookVerificationError | undefined;

  constructor(code: WebhookErrorCode, message: string, scheme: string, error?: WebhookVerificationError) {
    this.code = code;
    this.scheme = scheme;
    this.#message = message;
    this.#error = error;
  }

  /** The refusal for an error already thrown, keeping that error. */
  static from(error: WebhookVerificationError, scheme: string): WebhookRefusal {
    return new WebhookRefusal(error.code, error.message, error.scheme ?? scheme, error);
  }

  /** The HTTP status to answer. */
  get status(): number {
    return webhookErrorStatus(this.code);
  }

  /** The same refusal as the error `verify` throws (its problem+json is `error.toProblem()`). */
  get error(): WebhookVerificationError {
    this.#error ??= new WebhookVerificationError(this.code, this.#message, this.scheme);
    return this.#error;
  }
}
