/**
 * Keeping one sender's deliveries, and one caller's idempotent requests, apart from another's:
 * receivers that would share de-duplication keys on one store are reported at start-up,
 * scheme names cannot run into the ids after them in a key, and a `principal` function that
 * names nobody is reported the first time it does.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ANONYMOUS_SCOPE_WARNING, SHARED_DELIVERY_KEYS_WARNING } from "../src/events.js";
import {
  createIdempotency,
  createWebhookReceiver,
  hmacScheme,
  type IdempotencyRequest,
  InterlockConfigError,
  type InterlockStore,
  MemoryStore,
  type Principal,
  schemes,
  signWebhook,
  standardWebhooks,
  stripe,
  svix,
  type WebhookScheme,
} from "../src/index.js";
import { keySpacesNoted, noteKeySpace } from "../src/webhooks/shared-keys.js";

/** Every receiver made so far noted (Web Crypto's digests are asynchronous), and its warning (emitted on the next tick) heard. */
const settle = async () => {
  await keySpacesNoted();
  await new Promise((resolve) => setImmediate(resolve));
};

/** The Interlock warnings the process emits while a test runs, by code. */
let warnings: (Error & { code?: string })[] = [];
const listener = (warning: Error) => warnings.push(warning);
beforeEach(() => {
  warnings = [];
  process.on("warning", listener);
});
afterEach(() => {
  process.off("warning", listener);
});
const warned = (code: string) => warnings.filter((w) => w.name === "InterlockWarning" && w.code === code);

const WHSEC_A = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WHSEC_B = "whsec_dGVuYW50LXR3by1rZXktMDEyMzQ1Njc4OQ==";

function receiverOf(scheme: WebhookScheme, secret: string | string[], store: InterlockStore, namespace?: string) {
  return createWebhookReceiver({ scheme, secret, store, ...(namespace === undefined ? {} : { namespace }) });
}

