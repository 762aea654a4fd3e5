/**
 * A request body's content coding decoded for idempotency (`decodeContent`): the one decoder
 * every adapter uses, so each gets the same payload and the same refusals on every runtime. The
 * adapters' parity over HTTP is the scenario table's; here the decoder's own edges, brotli
 * (decoded only where the runtime's `DecompressionStream` has it) among them.
 */
import { brotliCompressSync, deflateSync, gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { BodyError, contentCodings, decodeContent, problemResponse } from "../src/index.js";

const JSON_BODY = JSON.stringify({ amount: 42, note: "café" });
const text = (bytes: Uint8Array | BodyError) => (bytes instanceof BodyError ? bytes : new TextDecoder().decode(bytes));

/** Whether this runtime's `DecompressionStream` decodes brotli (Node 20 does not; later ones may). */
const runtimeDecodesBrotli = (() => {
  try {
    new DecompressionStream("brotli" as CompressionFormat);
    return true;
  } catch {
    return false;
  }
})();

describe("contentCodings", () => {
  it("lists the codings applied, lower case, without identity; none for a body sent as it is", () => {
    expect(contentCodings(undefined)).toEqual([]);
    expect(contentCodings(null)).toEqual([]);
    expect(contentCodings("")).toEqual([]);
    expect(contentCodings("identity")).toEqual([]);
    expect(contentCodings(" GZip , identity")).toEqual(["gzip"]);
    expect(contentCodings(["deflate", "gzip"])).toEqual(["deflate", "gzip"]);
  });
});

describe("decodeContent", () => {
  it("decodes gzip, x-gzip and deflate, in any case; a body sent as it is, or empty, is returned as it is", async () => {
    const bytes = new TextEncoder().encode(JSON_BODY);
    for (const [coding, sent] of [
      ["gzip", gzipSync(JSON_BODY)],
      ["x-gzip", gzipSync(JSON_BODY)],
      ["DEFLATE", deflateSync(JSON_BODY)],
      ["gzip, identity", gzipSync(JSON_BODY)],
    ] as const) {
      expect([coding, text(await decodeContent(sent, coding, 1024))]).toEqual([coding, JSON_BODY]);
    }
    for (const coding of [undefined, null, "identity"]) expect(await decodeContent(bytes, coding, 1024)).toBe(bytes);
    const empty = new Uint8Array(0);
    expect(await decodeContent(empty, "gzip", 1024)).toBe(empty);
  });

  it("refuses a coding not decoded, or two at once: 415 unsupported_content_encoding, Accept-Encoding the ones decoded", async () => {
    const accepted = runtimeDecodesBrotli ? "gzip, deflate, br" : "gzip, deflate";
    for (const [coding, sent] of [
      ["compress", JSON_BODY],
      ["x-unknown", JSON_BODY],
      ["deflate, gzip", gzipSync(deflateSync(JSON_BODY))],
    ] as const) {
      const refused = await decodeContent(new Uint8Array(Buffer.from(sent)), coding, 1024);
      expect(refused).toBeInstanceOf(BodyError);
      const error = refused as BodyError;
      expect([error.code, error.status, error.acceptEncoding]).toEqual(["unsupported_content_encoding", 415, accepted]);
      expect(error.message).toContain(`Content-Encoding: ${coding}`);
      expect(problemResponse(error).headers).toContainEqual(["accept-encoding", accepted]);
    }
  });

  it("decodes br where the runtime's DecompressionStream has brotli, and refuses it (415) where it has not", async () => {
    const decoded = await decodeContent(brotliCompressSync(JSON_BODY), "br", 1024);
    if (runtimeDecodesBrotli) expect(text(decoded)).toBe(JSON_BODY);
    else expect(decoded).toMatchObject({ code: "unsupported_content_encoding", status: 415 });
  });

  it("refuses data that is not what its coding says (corrupt, cut short, another coding's): 400 body_not_decodable", async () => {
    const gzip = gzipSync(JSON_BODY);
    for (const [coding, sent] of [
      ["gzip", Buffer.from("not gzip at all")],
      ["gzip", gzip.subarray(0, gzip.byteLength - 6)],
      ["deflate", gzip],
    ] as const) {
      const refused = await decodeContent(sent, coding, 1024);
      expect(refused).toMatchObject({ code: "body_not_decodable", status: 400 });
      expect((refused as BodyError).message).toBe(`the request body is not valid ${coding} data`);
    }
  });

  it("stops at the limit decoded: a small body that inflates without end (a zip bomb) is 413 body_too_large", async () => {
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024, 0x20)); // 64 MiB of spaces: about 64 KiB
    const refused = await decodeContent(bomb, "gzip", 1024 * 1024);
    expect(refused).toMatchObject({ code: "body_too_large", status: 413 });
    // Within the limit exactly, decoded whole.
    const exact = await decodeContent(gzipSync(Buffer.alloc(1024, 0x20)), "gzip", 1024);
    expect((exact as Uint8Array).byteLength).toBe(1024);
  });
});
