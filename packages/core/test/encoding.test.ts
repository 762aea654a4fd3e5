import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { copyBytesShared, encodeUtf8Shared } from "../src/encoding.js";
import { decodeBase64, encodeBase64, responseSize, unstorable, utf8 } from "../src/index.js";
import { storedByteLength } from "../src/store/validate.js";

const encoder = new TextEncoder();

describe("utf8.byteLength", () => {
  it("counts each width at its boundaries, surrogate pairs and lone surrogates (as U+FFFD) as TextEncoder writes them", () => {
    const samples = [
      "",
      "a\u007f",
      "\u0080\u07ff",
      "\u0800\uffff",
      "\ud800\udc00",
      "\udbff\udfff",
      "🔑",
      "\ud800",
      "\udc00",
      "x\ud800y",
      "\udc00\ud800",
      "\ud83d\ud83d\udd11",
      "attachment; filename=\"résumé.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf",
    ];
    for (const text of samples) expect(utf8.byteLength(text), JSON.stringify(text)).toBe(encoder.encode(text).length);
  });

  it("property: equals the length of TextEncoder's bytes, for any code points and any UTF-16 code units", () => {
    const anyCodeUnit = fc.integer({ min: 0, max: 0xffff }).map((unit) => String.fromCharCode(unit));
    const text = fc.oneof(fc.string({ unit: "binary" }), fc.string({ unit: anyCodeUnit }));
    fc.assert(
      fc.property(text, (value) => utf8.byteLength(value) === encoder.encode(value).length),
      { numRuns: 2_000 },
    );
  });
});

describe("encodeUtf8Shared", () => {
  it("property: each text's bytes are TextEncoder's, and stay so while thousands more are encoded after them (blocks filled and replaced)", () => {
    const anyCodeUnit = fc.integer({ min: 0, max: 0xffff }).map((unit) => String.fromCharCode(unit));
    const text = fc.oneof(
      fc.string({ unit: "binary", maxLength: 600 }),
      fc.string({ unit: anyCodeUnit, maxLength: 1400 }),
    );
    fc.assert(
      fc.property(fc.array(text, { minLength: 1, maxLength: 200 }), (texts) => {
        const encoded = texts.map((value) => encodeUtf8Shared(value));
        return texts.every((value, i) => Buffer.from(encoded[i] as Uint8Array).equals(encoder.encode(value)));
      }),
      { numRuns: 300 },
    );
  });

  it("cuts short texts from one block without overlap; a text too long for a block gets its own array", () => {
    const first = encodeUtf8Shared("a".repeat(70));
    const second = encodeUtf8Shared("é".repeat(40));
    expect(second.buffer).toBe(first.buffer);
    expect(second.byteOffset).toBeGreaterThanOrEqual(first.byteOffset + first.byteLength);
    const long = encodeUtf8Shared("x".repeat(5000));
    expect(long.byteLength).toBe(5000);
    expect(long.byteOffset).toBe(0);
    expect(long.buffer.byteLength).toBe(5000);
  });
});

describe("copyBytesShared", () => {
  it("property: each copy equals its source when made, and stays so while the source, later copies and other copies change", () => {
    // Sizes drawn over the whole range (not fast-check's small default), so blocks fill up and are replaced.
    const bytes = fc.uint8Array({ maxLength: 5_000, size: "max" });
    fc.assert(
      fc.property(fc.array(bytes, { minLength: 1, maxLength: 40, size: "max" }), (sources) => {
        const expected = sources.map((source) => Uint8Array.from(source));
        const copies = sources.map((source) => copyBytesShared(source));
        for (const source of sources) source.fill(0xaa);
        // Texts encoded after the copies are cut from the same blocks: they must not reach them either.
        encodeUtf8Shared("z".repeat(900));
        const written = copies.map((copy, i) => (i % 2 === 0 ? copy.fill(0x55) : copy));
        return written.every((copy, i) =>
          i % 2 === 0 ? copy.every((byte) => byte === 0x55) : Buffer.from(copy).equals(expected[i] as Uint8Array),
        );
      }),
      // Reported as found: shrinking lists of kilobyte arrays took minutes.
      { numRuns: 150, endOnFailure: true },
    );
  });

  it("cuts short copies from a shared block without overlap; a long one, or one V8 keeps in its heap, gets its own array", () => {
    const first = copyBytesShared(new Uint8Array(100).fill(1));
    const second = copyBytesShared(new Uint8Array(300).fill(2));
    expect(second.buffer).toBe(first.buffer);
    expect(second.byteOffset).toBeGreaterThanOrEqual(first.byteOffset + first.byteLength);
    for (const size of [5_000, 64, 0]) {
      const own = copyBytesShared(new Uint8Array(size).fill(3));
      expect([own.byteOffset, own.buffer.byteLength]).toEqual([0, size]);
    }
  });
});

