/**
 * The providers' own libraries as independent parties, both directions: what they sign, we
 * verify; what we sign, they verify. Stripe (stripe-node), Standard Webhooks
 * (standardwebhooks), Svix (svix) and GitHub (@octokit/webhooks-methods).
 *
 * The libraries always hash with Node's own crypto, whichever port this project runs ours on.
 */
import { Buffer } from "node:buffer";
import { randomBytes, randomUUID } from "node:crypto";
import { sign as octokitSign, verify as octokitVerify } from "@octokit/webhooks-methods";
import { Webhook as StandardWebhook, WebhookVerificationError as StandardWebhookError } from "standardwebhooks";
import Stripe from "stripe";
import { WebhookVerificationError as SvixError, Webhook as SvixWebhook } from "svix";
import { describe, expect, it, vi } from "vitest";
import { createWebhookVerifier, github, schemes, signWebhook, standardWebhooks } from "../src/index.js";
import { clockAt, expectRefused, expectVerified } from "./helpers.js";

const stripeWebhooks = Stripe.webhooks;
// `constructEvent` and `verifyHeader` read `this`: always call them through their objects.
const stripeSignature = stripeWebhooks.signature as NonNullable<typeof stripeWebhooks.signature>;
const StripeSignatureError = Stripe.errors.StripeSignatureVerificationError;

// ---------------------------------------------------------------------------------------
// Bodies: every party must sign the same bytes.

function sixtyFourKiB(): string {
  const head = '{"id":"evt_big","object":"event","type":"bulk.export","data":"';
  const tail = '"}';
  const fill = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/";
  const length = 64 * 1024 - head.length - tail.length;
  return head + fill.repeat(Math.ceil(length / fill.length)).slice(0, length) + tail;
}

interface Body {
  name: string;
  text: string;
  /** The event id in the JSON body, if it has one. */
  eventId: string | undefined;
}

const BODIES: Body[] = [
  {
    name: "ASCII JSON",
    text: JSON.stringify({ id: "evt_ascii", object: "event", type: "invoice.paid", data: { amount: 4200 } }),
    eventId: "evt_ascii",
  },
  {
    name: "non-ASCII UTF-8 JSON",
    text: JSON.stringify({
      id: "evt_utf8",
      object: "event",
      customer: "Zoë Ångström-Núñez",
      note: "café ☕ crème brûlée — 🎉👩🏽‍💻 日本語 Ελληνικά \u2028",
    }),
    eventId: "evt_utf8",
  },
  { name: "empty", text: "", eventId: undefined },
  { name: "64 KiB JSON", text: sixtyFourKiB(), eventId: "evt_big" },
];

/** The body with its first byte changed, as bytes. */
function tampered(text: string): Buffer {
  const bytes = Buffer.from(text.length === 0 ? "x" : text, "utf8");
  bytes[0] = (bytes[0] as number) ^ 0x01;
  return bytes;
}

it("the 64 KiB body is exactly 64 KiB and the UTF-8 body really is multi-byte", () => {
  expect(Buffer.byteLength(sixtyFourKiB(), "utf8")).toBe(65_536);
  const utf8 = BODIES[1] as Body;
  expect(Buffer.byteLength(utf8.text, "utf8")).toBeGreaterThan(utf8.text.length);
});

// ---------------------------------------------------------------------------------------
// Stripe: stripe-node lets the caller fix its clock (`receivedAt`, in milliseconds).

