/** `signWebhook` for every scheme: headers in the provider's shape that our verifier accepts. */
import { describe, expect, it } from "vitest";
import {
  createWebhookVerifier,
  github,
  hmacScheme,
  InterlockConfigError,
  linear,
  schemes,
  signWebhook,
  signWebhookSync,
  standardWebhooks,
  stripe,
  type WebhookScheme,
} from "../src/index.js";
import { clockAt, expectVerified, syncPort } from "./helpers.js";

const NOW = 1_700_000_000;
const SECRETS: Record<string, string> = {
  "standard-webhooks": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  svix: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
};
const bodyFor = (scheme: WebhookScheme) =>
  scheme === linear ? JSON.stringify({ action: "create", webhookTimestamp: NOW * 1000 }) : '{"id":"evt_9","ok":true}';

describe("sign → verify for every scheme", () => {
  for (const [name, scheme] of Object.entries(schemes)) {
    it(name, async () => {
      const secret = SECRETS[name] ?? `${name}-secret`;
      const body = bodyFor(scheme);
      const signed = await signWebhook({ scheme, secret, body, timestamp: NOW });
      const verifier = createWebhookVerifier({ scheme, secret, now: clockAt(NOW) });
      const result = await expectVerified(verifier, signed.headers, body);
      expect(result.id).toBe(signed.id ?? result.id);
      if (syncPort)
        expect(
          signWebhookSync({ scheme, secret, body, timestamp: NOW, ...(signed.id ? { id: signed.id } : {}) }).headers,
        ).toEqual(signed.headers);
    });
  }
});

describe("ids and timestamps", () => {
  it("makes ids in the provider's style", async () => {
    const sw = await signWebhook({ scheme: standardWebhooks, secret: SECRETS.svix as string, body: "{}" });
    expect(sw.headers["webhook-id"]).toMatch(/^msg_[A-Za-z0-9]{24}$/);
    const gh = await signWebhook({ scheme: github, secret: "s", body: "{}" });
    expect(gh.headers["x-github-delivery"]).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    const st = await signWebhook({ scheme: stripe, secret: "whsec_x", body: "{}" });
    expect(st.id).toBeUndefined();
  });

  it("timestamps now by default", async () => {
    const before = Math.floor(Date.now() / 1000);
    const signed = await signWebhook({ scheme: stripe, secret: "whsec_x", body: "{}" });
    const t = Number(/t=(\d+)/.exec(signed.headers["stripe-signature"] as string)?.[1]);
    expect(t).toBeGreaterThanOrEqual(before);
    expect(t).toBeLessThanOrEqual(before + 2);
  });
});

describe("refusals", () => {
  it("refuses several secrets for a one-signature scheme", async () => {
    await expect(signWebhook({ scheme: github, secret: ["a", "b"], body: "{}" })).rejects.toThrow(InterlockConfigError);
  });

  it("refuses to sign with a public key", async () => {
    const publicKey = "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=";
    await expect(signWebhook({ scheme: standardWebhooks, secret: publicKey, body: "{}" })).rejects.toMatchObject({
      code: "invalid_secret",
    });
  });

  it("refuses a timestamp its header could not carry as digits a verifier reads back (1e16, 1e21)", async () => {
    for (const timestamp of [1e16, 1e21, Number.MAX_SAFE_INTEGER + 2]) {
      await expect(
        signWebhook({ scheme: stripe, secret: "whsec_x", body: "{}", timestamp }),
        String(timestamp),
      ).rejects.toBeInstanceOf(InterlockConfigError);
    }
    // In milliseconds the header carries a thousand times less.
    const ms = hmacScheme({ name: "ms", timestampUnit: "milliseconds" });
    const largest = Math.floor(Number.MAX_SAFE_INTEGER / 1000);
    const signed = await signWebhook({ scheme: ms, secret: "s", body: "{}", timestamp: largest });
    expect(signed.headers["x-timestamp"]).toBe(`${largest}000`);
    await expect(signWebhook({ scheme: ms, secret: "s", body: "{}", timestamp: 1e13 })).rejects.toThrow(
      new InterlockConfigError(
        "timestamp must be seconds since the epoch, at most 9007199254740 for the ms scheme, not 10000000000000",
      ),
    );
    const seconds = await signWebhook({ scheme: stripe, secret: "whsec_x", body: "{}", timestamp: 1e15 + 0.5 });
    expect(seconds.headers["stripe-signature"]).toMatch(/^t=1000000000000000,v1=/);
  });

  it("refuses an empty or blank id, which its verifier would refuse as a missing header", async () => {
    for (const id of ["", " ", "\t"]) {
      await expect(
        signWebhook({ scheme: standardWebhooks, secret: SECRETS.svix as string, body: "{}", id }),
        JSON.stringify(id),
      ).rejects.toThrow(new InterlockConfigError("id needs a value: a delivery id cannot be blank"));
    }
  });

  it("refuses a negative or non-finite timestamp", async () => {
    for (const timestamp of [-1, Number.NaN]) {
      await expect(signWebhook({ scheme: stripe, secret: "whsec_x", body: "{}", timestamp })).rejects.toThrow(
        InterlockConfigError,
      );
    }
  });
});
