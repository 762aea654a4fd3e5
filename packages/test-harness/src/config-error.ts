/** Asserting that a store set up wrong fails as a configuration error naming the fix. */

import { InterlockConfigError } from "@interlock/core";

/**
 * What `operation` rejects with, checked to be an `InterlockConfigError` whose message matches
 * `fix`; throws, failing the test, when it resolves or rejects with anything else.
 */
export async function configErrorOf(operation: Promise<unknown>, fix: RegExp): Promise<InterlockConfigError> {
  const error = await operation.then(
    (value: unknown) => {
      throw new Error(`expected an InterlockConfigError, but it resolved with ${String(value)}`);
    },
    (e: unknown) => e,
  );
  if (!(error instanceof InterlockConfigError)) {
    throw new Error(`expected an InterlockConfigError, got ${String(error)}`, { cause: error });
  }
  if (!fix.test(error.message)) throw new Error(`expected a message matching ${fix}, got: ${error.message}`);
  return error;
}
