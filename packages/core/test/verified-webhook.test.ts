/**
 * A `VerifiedWebhook` is a delivery whose signature matched, and only a verifier makes one:
 * code outside core cannot construct one (or pass `instanceof` with a look-alike) to hand a
 * handler a delivery nobody verified. And a secret given as `scheme` by mistake is not printed.
 */
import { describe, expect, it } from "vitest";
import {
  answerZoomUrlValidation,
  createWebhookReceiver,
  createWebhookVerifier,
  deliveryKey,
  github,
  InterlockConfigError,
  linear,
  MemoryStore,
  signWebhook,
  standardWebhooks,
  stripe,
  VerifiedWebhook,
  type WebhookScheme,
  zoom,
} from "../src/index.js";
import { newVerifiedWebhook } from "../src/webhooks/verified.js";

const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const parsed = { id: "evt_forged", timestamp: undefined, timestampMs: undefined, signatures: [] };
const body = new TextEncoder().encode('{"id":"evt_forged"}');

describe("VerifiedWebhook", () => {
  it("cannot be constructed outside core: new throws a TypeError, with any arguments", () => {
    const Forge = VerifiedWebhook as unknown as new (...args: unknown[]) => unknown;
    expect(() => new Forge(stripe, parsed, body, undefined)).toThrow(TypeError);
    expect(() => new Forge(Symbol("made by a verifier"), stripe, parsed, body, undefined)).toThrow(
      /cannot be constructed/,
    );
    class Subclass extends (VerifiedWebhook as unknown as new (...args: unknown[]) => object) {}
    expect(() => new Subclass(stripe, parsed, body, undefined)).toThrow(TypeError);
  });

  it("is not the class of an object given its prototype", () => {
    const lookalike = Object.assign(Object.create(VerifiedWebhook.prototype), { ok: true, body });
    expect(lookalike instanceof VerifiedWebhook).toBe(false);
    expect({ ok: true, id: "evt_forged" } instanceof VerifiedWebhook).toBe(false);
    expect((null as unknown) instanceof VerifiedWebhook).toBe(false);
  });

  it("is what verify, check and a receiver hand out, and instanceof says so", async () => {
    const verifier = createWebhookVerifier({ scheme: standardWebhooks, secret: SECRET });
    const signed = await signWebhook({ scheme: standardWebhooks, secret: SECRET, body: '{"type":"x"}', id: "msg_1" });
    const verified = await verifier.verify(signed.headers, signed.body);
    expect(verified).toBeInstanceOf(VerifiedWebhook);
    expect(verified).toMatchObject({ ok: true, id: "msg_1", scheme: "standard-webhooks", payload: { type: "x" } });
    expect(await verifier.check(signed.headers, signed.body)).toBeInstanceOf(VerifiedWebhook);
    const receiver = createWebhookReceiver({ scheme: standardWebhooks, secret: SECRET, store: new MemoryStore() });
    const decision = await receiver.begin(signed.headers, signed.body);
    expect(decision.action === "process" && decision.event instanceof VerifiedWebhook).toBe(true);
  });
});

