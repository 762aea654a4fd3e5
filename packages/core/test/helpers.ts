/** Shared test helpers: run the same check through `verify` and, where the port is synchronous, `verifySync`. */
import { expect } from "vitest";
import {
  cryptoRuntime,
  type HeadersInput,
  type RawBody,
  type VerifiedWebhook,
  type WebhookErrorCode,
  WebhookVerificationError,
  type WebhookVerifier,
} from "../src/index.js";

/** True when the suite runs on the synchronous (Node) port. */
export const syncPort = cryptoRuntime === "node";

export async function expectVerified(
  verifier: WebhookVerifier,
  headers: HeadersInput,
  body: RawBody,
): Promise<VerifiedWebhook> {
  const result = await verifier.verify(headers, body);
  if (syncPort) expect(verifier.verifySync(headers, body).id).toBe(result.id);
  return result;
}

export async function expectRefused(
  verifier: WebhookVerifier,
  headers: HeadersInput,
  body: RawBody,
  code: WebhookErrorCode,
): Promise<WebhookVerificationError> {
  const error = await verifier.verify(headers, body).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(WebhookVerificationError);
  expect((error as WebhookVerificationError).code).toBe(code);
  if (syncPort) {
    let syncError: unknown;
    try {
      verifier.verifySync(headers, body);
    } catch (e) {
      syncError = e;
    }
    expect(syncError).toBeInstanceOf(WebhookVerificationError);
    expect((syncError as WebhookVerificationError).code).toBe(code);
  }
  return error as WebhookVerificationError;
}

/** A fixed clock at the given unix seconds, in the form verifiers take. */
export const clockAt = (seconds: number) => () => seconds * 1000;
