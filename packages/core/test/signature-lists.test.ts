/**
 * Signature lists read as the providers' own libraries read them. A header listing a valid
 * signature among entries the library skips (no separator, an unknown version, a signature that
 * does not decode, empty entries, extra spaces) is accepted by both; a list with no valid
 * signature is refused by both. Differential against standardwebhooks, svix, stripe-node and
 * @octokit/webhooks-methods, then targeted cases, Paddle's and `hmacScheme` lists included (no
 * reference library for those here).
 */
import { randomBytes } from "node:crypto";
import { sign as octokitSign, verify as octokitVerify } from "@octokit/webhooks-methods";
import fc from "fast-check";
import { Webhook as StandardWebhook, WebhookVerificationError as StandardWebhookError } from "standardwebhooks";
import Stripe from "stripe";
import { WebhookVerificationError as SvixError, Webhook as SvixWebhook } from "svix";
import { describe, expect, it } from "vitest";
import {
  createWebhookVerifier,
  github,
  type HeadersInput,
  hmacScheme,
  paddle,
  signWebhook,
  standardWebhooks,
  stripe,
  svix,
  type WebhookErrorCode,
  WebhookVerificationError,
  type WebhookVerifier,
} from "../src/index.js";
import { clockAt, expectRefused, expectVerified, syncPort } from "./helpers.js";

const stripeSignature = Stripe.webhooks.signature as NonNullable<typeof Stripe.webhooks.signature>;
const StripeSignatureError = Stripe.errors.StripeSignatureVerificationError;

const BODY = '{"id":"evt_1","type":"invoice.paid"}';
const NOW = 1_700_000_000;

/** Whether ours accepts: a refusal must be a `WebhookVerificationError`, the same one both ways. */
async function oursAccepts(verifier: WebhookVerifier, headers: HeadersInput, body: string): Promise<boolean> {
  const accepted = await verifier.verify(headers, body).then(
    () => true,
    (error: unknown) => {
      if (error instanceof WebhookVerificationError) return false;
      throw error;
    },
  );
  if (syncPort) {
    let syncAccepted = true;
    try {
      verifier.verifySync(headers, body);
    } catch (error) {
      if (!(error instanceof WebhookVerificationError)) throw error;
      syncAccepted = false;
    }
    expect(syncAccepted).toBe(accepted);
  }
  return accepted;
}

/** Whether a reference library accepts: its own verification error is a refusal, anything else a failure of the test. */
function theirsAccepts(verify: () => unknown, refusal: new (...args: never[]) => Error): boolean {
  try {
    verify();
    return true;
  } catch (error) {
    if (error instanceof refusal) return false;
    throw error;
  }
}

/** Lists of noise with the valid entry at any place, or left out: what each differential runs over. */
function listArbitrary(noise: readonly string[]) {
  return fc.record({
    noise: fc.array(fc.constantFrom(...noise), { maxLength: 5 }),
    at: fc.nat(),
    valid: fc.boolean(),
  });
}

function place<T>(noise: readonly T[], valid: T, at: number, included: boolean): T[] {
  const list = [...noise];
  if (included) list.splice(at % (list.length + 1), 0, valid);
  return list;
}

// ---------------------------------------------------------------------------------------
// Standard Webhooks and Svix: `standardwebhooks` splits the header on " ", each entry on ",",
// and compares the text after the first comma of every `v1` entry; it skips everything else.

/** Entries `standardwebhooks` skips, or reads as a `v1` signature that does not match. */
function swNoise(signature: string): string[] {
  return [
    "garbage", // no comma
    "v1", // a version without a signature
    "v1,", // an empty signature
    ",AAAA", // no version
    ",",
    "v1,%%%%", // not base64
    "v1,ünïcødé",
    "v1,AAAA", // base64, not the signature
    "v2,AAAA", // another version
    "v1a,AAAA", // Ed25519, which this HMAC verifier has no key for
    `v2,${signature}`, // the valid signature under other versions
    `V1,${signature}`,
    `v1b,${signature}`,
    `v10,${signature}`,
    "t=1700000000", // another scheme's item
    "", // an empty entry: two spaces in a row
    " ",
  ];
}

const newSwSecret = () => `whsec_${randomBytes(32).toString("base64")}`;