describe("Stripe (stripe-node)", () => {
  const secret = `whsec_${randomBytes(24).toString("hex")}`;
  const T = 1_700_000_000;
  const receivedAt = (T + 5) * 1000;
  const verifier = createWebhookVerifier({ scheme: schemes.stripe, secret, now: clockAt(T + 5) });

  for (const body of BODIES) {
    describe(body.name, () => {
      it("a header from generateTestHeaderString verifies with ours (text and bytes)", async () => {
        const header = stripeWebhooks.generateTestHeaderString({ payload: body.text, secret, timestamp: T });
        expect(header).toMatch(/^t=1700000000,v1=[0-9a-f]{64}$/);
        const result = await expectVerified(verifier, { "stripe-signature": header }, body.text);
        expect(result.timestamp).toBe(T);
        expect(result.text()).toBe(body.text);
        expect(result.id).toBe(body.eventId);
        await expectVerified(verifier, { "Stripe-Signature": header }, Buffer.from(body.text, "utf8"));
      });

      it("our header verifies with stripe.webhooks.signature.verifyHeader and constructEvent", async () => {
        const signed = await signWebhook({ scheme: schemes.stripe, secret, body: body.text, timestamp: T });
        const header = signed.headers["stripe-signature"] as string;
        expect(stripeSignature.verifyHeader(Buffer.from(signed.body), header, secret, 300, undefined, receivedAt)).toBe(
          true,
        );
        if (body.text === "") {
          // stripe-node refuses an empty *string* payload before checking anything, and
          // constructEvent JSON-parses the body, so only verifyHeader on bytes takes it.
          expect(() => stripeSignature.verifyHeader("", header, secret, 300, undefined, receivedAt)).toThrow(
            /No webhook payload/,
          );
          return;
        }
        expect(stripeSignature.verifyHeader(body.text, header, secret, 300, undefined, receivedAt)).toBe(true);
        const event = stripeWebhooks.constructEvent(body.text, header, secret, 300, undefined, receivedAt);
        expect(event.id).toBe(body.eventId);
        const fromBytes = stripeWebhooks.constructEvent(signed.body, header, secret, 300, undefined, receivedAt);
        expect(fromBytes).toEqual(JSON.parse(body.text));
      });

      it("a tampered body is refused both ways", async () => {
        const theirs = stripeWebhooks.generateTestHeaderString({ payload: body.text, secret, timestamp: T });
        await expectRefused(verifier, { "stripe-signature": theirs }, tampered(body.text), "no_matching_signature");

        const ours = await signWebhook({ scheme: schemes.stripe, secret, body: body.text, timestamp: T });
        const header = ours.headers["stripe-signature"] as string;
        expect(() =>
          stripeSignature.verifyHeader(tampered(body.text), header, secret, 300, undefined, receivedAt),
        ).toThrow(StripeSignatureError);
      });
    });
  }

  it("rotation: our header signed with [old, new] is accepted by Stripe with either secret", async () => {
    const older = `whsec_${randomBytes(24).toString("hex")}`;
    const newer = `whsec_${randomBytes(24).toString("hex")}`;
    for (const body of BODIES.filter((b) => b.text !== "")) {
      const signed = await signWebhook({
        scheme: schemes.stripe,
        secret: [older, newer],
        body: body.text,
        timestamp: T,
      });
      const header = signed.headers["stripe-signature"] as string;
      expect(header.split(",v1=")).toHaveLength(3);
      for (const s of [older, newer]) {
        expect(stripeSignature.verifyHeader(body.text, header, s, 300, undefined, receivedAt)).toBe(true);
        expect(stripeWebhooks.constructEvent(body.text, header, s, 300, undefined, receivedAt).id).toBe(body.eventId);
      }
      expect(() => stripeSignature.verifyHeader(body.text, header, secret, 300, undefined, receivedAt)).toThrow(
        StripeSignatureError,
      );
      // And ours, configured with only one of them, accepts the same header.
      for (const s of [older, newer]) {
        const one = createWebhookVerifier({ scheme: schemes.stripe, secret: s, now: clockAt(T) });
        await expectVerified(one, signed.headers, body.text);
      }
    }
  });

  it("rotation: a Stripe header made with the old secret verifies with ours configured [new, old]", async () => {
    const older = `whsec_${randomBytes(24).toString("hex")}`;
    const header = stripeWebhooks.generateTestHeaderString({
      payload: BODIES[0]?.text ?? "",
      secret: older,
      timestamp: T,
    });
    const rotating = createWebhookVerifier({ scheme: schemes.stripe, secret: [secret, older], now: clockAt(T) });
    await expectVerified(rotating, { "stripe-signature": header }, BODIES[0]?.text ?? "");
  });

  it("agrees with Stripe on the 300 s tolerance boundary for old deliveries", async () => {
    const body = BODIES[0]?.text ?? "";
    const header = stripeWebhooks.generateTestHeaderString({ payload: body, secret, timestamp: T });
    const at = (seconds: number) => createWebhookVerifier({ scheme: schemes.stripe, secret, now: clockAt(seconds) });
    await expectVerified(at(T + 300), { "stripe-signature": header }, body);
    expect(stripeSignature.verifyHeader(body, header, secret, 300, undefined, (T + 300) * 1000)).toBe(true);
    await expectRefused(at(T + 301), { "stripe-signature": header }, body, "timestamp_too_old");
    expect(() => stripeSignature.verifyHeader(body, header, secret, 300, undefined, (T + 301) * 1000)).toThrow(
      /tolerance/,
    );
  });

  it("agrees with Stripe half a second past the boundary: both round now down to whole seconds", async () => {
    const body = BODIES[0]?.text ?? "";
    const header = stripeWebhooks.generateTestHeaderString({ payload: body, secret, timestamp: T });
    const receivedAt = (T + 300) * 1000 + 500;
    expect(stripeSignature.verifyHeader(body, header, secret, 300, undefined, receivedAt)).toBe(true);
    const verifier = createWebhookVerifier({ scheme: schemes.stripe, secret, now: () => receivedAt });
    await expectVerified(verifier, { "stripe-signature": header }, body);
  });

  it("a trailing separator after the last item, which stripe-node skips, is skipped", async () => {
    const body = BODIES[0]?.text ?? "";
    const header = `${stripeWebhooks.generateTestHeaderString({ payload: body, secret, timestamp: T })},`;
    expect(stripeSignature.verifyHeader(body, header, secret, 300, undefined, T * 1000)).toBe(true);
    const verifier = createWebhookVerifier({ scheme: schemes.stripe, secret, now: clockAt(T) });
    await expectVerified(verifier, { "stripe-signature": header }, body);
  });

  it("differs from Stripe on purpose: a timestamp far in the future is refused by ours only", async () => {
    const body = BODIES[0]?.text ?? "";
    const header = stripeWebhooks.generateTestHeaderString({ payload: body, secret, timestamp: T + 3600 });
    expect(stripeSignature.verifyHeader(body, header, secret, 300, undefined, T * 1000)).toBe(true);
    await expectRefused(verifier, { "stripe-signature": header }, body, "timestamp_in_future");
  });

  it("a legacy v0-only header from stripe-node is refused as unsupported_version", async () => {
    const body = BODIES[0]?.text ?? "";
    const header = stripeWebhooks.generateTestHeaderString({ payload: body, secret, timestamp: T, scheme: "v0" });
    expect(header.startsWith(`t=${T},v0=`)).toBe(true);
    await expectRefused(verifier, { "stripe-signature": header }, body, "unsupported_version");
  });
});

