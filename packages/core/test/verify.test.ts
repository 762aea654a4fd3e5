/** Behaviour of `verify` beyond the provider vectors: every refusal code, rotation, limits, events. */
import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it, vi } from "vitest";
import { headerReader } from "../src/headers.js";
import {
  createWebhookVerifier,
  github,
  hmacScheme,
  InterlockConfigError,
  linear,
  MAX_TOLERANCE_SECONDS,
  paddle,
  schemes,
  shopify,
  signWebhook,
  slack,
  standardWebhooks,
  stripe,
  verifyWebhook,
  type WebhookEvent,
  WebhookPayloadError,
  WebhookVerificationError,
} from "../src/index.js";
import { claimedIdIn } from "../src/webhooks/scheme.js";
import { clockAt, expectRefused, expectVerified, syncPort } from "./helpers.js";

const NOW = 1_700_000_000;
const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const BODY = '{"id":"evt_1","type":"invoice.paid"}';

/** A Standard Webhooks delivery's headers under the names Svix sends. */
function svixNamed(h: Record<string, string>): Record<string, string> {
  const names = {
    "webhook-id": "svix-id",
    "webhook-timestamp": "svix-timestamp",
    "webhook-signature": "svix-signature",
  };
  return Object.fromEntries(Object.entries(names).map(([from, to]) => [to, h[from] as string]));
}

async function swDelivery(overrides: { timestamp?: number; secret?: string; body?: string } = {}) {
  const signed = await signWebhook({
    scheme: standardWebhooks,
    secret: overrides.secret ?? SECRET,
    body: overrides.body ?? BODY,
    id: "msg_1",
    timestamp: overrides.timestamp ?? NOW,
  });
  return signed.headers;
}

const swVerifier = (extra: Partial<Parameters<typeof createWebhookVerifier>[0]> = {}) =>
  createWebhookVerifier({ scheme: standardWebhooks, secret: SECRET, now: clockAt(NOW), ...extra });

describe("headers in every shape", () => {
  it("accepts Fetch Headers, Node-style objects, arrays of one and any casing", async () => {
    const headers = await swDelivery();
    const verifier = swVerifier();
    await expectVerified(verifier, new Headers(headers), BODY);
    const upper = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toUpperCase(), v]));
    await expectVerified(verifier, upper, BODY);
    const arrays = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]]));
    await expectVerified(verifier, arrays, BODY);
  });

  it("reads svix-* headers as Standard Webhooks", async () => {
    const svix = svixNamed(await swDelivery());
    expect((await expectVerified(swVerifier(), svix, BODY)).id).toBe("msg_1");
  });

  it("reads the set of names the signature header names: webhook-* when it is there, else svix-*", async () => {
    const h = await swDelivery();
    const asSvix = svixNamed(h);
    const verifier = swVerifier();
    // Both sets: webhook-* is read, whatever svix-* holds.
    const forged = { "svix-id": "msg_forged", "svix-timestamp": "1", "svix-signature": `v1,${"A".repeat(43)}=` };
    expect((await expectVerified(verifier, { ...h, ...forged }, BODY)).id).toBe("msg_1");
    // A webhook-signature sent, even empty, names the webhook-* set, whose id is then missing.
    const empty = await expectRefused(verifier, { ...asSvix, "webhook-signature": "" }, BODY, "missing_header");
    expect(empty.message).toBe("missing webhook-id header");
    // svix-* alone; a svix-signature sent twice is as malformed as a webhook-signature would be.
    expect((await expectVerified(verifier, asSvix, BODY)).id).toBe("msg_1");
    const signature = asSvix["svix-signature"] as string;
    const twice = { ...asSvix, "svix-signature": [signature, signature] };
    await expectRefused(verifier, twice, BODY, "malformed_header");
    // Neither: missing, under the Standard Webhooks name.
    const { "webhook-signature": _, ...unsigned } = h;
    const missing = await expectRefused(verifier, unsigned, BODY, "missing_header");
    expect(missing.message).toBe("missing webhook-signature header");
  });

  it("refuses a header sent twice with different values as malformed", async () => {
    const h = await swDelivery();
    await expectRefused(swVerifier(), { ...h, "webhook-id": ["msg_1", "msg_2"] }, BODY, "malformed_header");
  });
});

describe("body in every shape", () => {
  it("accepts Uint8Array, Buffer, ArrayBuffer, DataView and text", async () => {
    const headers = await swDelivery();
    const bytes = new TextEncoder().encode(BODY);
    const verifier = swVerifier();
    for (const body of [bytes, Buffer.from(BODY), bytes.buffer, new DataView(bytes.buffer), BODY]) {
      await expectVerified(verifier, headers, body);
    }
  });

  it("refuses a parsed body as body_not_raw, with advice", async () => {
    const headers = await swDelivery();
    const error = await expectRefused(swVerifier(), headers, JSON.parse(BODY), "body_not_raw");
    expect(error.message).toMatch(/before any JSON body parser/);
    expect(error.status).toBe(500);
  });

  it("refuses a content-encoded delivery (415 unsupported_content_encoding) whichever bytes were signed; identity is none", async () => {
    const headers = await swDelivery();
    for (const coding of ["gzip", "GZIP", "br", "identity, gzip", ["gzip"]]) {
      const error = await expectRefused(
        swVerifier(),
        { ...headers, "content-encoding": coding },
        BODY,
        "unsupported_content_encoding",
      );
      expect([error.status, error.message]).toEqual([415, expect.stringMatching(/Content-Encoding: (gzip|br)/)]);
    }
    for (const coding of ["identity", " Identity ", ""]) {
      await expectVerified(swVerifier(), { ...headers, "content-encoding": coding }, BODY);
    }
  });

  it("refuses a body over the limit before hashing it", async () => {
    const body = "x".repeat(2048);
    const headers = await swDelivery({ body });
    await expectRefused(swVerifier({ maxBodyBytes: 1024 }), headers, body, "body_too_large");
    await expectVerified(swVerifier({ maxBodyBytes: 2048 }), headers, body);
  });
});

