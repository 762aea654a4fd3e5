/**
 * HTTP/2 cleartext (h2c, prior knowledge) over a bare `node:net` socket, frames written by
 * hand: for what node:http2's client cannot send. Its `stream.close(code)` ends the request
 * body (END_STREAM) before it resets the stream, so the server sees a complete request; a
 * browser or any client that aborts an upload resets a stream whose body never ended. Here a
 * request's HEADERS and DATA go out without END_STREAM unless asked, and `reset` sends
 * RST_STREAM on its own.
 *
 * A PING round trip follows every step: the server answers a PING once it has processed the
 * frames before it, so when `write`/`reset` resolve, the server has read them. Every wait is
 * bounded; answers are not read (their header block is HPACK with Huffman coding): drive the
 * rest with node:http2's client.
 */

import { connect, type Socket } from "node:net";

/** The longest wait for the server before the test fails: a bound, never a timing assertion. */
const WAIT_MS = 2_000;

const PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME = { DATA: 0x0, HEADERS: 0x1, RST_STREAM: 0x3, SETTINGS: 0x4, PING: 0x6, GOAWAY: 0x7 } as const;
const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;
/** The smallest SETTINGS_MAX_FRAME_SIZE, which every server accepts (RFC 9113 §4.2). */
const MAX_FRAME = 16_384;
/** RST_STREAM's CANCEL: the client no longer wants the stream (RFC 9113 §7). */
const CANCEL = 0x8;

/** A request's head: the method and path, and headers with lower-case names. */
export interface RawHttp2Request {
  method: string;
  path: string;
  headers: Record<string, string>;
}

/** One h2c connection written frame by frame: `RawHttp2Connection.open(url)`. */
export class RawHttp2Connection {
  readonly #socket: Socket;
  readonly #authority: string;
  #buffer: Buffer = Buffer.alloc(0);
  #nextStream = 1;
  #pings = 0;
  /** PINGs sent and not yet answered, by their 8-byte payload. */
  readonly #waiting = new Map<string, () => void>();
  #failure: Error | undefined;