// ---------------------------------------------------------------------------------------
// Standard Webhooks and Svix check the window against the real clock: sign near it.

const newSwSecret = () => `whsec_${randomBytes(32).toString("base64")}`;
const msgId = () => `msg_${randomBytes(18).toString("base64url")}`;
const realNowSeconds = () => Math.floor(Date.now() / 1000);

describe("Standard Webhooks (standardwebhooks)", () => {
  const secret = newSwSecret();
  const wh = new StandardWebhook(secret);

  for (const body of BODIES) {
    describe(body.name, () => {
      it("Webhook.sign output verifies with ours (whsec_, bare base64 and raw key bytes)", async () => {
        const now = realNowSeconds();
        const ts = now - 30;
        const id = msgId();
        const headers = {
          "webhook-id": id,
          "webhook-timestamp": String(ts),
          "webhook-signature": wh.sign(id, new Date(ts * 1000), body.text),
        };
        const bare = secret.slice("whsec_".length);
        for (const s of [secret, bare, new Uint8Array(Buffer.from(bare, "base64"))]) {
          const verifier = createWebhookVerifier({ scheme: standardWebhooks, secret: s, now: clockAt(now) });
          const result = await expectVerified(verifier, headers, body.text);
          expect(result.id).toBe(id);
          expect(result.timestamp).toBe(ts);
          expect(result.text()).toBe(body.text);
        }
        // Signing bytes (a Buffer) gives the same signature as signing the text.
        expect(wh.sign(id, new Date(ts * 1000), Buffer.from(body.text, "utf8"))).toBe(headers["webhook-signature"]);
      });

      it("our headers verify with Webhook.verify", async () => {
        const ts = realNowSeconds() - 30;
        const signed = await signWebhook({ scheme: standardWebhooks, secret, body: body.text, timestamp: ts });
        expect(signed.id).toMatch(/^msg_/);
        const payload = wh.verify(body.text, signed.headers);
        expect(payload).toEqual(body.text === "" ? undefined : JSON.parse(body.text));
        expect(wh.verify(Buffer.from(signed.body), signed.headers, { jsonParse: false })).toBeUndefined();
      });

      it("a tampered body is refused both ways", async () => {
        const now = realNowSeconds();
        const id = msgId();
        const headers = {
          "webhook-id": id,
          "webhook-timestamp": String(now),
          "webhook-signature": wh.sign(id, new Date(now * 1000), body.text),
        };
        const verifier = createWebhookVerifier({ scheme: standardWebhooks, secret, now: clockAt(now) });
        await expectRefused(verifier, headers, tampered(body.text), "no_matching_signature");

        const ours = await signWebhook({ scheme: standardWebhooks, secret, body: body.text, timestamp: now });
        expect(() => wh.verify(tampered(body.text), ours.headers, { jsonParse: false })).toThrow(StandardWebhookError);
      });
    });
  }

  it("agrees with Webhook.verify half a second past the 300 s boundary: both round now down to whole seconds", async () => {
    const T = 1_700_000_000;
    const id = msgId();
    const headers = {
      "webhook-id": id,
      "webhook-timestamp": String(T),
      "webhook-signature": wh.sign(id, new Date(T * 1000), "{}"),
    };
    const receivedAt = (T + 300) * 1000 + 500;
    vi.useFakeTimers({ toFake: ["Date"] });
    try {
      vi.setSystemTime(receivedAt);
      expect(wh.verify("{}", headers)).toEqual({});
    } finally {
      vi.useRealTimers();
    }
    const verifier = createWebhookVerifier({ scheme: standardWebhooks, secret, now: () => receivedAt });
    await expectVerified(verifier, headers, "{}");
  });

  it("rotation: our headers signed with [a, b] verify with either secret", async () => {
    const a = newSwSecret();
    const b = newSwSecret();
    const body = BODIES[1]?.text ?? "";
    const signed = await signWebhook({ scheme: standardWebhooks, secret: [a, b], body, timestamp: realNowSeconds() });
    expect(signed.headers["webhook-signature"]?.split(" ")).toHaveLength(2);
    expect(new StandardWebhook(a).verify(body, signed.headers)).toEqual(JSON.parse(body));
    expect(new StandardWebhook(b).verify(body, signed.headers)).toEqual(JSON.parse(body));
    expect(() => wh.verify(body, signed.headers)).toThrow(StandardWebhookError);
  });

  it('a signature header sent twice, as Node and fetch join it (", "), verifies in either order, as Webhook.verify does', async () => {
    const body = BODIES[1]?.text ?? "";
    const signed = await signWebhook({ scheme: standardWebhooks, secret, body, timestamp: realNowSeconds() });
    const valid = signed.headers["webhook-signature"] as string;
    const other = (await signWebhook({ scheme: standardWebhooks, secret: newSwSecret(), body, id: "msg_other" }))
      .headers["webhook-signature"] as string;
    const verifier = createWebhookVerifier({ scheme: standardWebhooks, secret });
    for (const joined of [`${valid}, ${other}`, `${other}, ${valid}`]) {
      const headers = { ...signed.headers, "webhook-signature": joined };
      expect(wh.verify(body, headers)).toEqual(JSON.parse(body));
      expect((await verifier.verify(headers, body)).id).toBe(signed.id);
    }
  });

  it("refuses a non-canonical base64 spelling of a valid signature (ours does not yet: see property.test.ts)", () => {
    const now = realNowSeconds();
    const id = msgId();
    const signature = wh.sign(id, new Date(now * 1000), "{}");
    // 32 bytes are 43 base64 characters and "="; the last character carries 2 unused bits.
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const last = signature.length - 2;
    const altered = `${signature.slice(0, last)}${alphabet[alphabet.indexOf(signature[last] as string) ^ 1]}=`;
    expect(Buffer.from(altered.slice(3), "base64")).toEqual(Buffer.from(signature.slice(3), "base64"));
    const headers = { "webhook-id": id, "webhook-timestamp": String(now) };
    expect(wh.verify("{}", { ...headers, "webhook-signature": signature })).toEqual({});
    expect(() => wh.verify("{}", { ...headers, "webhook-signature": altered })).toThrow(StandardWebhookError);
  });
});