describe("every refusal has its code", () => {
  it("missing_header", async () => {
    const { "webhook-signature": _, ...rest } = await swDelivery();
    await expectRefused(swVerifier(), rest, BODY, "missing_header");
    await expectRefused(swVerifier(), {}, BODY, "missing_header");
    await expectRefused(createWebhookVerifier({ scheme: github, secret: "s" }), {}, BODY, "missing_header");
  });

  it("malformed_header", async () => {
    const h = await swDelivery();
    await expectRefused(swVerifier(), { ...h, "webhook-signature": "garbage" }, BODY, "malformed_header");
    await expectRefused(swVerifier(), { ...h, "webhook-signature": "   " }, BODY, "malformed_header");
    const st = createWebhookVerifier({ scheme: stripe, secret: "whsec_x", now: clockAt(NOW) });
    await expectRefused(st, { "stripe-signature": "nonsense" }, BODY, "malformed_header");
    await expectRefused(st, { "stripe-signature": `t=${NOW},t=${NOW},v1=00` }, BODY, "malformed_header");
  });

  it("invalid_timestamp: missing, empty, NaN, exponent, negative, fractional", async () => {
    const h = await swDelivery();
    for (const ts of ["abc", "1e9", "-1700000000", "1700000000.5", " 1700000000", "0x10", "NaN"]) {
      await expectRefused(swVerifier(), { ...h, "webhook-timestamp": ts }, BODY, "invalid_timestamp");
    }
    const st = createWebhookVerifier({ scheme: stripe, secret: "whsec_x", now: clockAt(NOW) });
    await expectRefused(st, { "stripe-signature": "v1=00" }, BODY, "invalid_timestamp");
    await expectRefused(st, { "stripe-signature": "t=,v1=00" }, BODY, "invalid_timestamp");
  });

  it("timestamp_too_old and timestamp_in_future, with the tolerance inclusive", async () => {
    const verifier = swVerifier({ toleranceSeconds: 300 });
    await expectVerified(verifier, await swDelivery({ timestamp: NOW - 300 }), BODY);
    await expectVerified(verifier, await swDelivery({ timestamp: NOW + 300 }), BODY);
    await expectRefused(verifier, await swDelivery({ timestamp: NOW - 301 }), BODY, "timestamp_too_old");
    await expectRefused(verifier, await swDelivery({ timestamp: NOW + 301 }), BODY, "timestamp_in_future");
  });

  it("no_matching_signature: wrong secret, tampered body, wrong length, non-ASCII, not base64", async () => {
    const h = await swDelivery();
    const verifier = swVerifier();
    await expectRefused(
      verifier,
      await swDelivery({ secret: "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }),
      BODY,
      "no_matching_signature",
    );
    await expectRefused(verifier, h, `${BODY} `, "no_matching_signature");
    for (const sig of ["v1,AAAA", "v1,ünïcødé", "v1,%%%%", `v1,${"A".repeat(4000)}`, "v1,"]) {
      await expectRefused(verifier, { ...h, "webhook-signature": sig }, BODY, "no_matching_signature");
    }
    const gh = createWebhookVerifier({ scheme: github, secret: "s" });
    for (const sig of ["sha256=", "sha256=zz", "sha256=ab", `sha256=${"é".repeat(64)}`]) {
      await expectRefused(gh, { "x-hub-signature-256": sig }, BODY, "no_matching_signature");
    }
  });

  it("unsupported_version: only unknown versions or algorithms", async () => {
    const h = await swDelivery();
    await expectRefused(swVerifier(), { ...h, "webhook-signature": "v2,AAAA v3,BBBB" }, BODY, "unsupported_version");
    const gh = createWebhookVerifier({ scheme: github, secret: "s" });
    await expectRefused(gh, { "x-hub-signature-256": "sha1=abcd" }, BODY, "unsupported_version");
    const st = createWebhookVerifier({ scheme: stripe, secret: "whsec_x", now: clockAt(NOW) });
    await expectRefused(st, { "stripe-signature": `t=${NOW},v0=abcd` }, BODY, "unsupported_version");
  });

  it("ignores unknown versions next to a valid one", async () => {
    const h = await swDelivery();
    const mixed = { ...h, "webhook-signature": `v2,AAAA ${h["webhook-signature"]} v1a,BBBB` };
    await expectVerified(swVerifier(), mixed, BODY);
  });

  it("invalid_secret: empty, not base64, wrong key length", async () => {
    for (const secret of ["", "whsec_", "whsec_!!!!", "whpk_AAAA", "whsk_AAAA"]) {
      expect(() => createWebhookVerifier({ scheme: standardWebhooks, secret })).toThrow(
        expect.objectContaining({ code: "invalid_secret" }),
      );
    }
    await expect(verifyWebhook({}, BODY, { scheme: github, secret: "" })).rejects.toMatchObject({
      code: "invalid_secret",
      status: 500,
    });
  });

  it("an unusable secret in a rotation list is named by its place, with a stack that reaches the call", () => {
    let thrown: unknown;
    try {
      createWebhookVerifier({ scheme: standardWebhooks, secret: [SECRET, ""] });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toMatchObject({
      code: "invalid_secret",
      message: expect.stringContaining("secret[1] for standard-webhooks"),
    });
    expect((thrown as Error).stack).toContain("verify.test.ts");
  });

  it.each([
    ["a scheme's name", "stripe"],
    ["a misspelt lookup", undefined],
  ])("a scheme given as %s is an InterlockConfigError naming the option", (_, scheme) => {
    const made = () => createWebhookVerifier({ scheme: scheme as never, secret: "s" });
    expect(made).toThrow(InterlockConfigError);
    expect(made).toThrow(/scheme must be a scheme object/);
  });

  it.each([
    ["hash", "sha-256"],
    ["hash", "md5"],
    ["encoding", "base-64"],
    ["secretEncoding", "b64"],
  ])("hmacScheme refuses %s %j (never taken for another)", (option, value) => {
    expect(() => hmacScheme({ [option]: value } as never)).toThrow(InterlockConfigError);
    expect(() => hmacScheme({ [option]: value } as never)).toThrow(option);
  });

  it.each([
    ["stripe", stripe, "whsec_abc123\n"],
    ["github", github, " my-secret"],
    ["slack", slack, "8f742231b10e8888abcd99yyyzzz85a5\r\n"],
    ["shopify", shopify, "shpss_abc\t"],
    ["standard webhooks", standardWebhooks, `${SECRET}\n`],
    ["custom HMAC", hmacScheme(), "s3cret "],
  ])(
    "invalid_secret: a %s secret with whitespace at an end (a pasted line break) fails at start-up",
    async (_, scheme, secret) => {
      const made = () => createWebhookVerifier({ scheme, secret });
      expect(made).toThrow(expect.objectContaining({ code: "invalid_secret", status: 500 }));
      expect(made).toThrow(/whitespace/);
      await expect(signWebhook({ scheme, secret, body: BODY })).rejects.toMatchObject({ code: "invalid_secret" });
    },
  );

  it("a secret's bytes are taken as they are, whitespace included", async () => {
    const secret = new TextEncoder().encode("s3cret ");
    const delivery = await signWebhook({ scheme: github, secret, body: BODY });
    await expect(verifyWebhook(delivery.headers, BODY, { scheme: github, secret })).resolves.toMatchObject({
      payload: expect.anything(),
    });
  });

  it("too many candidate signatures is malformed", async () => {
    const h = await swDelivery();
    const many = Array.from({ length: 11 }, () => h["webhook-signature"]).join(" ");
    await expectRefused(swVerifier(), { ...h, "webhook-signature": many }, BODY, "malformed_header");
    await expectVerified(swVerifier({ maxSignatures: 11 }), { ...h, "webhook-signature": many }, BODY);
  });
});

describe("secret rotation", () => {
  const OLD = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
  it("accepts deliveries signed with any active secret", async () => {
    const verifier = swVerifier({ secret: [OLD, SECRET] });
    await expectVerified(verifier, await swDelivery({ secret: OLD }), BODY);
    await expectVerified(verifier, await swDelivery({ secret: SECRET }), BODY);
    await expectRefused(swVerifier({ secret: [OLD] }), await swDelivery(), BODY, "no_matching_signature");
  });

  it("a sender signing with both secrets is accepted by a receiver that knows either", async () => {
    const signed = await signWebhook({ scheme: paddle, secret: ["a-old", "a-new"], body: BODY, timestamp: NOW });
    expect(signed.headers["paddle-signature"]?.split(";h1=")).toHaveLength(3);
    for (const secret of ["a-old", "a-new"]) {
      await expectVerified(createWebhookVerifier({ scheme: paddle, secret, now: clockAt(NOW) }), signed.headers, BODY);
    }
  });
});

describe("the verified delivery", () => {
  it("exposes id, timestamp, payload and text, decoding lazily", async () => {
    const result = await swVerifier().verify<{ type: string }>(await swDelivery(), BODY);
    expect(result).toMatchObject({ scheme: "standard-webhooks", id: "msg_1", idCovered: true, timestamp: NOW });
    expect(result.payload.type).toBe("invoice.paid");
    expect(result.text()).toBe(BODY);
  });

  it("takes ids from the body where the provider puts them there, covered by the signature", async () => {
    const signed = await signWebhook({ scheme: stripe, secret: "whsec_x", body: BODY, timestamp: NOW });
    const result = await createWebhookVerifier({ scheme: stripe, secret: "whsec_x", now: clockAt(NOW) }).verify(
      signed.headers,
      BODY,
    );
    expect([result.id, result.idCovered]).toEqual(["evt_1", true]);
  });

  it("reports header ids that the signature does not cover", async () => {
    const signed = await signWebhook({ scheme: shopify, secret: "s", body: BODY, id: "d-1" });
    const result = await createWebhookVerifier({ scheme: shopify, secret: "s" }).verify(signed.headers, BODY);
    expect([result.id, result.idCovered, result.timestamp]).toEqual(["d-1", false, undefined]);
  });

  it("decodes Slack form bodies", async () => {
    const body = "command=%2Fdeploy&text=prod&trigger_id=t1";
    const signed = await signWebhook({ scheme: slack, secret: "s", body, timestamp: NOW });
    const result = await createWebhookVerifier({ scheme: slack, secret: "s", now: clockAt(NOW) }).verify(
      signed.headers,
      body,
    );
    expect(result.payload).toEqual({ command: "/deploy", text: "prod", trigger_id: "t1" });
  });
});

describe("a verified body its scheme cannot decode", () => {
  const verified = async (body: string, scheme = standardWebhooks) => {
    const secret = `whsec_${Buffer.from("a secret of 32 bytes, exactly!!!").toString("base64")}`;
    const signed = await signWebhook({ scheme, secret, body });
    return createWebhookVerifier({ scheme, secret }).verify(signed.headers, body);
  };

  it("payload throws WebhookPayloadError whose problem names the scheme and quotes no byte of the body", async () => {
    const delivery = await verified("secret-looking-text {");
    expect(delivery.text()).toBe("secret-looking-text {"); // verified: the bytes stay readable
    const error = (() => {
      try {
        return delivery.payload;
      } catch (thrown) {
        return thrown;
      }
    })() as WebhookPayloadError;
    expect(error).toBeInstanceOf(WebhookPayloadError);
    expect(error.cause).toBeInstanceOf(SyntaxError);
    expect(error.toProblem()).toEqual({
      type: "urn:interlock:problem:payload_not_decodable",
      title: "The webhook payload cannot be decoded",
      status: 400,
      detail: "the delivery's body is not valid JSON",
      code: "payload_not_decodable",
      scheme: "standard-webhooks",
    });
    expect(JSON.stringify(error.toProblem())).not.toContain("secret-looking");
    // Not cached as a value: every read throws the same kind of error.
    expect(() => delivery.payload).toThrow(WebhookPayloadError);
  });

  it("a decoder's own WebhookPayloadError goes through as it is; its SyntaxError becomes the cause of one; anything else is its bug, thrown as it is", async () => {
    const own = new WebhookPayloadError("mine", "not a CSV line");
    const thrower = (thrown: unknown) =>
      hmacScheme({
        name: "csv",
        signatureHeader: "x-sig",
        decodePayload: () => {
          throw thrown;
        },
      });
    const sign = async (scheme: ReturnType<typeof thrower>) => {
      const signed = await signWebhook({ scheme, secret: "s", body: "a,b" });
      return createWebhookVerifier({ scheme, secret: "s" }).verify(signed.headers, "a,b");
    };
    const ownError = await sign(thrower(own)).then((delivery) => {
      try {
        return delivery.payload;
      } catch (thrown) {
        return thrown;
      }
    });
    expect(ownError).toBe(own);
    const thrownBy = (scheme: ReturnType<typeof thrower>) =>
      sign(scheme).then((delivery) => {
        try {
          return delivery.payload;
        } catch (thrown) {
          return thrown;
        }
      });
    const syntaxError = new SyntaxError("not a CSV line");
    const wrapped = (await thrownBy(thrower(syntaxError))) as WebhookPayloadError;
    expect(wrapped).toBeInstanceOf(WebhookPayloadError);
    expect(wrapped.message).toBe("the delivery's body is not what the csv scheme decodes");
    expect(wrapped.cause).toBe(syntaxError);
    const bug = new TypeError("cannot read properties of undefined");
    expect(await thrownBy(thrower(bug))).toBe(bug);
  });
});

describe("GitHub payloads: a JSON body, or a form whose `payload` field holds the JSON", () => {
  const decoded = async (body: string) => {
    const signed = await signWebhook({ scheme: github, secret: "s", body });
    return (await createWebhookVerifier({ scheme: github, secret: "s" }).verify(signed.headers, body)).payload;
  };

  it("decodes both content types to the same payload", async () => {
    const event = { action: "opened", number: 7, title: "a & b = c?" };
    const json = JSON.stringify(event);
    expect(await decoded(json)).toEqual(event);
    expect(await decoded(`payload=${encodeURIComponent(json)}`)).toEqual(event);
    // `+` for spaces, as form encoders write them.
    expect(await decoded(new URLSearchParams({ payload: json }).toString())).toEqual(event);
  });

  it("throws WebhookPayloadError (400 payload_not_decodable) for a body that is neither, what the decoder threw as its cause", async () => {
    const refusal = async (body: string) => {
      const error = await decoded(body).then(
        () => expect.unreachable(`${body} decoded`),
        (thrown: unknown) => thrown,
      );
      expect(error).toBeInstanceOf(WebhookPayloadError);
      const payloadError = error as WebhookPayloadError;
      expect([payloadError.code, payloadError.status, payloadError.scheme]).toEqual([
        "payload_not_decodable",
        400,
        "github",
      ]);
      expect(payloadError.cause).toBeInstanceOf(SyntaxError);
      return payloadError;
    };
    await refusal("not json at all");
    expect((await refusal("other=field")).cause).toHaveProperty(
      "message",
      expect.stringMatching(/neither a JSON object nor a form with a "payload" field/),
    );
    // JSON, but no object: what a GitHub payload always is.
    for (const body of ["null", "[]", "42", '"text"']) {
      expect((await refusal(body)).cause).toHaveProperty(
        "message",
        expect.stringMatching(/neither a JSON object nor a form/),
      );
    }
    await refusal("payload=%7Bbroken");
    await refusal('{"broken"');
  });

  it("a fixed vector: a form delivery and its signature", async () => {
    // HMAC-SHA256 of the body with this secret, computed once with node:crypto (not with core).
    const body = "payload=%7B%22zen%22%3A%22Keep+it+logically+awesome.%22%2C%22hook_id%22%3A1%7D";
    const signature = "sha256=fddacfb7d7106fd32f5d94dc8846df6694e2ed5e2aed3806b11ab82cccff8d01";
    const verifier = createWebhookVerifier({ scheme: github, secret: "It's a Secret to Everybody" });
    const result = await expectVerified(verifier, { "x-hub-signature-256": signature }, body);
    expect(result.payload).toEqual({ zen: "Keep it logically awesome.", hook_id: 1 });
  });
});

describe("the generic scheme", () => {
  it("defaults to x-signature (hex) over {ts}.{body} with x-timestamp", async () => {
    const scheme = hmacScheme();
    const signed = await signWebhook({ scheme, secret: "partner-secret", body: BODY, timestamp: NOW });
    expect(Object.keys(signed.headers).sort()).toEqual(["x-signature", "x-timestamp"]);
    await expectVerified(
      createWebhookVerifier({ scheme, secret: "partner-secret", now: clockAt(NOW) }),
      signed.headers,
      BODY,
    );
  });

  it("supports sha512, base64, a prefix, an id in the template, ms timestamps and a base64 secret", async () => {
    const scheme = hmacScheme({
      name: "acme",
      signatureHeader: "Acme-Signature",
      timestampHeader: "Acme-Time",
      idHeader: "Acme-Id",
      hash: "sha512",
      encoding: "base64",
      prefix: "sha512=",
      template: "{id}|{ts}|{body}",
      timestampUnit: "milliseconds",
      secretEncoding: "base64",
    });
    const secret = "c2VjcmV0LWJ5dGVz";
    const signed = await signWebhook({ scheme, secret, body: BODY, id: "a-1", timestamp: NOW });
    expect(signed.headers["acme-time"]).toBe(String(NOW * 1000));
    expect(signed.headers["acme-signature"]).toMatch(/^sha512=[A-Za-z0-9+/]{86}==$/);
    const verifier = createWebhookVerifier({ scheme, secret, now: clockAt(NOW) });
    expect((await expectVerified(verifier, signed.headers, BODY)).idCovered).toBe(true);
    await expectRefused(verifier, { ...signed.headers, "acme-id": "a-2" }, BODY, "no_matching_signature");
  });

  it("refuses a timestampUnit other than seconds or milliseconds, which was read as milliseconds", () => {
    for (const timestampUnit of ["second", "Seconds", "milisecond"]) {
      expect(() => hmacScheme({ timestampUnit: timestampUnit as never }), timestampUnit).toThrow(
        new InterlockConfigError(`timestampUnit must be "seconds" or "milliseconds", not "${timestampUnit}"`),
      );
    }
    expect(() => hmacScheme({ timestampUnit: "ms" as never })).toThrow(
      new InterlockConfigError('timestampUnit must be "seconds" or "milliseconds", not a string of 2 characters'),
    );
  });

  it("names a refused choice by its type when it is no short word: a secret given in the wrong place stays out of logs", () => {
    const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    expect(() => hmacScheme({ secretEncoding: secret as never })).toThrow(
      new InterlockConfigError('secretEncoding must be "utf8", "base64" or "hex", not a string of 38 characters'),
    );
    expect(() => hmacScheme({ encoding: 64 as never })).toThrow(
      new InterlockConfigError('encoding must be "hex" or "base64", not a number'),
    );
    expect(() => hmacScheme({ hash: "sha-256" as never })).toThrow(
      new InterlockConfigError('hash must be "sha256" or "sha512", not "sha-256"'),
    );
    // A short secret of letters and digits (a Zoom secret token is 22) is no misspelt choice either.
    expect(() => hmacScheme({ secretEncoding: "Xq3vB7kP9mR2tW5yZ8cF1d" as never })).toThrow(
      new InterlockConfigError('secretEncoding must be "utf8", "base64" or "hex", not a string of 22 characters'),
    );
  });

  it("compares a millisecond timestamp with now exactly: 300.001 s old is refused, 300 s is not", async () => {
    const scheme = hmacScheme({ name: "ms", timestampUnit: "milliseconds" });
    const signed = await signWebhook({ scheme, secret: "partner-secret", body: BODY, timestamp: NOW });
    const at = (ms: number) => createWebhookVerifier({ scheme, secret: "partner-secret", now: () => ms });
    await expectVerified(at((NOW + 300) * 1000), signed.headers, BODY);
    await expectRefused(at((NOW + 300) * 1000 + 1), signed.headers, BODY, "timestamp_too_old");
    await expectVerified(at((NOW - 300) * 1000), signed.headers, BODY);
    await expectRefused(at((NOW - 300) * 1000 - 1), signed.headers, BODY, "timestamp_in_future");
  });

  it("compares a timestamp in seconds with now rounded down to whole seconds, either way", async () => {
    const headers = await swDelivery();
    const at = (ms: number) => swVerifier({ now: () => ms });
    await expectVerified(at((NOW + 300) * 1000 + 999), headers, BODY);
    await expectRefused(at((NOW + 301) * 1000), headers, BODY, "timestamp_too_old");
    await expectVerified(at((NOW - 300) * 1000), headers, BODY);
    await expectRefused(at((NOW - 300) * 1000 - 1), headers, BODY, "timestamp_in_future");
  });

  it("refuses configurations that would leave the timestamp or id unsigned", () => {
    expect(() => hmacScheme({ template: "{body}" })).toThrow(InterlockConfigError);
    expect(() => hmacScheme({ timestampHeader: false, template: "{ts}.{body}" })).toThrow(InterlockConfigError);
    expect(() => hmacScheme({ template: "{id}.{ts}.{body}" })).toThrow(InterlockConfigError);
    expect(() => hmacScheme({ template: "{ts}" })).toThrow(InterlockConfigError);
  });
});

describe("a timestamp signed in the body (Linear)", () => {
  const secret = "lin_wh_s3cret";
  const linearVerifier = () => createWebhookVerifier({ scheme: linear, secret, now: clockAt(NOW) });
  const bodyAt = (ms: number) => JSON.stringify({ type: "Issue", webhookTimestamp: ms });
  const signed = async (body: string) => (await signWebhook({ scheme: linear, secret, body })).headers;

  it("is not read from a body whose signature does not match: a forged body is never parsed", async () => {
    // Parsing costs far more than hashing (25 MiB of nested arrays take seconds, their HMAC
    // milliseconds): a forged delivery must cost no more than its HMAC.
    const forged = { "linear-signature": "00".repeat(32) };
    const parse = vi.spyOn(JSON, "parse");
    try {
      await expectRefused(linearVerifier(), forged, bodyAt(NOW * 1000), "no_matching_signature");
      await expectRefused(linearVerifier(), forged, bodyAt(0), "no_matching_signature");
      expect(parse).not.toHaveBeenCalled();
    } finally {
      parse.mockRestore();
    }
  });

  it("is checked against the tolerance, and required, once the signature matched", async () => {
    const fresh = bodyAt(NOW * 1000 - 300_000);
    expect((await expectVerified(linearVerifier(), await signed(fresh), fresh)).timestamp).toBe(NOW - 300);
    const old = bodyAt(NOW * 1000 - 301_000);
    await expectRefused(linearVerifier(), await signed(old), old, "timestamp_too_old");
    const ahead = bodyAt(NOW * 1000 + 301_000);
    await expectRefused(linearVerifier(), await signed(ahead), ahead, "timestamp_in_future");
    const none = '{"type":"Issue"}';
    await expectRefused(linearVerifier(), await signed(none), none, "invalid_timestamp");
  });
});

describe("options", () => {
  it("refuses nonsense tolerances and limits", () => {
    for (const toleranceSeconds of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => swVerifier({ toleranceSeconds })).toThrow(InterlockConfigError);
    }
    for (const limit of [0, -1, 0.5, 1024.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => swVerifier({ maxBodyBytes: limit }), `maxBodyBytes ${limit}`).toThrow(InterlockConfigError);
      expect(() => swVerifier({ maxSignatures: limit }), `maxSignatures ${limit}`).toThrow(InterlockConfigError);
    }
    expect(() => createWebhookVerifier({ scheme: github, secret: [] })).toThrow(InterlockConfigError);
  });

  it("takes a tolerance up to a year, and refuses a longer one as the mistake it is", () => {
    expect(MAX_TOLERANCE_SECONDS).toBe(31_536_000);
    expect(swVerifier({ toleranceSeconds: MAX_TOLERANCE_SECONDS }).toleranceSeconds).toBe(MAX_TOLERANCE_SECONDS);
    // Past it (a value in the wrong unit, say): refused, never a window of years.
    for (const toleranceSeconds of [MAX_TOLERANCE_SECONDS + 1, 300_000_000]) {
      expect(() => swVerifier({ toleranceSeconds })).toThrow(
        new InterlockConfigError(`toleranceSeconds must be at most 31536000 (a year), not ${toleranceSeconds}`),
      );
    }
  });

  it("verifySync works on Node's port and says why it is unavailable on Web Crypto", async () => {
    const headers = await swDelivery();
    if (syncPort) expect(swVerifier().verifySync(headers, BODY).id).toBe("msg_1");
    else expect(() => swVerifier().verifySync(headers, BODY)).toThrow(/synchronous crypto/);
  });
});

describe("events", () => {
  it("reports verified and rejected deliveries without secrets or signatures", async () => {
    const events: WebhookEvent[] = [];
    const verifier = swVerifier({ onEvent: (e) => events.push(e) });
    const headers = await swDelivery();
    await verifier.verify(headers, BODY);
    await verifier.verify({ ...headers, "webhook-timestamp": String(NOW - 1000) }, BODY).catch(() => {});
    await verifier.verify({}, BODY).catch(() => {});
    expect(events.map((e) => [e.type, e.id, "code" in e ? e.code : undefined])).toEqual([
      ["webhook.verified", "msg_1", undefined],
      ["webhook.rejected", "msg_1", "timestamp_too_old"],
      ["webhook.rejected", undefined, "missing_header"],
    ]);
    for (const event of events) {
      expect("durationMs" in event && event.durationMs).toBeGreaterThanOrEqual(0);
      const text = JSON.stringify(event);
      expect(text).not.toContain(SECRET.slice(6));
      expect(text).not.toContain((headers["webhook-signature"] as string).slice(3));
    }
  });

  it("every preset's idHeaders name where its parse reads the id, the one it prefers first", () => {
    const signature = [{ kind: "hmac" as const, bytes: new Uint8Array(32) }];
    for (const [name, scheme] of Object.entries(schemes)) {
      const headers = scheme.format({ id: scheme.newId(new Uint8Array(24)), timestamp: String(NOW) }, signature);
      // Shopify's event id, when sent, is the id rather than its webhook id.
      const sent = name === "shopify" ? [headers, { ...headers, "x-shopify-event-id": "evt-9" }] : [headers];
      for (const delivery of sent) {
        const read = headerReader(delivery);
        expect([name, claimedIdIn(scheme, read)]).toEqual([name, scheme.parse(read, new Uint8Array()).id]);
      }
    }
    const svixHeaders = schemes.svix.format({ id: "msg_svix", timestamp: String(NOW) }, signature);
    expect(claimedIdIn(schemes.svix, headerReader(svixHeaders))).toBe("msg_svix");
  });

  it("a throwing hook does not change the outcome", async () => {
    const verifier = swVerifier({
      onEvent: () => {
        throw new Error("logger down");
      },
    });
    await expectVerified(verifier, await swDelivery(), BODY);
    await expectRefused(verifier, {}, BODY, "missing_header");
  });
});

describe("check: refusals without exceptions", () => {
  it("resolves to the verified delivery or a refusal, told apart by ok", async () => {
    const headers = await swDelivery();
    const verifier = swVerifier();
    const good = await verifier.check(headers, BODY);
    expect(good.ok && good.id).toBe("msg_1");
    const bad = await verifier.check(headers, `${BODY}!`);
    if (bad.ok) throw new Error("expected a refusal");
    expect([bad.code, bad.status, bad.scheme]).toEqual(["no_matching_signature", 401, "standard-webhooks"]);
    expect(bad.error).toBeInstanceOf(WebhookVerificationError);
    expect(bad.error).toBe(bad.error); // made once, on demand
    expect(bad.error.toProblem()).toMatchObject({ code: "no_matching_signature", status: 401 });
    const malformed = await verifier.check({ ...headers, "webhook-timestamp": "soon" }, BODY);
    expect(malformed).toMatchObject({ ok: false, code: "invalid_timestamp", status: 400 });
    if (syncPort) {
      expect(verifier.checkSync(headers, `${BODY}!`)).toMatchObject({ ok: false, code: "no_matching_signature" });
      expect(verifier.checkSync(headers, BODY).ok).toBe(true);
    } else {
      expect(() => verifier.checkSync(headers, BODY)).toThrow(InterlockConfigError);
    }
  });

  it("reports each refusal once to the event hook", async () => {
    const events: WebhookEvent[] = [];
    const verifier = swVerifier({ onEvent: (e) => events.push(e) });
    const headers = await swDelivery();
    await verifier.check(headers, "tampered");
    await verifier.check({}, BODY);
    expect(events.map((e) => [e.type, "code" in e ? e.code : undefined])).toEqual([
      ["webhook.rejected", "no_matching_signature"],
      ["webhook.rejected", "missing_header"],
    ]);
  });
});

describe("checkHeaders: refusals made before the body is read", () => {
  it("refuses from the headers alone what check refuses, with the same code", async () => {
    const h = await swDelivery();
    const { "webhook-signature": _, ...unsigned } = h;
    const many = Array.from({ length: 11 }, () => "v1,AAAA").join(" ");
    const cases: [Record<string, string>, string][] = [
      [unsigned, "missing_header"],
      [{ ...h, "webhook-signature": "garbage" }, "malformed_header"],
      [{ ...h, "webhook-signature": many }, "malformed_header"],
      [{ ...h, "webhook-timestamp": "soon" }, "invalid_timestamp"],
      [await swDelivery({ timestamp: NOW - 301 }), "timestamp_too_old"],
      [await swDelivery({ timestamp: NOW + 301 }), "timestamp_in_future"],
      [{ ...h, "content-encoding": "gzip" }, "unsupported_content_encoding"],
    ];
    const verifier = swVerifier();
    for (const [headers, code] of cases) {
      expect([code, verifier.checkHeaders(headers)?.code]).toEqual([code, code]);
      await expectRefused(verifier, headers, BODY, code as never);
    }
  });

  it("passes headers that only the body can refuse: a forged signature of the right shape", async () => {
    const verifier = swVerifier();
    const forged = await swDelivery({ secret: "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD" });
    expect(verifier.checkHeaders(await swDelivery())).toBeUndefined();
    expect(verifier.checkHeaders(forged)).toBeUndefined();
    expect(verifier.checkHeaders({ ...forged, "content-encoding": "identity" })).toBeUndefined();
    await expectRefused(verifier, forged, BODY, "no_matching_signature");
  });

  it("reports each refusal to the event hook, with the id the headers claim; nothing when it passes", async () => {
    const events: WebhookEvent[] = [];
    const verifier = swVerifier({ onEvent: (e) => events.push(e) });
    verifier.checkHeaders(await swDelivery({ timestamp: NOW - 600 }));
    verifier.checkHeaders(await swDelivery());
    verifier.checkHeaders({});
    expect(events).toEqual([
      expect.objectContaining({ type: "webhook.rejected", code: "timestamp_too_old", id: "msg_1" }),
      expect.objectContaining({ type: "webhook.rejected", code: "missing_header", id: undefined }),
    ]);
  });

  it("leaves a scheme whose parse may read the body to check, content coding aside", async () => {
    const { parsesHeadersOnly: _, ...bodyReading } = standardWebhooks;
    const verifier = createWebhookVerifier({ scheme: bodyReading, secret: SECRET, now: clockAt(NOW) });
    expect(verifier.checkHeaders({})).toBeUndefined();
    await expectRefused(verifier, {}, BODY, "missing_header");
    expect(verifier.checkHeaders({ "content-encoding": "br" })?.code).toBe("unsupported_content_encoding");
  });
});

describe("problem details", () => {
  it("renders RFC 9457 problem+json without the signature", async () => {
    const h = await swDelivery();
    const error = await expectRefused(swVerifier(), h, "tampered", "no_matching_signature");
    expect(error).toBeInstanceOf(WebhookVerificationError);
    const problem = error.toProblem();
    expect(problem).toEqual({
      type: "urn:interlock:problem:no_matching_signature",
      title: "No webhook signature matched",
      status: 401,
      detail: "no signature matched",
      code: "no_matching_signature",
      scheme: "standard-webhooks",
    });
    expect(JSON.stringify(problem)).not.toContain((h["webhook-signature"] as string).slice(3));
  });
});

describe("edges of parsing and limits", () => {
  it("maxBodyBytes is inclusive: a body of exactly the limit is verified, one byte more refused", async () => {
    const body = "x".repeat(2048);
    const headers = await swDelivery({ body });
    await expectVerified(swVerifier({ maxBodyBytes: 2048 }), headers, body);
    await expectRefused(swVerifier({ maxBodyBytes: 2047 }), headers, body, "body_too_large");
  });

  it("reads a view into a larger buffer at its offset and length", async () => {
    const headers = await swDelivery();
    const bytes = new TextEncoder().encode(BODY);
    const larger = new Uint8Array(bytes.length + 8);
    larger.set(bytes, 4);
    for (const view of [new DataView(larger.buffer, 4, bytes.length), new Int8Array(larger.buffer, 4, bytes.length)]) {
      await expectVerified(swVerifier(), headers, view);
    }
  });

  it("Standard Webhooks: extra spaces between entries are no entries; an entry without a comma is skipped, as standardwebhooks skips it", async () => {
    const h = await swDelivery();
    const valid = h["webhook-signature"] as string;
    await expectVerified(swVerifier(), { ...h, "webhook-signature": `v2,AAAA  ${valid}` }, BODY);
    await expectVerified(swVerifier(), { ...h, "webhook-signature": `${valid}   v2,AAAA` }, BODY);
    await expectVerified(swVerifier(), { ...h, "webhook-signature": `garbage ${valid}` }, BODY);
    await expectRefused(swVerifier(), { ...h, "webhook-signature": "garbage" }, BODY, "malformed_header");
  });

  it("Standard Webhooks: only v1 is an HMAC; a valid HMAC under another version (v1b, v10) is not looked at", async () => {
    const h = await swDelivery();
    const signature = (h["webhook-signature"] as string).slice("v1,".length);
    for (const version of ["v1b", "v10"]) {
      await expectRefused(
        swVerifier(),
        { ...h, "webhook-signature": `${version},${signature}` },
        BODY,
        "unsupported_version",
      );
    }
  });

  it("Stripe: spaces around items are ignored; a header with a timestamp and no signature at all is malformed", async () => {
    const verifier = createWebhookVerifier({ scheme: stripe, secret: "whsec_x", now: clockAt(NOW) });
    const { headers } = await signWebhook({ scheme: stripe, secret: "whsec_x", body: BODY, timestamp: NOW });
    const spaced = (headers["stripe-signature"] as string).split(",").join(" , ");
    await expectVerified(verifier, { "stripe-signature": spaced }, BODY);
    await expectRefused(verifier, { "stripe-signature": `t=${NOW}` }, BODY, "malformed_header");
  });

  it("Stripe and Paddle: an empty item (a trailing or doubled separator) or one without `=` is skipped, as stripe-node does", async () => {
    for (const [scheme, header, separator] of [
      [stripe, "stripe-signature", ","],
      [paddle, "paddle-signature", ";"],
    ] as const) {
      const verifier = createWebhookVerifier({ scheme, secret: "whsec_x", now: clockAt(NOW) });
      const { headers } = await signWebhook({ scheme, secret: "whsec_x", body: BODY, timestamp: NOW });
      const value = headers[header] as string;
      for (const spelled of [
        `${value}${separator}`,
        `${value}${separator} `,
        value.replace(separator, separator.repeat(2)),
        `${value}${separator}garbage`,
      ]) {
        await expectVerified(verifier, { [header]: spelled }, BODY);
      }
    }
  });

  it("a custom scheme with a separator looks at every signature in the list, not only the first", async () => {
    const scheme = hmacScheme({ name: "listed", separator: "," });
    const signed = await signWebhook({ scheme, secret: "partner-secret", body: BODY, timestamp: NOW });
    const valid = signed.headers["x-signature"] as string;
    const verifier = createWebhookVerifier({ scheme, secret: "partner-secret", now: clockAt(NOW) });
    await expectVerified(verifier, { ...signed.headers, "x-signature": `${"00".repeat(32)},${valid}` }, BODY);
  });
});

describe("what a verified delivery and its event say", () => {
  /** A Standard Webhooks Ed25519 pair: the `whsk_` signing key and its `whpk_` public key. */
  function ed25519Pair() {
    const { publicKey, privateKey } = generateKeyPairSync("ed25519");
    const x = Buffer.from(publicKey.export({ format: "jwk" }).x as string, "base64url");
    const d = Buffer.from(privateKey.export({ format: "jwk" }).d as string, "base64url");
    return { sign: `whsk_${Buffer.concat([d, x]).toString("base64")}`, verify: `whpk_${x.toString("base64")}` };
  }

  it("Ed25519 public keys rotate as HMAC secrets do: a delivery signed with any listed key is verified", async () => {
    const [previous, current] = [ed25519Pair(), ed25519Pair()];
    const verifier = swVerifier({ secret: [previous.verify, current.verify] });
    for (const pair of [previous, current]) {
      const signed = await signWebhook({
        scheme: standardWebhooks,
        secret: pair.sign,
        body: BODY,
        id: "msg_1",
        timestamp: NOW,
      });
      await expectVerified(verifier, signed.headers, BODY);
    }
  });

  it("the verified event says whether the id is covered: false for a GitHub delivery id", async () => {
    const events: WebhookEvent[] = [];
    const verifier = createWebhookVerifier({ scheme: github, secret: "s", onEvent: (e) => events.push(e) });
    const signed = await signWebhook({ scheme: github, secret: "s", body: BODY, id: "d-1" });
    await verifier.verify(signed.headers, BODY);
    expect(events).toEqual([expect.objectContaining({ type: "webhook.verified", id: "d-1", idCovered: false })]);
  });

  it("a delivery without an id (no id header, none in the payload) has none, and no covered one", async () => {
    const scheme = hmacScheme();
    const signed = await signWebhook({ scheme, secret: "partner-secret", body: BODY, timestamp: NOW });
    const verifier = createWebhookVerifier({ scheme, secret: "partner-secret", now: clockAt(NOW) });
    const result = await expectVerified(verifier, signed.headers, BODY);
    expect([result.id, result.idCovered]).toEqual([undefined, false]);
  });

  it.each([
    ["slack", "command=%2Fdeploy&text=prod", slack], // a slash command: no event_id
    ["stripe", '{"object":"event"}', stripe],
    ["stripe", "not JSON", stripe],
  ])("a %s delivery whose signed body carries no id has none, and no covered one: %s", async (_, body, scheme) => {
    const events: WebhookEvent[] = [];
    const signed = await signWebhook({ scheme, secret: "whsec_c2VjcmV0", body, timestamp: NOW });
    const verifier = createWebhookVerifier({
      scheme,
      secret: "whsec_c2VjcmV0",
      now: clockAt(NOW),
      onEvent: (e) => events.push(e),
    });
    const result = await expectVerified(verifier, signed.headers, body);
    expect([result.id, result.idCovered]).toEqual([undefined, false]);
    expect(events.length).toBeGreaterThan(0); // one for each way expectVerified verifies
    for (const event of events)
      expect(event).toMatchObject({ type: "webhook.verified", id: undefined, idCovered: false });
  });

  it("a custom scheme that signs its id refuses a delivery without the id header as missing_header", async () => {
    const scheme = hmacScheme({ name: "acme", idHeader: "acme-id", template: "{id}.{ts}.{body}" });
    const signed = await signWebhook({ scheme, secret: "partner-secret", body: BODY, id: "a-1", timestamp: NOW });
    const verifier = createWebhookVerifier({ scheme, secret: "partner-secret", now: clockAt(NOW) });
    const { "acme-id": _, ...withoutId } = signed.headers;
    await expectRefused(verifier, withoutId, BODY, "missing_header");
  });
});