for (const [label, Library, refusal, names, scheme] of [
  [
    "Standard Webhooks (standardwebhooks)",
    StandardWebhook,
    StandardWebhookError,
    { id: "webhook-id", timestamp: "webhook-timestamp", signature: "webhook-signature" },
    standardWebhooks,
  ],
  [
    "Svix (svix)",
    SvixWebhook,
    SvixError,
    { id: "svix-id", timestamp: "svix-timestamp", signature: "svix-signature" },
    svix,
  ],
] as const) {
  describe(`differential: ${label}`, () => {
    const secret = newSwSecret();
    const library = new Library(secret);
    const verifier = createWebhookVerifier({ scheme, secret });

    /** A delivery signed by the library now, and how both sides take it with `list` as its signature header. */
    function delivery() {
      const timestamp = Math.floor(Date.now() / 1000);
      const id = `msg_${randomBytes(12).toString("hex")}`;
      const valid = library.sign(id, new Date(timestamp * 1000), BODY);
      const signature = valid.slice("v1,".length);
      const judge = async (list: string) => {
        const headers = { [names.id]: id, [names.timestamp]: String(timestamp), [names.signature]: list };
        const theirs = theirsAccepts(() => library.verify(BODY, headers), refusal);
        return { list, theirs, ours: await oursAccepts(verifier, headers, BODY) };
      };
      return { valid, noise: swNoise(signature), judge };
    }

    it("each noise entry before or after the valid signature, or alone: accepted exactly when the library accepts", async () => {
      const { valid, noise, judge } = delivery();
      for (const entry of noise) {
        for (const list of [`${entry} ${valid}`, `${valid} ${entry}`]) {
          const verdict = await judge(list);
          expect(verdict).toEqual({ list, theirs: true, ours: true });
        }
        const alone = await judge(entry === "" ? " " : entry);
        expect(alone).toEqual({ ...alone, theirs: false, ours: false });
      }
    });

    it("property: any list of noise entries, the valid one anywhere or nowhere, joined by one or more spaces", async () => {
      const { valid, noise, judge } = delivery();
      await fc.assert(
        fc.asyncProperty(listArbitrary(noise), fc.constantFrom(" ", "  ", "   "), async (shape, joiner) => {
          const entries = place(shape.noise, valid, shape.at, shape.valid);
          const verdict = await judge(entries.join(joiner));
          expect(verdict.ours).toBe(verdict.theirs);
          expect(verdict.ours).toBe(shape.valid);
        }),
        { numRuns: 300 },
      );
    });
  });
}

// ---------------------------------------------------------------------------------------
// Stripe: stripe-node splits the header on ",", each item on "=", and compares the text
// between the first and second "=" of every `v1` item; it skips every other item. Spaces go
// around noise only: around the valid items ours trims them (verify.test.ts) where stripe-node
// reads ` v1` as another key, and refuses. Its Node build throws a plain Error on a bare `v1`
// or `v1=` and takes the last of two timestamps: both are cases of their own below.

const STRIPE_NOISE = [
  "garbage", // no "="
  "", // an empty item: a doubled or trailing separator
  " ",
  "=", // no key
  "=abc",
  "v1=zz", // not hex
  "v1=abc", // odd length
  "v1=ünïcødé",
  `v1=${"0".repeat(64)}`, // hex, not the signature
  " v1=zz", // spaces around an item
  "v1=00 ",
  "v0=abcd", // another version
  "v2=abcd",
  "V1=abcd",
];

describe("differential: Stripe (stripe-node)", () => {
  const secret = `whsec_${randomBytes(24).toString("hex")}`;
  const verifier = createWebhookVerifier({ scheme: stripe, secret, now: clockAt(NOW) });
  const header = Stripe.webhooks.generateTestHeaderString({ payload: BODY, secret, timestamp: NOW });
  const [timestampItem, signatureItem] = header.split(",") as [string, string];
  const signature = signatureItem.slice("v1=".length);
  // The valid signature under other keys: skipped by both.
  const noise = [...STRIPE_NOISE, `v0=${signature}`, `v2=${signature}`, `V1=${signature}`];

  async function judge(list: string) {
    const theirs = theirsAccepts(
      () => stripeSignature.verifyHeader(BODY, list, secret, 300, undefined, NOW * 1000),
      StripeSignatureError,
    );
    return { list, theirs, ours: await oursAccepts(verifier, { "stripe-signature": list }, BODY) };
  }

  it("each noise item anywhere around the timestamp and the signature: accepted exactly when stripe-node accepts", async () => {
    for (const item of noise) {
      for (const list of [
        `${item},${header}`,
        `${timestampItem},${item},${signatureItem}`,
        `${header},${item}`,
        `${signatureItem},${item},${timestampItem}`,
      ]) {
        expect(await judge(list)).toEqual({ list, theirs: true, ours: true });
      }
      const alone = await judge(`${timestampItem},${item}`);
      expect(alone).toEqual({ ...alone, theirs: false, ours: false });
    }
  });

  it("property: any list of noise items, the timestamp and the valid signature anywhere, the signature or not", async () => {
    await fc.assert(
      fc.asyncProperty(listArbitrary(noise), fc.nat(), async (shape, timestampAt) => {
        const items = place(place(shape.noise, signatureItem, shape.at, shape.valid), timestampItem, timestampAt, true);
        const verdict = await judge(items.join(","));
        expect(verdict.ours).toBe(verdict.theirs);
        expect(verdict.ours).toBe(shape.valid);
      }),
      { numRuns: 300 },
    );
  });
});

