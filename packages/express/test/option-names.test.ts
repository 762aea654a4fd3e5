/**
 * A misspelt option is refused where the middleware is made, with the name meant: the adapter's
 * own options (`route`, `bodyLimit`, `onError`) as well as core's.
 */
import { InterlockConfigError, memoryStore, standardWebhooks } from "@interlock/core";
import { describe, expect, it } from "vitest";
import { idempotency, webhook } from "../src/index.js";

const store = memoryStore();
const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

// As a config object built elsewhere passes them: no excess-property check.
type Loose<F extends (options: never, ...rest: never[]) => unknown> = Parameters<F>[0];

describe("webhook() and idempotency() refuse misspelt options", () => {
  it("webhook(): an adapter option and a core one", () => {
    const make = (extra: Record<string, unknown>) => {
      const options = { scheme: standardWebhooks, secret: SECRET, store, ...extra } as Loose<typeof webhook>;
      return () => webhook(options);
    };
    expect(make({ onErorr: () => undefined })).toThrow(
      new InterlockConfigError('webhook() has no option "onErorr": did you mean "onError"?'),
    );
    expect(make({ tolerence: 60 })).toThrow('did you mean "tolerance"?');
    expect(make({ maxBodyBytes: 1024, tolerance: 60, onError: () => undefined })).not.toThrow();
    // The body limit of a webhook route is the verifier's maxBodyBytes; the adapters' bodyLimit is for idempotency.
    expect(make({ bodyLimit: 1024 })).toThrow(`webhook() has no option "bodyLimit"`);
  });

  it("idempotency(): an adapter option and a core one", () => {
    const make = (extra: Record<string, unknown>) => {
      const options = { store, principal: false, ...extra } as Loose<typeof idempotency>;
      return () => idempotency(options);
    };
    expect(make({ rout: "/payments" })).toThrow(
      new InterlockConfigError('idempotency() has no option "rout": did you mean "route"?'),
    );
    expect(make({ requred: true })).toThrow('did you mean "required"?');
    expect(make({ route: () => "/payments", bodyLimit: 1024, required: true })).not.toThrow();
  });
});
