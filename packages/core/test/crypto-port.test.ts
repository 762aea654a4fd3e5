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
