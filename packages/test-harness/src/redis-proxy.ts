/**
 * A TCP proxy in front of a Redis server, for the failure nothing else produces on demand: a
 * connection lost after the server ran a command but before its reply reached the client. The
 * client (ioredis) then sends the command again on its next connection
 * (`autoResendUnfulfilledCommands`), and what that copy answers is what the caller sees.
 */

import { connect, createServer, type Socket } from "node:net";

const HOST = "127.0.0.1";

export interface RedisProxy {
  /** The port to point a client at (on 127.0.0.1). */
  readonly port: number;
  /**
   * Arms the proxy, once: the next command whose bytes contain `marker` still reaches the
   * server, but instead of passing its reply on, the proxy drops that client's connection.
   */
  dropReplyTo(marker: string): void;
  /** How many replies were dropped so far. */
  readonly dropped: number;
  close(): Promise<void>;
}

/** Starts a proxy to the Redis server at `port` (on 127.0.0.1). */
export async function startRedisProxy(port: number, host = HOST): Promise<RedisProxy> {
  const sockets = new Set<Socket>();
  let marker: string | undefined;
  let dropped = 0;
  const proxy = createServer((client) => {
    const server = connect(port, host);
    for (const socket of [client, server]) {
      sockets.add(socket);
      socket.on("error", () => {});
      socket.on("close", () => {
        sockets.delete(socket);
        (socket === client ? server : client).destroy();
      });
    }
    let dropReply = false;
    client.on("data", (chunk: Buffer) => {
      if (marker !== undefined && chunk.includes(marker)) {
        marker = undefined;
        dropReply = true;
      }
      server.write(chunk);
    });
    server.on("data", (chunk: Buffer) => {
      if (!dropReply) return void client.write(chunk);
      dropped++;
      client.destroy();
    });
  });
  await new Promise<void>((resolve) => proxy.listen(0, HOST, resolve));
  return {
    port: (proxy.address() as { port: number }).port,
    dropReplyTo(text) {
      marker = text;
    },
    get dropped() {
      return dropped;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        proxy.close(() => resolve());
      }),
  };
}
