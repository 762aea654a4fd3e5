/**
 * A misspelt option is refused at set-up, by every factory in core, with the name it most
 * likely meant: ignored, it would leave the default in force (keys shared by every user for a
 * misspelt `principal`, keyless requests let through for a misspelt `required`).
 */
import { describe, expect, it } from "vitest";
import {
  assertOptionNames,
  createIdempotency,
  createWebhookReceiver,
  createWebhookVerifier,
  hmacScheme,
  InterlockConfigError,
  linearScheme,
  memoryStore,
  runIdempotent,
  signWebhook,
  signWebhookSync,
  standardWebhooks,
} from "../src/index.js";

const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const store = memoryStore();

/** What a factory throws for `options`: an `InterlockConfigError`, whose message is returned. */
function refusal(make: () => unknown): string {
  try {
    make();
  } catch (error) {
    expect(error).toBeInstanceOf(InterlockConfigError);
    return (error as Error).message;
  }
  throw new Error("the options were accepted");
}

// Options of a shape TypeScript would refuse in a literal, as a config object built elsewhere passes them.
const loose = <T>(options: Record<string, unknown>) => options as T;

describe("assertOptionNames", () => {
  it("passes known names, and nothing given", () => {
    expect(() => assertOptionNames("f()", { a: 1, b: undefined }, ["a", "b"])).not.toThrow();
    expect(() => assertOptionNames("f()", undefined, ["a"])).not.toThrow();
    expect(() => assertOptionNames("f()", { b: 1 }, ["a"], ["b"])).not.toThrow();
  });

  it("refuses what is not an options object", () => {
    expect(refusal(() => memoryStore("refuse" as never))).toBe("memoryStore() takes an options object, not a string");
  });

  it("refuses an unknown name, even one set to undefined", () => {
    expect(refusal(() => assertOptionNames("f()", { c: undefined }, ["a"]))).toBe('f() has no option "c"');
  });

  it("names the option meant: the same but for case, or within two edits", () => {
    const names = ["principal", "retentionMs", "lockTtlMs"];
    expect(refusal(() => assertOptionNames("f()", { Principal: 1 }, names))).toBe(
      'f() has no option "Principal": did you mean "principal"?',
    );
    expect(refusal(() => assertOptionNames("f()", { principl: 1 }, names))).toContain('did you mean "principal"?');
    expect(refusal(() => assertOptionNames("f()", { retentionMS: 1 }, names))).toContain('did you mean "retentionMs"?');
    expect(refusal(() => assertOptionNames("f()", { retention: 1 }, names))).toContain('did you mean "retentionMs"?');
    // Too short to be taken for a slip of anything.
    expect(refusal(() => assertOptionNames("f()", { ttl: 1 }, ["url"]))).toBe('f() has no option "ttl"');
  });

  it("names the one known name that starts with the unknown one: an option renamed to carry its unit", () => {
    const names = ["toleranceSeconds", "maxBodyBytes", "maxSignatures"];
    expect(refusal(() => assertOptionNames("f()", { tolerance: 300 }, names))).toBe(
      'f() has no option "tolerance": did you mean "toleranceSeconds"?',
    );
    expect(refusal(() => assertOptionNames("f()", { Tolerance: 300 }, names))).toContain(
      'did you mean "toleranceSeconds"?',
    );
    expect(refusal(() => assertOptionNames("f()", { header: "Key" }, ["headerName", "methods"]))).toContain(
      'did you mean "headerName"?',
    );
    // Two names start with it: either would be a guess. And two letters say too little.
    expect(refusal(() => assertOptionNames("f()", { max: 1 }, names))).toBe('f() has no option "max"');
    expect(refusal(() => assertOptionNames("f()", { to: 1 }, names))).toBe('f() has no option "to"');
  });

  it("looks for the name meant in every list", () => {
    expect(refusal(() => assertOptionNames("f()", { bodylimit: 1 }, ["store"], ["bodyLimit"]))).toContain(
      'did you mean "bodyLimit"?',
    );
  });
});

describe("every factory in core refuses a misspelt option", () => {
  it("createIdempotency", () => {
    const options = loose<Parameters<typeof createIdempotency>[0]>({ store, principl: () => "user" });
    expect(refusal(() => createIdempotency(options))).toBe(
      'createIdempotency() has no option "principl": did you mean "principal"?',
    );
  });

  it("createWebhookReceiver, for its own options and its verifier's", () => {
    const base = { scheme: standardWebhooks, secret: SECRET, store };
    const receiver = (extra: Record<string, unknown>) =>
      createWebhookReceiver(loose<Parameters<typeof createWebhookReceiver>[0]>({ ...base, ...extra }));
    expect(refusal(() => receiver({ namespce: "a" }))).toContain('"namespce": did you mean "namespace"?');
    expect(refusal(() => receiver({ tolerance: 60 }))).toContain('"tolerance": did you mean "toleranceSeconds"?');
    expect(refusal(() => receiver({ toleranceSecond: 60 }))).toContain('did you mean "toleranceSeconds"?');
    expect(() => receiver({ toleranceSeconds: 60, namespace: "a", onEvent: () => {} })).not.toThrow();
  });

  it("createWebhookVerifier, which takes no store", () => {
    const options = loose<Parameters<typeof createWebhookVerifier>[0]>({
      scheme: standardWebhooks,
      secret: SECRET,
      store,
    });
    expect(refusal(() => createWebhookVerifier(options))).toBe('createWebhookVerifier() has no option "store"');
  });

  it("memoryStore, hmacScheme, linearScheme", () => {
    expect(refusal(() => memoryStore(loose({ maxEntires: 10 })))).toContain('did you mean "maxEntries"?');
    expect(refusal(() => hmacScheme(loose({ signatureHeaders: "x-sig" })))).toContain(
      'did you mean "signatureHeader"?',
    );
    expect(refusal(() => linearScheme(loose({ requireTimestamps: false })))).toContain(
      'did you mean "requireTimestamp"?',
    );
  });

  it("signWebhook and signWebhookSync", async () => {
    const options = loose<Parameters<typeof signWebhook>[0]>({
      scheme: standardWebhooks,
      secret: SECRET,
      body: "{}",
      ts: 1,
    });
    expect(refusal(() => signWebhookSync(options))).toBe('signWebhookSync() has no option "ts"');
    await expect(signWebhook(options)).rejects.toThrow(InterlockConfigError);
  });

  it("runIdempotent, before it claims anything", async () => {
    let ran = false;
    const options = loose<Parameters<typeof runIdempotent>[0]>({ store, key: "k1", retention: 1000 });
    await expect(
      runIdempotent(options, () => {
        ran = true;
      }),
    ).rejects.toThrow('runIdempotent() has no option "retention"');
    expect(ran).toBe(false);
  });
});
