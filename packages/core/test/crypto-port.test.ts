import { createHash } from "node:crypto";
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
