/**
 * A request body's content coding (`Content-Encoding`, RFC 9110 §8.4): the codings a header
 * names, and a body decoded from the one it was sent with. Decoded on web standards
 * (`DecompressionStream`), so every adapter, on every runtime, fingerprints the same payload
 * and refuses the same bodies alike.
 */
import { BodyError } from "./errors.js";
import { readStreamUpTo } from "./web-body.js";

/** A `Content-Encoding` value as a framework gives it: Node's string (or list), or a `Headers.get`. */
export type ContentEncodingValue = string | readonly string[] | null | undefined;

/**
 * The codings a `Content-Encoding` value names, lower case, in the order they were applied,
 * `identity` (no coding) left out: empty for a body sent as it is.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function contentCodings(value: ContentEncodingValue): string[] {
  // Nearly every request sends none: answered without building a list to split.
  if (value === undefined || value === null || value === "" || value === "identity") return [];
  return (typeof value === "string" ? value : value.join(","))
    .split(",")
    .map((coding) => coding.trim().toLowerCase())
    .filter((coding) => coding !== "" && coding !== "identity");
}

/** The `DecompressionStream` format of each coding decoded (`x-gzip` is `gzip`: RFC 9110 §8.4.1.3). */
const FORMATS: Readonly<Record<string, string>> = { gzip: "gzip", "x-gzip": "gzip", deflate: "deflate", br: "brotli" };

/** A decoder for `coding`; undefined for one not decoded here, or `br` where the runtime has no brotli format (Node 20 has none). */
function decoderFor(coding: string): DecompressionStream | undefined {
  const format = Object.hasOwn(FORMATS, coding) ? FORMATS[coding] : undefined;
  if (format === undefined) return undefined;
  try {
    return new DecompressionStream(format as CompressionFormat);
  } catch {
    return undefined; // the runtime refuses the format: a TypeError, as the Compression Streams spec says
  }
}

let decodedHere: string | undefined;

/** The codings this runtime decodes, as a 415's `Accept-Encoding` lists them (RFC 9110 §12.5.3). */
function acceptedCodings(): string {
  decodedHere ??= ["gzip", "deflate", "br"].filter((coding) => decoderFor(coding) !== undefined).join(", ");
  return decodedHere;
}

/**
 * `body` as its `Content-Encoding` says it was sent, decoded, up to `limit` bytes decoded: the
 * payload a request's fingerprint covers and its route reads, as Express's and Koa's body
 * parsers give it, so the same JSON sent compressed and then plain is the same request. A body
 * sent as it is (no coding, or `identity`), or an empty one, is `body` itself. Else core's
 * `BodyError`: `unsupported_content_encoding` (415) for a coding not decoded here, or more than
 * one; `body_not_decodable` (400) for data that is not what its coding says; `body_too_large`
 * (413) past `limit` decoded, read no further (a small body that inflates without end, a zip
 * bomb, costs `limit` bytes).
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export async function decodeContent(
  body: Uint8Array,
  contentEncoding: ContentEncodingValue,
  limit: number,
): Promise<Uint8Array | BodyError> {
  const codings = contentCodings(contentEncoding);
  if (codings.length === 0 || body.byteLength === 0) return body;
  // One coding at most, as Express's and Koa's body parsers decode: a stack of them is no client's.
  const [coding] = codings as [string];
  const decoder = codings.length === 1 ? decoderFor(coding) : undefined;
  if (decoder === undefined) return unsupported(codings);
  const bytes = new ReadableStream<BufferSource>({
    start(controller) {
      controller.enqueue(body as Uint8Array<ArrayBuffer>);
      controller.close();
    },
  });
  const decoded = await readStreamUpTo(bytes.pipeThrough(decoder), limit);
  // The bytes are all here: a decoder that fails found data that is not what its coding says.
  if (decoded instanceof BodyError && decoded.code === "body_incomplete")
    return new BodyError("body_not_decodable", `the request body is not valid ${coding} data`, {
      cause: decoded.cause,
    });
  return decoded;
}

function unsupported(codings: readonly string[]): BodyError {
  const accepted = acceptedCodings();
  return new BodyError(
    "unsupported_content_encoding",
    `the request body was sent with Content-Encoding: ${codings.join(", ")}; send it uncompressed, or with one of: ${accepted}`,
    { acceptEncoding: accepted },
  );
}
