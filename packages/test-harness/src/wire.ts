/**
 * Answers as they come over the wire: the raw bytes, and the body decoded as its own
 * `Content-Encoding` says, so a header that lies about the body fails the test. For the adapters'
 * tests among compression and other middleware that rewrite answers.
 */

import { request as httpRequest } from "node:http";
import { brotliDecompressSync, gunzipSync, inflateSync } from "node:zlib";
import { DEFAULT_REPLAY_HEADERS } from "@interlock/core";
import { expect } from "vitest";

/** An answer as it came over the wire, and its body decoded as its `Content-Encoding` says. */
export interface WireAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** Every header line as sent, in order: `[name, value, name, value, …]` (Node's `rawHeaders`). */
  rawHeaders: string[];
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
          const { statusCode = 0, headers: parsed, rawHeaders } = response;
          resolve({ status: statusCode, headers: parsed, rawHeaders, raw, decoded });
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

/** The header lines named in `names`, in the order sent, names in lower case. */
export function headerLines(answer: WireAnswer, names: readonly string[]): Array<[string, string]> {
  const wanted = new Set(names.map((name) => name.toLowerCase()));
  const lines: Array<[string, string]> = [];
  for (let i = 0; i + 1 < answer.rawHeaders.length; i += 2) {
    const name = (answer.rawHeaders[i] as string).toLowerCase();
    if (wanted.has(name)) lines.push([name, answer.rawHeaders[i + 1] as string]);
  }
  return lines;
}

/**
 * `replay` is what the first client got: a marked replay with the same status, the same body bytes
 * on the wire and the same replayable header lines (`names`, default core's list), each answer's
 * `Content-Length` true to its bytes.
 */
export function expectFaithfulReplay(
  first: WireAnswer,
  replay: WireAnswer,
  names: readonly string[] = DEFAULT_REPLAY_HEADERS,
): void {
  expect(replay.headers["idempotent-replayed"], "the replay is marked").toBe("true");
  expect(first.headers["idempotent-replayed"], "the first answer is not").toBeUndefined();
  const answer = (wire: WireAnswer) => ({
    status: wire.status,
    headers: headerLines(wire, names),
    body: wire.raw.toString("latin1"),
  });
  expect(answer(replay)).toEqual(answer(first));
  expectSaneHeaders(first);
  expectSaneHeaders(replay);
}
