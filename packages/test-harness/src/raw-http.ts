/**
 * HTTP/1.1 over a bare `node:net` socket: the request bytes go out exactly as written (no client
 * library to add a length, fix a header, decide when to send a body or wait for
 * `100 Continue`), and the answers are parsed one after another as they arrive, interim `1xx`
 * answers included. For the protocol edge cases real clients produce on the wire:
 * `Expect: 100-continue`, pipelining, a body cut short, chunked bodies with extensions and
 * trailers.
 *
 * Every wait is bounded: an answer that does not come within the wait fails with what was
 * received so far, and never hangs the test.
 */

import { connect, type Socket } from "node:net";

/** One answer as it came over the wire. */
export interface RawAnswer {
  status: number;
  /** Header names lower-cased; a repeated header's values joined with ", ". */
  headers: Record<string, string>;
  body: Buffer;
  text: string;
}

/** The longest wait for bytes from the server before the test fails: a bound, never a timing assertion. */
const WAIT_MS = 2_000;

const HEAD_END = Buffer.from("\r\n\r\n");
const CRLF = Buffer.from("\r\n");

/** An HTTP/1.1 connection written byte for byte: `RawHttpConnection.open(url)`. */
export class RawHttpConnection {
  readonly #socket: Socket;
  #buffer: Buffer = Buffer.alloc(0);
  /** The server closed its side, or the connection failed: no more bytes will come. */
  #ended = false;
  #wake: (() => void) | undefined;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on("data", (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      this.#wake?.();
    });
    const ended = () => {
      this.#ended = true;
      this.#wake?.();
    };
    socket.on("end", ended);
    socket.on("close", ended);
    // A reset ends the connection like a close: what arrived before it is still read.
    socket.on("error", ended);
  }

  /** Connects to the host and port of `url` (`http://127.0.0.1:<port>`). */
  static open(url: string): Promise<RawHttpConnection> {
    const { hostname, port } = new URL(url);
    return new Promise((resolve, reject) => {
      const socket = connect({ host: hostname, port: Number(port) }, () => {
        socket.off("error", reject);
        resolve(new RawHttpConnection(socket));
      });
      socket.once("error", reject);
    });
  }

  /**
   * Writes `bytes` as they are (a string as latin1). Resolves once the socket has taken them;
   * never rejects: a server that closed meanwhile shows in what is read next.
   */
  write(bytes: string | Uint8Array): Promise<void> {
    return new Promise((resolve) => {
      if (this.#socket.destroyed) return resolve();
      this.#socket.write(typeof bytes === "string" ? Buffer.from(bytes, "latin1") : bytes, () => resolve());
    });
  }

  /** Closes the connection at once, as a client that gives up does. */
  destroy(): void {
    this.#socket.destroy();
  }

  /**
   * The next answer, interim (`1xx`) ones included. `head`: it answers a HEAD request, so it
   * has no content whatever its headers say.
   */
  async answer({ head = false } = {}): Promise<RawAnswer> {
    const answer = await this.answerOrEnd({ head });
    if (answer === "closed") throw new Error("the server closed the connection instead of answering");
    return answer;
  }

  /** The next final answer: interim ones are skipped, and `interim` lists their statuses. */
  async finalAnswer({ head = false } = {}): Promise<RawAnswer & { interim: number[] }> {
    const interim: number[] = [];
    for (;;) {
      const answer = await this.answer({ head });
      if (answer.status >= 200) return { ...answer, interim };
      interim.push(answer.status);
    }
  }

  /** The next answer, or "closed" when the server closes the connection before sending any byte of one. */
  async answerOrEnd({ head = false } = {}): Promise<RawAnswer | "closed"> {
    const deadline = Date.now() + WAIT_MS;
    const found = await this.#until(
      () => (this.#ended && this.#buffer.length === 0 ? -2 : this.#buffer.indexOf(HEAD_END)),
      deadline,
      "an answer",
    );
    if (found === -2) return "closed";
    const lines = this.#take(found + HEAD_END.length)
      .toString("latin1")
      .split("\r\n");
    const match = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? "");
    if (!match) throw new Error(`not an HTTP/1.1 status line: ${JSON.stringify(lines[0])}`);
    const status = Number(match[1]);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1, -2)) {
      const colon = line.indexOf(":");
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    const body = await this.#content(status, headers, head, deadline);
    return { status, headers, body, text: body.toString("utf8") };
  }

  /** The answer's content, framed as RFC 9112 §6.3 says. */
  async #content(status: number, headers: Record<string, string>, head: boolean, deadline: number): Promise<Buffer> {
    if (head || status < 200 || status === 204 || status === 304) return Buffer.alloc(0);
    if (/\bchunked\b/i.test(headers["transfer-encoding"] ?? "")) return this.#chunks(deadline);
    const length = headers["content-length"];
    if (length !== undefined) return this.#bytes(Number(length), deadline);
    // Neither: the content runs to the end of the connection.
    await this.#until(() => (this.#ended ? 0 : -1), deadline, "the end of content delimited by the connection");
    return this.#take(this.#buffer.length);
  }

  async #chunks(deadline: number): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for (;;) {
      const sizeLine = (await this.#line(deadline)).toString("latin1");
      const size = Number.parseInt(sizeLine, 16);
      if (size === 0) {
        // Trailer fields, then the empty line that ends the message.
        while ((await this.#line(deadline)).length > 0);
        return Buffer.concat(chunks);
      }
      chunks.push(await this.#bytes(size, deadline));
      await this.#bytes(CRLF.length, deadline);
    }
  }

  /** The next line, without its CRLF. */
  async #line(deadline: number): Promise<Buffer> {
    const end = await this.#until(() => this.#buffer.indexOf(CRLF), deadline, "a line of chunked content");
    return this.#take(end + CRLF.length).subarray(0, end);
  }

  async #bytes(length: number, deadline: number): Promise<Buffer> {
    await this.#until(() => (this.#buffer.length >= length ? 0 : -1), deadline, `${length} bytes of content`);
    return this.#take(length);
  }

  #take(length: number): Buffer {
    const taken = this.#buffer.subarray(0, length);
    this.#buffer = this.#buffer.subarray(length);
    return taken;
  }

  /**
   * Waits until `found()` is something other than -1 and returns it. Fails once `deadline`
   * passes, or when the server has closed and `found()` still says -1.
   */
  async #until(found: () => number, deadline: number, what: string): Promise<number> {
    for (;;) {
      const at = found();
      if (at !== -1) return at;
      const unread = () => JSON.stringify(this.#buffer.toString("latin1").slice(0, 300));
      if (this.#ended) throw new Error(`the server closed the connection before ${what} (unread: ${unread()})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`waited ${WAIT_MS} ms for ${what} (unread: ${unread()})`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
    }
  }
}