// ---------------------------------------------------------------------------------------
// GitHub: @octokit/webhooks-methods compares the whole header with `sha256=<hex>`. No list:
// anything around the signature makes it another text, refused by both.

describe("differential: GitHub (@octokit/webhooks-methods)", () => {
  it("a signature with anything listed around it is refused by both; no list is read", async () => {
    const secret = `gh-${randomBytes(16).toString("hex")}`;
    const verifier = createWebhookVerifier({ scheme: github, secret });
    const valid = await octokitSign(secret, BODY);
    for (const value of [
      valid,
      `${valid},sha256=00`,
      `sha256=00,${valid}`,
      `${valid} sha256=00`,
      `sha1=00 ${valid}`,
      `${valid};garbage`,
      `garbage,${valid}`,
    ]) {
      const theirs = await octokitVerify(secret, BODY, value);
      const ours = await oursAccepts(verifier, { "x-hub-signature-256": value }, BODY);
      expect({ value, ours }).toEqual({ value, ours: theirs });
      expect({ value, ours }).toEqual({ value, ours: value === valid });
    }
  });
});

// ---------------------------------------------------------------------------------------
// Targeted cases.

async function swHeaders(secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") {
  const { headers } = await signWebhook({ scheme: standardWebhooks, secret, body: BODY, id: "msg_1", timestamp: NOW });
  return { headers, valid: headers["webhook-signature"] as string, secret };
}

describe("Standard Webhooks lists", () => {
  it("an entry that is not `version,signature` is skipped wherever it is", async () => {
    const { headers, valid, secret } = await swHeaders();
    const verifier = createWebhookVerifier({ scheme: standardWebhooks, secret, now: clockAt(NOW) });
    for (const list of [`garbage ${valid}`, `${valid} garbage`, `,AAAA ${valid}`, `v1 ${valid} ,`]) {
      await expectVerified(verifier, { ...headers, "webhook-signature": list }, BODY);
    }
  });

  it("a v1 signature that does not decode is a candidate that does not match, not a malformed list", async () => {
    const { headers, valid, secret } = await swHeaders();
    const verifier = createWebhookVerifier({ scheme: standardWebhooks, secret, now: clockAt(NOW) });
    for (const list of [`v1,%%%% ${valid}`, `${valid} v1,ünïcødé`, `v1a,!!!! ${valid}`]) {
      await expectVerified(verifier, { ...headers, "webhook-signature": list }, BODY);
    }
    await expectRefused(
      verifier,
      { ...headers, "webhook-signature": "v1,%%%% garbage" },
      BODY,
      "no_matching_signature",
    );
  });

  it("with no usable candidate: malformed_header when no entry parses, unsupported_version when only other versions do", async () => {
    const { headers, secret } = await swHeaders();
    const verifier = createWebhookVerifier({ scheme: standardWebhooks, secret, now: clockAt(NOW) });
    const refused = (list: string, code: WebhookErrorCode) =>
      expectRefused(verifier, { ...headers, "webhook-signature": list }, BODY, code);
    for (const list of ["garbage", "garbage  more", ",AAAA", "v1 v1a"]) {
      expect((await refused(list, "malformed_header")).message).toMatch(/version,signature/);
    }
    for (const list of ["v2,AAAA", "garbage v2,AAAA", "V1,AAAA ,x"]) {
      expect((await refused(list, "unsupported_version")).message).toMatch(/v1 or v1a/);
    }
  });

  it("skipped entries do not count towards maxSignatures; undecodable candidates do", async () => {
    const { headers, valid, secret } = await swHeaders();
    const verifier = createWebhookVerifier({ scheme: standardWebhooks, secret, now: clockAt(NOW), maxSignatures: 3 });
    const skipped = `${Array.from({ length: 50 }, () => "garbage v2,AAAA").join(" ")} ${valid}`;
    await expectVerified(verifier, { ...headers, "webhook-signature": skipped }, BODY);
    const counted = `v1,%%%% v1,!!!! v1,#### ${valid}`;
    await expectRefused(verifier, { ...headers, "webhook-signature": counted }, BODY, "malformed_header");
  });

  it("a long list of entries without a comma ahead of one with a comma is read to its end", async () => {
    const { headers, secret } = await swHeaders();
    const verifier = createWebhookVerifier({ scheme: standardWebhooks, secret, now: clockAt(NOW) });
    // (Read in one pass: no entry searches ahead to that comma again.)
    const list = `${"a ".repeat(8000)}x,`;
    await expectRefused(verifier, { ...headers, "webhook-signature": list }, BODY, "unsupported_version");
  });
});

