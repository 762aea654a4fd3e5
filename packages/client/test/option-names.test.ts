/**
 * A misspelt option is refused when the client is made, with the name it most likely meant:
 * ignored, it would leave the default in force (`maxAttempt: 1` would still retry three times,
 * `breaker: { failure: 1 }` open only after five failures).
 */
import { configRefusal as refusal } from "@interlock/test-harness/option-names";
import { describe, expect, it } from "vitest";
import { CLIENT_OPTION_NAMES, type ClientOptions, createClient } from "../src/index.js";

// Options of a shape TypeScript would refuse in a literal, as a config object built elsewhere passes them.
const loose = (options: Record<string, unknown>) => options as ClientOptions;

/** Every option, each group with every field (the breaker's of one mode). */
const everyOption: Required<ClientOptions> = {
  fetch: async () => new Response(null),
  maxAttempts: 2,
  timeoutMs: 1_000,
  deadlineMs: 5_000,
  retryMethods: ["GET"],
  retryOn: () => false,
  backoff: { strategy: "equal", baseMs: 10, capMs: 100 },
  maxRetryAfterMs: 1_000,
  idempotencyKey: { headerName: "Idempotency-Key", methods: ["POST"], generate: () => "key" },
  budget: { capacity: 5, retryCost: 1, successRefund: 0.5 },
  breaker: { mode: "consecutive", failures: 3, halfOpenAfterMs: 1_000, isFailure: () => false },
  maxOrigins: 10,
  onEvent: () => {},
  random: () => 0.5,
  now: Date.now,
  sleep: async () => {},
};

describe("createClient refuses a misspelt option", () => {
  it("a top-level one, naming the option meant", () => {
    expect(refusal(() => createClient(loose({ maxAttempt: 1 })))).toBe(
      'createClient() has no option "maxAttempt": did you mean "maxAttempts"?',
    );
    expect(refusal(() => createClient(loose({ timeout: 500 })))).toContain('did you mean "timeoutMs"?');
    // Another library's name, like none of these.
    expect(refusal(() => createClient(loose({ retries: 5 })))).toBe('createClient() has no option "retries"');
  });

  it("one in each group, naming the group", () => {
    expect(refusal(() => createClient(loose({ backoff: { baseMS: 10 } })))).toBe(
      'createClient() backoff has no option "baseMS": did you mean "baseMs"?',
    );
    expect(refusal(() => createClient(loose({ idempotencyKey: { headerNames: "Key" } })))).toBe(
      'createClient() idempotencyKey has no option "headerNames": did you mean "headerName"?',
    );
    expect(refusal(() => createClient(loose({ budget: { retryCosts: 2 } })))).toBe(
      'createClient() budget has no option "retryCosts": did you mean "retryCost"?',
    );
    expect(refusal(() => createClient(loose({ breaker: { failure: 1 } })))).toBe(
      'createClient() breaker has no option "failure": did you mean "failures"?',
    );
    expect(refusal(() => createClient(loose({ breaker: { mode: "ratio", treshold: 0.2 } })))).toBe(
      'createClient() breaker has no option "treshold": did you mean "threshold"?',
    );
  });

  it("takes every option it has, and each group turned off", () => {
    expect(() => createClient(everyOption)).not.toThrow();
    expect(() =>
      createClient({
        breaker: { mode: "ratio", threshold: 0.2, windowMs: 1_000, minimumCalls: 5, halfOpenAfterMs: 100 },
      }),
    ).not.toThrow();
    expect(() => createClient({ idempotencyKey: false, budget: false, breaker: false })).not.toThrow();
  });

  it("lists every option it takes, for packages that hand options on", () => {
    expect([...CLIENT_OPTION_NAMES].sort()).toEqual(Object.keys(everyOption).sort());
  });
});
