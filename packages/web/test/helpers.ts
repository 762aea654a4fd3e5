/** Shared pieces of the wrapper-specific tests. */
import { type IdempotencyEvent, type InterlockEvent, MemoryStore } from "@interlock/core";
import { afterEach } from "vitest";
import type { WithIdempotencyOptions } from "../src/index.js";
import { type FetchHandler, listen, type Served } from "./serve.js";

export { SUITE_SECRET as SECRET } from "@interlock/test-harness/secret";
export { bytesOf, chunked, delivery, leaveMidBody, problemOf, uniqueId } from "@interlock/test-harness/web-requests";

/** `withIdempotency` options for the tests: a fresh store, keys scoped by `x-api-key`, events noted. */
export const idempotencyOptions = (
  events: InterlockEvent[] = [],
  extra: Partial<WithIdempotencyOptions> = {},
): WithIdempotencyOptions => ({
  store: new MemoryStore(),
  principal: (request) => request.context.headers.get("x-api-key") ?? undefined,
  onEvent: (event) => events.push(event),
  ...extra,
});

/** The `idempotency.released` events among `events`. */
export const releasedEvents = (events: InterlockEvent[]) =>
  events.filter(
    (event): event is Extract<IdempotencyEvent, { type: "idempotency.released" }> =>
      event.type === "idempotency.released",
  );

const open: Served[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((served) => served.close()));
});

/** Serves `handler` on 127.0.0.1 until the end of the test. */
export async function start(handler: FetchHandler): Promise<string> {
  const served = await listen(handler);
  open.push(served);
  return served.url;
}

/**
 * Serves `handler` until the end of the test, noting how each call ended: its status, or
 * `threw …` (what the host would log and answer 500).
 */
export async function startNotingOutcomes(handler: FetchHandler): Promise<{ url: string; outcomes: string[] }> {
  const outcomes: string[] = [];
  const url = await start(async (request) => {
    try {
      const answer = await handler(request);
      outcomes.push(String(answer.status));
      return answer;
    } catch (error) {
      outcomes.push(`threw ${String(error)}`);
      throw error;
    }
  });
  return { url, outcomes };
}