/** A request head: the request line, `Host`, `headers` in order, and the empty line. */
export function requestHead(method: string, path: string, headers: Record<string, string | number> = {}): string {
  const lines = [`${method} ${path} HTTP/1.1`, "host: 127.0.0.1"];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  return `${lines.join("\r\n")}\r\n\r\n`;
}

/** How `chunked` frames a body. */
export interface ChunkedFraming {
  /** How many chunks the body is cut into. Default 3. */
  pieces?: number;
  /** Written after every chunk size, e.g. `;name="value"`: extensions a server must ignore. */
  extension?: string;
  /** Sizes in upper-case hex with leading zeros (`000A`), as legal as `a`. Default false. */
  paddedSizes?: boolean;
  /** Trailer fields after the last chunk. */
  trailers?: Record<string, string>;
  /** Leave out the last chunk and the trailers: the message is not complete. */
  unfinished?: boolean;
}

/** `body` in chunked transfer coding (RFC 9112 §7.1). */
export function chunked(body: string | Uint8Array, framing: ChunkedFraming = {}): Buffer {
  const { pieces = 3, extension = "", paddedSizes = false, trailers = {}, unfinished = false } = framing;
  const bytes = Buffer.from(body);
  const sizeLine = (size: number) =>
    `${paddedSizes ? size.toString(16).toUpperCase().padStart(4, "0") : size.toString(16)}${extension}\r\n`;
  const step = Math.max(1, Math.ceil(bytes.length / pieces));
  const parts: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += step) {
    const piece = bytes.subarray(at, at + step);
    parts.push(Buffer.from(sizeLine(piece.length)), piece, CRLF);
  }
  if (!unfinished) {
    const fields = Object.entries(trailers).map(([name, value]) => `${name}: ${value}\r\n`);
    parts.push(Buffer.from(`${sizeLine(0)}${fields.join("")}\r\n`));
  }
  return Buffer.concat(parts);
}