describe("Svix (svix)", () => {
  const secret = newSwSecret();
  const wh = new SvixWebhook(secret);
  // Svix's white-label option (paid plans) sends the same headers under `webhook-*` names.
  const whiteLabel = (headers: Record<string, string>) =>
    Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.replace(/^svix-/, "webhook-"), value]));

  for (const body of BODIES) {
    describe(body.name, () => {
      it("Webhook.sign output under svix-* headers verifies with ours (svix and standard-webhooks presets)", async () => {
        const now = realNowSeconds();
        const ts = now - 30;
        const id = msgId();
        const headers = {
          "svix-id": id,
          "svix-timestamp": String(ts),
          "svix-signature": wh.sign(id, new Date(ts * 1000), body.text),
        };
        for (const scheme of [schemes.svix, schemes["standard-webhooks"]]) {
          const verifier = createWebhookVerifier({ scheme, secret, now: clockAt(now) });
          const result = await expectVerified(verifier, headers, body.text);
          expect(result.id).toBe(id);
          expect(result.timestamp).toBe(ts);
          // The same delivery, as a Fetch Headers object with the names in another casing.
          const fetchHeaders = new Headers({
            "Svix-Id": id,
            "Svix-Timestamp": String(ts),
            "Svix-Signature": headers["svix-signature"],
          });
          expect((await verifier.verify(fetchHeaders, body.text)).id).toBe(id);
        }
      });

      it("our headers verify with Webhook.verify, as svix-* and white-labelled to webhook-*", async () => {
        const ts = realNowSeconds() - 30;
        const signed = await signWebhook({ scheme: schemes.svix, secret, body: body.text, timestamp: ts });
        // svix 2.x verifies and returns nothing (1.x returned the parsed payload).
        expect(wh.verify(body.text, signed.headers)).toBeUndefined();
        expect(wh.verify(Buffer.from(signed.body), signed.headers)).toBeUndefined();
        expect(wh.verify(body.text, whiteLabel(signed.headers))).toBeUndefined();
      });

      it("a tampered body is refused both ways", async () => {
        const now = realNowSeconds();
        const id = msgId();
        const headers = {
          "svix-id": id,
          "svix-timestamp": String(now),
          "svix-signature": wh.sign(id, new Date(now * 1000), body.text),
        };
        const verifier = createWebhookVerifier({ scheme: schemes.svix, secret, now: clockAt(now) });
        await expectRefused(verifier, headers, tampered(body.text), "no_matching_signature");

        const ours = await signWebhook({ scheme: schemes.svix, secret, body: body.text, timestamp: now });
        expect(() => wh.verify(tampered(body.text), ours.headers)).toThrow(SvixError);
        expect(() => wh.verify(tampered(body.text), whiteLabel(ours.headers))).toThrow(SvixError);
      });
    });
  }

  it("rotation: our headers signed with [a, b] verify with either secret", async () => {
    const a = newSwSecret();
    const b = newSwSecret();
    const body = BODIES[0]?.text ?? "";
    const signed = await signWebhook({ scheme: schemes.svix, secret: [a, b], body, timestamp: realNowSeconds() });
    expect(() => new SvixWebhook(a).verify(body, signed.headers)).not.toThrow();
    expect(() => new SvixWebhook(b).verify(body, signed.headers)).not.toThrow();
    expect(() => wh.verify(body, signed.headers)).toThrow(SvixError);
  });

  it("signs under the names Svix sends, svix-id, svix-timestamp and svix-signature, as a receiver reading them by name needs", async () => {
    // Svix's guide to verifying by hand, and its server unless white-labelled, use `svix-*`
    // names; the Standard Webhooks preset keeps the spec's `webhook-*` ones.
    const body = BODIES[1]?.text ?? "";
    const ts = realNowSeconds();
    const id = msgId();
    const signed = await signWebhook({ scheme: schemes.svix, secret, body, id, timestamp: ts });
    expect(signed.headers).toEqual({
      "svix-id": id,
      "svix-timestamp": String(ts),
      "svix-signature": wh.sign(id, new Date(ts * 1000), body),
    });
    const unbranded = await signWebhook({ scheme: standardWebhooks, secret, body, id, timestamp: ts });
    expect(unbranded.headers).toEqual(whiteLabel(signed.headers));
    // Either way the delivery is the same one to our verifiers, under the same name.
    for (const headers of [signed.headers, unbranded.headers]) {
      const verifier = createWebhookVerifier({ scheme: schemes.svix, secret, now: clockAt(ts) });
      expect((await expectVerified(verifier, headers, body)).scheme).toBe("standard-webhooks");
    }
  });
});

