import { createHash, createHmac } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { crypto as nodeCrypto } from "../src/crypto/node.js";
import { constantTimeEqual } from "../src/crypto/port.js";
import { crypto as webCrypto } from "../src/crypto/web.js";

describe("constantTimeEqual (both ports' timingSafeEqual)", () => {
  it("is what the ports compare with", () => {
    expect(nodeCrypto.timingSafeEqual).toBe(constantTimeEqual);
    expect(webCrypto.timingSafeEqual).toBe(constantTimeEqual);
  });

  it("property: equal exactly when the bytes are; a change of any one bit of any byte, or of the length, is seen", () => {
    const bytes = fc.uint8Array({ minLength: 0, maxLength: 80 });
    fc.assert(
      fc.property(bytes, fc.nat(), fc.integer({ min: 0, max: 7 }), (a, at, bit) => {
        if (!constantTimeEqual(a, new Uint8Array(a))) return false;
        if (constantTimeEqual(a, a.subarray(0, a.length - 1)) !== (a.length === 0)) return false;
        if (a.length === 0) return true;
        const changed = new Uint8Array(a);
        changed[at % a.length] = (changed[at % a.length] as number) ^ (1 << bit);
        return !constantTimeEqual(a, changed) && !constantTimeEqual(changed, a);
      }),
      { numRuns: 2_000 },
    );
    fc.assert(fc.property(bytes, bytes, (a, b) => constantTimeEqual(a, b) === Buffer.from(a).equals(Buffer.from(b))));
  });
});

describe("node sha256HexSync", () => {
  it("property: for any parts (short and long texts of any UTF-16 units, bytes), the hash of their UTF-8 joined, as createHash gives it", () => {
    const anyCodeUnit = fc.integer({ min: 0, max: 0xffff }).map((unit) => String.fromCharCode(unit));
    const text = fc.oneof(
      fc.string({ maxLength: 80 }),
      fc.string({ unit: anyCodeUnit, maxLength: 80 }),
      fc.string({ unit: "binary", maxLength: 3000 }),
    );
    const part = fc.oneof(text, fc.uint8Array({ maxLength: 600 }));
    fc.assert(
      fc.property(fc.array(part, { minLength: 1, maxLength: 4 }), (parts) => {
        const expected = createHash("sha256");
        for (const p of parts) expected.update(p);
        return nodeCrypto.sha256HexSync?.(parts) === expected.digest("hex");
      }),
      { numRuns: 1_000 },
    );
  });
});

describe("node hmacSync", () => {
  const anyCodeUnit = fc.integer({ min: 0, max: 0xffff }).map((unit) => String.fromCharCode(unit));
  const text = fc.oneof(fc.string({ maxLength: 80 }), fc.string({ unit: anyCodeUnit, maxLength: 80 }));
  const part = fc.oneof(text, fc.uint8Array({ maxLength: 600 }));
  const algorithm = fc.constantFrom("sha1" as const, "sha256" as const, "sha512" as const);
  // Keys shorter than, as long as and longer than a block (64 bytes; 128 for SHA-512), empty included.
  const key = fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    fc.constantFrom(64, 128).chain((length) => fc.uint8Array({ minLength: length, maxLength: length })),
  );

  function expected(name: string, raw: Uint8Array, parts: ReadonlyArray<string | Uint8Array>): Buffer {
    const mac = createHmac(name, raw);
    for (const p of parts) mac.update(p);
    return mac.digest();
  }

  it("property: for any key and parts (texts of any UTF-16 units, bytes), the MAC createHmac gives", () => {
    fc.assert(
      fc.property(algorithm, key, fc.array(part, { maxLength: 5 }), (name, raw, parts) => {
        const mac = nodeCrypto.hmacSync?.(nodeCrypto.importHmacKey(name, raw), parts) as Uint8Array;
        return mac.byteLength === expected(name, raw, parts).byteLength && expected(name, raw, parts).equals(mac);
      }),
      { numRuns: 1_000 },
    );
  });

  it("a content larger than the scratch buffer, and calls one after another, each their own MAC", () => {
    const raw = new Uint8Array(32).fill(7);
    const key = nodeCrypto.importHmacKey("sha256", raw);
    const large = new Uint8Array(40_000).fill(1);
    const small = ["msg_1.", "1700000000.", new Uint8Array([1, 2, 3])];
    const first = nodeCrypto.hmacSync?.(key, small) as Uint8Array;
    const big = nodeCrypto.hmacSync?.(key, [large]) as Uint8Array;
    const again = nodeCrypto.hmacSync?.(key, ["other"]) as Uint8Array;
    expect(Buffer.from(first).equals(expected("sha256", raw, small))).toBe(true);
    expect(Buffer.from(big).equals(expected("sha256", raw, [large]))).toBe(true);
    expect(Buffer.from(again).equals(expected("sha256", raw, ["other"]))).toBe(true);
    // Each MAC is its own array: a later call does not change an earlier one.
    expect(Buffer.from(first).equals(expected("sha256", raw, small))).toBe(true);
  });
});
