/**
 * Answers as they come over the wire: the raw bytes, and the body decoded as its own
 * `Content-Encoding` says, so a header that lies about the body fails the test. For the adapters'
 * tests among compression and other middleware that rewrite answers.
 */

import { request as httpRequest } from "node:http";
import { brotliDecompressSync, gunzipSync, inflateSync } from "node:zlib";
import { expect } from "vitest";

/** An answer as it came over the wire, and its body decoded as its `Content-Encoding` says. */
export interface WireAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  raw: Buffer;
  decoded: Buffer;
}

/** The body as its `Content-Encoding` says; throws for an encoding no client here would accept. */
export function decodeBody(raw: Buffer, encoding: string | undefined): Buffer {
  if (encoding === undefined || encoding === "identity") return raw;
  if (encoding === "gzip") return gunzipSync(raw);
  if (encoding === "deflate") return inflateSync(raw);
  if (encoding === "br") return brotliDecompressSync(raw);
  throw new Error(`unexpected content-encoding ${encoding}`);
}

/**
 * Sends one request on a connection of its own (node:http, no keep-alive, nothing decoded on the
 * way) and reads the whole answer.
 */
export function wireRequest(
  url: string,
  headers: Record<string, string>,
  body?: string | Uint8Array,
  method = "POST",
): Promise<WireAnswer> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(url, { method, headers, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("error", reject);
      response.on("end", () => {
        const raw = Buffer.concat(chunks);
        try {
          const decoded = decodeBody(raw, response.headers["content-encoding"]);
          resolve({ status: response.statusCode ?? 0, headers: response.headers, raw, decoded });
        } catch (error) {
          reject(error);
        }
      });
    });
    request.on("error", reject);
    request.end(body);
  });
}

/**
 * No header of `lists` sent twice or naming an item twice (`Vary: accept-encoding, accept-encoding`),
 * and a `Content-Length` that matches the bytes sent.
 */
export function expectSaneHeaders(answer: WireAnswer, lists: readonly string[] = ["vary"]): void {
  for (const name of lists) {
    const value = answer.headers[name];
    expect(Array.isArray(value), `${name} sent twice`).toBe(false);
    if (value === undefined) continue;
    const items = String(value)
      .split(",")
      .map((item) => item.trim().toLowerCase());
    expect(new Set(items).size, `${name}: ${value}`).toBe(items.length);
  }
  const length = answer.headers["content-length"];
  if (length !== undefined) expect(Number(length)).toBe(answer.raw.byteLength);
}