// ---------------------------------------------------------------------------------------
// GitHub: no timestamp, so no clock.

describe("GitHub (@octokit/webhooks-methods)", () => {
  const secret = `gh-${randomBytes(16).toString("hex")}`;
  const verifier = createWebhookVerifier({ scheme: github, secret });
  const nonEmpty = BODIES.filter((b) => b.text !== "");

  for (const body of nonEmpty) {
    describe(body.name, () => {
      it("sign() output verifies with ours", async () => {
        const delivery = randomUUID();
        const signature = await octokitSign(secret, body.text);
        expect(signature).toMatch(/^sha256=[0-9a-f]{64}$/);
        const headers = { "X-Hub-Signature-256": signature, "X-GitHub-Delivery": delivery };
        const result = await expectVerified(verifier, headers, body.text);
        expect(result.id).toBe(delivery);
        expect(result.idCovered).toBe(false);
        expect(result.timestamp).toBeUndefined();
        await expectVerified(verifier, headers, Buffer.from(body.text, "utf8"));
      });

      it("our header verifies with verify()", async () => {
        const signed = await signWebhook({ scheme: github, secret, body: body.text });
        const signature = signed.headers["x-hub-signature-256"] as string;
        expect(signature).toBe(await octokitSign(secret, body.text));
        expect(await octokitVerify(secret, body.text, signature)).toBe(true);
      });

      it("a tampered body is refused both ways", async () => {
        const theirs = await octokitSign(secret, body.text);
        await expectRefused(verifier, { "x-hub-signature-256": theirs }, tampered(body.text), "no_matching_signature");

        const ours = await signWebhook({ scheme: github, secret, body: body.text });
        const signature = ours.headers["x-hub-signature-256"] as string;
        expect(await octokitVerify(secret, tampered(body.text).toString("utf8"), signature)).toBe(false);
      });
    });
  }

  it("empty body: octokit refuses to sign or verify one at all, ours signs and verifies it", async () => {
    await expect(octokitSign(secret, "")).rejects.toThrow(TypeError);
    const signed = await signWebhook({ scheme: github, secret, body: "" });
    const signature = signed.headers["x-hub-signature-256"] as string;
    await expect(octokitVerify(secret, "", signature)).rejects.toThrow(TypeError);
    await expectVerified(verifier, signed.headers, "");
    // Octokit agrees on the digest of a one-byte body, so the format itself is shared.
    const one = await signWebhook({ scheme: github, secret, body: " " });
    expect(await octokitVerify(secret, " ", one.headers["x-hub-signature-256"] as string)).toBe(true);
  });

  describe("a webhook set to content type application/x-www-form-urlencoded", () => {
    // What GitHub sends then: the JSON, URL-encoded, as the one form field `payload`.
    const json = BODIES[1]?.text ?? "";
    const form = new URLSearchParams({ payload: json }).toString();

    it("octokit's signature over the form bytes verifies with ours, and the payload is the JSON inside", async () => {
      expect(form.startsWith("payload=%7B")).toBe(true);
      const signature = await octokitSign(secret, form);
      const result = await expectVerified(verifier, { "x-hub-signature-256": signature }, form);
      expect(result.payload).toEqual(JSON.parse(json));
      expect(result.text()).toBe(form);
    });

    it("our signature over the form verifies with octokit, and a tampered form is refused both ways", async () => {
      const signed = await signWebhook({ scheme: github, secret, body: form });
      const signature = signed.headers["x-hub-signature-256"] as string;
      expect(await octokitVerify(secret, form, signature)).toBe(true);
      const altered = form.replace("evt_utf8", "evt_utf9");
      expect(await octokitVerify(secret, altered, signature)).toBe(false);
      await expectRefused(verifier, { "x-hub-signature-256": signature }, altered, "no_matching_signature");
    });
  });

  it("rotation: octokit's signature with the old secret verifies with ours configured [new, old]", async () => {
    const older = `gh-${randomBytes(16).toString("hex")}`;
    const body = BODIES[1]?.text ?? "";
    const signature = await octokitSign(older, body);
    const rotating = createWebhookVerifier({ scheme: github, secret: [secret, older] });
    await expectVerified(rotating, { "x-hub-signature-256": signature }, body);
    await expectRefused(verifier, { "x-hub-signature-256": signature }, body, "no_matching_signature");
  });
});