  private constructor(socket: Socket, authority: string) {
    this.#socket = socket;
    this.#authority = authority;
    socket.on("data", (chunk: Buffer) => this.#receive(chunk));
    const fail = (reason: string) => {
      this.#failure ??= new Error(reason);
      for (const wake of this.#waiting.values()) wake();
    };
    socket.on("close", () => fail("the server closed the HTTP/2 connection"));
    socket.on("error", (error) => fail(`the HTTP/2 connection failed: ${error.message}`));
  }

  /** Connects to the host and port of `url` (`http://127.0.0.1:<port>`) and says the preface. */
  static async open(url: string): Promise<RawHttp2Connection> {
    const { hostname, port, host } = new URL(url);
    const socket = await new Promise<Socket>((resolve, reject) => {
      const opened = connect({ host: hostname, port: Number(port) }, () => {
        opened.off("error", reject);
        resolve(opened);
      });
      opened.once("error", reject);
    });
    const connection = new RawHttp2Connection(socket, host);
    socket.write(PREFACE);
    socket.write(frame(FRAME.SETTINGS, 0, 0));
    await connection.#ping();
    return connection;
  }

  /**
   * Opens a stream with `request`'s HEADERS and sends `body` in DATA frames. The stream stays
   * open unless `end`: more may follow, or a `reset`. Resolves with the stream's id once the
   * server has read every frame.
   */
  async request(request: RawHttp2Request, body: Uint8Array, { end = false } = {}): Promise<number> {
    const stream = this.#nextStream;
    this.#nextStream += 2;
    const fields: Array<[string, string]> = [
      [":method", request.method],
      [":scheme", "http"],
      [":authority", this.#authority],
      [":path", request.path],
      ...Object.entries(request.headers),
    ];
    const noBody = end && body.length === 0;
    this.#socket.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | (noBody ? FLAG.END_STREAM : 0), stream, hpack(fields)));
    for (let at = 0; at < body.length; at += MAX_FRAME) {
      const last = at + MAX_FRAME >= body.length;
      const piece = body.subarray(at, at + MAX_FRAME);
      this.#socket.write(frame(FRAME.DATA, end && last ? FLAG.END_STREAM : 0, stream, piece));
    }
    await this.#ping();
    return stream;
  }

  /** Resets `stream` (RST_STREAM CANCEL); resolves once the server has read the reset. */
  async reset(stream: number): Promise<void> {
    const code = Buffer.alloc(4);
    code.writeUInt32BE(CANCEL);
    this.#socket.write(frame(FRAME.RST_STREAM, 0, stream, code));
    await this.#ping();
  }

  /** Says GOAWAY and closes the connection; resolves once it is closed (destroyed after the wait). */
  async close(): Promise<void> {
    if (this.#socket.destroyed) return;
    const goaway = Buffer.alloc(8); // last stream 0, NO_ERROR
    const closed = new Promise<void>((resolve) => this.#socket.once("close", () => resolve()));
    this.#socket.end(frame(FRAME.GOAWAY, 0, 0, goaway));
    const timer = setTimeout(() => this.#socket.destroy(), WAIT_MS);
    await closed;
    clearTimeout(timer);
  }

  /** Sends a PING and waits for its ACK: the server has processed every frame sent before it. */
  async #ping(): Promise<void> {
    if (this.#failure) throw this.#failure;
    const payload = Buffer.alloc(8);
    payload.writeUInt32BE(++this.#pings, 4);
    const key = payload.toString("hex");
    let timer: NodeJS.Timeout | undefined;
    const answered = new Promise<void>((resolve) => {
      this.#waiting.set(key, resolve);
      timer = setTimeout(resolve, WAIT_MS);
    });
    this.#socket.write(frame(FRAME.PING, 0, 0, payload));
    await answered;
    clearTimeout(timer);
    const unanswered = this.#waiting.delete(key);
    if (this.#failure) throw this.#failure;
    if (unanswered) throw new Error(`waited ${WAIT_MS} ms for the server to answer a PING`);
  }

  /** Reads the server's frames: acknowledges its SETTINGS and PINGs, and notes the ACKs of ours. */
  #receive(chunk: Buffer): void {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    while (this.#buffer.length >= 9) {
      const length = this.#buffer.readUIntBE(0, 3);
      if (this.#buffer.length < 9 + length) return;
      const type = this.#buffer[3];
      const flags = this.#buffer[4] as number;
      const payload = this.#buffer.subarray(9, 9 + length);
      this.#buffer = this.#buffer.subarray(9 + length);
      if (type === FRAME.SETTINGS && !(flags & FLAG.ACK)) this.#socket.write(frame(FRAME.SETTINGS, FLAG.ACK, 0));
      else if (type === FRAME.PING && !(flags & FLAG.ACK)) this.#socket.write(frame(FRAME.PING, FLAG.ACK, 0, payload));
      else if (type === FRAME.PING) {
        const wake = this.#waiting.get(payload.toString("hex"));
        this.#waiting.delete(payload.toString("hex"));
        wake?.();
      } else if (type === FRAME.GOAWAY) {
        this.#failure ??= new Error(`the server sent GOAWAY (error code ${payload.readUInt32BE(4)})`);
      }
    }
  }
}

function frame(type: number, flags: number, stream: number, payload: Uint8Array = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

/** A header block of literal fields without indexing and without Huffman coding (RFC 7541 §6.2.2). */
function hpack(fields: ReadonlyArray<readonly [string, string]>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of fields) {
    const nameBytes = Buffer.from(name, "latin1");
    const valueBytes = Buffer.from(value, "latin1");
    parts.push(Buffer.from([0]), integer(nameBytes.length), nameBytes, integer(valueBytes.length), valueBytes);
  }
  return Buffer.concat(parts);
}

/** An HPACK integer with a 7-bit prefix, the Huffman bit clear (RFC 7541 §5.1). */
function integer(value: number): Buffer {
  if (value < 127) return Buffer.from([value]);
  const bytes = [127];
  let rest = value - 127;
  while (rest >= 128) {
    bytes.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}