describe("receivers sharing a store's delivery keys", () => {
  it("two receivers of one scheme with different secrets and no namespace are reported once, naming the fix", async () => {
    const store = new MemoryStore();
    receiverOf(stripe, "whsec_account_one", store);
    receiverOf(stripe, "whsec_account_two", store);
    receiverOf(stripe, "whsec_account_three", store);
    await settle();
    const shared = warned(SHARED_DELIVERY_KEYS_WARNING);
    expect(shared).toHaveLength(1);
    expect(shared[0]?.message).toContain('scheme "stripe"');
    expect(shared[0]?.message).toContain("wh:stripe:<id>");
    expect(shared[0]?.message).toContain("namespace");
    // Secrets never appear in what is reported.
    expect(shared[0]?.message).not.toMatch(/account_(one|two|three)/);
  });

  it("is what the audit's tenants hit: the second tenant's delivery is a duplicate, and said so at start-up", async () => {
    const store = new MemoryStore();
    const scheme = hmacScheme({ name: "partner", idHeader: "x-id", template: "{id}.{ts}.{body}" });
    const one = receiverOf(scheme, "tenant-one-secret", store);
    const two = receiverOf(scheme, "tenant-two-secret", store);
    await settle();
    expect(warned(SHARED_DELIVERY_KEYS_WARNING)).toHaveLength(1);
    const first = await signWebhook({ scheme, secret: "tenant-one-secret", body: '{"tenant":1}', id: "42" });
    const second = await signWebhook({ scheme, secret: "tenant-two-secret", body: '{"tenant":2}', id: "42" });
    expect((await one.receive(first.headers, first.body, () => 1)).outcome).toBe("processed");
    // The behaviour the warning is about (namespaces are the fix, below).
    expect((await two.receive(second.headers, second.body, () => 2)).outcome).toBe("duplicate");
  });

  it("the same namespace with different secrets is reported too; distinct namespaces are not", async () => {
    const store = new MemoryStore();
    receiverOf(standardWebhooks, WHSEC_A, store, "t1");
    receiverOf(standardWebhooks, WHSEC_B, store, "t2");
    await settle();
    expect(warned(SHARED_DELIVERY_KEYS_WARNING)).toHaveLength(0);
    receiverOf(standardWebhooks, WHSEC_B, store, "t1");
    await settle();
    const shared = warned(SHARED_DELIVERY_KEYS_WARNING);
    expect(shared).toHaveLength(1);
    expect(shared[0]?.message).toContain('the same namespace "t1"');
    expect(shared[0]?.message).toContain("wh@t1:standard-webhooks:<id>");
  });

  it("a rotation (a secret in common) and copies of one receiver are not reported", async () => {
    const store = new MemoryStore();
    receiverOf(standardWebhooks, WHSEC_A, store);
    receiverOf(standardWebhooks, WHSEC_A, store);
    receiverOf(standardWebhooks, [WHSEC_B, WHSEC_A], store); // rotating: new, old
    receiverOf(standardWebhooks, WHSEC_B, store); // the old one retired
    // The same key written another way (without its prefix) is the same key.
    receiverOf(standardWebhooks, WHSEC_A.slice("whsec_".length), store);
    await settle();
    expect(warned(SHARED_DELIVERY_KEYS_WARNING)).toHaveLength(0);
  });

  it("receivers are compared in the order they were made, whatever order their digests come back in (Web Crypto)", async () => {
    // [old], [new, old], [new]: a rotation. [new]'s digest back before [new, old]'s must not make
    // it look like a stranger to [old].
    const later = (digests: string[], ms: number) =>
      new Promise<string[]>((resolve) => setTimeout(() => resolve(digests), ms));
    const store = new MemoryStore();
    noteKeySpace(store, "wh:acme", Promise.resolve(["old"]), "acme", undefined);
    noteKeySpace(store, "wh:acme", later(["new", "old"], 40), "acme", undefined);
    noteKeySpace(store, "wh:acme", later(["new"], 20), "acme", undefined);
    noteKeySpace(store, "wh:acme", ["new"], "acme", undefined); // hashed at once: waits its turn too
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(warned(SHARED_DELIVERY_KEYS_WARNING)).toHaveLength(0);
    // A stranger made after them all is still reported, once.
    noteKeySpace(store, "wh:acme", later(["other"], 10), "acme", undefined);
    noteKeySpace(store, "wh:acme", ["another"], "acme", undefined);
    await settle();
    expect(warned(SHARED_DELIVERY_KEYS_WARNING)).toHaveLength(1);
  });

  it("receivers on other store objects or of other schemes are not compared", async () => {
    receiverOf(stripe, "whsec_one", new MemoryStore());
    receiverOf(stripe, "whsec_two", new MemoryStore());
    const store = new MemoryStore();
    receiverOf(standardWebhooks, WHSEC_A, store);
    receiverOf(stripe, "whsec_three", store);
    await settle();
    expect(warned(SHARED_DELIVERY_KEYS_WARNING)).toHaveLength(0);
  });

  it("Svix shares Standard Webhooks' name, so its key space too", async () => {
    const store = new MemoryStore();
    receiverOf(standardWebhooks, WHSEC_A, store);
    receiverOf(svix, WHSEC_B, store);
    await settle();
    expect(warned(SHARED_DELIVERY_KEYS_WARNING)).toHaveLength(1);
  });

  it("two custom providers both left at hmacScheme's default name, with different secrets, are reported", async () => {
    const store = new MemoryStore();
    const vendorX = hmacScheme({
      idHeader: "x-vendor-x-id",
      signatureHeader: "x-vx-sig",
      template: "{id}:{ts}:{body}",
    });
    const vendorY = hmacScheme({
      idHeader: "x-vendor-y-id",
      signatureHeader: "x-vy-sig",
      template: "{ts}.{id}.{body}",
    });
    expect([vendorX.name, vendorY.name]).toEqual(["generic", "generic"]);
    receiverOf(vendorX, "vx-secret", store);
    receiverOf(vendorY, "vy-secret", store);
    await settle();
    const shared = warned(SHARED_DELIVERY_KEYS_WARNING);
    expect(shared).toHaveLength(1);
    expect(shared[0]?.message).toContain('scheme "generic"');
    // Named apart, they are two key spaces.
    const other = new MemoryStore();
    receiverOf(hmacScheme({ name: "vendor-x" }), "vx-secret", other);
    receiverOf(hmacScheme({ name: "vendor-y" }), "vy-secret", other);
    await settle();
    expect(warned(SHARED_DELIVERY_KEYS_WARNING)).toHaveLength(1);
  });
});