describe("storedByteLength", () => {
  it("counts what a store writes; -1 for NUL and for a lone surrogate, which no store holds", () => {
    const samples: Array<[string, number]> = [
      ["", 0],
      ["content-type", 12],
      ["\u0001\u007f", 2],
      ["\u0080\u07ff", 4],
      ["\u0800\ud7ff\ue000\uffff", 12],
      ["\ud800\udc00\udbff\udfff", 8],
      ['attachment; filename="Übersicht 🔑.pdf"', 42],
      ["a\u0000b", -1],
      ["\u0000", -1],
      ["\ud800", -1],
      ["\udc00", -1],
      ["x\ud800y", -1],
      ["\udc00\ud800", -1],
      ["\ud83d\ud83d\udd11", -1],
      ["🔑\ud800", -1],
    ];
    for (const [text, bytes] of samples) expect(storedByteLength(text), JSON.stringify(text)).toBe(bytes);
  });

  it("property: TextEncoder's length for text a store holds, -1 exactly when `unstorable`", () => {
    const anyCodeUnit = fc.integer({ min: 0, max: 0xffff }).map((unit) => String.fromCharCode(unit));
    const text = fc.oneof(fc.string({ unit: "binary" }), fc.string({ unit: anyCodeUnit }));
    fc.assert(
      fc.property(text, (value) => storedByteLength(value) === (unstorable(value) ? -1 : encoder.encode(value).length)),
      { numRuns: 2_000 },
    );
  });
});

describe("responseSize", () => {
  it("counts header text in UTF-8 bytes, not UTF-16 code units", () => {
    const [name, value] = ["content-disposition", 'attachment; filename="Übersicht 🔑.pdf"'];
    const headers: Array<[string, string]> = [[name, value]];
    const body = new Uint8Array(10);
    const expected = 10 + encoder.encode(name).length + encoder.encode(value).length;
    expect(responseSize({ status: 200, headers, body })).toBe(expected);
  });
});

/**
 * What `decodeBase64` accepts, written another way: either alphabet (standard or URL-safe, even
 * mixed), padding only to a whole quad and never more than two, no length of 1 modulo 4, and the
 * canonical spelling only (the unused low bits of the last character zero): Node's lenient
 * decoder, with the text checked by encoding the bytes back.
 */
function referenceBase64(text: string): Uint8Array | undefined {
  const unpadded = text.replace(/={1,2}$/, "");
  if (!/^[A-Za-z0-9+/_-]*$/.test(unpadded) || unpadded.length % 4 === 1) return undefined;
  if (unpadded.length !== text.length && text.length % 4 !== 0) return undefined;
  const standard = unpadded.replaceAll("-", "+").replaceAll("_", "/");
  const bytes = Buffer.from(standard, "base64");
  if (bytes.toString("base64").replace(/=+$/, "") !== standard) return undefined;
  return new Uint8Array(bytes);
}

describe("decodeBase64", () => {
  it("decodes what encodeBase64 made, padded or not, in either alphabet", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        const padded = encodeBase64(bytes);
        const unpadded = padded.replace(/=+$/, "");
        const urlSafe = unpadded.replaceAll("+", "-").replaceAll("/", "_");
        for (const text of [padded, unpadded, urlSafe]) expect(decodeBase64(text)).toEqual(bytes);
      }),
      { numRuns: 1000 },
    );
  });

  it("accepts exactly the texts the reference accepts, to the same bytes", () => {
    const alphabet = fc.constantFrom(..."ABCXYZabcxyz0189+/-_=".split(""), "A", "Q", "g", "w", "\u00e9", "\u0141", " ");
    const base64ish = fc.oneof(
      fc.array(alphabet, { maxLength: 14 }).map((units) => units.join("")),
      fc.uint8Array({ maxLength: 20 }).map((bytes) => encodeBase64(bytes)),
      fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 20 }), fc.nat(), alphabet).map(([bytes, at, unit]) => {
        const text = encodeBase64(bytes);
        const i = at % text.length;
        return text.slice(0, i) + unit + text.slice(i + 1);
      }),
    );
    fc.assert(
      fc.property(base64ish, (text) => {
        expect(decodeBase64(text)).toEqual(referenceBase64(text));
      }),
      { numRuns: 5000 },
    );
  });

  it("decodes a range of a longer text as it decodes that range sliced out", () => {
    // Surroundings of padding and base64 characters: neither may be read as part of the range.
    const around = fc.array(fc.constantFrom("=", "A", "Q", ",", " "), { maxLength: 4 }).map((units) => units.join(""));
    const texts = fc.oneof(
      fc.uint8Array({ maxLength: 40 }).map((bytes) => encodeBase64(bytes)),
      fc.array(fc.constantFrom(..."AQgw+/-_= \u00e9".split("")), { maxLength: 10 }).map((units) => units.join("")),
    );
    fc.assert(
      fc.property(around, texts, around, (before, text, after) => {
        const start = before.length;
        const decoded = decodeBase64(before + text + after, start, start + text.length);
        expect([text, decoded]).toEqual([text, referenceBase64(text)]);
      }),
      { numRuns: 3000 },
    );
  });

  it("refuses the samples at each rule's edge", () => {
    for (const text of ["A", "AAAAA", "AB=", "A===", "AA===", "QQ=", "QR==", "QUJ=", "QU I", "QUJ\u00e9", "Q\u0141=="])
      expect([text, decodeBase64(text)]).toEqual([text, undefined]);
    for (const [text, bytes] of [
      ["", []],
      ["QQ", [65]],
      ["QQ==", [65]],
      ["QUI", [65, 66]],
      ["QUI=", [65, 66]],
      ["QUJD", [65, 66, 67]],
      ["-_-_", [251, 255, 191]],
      ["+/+/", [251, 255, 191]],
    ] as const)
      expect([text, decodeBase64(text)]).toEqual([text, new Uint8Array(bytes)]);
  });
});
