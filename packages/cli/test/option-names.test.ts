/**
 * The functions the CLI exports for scripts refuse a misspelt option, with the name meant, as
 * every factory of the other packages does: `listen({ forwrd })` would start a listener that
 * never forwards.
 */
import { standardWebhooks } from "@interlock/core";
import { asyncConfigRefusal, configRefusal, looseOptions } from "@interlock/test-harness/option-names";
import { describe, expect, it } from "vitest";
import { listen, makeSecret, send, signDelivery, verifyDelivery } from "../src/index.js";

const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const delivery = { scheme: standardWebhooks, secret: SECRET, body: "{}" };

describe("the CLI's library functions refuse misspelt options", () => {
  it("listen, before it listens", async () => {
    expect(
      await asyncConfigRefusal(
        listen(looseOptions({ scheme: standardWebhooks, secret: SECRET, port: 0, forwrd: "http://127.0.0.1:1" })),
      ),
    ).toBe('listen() has no option "forwrd": did you mean "forward"?');
    // The option that names its unit, found by its old name (the command line's flag is still --tolerance).
    expect(
      await asyncConfigRefusal(
        listen(looseOptions({ scheme: standardWebhooks, secret: SECRET, port: 0, tolerance: 60 })),
      ),
    ).toBe('listen() has no option "tolerance": did you mean "toleranceSeconds"?');
  });

  it("listen: a toleranceSeconds core refuses is reported as such, not as the retention derived from it", async () => {
    for (const toleranceSeconds of [Number.NaN, Number.POSITIVE_INFINITY, -1, 31_536_001]) {
      const listening = listen({ scheme: standardWebhooks, secret: SECRET, port: 0, toleranceSeconds });
      expect(await asyncConfigRefusal(listening)).toMatch(/^toleranceSeconds must be /);
    }
    // A fraction of a second is taken: the retention derived from it is whole milliseconds.
    const listener = await listen({
      scheme: standardWebhooks,
      secret: SECRET,
      port: 0,
      toleranceSeconds: 400_000.0001,
    });
    await listener.close();
  });

  it("signDelivery and makeSecret", async () => {
    expect(await asyncConfigRefusal(signDelivery(looseOptions({ ...delivery, secrte: SECRET })))).toContain(
      'did you mean "secret"?',
    );
    expect(configRefusal(() => makeSecret(looseOptions({ scheme: standardWebhooks, ed2551: true })))).toContain(
      'did you mean "ed25519"?',
    );
  });

  it("verifyDelivery", async () => {
    const options = { scheme: standardWebhooks, secret: SECRET, headers: {}, body: "{}" };
    expect(await asyncConfigRefusal(verifyDelivery(looseOptions({ ...options, tolerance: 60 })))).toBe(
      'verifyDelivery() has no option "tolerance": did you mean "toleranceSeconds"?',
    );
  });

  it("send, and its retry policy, before anything is sent", async () => {
    const url = "http://127.0.0.1:1/hooks";
    expect(await asyncConfigRefusal(send(looseOptions({ ...delivery, url, repat: 2 })))).toContain(
      'did you mean "repeat"?',
    );
    expect(await asyncConfigRefusal(send(looseOptions({ ...delivery, url, retry: { maxAttemps: 2 } })))).toBe(
      'send() retry has no option "maxAttemps": did you mean "maxAttempts"?',
    );
  });
});