describe("scheme names in delivery keys", () => {
  it.each(["acme:eu", "", "x".repeat(65), "a b", "caf\u00e9"])("hmacScheme refuses the name %j", (name) => {
    expect(() => hmacScheme({ name })).toThrow(InterlockConfigError);
  });

  it("a receiver refuses any scheme object whose name holds a colon: acme + eu:7 would be acme:eu + 7", () => {
    const acmeEu: WebhookScheme = { ...stripe, name: "acme:eu" };
    expect(() => receiverOf(acmeEu, "whsec_x", new MemoryStore())).toThrow(InterlockConfigError);
    expect(() => receiverOf(acmeEu, "whsec_x", new MemoryStore())).toThrow(/scheme's name must be .*"acme:eu"/);
    // A name refused for anything else is named by its length only: it may be a secret put there.
    const spaced: WebhookScheme = { ...stripe, name: "s3cr3t with spaces" };
    expect(() => receiverOf(spaced, "whsec_x", new MemoryStore())).toThrow(/, not a string of 18 characters$/);
  });

  it.each(Object.entries(schemes))("the preset %s has a name a receiver takes", (_, scheme) => {
    // 32 "a"s: text every preset takes as a secret (base64 for Standard Webhooks).
    expect(() => receiverOf(scheme, "a".repeat(32), new MemoryStore())).not.toThrow();
  });
});

describe("a principal function that names nobody", () => {
  const request = (key: string): IdempotencyRequest => ({
    method: "POST",
    route: "/orders",
    path: "/orders",
    headers: { "idempotency-key": key },
    body: "{}",
  });

  it.each([
    ["undefined", undefined],
    ["null", null],
    ['""', ""],
  ])("returning %s is reported once per engine, saying the requests share one scope", async (_, nobody) => {
    const engine = createIdempotency({ store: new MemoryStore(), principal: () => nobody as Principal });
    for (const key of ["k1", "k2", "k3"]) expect(await engine.begin(request(key))).toMatchObject({ action: "execute" });
    await settle();
    const anonymous = warned(ANONYMOUS_SCOPE_WARNING);
    expect(anonymous).toHaveLength(1);
    expect(anonymous[0]?.message).toContain("shared anonymous scope");
    expect(anonymous[0]?.message).toContain("Authenticate before the idempotency middleware");
    // Another engine (another middleware) reports its own.
    await createIdempotency({ store: new MemoryStore(), principal: () => nobody as Principal }).begin(request("k"));
    await settle();
    expect(warned(ANONYMOUS_SCOPE_WARNING)).toHaveLength(2);
  });

  it("a promise of nobody is reported too", async () => {
    const engine = createIdempotency({ store: new MemoryStore(), principal: async () => null });
    await engine.begin(request("k"));
    await settle();
    expect(warned(ANONYMOUS_SCOPE_WARNING)).toHaveLength(1);
  });

  it("a principal named, or a key space shared on purpose (principal: false), is not reported", async () => {
    const named = createIdempotency({ store: new MemoryStore(), principal: () => "user-1" });
    const numbered = createIdempotency({ store: new MemoryStore(), principal: async () => 0 });
    const shared = createIdempotency({ store: new MemoryStore(), principal: false });
    for (const engine of [named, numbered, shared]) await engine.begin(request("k"));
    await settle();
    expect(warned(ANONYMOUS_SCOPE_WARNING)).toHaveLength(0);
  });
});
