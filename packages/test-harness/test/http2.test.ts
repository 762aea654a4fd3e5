/** The harness's HTTP/2 clients against real node:http2 servers on 127.0.0.1. */
import { createServer, type Http2Server, type Http2ServerRequest, type Http2ServerResponse } from "node:http2";
import type { AddressInfo, Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { http2Client } from "../src/http2.js";
import { RawHttp2Connection } from "../src/raw-http2.js";

let server: Http2Server | undefined;
afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

async function serve(handler: (req: Http2ServerRequest, res: Http2ServerResponse) => void): Promise<string> {
  server = createServer(handler);
  await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", () => resolve()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe("http2Client", () => {
  it("close() resolves once the server has reset the connection (the session destroyed, never closed)", async () => {
    const sockets: Socket[] = [];
    const url = await serve((req, res) => {
      // A TCP reset: no GOAWAY and no end of the connection, either of which closes the client's session first.
      if (req.url === "/drop") for (const socket of sockets) socket.resetAndDestroy();
      else res.end("ok");
    });
    server?.on("connection", (socket: Socket) => sockets.push(socket));
    const client = http2Client();
    const ok = await client.fetch(`${url}/ok`);
    expect([ok.status, await ok.text()]).toEqual([200, "ok"]);
    await expect(client.fetch(`${url}/drop`)).rejects.toThrow("fetch failed");
    await client.close();
  });

  it("resolves once the headers have come, its body read as the server writes it (a streamed answer, as fetch reads one)", async () => {
    let finish: () => void = () => {};
    const finished = new Promise<void>((resolve) => (finish = resolve));
    const url = await serve((_req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.write("first;");
      void finished.then(() => res.end("second"));
    });
    const client = http2Client();
    try {
      const response = await client.fetch(url);
      expect([response.status, response.headers.get("content-type")]).toEqual([200, "text/plain"]);
      const reader = (response.body as ReadableStream<Uint8Array>).getReader();
      // The server ends its answer only once this part has been read: a buffered body would never come.
      expect(new TextDecoder().decode((await reader.read()).value)).toBe("first;");
      finish();
      let rest = "";
      for (let read = await reader.read(); !read.done; read = await reader.read())
        rest += new TextDecoder().decode(read.value);
      expect(rest).toBe("second");
    } finally {
      finish();
      await client.close();
    }
  });

  it("a body left unread does not hold its stream open: close() resolves", async () => {
    const url = await serve((_req, res) => res.end("unread"));
    const client = http2Client();
    expect((await client.fetch(url)).status).toBe(200);
    await client.close();
  });
});

describe("RawHttp2Connection", () => {
  it("a body that never ended, then RST_STREAM: the server reads the bytes, then sees the stream aborted", async () => {
    const seen: string[] = [];
    const url = await serve((req) => {
      req.on("data", (chunk: Buffer) => seen.push(`data ${chunk.toString()}`));
      req.on("aborted", () => seen.push("aborted"));
      req.on("end", () => seen.push(`end${req.aborted ? " (aborted)" : ""}`));
    });
    const connection = await RawHttp2Connection.open(url);
    try {
      const stream = await connection.request({ method: "POST", path: "/", headers: {} }, Buffer.from('{"a":1}'));
      // The PING round trip: the server has read the DATA frame, and the stream is still open.
      expect(seen).toEqual(['data {"a":1}']);
      await connection.reset(stream);
      expect(seen).toEqual(['data {"a":1}', "aborted", "end (aborted)"]);
    } finally {
      await connection.close();
    }
  });

  it("a request sent whole (end) ends its body on the server, not aborted", async () => {
    const bodies: string[] = [];
    const url = await serve((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        bodies.push(`${Buffer.concat(chunks).toString()}${req.aborted ? " (aborted)" : ""}`);
        res.end();
      });
    });
    const connection = await RawHttp2Connection.open(url);
    try {
      // Past one frame's 16 KiB: the body goes out in several DATA frames, the last one ending the stream.
      const body = "x".repeat(40_000);
      await connection.request(
        { method: "POST", path: "/", headers: { "x-long": "v".repeat(300) } },
        Buffer.from(body),
        {
          end: true,
        },
      );
      expect(bodies).toEqual([body]);
    } finally {
      await connection.close();
    }
  });
});