describe("the scheme option", () => {
  it.each([
    ["a string (a secret given as scheme)", SECRET, "got a string"],
    ["undefined (a misspelt lookup)", undefined, "got undefined"],
    ["an object that is no scheme", { name: SECRET }, "got an object"],
  ])("given %s, the error names its type, never its value", (_, scheme, got) => {
    let thrown: unknown;
    try {
      createWebhookVerifier({ scheme: scheme as never, secret: "s" });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(InterlockConfigError);
    expect((thrown as Error).message).toContain(got);
    expect((thrown as Error).message).toContain("hmacScheme(…)");
    expect((thrown as Error).message).not.toContain("MfKQ9r8");
  });
});

/**
 * The delivery class's source loaded as another module: a second `VerifiedWebhook`, as core's
 * other build has (an ESM app with a CommonJS adapter). The Zoom challenge across builds is
 * answered over HTTP in the Express adapter's dual-copy test, against both real builds.
 */
const ANOTHER_COPY: string = "../src/webhooks/verified.js?another-copy";

describe("a delivery of another copy of core (its ESM and CommonJS builds both loaded)", () => {
  // Linear keys a delivery on its body less the `webhookTimestamp` it signs afresh on each retry.
  const linearBody = new TextEncoder().encode('{"action":"create","webhookTimestamp":1700000000000}');
  const linearParsed = { id: "d-1", timestamp: undefined, timestampMs: undefined, signatures: [] };

  it("is a VerifiedWebhook of this copy, and a delivery of this copy is one of the other's", async () => {
    const other = (await import(ANOTHER_COPY)) as typeof import("../src/webhooks/verified.js");
    expect(other.VerifiedWebhook).not.toBe(VerifiedWebhook);
    const theirs = other.newVerifiedWebhook(linear, linearParsed, linearBody, undefined);
    expect(theirs).toBeInstanceOf(VerifiedWebhook);
    expect(newVerifiedWebhook(linear, linearParsed, linearBody, undefined)).toBeInstanceOf(other.VerifiedWebhook);
  });

  it("an object given the other copy's prototype is a delivery of neither copy", async () => {
    const other = (await import(ANOTHER_COPY)) as typeof import("../src/webhooks/verified.js");
    const lookalike = Object.assign(Object.create(other.VerifiedWebhook.prototype), { ok: true, body: linearBody });
    expect(lookalike instanceof VerifiedWebhook).toBe(false);
    expect(lookalike instanceof other.VerifiedWebhook).toBe(false);
  });

  it("deliveryKey keys it on what its scheme says identifies the delivery, as it keys one of this copy", async () => {
    const other = (await import(ANOTHER_COPY)) as typeof import("../src/webhooks/verified.js");
    const theirs = other.newVerifiedWebhook(linear, linearParsed, linearBody, undefined);
    const ours = newVerifiedWebhook(linear, linearParsed, linearBody, undefined);
    const retried = newVerifiedWebhook(
      linear,
      linearParsed,
      new TextEncoder().encode('{"action":"create","webhookTimestamp":1700000060000}'),
      undefined,
    );
    expect(await deliveryKey(theirs)).toEqual(await deliveryKey(ours));
    expect(await deliveryKey(theirs)).toEqual(await deliveryKey(retried));
  });
});

/**
 * Zoom's challenge is answered with an HMAC under the app's key: of the token in the bytes the
 * delivery verified, and only for a delivery the zoom scheme verified. Code handed a delivery
 * (a plugin, a shared handler library) but not the secret can relabel it, shadow its `payload`,
 * edit that payload or write to its `body`: were any of these answered, it would have the key
 * sign a text of its choosing, such as another delivery's signed content, and forge deliveries
 * the app's own verifier accepts. Across copies of core, the Express adapter's dual-copy test.
 */
describe("answerZoomUrlValidation signs what a Zoom delivery verified, nothing its holder chose", () => {
  const ZOOM_TOKEN = "zoom-secret-token-0123456789";
  const encode = (text: string) => new TextEncoder().encode(text);
  // What a holder would have the key sign: a delivery's signed content, `v0:{ts}:{body}` for Zoom.
  const forgedContent = 'v0:1700000000:{"event":"meeting.deleted","payload":{"object":{"id":"1"}}}';
  const challengeOf = (plainToken: string) => ({ event: "endpoint.url_validation", payload: { plainToken } });

  async function verified(scheme: WebhookScheme, secret: string, body: string, id?: string): Promise<VerifiedWebhook> {
    const signed = await signWebhook({ scheme, secret, body, ...(id === undefined ? {} : { id }) });
    return createWebhookVerifier({ scheme, secret }).verify(signed.headers, signed.body);
  }

  it("a delivery another scheme verified, relabelled zoom and its payload shadowed, is refused with a typed configuration error", async () => {
    const delivery = await verified(github, "gh-webhook-secret-0123456789", '{"action":"opened"}', "d-1");
    Object.assign(delivery, { scheme: "zoom" });
    Object.defineProperty(delivery, "payload", { value: challengeOf(forgedContent) });
    await expect(answerZoomUrlValidation(delivery)).rejects.toThrow(InterlockConfigError);
    // Its bytes replaced by a challenge's too: what it verified is still GitHub's.
    Object.assign(delivery, { body: encode(JSON.stringify(challengeOf(forgedContent))) });
    await expect(answerZoomUrlValidation(delivery)).rejects.toThrow(InterlockConfigError);
  });

  it("a Zoom event whose payload was edited into a challenge, or whose bytes were, gets no answer", async () => {
    const body = JSON.stringify({ event: "meeting.started", payload: { object: { id: "x".repeat(128) } } });
    const edited = await verified(zoom, ZOOM_TOKEN, body);
    Object.assign(edited.payload as object, challengeOf(forgedContent));
    expect(await answerZoomUrlValidation(edited)).toBeUndefined();

    const shadowed = await verified(zoom, ZOOM_TOKEN, body);
    Object.defineProperty(shadowed, "payload", { value: challengeOf(forgedContent) });
    expect(await answerZoomUrlValidation(shadowed)).toBeUndefined();

    // The verified array written to in place before its payload was decoded (the same length:
    // JSON allows the trailing spaces), and another array put in its place.
    const rewritten = await verified(zoom, ZOOM_TOKEN, body);
    rewritten.body.set(encode(JSON.stringify(challengeOf(forgedContent)).padEnd(body.length)));
    expect(await answerZoomUrlValidation(rewritten)).toBeUndefined();
    const replaced = await verified(zoom, ZOOM_TOKEN, body);
    Object.assign(replaced, { body: encode(JSON.stringify(challengeOf(forgedContent))) });
    expect(await answerZoomUrlValidation(replaced)).toBeUndefined();
  });

  it("a genuine challenge is answered with its own token, whatever its payload has become, and its payload stays readable", async () => {
    const body = JSON.stringify(challengeOf("qgg8vlvZRS6UYooatFL8Aw"));
    const expected = await answerZoomUrlValidation(JSON.parse(body), ZOOM_TOKEN);
    const delivery = await verified(zoom, ZOOM_TOKEN, body);
    expect(await answerZoomUrlValidation(delivery)).toEqual(expected);
    expect(delivery.payload).toEqual(JSON.parse(body));
    (delivery.payload as { payload: { plainToken: string } }).payload.plainToken = forgedContent;
    delivery.body.fill(0x20);
    expect(await answerZoomUrlValidation(delivery)).toEqual(expected);
  });

  it("a Zoom delivery answered, then read, is decoded once: the answer's decoding is its payload", async () => {
    let decoded = 0;
    const counting = {
      ...zoom,
      decodePayload(bytes: Uint8Array) {
        decoded++;
        return JSON.parse(new TextDecoder().decode(bytes));
      },
    };
    const delivery = await verified(counting, ZOOM_TOKEN, '{"event":"meeting.started","payload":{}}');
    expect(await answerZoomUrlValidation(delivery)).toBeUndefined();
    expect(delivery.payload).toEqual({ event: "meeting.started", payload: {} });
    expect(decoded).toBe(1);
  });
});
