/**
 * Misspelt options, refused where they are given (core's `assertOptionNames`): what a refusal
 * says, and the rows every adapter's two middlewares answer alike.
 */

import { InterlockConfigError, memoryStore, standardWebhooks } from "@interlock/core";
import { describe, expect, it } from "vitest";

/** What `make` throws: an `InterlockConfigError`, whose message is returned. */
export function configRefusal(make: () => unknown): string {
  try {
    make();
  } catch (error) {
    expect(error).toBeInstanceOf(InterlockConfigError);
    return (error as Error).message;
  }
  throw new Error("the options were accepted");
}

/** What `promise` rejects with: an `InterlockConfigError`, whose message is returned. */
export async function asyncConfigRefusal(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => {
      throw new Error("the options were accepted");
    },
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(InterlockConfigError);
  return (error as Error).message;
}

/**
 * Options as a config object built elsewhere (or JavaScript) passes them: of a shape TypeScript
 * would refuse in a literal.
 */
// biome-ignore lint/suspicious/noExplicitAny: any option type, as JavaScript would pass it.
export const looseOptions = (options: Record<string, unknown>) => options as any;

/** An adapter's two middlewares, made from options (`withWebhook(options, handler)` and so on for the web adapter). */
export interface AdapterFactories {
  /** The name the adapter's messages give its webhook middleware: `webhook()`, `withWebhook()`. */
  webhookName: string;
  webhook: (options: Record<string, unknown>) => unknown;
  /** `idempotency()`, `withIdempotency()`. */
  idempotencyName: string;
  idempotency: (options: Record<string, unknown>) => unknown;
}

/**
 * The adapter's own options (`onError`; `route`, `bodyLimit` for idempotency) and core's are
 * checked together where the middleware is made, and the error names the option meant.
 */
export function describeAdapterOptionNames(framework: string, adapter: AdapterFactories): void {
  const store = memoryStore();
  const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  const webhook = (extra: Record<string, unknown>) => () =>
    adapter.webhook({ scheme: standardWebhooks, secret, store, ...extra });
  const idempotency = (extra: Record<string, unknown>) => () =>
    adapter.idempotency({ store, principal: false, ...extra });

  describe(`${framework}: misspelt options are refused where the middleware is made`, () => {
    it(`${adapter.webhookName}: an adapter option and a core one`, () => {
      expect(configRefusal(webhook({ onErorr: () => undefined }))).toBe(
        `${adapter.webhookName} has no option "onErorr": did you mean "onError"?`,
      );
      expect(configRefusal(webhook({ toleranceSecond: 60 }))).toContain('did you mean "toleranceSeconds"?');
      expect(configRefusal(webhook({ tolerance: 60 }))).toContain('did you mean "toleranceSeconds"?');
      expect(webhook({ maxBodyBytes: 1024, toleranceSeconds: 60, onError: () => undefined })).not.toThrow();
      // A webhook route's body limit is the verifier's maxBodyBytes; bodyLimit is idempotency's.
      expect(configRefusal(webhook({ bodyLimit: 1024 }))).toBe(`${adapter.webhookName} has no option "bodyLimit"`);
    });

    it(`${adapter.idempotencyName}: an adapter option and a core one`, () => {
      expect(configRefusal(idempotency({ rout: "/payments" }))).toBe(
        `${adapter.idempotencyName} has no option "rout": did you mean "route"?`,
      );
      expect(configRefusal(idempotency({ requred: true }))).toContain('did you mean "required"?');
      expect(idempotency({ route: () => "/payments", bodyLimit: 1024, required: true })).not.toThrow();
    });
  });
}
