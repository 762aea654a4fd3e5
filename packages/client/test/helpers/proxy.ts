/**
 * A TCP proxy on 127.0.0.1 that can lose responses: it forwards every byte both ways, except
 * that the first `dropResponses` responses are never delivered. When the server starts
 * answering, the proxy resets the client's connection instead, as a network failure between
 * the two would: the server did the work and sent its answer; the client never got it.
 */

import type { AddressInfo } from "node:net";
import { connect, createServer, type Socket } from "node:net";

export interface LossyProxy {
  url: string;
  /** Responses dropped so far. */
  dropped(): number;
  close(): Promise<void>;
}

export async function startLossyProxy(target: string, dropResponses: number): Promise<LossyProxy> {
  const { hostname, port } = new URL(target);
  let toDrop = dropResponses;
  let dropped = 0;
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {}); // resets are the point here
  };

  const server = createServer((client) => {
    const upstream = connect(Number(port), hostname);
    track(client);
    track(upstream);
    client.on("data", (chunk) => upstream.write(chunk));
    upstream.on("data", (chunk) => {
      if (toDrop > 0) {
        toDrop--;
        dropped++;
        client.resetAndDestroy();
        upstream.destroy();
        return;
      }
      client.write(chunk);
    });
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    dropped: () => dropped,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