describe("Stripe and Paddle lists", () => {
  for (const [scheme, header, separator, timestampKey, signatureKey] of [
    [stripe, "stripe-signature", ",", "t", "v1"],
    [paddle, "paddle-signature", ";", "ts", "h1"],
  ] as const) {
    describe(scheme.name, () => {
      const verifier = createWebhookVerifier({ scheme, secret: "whsec_x", now: clockAt(NOW) });
      const signed = () => signWebhook({ scheme, secret: "whsec_x", body: BODY, timestamp: NOW });
      const join = (...items: string[]) => ({ [header]: items.join(separator) });

      it("an item that is not key=value is skipped wherever it is", async () => {
        const value = (await signed()).headers[header] as string;
        for (const list of [`${value}${separator}garbage`, `garbage${separator}${value}`, `=x${separator}${value}`]) {
          await expectVerified(verifier, { [header]: list }, BODY);
        }
      });

      it(`a ${signatureKey} signature that does not decode, or has no value, is a candidate that does not match`, async () => {
        const value = (await signed()).headers[header] as string;
        const [ts, sig] = value.split(separator) as [string, string];
        for (const other of [`${signatureKey}=zz`, `${signatureKey}=`, signatureKey, `${signatureKey}=ünï`]) {
          await expectVerified(verifier, join(ts, other, sig), BODY);
          await expectVerified(verifier, join(sig, ts, other), BODY);
        }
        await expectRefused(verifier, join(ts, `${signatureKey}=zz`), BODY, "no_matching_signature");
      });

      it("a value ends at a further `=`, as stripe-node reads it", async () => {
        const value = (await signed()).headers[header] as string;
        const [ts, sig] = value.split(separator) as [string, string];
        await expectVerified(verifier, join(`${ts}=junk`, `${sig}=junk`), BODY);
      });

      it("two timestamps stay refused, a key without a value (`t`) among them", async () => {
        const value = (await signed()).headers[header] as string;
        const [ts, sig] = value.split(separator) as [string, string];
        for (const other of [ts, timestampKey, `${timestampKey}=${NOW + 1}`]) {
          await expectRefused(verifier, join(ts, other, sig), BODY, "malformed_header");
          await expectRefused(verifier, join(other, sig, ts), BODY, "malformed_header");
        }
        await expectRefused(verifier, join(timestampKey, sig), BODY, "invalid_timestamp");
      });

      it("with no usable candidate: malformed_header when nothing parses, unsupported_version when only other keys do", async () => {
        for (const list of [["nonsense"], ["garbage", "more"], ["=x"]]) {
          const error = await expectRefused(verifier, join(...list), BODY, "malformed_header");
          expect(error.message).toContain("no key=value item");
        }
        const noSignature = await expectRefused(
          verifier,
          join(`${timestampKey}=${NOW}`, "garbage"),
          BODY,
          "malformed_header",
        );
        expect(noSignature.message).toContain(`no ${signatureKey} signature`);
        for (const list of [
          [`${timestampKey}=${NOW}`, "v0=ab"],
          [`${timestampKey}=${NOW}`, "garbage", "v9=ab"],
        ]) {
          const error = await expectRefused(verifier, join(...list), BODY, "unsupported_version");
          expect(error.message).toContain(`no ${signatureKey} signature`);
        }
      });

      it("skipped items do not count towards maxSignatures; undecodable candidates do", async () => {
        const value = (await signed()).headers[header] as string;
        const bounded = createWebhookVerifier({ scheme, secret: "whsec_x", now: clockAt(NOW), maxSignatures: 3 });
        const skipped = [...Array.from({ length: 50 }, () => "garbage"), "v9=ab", value];
        await expectVerified(bounded, join(...skipped), BODY);
        const counted = [`${signatureKey}=zz`, `${signatureKey}=yy`, `${signatureKey}=xx`, value];
        await expectRefused(bounded, join(...counted), BODY, "malformed_header");
      });

      it("a long list of items without `=` ahead of one with `=` is read to its end", async () => {
        const list = `${`a${separator}`.repeat(8000)}${timestampKey}=${NOW}`;
        await expectRefused(verifier, { [header]: list }, BODY, "malformed_header");
      });
    });
  }

  it("Stripe: a bare `v1` or `v1=` next to a valid signature, which stripe-node's Node build throws on, is accepted", async () => {
    const secret = `whsec_${randomBytes(24).toString("hex")}`;
    const header = Stripe.webhooks.generateTestHeaderString({ payload: BODY, secret, timestamp: NOW });
    const verifier = createWebhookVerifier({ scheme: stripe, secret, now: clockAt(NOW) });
    for (const list of [`${header},v1`, `${header},v1=`]) {
      // Not a refusal of stripe-node's own (a StripeSignatureVerificationError): its Node
      // `secureCompare` throws on an empty or missing signature text.
      expect(() => stripeSignature.verifyHeader(BODY, list, secret, 300, undefined, NOW * 1000)).toThrow(
        "secureCompare must receive two arguments",
      );
      await expectVerified(verifier, { "stripe-signature": list }, BODY);
    }
  });

  it("Stripe: differs from stripe-node on purpose where it takes the last of two timestamps", async () => {
    const secret = `whsec_${randomBytes(24).toString("hex")}`;
    const header = Stripe.webhooks.generateTestHeaderString({ payload: BODY, secret, timestamp: NOW });
    const verifier = createWebhookVerifier({ scheme: stripe, secret, now: clockAt(NOW) });
    for (const list of [`t=${NOW + 1},${header}`, `t,${header}`]) {
      expect(stripeSignature.verifyHeader(BODY, list, secret, 300, undefined, NOW * 1000)).toBe(true);
      await expectRefused(verifier, { "stripe-signature": list }, BODY, "malformed_header");
    }
  });
});

describe("hmacScheme lists (a separator)", () => {
  const scheme = hmacScheme({ name: "listed", prefix: "sha256=", separator: "," });
  const verifier = createWebhookVerifier({ scheme, secret: "partner-secret", now: clockAt(NOW) });

  async function signed() {
    const { headers } = await signWebhook({ scheme, secret: "partner-secret", body: BODY, timestamp: NOW });
    return { headers, valid: headers["x-signature"] as string };
  }

  it("skips an item without the prefix, another version or not, as the presets skip them", async () => {
    const { headers, valid } = await signed();
    for (const list of [
      `sha1=abcd,${valid}`,
      `${valid},garbage`,
      `v2=${valid.slice(7)},${valid}`,
      `sha256=zz,${valid}`,
    ]) {
      await expectVerified(verifier, { ...headers, "x-signature": list }, BODY);
    }
  });

  it("with no usable candidate: unsupported_version when an item looks like another version, malformed_header otherwise", async () => {
    const { headers } = await signed();
    const refused = (list: string, code: WebhookErrorCode) =>
      expectRefused(verifier, { ...headers, "x-signature": list }, BODY, code);
    for (const list of ["sha1=abcd", "garbage,sha1=abcd", "sha1=ab, v2=cd"]) {
      expect((await refused(list, "unsupported_version")).message).toContain('other than "sha256="');
    }
    for (const list of ["garbage", "garbage, more", ", ,"]) {
      expect((await refused(list, "malformed_header")).message).toContain('no signature starting with "sha256="');
    }
  });

  it("without a separator the header is one signature: no list is read", async () => {
    const gh = createWebhookVerifier({ scheme: github, secret: "s" });
    const { headers } = await signWebhook({ scheme: github, secret: "s", body: BODY });
    const valid = headers["x-hub-signature-256"] as string;
    await expectRefused(gh, { "x-hub-signature-256": `${valid},garbage` }, BODY, "no_matching_signature");
    await expectRefused(gh, { "x-hub-signature-256": "sha1=abcd" }, BODY, "unsupported_version");
    await expectRefused(gh, { "x-hub-signature-256": "garbage" }, BODY, "malformed_header");
  });

  it("skipped items do not count towards maxSignatures; undecodable candidates do", async () => {
    const { headers, valid } = await signed();
    const bounded = createWebhookVerifier({ scheme, secret: "partner-secret", now: clockAt(NOW), maxSignatures: 2 });
    const skipped = `${Array.from({ length: 50 }, () => "sha1=ab,garbage").join(",")},${valid}`;
    await expectVerified(bounded, { ...headers, "x-signature": skipped }, BODY);
    await expectRefused(
      bounded,
      { ...headers, "x-signature": `sha256=zz,sha256=yy,${valid}` },
      BODY,
      "malformed_header",
    );
  });
});
